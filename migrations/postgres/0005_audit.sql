-- The audit trail: one record per request or hub action that changed
-- something (or was refused), chained by SHA-256 (see core/src/audit.rs).
-- Kept in step with ../sqlite/0005_audit.sql.
--
-- Records are append-only at the database level: the triggers below refuse
-- UPDATE, TRUNCATE and DELETE, except DELETE of records a checkpoint
-- covers, which pruning leaves only after those records were exported.

CREATE TABLE audit_records (
    seq         BIGINT      PRIMARY KEY CHECK (seq > 0),
    audit_id    UUID        NOT NULL,
    verb        TEXT        NOT NULL,
    request_uri TEXT,
    username    TEXT        NOT NULL,
    user_uid    TEXT,
    user_groups TEXT        NOT NULL,
    source_ip   TEXT,
    user_agent  TEXT,
    resource    TEXT        NOT NULL,
    -- The tenant's id: the tenant a record belongs to (tenants see only
    -- their own). Part of the hashed event, like every column but `hash`.
    namespace   TEXT,
    name        TEXT,
    object_uid  TEXT,
    code        INTEGER,
    outcome     TEXT        NOT NULL CHECK (outcome IN ('Success', 'Failure')),
    message     TEXT,
    received_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    annotations TEXT        NOT NULL,
    prev_hash   TEXT        NOT NULL,
    hash        TEXT        NOT NULL
);

CREATE INDEX audit_records_time ON audit_records (recorded_at);
CREATE INDEX audit_records_tenant ON audit_records (namespace, recorded_at);
CREATE INDEX audit_records_audit_id ON audit_records (audit_id);

-- The newest record's number and hash: taken with FOR UPDATE by every
-- append, so appends are serialized and the chain has no forks; read by
-- verification, so records cut off the end are noticed.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Each export of a range of records to object storage: what was written
-- where, and the signature of its digest, which the next digest carries.
CREATE TABLE audit_exports (
    id               UUID        PRIMARY KEY,
    location         TEXT        NOT NULL,
    first_seq        BIGINT      NOT NULL,
    last_seq         BIGINT      NOT NULL CHECK (last_seq >= first_seq),
    digest_key       TEXT        NOT NULL,
    digest_signature TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_exports_last ON audit_exports (last_seq);

-- Left by pruning: records up to `through_seq` were exported and removed;
-- the next record's prev_hash must equal `hash`.
CREATE TABLE audit_checkpoints (
    through_seq BIGINT      PRIMARY KEY,
    hash        TEXT        NOT NULL,
    export_id   UUID        NOT NULL REFERENCES audit_exports (id),
    created_at  TIMESTAMPTZ NOT NULL
);

-- The platform's Ed25519 key that signs export digests; the private half
-- sealed with the hub's keyring.
CREATE TABLE audit_keys (
    id          UUID        PRIMARY KEY,
    public_key  TEXT        NOT NULL,
    private_key BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_records'
       AND OLD.seq <= (SELECT COALESCE(MAX(through_seq), 0) FROM audit_checkpoints) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE FUNCTION audit_check_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_exports
                   WHERE id = NEW.export_id AND last_seq >= NEW.through_seq) THEN
        RAISE EXCEPTION 'audit checkpoint through record % is not covered by export %',
            NEW.through_seq, NEW.export_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM audit_records
                   WHERE seq = NEW.through_seq AND hash = NEW.hash) THEN
        RAISE EXCEPTION 'audit checkpoint through record % does not match that record',
            NEW.through_seq USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_exports_append_only BEFORE UPDATE OR DELETE ON audit_exports
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_covered BEFORE INSERT ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_check_checkpoint();
CREATE TRIGGER audit_keys_append_only BEFORE UPDATE OR DELETE ON audit_keys
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
