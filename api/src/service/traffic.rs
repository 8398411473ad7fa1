//! A deployment's gateway traffic as the console shows it: requests and
//! tokens over the last [`TRAFFIC_WINDOW_MINUTES`], their time to first
//! token and per output token, and what a million tokens cost.
//!
//! What a million tokens cost follows how the tenant is billed
//! (`modelfleet_core::billing`): a deployment billed by its tokens (tenant
//! on token pricing, model with a token price in force) costs its list
//! prices per million input and output tokens; any other is billed by the
//! device time it holds, so a million of its tokens cost the window's
//! device cost (discount taken off, as billed) spread over the window's
//! tokens. Both are integer micro-units, computed from billing's exact
//! amounts and rounded once: only the page formats them.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_core::billing::{
    BillingError, ExactAmount, FULL_BASIS_POINTS, UnixSeconds, rate_interval,
};
use modelfleet_core::money::{Currency, Money};

use super::{Caller, Error, Hub, Result};
use crate::identity::Permission;
use crate::store::{Deployment, PricingModel, Traffic, UsageFilter};

/// The window the figures cover, ending now.
pub const TRAFFIC_WINDOW_MINUTES: i64 = 15;

/// A deployment's traffic over `[from, to)` and its price per token.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentTraffic {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub traffic: Traffic,
    pub cost: TokenCost,
}

impl DeploymentTraffic {
    /// The window's length in seconds.
    pub fn seconds(&self) -> i64 {
        (self.to - self.from).num_seconds().max(1)
    }
}

/// What a million tokens of the deployment cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCost {
    /// Billed by its tokens: the list prices per million in force now.
    Tokens { input: Money, output: Money },
    /// Billed by device time: the window's device cost per currency (the
    /// tenant's discount taken off; to the micro-unit, not the cent — an
    /// invoice line is rounded once, over its month), and that exact cost
    /// per million of the window's tokens, rounded once — `None` when it
    /// answered no tokens.
    Time {
        window_cost: Vec<Money>,
        per_million: Option<Vec<Money>>,
    },
    /// Billed by device time, but some of the window's has no price in the
    /// catalog: why (the invoice will say the same until one is set).
    Unpriced { reason: String },
}

/// An amount kept exactly in `1 / (3600 × FULL_BASIS_POINTS)` micro-units
/// (device-seconds × price per hour, less the discount's share), divided
/// by `by` and rounded half up to the micro-unit; `None` on overflow.
fn round_micros(exact: i128, by: u64, currency: Currency) -> Option<Money> {
    let denominator = EXACT_PER_MICRO.checked_mul(i128::from(by))?;
    if denominator == 0 {
        return None;
    }
    let rounded = if exact >= 0 {
        (exact + denominator / 2) / denominator
    } else {
        (exact - denominator / 2) / denominator
    };
    Some(Money::from_micros(i64::try_from(rounded).ok()?, currency))
}

/// Exact device-time amounts per micro-unit: prices are per hour, and a
/// discount is in basis points.
const EXACT_PER_MICRO: i128 = 3600 * FULL_BASIS_POINTS as i128;

impl Hub {
    /// What `d`'s device time in `[from, to)` costs as billed (the
    /// tenant's discount for each cloud taken off), per currency, exactly
    /// (see [`round_micros`]); or why it cannot be priced.
    async fn device_cost(
        &self,
        caller: &Caller,
        d: &Deployment,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<std::result::Result<BTreeMap<Currency, i128>, String>> {
        let filter = UsageFilter {
            tenant: Some(caller.tenant(Some(d.tenant))?),
            deployment: Some(d.id),
            from,
            to,
        };
        let intervals = self.store.usage_intervals(caller.scope(), &filter).await?;
        let catalog = self.store.price_catalog().await?;
        let discounts = self.store.discount_set(caller.scope(), d.tenant).await?;
        // A window that ends part-way through a second covers that second.
        let end = to.timestamp() + i64::from(to.timestamp_subsec_nanos() > 0);
        let window = UnixSeconds(from.timestamp())..UnixSeconds(end);
        let open_until = UnixSeconds(to.timestamp());
        let mut costs = BTreeMap::<Currency, i128>::new();
        for interval in &intervals {
            let basis_points = i128::from(discounts.basis_points_for(interval.cloud));
            let pieces = match rate_interval(interval, &catalog, window.clone(), open_until) {
                Ok(pieces) => pieces,
                Err(e @ BillingError::Unpriced { .. }) => return Ok(Err(e.to_string())),
                Err(e) => return Err(Error::internal(&e)),
            };
            for piece in pieces {
                let ExactAmount(exact) = piece.exact;
                let net = exact * i128::from(FULL_BASIS_POINTS) - exact * basis_points;
                *costs
                    .entry(piece.price.per_device_hour.currency())
                    .or_default() += net;
            }
        }
        Ok(Ok(costs))
    }

    /// `d`'s traffic over the last [`TRAFFIC_WINDOW_MINUTES`] and what a
    /// million of its tokens cost, or `None` when the caller's role may
    /// not read usage.
    pub async fn deployment_traffic(
        &self,
        caller: &Caller,
        d: &Deployment,
    ) -> Result<Option<DeploymentTraffic>> {
        if caller.require(Permission::Read).is_err() {
            return Ok(None);
        }
        let to = crate::store::now();
        let from = to - TimeDelta::minutes(TRAFFIC_WINDOW_MINUTES);
        let traffic = self
            .store
            .deployment_traffic(caller.scope(), d.id, from, to)
            .await?;
        let pricing = self.store.pricing_model(caller.scope(), d.tenant).await?;
        let prices = self.store.token_price_catalog().await?;
        let price = match pricing {
            PricingModel::Tokens => prices.price_at(&d.model, UnixSeconds(to.timestamp())),
            PricingModel::Time => None,
        };
        let cost = match price {
            Some(p) => TokenCost::Tokens {
                input: p.per_million_input,
                output: p.per_million_output,
            },
            None => {
                let tokens = traffic.input_tokens.saturating_add(traffic.output_tokens);
                match self.device_cost(caller, d, from, to).await? {
                    Ok(exact) => TokenCost::Time {
                        window_cost: exact
                            .iter()
                            .filter_map(|(currency, net)| round_micros(*net, 1, *currency))
                            .collect(),
                        per_million: (tokens > 0).then(|| {
                            exact
                                .iter()
                                .filter_map(|(currency, net)| {
                                    round_micros(net.checked_mul(1_000_000)?, tokens, *currency)
                                })
                                .collect()
                        }),
                    },
                    Err(reason) => TokenCost::Unpriced { reason },
                }
            }
        };
        Ok(Some(DeploymentTraffic {
            from,
            to,
            traffic,
            cost,
        }))
    }
}

#[cfg(test)]
mod tests {
    use modelfleet_core::money::Currency;

    use super::*;

    #[test]
    fn a_cost_per_million_tokens_is_exact_and_rounded_half_up_once() {
        let usd = |micros| Money::from_micros(micros, Currency::Usd);
        // One device for 5 s at 1.80 per hour: 2,500 micros.
        let exact = 5 * 1_800_000 * i128::from(FULL_BASIS_POINTS);
        assert_eq!(round_micros(exact, 1, Currency::Usd), Some(usd(2_500)));
        // Over 1,000 tokens: 2.50 per million.
        let per_million = exact * 1_000_000;
        assert_eq!(
            round_micros(per_million, 1_000, Currency::Usd),
            Some(usd(2_500_000))
        );
        // A 10% discount (1,000 basis points) off the same.
        let discounted = 5 * 1_800_000 * i128::from(FULL_BASIS_POINTS - 1_000);
        assert_eq!(round_micros(discounted, 1, Currency::Usd), Some(usd(2_250)));
        // Half a micro rounds up, less than half down, once.
        assert_eq!(
            round_micros(EXACT_PER_MICRO / 2, 1, Currency::Usd),
            Some(usd(1))
        );
        assert_eq!(
            round_micros(EXACT_PER_MICRO / 2 - 1, 1, Currency::Usd),
            Some(usd(0))
        );
        // 2 micros over 3 tokens, per million: 666,666.67 → 666,667.
        let two = 2 * EXACT_PER_MICRO * 1_000_000;
        assert_eq!(
            round_micros(two, 3, Currency::Cny),
            Some(Money::from_micros(666_667, Currency::Cny))
        );
        assert_eq!(round_micros(two, 0, Currency::Usd), None);
    }
}
