//! The price catalog billing rates usage with. Anyone signed in reads it
//! (tenants see what their deployments cost); platform admins add prices,
//! which take effect now or later, never in the past. Token prices (per
//! million input and output tokens of a model) sit beside them and take
//! effect on whole hours.

use chrono::{DateTime, Utc};
use http::StatusCode;
use modelfleet_core::billing::{Capacity, PriceKey};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Money;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{Caller, Error, Hub, Result};
use crate::identity::Permission;
use crate::store::{NewPrice, NewTokenPrice, StoredPrice, StoredTokenPrice};

/// A request to add a price.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePrice {
    #[schema(value_type = crate::http::schema::CloudSchema)]
    pub cloud: Cloud,
    /// The cloud's region id, e.g. `us-east-1`, `cn-hangzhou`.
    pub region: String,
    /// An accelerator catalog id, e.g. `h100-80gb`, `ascend-910b`.
    pub accelerator: String,
    /// `on-demand` (default) or `spot`.
    pub capacity: Option<String>,
    /// Per device and hour, e.g. `"6.88 USD"` or `{"amount": "38.50", "currency": "CNY"}`.
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub price_per_device_hour: Money,
    /// When it takes effect (now when absent); never in the past.
    pub effective_from: Option<DateTime<Utc>>,
}

/// A price in the catalog, and whether it is the one in force now for its
/// key.
#[derive(Debug, Clone)]
pub struct CatalogPrice {
    pub stored: StoredPrice,
    pub in_force: bool,
}

impl Hub {
    /// Every price, past, present and future, by key and time.
    pub async fn prices(&self, caller: &Caller) -> Result<Vec<CatalogPrice>> {
        caller.require(Permission::Read)?;
        let prices = self.store.prices().await?;
        let now = crate::store::now();
        // Sorted by key then time: the last row of a key that has started is
        // the one in force.
        let mut items = Vec::with_capacity(prices.len());
        for (i, stored) in prices.iter().enumerate() {
            let started = stored.effective_from <= now;
            let next_started = prices
                .get(i + 1)
                .is_some_and(|n| n.price.key == stored.price.key && n.effective_from <= now);
            items.push(CatalogPrice {
                stored: stored.clone(),
                in_force: started && !next_started,
            });
        }
        Ok(items)
    }

    /// Adds a price (platform admins).
    pub async fn create_price(
        &self,
        caller: &Caller,
        request: CreatePrice,
    ) -> Result<CatalogPrice> {
        caller.require(Permission::ManagePlatform)?;
        let capacity: Capacity = request
            .capacity
            .as_deref()
            .unwrap_or("on-demand")
            .parse()
            .map_err(|reason: String| Error::invalid("capacity", reason))?;
        let new = NewPrice {
            key: PriceKey::new(
                request.cloud,
                &request.region,
                &request.accelerator,
                capacity,
            ),
            per_device_hour: request.price_per_device_hour,
            effective_from: request.effective_from,
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        let stored = tx.set_price(&new).await?;
        tx.commit_with(StatusCode::CREATED).await?;
        let in_force = stored.effective_from <= crate::store::now();
        Ok(CatalogPrice { stored, in_force })
    }
}

/// A request to add a model's token price.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenPrice {
    /// The catalog model id deployments serve, e.g. `llama-3.1-8b`.
    pub model: String,
    /// Per million input (prompt) tokens, e.g. `"0.50 USD"`.
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub price_per_million_input: Money,
    /// Per million output (completion) tokens, in the same currency.
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub price_per_million_output: Money,
    /// A whole UTC hour not yet begun (e.g. `2026-12-01T00:00:00Z`); the
    /// next whole hour when absent. Tokens are summed by the hour, so a
    /// price cannot start part-way through one.
    pub effective_from: Option<DateTime<Utc>>,
}

/// A token price in the catalog, and whether it is the one in force now
/// for its model.
#[derive(Debug, Clone)]
pub struct CatalogTokenPrice {
    pub stored: StoredTokenPrice,
    pub in_force: bool,
}

impl Hub {
    /// Every token price, past, present and future, by model and time.
    pub async fn token_prices(&self, caller: &Caller) -> Result<Vec<CatalogTokenPrice>> {
        caller.require(Permission::Read)?;
        let prices = self.store.token_prices().await?;
        let now = crate::store::now();
        let mut items = Vec::with_capacity(prices.len());
        for (i, stored) in prices.iter().enumerate() {
            let started = stored.effective_from <= now;
            let next_started = prices
                .get(i + 1)
                .is_some_and(|n| n.price.model == stored.price.model && n.effective_from <= now);
            items.push(CatalogTokenPrice {
                stored: stored.clone(),
                in_force: started && !next_started,
            });
        }
        Ok(items)
    }

    /// Adds a model's token price (platform admins), audited with it.
    pub async fn create_token_price(
        &self,
        caller: &Caller,
        request: CreateTokenPrice,
    ) -> Result<CatalogTokenPrice> {
        caller.require(Permission::ManagePlatform)?;
        let new = NewTokenPrice {
            model: request.model,
            per_million_input: request.price_per_million_input,
            per_million_output: request.price_per_million_output,
            effective_from: request.effective_from,
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        let stored = tx.set_token_price(&new).await?;
        tx.commit_with(StatusCode::CREATED).await?;
        let in_force = stored.effective_from <= crate::store::now();
        Ok(CatalogTokenPrice { stored, in_force })
    }
}
