-- Billing: where each replica's devices were (so its usage can be
-- priced), tenant discounts, monthly budgets and their alerts, and final
-- invoices. Kept in step with ../sqlite/0007_billing.sql.

-- The cloud, region and capacity type of the pool an interval's devices
-- were in, as sync saw them when it opened the interval: the price key.
-- Rows written before this migration have NULLs; billing reads the
-- cluster's cloud and region for them and calls them on-demand.
ALTER TABLE replica_intervals ADD COLUMN cloud TEXT;
ALTER TABLE replica_intervals ADD COLUMN region TEXT;
ALTER TABLE replica_intervals ADD COLUMN capacity TEXT
    CHECK (capacity IN ('on-demand', 'spot'));
CREATE INDEX replica_intervals_tenant ON replica_intervals (tenant_id, allocated_at);

-- A tenant's discount off list prices, in basis points (1500 = 15 %), for
-- every cloud ('all') or one cloud, which then wins over 'all'.
CREATE TABLE tenant_discounts (
    tenant_id    UUID        NOT NULL REFERENCES tenants (id),
    scope        TEXT        NOT NULL,
    basis_points INTEGER     NOT NULL CHECK (basis_points BETWEEN 0 AND 10000),
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, scope)
);

-- A tenant's monthly budget in one currency. The webhook secret is sealed
-- with the keyring, like kubeconfigs.
CREATE TABLE tenant_budgets (
    tenant_id       UUID        PRIMARY KEY REFERENCES tenants (id),
    currency        TEXT        NOT NULL CHECK (currency IN ('USD', 'CNY')),
    micros_per_month BIGINT     NOT NULL CHECK (micros_per_month > 0),
    refuse_at_limit BOOLEAN     NOT NULL,
    webhook_url     TEXT,
    webhook_secret  BYTEA,
    updated_at      TIMESTAMPTZ NOT NULL,
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL))
);

-- An alert is raised once per tenant, month and threshold (80 or 100 % of
-- the budget), and its webhook delivery is tracked on the row.
CREATE TABLE budget_alerts (
    id             UUID        PRIMARY KEY,
    tenant_id      UUID        NOT NULL REFERENCES tenants (id),
    period         TEXT        NOT NULL,
    threshold      INTEGER     NOT NULL CHECK (threshold IN (80, 100)),
    currency       TEXT        NOT NULL,
    spent_micros   BIGINT      NOT NULL,
    budget_micros  BIGINT      NOT NULL,
    raised_at      TIMESTAMPTZ NOT NULL,
    delivery       TEXT        NOT NULL CHECK (delivery IN ('none', 'pending', 'delivered', 'failed')),
    attempts       INTEGER     NOT NULL DEFAULT 0,
    last_error     TEXT,
    delivered_at   TIMESTAMPTZ,
    UNIQUE (tenant_id, period, threshold)
);

-- Credits and corrections a platform admin adds to a month that is still
-- open; they become lines of that month's invoice.
CREATE TABLE invoice_adjustments (
    id           UUID        PRIMARY KEY,
    tenant_id    UUID        NOT NULL REFERENCES tenants (id),
    period       TEXT        NOT NULL,
    currency     TEXT        NOT NULL CHECK (currency IN ('USD', 'CNY')),
    amount_micros BIGINT     NOT NULL CHECK (amount_micros <> 0),
    description  TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX invoice_adjustments_month ON invoice_adjustments (tenant_id, period);

-- Final invoices, exactly as issued: the JSON of core::billing::Invoice.
-- Never changed or removed (a trigger refuses it); corrections are
-- adjustments on a later month.
CREATE TABLE invoices (
    id           UUID        PRIMARY KEY,
    tenant_id    UUID        NOT NULL REFERENCES tenants (id),
    period       TEXT        NOT NULL,
    currency     TEXT        NOT NULL CHECK (currency IN ('USD', 'CNY')),
    total_micros BIGINT      NOT NULL,
    body         TEXT        NOT NULL,
    finalized_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, period, currency)
);

-- Months whose invoices were issued, including months without any: a month
-- is finalized once, so usage observed late cannot change it silently.
CREATE TABLE finalized_months (
    tenant_id    UUID        NOT NULL REFERENCES tenants (id),
    period       TEXT        NOT NULL,
    finalized_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, period)
);

CREATE FUNCTION invoices_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'final invoices are never changed: add an adjustment to an open month'
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER invoices_append_only BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_refuse_change();
CREATE TRIGGER finalized_months_append_only BEFORE UPDATE OR DELETE ON finalized_months
    FOR EACH ROW EXECUTE FUNCTION invoices_refuse_change();
