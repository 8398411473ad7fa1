//! The hub's service layer: the operations every caller shares — the REST
//! handlers in `http/`, the web console, the background loops (cluster
//! sync, failover, the billing schedule) — each taking the [`Caller`] and
//! returning domain types or the one [`Error`].
//!
//! [`Hub`] owns what the operations need: the store, the keyring, the
//! cluster registry, the settings, and one observation of the fleet
//! ([`Hub::observe_fleet`]) cached per cluster. A caller never reaches past
//! it to the store or a cluster.
//!
//! - `fleet`: what every registered cluster offers, priced.
//! - `placement`: the one placement operation — plans in rank order,
//!   held against the quota in one transaction, written into the cluster,
//!   undone when that write fails — used by create, failover and the
//!   admission of ModelDeployments applied with kubectl.
//! - `plans`, `deployments`: what tenants do with models.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod billing;
mod caller;
pub mod clusters;
mod deployments;
pub mod error;
mod fleet;
pub mod input_screen;
pub mod models;
pub mod placement;
mod plans;
pub mod prices;
pub mod source_credentials;
pub mod tenants;
pub mod throttle;
pub mod traffic;

use std::sync::Arc;
use std::time::Duration;

pub use caller::{Caller, Pending};
pub use deployments::{CreateRequest, Created, DeploymentDetail, DeploymentRef, ListRequest};
pub use error::{Error, Result};
pub use fleet::Observation;
pub use plans::{PlanRequest, PlanWithQuota, Planned, RejectionView, rejections};

use crate::audit::ExportTarget;
use crate::clusters::ClusterRegistry;
use crate::config::ApiSettings;
use crate::secret::Keyring;
use crate::store::Store;

/// The hub's operations and what they share. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    store: Store,
    keyring: Arc<Keyring>,
    registry: ClusterRegistry,
    settings: Arc<ApiSettings>,
    audit_target: Option<Arc<ExportTarget>>,
    throttle: Arc<throttle::Throttle>,
    inspections: Arc<models::Inspections>,
    /// Reads of replicas' logs, per tenant: each reaches a cluster.
    log_reads: Arc<throttle::Limiter<String>>,
    /// Credential changes that reach clusters, per tenant.
    credential_writes: Arc<throttle::Limiter<String>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("registry", &self.registry)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        registry: ClusterRegistry,
        settings: ApiSettings,
    ) -> Self {
        registry.seal_with(keyring.clone());
        registry.connect_on_demand(
            store.clone(),
            keyring.clone(),
            crate::clusters::KubeconfigPolicy {
                allow_insecure: settings.allow_insecure_clusters,
            },
        );
        Hub {
            store,
            keyring,
            registry,
            throttle: Arc::new(throttle::Throttle::new(&settings)),
            inspections: Arc::default(),
            log_reads: Arc::new(throttle::Limiter::new(
                deployments::LOG_READS,
                throttle::MAX_KEYS,
            )),
            credential_writes: Arc::new(throttle::Limiter::new(
                source_credentials::CLUSTER_WRITES,
                throttle::MAX_KEYS,
            )),
            settings: Arc::new(settings),
            audit_target: None,
        }
    }

    /// Where audit exports are written.
    pub fn with_audit_target(mut self, target: ExportTarget) -> Self {
        self.audit_target = Some(Arc::new(target));
        self
    }

    pub fn audit_target(&self) -> Option<&ExportTarget> {
        self.audit_target.as_deref()
    }

    /// The store, for the operations of this crate and for what wires the
    /// hub together (start-up, migrations, tests); the console and other
    /// callers use the operations instead.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The cluster connections, for the operations of this crate and for
    /// what attaches clusters (`serve`, tests).
    pub fn registry(&self) -> &ClusterRegistry {
        &self.registry
    }

    pub fn settings(&self) -> &ApiSettings {
        &self.settings
    }

    /// Whether `user` must have a second factor: the platform asks it of
    /// their role (`--second-factor-roles`), or their tenant does.
    pub fn needs_second_factor(&self, user: &crate::store::User) -> bool {
        self.settings.second_factor_roles.contains(user.role) || user.tenant_requires_second_factor
    }

    /// What `user` must do before anything else, if anything: choose a new
    /// password, then enrol the second factor they need and lack.
    pub fn pending(&self, user: &crate::store::User) -> Option<Pending> {
        if user.must_change_password {
            Some(Pending::PasswordChange)
        } else if self.needs_second_factor(user) && !user.totp_enabled {
            Some(Pending::SecondFactor)
        } else {
            None
        }
    }

    /// What registered clusters' kubeconfigs may ask for, by the
    /// platform's settings.
    pub fn kubeconfig_policy(&self) -> crate::clusters::KubeconfigPolicy {
        crate::clusters::KubeconfigPolicy {
            allow_insecure: self.settings.allow_insecure_clusters,
        }
    }

    pub(crate) fn pool_max_age(&self) -> Duration {
        Duration::from_secs(self.settings.pool_max_age_seconds)
    }
}

impl Hub {
    /// Registers (once; later calls find the row) and connects a cluster
    /// that runs in this process: how `modelfleet serve` puts its sandbox
    /// clusters in front of the hub.
    pub async fn register_sandbox_cluster(
        &self,
        name: &str,
        cloud: modelfleet_core::fleet::Cloud,
        region: &str,
        client: kube::Client,
    ) -> std::result::Result<crate::store::Cluster, crate::store::StoreError> {
        use crate::store::{NewCluster, StoreError};
        let cluster = match self.store.cluster_by_name(name).await {
            Ok(found) => found,
            Err(StoreError::NotFound(_)) => {
                let mut tx = self
                    .store
                    .begin(&crate::identity::Actor::system("serve"))
                    .await?;
                let cluster = tx
                    .register_cluster(
                        NewCluster {
                            name: name.to_owned(),
                            cloud,
                            region: region.to_owned(),
                            kubeconfig: None,
                        },
                        &self.keyring,
                    )
                    .await?;
                tx.commit().await?;
                cluster
            }
            Err(e) => return Err(e),
        };
        self.registry
            .attach(&cluster.name, cluster.cloud, &cluster.region, client);
        Ok(cluster)
    }
}
