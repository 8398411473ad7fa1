//! The clusters the hub places models on (platform admins only): their
//! registration, their node pools as last observed, and the hub's price
//! for a pool. A kubeconfig goes in once, is sealed at rest and never
//! comes back out.

use http::StatusCode;
use modelfleet_core::fleet::{Cloud, is_dns_label};
use modelfleet_core::money::Money;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{Caller, Error, Hub, Result};
use crate::clusters::{ClusterView, client_from_kubeconfig};
use crate::identity::Permission;
use crate::ids::ClusterId;
use crate::secret::Secret;
use crate::store::{Cluster, NewCluster, PoolPrice, StoreError};

/// A request to register a cluster.
#[derive(Debug, Clone, Deserialize, ToSchema)]
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

/// A registered cluster, its pools as last observed (or why they are
/// unknown), and the hub's prices for its pools.
#[derive(Debug, Clone)]
pub struct ObservedCluster {
    pub view: ClusterView,
    /// The hub's prices, which override what the nodes say; a price may be
    /// set for a pool before its nodes exist.
    pub prices: Vec<PoolPrice>,
}

impl Hub {
    /// Every registered cluster with its pools and free capacity, by name.
    pub async fn clusters(&self, caller: &Caller) -> Result<Vec<ObservedCluster>> {
        caller.require(Permission::ManagePlatform)?;
        let mut clusters = self.store.clusters().await?;
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        self.observe_clusters(clusters).await
    }

    /// One cluster with its pools, listed again if stale.
    pub async fn cluster(&self, caller: &Caller, id: ClusterId) -> Result<ObservedCluster> {
        caller.require(Permission::ManagePlatform)?;
        let cluster = self.store.cluster(id).await?;
        self.observe_clusters(vec![cluster])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found("cluster"))
    }

    /// Registers a cluster by its kubeconfig and connects to it. A
    /// kubeconfig that reaches no cluster is refused before anything is
    /// stored.
    pub async fn register_cluster(
        &self,
        caller: &Caller,
        request: RegisterCluster,
    ) -> Result<ObservedCluster> {
        let RegisterCluster {
            name,
            cloud,
            region,
            kubeconfig,
            sandbox,
        } = request;
        caller.require(Permission::ManagePlatform)?;
        match self.store.cluster_by_name(&name).await {
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
                return Err(Error::invalid(
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
                return Err(Error::invalid(
                    "sandbox",
                    "sandbox clusters are not registered through the API: `modelfleet serve` \
                     starts its own from its fleet file; give a real cluster's kubeconfig",
                ));
            }
            (Some(k), false) => client_from_kubeconfig(k, self.kubeconfig_policy()).await?,
            (None, false) => {
                return Err(Error::invalid(
                    "kubeconfig",
                    "give either a kubeconfig whose current context reaches the cluster, \
                     or run `modelfleet serve` for sandbox clusters",
                ));
            }
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        let cluster = tx
            .register_cluster(
                NewCluster {
                    name,
                    cloud,
                    region,
                    kubeconfig,
                },
                &self.keyring,
            )
            .await?;
        tx.commit_with(StatusCode::CREATED).await?;
        self.registry
            .attach(&cluster.name, cluster.cloud, &cluster.region, client);
        self.observe_clusters(vec![cluster])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found("cluster"))
    }

    /// Removes a cluster that holds no deployment (see
    /// [`crate::store::Tx::remove_cluster`]) and disconnects from it; the
    /// other hubs of the database let go of it within their refresh.
    pub async fn remove_cluster(&self, caller: &Caller, id: ClusterId) -> Result<()> {
        caller.require(Permission::ManagePlatform)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let cluster = tx.remove_cluster(id).await?;
        tx.commit_with(StatusCode::NO_CONTENT).await?;
        self.registry.detach(&cluster.name);
        Ok(())
    }

    /// Sets the hub's price for a pool, overriding what its nodes say.
    pub async fn set_pool_price(
        &self,
        caller: &Caller,
        cluster: ClusterId,
        pool: &str,
        per_device_hour: Money,
    ) -> Result<PoolPrice> {
        caller.require(Permission::ManagePlatform)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let price = tx
            .set_pool_price(cluster, pool, Some(per_device_hour))
            .await?;
        tx.commit_with(StatusCode::OK).await?;
        price.ok_or_else(|| Error::not_found("price"))
    }

    /// Removes the hub's price for a pool; the nodes' own price applies
    /// again.
    pub async fn remove_pool_price(
        &self,
        caller: &Caller,
        cluster: ClusterId,
        pool: &str,
    ) -> Result<()> {
        caller.require(Permission::ManagePlatform)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        tx.set_pool_price(cluster, pool, None).await?;
        tx.commit_with(StatusCode::NO_CONTENT).await?;
        Ok(())
    }

    async fn observe_clusters(&self, clusters: Vec<Cluster>) -> Result<Vec<ObservedCluster>> {
        let prices = self.store.pool_prices().await?;
        let views = self
            .registry
            .observe(clusters, &prices, self.pool_max_age())
            .await;
        Ok(views
            .into_iter()
            .map(|view| ObservedCluster {
                prices: prices
                    .iter()
                    .filter(|p| p.cluster == view.cluster.id)
                    .cloned()
                    .collect(),
                view,
            })
            .collect())
    }
}
