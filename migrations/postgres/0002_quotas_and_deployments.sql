-- Quotas and the deployments they are counted against. Money is integer
-- micro-units (10^-6) with its currency, as modelfleet_core::money::Money.

-- One row per tenant, always present: admission locks it (SELECT … FOR
-- UPDATE) so concurrent admissions of one tenant run one after another.
-- NULL means no limit of that kind.
CREATE TABLE tenant_quotas (
    tenant_id        UUID        PRIMARY KEY REFERENCES tenants (id),
    total_devices    BIGINT      CHECK (total_devices >= 0),
    deployments      BIGINT      CHECK (deployments >= 0),
    max_model_params BIGINT      CHECK (max_model_params >= 0),
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE tenant_accelerator_quotas (
    tenant_id   UUID   NOT NULL REFERENCES tenants (id),
    accelerator TEXT   NOT NULL,
    devices     BIGINT NOT NULL CHECK (devices >= 0),
    PRIMARY KEY (tenant_id, accelerator)
);

CREATE TABLE tenant_spend_quotas (
    tenant_id       UUID   NOT NULL REFERENCES tenants (id),
    currency        TEXT   NOT NULL,
    micros_per_hour BIGINT NOT NULL CHECK (micros_per_hour >= 0),
    PRIMARY KEY (tenant_id, currency)
);

CREATE TABLE deployments (
    id                  UUID        PRIMARY KEY,
    tenant_id           UUID        NOT NULL REFERENCES tenants (id),
    name                TEXT        NOT NULL,
    model               TEXT        NOT NULL,
    model_params        BIGINT      NOT NULL CHECK (model_params >= 0),
    -- Where it runs: cluster name, namespace, node pool and its accelerator.
    cluster             TEXT        NOT NULL,
    namespace           TEXT        NOT NULL,
    pool                TEXT        NOT NULL,
    accelerator         TEXT        NOT NULL,
    devices_per_replica BIGINT      NOT NULL CHECK (devices_per_replica >= 1),
    replicas            BIGINT      NOT NULL CHECK (replicas >= 0),
    precision           TEXT        NOT NULL,
    -- The price of one replica's devices for an hour when it was placed.
    replica_cost_micros BIGINT      NOT NULL CHECK (replica_cost_micros >= 0),
    currency            TEXT        NOT NULL,
    -- 'api' (admitted by the hub) or 'cluster' (applied with kubectl, found by sync).
    source              TEXT        NOT NULL CHECK (source IN ('api', 'cluster')),
    phase               TEXT        NOT NULL,
    ready_replicas      BIGINT      NOT NULL DEFAULT 0,
    status_message      TEXT,
    -- The ModelDeployment's metadata.uid once it exists in the cluster.
    resource_uid        TEXT,
    -- Bumped on every change, for optimistic concurrency and ETags.
    revision            BIGINT      NOT NULL DEFAULT 1,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    deleted_at          TIMESTAMPTZ
);

CREATE UNIQUE INDEX deployments_live_name ON deployments (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX deployments_live ON deployments (tenant_id) WHERE deleted_at IS NULL;
CREATE INDEX deployments_resource ON deployments (cluster, resource_uid);
