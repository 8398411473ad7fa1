-- Token prices and tenants' pricing models (issue 20, metering and
-- billing). Kept in step with ../sqlite/0016_token_prices.sql.
--
-- What a million input and a million output tokens of a catalog model
-- cost, from a whole hour on (tokens are summed by the hour). Like device
-- prices, rows are never changed or removed (a trigger refuses it): a new
-- price is a new row with a later effective_from.
CREATE TABLE token_prices (
    id                       UUID        PRIMARY KEY,
    model                    TEXT        NOT NULL,
    currency                 TEXT        NOT NULL CHECK (currency IN ('USD', 'CNY')),
    micros_per_million_input  BIGINT     NOT NULL CHECK (micros_per_million_input >= 0),
    micros_per_million_output BIGINT     NOT NULL CHECK (micros_per_million_output >= 0),
    effective_from           TIMESTAMPTZ NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL,
    UNIQUE (model, effective_from)
);

CREATE FUNCTION token_prices_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'token prices are append-only: set a new price with a later effective time'
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER token_prices_append_only BEFORE UPDATE OR DELETE ON token_prices
    FOR EACH ROW EXECUTE FUNCTION token_prices_refuse_change();

-- How a tenant is billed: 'time' (device-hours; a tenant without a row)
-- or 'tokens' (deployments of models with a token price billed by their
-- tokens). The model in force when a month is rated applies to the month.
CREATE TABLE tenant_pricing (
    tenant_id     UUID        PRIMARY KEY REFERENCES tenants (id),
    pricing_model TEXT        NOT NULL CHECK (pricing_model IN ('time', 'tokens')),
    updated_at    TIMESTAMPTZ NOT NULL
);
