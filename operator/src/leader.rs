//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several
//! operator replicas exactly one reconciles at a time. The others wait, ready
//! to take over when the leader's lease expires.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
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

impl LeaderElection {
    /// Runs `work` while this replica holds the lease. If the lease is lost,
    /// `work` is dropped (stopping it at its next await) and this replica
    /// goes back to waiting; it starts `work` afresh when it leads again.
    /// Returns when `work` itself returns.
    pub async fn run<W, F, T>(&self, client: Client, mut work: W) -> Result<T, LeaderError>
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
        let (mut leading, _task) = manager.watch().await;
        loop {
            while !*leading.borrow_and_update() {
                leading.changed().await.map_err(|_| LeaderError::Stopped)?;
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
                result = work() => return Ok(result),
                () = lost => warn!(identity = %self.identity, "lost the lease; standing by"),
            }
        }
    }
}
