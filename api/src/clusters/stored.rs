//! Registered clusters connected from the hub's store: every kubeconfig
//! cluster at start-up ([`ClusterRegistry::load`]), those another hub of the
//! same database registered since ([`ClusterRegistry::refresh`], every few
//! seconds), and one a request needs before then
//! ([`ClusterRegistry::connect_on_demand`]).

use std::sync::{Arc, PoisonError};

use tracing::warn;

use super::{ClusterError, ClusterRegistry, KubeconfigPolicy, Member};
use crate::secret::Keyring;
use crate::store::{ClusterKind, Store};

/// The store and keyring the registry connects stored clusters from.
#[derive(Clone)]
pub(super) struct Source {
    store: Store,
    keyring: Arc<Keyring>,
    policy: KubeconfigPolicy,
}

impl ClusterRegistry {
    /// Lets the registry connect, when first needed, a cluster another hub
    /// of the same database registered (the first call wins).
    pub fn connect_on_demand(&self, store: Store, keyring: Arc<Keyring>, policy: KubeconfigPolicy) {
        let _ = self.source.set(Source {
            store,
            keyring,
            policy,
        });
    }

    /// Connects every kubeconfig cluster of the store that is not connected
    /// yet. Sandbox clusters are left to whoever runs them. A cluster that
    /// cannot be connected is logged and returned; the others still are.
    pub async fn load(
        &self,
        store: &Store,
        keyring: &Keyring,
        policy: KubeconfigPolicy,
    ) -> Result<Vec<(String, ClusterError)>, crate::StoreError> {
        self.connect_stored(store, keyring, policy, false).await
    }

    /// What every hub of a shared database does every few seconds: connects
    /// the kubeconfig clusters another hub registered since, leaving alone
    /// those whose kubeconfig was refused (they stay refused, and logged
    /// once, until it changes).
    pub async fn refresh(
        &self,
        store: &Store,
        keyring: &Keyring,
        policy: KubeconfigPolicy,
    ) -> Result<Vec<(String, ClusterError)>, crate::StoreError> {
        self.connect_stored(store, keyring, policy, true).await
    }

    async fn connect_stored(
        &self,
        store: &Store,
        keyring: &Keyring,
        policy: KubeconfigPolicy,
        skip_refused: bool,
    ) -> Result<Vec<(String, ClusterError)>, crate::StoreError> {
        let mut failed = Vec::new();
        let stored = store.clusters().await?;
        if skip_refused {
            // Removed through another hub: let go of it here too.
            let gone: Vec<String> = self
                .names()
                .into_iter()
                .filter(|n| !stored.iter().any(|c| &c.name == n))
                .collect();
            for name in gone {
                self.detach(&name);
            }
        }
        for cluster in stored {
            if cluster.kind != ClusterKind::Kubeconfig || self.is_connected(&cluster.name) {
                continue;
            }
            if skip_refused
                && self
                    .refused
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains_key(&cluster.name)
            {
                continue;
            }
            let Some(kubeconfig) = store.cluster_kubeconfig(cluster.id, keyring).await? else {
                continue;
            };
            if let Err(e) = self
                .connect(
                    &cluster.name,
                    cluster.cloud,
                    &cluster.region,
                    &kubeconfig,
                    policy,
                )
                .await
            {
                warn!(cluster = %cluster.name, error = %e, "cannot connect to a registered cluster");
                failed.push((cluster.name, e));
            }
        }
        Ok(failed)
    }

    /// Cluster `name`'s member; one that is registered but not connected
    /// here yet (another hub registered it a moment ago) is connected now.
    pub(super) async fn member_or_connect(&self, name: &str) -> Result<Arc<Member>, ClusterError> {
        let missing = match self.member(name) {
            Ok(member) => return Ok(member),
            Err(ClusterError::NotConnected(_)) => ClusterError::NotConnected(name.to_owned()),
            Err(e) => return Err(e),
        };
        let Some(source) = self.source.get() else {
            return Err(missing);
        };
        let Ok(cluster) = source.store.cluster_by_name(name).await else {
            return Err(missing);
        };
        if cluster.kind != ClusterKind::Kubeconfig {
            return Err(missing);
        }
        let Ok(Some(kubeconfig)) = source
            .store
            .cluster_kubeconfig(cluster.id, &source.keyring)
            .await
        else {
            return Err(missing);
        };
        self.connect(
            &cluster.name,
            cluster.cloud,
            &cluster.region,
            &kubeconfig,
            source.policy,
        )
        .await?;
        self.member(name)
    }
}
