//! `/api/v1/deployments`: a tenant's models, through the hub's deployment
//! operations (`service::deployments`; placement is `service::placement`).
//! A deployment is addressed by its id or by its name.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use chrono::{DateTime, Utc};
use modelfleet_core::contract::tenancy;
use modelfleet_core::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::plans::{PlacementOptions, PlanView, ServingOptions};
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::page::{PageParams, paginate};
use crate::http::{ApiError, AppState, Caller};
use crate::ids::{DeploymentId, TenantId};
use crate::service::{self, DeploymentRef, ListRequest};
use crate::store::Deployment;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(logs))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDeployment {
    /// At most 40 lower-case letters, digits and '-', starting with a letter.
    #[schema(example = "llama70")]
    pub name: String,
    /// A catalog model id; or the id of the model `architecture`
    /// describes or `source` holds.
    #[schema(example = "llama-3.1-70b")]
    pub model: String,
    /// A model the catalog does not know, described as a catalog model is
    /// (the fields `modelfleet model --source` prints); its `id` must be
    /// `model`. For an `hf://` or `modelscope://` source, or an object
    /// store's with `sourceCredential`, it may be left out: the hub reads
    /// the model's config.json and safetensors headers.
    #[schema(value_type = Option<Object>)]
    pub architecture: Option<modelfleet_core::model::ModelArch>,
    /// Where the weights are (`s3://…`, `oss://…`, `obs://…`, `cos://…`,
    /// `hf://…`, `modelscope://…`, `https://…`, `pvc://…`); defaults to the
    /// hub's model store.
    pub source: Option<String>,
    /// A Secret in the tenant's namespace of each cluster it runs in whose
    /// keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `HF_TOKEN`,
    /// `MODELSCOPE_API_TOKEN` …) only the container fetching the weights
    /// gets.
    #[schema(example = "model-store-keys")]
    pub source_secret: Option<String>,
    /// A source credential the hub keeps for the tenant
    /// (`/api/v1/tenants/{id}/source-credentials`): the hub writes it as
    /// the Secret `modelfleet-source-<name>` in each cluster it places the
    /// deployment in, and the deployment's `sourceSecret` names that
    /// Secret; the hub also reads the model's files with it when it sizes
    /// a model the catalog does not know. Give this or `sourceSecret`, not
    /// both.
    #[schema(example = "store")]
    pub source_credential: Option<String>,
    /// Default 1.
    pub replicas: Option<u32>,
    pub serving: Option<ServingOptions>,
    pub placement: Option<PlacementOptions>,
    /// The most all replicas together may cost per hour.
    #[schema(value_type = Option<crate::http::schema::MoneySchema>)]
    pub max_cost_per_hour: Option<Money>,
    /// The tenant to deploy for (platform admins); tenants leave it out.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateDeployment {
    /// 0 keeps the deployment and its plan but frees its devices.
    pub replicas: u32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    #[schema(value_type = uuid::Uuid)]
    pub id: DeploymentId,
    #[schema(value_type = uuid::Uuid)]
    pub tenant: TenantId,
    pub name: String,
    pub model: String,
    pub cluster: String,
    pub namespace: String,
    /// `cluster/pool`.
    pub pool: String,
    pub accelerator: String,
    #[schema(value_type = crate::http::schema::PrecisionSchema)]
    pub precision: modelfleet_core::precision::Precision,
    pub devices_per_replica: u32,
    pub replicas: u32,
    pub ready_replicas: u32,
    /// Pending, Scheduling, Loading, Ready, Degraded, Failed, Deleting, …
    pub phase: String,
    pub status_message: Option<String>,
    /// `api` (through the hub) or `cluster` (applied into a cluster directly).
    pub source: String,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub replica_cost_per_hour: Money,
    /// Where each started replica's weights came from: `{pod, from, bytes}`
    /// with `from` one of `Download`, `NodeCache` (the node's model cache)
    /// or `PodVolume` (its own volume, after a restart), as its fetch said
    /// when it finished.
    #[schema(value_type = Vec<Object>)]
    pub weights: Vec<modelfleet_core::crd::PodWeights>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        DeploymentView {
            id: d.id,
            tenant: d.tenant,
            pool: format!("{}/{}", d.cluster, d.pool),
            name: d.name,
            model: d.model,
            cluster: d.cluster,
            namespace: d.namespace,
            accelerator: d.accelerator,
            precision: d.precision,
            devices_per_replica: d.devices_per_replica,
            replicas: d.replicas,
            ready_replicas: d.ready_replicas,
            phase: d.phase.as_str().to_owned(),
            status_message: d.status_message,
            source: match d.source {
                crate::store::Source::Api => "api".to_owned(),
                crate::store::Source::Cluster => "cluster".to_owned(),
            },
            replica_cost_per_hour: d.replica_cost_per_hour,
            weights: d.weights,
            created_at: d.created_at,
            updated_at: d.updated_at,
            deleted_at: d.deleted_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCreated {
    pub deployment: DeploymentView,
    /// The plan it was placed on.
    pub plan: PlanView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentList {
    pub items: Vec<DeploymentView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this tenant's (platform admins see every tenant's otherwise).
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
    /// Include deleted deployments.
    #[serde(default)]
    pub include_deleted: bool,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The caller's deployments with their live status.
#[utoipa::path(get, path = "/deployments", operation_id = "list_deployments", tag = "deployments", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, body = DeploymentList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DeploymentList>, ApiError> {
    let ListParams {
        tenant,
        include_deleted,
        limit,
        cursor,
    } = params;
    let deployments = state
        .hub()
        .deployments(
            &caller,
            &ListRequest {
                tenant,
                include_deleted,
            },
        )
        .await?;
    let page = PageParams { limit, cursor };
    let key = |d: &Deployment| format!("{}/{}/{}", d.tenant, d.name, d.id);
    let (deployments, next_cursor) = paginate(deployments, key, &page)?;
    Ok(Json(DeploymentList {
        items: deployments.into_iter().map(DeploymentView::from).collect(),
        next_cursor,
    }))
}

/// Places a model on the best plan the tenant's quota allows and writes it
/// into that cluster. Answers 202: it runs once the cluster has started it.
#[utoipa::path(post, path = "/deployments", operation_id = "create_deployment", tag = "deployments", security(("bearer" = [])),
    request_body = CreateDeployment,
    responses(
        (status = 202, body = DeploymentCreated),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json",
            description = "The role does not allow deploying, or no plan fits the quota"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateDeployment>,
) -> Result<(StatusCode, HeaderMap, Json<DeploymentCreated>), ApiError> {
    let created = state
        .hub()
        .create_deployment(&caller, body.try_into()?)
        .await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) =
        HeaderValue::from_str(&format!("/api/v1/deployments/{}", created.deployment.id))
    {
        headers.insert(header::LOCATION, location);
    }
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(DeploymentCreated {
            plan: PlanView::new(&created.plan, None, &created.discounts),
            deployment: created.deployment.into(),
        }),
    ))
}

impl TryFrom<CreateDeployment> for service::CreateRequest {
    type Error = ApiError;

    fn try_from(body: CreateDeployment) -> Result<Self, ApiError> {
        let CreateDeployment {
            name,
            model,
            architecture,
            source,
            source_secret,
            source_credential,
            replicas,
            serving,
            placement,
            max_cost_per_hour,
            tenant,
        } = body;
        let source_secret = match (source_secret, source_credential) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "sourceCredential",
                    "give sourceCredential (a credential the hub keeps) or sourceSecret (a \
                     Secret of your own in the cluster), not both",
                ));
            }
            (secret, None) => secret,
            (None, Some(credential)) => {
                tenancy::check_source_credential_name(&credential)
                    .map_err(|reason| ApiError::invalid("sourceCredential", reason))?;
                Some(tenancy::source_credential_secret_name(&credential))
            }
        };
        Ok(service::CreateRequest {
            name,
            plan: service::PlanRequest {
                model,
                architecture,
                source,
                source_secret,
                replicas,
                serving: serving.unwrap_or_default().into(),
                placement: placement.unwrap_or_default().into(),
                max_cost_per_hour,
                tenant,
            },
        })
    }
}

/// One deployment with its live status.
#[utoipa::path(get, path = "/deployments/{deployment}", operation_id = "show_deployment", tag = "deployments", security(("bearer" = [])),
    params(("deployment" = String, Path, description = "The deployment's id, or its name in the caller's tenant")),
    responses(
        (status = 200, body = DeploymentView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(which): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let which = deployment_ref(&which);
    Ok(Json(state.hub().deployment(&caller, &which).await?.into()))
}

/// Changes the replica count; growth is checked against the quota.
#[utoipa::path(patch, path = "/deployments/{deployment}", operation_id = "update_deployment", tag = "deployments", security(("bearer" = [])),
    params(("deployment" = String, Path, description = "The deployment's id, or its name in the caller's tenant")),
    request_body = UpdateDeployment,
    responses(
        (status = 200, body = DeploymentView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(which): Path<String>,
    ApiJson(body): ApiJson<UpdateDeployment>,
) -> Result<Json<DeploymentView>, ApiError> {
    let UpdateDeployment { replicas } = body;
    let which = deployment_ref(&which);
    Ok(Json(
        state
            .hub()
            .scale_deployment(&caller, &which, replicas)
            .await?
            .into(),
    ))
}

/// Deletes a deployment: its quota is free at once, and its cluster stops
/// it (the operator's finalizer cleans up).
#[utoipa::path(delete, path = "/deployments/{deployment}", operation_id = "delete_deployment", tag = "deployments", security(("bearer" = [])),
    params(("deployment" = String, Path, description = "The deployment's id, or its name in the caller's tenant")),
    responses(
        (status = 202, body = DeploymentView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(which): Path<String>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let which = deployment_ref(&which);
    let released = state.hub().delete_deployment(&caller, &which).await?;
    Ok((StatusCode::ACCEPTED, Json(released.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Lines from the end of each container's log, 1 to 200 [default: 20].
    pub lines: Option<u32>,
}

/// The last lines each container of each replica printed (the weights'
/// fetch, then the engine), read from the deployment's cluster now: at
/// most 16 pods, 16 KiB per container.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaLogs {
    #[schema(value_type = Vec<crate::clusters::PodLogs>)]
    pub replicas: Vec<crate::clusters::PodLogs>,
}

/// The last lines of each replica's containers.
#[utoipa::path(get, path = "/deployments/{deployment}/logs", operation_id = "deployment_logs", tag = "deployments", security(("bearer" = [])),
    params(("deployment" = String, Path, description = "The deployment's id, or its name in the caller's tenant"), LogsParams),
    responses(
        (status = 200, body = ReplicaLogs),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(which): Path<String>,
    ApiQuery(params): ApiQuery<LogsParams>,
) -> Result<Json<ReplicaLogs>, ApiError> {
    let which = deployment_ref(&which);
    let replicas = state
        .hub()
        .deployment_logs(&caller, &which, params.lines.unwrap_or(20))
        .await?;
    Ok(Json(ReplicaLogs { replicas }))
}

fn deployment_ref(text: &str) -> DeploymentRef {
    match text.parse() {
        Ok(which) => which,
        Err(never) => match never {},
    }
}
