//! The price catalog: what one device-hour costs on each cloud, region,
//! accelerator and kind of capacity, and since when.
//!
//! Prices are never edited in place. A new price is a new entry with its own
//! `effective_from`, so an invoice for a past month is rebuilt with the
//! prices that were in force then, and a mid-month change is billed in two
//! pieces (see [`super::rating`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::BillingError;
use super::time::UnixSeconds;
use crate::accelerator::Accelerator;
use crate::fleet::{CapacityType, Cloud, Fleet};
use crate::money::{Currency, Money};

/// How the devices were bought. The same as [`CapacityType`], with an order
/// and a hash so it can be part of a catalog key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Capacity {
    #[default]
    #[serde(rename = "on-demand")]
    OnDemand,
    #[serde(rename = "spot")]
    Spot,
}

impl Capacity {
    pub fn name(self) -> &'static str {
        match self {
            Capacity::OnDemand => "on-demand",
            Capacity::Spot => "spot",
        }
    }
}

impl std::str::FromStr for Capacity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on-demand" => Ok(Capacity::OnDemand),
            "spot" => Ok(Capacity::Spot),
            _ => Err("use on-demand or spot".to_owned()),
        }
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<CapacityType> for Capacity {
    fn from(c: CapacityType) -> Self {
        match c {
            CapacityType::OnDemand => Capacity::OnDemand,
            CapacityType::Spot => Capacity::Spot,
        }
    }
}

impl From<Capacity> for CapacityType {
    fn from(c: Capacity) -> Self {
        match c {
            Capacity::OnDemand => CapacityType::OnDemand,
            Capacity::Spot => CapacityType::Spot,
        }
    }
}

/// What a price is the price of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PriceKey {
    pub cloud: Cloud,
    pub region: String,
    /// Accelerator catalog id (`h100-80gb`).
    pub accelerator: String,
    pub capacity: Capacity,
}

impl PriceKey {
    pub fn new(cloud: Cloud, region: &str, accelerator: &str, capacity: Capacity) -> Self {
        PriceKey {
            cloud,
            region: region.to_owned(),
            accelerator: accelerator.to_owned(),
            capacity,
        }
    }

    /// Compares with borrowed parts, in the same field order as the derived
    /// `Ord`, so the rater can look prices up without building a key.
    fn cmp_parts(
        &self,
        cloud: Cloud,
        region: &str,
        accelerator: &str,
        capacity: Capacity,
    ) -> Ordering {
        self.cloud
            .cmp(&cloud)
            .then_with(|| self.region.as_str().cmp(region))
            .then_with(|| self.accelerator.as_str().cmp(accelerator))
            .then_with(|| self.capacity.cmp(&capacity))
    }
}

impl fmt::Display for PriceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.cloud, self.region, self.accelerator, self.capacity
        )
    }
}

/// Where a price came from. The console says so when a price is a default,
/// because a default is a list price nobody has checked against a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceSource {
    /// Seeded from public list prices or the fleet file.
    Default,
    /// Set by a platform administrator.
    Admin,
}

impl PriceSource {
    pub fn name(self) -> &'static str {
        match self {
            PriceSource::Default => "default",
            PriceSource::Admin => "admin",
        }
    }
}

impl std::str::FromStr for PriceSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(PriceSource::Default),
            "admin" => Ok(PriceSource::Admin),
            _ => Err("use default or admin".to_owned()),
        }
    }
}

/// The price of one device-hour, in force from `effective_from` until the
/// next price for the same key takes over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub key: PriceKey,
    pub per_device_hour: Money,
    pub effective_from: UnixSeconds,
    pub source: PriceSource,
}

/// Every price ever set, kept sorted by key and then by `effective_from`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PriceCatalog {
    prices: Vec<Price>,
}

/// 8 × H200 on a p5en.48xlarge spot instance at about 27 USD/h → 3.375.
const H200_SPOT_PER_DEVICE_HOUR: Money = Money::from_micros(3_375_000, Currency::Usd);

impl PriceCatalog {
    pub fn new() -> Self {
        PriceCatalog::default()
    }

    /// The public AWS list prices (reference: accelerators-and-clouds.md),
    /// marked [`PriceSource::Default`] and in force since the epoch, in the
    /// regions the example fleet uses:
    ///
    /// | key | USD per device-hour |
    /// | --- | --- |
    /// | aws/us-east-1/h200/on-demand | 7.9125 (63.30 ÷ 8) |
    /// | aws/us-east-1/h200/spot | 3.375 (about 27 ÷ 8) |
    /// | aws/us-east-1/h100-80gb/on-demand | 6.88 (55.04 ÷ 8) |
    /// | aws/us-west-2/a100-80gb/on-demand | 3.43125 (27.45 ÷ 8) |
    /// | aws/us-west-2/a100-40gb/on-demand | 2.745 (21.96 ÷ 8) |
    ///
    /// The on-demand figures are the accelerator catalog's `list_price`, the
    /// instance price divided exactly by its eight devices (the reference
    /// table rounds them to cents: 7.91, 3.43, 2.74), so the planner and
    /// billing quote the same number. No CNY prices are seeded: no verified
    /// public prices exist; [`PriceCatalog::from_fleet`] takes them from a
    /// fleet file, and administrators set the real ones.
    pub fn seed() -> Self {
        let mut catalog = PriceCatalog::new();
        let on_demand = [
            ("us-east-1", "h200"),
            ("us-east-1", "h100-80gb"),
            ("us-west-2", "a100-80gb"),
            ("us-west-2", "a100-40gb"),
        ];
        for (region, id) in on_demand {
            let price = Accelerator::find(id)
                .and_then(|a| a.list_price)
                .expect("the catalog has a list price for every seeded AWS accelerator");
            catalog.seed_one(
                PriceKey::new(Cloud::Aws, region, id, Capacity::OnDemand),
                price,
            );
        }
        catalog.seed_one(
            PriceKey::new(Cloud::Aws, "us-east-1", "h200", Capacity::Spot),
            H200_SPOT_PER_DEVICE_HOUR,
        );
        catalog
    }

    fn seed_one(&mut self, key: PriceKey, per_device_hour: Money) {
        self.insert(Price {
            key,
            per_device_hour,
            effective_from: UnixSeconds::EPOCH,
            source: PriceSource::Default,
        })
        .expect("seed prices are distinct and non-negative");
    }

    /// One [`PriceSource::Default`] price per priced pool of a fleet, in
    /// force from `effective_from`. Pools that share a key (same cloud,
    /// region, accelerator and capacity in two clusters) must agree on the
    /// price; unpriced pools are skipped.
    pub fn from_fleet(fleet: &Fleet, effective_from: UnixSeconds) -> Result<Self, BillingError> {
        let mut by_key: BTreeMap<PriceKey, (Money, String)> = BTreeMap::new();
        let mut conflicts = Vec::new();
        for pool in &fleet.pools {
            let Some(price) = pool.price_per_device_hour else {
                continue;
            };
            let key = PriceKey::new(
                pool.cloud,
                &pool.region,
                &pool.accelerator,
                pool.capacity_type.into(),
            );
            let at = format!("{}/{}", pool.cluster, pool.name);
            match by_key.get(&key) {
                Some((seen, _)) if *seen == price => {}
                Some((seen, seen_at)) => conflicts.push(format!(
                    "{key}: pool {seen_at} says {seen}, pool {at} says {price}"
                )),
                None => {
                    by_key.insert(key, (price, at));
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(BillingError::ConflictingFleetPrices(conflicts));
        }
        let mut catalog = PriceCatalog::new();
        for (key, (per_device_hour, _)) in by_key {
            catalog.insert(Price {
                key,
                per_device_hour,
                effective_from,
                source: PriceSource::Default,
            })?;
        }
        Ok(catalog)
    }

    /// Adds a price. A negative price, or a second price for the same key
    /// and instant (which would make "the price in force" ambiguous), is
    /// refused; to correct a price, add one with a later `effective_from`.
    pub fn insert(&mut self, price: Price) -> Result<(), BillingError> {
        if price.per_device_hour.micros() < 0 {
            return Err(BillingError::NegativePrice {
                key: price.key.to_string(),
                price: price.per_device_hour,
            });
        }
        let at = self
            .prices
            .partition_point(|p| (&p.key, p.effective_from) < (&price.key, price.effective_from));
        if let Some(existing) = self.prices.get(at)
            && existing.key == price.key
            && existing.effective_from == price.effective_from
        {
            return Err(BillingError::DuplicatePrice {
                key: price.key.to_string(),
                effective_from: price.effective_from,
            });
        }
        self.prices.insert(at, price);
        Ok(())
    }

    /// The price in force at `at`: the one with the latest `effective_from`
    /// not after `at`.
    pub fn price_at(&self, key: &PriceKey, at: UnixSeconds) -> Option<&Price> {
        let history = self.history_of(key.cloud, &key.region, &key.accelerator, key.capacity);
        let after = history.partition_point(|p| p.effective_from <= at);
        after.checked_sub(1).map(|i| &history[i])
    }

    /// Every price for one key, oldest first.
    pub fn history(&self, key: &PriceKey) -> &[Price] {
        self.history_of(key.cloud, &key.region, &key.accelerator, key.capacity)
    }

    pub(crate) fn history_of(
        &self,
        cloud: Cloud,
        region: &str,
        accelerator: &str,
        capacity: Capacity,
    ) -> &[Price] {
        let cmp = |p: &Price| p.key.cmp_parts(cloud, region, accelerator, capacity);
        let first = self.prices.partition_point(|p| cmp(p) == Ordering::Less);
        let len = self.prices[first..].partition_point(|p| cmp(p) == Ordering::Equal);
        &self.prices[first..first + len]
    }

    /// All prices, by key and then oldest first.
    pub fn prices(&self) -> &[Price] {
        &self.prices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Money {
        Money::parse_amount(text, Currency::Usd).unwrap()
    }

    #[test]
    fn price_in_force_is_the_latest_not_after_the_instant() {
        let key = PriceKey::new(Cloud::Aws, "us-east-1", "h100-80gb", Capacity::OnDemand);
        let mut catalog = PriceCatalog::new();
        for (from, price) in [(100, "6.88"), (200, "5.00"), (50, "7.00")] {
            catalog
                .insert(Price {
                    key: key.clone(),
                    per_device_hour: usd(price),
                    effective_from: UnixSeconds(from),
                    source: PriceSource::Admin,
                })
                .unwrap();
        }
        let at = |t| {
            catalog
                .price_at(&key, UnixSeconds(t))
                .map(|p| p.per_device_hour)
        };
        assert_eq!(at(49), None);
        assert_eq!(at(50), Some(usd("7.00")));
        assert_eq!(at(99), Some(usd("7.00")));
        assert_eq!(at(100), Some(usd("6.88")));
        assert_eq!(at(199), Some(usd("6.88")));
        assert_eq!(at(1_000_000), Some(usd("5.00")));
        let spot = PriceKey {
            capacity: Capacity::Spot,
            ..key.clone()
        };
        assert_eq!(catalog.price_at(&spot, UnixSeconds(1_000)), None);

        let err = catalog
            .insert(Price {
                key: key.clone(),
                per_device_hour: usd("1"),
                effective_from: UnixSeconds(100),
                source: PriceSource::Admin,
            })
            .unwrap_err();
        assert!(err.to_string().contains("already has a price"), "{err}");
        let err = catalog
            .insert(Price {
                key,
                per_device_hour: Money::from_micros(-1, Currency::Usd),
                effective_from: UnixSeconds(300),
                source: PriceSource::Admin,
            })
            .unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
    }

    #[test]
    fn seed_holds_the_aws_list_prices() {
        let catalog = PriceCatalog::seed();
        let price = |region, id, capacity| {
            catalog
                .price_at(
                    &PriceKey::new(Cloud::Aws, region, id, capacity),
                    UnixSeconds(1_795_943_055),
                )
                .map(|p| (p.per_device_hour.micros(), p.source))
        };
        let d = PriceSource::Default;
        assert_eq!(
            price("us-east-1", "h200", Capacity::OnDemand),
            Some((7_912_500, d))
        );
        assert_eq!(
            price("us-east-1", "h200", Capacity::Spot),
            Some((3_375_000, d))
        );
        assert_eq!(
            price("us-east-1", "h100-80gb", Capacity::OnDemand),
            Some((6_880_000, d))
        );
        assert_eq!(
            price("us-west-2", "a100-80gb", Capacity::OnDemand),
            Some((3_431_250, d))
        );
        assert_eq!(
            price("us-west-2", "a100-40gb", Capacity::OnDemand),
            Some((2_745_000, d))
        );
        assert_eq!(catalog.prices().len(), 5);
    }

    #[test]
    fn from_fleet_takes_every_priced_pool_and_refuses_disagreement() {
        let fleet = Fleet::example();
        let catalog = PriceCatalog::from_fleet(&fleet, UnixSeconds(1_000)).unwrap();
        assert_eq!(catalog.prices().len(), fleet.pools.len());
        let ascend = PriceKey::new(
            Cloud::Huaweicloud,
            "cn-southwest-2",
            "ascend-910b",
            Capacity::OnDemand,
        );
        let p = catalog.price_at(&ascend, UnixSeconds(1_000)).unwrap();
        assert_eq!(p.per_device_hour.to_string(), "22.00 CNY");
        assert_eq!(p.source, PriceSource::Default);
        assert!(catalog.price_at(&ascend, UnixSeconds(999)).is_none());

        let mut twice = fleet.clone();
        let mut copy = twice.pools[1].clone();
        copy.cluster = "aws-use1-other".to_owned();
        copy.price_per_device_hour = Some(usd("5.00"));
        twice.pools.push(copy);
        let err = PriceCatalog::from_fleet(&twice, UnixSeconds(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("aws/us-east-1/h100-80gb/on-demand"), "{err}");
        assert!(
            err.contains("aws-use1-other/p5-h100 says 5.00 USD"),
            "{err}"
        );
    }
}
