-- A tenant's input screen for the inference gateway (issue 20, part 7).
-- Kept in step with ../postgres/0017_input_screens.sql, which says more.
CREATE TABLE input_screens (
    tenant_id            TEXT    PRIMARY KEY REFERENCES tenants (id),
    max_prompt_bytes     INTEGER CHECK (max_prompt_bytes > 0),
    deny_patterns        TEXT    NOT NULL,
    classifier_url       TEXT,
    classifier_fail_open INTEGER NOT NULL CHECK (classifier_fail_open IN (0, 1)),
    store_prompts        INTEGER NOT NULL CHECK (store_prompts IN (0, 1)),
    updated_at           TEXT    NOT NULL
) STRICT;
