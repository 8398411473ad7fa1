-- The step of the last TOTP code accepted, so a code works once. Kept in
-- step with ../sqlite/0008_totp_last_step.sql.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
