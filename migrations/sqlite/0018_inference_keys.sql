-- An API key may be limited to inference: it calls the tenant's models
-- through the gateway (`/v1/…`) and nothing else — no `/api/v1` at all,
-- whatever its role. Kept in step with ../postgres/0018_inference_keys.sql.
ALTER TABLE api_keys ADD COLUMN inference_only INTEGER NOT NULL DEFAULT 0
    CHECK (inference_only IN (0, 1));
