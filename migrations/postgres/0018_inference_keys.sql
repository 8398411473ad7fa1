-- An API key may be limited to inference: it calls the tenant's models
-- through the gateway (`/v1/…`) and nothing else — no `/api/v1` at all,
-- whatever its role. Kept in step with ../sqlite/0018_inference_keys.sql.
ALTER TABLE api_keys ADD COLUMN inference_only BOOLEAN NOT NULL DEFAULT FALSE;
