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
//! - a cluster that does not answer for longer than
//!   `ApiSettings::cluster_lost_after_seconds` is declared lost
//!   (`Tx::lose_cluster`): its open intervals are closed at the last time
//!   sync saw it, its deployments stop counting as running and are marked
//!   unschedulable, so that [`crate::failover`] moves those the hub placed
//!   (from the ModelDeployment the hub kept, since the cluster cannot be
//!   read). When it answers again, sync compares it afresh: pods still
//!   running there get new intervals from that moment, ModelDeployments
//!   moved meanwhile are deleted there.
//!
//! Sync writes only through the store, as `Actor::system("cluster-sync")`.

mod admit;
mod cluster;
mod observe;
mod readmit;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clusters::ClusterError;
use crate::identity::Actor;
use crate::service::Hub;
use crate::store::{StoreError, now};

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

/// When each cluster last answered cluster sync, in this process's
/// monotonic time: the hub clock may be simulated (and jump), and a hub
/// that has just taken sync over must not take clusters as lost because
/// nobody looked at them while no hub ran sync. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Reach(Arc<Mutex<BTreeMap<String, Instant>>>);

impl Reach {
    fn answered(&self, cluster: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster.to_owned(), Instant::now());
    }

    /// How long `cluster` has gone unanswered; a cluster not heard of
    /// before counts from now.
    fn silent_for(&self, cluster: &str) -> Duration {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(cluster.to_owned())
            .or_insert_with(Instant::now)
            .elapsed()
    }
}

/// Declares lost every registered cluster that has not answered for
/// longer than the hub's setting (and is not lost already).
async fn lose_silent(state: &Hub, reach: &Reach) -> Result<(), SyncError> {
    let after = state.settings().cluster_lost_after_seconds;
    for cluster in state.store().clusters().await? {
        if cluster.lost_at.is_some() || reach.silent_for(&cluster.name) < Duration::from_secs(after)
        {
            continue;
        }
        let mut tx = state.store().begin(&actor()).await?;
        let lost = tx.lose_cluster(&cluster.name, now(), after).await?;
        tx.commit().await?;
        if let Some(lost) = lost {
            warn!(cluster = %cluster.name, last_seen = ?lost.last_seen_at,
                intervals_closed = lost.intervals_closed, deployments = lost.deployments,
                "cluster unreachable for longer than the setting: lost");
        }
    }
    Ok(())
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
    let reach = Reach::default();
    let mut looked_for_lost = Instant::now();
    loop {
        if looked_for_lost.elapsed() >= RESYNC {
            looked_for_lost = Instant::now();
            if let Err(e) = lose_silent(&state, &reach).await {
                warn!(error = %e, "cannot look for lost clusters; retrying");
            }
        }
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
                reach.clone(),
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
