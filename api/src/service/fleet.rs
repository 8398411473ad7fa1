//! One observation of the fleet: every registered cluster's node pools,
//! with the hub's per-pool prices and the price catalog laid over them, and
//! the planner's [`Fleet`] they make. Plans, placement, failover, kubectl
//! admission and the clusters page all read it from here.
//!
//! Each cluster's pools are listed from the cluster at most once per
//! `--pool-max-age-seconds` (the registry caches them per cluster and
//! concurrent readers wait for one listing), so pages and plans do not
//! each make live cluster calls.

use modelfleet_core::fleet::Fleet;

use super::{Hub, Result};
use crate::clusters::{ClusterView, fleet_of, price_from_catalog};
use crate::store::Cluster;

/// What the hub knows of its clusters now.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Every cluster looked at, with its pools or why they are unknown.
    pub clusters: Vec<ClusterView>,
    /// Every pool whose cluster answered, priced.
    pub fleet: Fleet,
}

impl Hub {
    /// Every registered cluster.
    pub async fn observe_fleet(&self) -> Result<Observation> {
        let clusters = self.store.clusters().await?;
        self.observe(clusters).await
    }

    /// One registered cluster, by name.
    pub(crate) async fn observe_cluster(&self, name: &str) -> Result<Observation> {
        let cluster = self.store.cluster_by_name(name).await?;
        self.observe(vec![cluster]).await
    }

    async fn observe(&self, clusters: Vec<Cluster>) -> Result<Observation> {
        let prices = self.store.pool_prices().await?;
        let mut views = self
            .registry
            .observe(clusters, &prices, self.pool_max_age())
            .await;
        price_from_catalog(&mut views, &self.store.price_catalog().await?);
        let fleet = fleet_of(&views, &self.settings.exchange_rates());
        Ok(Observation {
            clusters: views,
            fleet,
        })
    }
}
