//! A tenant's billing settings: `/api/v1/tenants/{id}/budget` (tenant
//! admins), `…/discounts` and `…/adjustments` (platform admins). Every
//! change is audited with its transaction.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use modelfleet_core::billing::{Adjustment, Discount, DiscountScope};
use modelfleet_core::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::billing::{self, BudgetStatus};
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, parse_id};
use crate::http::{ApiError, AppState, Caller};
use crate::identity::Permission;
use crate::ids::TenantId;
use crate::secret::Secret;
use crate::store::{BudgetAlert, NewBudget, StoredAdjustment};

use super::billing::period_param;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_budget, set_budget, delete_budget))
        .routes(routes!(budget_alerts))
        .routes(routes!(show_discounts, set_discounts))
        .routes(routes!(list_adjustments, create_adjustment))
}

// ---------------------------------------------------------------- budgets

fn tenant_id(id: &str) -> Result<TenantId, ApiError> {
    parse_id(id, "tenant")
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetBudget {
    /// Per calendar month (UTC), e.g. `"5000.00 USD"`.
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub amount: Money,
    /// Refuse new deployments once the month's spend reaches the budget.
    #[serde(default)]
    pub refuse_at_limit: bool,
    /// Where alerts at 80 % and 100 % are posted (JSON, signed).
    pub webhook_url: Option<String>,
    /// Signs each delivery: `Modelfleet-Signature: t=<unix>,v1=<hex
    /// HMAC-SHA256(secret, "<t>.<body>")>`. At least 16 characters;
    /// required with a webhook URL. Never shown again.
    pub webhook_secret: Option<String>,
}

/// A tenant's budget and this month's spend against it.
#[utoipa::path(get, path = "/tenants/{id}/budget", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = Object),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BudgetStatus>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = tenant_id(&id)?;
    billing::budget_status(state.store(), caller.scope(), tenant)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("budget"))
}

/// Sets a tenant's monthly budget. Tenant admins and platform admins.
#[utoipa::path(put, path = "/tenants/{id}/budget", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = SetBudget,
    responses(
        (status = 200, body = Object),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetBudget>,
) -> Result<Json<BudgetStatus>, ApiError> {
    let tenant = tenant_id(&id)?;
    state.store().tenant(caller.scope(), tenant).await?;
    caller.require(Permission::ManageTenant)?;
    let webhook = match (body.webhook_url, body.webhook_secret) {
        (Some(url), Some(secret)) => Some((url, Secret::new(secret))),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "webhookSecret",
                "a webhook needs a secret to sign its deliveries with",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "webhookUrl",
                "a secret without a webhook URL signs nothing; give both or neither",
            ));
        }
    };
    let new = NewBudget {
        per_month: body.amount,
        refuse_at_limit: body.refuse_at_limit,
        webhook,
    };
    let mut tx = state.store().begin(&caller.actor).await?;
    tx.set_budget(state.keyring(), tenant, &new).await?;
    tx.commit_with(StatusCode::OK).await?;
    billing::budget_status(state.store(), caller.scope(), tenant)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("budget"))
}

/// Removes a tenant's budget: no more alerts or refusals.
#[utoipa::path(delete, path = "/tenants/{id}/budget", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant_id(&id)?;
    state.store().tenant(caller.scope(), tenant).await?;
    caller.require(Permission::ManageTenant)?;
    let mut tx = state.store().begin(&caller.actor).await?;
    if !tx.delete_budget(tenant).await? {
        tx.rollback().await?;
        return Err(ApiError::not_found("budget"));
    }
    tx.commit_with(StatusCode::NO_CONTENT).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<BudgetAlert>,
}

/// The budget alerts raised for a tenant, newest first, with their
/// webhook delivery state.
#[utoipa::path(get, path = "/tenants/{id}/budget/alerts", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = AlertList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn budget_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertList>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = tenant_id(&id)?;
    let items = state.store().budget_alerts(caller.scope(), tenant).await?;
    Ok(Json(AlertList { items }))
}

// ---------------------------------------------------------------- discounts

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
    caller.require(Permission::Read)?;
    let tenant = tenant_id(&id)?;
    let list = state.store().discounts(caller.scope(), tenant).await?;
    Ok(Json(Discounts {
        items: list.iter().map(discount_view).collect(),
    }))
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
    state.store().tenant(caller.scope(), tenant).await?;
    caller.require(Permission::ManagePlatform)?;
    let mut list = Vec::with_capacity(body.items.len());
    for item in &body.items {
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
    let mut tx = state.store().begin(&caller.actor).await?;
    tx.set_discounts(tenant, &list).await?;
    tx.commit_with(StatusCode::OK).await?;
    Ok(Json(Discounts {
        items: list.iter().map(discount_view).collect(),
    }))
}

// ---------------------------------------------------------------- adjustments

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAdjustment {
    /// The open month it applies to, like `2026-11`; default this month.
    pub period: Option<String>,
    /// `credit` (taken off the invoice) or `charge` (added to it).
    pub kind: String,
    /// How much, in whole cents or fen: `"25.00 USD"`.
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub amount: Money,
    /// What it corrects: shown on the invoice line.
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<StoredAdjustment>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdjustmentParams {
    /// The month, like `2026-11`; default this month.
    pub period: Option<String>,
}

/// A tenant's credits and corrections for a month.
#[utoipa::path(get, path = "/tenants/{id}/adjustments", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id"), AdjustmentParams),
    responses(
        (status = 200, body = AdjustmentList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_adjustments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<AdjustmentParams>,
) -> Result<Json<AdjustmentList>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = tenant_id(&id)?;
    let period = period_param(params.period.as_deref())?;
    let items = state
        .store()
        .adjustments(caller.scope(), tenant, period)
        .await?;
    Ok(Json(AdjustmentList { items }))
}

/// Adds a credit or correction to a month that is still open; it becomes
/// a line of that month's invoice. Platform admins.
#[utoipa::path(post, path = "/tenants/{id}/adjustments", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = CreateAdjustment,
    responses(
        (status = 201, body = Object),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_adjustment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateAdjustment>,
) -> Result<(StatusCode, Json<StoredAdjustment>), ApiError> {
    let tenant = tenant_id(&id)?;
    state.store().tenant(caller.scope(), tenant).await?;
    caller.require(Permission::ManagePlatform)?;
    let period = period_param(body.period.as_deref())?;
    let amount = match body.kind.as_str() {
        "credit" => Money::from_micros(-body.amount.micros(), body.amount.currency()),
        "charge" => body.amount,
        other => {
            return Err(ApiError::invalid(
                "kind",
                format!("{other:?} is neither `credit` nor `charge`"),
            ));
        }
    };
    let adjustment = Adjustment {
        description: body.description,
        amount,
    };
    let mut tx = state.store().begin(&caller.actor).await?;
    let stored = tx.add_adjustment(tenant, period, &adjustment).await?;
    tx.commit_with(StatusCode::CREATED).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}
