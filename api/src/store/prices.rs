//! The price catalog in the database. Prices only go forward: an admin's
//! price takes effect now or later, never in the past, and no row is ever
//! changed (the table refuses it), so a month can always be rated again
//! with the prices that were in force. Every price set is audited with its
//! transaction.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::billing::{Capacity, Price, PriceCatalog, PriceKey, PriceSource, UnixSeconds};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::{Currency, Money};

use super::{Store, StoreError, Tx, now, on_conn};
use crate::identity::Permission;
use crate::ids::PriceId;

/// Longest region name accepted.
const MAX_REGION_LEN: usize = 64;

/// A price to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPrice {
    pub key: PriceKey,
    pub per_device_hour: Money,
    /// When it takes effect; now when absent.
    pub effective_from: Option<DateTime<Utc>>,
}

/// A stored price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrice {
    pub id: PriceId,
    pub price: Price,
    pub effective_from: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: PriceId,
    cloud: String,
    region: String,
    accelerator: String,
    capacity: String,
    currency: String,
    micros_per_device_hour: i64,
    effective_from: DateTime<Utc>,
    source: String,
    created_at: DateTime<Utc>,
}

impl Row {
    fn into_price(self) -> Result<StoredPrice, StoreError> {
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|_| StoreError::Corrupt("price currency"))?;
        let cloud: Cloud = self
            .cloud
            .parse()
            .map_err(|_| StoreError::Corrupt("price cloud"))?;
        let source: PriceSource = self
            .source
            .parse()
            .map_err(|_| StoreError::Corrupt("price source"))?;
        let capacity: Capacity = self
            .capacity
            .parse()
            .map_err(|_| StoreError::Corrupt("price capacity"))?;
        Ok(StoredPrice {
            id: self.id,
            price: Price {
                key: PriceKey::new(cloud, &self.region, &self.accelerator, capacity),
                per_device_hour: Money::from_micros(self.micros_per_device_hour, currency),
                effective_from: UnixSeconds(self.effective_from.timestamp()),
                source,
            },
            effective_from: self.effective_from,
            created_at: self.created_at,
        })
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn validate(key: &PriceKey, per_device_hour: Money) -> Result<(), StoreError> {
    let region = &key.region;
    if region.is_empty()
        || region.len() > MAX_REGION_LEN
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "region",
            format!(
                "use the cloud's region id, 1 to {MAX_REGION_LEN} of a-z, 0-9 and '-' (e.g. us-east-1, cn-hangzhou)"
            ),
        ));
    }
    if Accelerator::find(&key.accelerator).is_none() {
        return Err(invalid(
            "accelerator",
            format!(
                "{:?} is not in the accelerator catalog; `modelfleet catalog` lists the ids",
                key.accelerator
            ),
        ));
    }
    if per_device_hour.micros() < 0 {
        return Err(invalid("pricePerDeviceHour", "cannot be negative"));
    }
    Ok(())
}

/// `at` without its fraction of a second. Prices are kept to the second:
/// billing rates by whole seconds, and the unique index on a key and its
/// time then refuses a second price for the same second, where times a
/// millisecond apart would both be stored and make the catalog ambiguous.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::seconds(1)).unwrap_or(at)
}

impl Tx {
    /// Sets a price from `effective_from` (now when absent) on. Platform
    /// admins only; the time cannot be in the past, so what was billed
    /// stays billed.
    pub async fn set_price(&mut self, new: &NewPrice) -> Result<StoredPrice, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "price"))?;
        validate(&new.key, new.per_device_hour)?;
        let at = whole_second(now());
        let effective_from = whole_second(new.effective_from.unwrap_or(at));
        if effective_from < at {
            return Err(invalid(
                "effectiveFrom",
                "a price applies only from now on; to correct a past month, add a credit to its invoice",
            ));
        }
        self.insert_price(
            &new.key,
            new.per_device_hour,
            effective_from,
            PriceSource::Admin,
        )
        .await
    }

    /// Adds, as defaults, the catalog's prices for keys that have no price
    /// yet (what `serve` seeds from its fleet file; a key an admin or an
    /// earlier start priced is left alone). Returns how many.
    pub async fn seed_prices(&mut self, catalog: &PriceCatalog) -> Result<usize, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "price"))?;
        let mut added = 0;
        for price in catalog.prices() {
            let effective_from = DateTime::from_timestamp(price.effective_from.0, 0)
                .ok_or_else(|| invalid("effectiveFrom", "out of range"))?;
            let (exists,): (i64,) = on_conn!(self.conn(), c => sqlx::query_as(
                "SELECT COUNT(*) FROM prices WHERE cloud = $1 AND region = $2 AND accelerator = $3 \
                 AND capacity = $4")
                .bind(price.key.cloud.name()).bind(&price.key.region).bind(&price.key.accelerator)
                .bind(price.key.capacity.name())
                .fetch_one(c).await)?;
            if exists == 0 {
                self.insert_price(
                    &price.key,
                    price.per_device_hour,
                    effective_from,
                    PriceSource::Default,
                )
                .await?;
                added += 1;
            }
        }
        Ok(added)
    }

    async fn insert_price(
        &mut self,
        key: &PriceKey,
        per_device_hour: Money,
        effective_from: DateTime<Utc>,
        source: PriceSource,
    ) -> Result<StoredPrice, StoreError> {
        let id = PriceId::new();
        let effective_from = whole_second(effective_from);
        let created_at = now();
        let inserted = on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO prices (id, cloud, region, accelerator, capacity, currency, \
             micros_per_device_hour, effective_from, source, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (cloud, region, accelerator, capacity, effective_from) DO NOTHING")
            .bind(id).bind(key.cloud.name()).bind(&key.region).bind(&key.accelerator)
            .bind(key.capacity.name()).bind(per_device_hour.currency().code())
            .bind(per_device_hour.micros()).bind(effective_from).bind(source.name())
            .bind(created_at)
            .execute(c).await.map(|r| r.rows_affected()))?;
        if inserted == 0 {
            return Err(StoreError::Conflict {
                kind: "price",
                name: format!("{key} from {effective_from}"),
            });
        }
        self.note("create", "prices", None, id.0, &key.to_string());
        Ok(StoredPrice {
            id,
            price: Price {
                key: key.clone(),
                per_device_hour,
                effective_from: UnixSeconds(effective_from.timestamp()),
                source,
            },
            effective_from,
            created_at,
        })
    }
}

impl Store {
    /// Every price ever set, by key and then by time.
    pub async fn prices(&self) -> Result<Vec<StoredPrice>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT id, cloud, region, accelerator, capacity, currency, \
             micros_per_device_hour, effective_from, source, created_at FROM prices \
             ORDER BY cloud, region, accelerator, capacity, effective_from")
            .fetch_all(c).await)?;
        rows.into_iter().map(Row::into_price).collect()
    }

    /// The catalog billing rates with.
    pub async fn price_catalog(&self) -> Result<PriceCatalog, StoreError> {
        let mut catalog = PriceCatalog::new();
        for stored in self.prices().await? {
            catalog
                .insert(stored.price)
                .map_err(|_| StoreError::Corrupt("price catalog"))?;
        }
        Ok(catalog)
    }
}
