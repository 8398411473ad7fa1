-- The audit trail, chained by SHA-256 (see core/src/audit.rs).
-- Kept in step with ../postgres/0005_audit.sql, which explains each table.
--
-- Records are append-only at the database level: the triggers below refuse
-- UPDATE and DELETE, except DELETE of records a checkpoint covers, which
-- pruning leaves only after those records were exported.

CREATE TABLE audit_records (
    seq         INTEGER PRIMARY KEY CHECK (seq > 0),
    audit_id    TEXT    NOT NULL,
    verb        TEXT    NOT NULL,
    request_uri TEXT,
    username    TEXT    NOT NULL,
    user_uid    TEXT,
    user_groups TEXT    NOT NULL,
    source_ip   TEXT,
    user_agent  TEXT,
    resource    TEXT    NOT NULL,
    namespace   TEXT,
    name        TEXT,
    object_uid  TEXT,
    code        INTEGER,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('Success', 'Failure')),
    message     TEXT,
    received_at TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    annotations TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_records_time ON audit_records (recorded_at);
CREATE INDEX audit_records_tenant ON audit_records (namespace, recorded_at);
CREATE INDEX audit_records_audit_id ON audit_records (audit_id);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_exports (
    id               TEXT    PRIMARY KEY,
    location         TEXT    NOT NULL,
    first_seq        INTEGER NOT NULL,
    last_seq         INTEGER NOT NULL CHECK (last_seq >= first_seq),
    digest_key       TEXT    NOT NULL,
    digest_signature TEXT    NOT NULL,
    created_at       TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_exports_last ON audit_exports (last_seq);

CREATE TABLE audit_checkpoints (
    through_seq INTEGER PRIMARY KEY,
    hash        TEXT    NOT NULL,
    export_id   TEXT    NOT NULL REFERENCES audit_exports (id),
    created_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE audit_keys (
    id          TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    private_key BLOB NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audit_records refused');
END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
WHEN OLD.seq > (SELECT COALESCE(MAX(through_seq), 0) FROM audit_checkpoints)
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audit_records refused');
END;
CREATE TRIGGER audit_exports_no_update BEFORE UPDATE ON audit_exports
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audit_exports refused');
END;
CREATE TRIGGER audit_exports_no_delete BEFORE DELETE ON audit_exports
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audit_exports refused');
END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audit_checkpoints refused');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audit_checkpoints refused');
END;
CREATE TRIGGER audit_checkpoints_covered BEFORE INSERT ON audit_checkpoints
WHEN NOT EXISTS (SELECT 1 FROM audit_exports
                 WHERE id = NEW.export_id AND last_seq >= NEW.through_seq)
  OR NOT EXISTS (SELECT 1 FROM audit_records
                 WHERE seq = NEW.through_seq AND hash = NEW.hash)
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoint is not covered by an export of that record');
END;
CREATE TRIGGER audit_keys_no_update BEFORE UPDATE ON audit_keys
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audit_keys refused');
END;
CREATE TRIGGER audit_keys_no_delete BEFORE DELETE ON audit_keys
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audit_keys refused');
END;
