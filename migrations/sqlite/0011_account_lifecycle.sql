-- Kept in step with ../postgres/0011_account_lifecycle.sql.
ALTER TABLE users ADD COLUMN disabled_at TEXT;
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN second_factor_roles TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_expires ON sessions (expires_at);
