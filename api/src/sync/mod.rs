//! Cluster sync: the hub's view of what its clusters actually run.
//!
//! For every cluster in the [`ClusterRegistry`](crate::ClusterRegistry) —
//! those connected at start and those attached later — sync watches the
//! ModelDeployments (all namespaces) and the pods they own (label
//! `modelfleet.io/deployment`) and keeps the database current:
//!
//! - each deployment's phase, ready replicas, status message and since
//!   when it has been unschedulable (what [`crate::failover`] acts on);
//! - **replica device intervals** (`replica_intervals`): one row per pod,
//!   opened with the time the pod was bound to its node and closed when
//!   sync sees it gone or finished. Rows are unique per (cluster, pod uid)
//!   and a pass compares the whole cluster with the open rows, so after a
//!   hub restart an interval whose pod is gone is closed at the time that
//!   is observed, one whose pod still runs stays open, and nothing is
//!   recorded twice;
//! - ModelDeployments applied straight into a cluster are admitted against
//!   their tenant's quota or rejected (see `admit.rs`), and deleting one
//!   releases its quota;
//! - a ModelDeployment whose deployment was released, or moved by
//!   failover, is deleted from the cluster (also when the first delete
//!   failed because the cluster was unreachable).
//!
//! Sync writes only through the store, as `Actor::system("cluster-sync")`.

mod admit;
mod cluster;
mod observe;
mod readmit;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::clusters::ClusterError;
use crate::identity::Actor;
use crate::service::Hub;
use crate::store::StoreError;

pub use cluster::RESYNC;
pub use observe::status_of;

/// Who sync's writes are recorded as, in the audit trail and in events.
fn actor() -> Actor {
    Actor::system("cluster-sync")
}

/// How often the registry is checked for clusters attached or detached.
const REGISTRY_POLL: Duration = Duration::from_secs(1);

/// Why one sync step failed; the next pass tries again.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("the cluster's node pools are unknown: {0}")]
    Pools(String),
    #[error(transparent)]
    Service(crate::service::Error),
}

/// Runs cluster sync for every cluster of `state`'s registry until `stop`
/// becomes `true` (or its sender is dropped). `modelfleet serve` and
/// `modelfleet api` spawn it next to the HTTP server:
///
/// ```ignore
/// let (stop_tx, stop) = tokio::sync::watch::channel(false);
/// tokio::spawn(modelfleet_api::sync::run(state.clone(), stop.clone()));
/// tokio::spawn(modelfleet_api::failover::run(state.clone(), stop));
/// // … on shutdown: stop_tx.send_replace(true);
/// ```
pub async fn run(state: Hub, mut stop: watch::Receiver<bool>) {
    let mut watching: BTreeMap<String, (u64, JoinHandle<()>)> = BTreeMap::new();
    loop {
        let connected = state.registry().connections();
        watching.retain(|name, (generation, task)| {
            let current = connected
                .iter()
                .any(|(n, g, _)| n == name && g == generation);
            if !current {
                task.abort();
            }
            current && !task.is_finished()
        });
        for (name, generation, client) in connected {
            if watching.contains_key(&name) {
                continue;
            }
            info!(cluster = %name, "cluster sync watching");
            let task = tokio::spawn(cluster::run(
                state.clone(),
                name.clone(),
                client,
                stop.clone(),
            ));
            watching.insert(name, (generation, task));
        }
        tokio::select! {
            () = tokio::time::sleep(REGISTRY_POLL) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    for (_, (_, task)) in watching {
        // Each cluster task sees the same stop; wait so that no write is
        // cut off half-way.
        let _ = task.await;
    }
}

/// [`run`] on its own task.
pub fn spawn(state: Hub, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run(state, stop))
}
