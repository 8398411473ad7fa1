-- Quotas and deployments. Kept in step with
-- ../postgres/0002_quotas_and_deployments.sql. SQLite has no row locks:
-- admission runs in a BEGIN IMMEDIATE transaction on the hub's single
-- writer connection instead.

CREATE TABLE tenant_quotas (
    tenant_id        TEXT    PRIMARY KEY REFERENCES tenants (id),
    total_devices    INTEGER CHECK (total_devices >= 0),
    deployments      INTEGER CHECK (deployments >= 0),
    max_model_params INTEGER CHECK (max_model_params >= 0),
    updated_at       TEXT    NOT NULL
) STRICT;

CREATE TABLE tenant_accelerator_quotas (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id),
    accelerator TEXT    NOT NULL,
    devices     INTEGER NOT NULL CHECK (devices >= 0),
    PRIMARY KEY (tenant_id, accelerator)
) STRICT;

CREATE TABLE tenant_spend_quotas (
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id),
    currency        TEXT    NOT NULL,
    micros_per_hour INTEGER NOT NULL CHECK (micros_per_hour >= 0),
    PRIMARY KEY (tenant_id, currency)
) STRICT;

CREATE TABLE deployments (
    id                  TEXT    PRIMARY KEY,
    tenant_id           TEXT    NOT NULL REFERENCES tenants (id),
    name                TEXT    NOT NULL,
    model               TEXT    NOT NULL,
    model_params        INTEGER NOT NULL CHECK (model_params >= 0),
    cluster             TEXT    NOT NULL,
    namespace           TEXT    NOT NULL,
    pool                TEXT    NOT NULL,
    accelerator         TEXT    NOT NULL,
    devices_per_replica INTEGER NOT NULL CHECK (devices_per_replica >= 1),
    replicas            INTEGER NOT NULL CHECK (replicas >= 0),
    precision           TEXT    NOT NULL,
    replica_cost_micros INTEGER NOT NULL CHECK (replica_cost_micros >= 0),
    currency            TEXT    NOT NULL,
    source              TEXT    NOT NULL CHECK (source IN ('api', 'cluster')),
    phase               TEXT    NOT NULL,
    ready_replicas      INTEGER NOT NULL DEFAULT 0,
    status_message      TEXT,
    resource_uid        TEXT,
    revision            INTEGER NOT NULL DEFAULT 1,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    deleted_at          TEXT
) STRICT;

CREATE UNIQUE INDEX deployments_live_name ON deployments (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX deployments_live ON deployments (tenant_id) WHERE deleted_at IS NULL;
CREATE INDEX deployments_resource ON deployments (cluster, resource_uid);
