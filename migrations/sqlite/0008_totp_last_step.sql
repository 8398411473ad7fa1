-- Kept in step with ../postgres/0008_totp_last_step.sql.
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
