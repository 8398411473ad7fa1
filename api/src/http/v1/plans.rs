//! `/api/v1/plans`: what a model would run on, across every registered
//! cluster: the ranked plans, every pool that was rejected and why, and for
//! each plan whether the tenant's quota admits it now. Nothing changes.
//!
//! The request and plan types here are shared with `deployments`, whose
//! body is a plan request with a name.

use axum::Json;
use axum::extract::State;
use modelfleet_core::billing::{Discounts, ExactAmount};
use modelfleet_core::crd::{Placement, RuntimeChoice, Serving};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Money;
use modelfleet_core::planner::{Plan, SpotPolicy};
use modelfleet_core::precision::PrecisionChoice;
use modelfleet_core::quota::QuotaExceeded;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clusters::ClusterView;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
use crate::ids::TenantId;
use crate::service::{self, rejections};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}

/// Engine settings; everything is optional and the planner picks what fits.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServingOptions {
    #[schema(value_type = Option<crate::http::schema::PrecisionChoiceSchema>)]
    pub precision: Option<PrecisionChoice>,
    #[schema(value_type = Option<crate::http::schema::RuntimeChoiceSchema>)]
    pub runtime: Option<RuntimeChoice>,
    /// Longest sequence in tokens; default 8192 or the model's context.
    pub max_model_len: Option<u32>,
    /// Sequences of `maxModelLen` tokens held at once per replica; default 16.
    pub concurrency: Option<u32>,
    /// Share of device memory the engine may use, above 0.05 and up to 1.0.
    pub gpu_memory_utilization: Option<f64>,
    pub tensor_parallel_size: Option<u32>,
    pub pipeline_parallel_size: Option<u32>,
}

/// Where the model may run; empty lists allow everything.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementOptions {
    /// Accelerator catalog ids (`h100-80gb`, `ascend-910b`, …).
    #[serde(default)]
    pub accelerators: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::schema::CloudSchema>)]
    pub clouds: Vec<Cloud>,
    #[serde(default)]
    pub regions: Vec<String>,
    /// Only this pool, written `cluster/pool`.
    pub pool: Option<String>,
    #[schema(value_type = Option<crate::http::schema::SpotPolicySchema>)]
    pub spot: Option<SpotPolicy>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanRequest {
    /// A catalog model id, e.g. `llama-3.1-70b`; or the id of the model
    /// `architecture` describes or `source` holds.
    pub model: String,
    /// A model the catalog does not know, described as a catalog model is
    /// (the fields `modelfleet model --source` prints); its `id` must be
    /// `model`.
    #[schema(value_type = Option<Object>)]
    pub architecture: Option<modelfleet_core::model::ModelArch>,
    /// Where the weights are. For a model the catalog does not know and no
    /// `architecture`, a public `hf://` or `modelscope://` source is read
    /// (its config.json and safetensors headers, never the weights) to size
    /// it; for any other, `POST /models/inspect` with `sourceCredential`
    /// gives the `architecture`.
    pub source: Option<String>,
    /// Default 1.
    pub replicas: Option<u32>,
    pub serving: Option<ServingOptions>,
    pub placement: Option<PlacementOptions>,
    /// The most all replicas together may cost per hour.
    #[schema(value_type = Option<crate::http::schema::MoneySchema>)]
    pub max_cost_per_hour: Option<Money>,
    /// Whose quota to check (platform admins); tenants leave it out.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

impl From<ServingOptions> for Serving {
    fn from(options: ServingOptions) -> Self {
        let ServingOptions {
            precision,
            runtime,
            max_model_len,
            concurrency,
            gpu_memory_utilization,
            tensor_parallel_size,
            pipeline_parallel_size,
        } = options;
        Serving {
            runtime: runtime.unwrap_or_default(),
            precision: precision.unwrap_or_default(),
            max_model_len,
            concurrency,
            gpu_memory_utilization,
            tensor_parallel_size,
            pipeline_parallel_size,
            // Engine image and arguments are the platform's to choose, not
            // a tenant's: the request has no field for them.
            extra_args: Vec::new(),
            image: None,
        }
    }
}

impl From<PlacementOptions> for Placement {
    fn from(options: PlacementOptions) -> Self {
        let PlacementOptions {
            accelerators,
            clouds,
            regions,
            pool,
            spot,
        } = options;
        Placement {
            accelerators,
            clouds,
            regions,
            pool,
            spot: spot.unwrap_or_default(),
        }
    }
}

/// Whether the tenant's quota admits a plan now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaCheck {
    pub allowed: bool,
    /// Which limit, how much is in use and how much the plan needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<&Result<(), QuotaExceeded>> for QuotaCheck {
    fn from(r: &Result<(), QuotaExceeded>) -> Self {
        QuotaCheck {
            allowed: r.is_ok(),
            detail: r.as_ref().err().map(ToString::to_string),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    /// 1 is the best.
    pub rank: usize,
    /// `cluster/pool`.
    pub pool: String,
    pub cluster: String,
    #[schema(value_type = crate::http::schema::CloudSchema)]
    pub cloud: Cloud,
    pub region: String,
    pub accelerator: String,
    /// `vllm` or `vllm-ascend`.
    pub runtime: String,
    /// `on-demand` or `spot`.
    pub capacity_type: String,
    #[schema(value_type = crate::http::schema::PrecisionSchema)]
    pub precision: modelfleet_core::precision::Precision,
    pub tensor_parallel: u32,
    pub pipeline_parallel: u32,
    pub nodes_per_replica: u32,
    pub devices_per_replica: u32,
    pub replicas: u32,
    pub max_model_len: u32,
    /// Tokens the KV cache of one replica holds.
    pub kv_cache_tokens: u64,
    /// Sequences of `maxModelLen` tokens one replica holds at once.
    pub max_concurrency: u64,
    #[schema(value_type = Option<crate::http::schema::MoneySchema>)]
    pub price_per_device_hour: Option<Money>,
    /// All replicas together.
    /// All replicas together, at list price.
    #[schema(value_type = Option<crate::http::schema::MoneySchema>)]
    pub cost_per_hour: Option<Money>,
    /// The tenant's discount on this cloud, in basis points (1500 = 15 %).
    pub discount_basis_points: u32,
    /// What an hour of this plan is billed: `costPerHour` less the
    /// discount, rounded half up to the cent or fen as invoice lines are.
    #[schema(value_type = Option<crate::http::schema::MoneySchema>)]
    pub billed_cost_per_hour: Option<Money>,
    /// Choices made for the caller (e.g. a narrower precision).
    pub notes: Vec<String>,
    /// Absent when no tenant's quota applies (platform admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaCheck>,
}

impl PlanView {
    pub(crate) fn new(plan: &Plan, quota: Option<QuotaCheck>, discounts: &Discounts) -> Self {
        let discount_basis_points = discounts.basis_points_for(plan.pool.cloud);
        let billed_cost_per_hour = plan.cost_per_hour.and_then(|list| {
            let exact = ExactAmount(i128::from(list.micros()) * 3600);
            let discount = exact.round_share(discount_basis_points, list.currency())?;
            let list = exact.round(list.currency())?;
            Some(Money::from_micros(
                list.micros() - discount.micros(),
                list.currency(),
            ))
        });
        PlanView {
            discount_basis_points,
            billed_cost_per_hour,
            rank: plan.rank,
            pool: plan.pool.to_string(),
            cluster: plan.pool.cluster.clone(),
            cloud: plan.pool.cloud,
            region: plan.pool.region.clone(),
            accelerator: plan.accelerator.clone(),
            runtime: plan.runtime.to_string(),
            capacity_type: plan.capacity_type.to_string(),
            precision: plan.precision,
            tensor_parallel: plan.tensor_parallel,
            pipeline_parallel: plan.pipeline_parallel,
            nodes_per_replica: plan.nodes_per_replica,
            devices_per_replica: plan.devices_per_replica,
            replicas: plan.replicas,
            max_model_len: plan.max_model_len,
            kv_cache_tokens: plan.kv_cache_tokens,
            max_concurrency: plan.max_concurrency,
            price_per_device_hour: plan.price_per_device_hour,
            cost_per_hour: plan.cost_per_hour,
            notes: plan.notes.clone(),
            quota,
        }
    }
}

pub use crate::service::RejectionView;

/// A registered cluster whose pools are unknown right now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnreachableCluster {
    pub cluster: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanReportView {
    pub model: String,
    /// Feasible plans, best first.
    pub plans: Vec<PlanView>,
    /// Every pool without a plan.
    pub rejections: Vec<RejectionView>,
    /// Clusters left out because their pools could not be read.
    pub unreachable_clusters: Vec<UnreachableCluster>,
}

pub(crate) fn unreachable(views: &[ClusterView]) -> Vec<UnreachableCluster> {
    views
        .iter()
        .filter_map(|v| {
            v.pools.as_ref().err().map(|reason| UnreachableCluster {
                cluster: v.cluster.name.clone(),
                reason: reason.clone(),
            })
        })
        .collect()
}

/// Ranks every pool of every cluster for a request.
#[utoipa::path(post, path = "/plans", operation_id = "create_plans", tag = "plans", security(("bearer" = [])),
    request_body = PlanRequest,
    responses(
        (status = 200, body = PlanReportView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PlanRequest>,
) -> Result<Json<PlanReportView>, ApiError> {
    let PlanRequest {
        model,
        architecture,
        source,
        replicas,
        serving,
        placement,
        max_cost_per_hour,
        tenant,
    } = body;
    let planned = state
        .hub()
        .plan(
            &caller,
            service::PlanRequest {
                model,
                architecture,
                source,
                source_secret: None,
                replicas,
                serving: serving.unwrap_or_default().into(),
                placement: placement.unwrap_or_default().into(),
                max_cost_per_hour,
                tenant,
            },
        )
        .await?;
    Ok(Json(planned.into()))
}

impl From<service::Planned> for PlanReportView {
    fn from(planned: service::Planned) -> Self {
        PlanReportView {
            model: planned.report.model.clone(),
            plans: planned
                .plans
                .iter()
                .map(|p| {
                    let quota = p.quota.as_ref().map(QuotaCheck::from);
                    PlanView::new(&p.plan, quota, &planned.discounts)
                })
                .collect(),
            rejections: rejections(&planned.report),
            unreachable_clusters: unreachable(&planned.clusters),
        }
    }
}
