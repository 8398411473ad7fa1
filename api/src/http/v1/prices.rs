//! `/api/v1/prices`: the price catalog billing rates usage with. Anyone
//! signed in reads it (tenants see what their deployments cost); platform
//! admins add prices, which take effect now or later, never in the past.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use modelfleet_core::billing::{Capacity, PriceKey};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
use crate::identity::Permission;
use crate::ids::PriceId;
use crate::store::{NewPrice, StoredPrice};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceView {
    #[schema(value_type = uuid::Uuid)]
    pub id: PriceId,
    #[schema(value_type = crate::http::schema::CloudSchema)]
    pub cloud: Cloud,
    pub region: String,
    pub accelerator: String,
    /// `on-demand` or `spot`.
    pub capacity: String,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub price_per_device_hour: Money,
    pub effective_from: DateTime<Utc>,
    /// `default` (seeded from list prices or the fleet file, unchecked
    /// against any contract) or `admin`.
    pub source: String,
    /// Whether this is the price in force now for its key.
    pub in_force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceList {
    pub items: Vec<PriceView>,
}

fn view(stored: StoredPrice, in_force: bool) -> PriceView {
    let p = stored.price;
    PriceView {
        id: stored.id,
        cloud: p.key.cloud,
        region: p.key.region,
        accelerator: p.key.accelerator,
        capacity: p.key.capacity.name().to_owned(),
        price_per_device_hour: p.per_device_hour,
        effective_from: stored.effective_from,
        source: p.source.name().to_owned(),
        in_force,
    }
}

/// Every price, past, present and future, by key and time.
#[utoipa::path(get, path = "/prices", tag = "prices", security(("bearer" = [])),
    responses(
        (status = 200, body = PriceList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PriceList>, ApiError> {
    caller.require(Permission::Read)?;
    let prices = state.store().prices().await?;
    let now = crate::store::now();
    // Sorted by key then time: the last row of a key that has started is
    // the one in force.
    let mut items: Vec<PriceView> = Vec::with_capacity(prices.len());
    for (i, stored) in prices.iter().enumerate() {
        let started = stored.effective_from <= now;
        let next_started = prices
            .get(i + 1)
            .is_some_and(|n| n.price.key == stored.price.key && n.effective_from <= now);
        items.push(view(stored.clone(), started && !next_started));
    }
    Ok(Json(PriceList { items }))
}

#[derive(Debug, Deserialize, ToSchema)]
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

/// Sets a price. Platform admins.
#[utoipa::path(post, path = "/prices", tag = "prices", security(("bearer" = [])),
    request_body = CreatePrice,
    responses(
        (status = 201, body = PriceView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePrice>,
) -> Result<(StatusCode, Json<PriceView>), ApiError> {
    caller.require(Permission::ManagePlatform)?;
    let capacity: Capacity = body
        .capacity
        .as_deref()
        .unwrap_or("on-demand")
        .parse()
        .map_err(|reason: String| ApiError::invalid("capacity", reason))?;
    let new = NewPrice {
        key: PriceKey::new(body.cloud, &body.region, &body.accelerator, capacity),
        per_device_hour: body.price_per_device_hour,
        effective_from: body.effective_from,
    };
    let mut tx = state.store().begin(&caller.actor).await?;
    let stored = tx.set_price(&new).await?;
    tx.commit_with(StatusCode::CREATED).await?;
    let in_force = stored.effective_from <= crate::store::now();
    Ok((StatusCode::CREATED, Json(view(stored, in_force))))
}
