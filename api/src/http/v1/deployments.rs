//! `/api/v1/deployments`: a tenant's models.
//!
//! Creating one plans it across every cluster, then admits the best plan
//! the tenant's quota allows (plans in rank order, in one transaction, so
//! concurrent requests cannot together exceed the quota), and only then
//! writes the ModelDeployment into the chosen cluster with the pool pinned.
//! The row is committed before the cluster write so that the quota lock is
//! not held across a network call; if the write fails the admission is
//! released again and the caller is told nothing was deployed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use chrono::{DateTime, Utc};
use modelfleet_core::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::plans::{PlacementOptions, PlanView, ServingOptions, ask, observe, rejections};
use crate::clusters::namespace_of;
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, parse_id};
use crate::http::page::{PageParams, paginate};
use crate::http::{ApiError, AppState, Caller};
use crate::identity::Permission;
use crate::ids::{DeploymentId, TenantId};
use crate::placement::{MAX_REPLICAS, check_name, deployment_request, model_deployment};
use crate::store::{Deployment, DeploymentStatus, PHASE_PENDING, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDeployment {
    /// At most 40 lower-case letters, digits and '-', starting with a letter.
    #[schema(example = "llama70")]
    pub name: String,
    /// A catalog model id.
    #[schema(example = "llama-3.1-70b")]
    pub model: String,
    /// Where the weights are (`s3://…`, `oss://…`, `obs://…`, `cos://…`,
    /// `hf://…`, `pvc://…`); defaults to the hub's model store.
    pub source: Option<String>,
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
            phase: d.phase,
            status_message: d.status_message,
            source: match d.source {
                crate::store::Source::Api => "api".to_owned(),
                crate::store::Source::Cluster => "cluster".to_owned(),
            },
            replica_cost_per_hour: d.replica_cost_per_hour,
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
#[utoipa::path(get, path = "/deployments", tag = "deployments", security(("bearer" = [])),
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
    caller.require(Permission::Read)?;
    let mut deployments = state
        .store()
        .deployments(caller.scope(), params.include_deleted)
        .await?;
    if let Some(tenant) = params.tenant {
        let tenant = caller.tenant(Some(tenant))?;
        deployments.retain(|d| d.tenant == tenant);
    }
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let key = |d: &Deployment| format!("{}/{}/{}", d.tenant, d.name, d.id);
    let (deployments, next_cursor) = paginate(deployments, key, &page)?;
    Ok(Json(DeploymentList {
        items: deployments.into_iter().map(DeploymentView::from).collect(),
        next_cursor,
    }))
}

/// Places a model on the best plan the tenant's quota allows and writes it
/// into that cluster. Answers 202: it runs once the cluster has started it.
#[utoipa::path(post, path = "/deployments", tag = "deployments", security(("bearer" = [])),
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
    let CreateDeployment {
        name,
        model,
        source,
        replicas,
        serving,
        placement,
        max_cost_per_hour,
        tenant,
    } = body;
    caller.require(Permission::Deploy)?;
    let tenant = state
        .store()
        .tenant(caller.scope(), caller.tenant(tenant)?)
        .await?;
    check_name(&name).map_err(|reason| ApiError::invalid("name", reason))?;
    if let Some(reason) = crate::billing::budget_refusal(state.store(), tenant.id).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "budget-exhausted",
            "Budget Exhausted",
            reason,
        ));
    }
    let ask = ask(
        &state,
        model,
        source,
        replicas,
        serving,
        placement,
        max_cost_per_hour,
    )?;
    let inputs = ask.planner_inputs()?;
    let (_, fleet) = observe(&state).await?;
    let report = inputs.plan(&fleet)?;
    if report.plans.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no-feasible-plan",
            "No Feasible Plan",
            format!(
                "no pool of any registered cluster can run {} as asked; `rejections` says why for each",
                report.model
            ),
        )
        .with("rejections", rejections(&report)));
    }

    let namespace = namespace_of(&tenant.name);
    let fallback = state.settings().reference_currency;
    let mut tx = state.store().begin(&caller.actor).await?;
    let mut admitted = None;
    let mut first_refusal = None;
    for plan in &report.plans {
        let request = deployment_request(&name, &inputs.model, plan, &namespace, fallback);
        match tx.admit_deployment(tenant.id, request).await {
            Ok(deployment) => {
                admitted = Some((deployment, plan));
                break;
            }
            Err(StoreError::Quota(refusal)) => {
                first_refusal.get_or_insert(refusal);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some((deployment, plan)) = admitted else {
        tx.rollback().await?;
        let refusal = first_refusal.expect("every plan was tried and refused by the quota");
        return Err(ApiError::quota(&refusal).with("plansTried", report.plans.len()));
    };
    tx.commit_with(StatusCode::ACCEPTED).await?;

    let md = model_deployment(&ask, &name, &namespace, &tenant.name, deployment.id, plan);
    let deployment = match state
        .registry()
        .apply_deployment(&deployment.cluster, &tenant.name, &md)
        .await
    {
        Ok(applied) => {
            let mut tx = state.store().begin(&caller.actor.follow_up("api")).await?;
            let recorded = tx
                .record_deployment_status(
                    deployment.id,
                    &DeploymentStatus {
                        phase: PHASE_PENDING.to_owned(),
                        ready_replicas: 0,
                        message: None,
                        resource_uid: applied.metadata.uid,
                        unschedulable: false,
                    },
                )
                .await?;
            tx.commit().await?;
            recorded
        }
        Err(e) => {
            let mut tx = state.store().begin(&caller.actor.follow_up("api")).await?;
            tx.release_deployment(deployment.id).await?;
            tx.commit().await?;
            return Err(ApiError::unavailable(
                format!(
                    "{e}; nothing was deployed and the quota is free again, so retrying is safe"
                ),
                &e,
            ));
        }
    };
    let discounts = state
        .store()
        .discount_set(crate::identity::Scope::All, deployment.tenant)
        .await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/deployments/{}", deployment.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(DeploymentCreated {
            deployment: deployment.into(),
            plan: PlanView::new(plan, None, &discounts),
        }),
    ))
}

/// One deployment with its live status.
#[utoipa::path(get, path = "/deployments/{id}", tag = "deployments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 200, body = DeploymentView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let id: DeploymentId = parse_id(&id, "deployment")?;
    caller.require(Permission::Read)?;
    Ok(Json(
        state.store().deployment(caller.scope(), id).await?.into(),
    ))
}

/// Changes the replica count; growth is checked against the quota.
#[utoipa::path(patch, path = "/deployments/{id}", tag = "deployments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The deployment's id")),
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
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateDeployment>,
) -> Result<Json<DeploymentView>, ApiError> {
    let UpdateDeployment { replicas } = body;
    let id: DeploymentId = parse_id(&id, "deployment")?;
    let before = state.store().deployment(caller.scope(), id).await?;
    if before.deleted_at.is_some() {
        return Err(ApiError::not_found("deployment"));
    }
    if replicas > MAX_REPLICAS {
        return Err(ApiError::invalid(
            "replicas",
            format!("must be between 0 and {MAX_REPLICAS}"),
        ));
    }
    let mut tx = state.store().begin(&caller.actor).await?;
    let after = tx.resize_deployment(id, replicas).await?;
    tx.commit_with(StatusCode::OK).await?;
    if after.replicas == before.replicas {
        return Ok(Json(after.into()));
    }
    if let Err(e) = state
        .registry()
        .scale_deployment(&after.cluster, &after.namespace, &after.name, replicas)
        .await
    {
        // Put the quota back as it was: the cluster still runs the old count.
        let mut tx = state.store().begin(&caller.actor.follow_up("api")).await?;
        tx.resize_deployment(id, before.replicas).await?;
        tx.commit().await?;
        return Err(ApiError::unavailable(
            format!("{e}; the replica count is unchanged"),
            &e,
        ));
    }
    Ok(Json(after.into()))
}

/// Deletes a deployment: its quota is free at once, and its cluster stops
/// it (the operator's finalizer cleans up).
#[utoipa::path(delete, path = "/deployments/{id}", tag = "deployments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 202, body = DeploymentView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let id: DeploymentId = parse_id(&id, "deployment")?;
    let mut tx = state.store().begin(&caller.actor).await?;
    let released = tx.release_deployment(id).await?;
    tx.commit_with(StatusCode::ACCEPTED).await?;
    if let Err(e) = state
        .registry()
        .delete_deployment(&released.cluster, &released.namespace, &released.name)
        .await
    {
        // Released in the hub; cluster sync removes it from the cluster
        // once the cluster answers again.
        tracing::warn!(deployment = %id, error = %e, "ModelDeployment not deleted from its cluster yet");
    }
    Ok((StatusCode::ACCEPTED, Json(released.into())))
}
