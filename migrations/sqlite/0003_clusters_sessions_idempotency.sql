-- Clusters, pool prices, sessions and idempotency keys. Kept in step with
-- ../postgres/0003_clusters_sessions_idempotency.sql.

CREATE TABLE clusters (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    cloud      TEXT NOT NULL,
    region     TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('kubeconfig', 'sandbox')),
    kubeconfig BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK ((kind = 'kubeconfig') = (kubeconfig IS NOT NULL))
) STRICT;

CREATE TABLE cluster_pool_prices (
    cluster_id             TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    pool                   TEXT    NOT NULL,
    micros_per_device_hour INTEGER NOT NULL CHECK (micros_per_device_hour >= 0),
    currency               TEXT    NOT NULL,
    updated_at             TEXT    NOT NULL,
    PRIMARY KEY (cluster_id, pool)
) STRICT;

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    digest     BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    status       INTEGER,
    content_type TEXT,
    body         BLOB,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    PRIMARY KEY (scope, idem_key)
) STRICT;

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
