-- The price catalog. Kept in step with ../postgres/0006_prices.sql, which
-- explains it. Rows are append-only.
CREATE TABLE prices (
    id                     TEXT    PRIMARY KEY,
    cloud                  TEXT    NOT NULL,
    region                 TEXT    NOT NULL,
    accelerator            TEXT    NOT NULL,
    capacity               TEXT    NOT NULL CHECK (capacity IN ('on-demand', 'spot')),
    currency               TEXT    NOT NULL CHECK (currency IN ('USD', 'CNY')),
    micros_per_device_hour INTEGER NOT NULL CHECK (micros_per_device_hour >= 0),
    effective_from         TEXT    NOT NULL,
    source                 TEXT    NOT NULL CHECK (source IN ('default', 'admin')),
    created_at             TEXT    NOT NULL,
    UNIQUE (cloud, region, accelerator, capacity, effective_from)
) STRICT;

CREATE TRIGGER prices_no_update BEFORE UPDATE ON prices
BEGIN
    SELECT RAISE(ABORT, 'prices are append-only: set a new price with a later effective time');
END;
CREATE TRIGGER prices_no_delete BEFORE DELETE ON prices
BEGIN
    SELECT RAISE(ABORT, 'prices are append-only: set a new price with a later effective time');
END;
