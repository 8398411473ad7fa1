//! Token prices and token charges: what a million input and a million
//! output tokens of a model cost, and since when, for tenants billed by
//! their calls rather than by their devices' time.
//!
//! Like device prices, token prices only go forward: a new price is a new
//! entry with its own `effective_from`. They take effect on whole UTC
//! hours, because metered tokens are summed by the hour: every hour of
//! usage then has exactly one price in force, and no hour's tokens need to
//! be split between two prices.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::BillingError;
use super::discount::FULL_BASIS_POINTS;
use super::rating::{div_round_half_up, minor_unit_micros};
use super::time::UnixSeconds;
use crate::money::{Currency, Money};

/// Token prices are per this many tokens.
pub const TOKENS_PER_PRICE_UNIT: u64 = 1_000_000;

const SECONDS_PER_HOUR: i64 = 3600;

/// Whether tokens went into the model or came out of it: they are priced
/// apart and billed on lines of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDirection {
    Input,
    Output,
}

impl TokenDirection {
    pub fn name(self) -> &'static str {
        match self {
            TokenDirection::Input => "input",
            TokenDirection::Output => "output",
        }
    }
}

impl fmt::Display for TokenDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model's token price, in force from `effective_from` until the model's
/// next price takes over. Both prices are in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPrice {
    /// The catalog model id (`llama-3.1-8b`).
    pub model: String,
    pub per_million_input: Money,
    pub per_million_output: Money,
    /// A whole UTC hour.
    pub effective_from: UnixSeconds,
}

impl TokenPrice {
    pub fn currency(&self) -> Currency {
        self.per_million_input.currency()
    }

    /// The price per million tokens of `direction`.
    pub fn per_million(&self, direction: TokenDirection) -> Money {
        match direction {
            TokenDirection::Input => self.per_million_input,
            TokenDirection::Output => self.per_million_output,
        }
    }

    /// Refuses negative prices, two currencies, and a time that is not a
    /// whole hour.
    pub fn validate(&self) -> Result<(), BillingError> {
        let key = format!("model {} tokens", self.model);
        for price in [self.per_million_input, self.per_million_output] {
            if price.micros() < 0 {
                return Err(BillingError::NegativePrice { key, price });
            }
        }
        if self.per_million_input.currency() != self.per_million_output.currency() {
            return Err(BillingError::TokenPriceCurrencies {
                model: self.model.clone(),
                input: self.per_million_input.currency(),
                output: self.per_million_output.currency(),
            });
        }
        if self.effective_from.0.rem_euclid(SECONDS_PER_HOUR) != 0 {
            return Err(BillingError::TokenPriceOffHour {
                model: self.model.clone(),
                effective_from: self.effective_from,
            });
        }
        Ok(())
    }
}

/// Every token price ever set, sorted by model and then by time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenPriceCatalog {
    prices: Vec<TokenPrice>,
}

impl TokenPriceCatalog {
    pub fn new() -> Self {
        TokenPriceCatalog::default()
    }

    /// Adds a price; refuses what [`TokenPrice::validate`] refuses and a
    /// second price for the same model and hour.
    pub fn insert(&mut self, price: TokenPrice) -> Result<(), BillingError> {
        price.validate()?;
        let at = self.prices.partition_point(|p| {
            (p.model.as_str(), p.effective_from) < (price.model.as_str(), price.effective_from)
        });
        if let Some(existing) = self.prices.get(at)
            && existing.model == price.model
            && existing.effective_from == price.effective_from
        {
            return Err(BillingError::DuplicatePrice {
                key: format!("model {} tokens", price.model),
                effective_from: price.effective_from,
            });
        }
        self.prices.insert(at, price);
        Ok(())
    }

    /// Every price of `model`, oldest first.
    pub fn history(&self, model: &str) -> &[TokenPrice] {
        let cmp = |p: &TokenPrice| p.model.as_str().cmp(model);
        let first = self.prices.partition_point(|p| cmp(p) == Ordering::Less);
        let len = self.prices[first..].partition_point(|p| cmp(p) == Ordering::Equal);
        &self.prices[first..first + len]
    }

    /// The price of `model` in force at `at`.
    pub fn price_at(&self, model: &str, at: UnixSeconds) -> Option<&TokenPrice> {
        let history = self.history(model);
        let after = history.partition_point(|p| p.effective_from <= at);
        after.checked_sub(1).map(|i| &history[i])
    }

    /// When `model` first had a token price: from then on a deployment of
    /// it is billed by tokens for a tenant on token pricing (prices are
    /// never removed, so one is in force ever after).
    pub fn priced_from(&self, model: &str) -> Option<UnixSeconds> {
        self.history(model).first().map(|p| p.effective_from)
    }

    /// All prices, by model and then oldest first.
    pub fn prices(&self) -> &[TokenPrice] {
        &self.prices
    }
}

/// One deployment's metered tokens of one model in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Deployment id.
    pub deployment: String,
    pub deployment_name: String,
    pub tenant: String,
    pub model: String,
    /// The whole hour the tokens were metered in.
    pub hour: UnixSeconds,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl TokenUsage {
    pub fn tokens(&self, direction: TokenDirection) -> u64 {
        match direction {
            TokenDirection::Input => self.input_tokens,
            TokenDirection::Output => self.output_tokens,
        }
    }
}

/// A token charge kept exactly, in millionths of a micro-unit: `tokens ×
/// micro-units per million tokens`, before dividing by the million. Only
/// [`TokenAmount::round`] turns one into money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct TokenAmount(pub i128);

impl TokenAmount {
    /// `tokens × per_million`, exactly.
    pub fn of(tokens: u64, per_million: Money) -> Option<TokenAmount> {
        i128::from(tokens)
            .checked_mul(i128::from(per_million.micros()))
            .map(TokenAmount)
    }

    pub fn checked_add(self, other: TokenAmount) -> Option<TokenAmount> {
        self.0.checked_add(other.0).map(TokenAmount)
    }

    /// The amount rounded half up to the currency's minor unit.
    pub fn round(self, currency: Currency) -> Option<Money> {
        self.round_over(1, currency)
    }

    /// `basis_points / 10 000` of the amount, rounded half up to the minor
    /// unit: the discount on a line.
    pub fn round_share(self, basis_points: u32, currency: Currency) -> Option<Money> {
        TokenAmount(self.0.checked_mul(i128::from(basis_points))?)
            .round_over(i128::from(FULL_BASIS_POINTS), currency)
    }

    fn round_over(self, extra: i128, currency: Currency) -> Option<Money> {
        let unit = i128::from(minor_unit_micros(currency));
        let denominator = i128::from(TOKENS_PER_PRICE_UNIT)
            .checked_mul(unit)?
            .checked_mul(extra)?;
        let minor = div_round_half_up(self.0, denominator)?;
        i64::try_from(minor.checked_mul(unit)?)
            .ok()
            .map(|micros| Money::from_micros(micros, currency))
    }
}

/// Tokens in millions with six decimals, exactly (`1234567` →
/// `1.234567`): the pricing quantity of a token line.
pub fn format_million_tokens(tokens: u64) -> String {
    format!(
        "{}.{:06}",
        tokens / TOKENS_PER_PRICE_UNIT,
        tokens % TOKENS_PER_PRICE_UNIT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Money {
        Money::parse_amount(text, Currency::Usd).unwrap()
    }

    fn price(model: &str, from: i64, input: &str, output: &str) -> TokenPrice {
        TokenPrice {
            model: model.to_owned(),
            per_million_input: usd(input),
            per_million_output: usd(output),
            effective_from: UnixSeconds(from),
        }
    }

    #[test]
    fn the_price_in_force_is_the_latest_not_after_the_hour() {
        let mut catalog = TokenPriceCatalog::new();
        catalog.insert(price("m", 7200, "0.50", "1.50")).unwrap();
        catalog.insert(price("m", 3600, "0.60", "1.80")).unwrap();
        catalog.insert(price("other", 0, "9", "9")).unwrap();
        let input = |t| {
            catalog
                .price_at("m", UnixSeconds(t))
                .map(|p| p.per_million_input.to_string())
        };
        assert_eq!(input(3599), None);
        assert_eq!(input(3600).as_deref(), Some("0.60 USD"));
        assert_eq!(input(7199).as_deref(), Some("0.60 USD"));
        assert_eq!(input(7200).as_deref(), Some("0.50 USD"));
        assert_eq!(catalog.priced_from("m"), Some(UnixSeconds(3600)));
        assert_eq!(catalog.priced_from("nothing"), None);
        assert_eq!(catalog.history("m").len(), 2);
    }

    #[test]
    fn refuses_off_hour_negative_mixed_and_duplicate_prices() {
        let mut catalog = TokenPriceCatalog::new();
        let err = catalog
            .insert(price("m", 3601, "1", "1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("whole hour"), "{err}");
        let mut negative = price("m", 0, "1", "1");
        negative.per_million_input = Money::from_micros(-10_000, Currency::Usd);
        let err = catalog.insert(negative).unwrap_err().to_string();
        assert!(err.contains("negative"), "{err}");
        let mut mixed = price("m", 0, "1", "1");
        mixed.per_million_output = Money::parse_amount("7", Currency::Cny).unwrap();
        let err = catalog.insert(mixed).unwrap_err().to_string();
        assert!(err.contains("USD") && err.contains("CNY"), "{err}");
        catalog.insert(price("m", 0, "1", "1")).unwrap();
        let err = catalog
            .insert(price("m", 0, "2", "2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("already has a price"), "{err}");
        assert_eq!(catalog.prices().len(), 1);
    }

    #[test]
    fn token_amounts_round_half_up_once() {
        // 10 000 tokens at 0.50 USD per million = 0.005 USD exactly → 0.01.
        let half_cent = TokenAmount::of(10_000, usd("0.50")).unwrap();
        assert_eq!(half_cent.round(Currency::Usd).unwrap(), usd("0.01"));
        let just_below = TokenAmount::of(9_999, usd("0.50")).unwrap();
        assert_eq!(just_below.round(Currency::Usd).unwrap(), usd("0.00"));
        // 1 234 567 tokens at 0.15 USD = 0.18518505 → 0.19; 10 % of it
        // is 0.018518505 → 0.02.
        let amount = TokenAmount::of(1_234_567, usd("0.15")).unwrap();
        assert_eq!(amount.round(Currency::Usd).unwrap(), usd("0.19"));
        assert_eq!(
            amount.round_share(1000, Currency::Usd).unwrap(),
            usd("0.02")
        );
        assert_eq!(format_million_tokens(1_234_567), "1.234567");
        assert_eq!(format_million_tokens(42), "0.000042");
    }
}
