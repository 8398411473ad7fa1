-- Tenants, users and API keys. Times are UTC (timestamptz), ids UUIDs.

CREATE TABLE tenants (
    id           UUID        PRIMARY KEY,
    name         TEXT        NOT NULL UNIQUE,
    display_name TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id                  UUID        PRIMARY KEY,
    -- NULL for platform staff.
    tenant_id           UUID        REFERENCES tenants (id),
    username            TEXT        NOT NULL UNIQUE,
    display_name        TEXT        NOT NULL,
    -- argon2id, PHC string form.
    password_hash       TEXT        NOT NULL,
    role                TEXT        NOT NULL CHECK (role IN ('platform-admin', 'tenant-admin', 'developer', 'auditor', 'viewer')),
    failed_logins       BIGINT      NOT NULL DEFAULT 0,
    locked_until        TIMESTAMPTZ,
    last_login_at       TIMESTAMPTZ,
    password_changed_at TIMESTAMPTZ NOT NULL,
    -- Sealed (AES-256-GCM) TOTP seed; see api/src/secret.rs.
    totp_secret         BYTEA,
    totp_enabled        BOOLEAN     NOT NULL DEFAULT FALSE,
    expires_at          TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    CHECK ((role = 'platform-admin' AND tenant_id IS NULL)
        OR (role IN ('tenant-admin', 'developer', 'viewer') AND tenant_id IS NOT NULL)
        OR role = 'auditor')
);

CREATE INDEX users_tenant ON users (tenant_id);

CREATE TABLE api_keys (
    id           UUID        PRIMARY KEY,
    tenant_id    UUID        NOT NULL REFERENCES tenants (id),
    name         TEXT        NOT NULL,
    -- Public: `mf_<prefix>_…`. Finds the row; the digest proves the rest.
    prefix       TEXT        NOT NULL UNIQUE,
    -- SHA-256 of the whole token.
    digest       BYTEA       NOT NULL,
    role         TEXT        NOT NULL CHECK (role IN ('tenant-admin', 'developer', 'auditor', 'viewer')),
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant_id, name) WHERE revoked_at IS NULL;
