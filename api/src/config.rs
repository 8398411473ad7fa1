//! The hub API's settings, as a clap struct so that `modelfleet serve
//! --help` and `modelfleet api --help` are the reference; every field can
//! also come from the environment.

use modelfleet_core::money::{Currency, ExchangeRates, MoneyError, Rate};

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_SESSION_MINUTES: u32 = 60;
pub const DEFAULT_IDEMPOTENCY_HOURS: u32 = 24;
pub const DEFAULT_POOL_MAX_AGE_SECONDS: u64 = 10;
pub const DEFAULT_MODEL_SOURCE: &str = "s3://models/{model}";
pub const DEFAULT_FAILOVER_AFTER_SECONDS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ApiSettings {
    /// Largest request body the API accepts, in bytes; larger ones get 413.
    #[arg(long = "api-max-body-bytes", env = "MODELFLEET_API_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// How long a session token from `POST /api/v1/sessions` stays valid, in minutes.
    #[arg(long = "session-minutes", env = "MODELFLEET_SESSION_MINUTES", default_value_t = DEFAULT_SESSION_MINUTES,
          value_parser = clap::value_parser!(u32).range(1..=24 * 60))]
    pub session_minutes: u32,

    /// How long responses are kept for `Idempotency-Key` retries, in hours.
    #[arg(long = "idempotency-hours", env = "MODELFLEET_IDEMPOTENCY_HOURS", default_value_t = DEFAULT_IDEMPOTENCY_HOURS,
          value_parser = clap::value_parser!(u32).range(1..=24 * 30))]
    pub idempotency_hours: u32,

    /// Node pools discovered longer ago than this are listed again from
    /// their cluster before a plan or a deployment, in seconds.
    #[arg(long = "pool-max-age-seconds", env = "MODELFLEET_POOL_MAX_AGE_SECONDS", default_value_t = DEFAULT_POOL_MAX_AGE_SECONDS)]
    pub pool_max_age_seconds: u64,

    /// Where a deployment's weights are when its request names no `source`;
    /// `{model}` becomes the model id (e.g. `s3://models/llama-3.1-70b`).
    #[arg(long = "default-model-source", env = "MODELFLEET_DEFAULT_MODEL_SOURCE", default_value = DEFAULT_MODEL_SOURCE)]
    pub default_model_source: String,

    /// The currency plans priced in different currencies are ranked in.
    #[arg(
        long = "reference-currency",
        env = "MODELFLEET_REFERENCE_CURRENCY",
        default_value = "USD"
    )]
    pub reference_currency: Currency,

    /// What one unit of a currency is worth in the reference currency, as
    /// CURRENCY=RATE (e.g. `CNY=0.14`); repeat or separate with commas.
    /// Used only to rank plans, never to bill.
    #[arg(long = "exchange-rate", env = "MODELFLEET_EXCHANGE_RATES", value_delimiter = ',', value_parser = parse_rate)]
    pub exchange_rates: Vec<(Currency, Rate)>,

    /// How long a deployment's pods may stay unschedulable before failover
    /// moves it to the next-best pool of another cluster, in seconds.
    #[arg(long = "failover-after-seconds", env = "MODELFLEET_FAILOVER_AFTER_SECONDS", default_value_t = DEFAULT_FAILOVER_AFTER_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub failover_after_seconds: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            session_minutes: DEFAULT_SESSION_MINUTES,
            idempotency_hours: DEFAULT_IDEMPOTENCY_HOURS,
            pool_max_age_seconds: DEFAULT_POOL_MAX_AGE_SECONDS,
            default_model_source: DEFAULT_MODEL_SOURCE.to_owned(),
            reference_currency: Currency::Usd,
            exchange_rates: Vec::new(),
            failover_after_seconds: DEFAULT_FAILOVER_AFTER_SECONDS,
        }
    }
}

impl ApiSettings {
    pub fn exchange_rates(&self) -> ExchangeRates {
        ExchangeRates {
            reference: Some(self.reference_currency),
            rates: self.exchange_rates.iter().copied().collect(),
        }
    }

    /// The weights of `model` when the request names none.
    pub fn model_source(&self, model: &str) -> String {
        self.default_model_source.replace("{model}", model)
    }
}

fn parse_rate(text: &str) -> Result<(Currency, Rate), String> {
    let (currency, rate) = text.split_once('=').ok_or_else(|| {
        format!("{text:?}: write an exchange rate as CURRENCY=RATE, e.g. CNY=0.14")
    })?;
    let currency: Currency = currency.parse().map_err(|e: MoneyError| e.to_string())?;
    let rate = Rate::parse(rate.trim()).map_err(|e| e.to_string())?;
    Ok((currency, rate))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiSettings,
    }

    #[test]
    fn defaults_match_and_rates_parse() {
        let cli = Cli::parse_from(["hub"]);
        assert_eq!(cli.api, ApiSettings::default());
        let cli = Cli::parse_from([
            "hub",
            "--exchange-rate",
            "CNY=0.14",
            "--default-model-source",
            "hf://{model}",
        ]);
        assert_eq!(cli.api.exchange_rates().rates.len(), 1);
        assert_eq!(cli.api.model_source("m"), "hf://m");
        assert!(Cli::try_parse_from(["hub", "--exchange-rate", "EUR=1"]).is_err());
        let cli = Cli::parse_from(["hub", "--failover-after-seconds", "30"]);
        assert_eq!(cli.api.failover_after_seconds, 30);
        assert!(Cli::try_parse_from(["hub", "--failover-after-seconds", "0"]).is_err());
    }
}
