-- Tenants, users and API keys. Kept in step with ../postgres/0001_identity.sql:
-- ids are hyphenated UUID text, times RFC 3339 UTC text written by the hub
-- (never SQL defaults, so they compare correctly as text), booleans 0/1.

CREATE TABLE tenants (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    display_name TEXT    NOT NULL,
    created_at   TEXT    NOT NULL
) STRICT;

CREATE TABLE users (
    id                  TEXT    PRIMARY KEY,
    tenant_id           TEXT    REFERENCES tenants (id),
    username            TEXT    NOT NULL UNIQUE,
    display_name        TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    role                TEXT    NOT NULL CHECK (role IN ('platform-admin', 'tenant-admin', 'developer', 'auditor', 'viewer')),
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    locked_until        TEXT,
    last_login_at       TEXT,
    password_changed_at TEXT    NOT NULL,
    totp_secret         BLOB,
    totp_enabled        INTEGER NOT NULL DEFAULT 0,
    expires_at          TEXT,
    created_at          TEXT    NOT NULL,
    CHECK ((role = 'platform-admin' AND tenant_id IS NULL)
        OR (role IN ('tenant-admin', 'developer', 'viewer') AND tenant_id IS NOT NULL)
        OR role = 'auditor')
) STRICT;

CREATE INDEX users_tenant ON users (tenant_id);

CREATE TABLE api_keys (
    id           TEXT    PRIMARY KEY,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL UNIQUE,
    digest       BLOB    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('tenant-admin', 'developer', 'auditor', 'viewer')),
    created_at   TEXT    NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    last_used_at TEXT
) STRICT;

CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant_id, name) WHERE revoked_at IS NULL;
