-- The secret that signs the posts of an input screen's classifier
-- (`Modelfleet-Signature`, as budget webhooks), sealed by the hub's keyring
-- with the context `input-screen-classifier:<tenant id>`. The hub requires
-- one with every classifier URL it is given from now on; a screen set
-- before this migration has a URL and no secret, and its classifier is
-- posted to unsigned (the API shows `classifierSigned: false`) until the
-- screen is set again. A secret without a URL signs nothing.
-- Kept in step with ../sqlite/0020_classifier_secret.sql.
ALTER TABLE input_screens ADD COLUMN classifier_secret BYTEA
    CHECK (classifier_secret IS NULL OR classifier_url IS NOT NULL);
