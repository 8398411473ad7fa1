-- Replica device intervals, deployment events and unschedulable_since.
-- Kept in step with ../postgres/0004_sync_intervals_events.sql.

CREATE TABLE replica_intervals (
    id            TEXT    PRIMARY KEY,
    deployment_id TEXT    NOT NULL REFERENCES deployments (id),
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    cluster       TEXT    NOT NULL,
    namespace     TEXT    NOT NULL,
    pod_name      TEXT    NOT NULL,
    pod_uid       TEXT    NOT NULL,
    node          TEXT    NOT NULL,
    pool          TEXT    NOT NULL,
    accelerator   TEXT    NOT NULL,
    devices       INTEGER NOT NULL CHECK (devices >= 0),
    allocated_at  TEXT    NOT NULL,
    released_at   TEXT,
    UNIQUE (cluster, pod_uid),
    CHECK (released_at IS NULL OR released_at >= allocated_at)
) STRICT;

CREATE INDEX replica_intervals_open ON replica_intervals (cluster) WHERE released_at IS NULL;
CREATE INDEX replica_intervals_deployment ON replica_intervals (deployment_id);

CREATE TABLE deployment_events (
    id            TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments (id),
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    at            TEXT NOT NULL,
    kind          TEXT NOT NULL
        CHECK (kind IN ('failover-placed', 'failover-removed', 'failover-stuck')),
    from_cluster  TEXT,
    from_pool     TEXT,
    to_cluster    TEXT,
    to_pool       TEXT,
    reason        TEXT NOT NULL
) STRICT;

CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, at);

ALTER TABLE deployments ADD COLUMN unschedulable_since TEXT;
