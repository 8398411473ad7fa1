-- What cluster sync and failover record: when each replica held its
-- devices (billing builds on these intervals), what happened to a
-- deployment besides its own create/update/delete (failover), and since
-- when a deployment has been unschedulable.

-- One row per pod of a deployment that was bound to a node: its devices
-- were allocated at `allocated_at` (when the pod was bound) and released
-- at `released_at` (when sync saw the pod gone or finished; NULL while it
-- runs). A pod is recorded once: (cluster, pod_uid) is unique, so a
-- restarted sync finds the rows it wrote before instead of adding more.
CREATE TABLE replica_intervals (
    id            UUID        PRIMARY KEY,
    deployment_id UUID        NOT NULL REFERENCES deployments (id),
    tenant_id     UUID        NOT NULL REFERENCES tenants (id),
    cluster       TEXT        NOT NULL,
    namespace     TEXT        NOT NULL,
    pod_name      TEXT        NOT NULL,
    pod_uid       TEXT        NOT NULL,
    node          TEXT        NOT NULL,
    pool          TEXT        NOT NULL,
    accelerator   TEXT        NOT NULL,
    devices       BIGINT      NOT NULL CHECK (devices >= 0),
    allocated_at  TIMESTAMPTZ NOT NULL,
    released_at   TIMESTAMPTZ,
    UNIQUE (cluster, pod_uid),
    CHECK (released_at IS NULL OR released_at >= allocated_at)
);

CREATE INDEX replica_intervals_open ON replica_intervals (cluster) WHERE released_at IS NULL;
CREATE INDEX replica_intervals_deployment ON replica_intervals (deployment_id);

-- Things that happened to a deployment that are not a change of its own
-- row by a user: failover's steps, and a failover that found no room.
-- `kind` is one of 'failover-placed' (re-placed from → to),
-- 'failover-removed' (the old ModelDeployment was deleted),
-- 'failover-stuck' (no other placement fits; it stays).
CREATE TABLE deployment_events (
    id            UUID        PRIMARY KEY,
    deployment_id UUID        NOT NULL REFERENCES deployments (id),
    tenant_id     UUID        NOT NULL REFERENCES tenants (id),
    at            TIMESTAMPTZ NOT NULL,
    kind          TEXT        NOT NULL
        CHECK (kind IN ('failover-placed', 'failover-removed', 'failover-stuck')),
    from_cluster  TEXT,
    from_pool     TEXT,
    to_cluster    TEXT,
    to_pool       TEXT,
    reason        TEXT        NOT NULL
);

CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, at);

-- When sync first saw the deployment's pods unschedulable; NULL otherwise.
ALTER TABLE deployments ADD COLUMN unschedulable_since TIMESTAMPTZ;
