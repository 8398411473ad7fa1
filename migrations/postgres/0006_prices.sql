-- The price catalog billing rates usage with: what one device-hour costs
-- per cloud, region, accelerator and capacity type, from a time on.
-- Kept in step with ../sqlite/0006_prices.sql.
--
-- Rows are never changed or removed (a trigger refuses it): a new price is
-- a new row with a later effective_from, so every past month can be rated
-- again with the prices that were in force then.
CREATE TABLE prices (
    id                     UUID        PRIMARY KEY,
    cloud                  TEXT        NOT NULL,
    region                 TEXT        NOT NULL,
    accelerator            TEXT        NOT NULL,
    capacity               TEXT        NOT NULL CHECK (capacity IN ('on-demand', 'spot')),
    currency               TEXT        NOT NULL CHECK (currency IN ('USD', 'CNY')),
    micros_per_device_hour BIGINT      NOT NULL CHECK (micros_per_device_hour >= 0),
    effective_from         TIMESTAMPTZ NOT NULL,
    -- 'default': seeded from list prices or the fleet file, unchecked
    -- against any contract; 'admin': set by a platform admin.
    source                 TEXT        NOT NULL CHECK (source IN ('default', 'admin')),
    created_at             TIMESTAMPTZ NOT NULL,
    UNIQUE (cloud, region, accelerator, capacity, effective_from)
);

CREATE FUNCTION prices_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'prices are append-only: set a new price with a later effective time'
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER prices_append_only BEFORE UPDATE OR DELETE ON prices
    FOR EACH ROW EXECUTE FUNCTION prices_refuse_change();
