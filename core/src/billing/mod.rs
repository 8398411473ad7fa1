//! Billing, the pure part: prices, discounts, rating usage into invoices,
//! and the FOCUS and CSV exports. The hub stores prices, intervals and
//! invoices and serves them; everything that decides an amount is here, so
//! it can be tested to the cent with plain values.
//!
//! # The rules
//!
//! **Quantity.** A tenant pays for the devices a replica held while it held
//! them (OpenCost's "requested" quantity): `devices × seconds` per
//! [`UsageInterval`], at the per-device-hour price of its cloud, region,
//! accelerator and capacity.
//!
//! **60-second minimum.** A *closed* interval shorter than 60 seconds is
//! billed 60 seconds, as AWS bills an instance. The seconds short of 60 (the
//! top-up) are added to the interval's first piece — the one that begins at
//! its `start` — at the price in force at `start`, in the month that
//! contains `start`. Splitting at month boundaries or price changes never
//! adds a second minimum: the minimum belongs to the interval, not to its
//! pieces, so the pieces of one interval always add up to exactly
//! `devices × max(end − start, 60)` device-seconds. An *open* interval is
//! rated up to `now` with its actual seconds and no minimum; the minimum
//! applies once it closes (a draft invoice can therefore grow by at most
//! the top-up when an interval younger than a minute closes).
//!
//! **Pieces.** An interval is clipped to the billing month (months are UTC
//! calendar months, `[first second, first second of the next month)`) and
//! split wherever a new price takes effect, so each piece is rated at the
//! price in force during it.
//!
//! **Exactness and rounding.** Every piece's charge is kept as an exact
//! integer, `devices × seconds × micro-units per device-hour`, i.e. in units
//! of 1/3600 of a micro-unit ([`ExactAmount`]); no floating point is used
//! anywhere. The exact charges of all pieces of one invoice line are summed
//! and the sum is rounded **once**, half up, to the currency's minor unit
//! (the cent for USD, the fen for CNY). The discount of a line is its exact
//! list charge times the basis points, rounded once the same way, and the
//! line amount is `list − discount`, so `list = discount + amount` holds on
//! every line and the invoice total is the exact sum of its lines.
//!
//! **Tokens.** A tenant on token pricing pays for the tokens its
//! deployments answered instead of their devices' time, deployment by
//! deployment: a deployment whose model has a token price is billed by its
//! metered tokens from the hour that model's first token price took effect
//! (its device time from then on is not billed); before that, and for
//! models without a token price, by device time as above. Input and output
//! tokens are separate lines, each per deployment, model and price in
//! force: `tokens × price per million`, kept exactly in millionths of a
//! micro-unit ([`TokenAmount`]), summed over the line's hours and rounded
//! once, half up, to the minor unit. Token prices take effect on whole
//! hours (tokens are summed by the hour), so an hour's tokens always have
//! one price. The tenant's discount for all clouds applies (a token is
//! priced per model, wherever it was served; a cloud's own discount is for
//! that cloud's devices). The tenant's pricing model in force when a month
//! is rated applies to the whole month, as its discounts do.
//!
//! **Invoices.** One invoice per tenant, month and currency (prices are
//! never converted between currencies). It is a draft while the month has
//! not ended at `now`, and final afterwards.

mod catalog;
mod discount;
mod export;
mod invoice;
mod rating;
mod time;
mod tokens;

pub use catalog::{Capacity, Price, PriceCatalog, PriceKey, PriceSource};
pub use discount::{Discount, DiscountScope, Discounts, FULL_BASIS_POINTS};
pub use export::{
    FOCUS_COLUMNS, FocusRow, INVOICE_COLUMNS, USAGE_COLUMNS, UsageRow, focus_csv, focus_rows,
    invoice_csv, usage_csv, usage_rows, write_focus_csv, write_invoice_csv, write_usage_csv,
};
pub use invoice::{
    Adjustment, ChargeCategory, Invoice, InvoiceBuilder, InvoiceLine, InvoiceStatus, LineUsage,
    TokenLineUsage, build_invoices,
};
pub use rating::{
    ExactAmount, MINIMUM_BILLED_SECONDS, RatedPiece, UsageInterval, format_device_hours,
    minor_unit_micros, minor_unit_string, rate_interval,
};
pub use time::{BillingPeriod, UnixSeconds};
pub use tokens::{
    TOKENS_PER_PRICE_UNIT, TokenAmount, TokenDirection, TokenPrice, TokenPriceCatalog, TokenUsage,
    format_million_tokens,
};

use crate::money::Money;

/// Everything billing refuses, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("{year:04}-{month:02} is not a billing period; months are 1–12 of years 1970–9999")]
    InvalidPeriod { year: i32, month: u8 },
    #[error("{0:?} is not a billing period; write it like 2026-11")]
    InvalidPeriodText(String),
    #[error("{0:?} is not a UTC date and time; write it like 2026-11-01T00:00:00Z")]
    InvalidDateTime(String),
    #[error("the price for {key} cannot be negative ({price})")]
    NegativePrice { key: String, price: Money },
    #[error(
        "{key} already has a price effective from {effective_from}; \
         to change it, add a price with a later effective time"
    )]
    DuplicatePrice {
        key: String,
        effective_from: UnixSeconds,
    },
    #[error("fleet pools disagree on a price:\n  - {}", .0.join("\n  - "))]
    ConflictingFleetPrices(Vec<String>),
    #[error(
        "the discount for {scope} is {basis_points} basis points; \
         it must be between 0 and 10000 (0 % to 100 %)"
    )]
    DiscountOutOfRange { scope: String, basis_points: u32 },
    #[error("there are two discounts for {0}; keep one")]
    DuplicateDiscount(String),
    #[error("usage of deployment {deployment} ends at {end}, before it starts at {start}")]
    IntervalEndsBeforeStart {
        deployment: String,
        start: UnixSeconds,
        end: UnixSeconds,
    },
    #[error(
        "usage of deployment {deployment} belongs to tenant {found}, \
         not to {expected} whose invoice is being built"
    )]
    WrongTenant {
        deployment: String,
        expected: String,
        found: String,
    },
    #[error(
        "no price for {key} at {at} (usage of deployment {deployment}); \
         set a price effective at or before that time"
    )]
    Unpriced {
        deployment: String,
        key: String,
        at: UnixSeconds,
    },
    #[error("adjustment {description:?} needs a description")]
    EmptyAdjustmentDescription { description: String },
    #[error(
        "adjustment {description:?} of {amount} is not a whole number of cents or fen; \
         invoices are kept to the currency's minor unit"
    )]
    AdjustmentNotInMinorUnits { description: String, amount: Money },
    #[error("adjustment {description:?} is zero; leave it out")]
    ZeroAdjustment { description: String },
    #[error(
        "the token price of {model} is in {input} for input and {output} for output; \
         give both in one currency"
    )]
    TokenPriceCurrencies {
        model: String,
        input: crate::money::Currency,
        output: crate::money::Currency,
    },
    #[error(
        "the token price of {model} would take effect at {effective_from}, which is not a whole \
         hour; tokens are summed by the hour, so prices take effect on the hour (e.g. 2026-12-01T13:00:00Z)"
    )]
    TokenPriceOffHour {
        model: String,
        effective_from: UnixSeconds,
    },
    #[error(
        "tokens of deployment {deployment} belong to tenant {found}, \
         not to {expected} whose invoice is being built"
    )]
    WrongTenantTokens {
        deployment: String,
        expected: String,
        found: String,
    },
    #[error("the amounts overflowed while rating {0}; the usage or prices are implausibly large")]
    Overflow(String),
}
