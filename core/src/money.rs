//! Exact money: an integer count of micro-units (10⁻⁶) of a currency.
//!
//! Prices per device-hour, plan costs and budgets are all `Money`. There is
//! no floating point anywhere on this path: amounts are parsed from decimal
//! text digit by digit, multiplied as integers, and compared only within one
//! currency (or through an explicit [`ExchangeRates`] table for ranking).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Micro-units per whole unit of a currency.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// The currencies prices are set in. Clouds in China bill in CNY, AWS in USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Currency {
    #[serde(rename = "USD")]
    Usd,
    #[serde(rename = "CNY")]
    Cny,
}

impl Currency {
    pub const ALL: [Currency; 2] = [Currency::Usd, Currency::Cny];

    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Cny => "CNY",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| MoneyError::UnknownCurrency(s.trim().to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency {0:?}; use USD or CNY")]
    UnknownCurrency(String),
    #[error("{0:?} is not an amount of money; write it like \"6.88 USD\"")]
    Malformed(String),
    #[error("{0:?} has more than 6 decimal places; money is kept to the micro-unit")]
    TooPrecise(String),
    #[error("{0:?} is too large")]
    Overflow(String),
    #[error("{0:?} is negative; prices and budgets cannot be negative")]
    Negative(String),
}

/// An exact amount of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    micros: i64,
    currency: Currency,
}

impl Money {
    pub const fn from_micros(micros: i64, currency: Currency) -> Self {
        Money { micros, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money::from_micros(0, currency)
    }

    pub fn micros(self) -> i64 {
        self.micros
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    /// Parses a decimal amount such as `"6.88"` in the given currency.
    pub fn parse_amount(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        parse_micros(text).map(|micros| Money { micros, currency })
    }

    /// `self × n`, or `None` on overflow.
    pub fn checked_mul(self, n: u64) -> Option<Money> {
        let n = i64::try_from(n).ok()?;
        self.micros
            .checked_mul(n)
            .map(|micros| Money { micros, ..self })
    }

    /// `self + other`; `None` if the currencies differ or the sum overflows.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        self.micros
            .checked_add(other.micros)
            .map(|micros| Money { micros, ..self })
    }

    /// The amount as decimal text, with at least two decimals and no
    /// trailing zeros beyond them: `6.88`, `55.04`, `0.123456`.
    pub fn amount_string(self) -> String {
        let sign = if self.micros < 0 { "-" } else { "" };
        let abs = self.micros.unsigned_abs();
        let whole = abs / MICROS_PER_UNIT as u64;
        let frac = format!("{:06}", abs % MICROS_PER_UNIT as u64);
        let trimmed = frac.trim_end_matches('0');
        let frac = if trimmed.len() < 2 {
            &frac[..2]
        } else {
            trimmed
        };
        format!("{sign}{whole}.{frac}")
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_string(), self.currency)
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// `"6.88 USD"` or `"USD 6.88"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split_whitespace();
        let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(MoneyError::Malformed(s.to_owned()));
        };
        if let Ok(currency) = b.parse::<Currency>() {
            Money::parse_amount(a, currency)
        } else if let Ok(currency) = a.parse::<Currency>() {
            Money::parse_amount(b, currency)
        } else {
            Err(MoneyError::UnknownCurrency(b.to_owned()))
        }
    }
}

/// Parses non-negative decimal text into micro-units without floating point.
fn parse_micros(text: &str) -> Result<i64, MoneyError> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(MoneyError::Negative(text.to_owned()));
    }
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) {
        return Err(MoneyError::Malformed(text.to_owned()));
    }
    if frac.len() > 6 {
        return Err(MoneyError::TooPrecise(text.to_owned()));
    }
    let overflow = || MoneyError::Overflow(text.to_owned());
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let frac_micros: i64 = format!("{frac:0<6}").parse().map_err(|_| overflow())?;
    whole
        .checked_mul(MICROS_PER_UNIT)
        .and_then(|w| w.checked_add(frac_micros))
        .ok_or_else(overflow)
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr {
            amount: String,
            currency: Currency,
        }
        Repr {
            amount: self.amount_string(),
            currency: self.currency,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Accepts `"6.88 USD"` or `{amount: "6.88", currency: USD}`. A bare YAML
    /// or JSON number is refused: it has no currency, and a float cannot be
    /// trusted to hold a price exactly.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Parts { amount: Amount, currency: Currency },
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Amount {
            Text(String),
            Int(u64),
        }
        let repr = Repr::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected money as \"6.88 USD\" or {amount: \"6.88\", currency: USD}",
            )
        })?;
        match repr {
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::Parts {
                amount: Amount::Text(a),
                currency,
            } => Money::parse_amount(&a, currency).map_err(serde::de::Error::custom),
            Repr::Parts {
                amount: Amount::Int(n),
                currency,
            } => i64::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(MICROS_PER_UNIT))
                .map(|micros| Money { micros, currency })
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is too large"))),
        }
    }
}

/// What one unit of each currency is worth in a reference currency, used only
/// to rank plans priced in different currencies against each other. Billing
/// never converts: invoices are per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeRates {
    /// The currency that costs are compared in.
    pub reference: Option<Currency>,
    /// Value of one unit of the key currency in the reference currency,
    /// as decimal text (`CNY: "0.14"`).
    #[serde(default)]
    pub rates: BTreeMap<Currency, Rate>,
}

/// A non-negative exchange rate kept to six decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(i64);

impl Rate {
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        parse_micros(text).map(Rate)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&Money::from_micros(self.0, Currency::Usd).amount_string())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("write an exchange rate as text, e.g. \"0.14\"")
        })?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl ExchangeRates {
    /// `money` in micro-units of the reference currency, or `None` when no
    /// rate says how to compare it. Rounds toward zero at the micro-unit,
    /// which is fine for ranking and never used for billing.
    pub fn comparable_micros(&self, money: Money) -> Option<i128> {
        let reference = self.reference?;
        if money.currency == reference {
            return Some(i128::from(money.micros));
        }
        let rate = self.rates.get(&money.currency)?;
        Some(i128::from(money.micros) * i128::from(rate.0) / i128::from(MICROS_PER_UNIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        let m: Money = "6.88 USD".parse().unwrap();
        assert_eq!(m.micros(), 6_880_000);
        assert_eq!(m.to_string(), "6.88 USD");
        let m: Money = "CNY 12.345678".parse().unwrap();
        assert_eq!(m.micros(), 12_345_678);
        assert_eq!(m.to_string(), "12.345678 CNY");
        assert_eq!(
            Money::from_micros(55_040_000, Currency::Usd).amount_string(),
            "55.04"
        );
        assert_eq!(
            Money::from_micros(3_000_000, Currency::Usd).amount_string(),
            "3.00"
        );
        assert_eq!(
            Money::from_micros(100, Currency::Usd).amount_string(),
            "0.0001"
        );
    }

    #[test]
    fn a_tenth_times_three_is_exactly_three_tenths() {
        // In binary floating point 0.1 * 3 != 0.3; here it must be.
        let tenth: Money = "0.1 USD".parse().unwrap();
        assert_eq!(tenth.checked_mul(3).unwrap(), "0.3 USD".parse().unwrap());
    }

    #[test]
    fn refuses_what_is_not_money() {
        assert!(matches!(
            "6.88".parse::<Money>(),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(
            "6.88 EUR".parse::<Money>(),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(matches!(
            "-1 USD".parse::<Money>(),
            Err(MoneyError::Negative(_))
        ));
        assert!(matches!(
            "1.0000001 USD".parse::<Money>(),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            "1e3 USD".parse::<Money>(),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(
            "99999999999999999999 USD".parse::<Money>(),
            Err(MoneyError::Overflow(_))
        ));
        let err = serde_json::from_str::<Money>("6.88")
            .unwrap_err()
            .to_string();
        assert!(err.contains("6.88 USD"), "{err}");
    }

    #[test]
    fn adds_only_within_one_currency() {
        let usd: Money = "1 USD".parse().unwrap();
        let cny: Money = "1 CNY".parse().unwrap();
        assert_eq!(usd.checked_add(usd).unwrap().micros(), 2_000_000);
        assert_eq!(usd.checked_add(cny), None);
    }

    #[test]
    fn serde_round_trip_in_both_forms() {
        let m: Money = serde_json::from_str(r#"{"amount":"7.91","currency":"USD"}"#).unwrap();
        assert_eq!(m, "7.91 USD".parse().unwrap());
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":"7.91","currency":"USD"}"#);
        let m: Money = serde_yaml::from_str("\"40 CNY\"").unwrap();
        assert_eq!(m.micros(), 40_000_000);
    }

    #[test]
    fn compares_across_currencies_only_with_a_rate() {
        let rates: ExchangeRates =
            serde_yaml::from_str("reference: USD\nrates:\n  CNY: \"0.14\"\n").unwrap();
        // 40 CNY × 0.14 = 5.60 USD = 5_600_000 micros.
        let cny: Money = "40 CNY".parse().unwrap();
        assert_eq!(rates.comparable_micros(cny), Some(5_600_000));
        assert_eq!(ExchangeRates::default().comparable_micros(cny), None);
    }
}
