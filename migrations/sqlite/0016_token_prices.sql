-- Token prices and tenants' pricing models (issue 20, metering and
-- billing). Kept in step with ../postgres/0016_token_prices.sql.
--
-- What a million input and a million output tokens of a catalog model
-- cost, from a whole hour on (tokens are summed by the hour). Like device
-- prices, rows are never changed or removed (a trigger refuses it): a new
-- price is a new row with a later effective_from.
CREATE TABLE token_prices (
    id                        TEXT    PRIMARY KEY,
    model                     TEXT    NOT NULL,
    currency                  TEXT    NOT NULL CHECK (currency IN ('USD', 'CNY')),
    micros_per_million_input  INTEGER NOT NULL CHECK (micros_per_million_input >= 0),
    micros_per_million_output INTEGER NOT NULL CHECK (micros_per_million_output >= 0),
    effective_from            TEXT    NOT NULL,
    created_at                TEXT    NOT NULL,
    UNIQUE (model, effective_from)
) STRICT;

CREATE TRIGGER token_prices_no_update BEFORE UPDATE ON token_prices
BEGIN
    SELECT RAISE(ABORT, 'token prices are append-only: set a new price with a later effective time');
END;
CREATE TRIGGER token_prices_no_delete BEFORE DELETE ON token_prices
BEGIN
    SELECT RAISE(ABORT, 'token prices are append-only: set a new price with a later effective time');
END;

-- How a tenant is billed: 'time' (device-hours; a tenant without a row)
-- or 'tokens' (deployments of models with a token price billed by their
-- tokens). The model in force when a month is rated applies to the month.
CREATE TABLE tenant_pricing (
    tenant_id     TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id),
    pricing_model TEXT NOT NULL CHECK (pricing_model IN ('time', 'tokens')),
    updated_at    TEXT NOT NULL
) STRICT;
