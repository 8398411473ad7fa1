//! Token prices and tenants' pricing models in the database.
//!
//! Token prices go forward only, like device prices ([`super::prices`]):
//! an admin's price takes effect on a whole hour that has not begun, no row
//! is ever changed (the table refuses it), and every price set is audited
//! with its transaction. A tenant's pricing model (`time` or `tokens`) is
//! one row per tenant that has left the default `time`.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelfleet_core::billing::{TokenPrice, TokenPriceCatalog, UnixSeconds};
use modelfleet_core::model::ModelArch;
use modelfleet_core::money::{Currency, Money};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::{DeploymentId, PriceId, TenantId};

/// Longest model id accepted.
const MAX_MODEL_LEN: usize = 128;

/// How a tenant is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PricingModel {
    /// By the device-hours its deployments hold (the default).
    #[default]
    Time,
    /// By the tokens its deployments answer, for every deployment whose
    /// model has a token price; by time for the others.
    Tokens,
}

impl PricingModel {
    pub fn name(self) -> &'static str {
        match self {
            PricingModel::Time => "time",
            PricingModel::Tokens => "tokens",
        }
    }
}

impl std::str::FromStr for PricingModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "time" => Ok(PricingModel::Time),
            "tokens" => Ok(PricingModel::Tokens),
            other => Err(format!(
                "{other:?} is not a pricing model; use time or tokens"
            )),
        }
    }
}

/// A token price to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTokenPrice {
    pub model: String,
    pub per_million_input: Money,
    pub per_million_output: Money,
    /// A whole hour not yet begun; the next whole hour when absent.
    pub effective_from: Option<DateTime<Utc>>,
}

/// A stored token price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokenPrice {
    pub id: PriceId,
    pub price: TokenPrice,
    pub effective_from: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

type Row = (
    PriceId,
    String,
    String,
    i64,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn stored(row: Row) -> Result<StoredTokenPrice, StoreError> {
    let (id, model, currency, input, output, effective_from, created_at) = row;
    let currency: Currency = currency
        .parse()
        .map_err(|_| StoreError::Corrupt("token price currency"))?;
    Ok(StoredTokenPrice {
        id,
        price: TokenPrice {
            model,
            per_million_input: Money::from_micros(input, currency),
            per_million_output: Money::from_micros(output, currency),
            effective_from: UnixSeconds(effective_from.timestamp()),
        },
        effective_from,
        created_at,
    })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The next whole hour after `at` (`at` itself when it is one).
pub fn next_whole_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    let hour = at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at);
    if hour == at {
        at
    } else {
        hour + TimeDelta::hours(1)
    }
}

impl Tx {
    /// Sets a model's token price from a whole hour not yet begun on (the
    /// next one when absent). Platform admins only.
    pub async fn set_token_price(
        &mut self,
        new: &NewTokenPrice,
    ) -> Result<StoredTokenPrice, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "token price"))?;
        let model = new.model.as_str();
        if model.is_empty()
            || model.len() > MAX_MODEL_LEN
            || model.trim() != model
            || model.chars().any(char::is_control)
        {
            return Err(invalid(
                "model",
                format!(
                    "name a catalog model id, 1 to {MAX_MODEL_LEN} characters (e.g. llama-3.1-8b)"
                ),
            ));
        }
        let in_catalog = ModelArch::find(model).is_ok_and(|m| m.id == model);
        if !in_catalog {
            let (served,): (i64,) = on_conn!(self.conn(), c => sqlx::query_as(
                "SELECT COUNT(*) FROM deployments WHERE model = $1")
                .bind(model).fetch_one(c).await)?;
            if served == 0 {
                return Err(invalid(
                    "model",
                    format!(
                        "{model:?} is neither in the model catalog nor served by any deployment; \
                         `modelfleet catalog` lists the ids"
                    ),
                ));
            }
        }
        let at = now();
        let effective_from = new.effective_from.unwrap_or_else(|| next_whole_hour(at));
        if effective_from.duration_trunc(TimeDelta::hours(1)).ok() != Some(effective_from) {
            return Err(invalid(
                "effectiveFrom",
                format!(
                    "{} is not a whole hour; tokens are summed by the hour, so a token price \
                     takes effect on the hour, e.g. {}",
                    effective_from.to_rfc3339(),
                    next_whole_hour(at).to_rfc3339()
                ),
            ));
        }
        if effective_from < at {
            return Err(invalid(
                "effectiveFrom",
                format!(
                    "a price applies only from an hour not yet begun ({} or later); to correct \
                     a past month, add a credit to its invoice",
                    next_whole_hour(at).to_rfc3339()
                ),
            ));
        }
        let price = TokenPrice {
            model: model.to_owned(),
            per_million_input: new.per_million_input,
            per_million_output: new.per_million_output,
            effective_from: UnixSeconds(effective_from.timestamp()),
        };
        price.validate().map_err(|e| {
            let field = if new.per_million_input.currency() != new.per_million_output.currency() {
                "pricePerMillionOutput"
            } else if new.per_million_input.micros() < 0 {
                "pricePerMillionInput"
            } else {
                "pricePerMillionOutput"
            };
            invalid(field, e.to_string())
        })?;
        let id = PriceId::new();
        let created_at = now();
        let inserted = on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO token_prices (id, model, currency, micros_per_million_input, \
             micros_per_million_output, effective_from, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (model, effective_from) DO NOTHING")
            .bind(id).bind(model).bind(price.currency().code())
            .bind(price.per_million_input.micros()).bind(price.per_million_output.micros())
            .bind(effective_from).bind(created_at)
            .execute(c).await.map(|r| r.rows_affected()))?;
        if inserted == 0 {
            return Err(StoreError::Conflict {
                kind: "token price",
                name: format!("{model} from {}", effective_from.to_rfc3339()),
            });
        }
        self.note(
            "create",
            "tokenprices",
            None,
            id.0,
            &format!("{model} from {}", effective_from.to_rfc3339()),
        );
        Ok(StoredTokenPrice {
            id,
            price,
            effective_from,
            created_at,
        })
    }

    /// Sets how a tenant is billed. Platform admins only.
    pub async fn set_pricing_model(
        &mut self,
        tenant: TenantId,
        model: PricingModel,
    ) -> Result<(), StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "pricing model"))?;
        let name = self.tenant_name(tenant).await?;
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO tenant_pricing (tenant_id, pricing_model, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET pricing_model = excluded.pricing_model, \
             updated_at = excluded.updated_at")
            .bind(tenant).bind(model.name()).bind(now())
            .execute(c).await.map(|_| ()))?;
        self.note("update", "pricingmodel", Some(tenant), tenant.0, &name);
        Ok(())
    }
}

impl Store {
    /// Every token price ever set, by model and then by time.
    pub async fn token_prices(&self) -> Result<Vec<StoredTokenPrice>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT id, model, currency, micros_per_million_input, micros_per_million_output, \
             effective_from, created_at FROM token_prices ORDER BY model, effective_from")
            .fetch_all(c).await)?;
        rows.into_iter().map(stored).collect()
    }

    /// The token prices billing rates with.
    pub async fn token_price_catalog(&self) -> Result<TokenPriceCatalog, StoreError> {
        let mut catalog = TokenPriceCatalog::new();
        for s in self.token_prices().await? {
            catalog
                .insert(s.price)
                .map_err(|_| StoreError::Corrupt("token price catalog"))?;
        }
        Ok(catalog)
    }

    /// How `tenant` is billed.
    pub async fn pricing_model(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<PricingModel, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let row: Option<(String,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT pricing_model FROM tenant_pricing WHERE tenant_id = $1")
            .bind(tenant).fetch_optional(c).await)?;
        match row {
            None => Ok(PricingModel::Time),
            Some((name,)) => name
                .parse()
                .map_err(|_| StoreError::Corrupt("pricing model")),
        }
    }

    /// The model each of `tenant`'s deployments serves (removed ones
    /// too: their usage is still billed).
    pub async fn deployment_models(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<HashMap<DeploymentId, String>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let rows: Vec<(DeploymentId, String)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT id, model FROM deployments WHERE tenant_id = $1")
            .bind(tenant).fetch_all(c).await)?;
        Ok(rows.into_iter().collect())
    }
}
