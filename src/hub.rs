//! The hub in one process. `modelfleet api` runs it alone: its store, its
//! API and console, its background loops and the clusters registered in
//! its database. `modelfleet serve` runs the whole product around it: the
//! hub's store (SQLite in the data directory unless a database URL is
//! given), one embedded sandbox cluster per cluster of the fleet, each with
//! its own operator and a kubeconfig in the data directory, the hub's
//! cluster sync and failover loops, and the hub's API on one listener.
//! The operators run only what the hub admitted, so a ModelDeployment
//! someone `kubectl apply`s counts against its tenant's quota too.
//!
//! The end-to-end tests start it in process exactly as the command does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use modelfleet_api::audit;
use modelfleet_api::bootstrap::{self, InitialCredentials};
use modelfleet_api::{ApiSettings, AppState, ClusterRegistry, Keyring, Store, local_files};
use modelfleet_core::billing::{PriceCatalog, UnixSeconds};
use modelfleet_core::fleet::Fleet;
use modelfleet_web::compliance::HubReportRenderer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::embedded::{EmbeddedCluster, EmbeddedOptions};

/// The file, in the data directory, that holds the credentials created on
/// first start.
pub const CREDENTIALS_FILE: &str = "initial-credentials";
/// The file, in the data directory, that holds the key secrets are sealed
/// with (unless `MODELFLEET_SECRET_KEY` gives one).
pub const KEY_FILE: &str = "secret.key";
/// Where audit exports go in the data directory unless `--audit-export`
/// names another place.
pub const AUDIT_EXPORT_DIR: &str = "audit-exports";
/// The SQLite database in the data directory, when no database URL is given.
pub const DATABASE_FILE: &str = "modelfleet.db";

/// Where the key that seals secrets comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `MODELFLEET_SECRET_KEY`, else [`KEY_FILE`] in the data directory,
    /// created on first start: one machine, one hub (`serve`).
    DataDir,
    /// This file (a mounted Secret) when named, else
    /// `MODELFLEET_SECRET_KEY`; never created, since every hub of one
    /// database must hold the same key (`api`).
    Given(Option<PathBuf>),
}

#[derive(Debug, Clone)]
pub struct HubOptions {
    pub data_dir: PathBuf,
    pub key: KeySource,
    /// Run a sandbox cluster with an operator for each cluster of the
    /// fleet (`serve`); without, the fleet only seeds prices and the hub
    /// manages the clusters registered in its database (`api`).
    pub sandbox_clusters: bool,
    pub listen: SocketAddr,
    /// The hub's database; SQLite in `data_dir` when `None`.
    pub database_url: Option<String>,
    /// The simulated clusters: one per distinct `cluster` of the fleet.
    pub fleet: Fleet,
    /// Scales simulated model load times (1.0 is real time).
    pub time_factor: f64,
    /// How often an operator looks again at a converging deployment.
    pub requeue: Duration,
    pub settings: ApiSettings,
}

impl HubOptions {
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        HubOptions {
            data_dir: data_dir.into(),
            key: KeySource::DataDir,
            sandbox_clusters: true,
            listen,
            database_url: None,
            fleet: Fleet::example(),
            time_factor: 0.05,
            requeue: Duration::from_secs(2),
            settings: ApiSettings::default(),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join(DATABASE_FILE).display()
            )
        })
    }
}

/// A running hub. [`RunningHub::shutdown`] stops everything it started.
#[derive(Debug)]
pub struct RunningHub {
    /// Where the API and the console listen: `http://127.0.0.1:8080`.
    pub url: String,
    pub data_dir: PathBuf,
    /// Set on the first start only: the file holds them too.
    pub initial_credentials: Option<InitialCredentials>,
    pub clusters: Vec<EmbeddedCluster>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    /// This hub's hold on its database.
    lock: modelfleet_api::store::HubLock,
    /// Cluster sync and failover.
    background: Vec<JoinHandle<()>>,
}

impl RunningHub {
    pub async fn start(options: HubOptions) -> anyhow::Result<RunningHub> {
        local_files::open_data_dir(&options.data_dir)?;
        let keyring = match &options.key {
            KeySource::DataDir => Keyring::from_env_or_file(&options.data_dir.join(KEY_FILE))
                .context("cannot load the key that seals secrets")?,
            KeySource::Given(file) => Keyring::from_file_or_env(file.as_deref())
                .context("cannot load the key that seals secrets")?
                .context(
                    "the hub needs the key that seals secrets: --secret-key-file FILE (a mounted \
                     Secret readable by this user alone) or MODELFLEET_SECRET_KEY, 32 random bytes \
                     in base64 (`head -c 32 /dev/urandom | base64`); every hub of one database \
                     must be given the same key",
                )?,
        };
        // One hub per database (see `HubLock`): taken before anything is
        // written, held until shutdown.
        let lock = modelfleet_api::store::HubLock::hold(&options.database_url()).await?;
        let store = Store::connect(&options.database_url())
            .await
            .context("cannot open the hub's database")?;

        let credentials_path = options.data_dir.join(CREDENTIALS_FILE);
        let initial_credentials = bootstrap::first_start(&store, |credentials| {
            local_files::write_private(&credentials_path, credentials.to_file_text().as_bytes())
        })
        .await
        .context("cannot create the first platform admin and demo tenant")?;

        // The fleet file's prices become the catalog's defaults for every
        // key nobody has priced yet; an admin's prices stay.
        let seeded_at = chrono::DateTime::<chrono::Utc>::from(modelfleet_clock::now());
        let defaults = PriceCatalog::from_fleet(&options.fleet, UnixSeconds(seeded_at.timestamp()))
            .context("the fleet's prices do not form a catalog")?;
        let mut tx = store.begin(&modelfleet_api::Actor::system("serve")).await?;
        tx.seed_prices(&defaults)
            .await
            .context("cannot seed the price catalog")?;
        tx.commit().await?;

        let mut settings = options.settings.clone();
        if settings.exchange_rates.is_empty() {
            // Rank the fleet's pools in different currencies as its file says.
            let rates = &options.fleet.exchange_rates;
            settings.exchange_rates = rates.rates.iter().map(|(c, r)| (*c, *r)).collect();
            if let Some(reference) = rates.reference {
                settings.reference_currency = reference;
            }
        }
        if settings.audit_export.is_none() {
            // Embedded default: exports next to the database, until an
            // object store in another region is configured.
            let dir = std::path::absolute(options.data_dir.join(AUDIT_EXPORT_DIR))
                .context("cannot resolve the audit export directory")?;
            settings.audit_export = Some(format!("file://{}", dir.display()));
        }
        let audit_target = settings
            .audit_target()
            .context("cannot use the audit export location")?;
        let keyring = Arc::new(keyring);
        let mut state = AppState::new(store, keyring.clone(), ClusterRegistry::new(), settings)
            .with_report_renderer(Arc::new(HubReportRenderer::system()));
        if let Some(target) = audit_target.clone() {
            state = state.with_audit_target(target);
        }
        // Clusters registered through the API (by kubeconfig) outlive a
        // restart: connect to them again before sync starts.
        let policy = state.hub().kubeconfig_policy();
        for (name, e) in state
            .registry()
            .load(state.store(), &keyring, policy)
            .await?
        {
            tracing::warn!(cluster = %name, error = %e, "a registered cluster is not connected");
        }
        let mut clusters = Vec::new();
        let simulated = if options.sandbox_clusters {
            clusters_of(&options.fleet)
        } else {
            BTreeMap::new()
        };
        for (name, fleet) in simulated {
            let pool = &fleet.pools[0];
            let (cloud, region) = (pool.cloud, pool.region.clone());
            let mut embedded = EmbeddedOptions::new(name.clone(), fleet);
            embedded.time_factor = options.time_factor;
            embedded.requeue = options.requeue;
            embedded.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            // The hub decides what runs: quota applies to kubectl too.
            embedded.admission = Some(keyring.admission_key(&name));
            let cluster = EmbeddedCluster::start(embedded)
                .await
                .with_context(|| format!("cannot start sandbox cluster {name}"))?;
            // Written anew on each start, never through what stands there.
            let kubeconfig = options.data_dir.join(format!("{name}.kubeconfig"));
            local_files::replace_private(&kubeconfig, cluster.kubeconfig()?.as_bytes())
                .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
            state
                .register_sandbox_cluster(&name, cloud, &region, cluster.hub_client())
                .await
                .with_context(|| format!("cannot register sandbox cluster {name}"))?;
            clusters.push(cluster);
        }

        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr().context("no local address")?;
        let (stop, mut stopped) = watch::channel(false);
        let mut background = vec![
            modelfleet_api::sync::spawn(state.hub().clone(), stopped.clone()),
            modelfleet_api::failover::spawn(state.hub().clone(), stopped.clone()),
            modelfleet_api::billing::schedule::spawn(state.hub().clone(), stopped.clone()),
            tokio::spawn(purge_sessions(state.store().clone(), stopped.clone())),
            modelfleet_api::service::throttle::spawn(state.hub().clone(), stopped.clone()),
        ];
        if let Some(target) = audit_target {
            let every =
                Duration::from_secs(u64::from(state.settings().audit_export_every_hours) * 3600);
            background.push(tokio::spawn(audit::run_scheduled(
                state.store().clone(),
                keyring.clone(),
                target,
                every,
                stopped.clone(),
            )));
            background.push(tokio::spawn(prune_audit(
                state.store().clone(),
                state.settings().audit_retention_days,
                every,
                stopped.clone(),
            )));
        }
        let app =
            modelfleet_api::router_with_console(state.clone(), modelfleet_web::console::router());
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            // Peer addresses go into the audit trail as sourceIPs.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "the hub's listener stopped");
            }
        });
        Ok(RunningHub {
            url: format!("http://{addr}"),
            data_dir: options.data_dir,
            initial_credentials,
            clusters,
            state,
            stop,
            server,
            lock,
            background,
        })
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        for task in self.background {
            let _ = task.await;
        }
        for cluster in self.clusters {
            cluster.shutdown().await;
        }
        self.state.store().close().await;
        self.lock.release().await;
    }
}

/// Removes audit records older than the retention, once they were exported
/// (the store refuses anything else), every `every`.
async fn prune_audit(
    store: Store,
    retention_days: u32,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let actor = modelfleet_api::Actor::system("audit");
    loop {
        let before = chrono::DateTime::<chrono::Utc>::from(modelfleet_clock::now())
            - chrono::TimeDelta::days(i64::from(retention_days));
        match store.prune_audit(&actor, before).await {
            Ok(pruned) => tracing::info!(?pruned, "pruned exported audit records past retention"),
            Err(e) => tracing::debug!(error = %e, "no audit records to prune"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Deletes ended sessions (expired or signed out) every ten minutes: a
/// dead token's row serves no one, and the table would otherwise grow with
/// every sign-in.
async fn purge_sessions(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        let now = chrono::DateTime::<chrono::Utc>::from(modelfleet_clock::now());
        match store.purge_ended_sessions(now).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "purged ended sessions"),
            Err(e) => tracing::warn!(error = %e, "could not purge ended sessions"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The fleet split by cluster, in name order.
pub fn clusters_of(fleet: &Fleet) -> BTreeMap<String, Fleet> {
    let mut clusters: BTreeMap<String, Fleet> = BTreeMap::new();
    for pool in &fleet.pools {
        clusters
            .entry(pool.cluster.clone())
            .or_insert_with(|| Fleet {
                exchange_rates: fleet.exchange_rates.clone(),
                pools: Vec::new(),
            })
            .pools
            .push(pool.clone());
    }
    clusters
}
