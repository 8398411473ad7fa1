//! `/api/v1/tenants/{id}/discounts`: what a tenant pays less than list
//! prices, and `/api/v1/tenants/{id}/pricing`: whether it pays for device
//! time or for tokens (both set by platform admins).

use axum::Json;
use axum::extract::{Path, State};
use modelfleet_core::billing::{Discount, DiscountScope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenant_id;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
use crate::store::PricingModel;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_discounts, set_discounts))
        .routes(routes!(show_pricing, set_pricing))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscountView {
    /// `all`, or a cloud (`aws`, `aliyun`, `tencentcloud`, `huaweicloud`),
    /// which wins over `all` for that cloud.
    pub scope: String,
    /// Off list prices, in basis points: 1500 is 15 %.
    pub basis_points: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Discounts {
    pub items: Vec<DiscountView>,
}

fn discount_view(d: &Discount) -> DiscountView {
    DiscountView {
        scope: match d.scope {
            DiscountScope::All => "all".to_owned(),
            DiscountScope::Cloud(c) => c.name().to_owned(),
        },
        basis_points: d.percent_basis_points,
    }
}

impl Discounts {
    fn of(list: &[Discount]) -> Self {
        Discounts {
            items: list.iter().map(discount_view).collect(),
        }
    }

    fn parse(&self) -> Result<Vec<Discount>, ApiError> {
        let mut list = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let scope = match item.scope.as_str() {
                "all" => DiscountScope::All,
                cloud => DiscountScope::Cloud(cloud.parse().map_err(|_| {
                    ApiError::invalid(
                        "scope",
                        format!(
                            "{cloud:?} is neither `all` nor a cloud (aws, aliyun, tencentcloud, huaweicloud)"
                        ),
                    )
                })?),
            };
            let d = Discount::new(scope, item.basis_points)
                .map_err(|e| ApiError::invalid("basisPoints", e.to_string()))?;
            list.push(d);
        }
        Ok(list)
    }
}

/// A tenant's discounts.
#[utoipa::path(get, path = "/tenants/{id}/discounts", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = Discounts),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_discounts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Discounts>, ApiError> {
    let tenant = tenant_id(&id)?;
    Ok(Json(Discounts::of(
        &state.hub().discounts(&caller, tenant).await?,
    )))
}

/// Replaces a tenant's discounts; they apply to every month not yet
/// final. Platform admins.
#[utoipa::path(put, path = "/tenants/{id}/discounts", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = Discounts,
    responses(
        (status = 200, body = Discounts),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_discounts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Discounts>,
) -> Result<Json<Discounts>, ApiError> {
    let tenant = tenant_id(&id)?;
    let list = body.parse()?;
    state.hub().set_discounts(&caller, tenant, &list).await?;
    Ok(Json(Discounts::of(&list)))
}

/// How a tenant is billed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pricing {
    /// `time` (the default: device-hours) or `tokens` (each deployment
    /// whose model has a token price is billed by its input and output
    /// tokens; the others by time). Applies to every month not yet final.
    pub pricing_model: String,
}

/// How a tenant is billed.
#[utoipa::path(get, path = "/tenants/{id}/pricing", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = Pricing),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_pricing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Pricing>, ApiError> {
    let tenant = tenant_id(&id)?;
    let model = state.hub().pricing_model(&caller, tenant).await?;
    Ok(Json(Pricing {
        pricing_model: model.name().to_owned(),
    }))
}

/// Sets how a tenant is billed. Platform admins.
#[utoipa::path(put, path = "/tenants/{id}/pricing", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = Pricing,
    responses(
        (status = 200, body = Pricing),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_pricing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Pricing>,
) -> Result<Json<Pricing>, ApiError> {
    let tenant = tenant_id(&id)?;
    let model: PricingModel = body
        .pricing_model
        .parse()
        .map_err(|reason: String| ApiError::invalid("pricingModel", reason))?;
    state
        .hub()
        .set_pricing_model(&caller, tenant, model)
        .await?;
    Ok(Json(Pricing {
        pricing_model: model.name().to_owned(),
    }))
}
