//! Usage reports: device time and metered tokens, and their cost, over any
//! time range, grouped by day, deployment, model, API key, cloud or
//! accelerator.
//!
//! Tokens are reported beside device time (`tokens`), with their cost
//! where the tenant is on token pricing and the model had a token price in
//! that hour; device time a token-priced deployment is not billed for (see
//! the rules in `modelfleet_core::billing`) is left out of `groups`, as it
//! is of the invoice. Device time belongs to no API key, so grouped by
//! key only tokens are reported; tokens were served by no one cloud or
//! accelerator, so grouped (or filtered) by those only device time is.
//!
//! Each group's cost is summed exactly and rounded once, half up, to the
//! cent or fen — the invoice's rule — so a group that is one invoice line
//! shows that line's amount; groups that split a line (days) can differ
//! from it by rounding, at most half a minor unit per group.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_core::billing::{
    Discounts, ExactAmount, FULL_BASIS_POINTS, TOKENS_PER_PRICE_UNIT, TokenAmount,
    TokenPriceCatalog, UnixSeconds, UsageInterval, format_device_hours, minor_unit_micros,
    rate_interval,
};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::{Currency, Money};
use serde::Serialize;

use super::BillingServiceError;
use crate::identity::Scope;
use crate::ids::{DeploymentId, TenantId};
use crate::store::{PricingModel, Store, StoreError, TokenFilter, UsageFilter, now};

/// The longest range one report covers.
pub const MAX_RANGE_DAYS: i64 = 366;

/// How a usage report is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Day,
    Deployment,
    /// The catalog model a deployment serves.
    Model,
    /// The API key that called (tokens only).
    Key,
    Cloud,
    Accelerator,
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(GroupBy::Day),
            "deployment" => Ok(GroupBy::Deployment),
            "model" => Ok(GroupBy::Model),
            "key" => Ok(GroupBy::Key),
            "cloud" => Ok(GroupBy::Cloud),
            "accelerator" => Ok(GroupBy::Accelerator),
            other => Err(format!(
                "{other:?} is not a grouping; use day, deployment, model, key, cloud or accelerator"
            )),
        }
    }
}

/// What to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// One tenant, or all (platform-wide readers only).
    pub tenant: Option<TenantId>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub deployment: Option<DeploymentId>,
    pub cloud: Option<Cloud>,
    pub accelerator: Option<String>,
    pub group_by: GroupBy,
}

/// One group's usage and cost in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageGroup {
    /// The day (`2026-12-01`), deployment id, cloud or accelerator id.
    pub key: String,
    /// The deployment's name when grouped by deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub currency: Currency,
    /// Devices × billed seconds (with the 60-second minimum).
    pub device_seconds: u64,
    /// The same in hours, four decimals.
    pub device_hours: String,
    /// At list prices.
    pub list_cost: Money,
    /// The tenant's discount.
    pub discount: Money,
    /// What is billed: `list_cost − discount`.
    pub cost: Money,
}

/// One group's metered tokens, and their cost where they are billed by
/// tokens: one group per key and currency, and one without a currency for
/// tokens billed by device time (a tenant on time pricing, or a model
/// without a token price in that hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenGroup {
    /// The day, deployment id, model id, or API key id (`none` for
    /// signed-in users, the console).
    pub key: String,
    /// The deployment's or key's name when grouped by deployment or key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Answered requests.
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None` for tokens billed by time; then no costs either.
    pub currency: Option<Currency>,
    /// At list token prices.
    pub list_cost: Option<Money>,
    /// The tenant's (all-clouds) discount.
    pub discount: Option<Money>,
    /// What is billed: `list_cost − discount`.
    pub cost: Option<Money>,
}

/// A usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: GroupBy,
    /// Device time, in key order, then currency.
    pub groups: Vec<UsageGroup>,
    /// Tokens, in key order, then currency (unpriced first).
    pub tokens: Vec<TokenGroup>,
}

#[derive(Default)]
struct TokenTally {
    name: Option<String>,
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
    /// In millionths of a micro-unit.
    list: i128,
    /// The same times the discount's basis points.
    discount: i128,
}

/// What the report needs to know of each tenant it covers.
struct TenantBilling {
    discounts: Discounts,
    on_tokens: bool,
    /// Deployment id → model.
    models: HashMap<String, String>,
}

async fn tenant_billing(
    store: &Store,
    tenant: &str,
    cache: &mut HashMap<String, TenantBilling>,
) -> Result<(), StoreError> {
    if cache.contains_key(tenant) {
        return Ok(());
    }
    let id: TenantId = tenant
        .parse()
        .map_err(|_| StoreError::Corrupt("usage tenant"))?;
    let billing = TenantBilling {
        discounts: store.discount_set(Scope::All, id).await?,
        on_tokens: store.pricing_model(Scope::All, id).await? == PricingModel::Tokens,
        models: store
            .deployment_models(Scope::All, id)
            .await?
            .into_iter()
            .map(|(d, m)| (d.to_string(), m))
            .collect(),
    };
    cache.insert(tenant.to_owned(), billing);
    Ok(())
}

#[derive(Default)]
struct Tally {
    name: Option<String>,
    device_seconds: u64,
    /// In 1/3600 micro-units.
    list: i128,
    /// In 1/(3600 × 10000) micro-units: the exact share, before rounding.
    discount: i128,
}

/// Rounds a non-negative exact amount, given in units of `1/denominator`
/// micro-units, half up to whole minor units of `currency`.
fn round_half_up(value: i128, denominator: i128, currency: Currency) -> Option<Money> {
    let unit = denominator * i128::from(minor_unit_micros(currency));
    let minor = (value + unit / 2) / unit;
    let micros = minor.checked_mul(i128::from(minor_unit_micros(currency)))?;
    Some(Money::from_micros(i64::try_from(micros).ok()?, currency))
}

fn unix(at: DateTime<Utc>) -> UnixSeconds {
    UnixSeconds(at.timestamp())
}

/// The end of a range as whole seconds, rounded up: a range that ends
/// part-way through a second covers that second, so usage that began in
/// it (a replica that started a moment ago) is in the report.
fn unix_end(at: DateTime<Utc>) -> UnixSeconds {
    let seconds = at.timestamp();
    UnixSeconds(if at.timestamp_subsec_nanos() > 0 {
        seconds.saturating_add(1)
    } else {
        seconds
    })
}

/// The UTC days overlapping `window`, each as a window of its own.
fn days(window: &Range<UnixSeconds>) -> impl Iterator<Item = Range<UnixSeconds>> + '_ {
    const DAY: i64 = 86_400;
    let first = window.start.0.div_euclid(DAY) * DAY;
    (first..window.end.0)
        .step_by(DAY as usize)
        .map(move |start| {
            UnixSeconds(start.max(window.start.0))..UnixSeconds((start + DAY).min(window.end.0))
        })
}

fn day_key(at: UnixSeconds) -> String {
    at.to_rfc3339()[..10].to_owned()
}

/// Checks a report's range: `from < to`, at most a year.
pub fn check_range(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), StoreError> {
    if from >= to {
        return Err(StoreError::Invalid {
            field: "to",
            reason: "must be after `from`".to_owned(),
        });
    }
    if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
        return Err(StoreError::Invalid {
            field: "to",
            reason: format!("a report covers at most {MAX_RANGE_DAYS} days; ask for less"),
        });
    }
    Ok(())
}

/// Rates the usage in the query's range and groups it.
pub async fn usage_report(
    store: &Store,
    scope: Scope,
    query: &UsageQuery,
) -> Result<UsageReport, BillingServiceError> {
    check_range(query.from, query.to)?;
    let filter = UsageFilter {
        tenant: query.tenant,
        deployment: query.deployment,
        from: query.from,
        to: query.to,
    };
    let intervals = store.usage_intervals(scope, &filter).await?;
    let catalog = store.price_catalog().await?;
    let token_prices = store.token_price_catalog().await?;
    let open_until = unix(now());
    let window = unix(query.from)..unix_end(query.to);
    let mut tenants: HashMap<String, TenantBilling> = HashMap::new();
    let mut groups: BTreeMap<(String, Currency), Tally> = BTreeMap::new();
    let wanted = |i: &UsageInterval| {
        query.cloud.is_none_or(|c| c == i.cloud)
            && query
                .accelerator
                .as_deref()
                .is_none_or(|a| a == i.accelerator)
    };
    let device_time = query.group_by != GroupBy::Key;
    for interval in intervals.iter().filter(|i| device_time && wanted(i)) {
        tenant_billing(store, &interval.tenant, &mut tenants).await?;
        let billing = &tenants[&interval.tenant];
        let basis_points = billing.discounts.basis_points_for(interval.cloud);
        let model = billing.models.get(&interval.deployment);
        // Device time from the hour the model was first token-priced is
        // billed by tokens for a tenant on token pricing.
        let billed_until = model
            .filter(|_| billing.on_tokens)
            .and_then(|m| token_prices.priced_from(m));
        let windows: Vec<Range<UnixSeconds>> = match query.group_by {
            GroupBy::Day => days(&window).collect(),
            _ => vec![window.clone()],
        };
        for mut w in windows {
            if let Some(until) = billed_until {
                w.end = w.end.min(until);
                if w.start >= w.end {
                    continue;
                }
            }
            for piece in rate_interval(interval, &catalog, w.clone(), open_until)? {
                let (key, name) = match query.group_by {
                    GroupBy::Day => (day_key(w.start), None),
                    GroupBy::Deployment => (
                        interval.deployment.clone(),
                        Some(interval.deployment_name.clone()),
                    ),
                    GroupBy::Model => (model.cloned().unwrap_or_default(), None),
                    // Device time belongs to no key (left out above).
                    GroupBy::Key => continue,
                    GroupBy::Cloud => (interval.cloud.name().to_owned(), None),
                    GroupBy::Accelerator => (interval.accelerator.clone(), None),
                };
                let currency = piece.price.per_device_hour.currency();
                let tally = groups.entry((key, currency)).or_default();
                tally.name = name;
                tally.device_seconds += piece.device_seconds;
                let ExactAmount(exact) = piece.exact;
                tally.list += exact;
                tally.discount += exact * i128::from(basis_points);
            }
        }
    }
    let overflow = || {
        BillingServiceError::Rating(modelfleet_core::billing::BillingError::Overflow(
            "a usage group".to_owned(),
        ))
    };
    let mut out = Vec::with_capacity(groups.len());
    for ((key, currency), tally) in groups {
        let list_cost = round_half_up(tally.list, 3600, currency).ok_or_else(overflow)?;
        let discount = round_half_up(
            tally.discount,
            3600 * i128::from(FULL_BASIS_POINTS),
            currency,
        )
        .ok_or_else(overflow)?;
        let cost = Money::from_micros(list_cost.micros() - discount.micros(), currency);
        out.push(UsageGroup {
            key,
            name: tally.name,
            currency,
            device_seconds: tally.device_seconds,
            device_hours: format_device_hours(tally.device_seconds),
            list_cost,
            discount,
            cost,
        });
    }
    let tokens = if query.cloud.is_none()
        && query.accelerator.is_none()
        && !matches!(query.group_by, GroupBy::Cloud | GroupBy::Accelerator)
    {
        token_groups(store, scope, query, &token_prices, &mut tenants).await?
    } else {
        Vec::new()
    };
    Ok(UsageReport {
        from: query.from,
        to: query.to,
        group_by: query.group_by,
        groups: out,
        tokens,
    })
}

/// The query's tokens, grouped, with their cost where billed by tokens.
async fn token_groups(
    store: &Store,
    scope: Scope,
    query: &UsageQuery,
    prices: &TokenPriceCatalog,
    tenants: &mut HashMap<String, TenantBilling>,
) -> Result<Vec<TokenGroup>, BillingServiceError> {
    let totals = store
        .token_totals(
            scope,
            &TokenFilter {
                tenant: query.tenant,
                from: query.from,
                to: query.to,
                deployment: query.deployment,
                api_key: None,
            },
        )
        .await?;
    let overflow = || {
        BillingServiceError::Rating(modelfleet_core::billing::BillingError::Overflow(
            "a token usage group".to_owned(),
        ))
    };
    let mut groups: BTreeMap<(String, Option<Currency>), TokenTally> = BTreeMap::new();
    for t in totals {
        let tenant = t.tenant.to_string();
        tenant_billing(store, &tenant, tenants).await?;
        let billing = &tenants[&tenant];
        let price = prices
            .price_at(&t.model, unix(t.hour))
            .filter(|_| billing.on_tokens);
        let (key, name) = match query.group_by {
            GroupBy::Day => (day_key(unix(t.hour)), None),
            GroupBy::Deployment => (t.deployment.to_string(), Some(t.deployment_name.clone())),
            GroupBy::Model => (t.model.clone(), None),
            GroupBy::Key => match t.api_key {
                Some(key) => (key.to_string(), t.api_key_name.clone()),
                None => ("none".to_owned(), Some("signed-in users".to_owned())),
            },
            GroupBy::Cloud | GroupBy::Accelerator => continue,
        };
        let tally = groups
            .entry((key, price.map(|p| p.currency())))
            .or_default();
        tally.name = name;
        tally.requests = tally
            .requests
            .checked_add(t.requests)
            .ok_or_else(overflow)?;
        tally.input_tokens = tally
            .input_tokens
            .checked_add(t.input_tokens)
            .ok_or_else(overflow)?;
        tally.output_tokens = tally
            .output_tokens
            .checked_add(t.output_tokens)
            .ok_or_else(overflow)?;
        if let Some(price) = price {
            let input = TokenAmount::of(t.input_tokens, price.per_million_input);
            let output = TokenAmount::of(t.output_tokens, price.per_million_output);
            let TokenAmount(exact) = input
                .zip(output)
                .and_then(|(i, o)| i.checked_add(o))
                .ok_or_else(overflow)?;
            let basis_points = billing.discounts.basis_points_overall();
            tally.list = tally.list.checked_add(exact).ok_or_else(overflow)?;
            tally.discount = exact
                .checked_mul(i128::from(basis_points))
                .and_then(|d| tally.discount.checked_add(d))
                .ok_or_else(overflow)?;
        }
    }
    let per_million = i128::from(TOKENS_PER_PRICE_UNIT);
    let mut out = Vec::with_capacity(groups.len());
    for ((key, currency), tally) in groups {
        let costs = match currency {
            None => None,
            Some(currency) => {
                let list = round_half_up(tally.list, per_million, currency).ok_or_else(overflow)?;
                let discount = round_half_up(
                    tally.discount,
                    per_million * i128::from(FULL_BASIS_POINTS),
                    currency,
                )
                .ok_or_else(overflow)?;
                let cost = Money::from_micros(list.micros() - discount.micros(), currency);
                Some((list, discount, cost))
            }
        };
        out.push(TokenGroup {
            key,
            name: tally.name,
            requests: tally.requests,
            input_tokens: tally.input_tokens,
            output_tokens: tally.output_tokens,
            currency,
            list_cost: costs.map(|c| c.0),
            discount: costs.map(|c| c.1),
            cost: costs.map(|c| c.2),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_cover_the_window_exactly_and_rounding_is_half_up() {
        let from = UnixSeconds::from_utc(2026, 12, 1, 12, 0, 0).unwrap();
        let to = UnixSeconds::from_utc(2026, 12, 3, 6, 0, 0).unwrap();
        let window = from..to;
        let got: Vec<_> = days(&window).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].start, from);
        assert_eq!(got[2].end, to);
        assert_eq!(got[0].end, got[1].start);
        assert_eq!(day_key(got[1].start), "2026-12-02");
        // 0.005 USD exactly rounds up to a cent; just under it rounds down.
        let half_cent = 5_000 * 3600;
        assert_eq!(
            round_half_up(half_cent, 3600, Currency::Usd)
                .unwrap()
                .micros(),
            10_000
        );
        assert_eq!(
            round_half_up(half_cent - 1, 3600, Currency::Usd)
                .unwrap()
                .micros(),
            0
        );
    }
}
