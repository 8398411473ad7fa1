//! `/api/v1/prices`: the price catalog billing rates usage with. Anyone
//! signed in reads it (tenants see what their deployments cost); platform
//! admins add prices, which take effect now or later, never in the past.
//! `/api/v1/prices/tokens`: the same for token prices, per million input
//! and output tokens of a model, from a whole hour on.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Money;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
use crate::ids::PriceId;
use crate::service::prices::{CatalogPrice, CatalogTokenPrice};
pub use crate::service::prices::{CreatePrice, CreateTokenPrice};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(list_tokens, create_token))
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

fn view(price: CatalogPrice) -> PriceView {
    let CatalogPrice { stored, in_force } = price;
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
#[utoipa::path(get, path = "/prices", operation_id = "list_prices", tag = "prices", security(("bearer" = [])),
    responses(
        (status = 200, body = PriceList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PriceList>, ApiError> {
    let items = state.hub().prices(&caller).await?;
    let items = items.into_iter().map(view).collect();
    Ok(Json(PriceList { items }))
}

/// Sets a price. Platform admins.
#[utoipa::path(post, path = "/prices", operation_id = "create_price", tag = "prices", security(("bearer" = [])),
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
    let created = state.hub().create_price(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(view(created))))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPriceView {
    #[schema(value_type = uuid::Uuid)]
    pub id: PriceId,
    /// The catalog model id.
    pub model: String,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub price_per_million_input: Money,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub price_per_million_output: Money,
    /// A whole UTC hour.
    pub effective_from: DateTime<Utc>,
    /// Whether this is the price in force now for its model.
    pub in_force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPriceList {
    pub items: Vec<TokenPriceView>,
}

fn token_view(price: CatalogTokenPrice) -> TokenPriceView {
    let CatalogTokenPrice { stored, in_force } = price;
    TokenPriceView {
        id: stored.id,
        model: stored.price.model,
        price_per_million_input: stored.price.per_million_input,
        price_per_million_output: stored.price.per_million_output,
        effective_from: stored.effective_from,
        in_force,
    }
}

/// Every token price, past, present and future, by model and time. A
/// tenant on token pricing pays these for deployments of the model.
#[utoipa::path(get, path = "/prices/tokens", operation_id = "list_token_prices", tag = "prices", security(("bearer" = [])),
    responses(
        (status = 200, body = TokenPriceList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokenPriceList>, ApiError> {
    let items = state.hub().token_prices(&caller).await?;
    let items = items.into_iter().map(token_view).collect();
    Ok(Json(TokenPriceList { items }))
}

/// Sets a model's token price from a whole hour not yet begun. Platform
/// admins.
#[utoipa::path(post, path = "/prices/tokens", operation_id = "create_token_price", tag = "prices", security(("bearer" = [])),
    request_body = CreateTokenPrice,
    responses(
        (status = 201, body = TokenPriceView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTokenPrice>,
) -> Result<(StatusCode, Json<TokenPriceView>), ApiError> {
    let created = state.hub().create_token_price(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(token_view(created))))
}
