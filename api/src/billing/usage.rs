//! Usage reports: device time and its cost over any time range, grouped by
//! day, deployment, cloud or accelerator.
//!
//! Each group's cost is summed exactly and rounded once, half up, to the
//! cent or fen — the invoice's rule — so a group that is one invoice line
//! shows that line's amount; groups that split a line (days) can differ
//! from it by rounding, at most half a minor unit per group.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_core::billing::{
    Discounts, ExactAmount, FULL_BASIS_POINTS, UnixSeconds, UsageInterval, format_device_hours,
    minor_unit_micros, rate_interval,
};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::{Currency, Money};
use serde::Serialize;

use super::BillingServiceError;
use crate::identity::Scope;
use crate::ids::{DeploymentId, TenantId};
use crate::store::{Store, StoreError, UsageFilter, now};

/// The longest range one report covers.
pub const MAX_RANGE_DAYS: i64 = 366;

/// How a usage report is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Day,
    Deployment,
    Cloud,
    Accelerator,
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(GroupBy::Day),
            "deployment" => Ok(GroupBy::Deployment),
            "cloud" => Ok(GroupBy::Cloud),
            "accelerator" => Ok(GroupBy::Accelerator),
            other => Err(format!(
                "{other:?} is not a grouping; use day, deployment, cloud or accelerator"
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

/// A usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: GroupBy,
    /// In key order, then currency.
    pub groups: Vec<UsageGroup>,
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
    let open_until = unix(now());
    let window = unix(query.from)..unix_end(query.to);
    let mut discounts: HashMap<String, Discounts> = HashMap::new();
    let mut groups: BTreeMap<(String, Currency), Tally> = BTreeMap::new();
    let wanted = |i: &UsageInterval| {
        query.cloud.is_none_or(|c| c == i.cloud)
            && query
                .accelerator
                .as_deref()
                .is_none_or(|a| a == i.accelerator)
    };
    for interval in intervals.iter().filter(|i| wanted(i)) {
        if !discounts.contains_key(&interval.tenant) {
            let tenant: TenantId = interval
                .tenant
                .parse()
                .map_err(|_| StoreError::Corrupt("interval tenant"))?;
            let set = store.discount_set(Scope::All, tenant).await?;
            discounts.insert(interval.tenant.clone(), set);
        }
        let basis_points = discounts[&interval.tenant].basis_points_for(interval.cloud);
        let windows: Vec<Range<UnixSeconds>> = match query.group_by {
            GroupBy::Day => days(&window).collect(),
            _ => vec![window.clone()],
        };
        for w in windows {
            for piece in rate_interval(interval, &catalog, w.clone(), open_until)? {
                let (key, name) = match query.group_by {
                    GroupBy::Day => (day_key(w.start), None),
                    GroupBy::Deployment => (
                        interval.deployment.clone(),
                        Some(interval.deployment_name.clone()),
                    ),
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
    Ok(UsageReport {
        from: query.from,
        to: query.to,
        group_by: query.group_by,
        groups: out,
    })
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
