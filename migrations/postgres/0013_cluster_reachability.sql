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
-- Kept in step with ../sqlite/0013_cluster_reachability.sql.
ALTER TABLE clusters ADD COLUMN last_seen_at TIMESTAMPTZ;
ALTER TABLE clusters ADD COLUMN lost_at TIMESTAMPTZ;

ALTER TABLE replica_intervals ADD COLUMN lost BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE replica_intervals DROP CONSTRAINT replica_intervals_cluster_pod_uid_key;
CREATE UNIQUE INDEX replica_intervals_one_open
    ON replica_intervals (cluster, pod_uid) WHERE released_at IS NULL;
CREATE INDEX replica_intervals_pod ON replica_intervals (cluster, pod_uid, allocated_at);
