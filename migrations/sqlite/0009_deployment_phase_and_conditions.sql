-- no-transaction
-- A deployment's phase is one of modelfleet_core::crd::Phase's names, and
-- the row keeps what its cluster last reported: the ModelDeployment's
-- conditions (JSON) and endpoint, so that reading a deployment never calls
-- its cluster. Kept in step with ../postgres/0009_deployment_phase_and_conditions.sql.
--
-- SQLite adds a CHECK constraint only by rebuilding the table, which other
-- tables reference: foreign keys are switched off around the rebuild (they
-- cannot be inside a transaction, hence `no-transaction` above and the
-- explicit BEGIN/COMMIT), and checked before it commits.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE deployments_new (
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
    phase               TEXT    NOT NULL CHECK (phase IN (
        'Pending', 'Planning', 'Scheduling', 'Loading', 'Ready', 'Degraded', 'Failed',
        'Terminating', 'Deleting')),
    ready_replicas      INTEGER NOT NULL DEFAULT 0,
    status_message      TEXT,
    resource_uid        TEXT,
    revision            INTEGER NOT NULL DEFAULT 1,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    deleted_at          TEXT,
    unschedulable_since TEXT,
    conditions          TEXT    NOT NULL DEFAULT '[]',
    endpoint            TEXT
) STRICT;

INSERT INTO deployments_new (id, tenant_id, name, model, model_params, cluster, namespace,
    pool, accelerator, devices_per_replica, replicas, precision, replica_cost_micros, currency,
    source, phase, ready_replicas, status_message, resource_uid, revision, created_at,
    updated_at, deleted_at, unschedulable_since)
SELECT id, tenant_id, name, model, model_params, cluster, namespace,
    pool, accelerator, devices_per_replica, replicas, precision, replica_cost_micros, currency,
    source, phase, ready_replicas, status_message, resource_uid, revision, created_at,
    updated_at, deleted_at, unschedulable_since
FROM deployments;

DROP TABLE deployments;
ALTER TABLE deployments_new RENAME TO deployments;

CREATE UNIQUE INDEX deployments_live_name ON deployments (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX deployments_live ON deployments (tenant_id) WHERE deleted_at IS NULL;
CREATE INDEX deployments_resource ON deployments (cluster, resource_uid);

COMMIT;
PRAGMA foreign_keys = ON;
