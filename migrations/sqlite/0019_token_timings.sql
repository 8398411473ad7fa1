-- How long each metered request took, for the console's traffic figures:
-- `first_token_ms` from arrival to the first event carrying choices (streamed
-- answers only), `duration_ms` from arrival to the answer's end. Rows written
-- before this migration have neither. The index serves one deployment's
-- recent rows. Kept in step with ../postgres/0019_token_timings.sql.
ALTER TABLE token_usage ADD COLUMN first_token_ms INTEGER CHECK (first_token_ms >= 0);
ALTER TABLE token_usage ADD COLUMN duration_ms INTEGER CHECK (duration_ms >= 0);
CREATE INDEX token_usage_deployment_at ON token_usage (deployment_id, at);
