-- A tenant's input screen for the inference gateway (issue 20, part 7):
-- the largest prompt, in bytes of its text; deny patterns (a JSON array of
-- regular expressions, checked and bounded by the hub before they are
-- stored); an optional classifier the prompt text is posted to, and
-- whether an unanswered classifier lets the request through; whether the
-- audit record of a refusal holds the prompt text. No row: no screen.
-- Kept in step with ../sqlite/0017_input_screens.sql.
CREATE TABLE input_screens (
    tenant_id            UUID        PRIMARY KEY REFERENCES tenants (id),
    max_prompt_bytes     BIGINT      CHECK (max_prompt_bytes > 0),
    deny_patterns        TEXT        NOT NULL,
    classifier_url       TEXT,
    classifier_fail_open BOOLEAN     NOT NULL,
    store_prompts        BOOLEAN     NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
