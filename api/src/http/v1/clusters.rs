//! `/api/v1/clusters`: the clusters the hub places models on, their node
//! pools as discovered just now, and the hub's price for each pool.
//! Platform admins only. A kubeconfig goes in once, is sealed at rest and
//! never comes back out.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clusters::ClusterView;
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, parse_id};
use crate::http::page::{PageParams, paginate};
use crate::http::{ApiError, AppState, Caller};
use crate::ids::ClusterId;
use crate::service::clusters::ObservedCluster;
pub use crate::service::clusters::RegisterCluster;
use crate::store::PoolPrice;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
        .routes(routes!(set_price, remove_price))
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
#[schema(as = PoolPriceView)]
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
    /// What the hub's kubeconfig may do in the cluster beyond the role in
    /// `manifests/hub-member/` (`create deployments.apps`, `* *.*`): empty
    /// when it has least privilege. A stolen copy of a kubeconfig with more
    /// is worth more; register one for the `modelfleet-hub` ServiceAccount.
    pub excess_rights: Vec<String>,
    /// Why the kubeconfig's rights could not be checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rights_unknown: Option<String>,
    pub observed_at: Option<DateTime<Utc>>,
    /// The hub's prices, which override what the nodes say; a price may be
    /// set for a pool before its nodes exist.
    pub prices: Vec<PriceView>,
    pub created_at: DateTime<Utc>,
    /// When cluster sync last looked at the cluster completely.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Since when the hub takes the cluster as lost (unreachable for
    /// longer than `--cluster-lost-after-seconds`): its replicas are not
    /// billed and its deployments fail over where they may.
    pub lost_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterList {
    pub items: Vec<ClusterDetail>,
    pub next_cursor: Option<String>,
}

fn detail(observed: ObservedCluster) -> ClusterDetail {
    let ObservedCluster { view, prices } = observed;
    let ClusterView { cluster, pools } = view;
    let (pools, skipped, rights, observed_at, error) = match pools {
        Ok(d) => (
            d.pools,
            d.skipped,
            Some(d.excess_rights),
            Some(d.observed_at),
            None,
        ),
        Err(e) => (Vec::new(), Vec::new(), None, None, Some(e)),
    };
    let (excess_rights, rights_unknown) = match rights {
        Some(Ok(excess)) => (excess, None),
        Some(Err(why)) => (Vec::new(), Some(why)),
        None => (Vec::new(), None),
    };
    ClusterDetail {
        id: cluster.id,
        kind: cluster.kind.name().to_owned(),
        reachable: error.is_none(),
        error,
        pools: pools
            .into_iter()
            .map(|p| PoolView {
                devices_free: p.devices_free(),
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
        excess_rights,
        rights_unknown,
        observed_at,
        prices: prices.iter().map(PriceView::from).collect(),
        name: cluster.name,
        cloud: cluster.cloud,
        region: cluster.region,
        created_at: cluster.created_at,
        last_seen_at: cluster.last_seen_at,
        lost_at: cluster.lost_at,
    }
}

/// Every registered cluster with its pools and free capacity.
#[utoipa::path(get, path = "/clusters", operation_id = "list_clusters", tag = "clusters", security(("bearer" = [])),
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
    let clusters = state.hub().clusters(&caller).await?;
    let (clusters, next_cursor) = paginate(clusters, |c| c.view.cluster.name.clone(), &page)?;
    Ok(Json(ClusterList {
        items: clusters.into_iter().map(detail).collect(),
        next_cursor,
    }))
}

/// Registers a cluster by its kubeconfig.
#[utoipa::path(post, path = "/clusters", operation_id = "register_cluster", tag = "clusters", security(("bearer" = [])),
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
    let detail = detail(state.hub().register_cluster(&caller, body).await?);
    Ok((StatusCode::CREATED, Json(detail)))
}

/// One cluster with its pools, listed again if stale.
#[utoipa::path(get, path = "/clusters/{id}", operation_id = "show_cluster", tag = "clusters", security(("bearer" = [])),
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
    let id: ClusterId = parse_id(&id, "cluster")?;
    Ok(Json(detail(state.hub().cluster(&caller, id).await?)))
}

/// Removes a cluster and the hub's connection to it: refused (409) while it
/// holds deployments (delete them or let failover move them first) or
/// replicas not yet seen gone, and for `serve`'s sandbox clusters. Its
/// prices go with it; invoices and usage keep its name.
#[utoipa::path(delete, path = "/clusters/{id}", operation_id = "remove_cluster", tag = "clusters", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The cluster's id")),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: ClusterId = parse_id(&id, "cluster")?;
    state.hub().remove_cluster(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the hub's price for a pool, overriding what its nodes say.
#[utoipa::path(put, path = "/clusters/{id}/pools/{pool}/price", operation_id = "set_pool_price", tag = "clusters", security(("bearer" = [])),
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
    let id: ClusterId = parse_id(&id, "cluster")?;
    let price = state
        .hub()
        .set_pool_price(&caller, id, &pool, body.price_per_device_hour)
        .await?;
    Ok(Json(PriceView::from(&price)))
}

/// Removes the hub's price for a pool; the nodes' own price applies again.
#[utoipa::path(delete, path = "/clusters/{id}/pools/{pool}/price", operation_id = "remove_pool_price", tag = "clusters", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The cluster's id"),
        ("pool" = String, Path, description = "The pool's name"),
    ),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_price(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, pool)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id: ClusterId = parse_id(&id, "cluster")?;
    state.hub().remove_pool_price(&caller, id, &pool).await?;
    Ok(StatusCode::NO_CONTENT)
}
