-- The account lifecycle (issue 16, finding 5): a user can be disabled
-- (sign-in and sessions refused, the row kept) and made to choose a new
-- password at their next sign-in (the first-start platform admin, and
-- anyone whose password an admin reset); a tenant can ask a second factor
-- of some of its roles, beyond the platform's --second-factor-roles.
-- Kept in step with ../sqlite/0011_account_lifecycle.sql.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
-- Role names, comma-separated ('' for none): 'tenant-admin,developer'.
ALTER TABLE tenants ADD COLUMN second_factor_roles TEXT NOT NULL DEFAULT '';
-- Purging ended sessions looks them up by expiry.
CREATE INDEX sessions_expires ON sessions (expires_at);
