-- The secret that signs an input screen's classifier posts, sealed by the
-- hub's keyring (like budget webhooks' secrets). A screen set before this
-- migration keeps its classifier unsigned (NULL) until it is set again.
-- Kept in step with ../postgres/0020_classifier_secret.sql, which says more.
ALTER TABLE input_screens ADD COLUMN classifier_secret BLOB
    CHECK (classifier_secret IS NULL OR classifier_url IS NOT NULL);
