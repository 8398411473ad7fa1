-- Clusters the hub cannot reach. `last_seen_at` is the start of the last
-- complete look cluster sync took at a cluster (its ModelDeployments and
-- pods listed and compared); `lost_at` is when the hub declared it lost,
-- after it stayed unreachable for longer than the hub's setting, and is
-- cleared when the cluster answers again.
--
-- A lost cluster's open replica intervals are closed at `last_seen_at`
-- with `lost` set. A pod seen running again once the cluster answers
-- gets a new interval from that moment, so the time nobody could see it
-- is not billed: a pod may now have several intervals, at most one open.
-- SQLite cannot drop a table constraint, so replica_intervals is rebuilt
-- (no table refers to it).
-- Kept in step with ../postgres/0013_cluster_reachability.sql.
ALTER TABLE clusters ADD COLUMN last_seen_at TEXT;
ALTER TABLE clusters ADD COLUMN lost_at TEXT;

CREATE TABLE replica_intervals_new (
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
    cloud         TEXT,
    region        TEXT,
    capacity      TEXT    CHECK (capacity IN ('on-demand', 'spot')),
    lost          INTEGER NOT NULL DEFAULT 0 CHECK (lost IN (0, 1)),
    CHECK (released_at IS NULL OR released_at >= allocated_at)
) STRICT;

INSERT INTO replica_intervals_new (id, deployment_id, tenant_id, cluster, namespace, pod_name,
    pod_uid, node, pool, accelerator, devices, allocated_at, released_at, cloud, region, capacity)
SELECT id, deployment_id, tenant_id, cluster, namespace, pod_name, pod_uid, node, pool,
    accelerator, devices, allocated_at, released_at, cloud, region, capacity
FROM replica_intervals;

DROP TABLE replica_intervals;
ALTER TABLE replica_intervals_new RENAME TO replica_intervals;

CREATE INDEX replica_intervals_open ON replica_intervals (cluster) WHERE released_at IS NULL;
CREATE INDEX replica_intervals_deployment ON replica_intervals (deployment_id);
CREATE INDEX replica_intervals_tenant ON replica_intervals (tenant_id, allocated_at);
CREATE UNIQUE INDEX replica_intervals_one_open
    ON replica_intervals (cluster, pod_uid) WHERE released_at IS NULL;
CREATE INDEX replica_intervals_pod ON replica_intervals (cluster, pod_uid, allocated_at);
