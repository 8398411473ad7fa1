-- Registered clusters and their per-pool prices, sign-in sessions, and the
-- responses kept for Idempotency-Key retries.

-- A cluster the hub places deployments on. 'kubeconfig' clusters are
-- reached with the sealed kubeconfig (AES-256-GCM, see api/src/secret.rs);
-- 'sandbox' clusters are simulated in the hub's own process and handed to
-- it at start-up, so they have no kubeconfig.
CREATE TABLE clusters (
    id         UUID        PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE,
    cloud      TEXT        NOT NULL,
    region     TEXT        NOT NULL,
    kind       TEXT        NOT NULL CHECK (kind IN ('kubeconfig', 'sandbox')),
    kubeconfig BYTEA,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CHECK ((kind = 'kubeconfig') = (kubeconfig IS NOT NULL))
);

-- The hub's price for a node pool, overriding what discovery read from the
-- nodes. Pools are named as discovery names them, so a price may be set
-- before the pool's nodes exist.
CREATE TABLE cluster_pool_prices (
    cluster_id             UUID        NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    pool                   TEXT        NOT NULL,
    micros_per_device_hour BIGINT      NOT NULL CHECK (micros_per_device_hour >= 0),
    currency               TEXT        NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cluster_id, pool)
);

-- A signed-in user's bearer token, stored as its SHA-256 digest.
CREATE TABLE sessions (
    id         UUID        PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id),
    digest     BYTEA       NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE INDEX sessions_user ON sessions (user_id);

-- One row per (caller scope, Idempotency-Key): the request's digest and,
-- once it finished, the response to replay. `status` is NULL while the
-- first request is still running.
CREATE TABLE idempotency_keys (
    scope        TEXT        NOT NULL,
    idem_key     TEXT        NOT NULL,
    request_hash BYTEA       NOT NULL,
    status       BIGINT,
    content_type TEXT,
    body         BYTEA,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
