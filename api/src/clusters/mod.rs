//! Clusters at runtime: a [`kube::Client`] per registered cluster and the
//! node pools last discovered in it.
//!
//! The database says which clusters exist (see `store/clusters.rs`); this
//! registry holds the connections. A kubeconfig cluster is connected from
//! its sealed kubeconfig ([`ClusterRegistry::load`], [`ClusterRegistry::connect`]);
//! a sandbox cluster runs in the same process and whoever started it hands
//! its client in with [`ClusterRegistry::attach`], so this crate needs no
//! dependency on the sandbox. Production and sandbox clusters are then
//! reached through the same client path.
//!
//! Pools are discovered exactly as the operator discovers them
//! (`modelfleet_core::contract::discovery::discover`), then the registered
//! cloud and region and the hub's own prices are laid over them: the
//! platform admin's word wins over node labels.

mod credentials;
mod engines;
mod kube_ops;
pub mod kubeconfig;
mod logs;
pub mod rights;
mod stored;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use kube::Client;
use modelfleet_core::billing::{Capacity, PriceCatalog, PriceKey, UnixSeconds};
use modelfleet_core::contract::discovery::Skipped;
use modelfleet_core::fleet::{Cloud, Fleet, NodePool};
use modelfleet_core::money::ExchangeRates;
use tracing::warn;

use crate::secret::{Keyring, Secret};
use crate::store::{Cluster, PoolPrice};

pub use engines::{Engine, ResolveEngine};
pub use kube_ops::{DEPLOYMENT_ID_LABEL, Decision, FIELD_MANAGER, TENANT_LABEL, namespace_of};
pub use kubeconfig::KubeconfigPolicy;
pub use logs::{ContainerLog, PodLogs};

/// How long one call to a cluster's API may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A cluster's API could not be used. Messages name the cluster and the
/// step, never the kubeconfig or the server's own words (which can carry
/// addresses and tokens); the source is logged.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster {0:?} is not connected to this hub")]
    NotConnected(String),
    #[error("the kubeconfig cannot be used: {0}")]
    Kubeconfig(&'static str),
    /// The kubeconfig asks for something the hub does not do (run a
    /// command, read a local file, use a proxy, plain HTTP).
    #[error("the kubeconfig is refused: {0}")]
    KubeconfigRefused(kubeconfig::Refused),
    /// A registered cluster whose stored kubeconfig is no longer accepted:
    /// it stays registered and unused until it is registered again.
    #[error("cluster {cluster:?} is not used: its stored kubeconfig is refused ({refused})")]
    Unusable {
        cluster: String,
        refused: kubeconfig::Refused,
    },
    #[error("cluster {cluster:?} did not answer within {seconds} s")]
    Timeout { cluster: String, seconds: u64 },
    #[error("cluster {cluster:?}: {step} failed")]
    Kube {
        cluster: String,
        step: &'static str,
        #[source]
        source: kube::Error,
    },
}

impl ClusterError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            ClusterError::NotConnected(_) => "not_connected",
            ClusterError::Kubeconfig(_) | ClusterError::KubeconfigRefused(_) => "kubeconfig",
            ClusterError::Unusable { .. } => "unusable",
            ClusterError::Timeout { .. } => "timeout",
            ClusterError::Kube { .. } => "kube",
        }
    }
}

/// What discovery last found in one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// With the registered cloud and region; prices not yet applied.
    pub pools: Vec<NodePool>,
    /// Accelerator nodes in no usable pool, and why.
    pub skipped: Vec<Skipped>,
    /// Whether the cluster serves the LeaderWorkerSet API, so that
    /// multi-node replicas can run there.
    pub lws_available: bool,
    /// What the hub's kubeconfig may do there beyond what it needs
    /// ([`rights`]), or why that is unknown.
    pub excess_rights: rights::Excess,
    pub observed_at: DateTime<Utc>,
}

/// A registered cluster with what the hub currently knows of its pools.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster: Cluster,
    /// Pools with the hub's prices applied, or why they are unknown.
    pub pools: Result<Discovered, String>,
}

struct Member {
    /// Tells a re-attached cluster (a new client) from the one before.
    generation: u64,
    cloud: Cloud,
    region: String,
    client: Client,
    /// Held across a refresh, so concurrent requests wait for one listing
    /// instead of each listing the cluster.
    discovered: tokio::sync::Mutex<Option<(Instant, Discovered)>>,
    /// Tenant namespaces made ready ([`ClusterRegistry::prepare_namespace`])
    /// and when: done again after [`PREPARED_FOR`], so a label or binding
    /// someone removed comes back.
    prepared: std::sync::Mutex<BTreeMap<String, Instant>>,
}

/// How long a prepared tenant namespace is taken as still prepared.
const PREPARED_FOR: Duration = Duration::from_secs(300);

/// The hub's live connections to its clusters. Cheap to clone.
#[derive(Clone, Default)]
pub struct ClusterRegistry {
    members: Arc<RwLock<BTreeMap<String, Arc<Member>>>>,
    /// What the clusters' admission keys derive from (the hub's keyring),
    /// once the hub has handed it over ([`ClusterRegistry::seal_with`]).
    keyring: Arc<std::sync::OnceLock<Arc<Keyring>>>,
    /// Registered clusters whose stored kubeconfig was refused when loaded,
    /// and why: they show why instead of "not connected".
    refused: Arc<RwLock<BTreeMap<String, kubeconfig::Refused>>>,
    /// Where a cluster registered by another hub of the same database is
    /// read from when a request needs it before the next refresh.
    source: Arc<std::sync::OnceLock<stored::Source>>,
    /// Clusters whose engines answer elsewhere than at their pods' IPs
    /// ([`ClusterRegistry::route_engines`]).
    engine_routes: Arc<RwLock<BTreeMap<String, ResolveEngine>>>,
}

impl std::fmt::Debug for ClusterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRegistry")
            .field("clusters", &self.names())
            .finish()
    }
}

impl ClusterRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands the registry the hub's keyring, which every cluster's
    /// admission key derives from (the first call wins).
    pub fn seal_with(&self, keyring: Arc<Keyring>) {
        let _ = self.keyring.set(keyring);
    }

    /// Cluster `cluster`'s admission key, to seal what the hub admits there.
    pub fn admission_key(
        &self,
        cluster: &str,
    ) -> Result<modelfleet_core::contract::admission::AdmissionKey, ClusterError> {
        self.keyring
            .get()
            .map(|k| k.admission_key(cluster))
            .ok_or_else(|| ClusterError::NotConnected(cluster.to_owned()))
    }

    /// Connects cluster `name` through a client made elsewhere: how
    /// `modelfleet serve` hands in the sandbox clusters it runs. Replaces an
    /// earlier connection of the same name.
    pub fn attach(&self, name: &str, cloud: Cloud, region: &str, client: Client) {
        static ATTACHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let member = Arc::new(Member {
            generation: ATTACHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            cloud,
            region: region.to_owned(),
            client,
            discovered: tokio::sync::Mutex::new(None),
            prepared: std::sync::Mutex::default(),
        });
        self.members
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), member);
        self.refused
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Connects cluster `name` through a kubeconfig (its current context),
    /// if `policy` accepts it.
    pub async fn connect(
        &self,
        name: &str,
        cloud: Cloud,
        region: &str,
        kubeconfig: &Secret,
        policy: KubeconfigPolicy,
    ) -> Result<(), ClusterError> {
        let client = match client_from_kubeconfig(kubeconfig, policy).await {
            Ok(client) => client,
            Err(ClusterError::KubeconfigRefused(refused)) => {
                self.refused
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(name.to_owned(), refused.clone());
                return Err(ClusterError::Unusable {
                    cluster: name.to_owned(),
                    refused,
                });
            }
            Err(e) => return Err(e),
        };
        self.attach(name, cloud, region, client);
        Ok(())
    }

    pub fn detach(&self, name: &str) {
        self.members
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    pub fn is_connected(&self, name: &str) -> bool {
        self.member(name).is_ok()
    }

    pub fn names(&self) -> Vec<String> {
        self.members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Every connected cluster: its name, a generation that changes when it
    /// is attached again, and its client. What cluster sync watches.
    pub fn connections(&self) -> Vec<(String, u64, Client)> {
        self.members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, m)| (name.clone(), m.generation, m.client.clone()))
            .collect()
    }

    /// The cloud cluster `name` was registered on.
    pub fn cloud_of(&self, name: &str) -> Option<Cloud> {
        self.member(name).ok().map(|m| m.cloud)
    }

    fn member(&self, name: &str) -> Result<Arc<Member>, ClusterError> {
        if let Some(member) = self
            .members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(member.clone());
        }
        match self
            .refused
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            Some(refused) => Err(ClusterError::Unusable {
                cluster: name.to_owned(),
                refused: refused.clone(),
            }),
            None => Err(ClusterError::NotConnected(name.to_owned())),
        }
    }

    pub(crate) async fn client(&self, name: &str) -> Result<Client, ClusterError> {
        Ok(self.member_or_connect(name).await?.client.clone())
    }

    /// The pools of cluster `name`, listed again if the last listing is
    /// older than `max_age`.
    pub async fn discover(
        &self,
        name: &str,
        max_age: Duration,
    ) -> Result<Discovered, ClusterError> {
        let member = self.member_or_connect(name).await?;
        let mut cached = member.discovered.lock().await;
        if let Some((at, discovered)) = cached.as_ref()
            && at.elapsed() <= max_age
        {
            return Ok(discovered.clone());
        }
        let mut discovered = kube_ops::discover(name, &member.client).await?;
        for pool in &mut discovered.pools {
            pool.cloud = member.cloud;
            pool.region.clone_from(&member.region);
        }
        *cached = Some((Instant::now(), discovered.clone()));
        Ok(discovered)
    }

    /// Every registered cluster with its pools (listed concurrently, each
    /// no older than `max_age`) and the hub's prices laid over them.
    pub async fn observe(
        &self,
        clusters: Vec<Cluster>,
        prices: &[PoolPrice],
        max_age: Duration,
    ) -> Vec<ClusterView> {
        let lookups = clusters.iter().map(|c| self.discover(&c.name, max_age));
        let found = join_all(lookups).await;
        clusters
            .into_iter()
            .zip(found)
            .map(|(cluster, found)| {
                let pools = found
                    .map(|mut d| {
                        for pool in &mut d.pools {
                            if let Some(p) = prices
                                .iter()
                                .find(|p| p.cluster == cluster.id && p.pool == pool.name)
                            {
                                pool.price_per_device_hour = Some(p.price_per_device_hour);
                            }
                        }
                        d
                    })
                    .map_err(|e| {
                        warn!(cluster = %cluster.name, error = %e, "cluster pools unknown");
                        e.to_string()
                    });
                ClusterView { cluster, pools }
            })
            .collect()
    }
}

/// Lays the price catalog's prices in force now over the pools: what
/// billing will charge is what plans are ranked and shown with. A pool
/// whose key the catalog does not price keeps its node annotation or
/// per-pool price, and its usage is not billable until one is set.
pub fn price_from_catalog(views: &mut [ClusterView], catalog: &PriceCatalog) {
    let at = UnixSeconds(crate::store::now().timestamp());
    for discovered in views.iter_mut().filter_map(|v| v.pools.as_mut().ok()) {
        for pool in &mut discovered.pools {
            let key = PriceKey::new(
                pool.cloud,
                &pool.region,
                &pool.accelerator,
                Capacity::from(pool.capacity_type),
            );
            if let Some(price) = catalog.price_at(&key, at) {
                pool.price_per_device_hour = Some(price.per_device_hour);
            }
        }
    }
}

/// The fleet the planner sizes against: every pool of every cluster whose
/// pools are known.
pub fn fleet_of(views: &[ClusterView], exchange_rates: &ExchangeRates) -> Fleet {
    Fleet {
        exchange_rates: exchange_rates.clone(),
        pools: views
            .iter()
            .filter_map(|v| v.pools.as_ref().ok())
            .flat_map(|d| d.pools.iter().cloned())
            .collect(),
    }
}

/// A client for the kubeconfig's current context, if `policy` accepts the
/// kubeconfig ([`kubeconfig::check`]). The kubeconfig's text never reaches
/// an error: kube's parse errors can quote it.
pub async fn client_from_kubeconfig(
    kubeconfig: &Secret,
    policy: KubeconfigPolicy,
) -> Result<Client, ClusterError> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let parsed = Kubeconfig::from_yaml(kubeconfig.expose())
        .map_err(|_| ClusterError::Kubeconfig("it is not kubeconfig YAML"))?;
    kubeconfig::check(&parsed, policy).map_err(ClusterError::KubeconfigRefused)?;
    let mut config = Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|_| {
            ClusterError::Kubeconfig("its current context does not name a usable cluster and user")
        })?;
    // kube-rs takes a proxy from HTTPS_PROXY when the kubeconfig names
    // none; the hub connects to clusters directly.
    config.proxy_url = None;
    Client::try_from(config).map_err(|_| ClusterError::Kubeconfig("no client can be built from it"))
}

/// Runs one call to a cluster with the hub's timeout.
async fn timed<T>(
    cluster: &str,
    step: &'static str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(ClusterError::Kube {
            cluster: cluster.to_owned(),
            step,
            source,
        }),
        Err(_) => Err(ClusterError::Timeout {
            cluster: cluster.to_owned(),
            seconds: CALL_TIMEOUT.as_secs(),
        }),
    }
}

/// A delete's outcome, with an object already gone counted as deleted.
fn deleted<T>(outcome: Result<T, ClusterError>) -> Result<(), ClusterError> {
    match outcome {
        Ok(_) => Ok(()),
        Err(ClusterError::Kube {
            source: kube::Error::Api(status),
            ..
        }) if status.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
