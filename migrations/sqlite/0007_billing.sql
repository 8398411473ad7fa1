-- Billing. Kept in step with ../postgres/0007_billing.sql, which explains
-- it.
ALTER TABLE replica_intervals ADD COLUMN cloud TEXT;
ALTER TABLE replica_intervals ADD COLUMN region TEXT;
ALTER TABLE replica_intervals ADD COLUMN capacity TEXT
    CHECK (capacity IN ('on-demand', 'spot'));
CREATE INDEX replica_intervals_tenant ON replica_intervals (tenant_id, allocated_at);

CREATE TABLE tenant_discounts (
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    scope        TEXT    NOT NULL,
    basis_points INTEGER NOT NULL CHECK (basis_points BETWEEN 0 AND 10000),
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, scope)
) STRICT;

CREATE TABLE tenant_budgets (
    tenant_id        TEXT    PRIMARY KEY REFERENCES tenants (id),
    currency         TEXT    NOT NULL CHECK (currency IN ('USD', 'CNY')),
    micros_per_month INTEGER NOT NULL CHECK (micros_per_month > 0),
    refuse_at_limit  INTEGER NOT NULL CHECK (refuse_at_limit IN (0, 1)),
    webhook_url      TEXT,
    webhook_secret   BLOB,
    updated_at       TEXT    NOT NULL,
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL))
) STRICT;

CREATE TABLE budget_alerts (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    period        TEXT    NOT NULL,
    threshold     INTEGER NOT NULL CHECK (threshold IN (80, 100)),
    currency      TEXT    NOT NULL,
    spent_micros  INTEGER NOT NULL,
    budget_micros INTEGER NOT NULL,
    raised_at     TEXT    NOT NULL,
    delivery      TEXT    NOT NULL CHECK (delivery IN ('none', 'pending', 'delivered', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    delivered_at  TEXT,
    UNIQUE (tenant_id, period, threshold)
) STRICT;

CREATE TABLE invoice_adjustments (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    period        TEXT    NOT NULL,
    currency      TEXT    NOT NULL CHECK (currency IN ('USD', 'CNY')),
    amount_micros INTEGER NOT NULL CHECK (amount_micros <> 0),
    description   TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
) STRICT;
CREATE INDEX invoice_adjustments_month ON invoice_adjustments (tenant_id, period);

CREATE TABLE invoices (
    id           TEXT    PRIMARY KEY,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    period       TEXT    NOT NULL,
    currency     TEXT    NOT NULL CHECK (currency IN ('USD', 'CNY')),
    total_micros INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    finalized_at TEXT    NOT NULL,
    UNIQUE (tenant_id, period, currency)
) STRICT;

CREATE TABLE finalized_months (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    period       TEXT NOT NULL,
    finalized_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, period)
) STRICT;

CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices
BEGIN
    SELECT RAISE(ABORT, 'final invoices are never changed: add an adjustment to an open month');
END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices
BEGIN
    SELECT RAISE(ABORT, 'final invoices are never changed: add an adjustment to an open month');
END;
CREATE TRIGGER finalized_months_no_update BEFORE UPDATE ON finalized_months
BEGIN
    SELECT RAISE(ABORT, 'final invoices are never changed: add an adjustment to an open month');
END;
CREATE TRIGGER finalized_months_no_delete BEFORE DELETE ON finalized_months
BEGIN
    SELECT RAISE(ABORT, 'final invoices are never changed: add an adjustment to an open month');
END;
