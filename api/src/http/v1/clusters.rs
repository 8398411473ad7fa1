//! `/api/v1/clusters`: the clusters the hub places models on, their node
//! pools as discovered just now, and the hub's price for each pool.
//! Platform admins only. A kubeconfig goes in once, is sealed at rest and
//! never comes back out.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use modelfleet_core::fleet::{Cloud, is_dns_label};
use modelfleet_core::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clusters::{ClusterView, client_from_kubeconfig};
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, parse_id};
use crate::http::page::{PageParams, paginate};
use crate::http::{ApiError, AppState, Caller};
use crate::identity::Permission;
use crate::ids::ClusterId;
use crate::secret::Secret;
use crate::store::{Cluster, ClusterKind, NewCluster, PoolPrice, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show))
        .routes(routes!(set_price, remove_price))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterCluster {
    /// A DNS label; pools are named `<cluster>/<pool>`. The operator in the
    /// cluster must be started with the same cluster name.
    pub name: String,
    #[schema(value_type = crate::http::schema::CloudSchema)]
    pub cloud: Cloud,
    pub region: String,
    /// A kubeconfig (YAML) whose current context reaches the cluster.
    /// Stored encrypted; never returned.
    #[schema(format = Password)]
    pub kubeconfig: Option<String>,
    /// Refused when `true`: the API registers real clusters only. Sandbox
    /// clusters run inside `modelfleet serve`, which starts them from its
    /// fleet file.
    #[serde(default)]
    pub sandbox: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetPrice {
    /// Per device-hour, e.g. `{"amount": "6.88", "currency": "USD"}` or `"6.88 USD"`.
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub price_per_device_hour: Money,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolView {
    pub name: String,
    pub accelerator: String,
    /// `on-demand` or `spot`.
    pub capacity_type: String,
    pub devices_per_node: u32,
    pub nodes_total: u32,
    /// Nodes with every device free.
    pub nodes_free: u32,
    /// Free devices on each partly used node.
    pub partly_free: Vec<u32>,
    pub devices_free: u64,
    #[schema(value_type = Option<crate::http::schema::MoneySchema>)]
    pub price_per_device_hour: Option<Money>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceView {
    pub pool: String,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub price_per_device_hour: Money,
    pub updated_at: DateTime<Utc>,
}

impl From<&PoolPrice> for PriceView {
    fn from(p: &PoolPrice) -> Self {
        PriceView {
            pool: p.pool.clone(),
            price_per_device_hour: p.price_per_device_hour,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedNode {
    pub node: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDetail {
    #[schema(value_type = uuid::Uuid)]
    pub id: ClusterId,
    pub name: String,
    #[schema(value_type = crate::http::schema::CloudSchema)]
    pub cloud: Cloud,
    pub region: String,
    /// `kubeconfig` or `sandbox`.
    pub kind: String,
    /// Whether the hub reaches the cluster's API now.
    pub reachable: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub pools: Vec<PoolView>,
    /// Accelerator nodes in no usable pool.
    pub skipped_nodes: Vec<SkippedNode>,
    pub observed_at: Option<DateTime<Utc>>,
    /// The hub's prices, which override what the nodes say; a price may be
    /// set for a pool before its nodes exist.
    pub prices: Vec<PriceView>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterList {
    pub items: Vec<ClusterDetail>,
    pub next_cursor: Option<String>,
}

fn detail(view: ClusterView, prices: &[PoolPrice]) -> ClusterDetail {
    let ClusterView { cluster, pools } = view;
    let (pools, skipped, observed_at, error) = match pools {
        Ok(d) => (d.pools, d.skipped, Some(d.observed_at), None),
        Err(e) => (Vec::new(), Vec::new(), None, Some(e)),
    };
    ClusterDetail {
        id: cluster.id,
        kind: match cluster.kind {
            ClusterKind::Kubeconfig => "kubeconfig".to_owned(),
            ClusterKind::Sandbox => "sandbox".to_owned(),
        },
        reachable: error.is_none(),
        error,
        pools: pools
            .into_iter()
            .map(|p| PoolView {
                devices_free: u64::from(p.nodes_free) * u64::from(p.devices_per_node)
                    + p.partly_free.iter().map(|&n| u64::from(n)).sum::<u64>(),
                name: p.name,
                accelerator: p.accelerator,
                capacity_type: p.capacity_type.to_string(),
                devices_per_node: p.devices_per_node,
                nodes_total: p.nodes_total,
                nodes_free: p.nodes_free,
                partly_free: p.partly_free,
                price_per_device_hour: p.price_per_device_hour,
            })
            .collect(),
        skipped_nodes: skipped
            .into_iter()
            .map(|s| SkippedNode {
                node: s.node,
                reason: s.reason,
            })
            .collect(),
        observed_at,
        prices: prices
            .iter()
            .filter(|p| p.cluster == cluster.id)
            .map(PriceView::from)
            .collect(),
        name: cluster.name,
        cloud: cluster.cloud,
        region: cluster.region,
        created_at: cluster.created_at,
    }
}

pub async fn details(
    state: &AppState,
    clusters: Vec<Cluster>,
) -> Result<Vec<ClusterDetail>, ApiError> {
    let prices = state.store().pool_prices().await?;
    let views = state
        .registry()
        .observe(clusters, &prices, state.pool_max_age())
        .await;
    Ok(views.into_iter().map(|v| detail(v, &prices)).collect())
}

/// Every registered cluster with its pools and free capacity.
#[utoipa::path(get, path = "/clusters", tag = "clusters", security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, body = ClusterList),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<ClusterList>, ApiError> {
    caller.require(Permission::ManagePlatform)?;
    let clusters = state.store().clusters().await?;
    let (clusters, next_cursor) = paginate(clusters, |c| c.name.clone(), &page)?;
    Ok(Json(ClusterList {
        items: details(&state, clusters).await?,
        next_cursor,
    }))
}

/// Registers a cluster by its kubeconfig.
#[utoipa::path(post, path = "/clusters", tag = "clusters", security(("bearer" = [])),
    request_body = RegisterCluster,
    responses(
        (status = 201, body = ClusterDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterCluster>,
) -> Result<(StatusCode, Json<ClusterDetail>), ApiError> {
    let RegisterCluster {
        name,
        cloud,
        region,
        kubeconfig,
        sandbox,
    } = body;
    caller.require(Permission::ManagePlatform)?;
    match state.store().cluster_by_name(&name).await {
        Ok(_) => {
            return Err(StoreError::Conflict {
                kind: "cluster",
                name,
            }
            .into());
        }
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    for (field, value) in [("name", &name), ("region", &region)] {
        if !is_dns_label(value) {
            return Err(ApiError::invalid(
                field,
                format!("{value:?} must be lower-case letters, digits and '-', at most 63"),
            ));
        }
    }
    let kubeconfig = kubeconfig.map(Secret::new);
    // Build the client before anything is stored: a kubeconfig that names
    // no usable cluster is refused, and nothing is left half-registered.
    let client = match (&kubeconfig, sandbox) {
        (_, true) => {
            return Err(ApiError::invalid(
                "sandbox",
                "sandbox clusters are not registered through the API: `modelfleet serve` \
                 starts its own from its fleet file; give a real cluster's kubeconfig",
            ));
        }
        (Some(k), false) => client_from_kubeconfig(k).await?,
        (None, false) => {
            return Err(ApiError::invalid(
                "kubeconfig",
                "give either a kubeconfig whose current context reaches the cluster, \
                 or run `modelfleet serve` for sandbox clusters",
            ));
        }
    };
    let mut tx = state.store().begin(&caller.actor).await?;
    let cluster = tx
        .register_cluster(
            NewCluster {
                name,
                cloud,
                region,
                kubeconfig,
            },
            state.keyring(),
        )
        .await?;
    tx.commit_with(StatusCode::CREATED).await?;
    state
        .registry()
        .attach(&cluster.name, cluster.cloud, &cluster.region, client);
    let mut found = details(&state, vec![cluster]).await?;
    let detail = found.pop().ok_or_else(|| ApiError::not_found("cluster"))?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// One cluster with its pools, listed again if stale.
#[utoipa::path(get, path = "/clusters/{id}", tag = "clusters", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The cluster's id")),
    responses(
        (status = 200, body = ClusterDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ClusterDetail>, ApiError> {
    caller.require(Permission::ManagePlatform)?;
    let id: ClusterId = parse_id(&id, "cluster")?;
    let cluster = state.store().cluster(id).await?;
    let mut found = details(&state, vec![cluster]).await?;
    found
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("cluster"))
}

/// Sets the hub's price for a pool, overriding what its nodes say.
#[utoipa::path(put, path = "/clusters/{id}/pools/{pool}/price", tag = "clusters", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The cluster's id"),
        ("pool" = String, Path, description = "The pool's name"),
    ),
    request_body = SetPrice,
    responses(
        (status = 200, body = PriceView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_price(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, pool)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetPrice>,
) -> Result<Json<PriceView>, ApiError> {
    let SetPrice {
        price_per_device_hour,
    } = body;
    caller.require(Permission::ManagePlatform)?;
    let id: ClusterId = parse_id(&id, "cluster")?;
    let mut tx = state.store().begin(&caller.actor).await?;
    let price = tx
        .set_pool_price(id, &pool, Some(price_per_device_hour))
        .await?;
    tx.commit_with(StatusCode::OK).await?;
    let price = price.ok_or_else(|| ApiError::not_found("price"))?;
    Ok(Json(PriceView::from(&price)))
}

/// Removes the hub's price for a pool; the nodes' own price applies again.
#[utoipa::path(delete, path = "/clusters/{id}/pools/{pool}/price", tag = "clusters", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The cluster's id"),
        ("pool" = String, Path, description = "The pool's name"),
    ),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_price(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, pool)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::ManagePlatform)?;
    let id: ClusterId = parse_id(&id, "cluster")?;
    let mut tx = state.store().begin(&caller.actor).await?;
    tx.set_pool_price(id, &pool, None).await?;
    tx.commit_with(StatusCode::NO_CONTENT).await?;
    Ok(StatusCode::NO_CONTENT)
}
