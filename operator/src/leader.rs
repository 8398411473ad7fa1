//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several
//! operator replicas exactly one reconciles at a time. The others wait, ready
//! to take over when the leader's lease expires.

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Name of the Lease object all replicas compete for.
    pub lease_name: String,
    pub namespace: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// Seconds a lease is valid after its last renewal.
    pub lease_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election could not use lease {name} in {namespace}: {source}")]
    Lease {
        name: String,
        namespace: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("the leader-election task stopped")]
    Stopped,
}

/// How long a replica that stops waits for its Lease to be released, so
/// that another replica can lead at once instead of when it expires.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

impl LeaderElection {
    /// Runs `work` while this replica holds the lease. If the lease is lost,
    /// `work` is dropped (stopping it at its next await) and this replica
    /// goes back to waiting; it starts `work` afresh when it leads again.
    ///
    /// Returns `Some` of what `work` returned when it returns by itself
    /// (the controller returns once `stop` fires and its in-flight
    /// reconciles have finished), or `None` when `stop` fires while this
    /// replica stands by. Either way the Lease is released before this
    /// returns (within [`RELEASE_WAIT`]), so a standby replica takes over
    /// at once rather than when the lease would have expired.
    pub async fn run<W, F, T>(
        &self,
        client: Client,
        mut stop: watch::Receiver<bool>,
        mut work: W,
    ) -> Result<Option<T>, LeaderError>
    where
        W: FnMut() -> F,
        F: Future<Output = T>,
    {
        let manager = LeaseManagerBuilder::new(client, &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(self.lease_seconds)
            .with_grace(self.grace_seconds)
            .build()
            .await
            .map_err(|source| LeaderError::Lease {
                name: self.lease_name.clone(),
                namespace: self.namespace.clone(),
                source,
            })?;
        let (mut leading, task) = manager.watch().await;
        let outcome = loop {
            let mut stopping = false;
            while !stopping && !*leading.borrow_and_update() {
                tokio::select! {
                    changed = leading.changed() => changed.map_err(|_| LeaderError::Stopped)?,
                    // A dropped sender can never say stop: taken as one.
                    _ = stop.wait_for(|s| *s) => stopping = true,
                }
            }
            if stopping {
                break None;
            }
            info!(identity = %self.identity, lease = %self.lease_name, "leading");
            let lost = async {
                loop {
                    if leading.changed().await.is_err() || !*leading.borrow_and_update() {
                        return;
                    }
                }
            };
            tokio::select! {
                result = work() => break Some(result),
                () = lost => warn!(identity = %self.identity, "lost the lease; standing by"),
            }
        };
        // Dropping the receiver tells the lease manager to release the
        // Lease and return.
        drop(leading);
        match tokio::time::timeout(RELEASE_WAIT, task).await {
            Ok(Ok(Ok(_))) => {
                info!(identity = %self.identity, lease = %self.lease_name, "lease released")
            }
            Ok(Ok(Err(e))) => {
                warn!(identity = %self.identity, error = %e, "the lease was not released; it expires by itself")
            }
            Ok(Err(e)) => {
                warn!(identity = %self.identity, error = %e, "the lease task failed; the lease expires by itself")
            }
            Err(_) => {
                warn!(identity = %self.identity, "the lease was not released in time; it expires by itself")
            }
        }
        Ok(outcome)
    }
}
