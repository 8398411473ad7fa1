-- What the inference gateway metered: one row per answered request, keyed
-- by the request id the gateway gave it, so writing a batch again (after a
-- lost acknowledgement, or a restarted gateway replaying its spool) adds
-- nothing. `hour` is `at` cut to the hour: billing and the usage API sum
-- by it. Kept in step with ../postgres/0015_token_usage.sql.
CREATE TABLE token_usage (
    request_id    TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    deployment_id TEXT    NOT NULL REFERENCES deployments (id),
    api_key_id    TEXT    REFERENCES api_keys (id),
    model         TEXT    NOT NULL,
    cluster       TEXT    NOT NULL,
    operation     TEXT    NOT NULL CHECK (operation IN ('chat', 'completion', 'embedding')),
    status        INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL CHECK (output_tokens >= 0),
    at            TEXT    NOT NULL,
    hour          TEXT    NOT NULL
) STRICT;
CREATE INDEX token_usage_tenant_at ON token_usage (tenant_id, at);
