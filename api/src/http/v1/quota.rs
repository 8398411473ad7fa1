//! `/api/v1/quota`: a tenant's limits and what its live deployments hold
//! against each. Also the quota types `tenants` reads and writes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use modelfleet_core::model::ParamCount;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::quota::{Amount, Limit, Quota, Usage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Problem;
use crate::http::extract::ApiQuery;
use crate::http::{ApiError, AppState, Caller};
use crate::identity::{Permission, Scope};
use crate::ids::TenantId;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// A tenant's limits. Absent means "no limit of this kind".
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaLimits {
    /// Devices per accelerator class, by catalog id: `{"h100-80gb": 16}`.
    #[serde(default)]
    pub devices_per_accelerator: BTreeMap<String, u64>,
    /// Devices of all classes together.
    pub total_devices: Option<u64>,
    /// Deployments that exist at once.
    pub deployments: Option<u64>,
    /// The largest model, in parameters; requests may also write text such
    /// as `"70B"`.
    #[schema(value_type = Option<u64>)]
    pub max_model_params: Option<ParamCount>,
    /// What all live deployments may cost per hour, at most one per currency.
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::schema::MoneySchema>)]
    pub spend_per_hour: Vec<Money>,
}

impl QuotaLimits {
    pub fn into_quota(self) -> Result<Quota, ApiError> {
        let QuotaLimits {
            devices_per_accelerator,
            total_devices,
            deployments,
            max_model_params,
            spend_per_hour,
        } = self;
        let mut spend: BTreeMap<Currency, Money> = BTreeMap::new();
        for ceiling in spend_per_hour {
            if spend.insert(ceiling.currency(), ceiling).is_some() {
                return Err(ApiError::invalid(
                    "quota.spendPerHour",
                    format!(
                        "{} is given twice; give one ceiling per currency",
                        ceiling.currency()
                    ),
                ));
            }
        }
        Ok(Quota {
            devices_per_accelerator,
            total_devices,
            deployments,
            max_model_params,
            spend_per_hour: spend,
        })
    }
}

impl From<Quota> for QuotaLimits {
    fn from(q: Quota) -> Self {
        QuotaLimits {
            devices_per_accelerator: q.devices_per_accelerator,
            total_devices: q.total_devices,
            deployments: q.deployments,
            max_model_params: q.max_model_params,
            spend_per_hour: q.spend_per_hour.into_values().collect(),
        }
    }
}

/// One limit and what is in use against it, in words.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitUse {
    /// `h100-80gb devices`, `total devices`, `concurrent deployments`,
    /// `model size`, `hourly spend in USD`.
    pub limit: String,
    pub in_use: String,
    pub allowed: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    #[schema(value_type = uuid::Uuid)]
    pub tenant: TenantId,
    pub limits: QuotaLimits,
    /// Every limit that is set, with what is in use.
    pub usage: Vec<LimitUse>,
}

fn row(limit: Limit, in_use: Amount, allowed: Amount) -> LimitUse {
    LimitUse {
        limit: limit.to_string(),
        in_use: in_use.to_string(),
        allowed: allowed.to_string(),
    }
}

fn usage_rows(quota: &Quota, usage: &Usage) -> Vec<LimitUse> {
    let mut rows = Vec::new();
    for (accelerator, &max) in &quota.devices_per_accelerator {
        rows.push(row(
            Limit::AcceleratorDevices(accelerator.clone()),
            Amount::Count(usage.devices_of(accelerator)),
            Amount::Count(max),
        ));
    }
    if let Some(max) = quota.total_devices {
        rows.push(row(
            Limit::TotalDevices,
            Amount::Count(usage.total_devices()),
            Amount::Count(max),
        ));
    }
    if let Some(max) = quota.deployments {
        rows.push(row(
            Limit::Deployments,
            Amount::Count(usage.deployments),
            Amount::Count(max),
        ));
    }
    if let Some(max) = quota.max_model_params {
        // A per-deployment limit: nothing accumulates against it.
        rows.push(row(Limit::ModelSize, Amount::Count(0), Amount::Params(max)));
    }
    for (&currency, &ceiling) in &quota.spend_per_hour {
        let micros = i64::try_from(usage.spend_of(currency)).unwrap_or(i64::MAX);
        rows.push(row(
            Limit::SpendPerHour(currency),
            Amount::Money(Money::from_micros(micros, currency)),
            Amount::Money(ceiling),
        ));
    }
    rows
}

/// The quota of `tenant` and its use, as `scope` may see it.
pub(crate) async fn status(
    state: &AppState,
    scope: Scope,
    tenant: TenantId,
) -> Result<QuotaStatus, ApiError> {
    let quota = state.store().quota(scope, tenant).await?;
    let usage = state.store().usage(scope, tenant).await?;
    Ok(QuotaStatus {
        tenant,
        usage: usage_rows(&quota, &usage),
        limits: quota.into(),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuotaParams {
    /// The tenant; platform admins must name it.
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// The caller's tenant's limits and what is in use against each.
#[utoipa::path(get, path = "/quota", tag = "quota", security(("bearer" = [])),
    params(QuotaParams),
    responses(
        (status = 200, body = QuotaStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<QuotaParams>,
) -> Result<Json<QuotaStatus>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = caller.tenant(params.tenant)?;
    Ok(Json(status(&state, caller.scope(), tenant).await?))
}
