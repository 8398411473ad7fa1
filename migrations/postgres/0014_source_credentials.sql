-- Source credentials a tenant keeps in the hub: the keys `modelfleet fetch`
-- reads (AWS_ACCESS_KEY_ID, HF_TOKEN, …), as one JSON object sealed with
-- the hub's keyring (context `source-credential:<tenant>:<name>`). `keys`
-- is what may be shown: each variable's name and, for identifiers and
-- tokens, their last four characters. The hub writes a credential as the
-- Secret `modelfleet-source-<name>` in the tenant's namespace of every
-- cluster it places a deployment naming it in; `deployments.source_credential`
-- says which deployments do.
-- Kept in step with ../sqlite/0014_source_credentials.sql.
CREATE TABLE source_credentials (
    id         UUID NOT NULL UNIQUE,
    tenant_id  UUID NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    keys       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

ALTER TABLE deployments ADD COLUMN source_credential TEXT;
-- Where each started pod's weights came from (the ModelDeployment's
-- status.weights as cluster sync last saw it: JSON, [{pod, from, bytes}]).
ALTER TABLE deployments ADD COLUMN weights TEXT;
CREATE INDEX deployments_source_credential ON deployments (tenant_id, source_credential)
    WHERE source_credential IS NOT NULL;
