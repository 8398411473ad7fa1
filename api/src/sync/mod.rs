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
mod missing;
mod observe;
#[cfg(test)]
mod pass_tests;
mod readmit;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store as Cache;
use modelfleet_core::crd::ModelDeployment;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clusters::ClusterError;
use crate::identity::Actor;
use crate::ids::DeploymentId;
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

/// Which clusters do not answer cluster sync, and since when: the last
/// time each answered, in this process's monotonic time (the hub clock may
/// be simulated, and jump), and whether it has failed to answer since. A
/// quiet cluster is looked at only every [`RESYNC`], so the time since it
/// last answered says nothing until a look fails. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Reach(Arc<Mutex<BTreeMap<String, Heard>>>);

#[derive(Clone, Copy)]
struct Heard {
    last_answer: Instant,
    failing: bool,
}

impl Reach {
    fn with<T>(&self, cluster: &str, f: impl FnOnce(&mut Heard) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let heard = map.entry(cluster.to_owned()).or_insert(Heard {
            last_answer: Instant::now(),
            failing: false,
        });
        f(heard)
    }

    fn answered(&self, cluster: &str) {
        self.with(cluster, |h| {
            *h = Heard {
                last_answer: Instant::now(),
                failing: false,
            }
        });
    }

    fn failed(&self, cluster: &str) {
        self.with(cluster, |h| h.failing = true);
    }

    /// How long `cluster` has not answered: from its last answer, once a
    /// look has failed since (or, for a registered cluster this hub has
    /// no connection to, from when this hub first counted it); zero while
    /// it answers. A hub that has just taken sync over counts from then,
    /// so a hub restart never makes clusters lost.
    fn silent_for(&self, cluster: &str, connected: bool) -> Duration {
        self.with(cluster, |h| {
            if !connected {
                h.failing = true;
            }
            if h.failing {
                h.last_answer.elapsed()
            } else {
                Duration::ZERO
            }
        })
    }
}

/// Declares lost every registered cluster that has not answered for
/// longer than the hub's setting (and is not lost already).
async fn lose_silent(state: &Hub, reach: &Reach) -> Result<(), SyncError> {
    let after = state.settings().cluster_lost_after_seconds;
    let connected: Vec<String> = state
        .registry()
        .connections()
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    for cluster in state.store().clusters().await? {
        let silent = reach.silent_for(&cluster.name, connected.contains(&cluster.name));
        if cluster.lost_at.is_some() || silent < Duration::from_secs(after) {
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

/// What one cluster's sync carries from pass to pass: since when each
/// deployment the hub placed there has been missing from it.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Missing(BTreeMap<DeploymentId, Instant>);

/// One pass of `cluster`'s sync over caches the caller filled, as [`run`]
/// makes after every change it watches: for the bench that measures a
/// pass (`benches/sync_pass.rs`) and the tests that drive one. The hub
/// itself runs [`run`].
#[doc(hidden)]
pub async fn pass(
    state: &Hub,
    cluster: &str,
    mds: &Cache<ModelDeployment>,
    pods: &Cache<Pod>,
    missing: &mut Missing,
) -> Result<(), SyncError> {
    cluster::pass(state, cluster, mds, pods, &mut missing.0).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_cluster_is_silent_only_once_a_look_at_it_fails() {
        let reach = Reach::default();
        let pause = Duration::from_millis(20);
        reach.answered("quiet");
        std::thread::sleep(pause);
        // Not looked at for a while, but nothing failed: it answers.
        assert_eq!(reach.silent_for("quiet", true), Duration::ZERO);
        // A failed look: silent since it last answered, not since the
        // failure.
        reach.failed("quiet");
        assert!(reach.silent_for("quiet", true) >= pause);
        reach.answered("quiet");
        assert_eq!(reach.silent_for("quiet", true), Duration::ZERO);
        // One this hub has no connection to counts from when first seen.
        assert!(reach.silent_for("unconnected", false) < pause);
        std::thread::sleep(pause);
        assert!(reach.silent_for("unconnected", false) >= pause);
    }
}
