//! The hub in one process. `modelfleet api` runs it alone: its store, its
//! API and console, its background loops and the clusters registered in
//! its database. `modelfleet serve` runs the whole product around it: the
//! hub's store (SQLite in the data directory unless a database URL is
//! given), one embedded sandbox cluster per cluster of the fleet, each with
//! its own operator, a kubeconfig in the data directory and its objects
//! kept there (so a restart resumes them), the hub's
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
use modelfleet_api::store::{Elector, StartupLock};
use modelfleet_api::{ApiSettings, AppState, ClusterRegistry, Keyring, Store, local_files};
use modelfleet_core::billing::{PriceCatalog, UnixSeconds};
use modelfleet_core::fleet::Fleet;
use modelfleet_web::compliance::HubReportRenderer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::embedded::{self, EmbeddedCluster, EmbeddedOptions};

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

/// Where `serve --real-fetch` keeps the sandbox nodes' disks, in the data
/// directory: one directory per cluster, then per node.
pub const NODES_DIR: &str = "nodes";

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
    /// What the first start on an empty database creates.
    pub first_start: FirstStartOptions,
    /// The sandbox clusters run modelfleet's own fetch for real, into
    /// `<data_dir>/nodes/<cluster>/<node>`, from whatever each source
    /// names; otherwise downloads are simulated.
    pub real_fetch: bool,
}

/// What the first start on an empty database creates besides the admin.
#[derive(Debug, Clone)]
pub struct FirstStartOptions {
    /// A demo tenant with a quota, its admin and an API key (`serve`).
    pub demo_tenant: bool,
    /// A file holding the admin's first password (`api`, from a Secret);
    /// generated and written to the credentials file when `None`.
    pub admin_password_file: Option<PathBuf>,
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
            first_start: FirstStartOptions {
                demo_tenant: true,
                admin_password_file: None,
            },
            real_fetch: false,
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
    /// Set on the first start only: the file holds them too (unless the
    /// admin's password was given).
    pub initial_credentials: Option<InitialCredentials>,
    /// The admin's first password came from a file.
    pub admin_password_given: bool,
    pub clusters: Vec<EmbeddedCluster>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    /// This hub's hold on its database.
    lock: modelfleet_api::store::HubLock,
    /// The background loops, and the cluster refresh.
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
        // One hub per SQLite file (see `HubLock`): taken before anything is
        // written, held until shutdown. On PostgreSQL any number of hubs
        // run; they start one at a time (migrations, the first admin, the
        // price defaults), then elect one holder per background loop.
        let url = options.database_url();
        let lock = modelfleet_api::store::HubLock::hold(&url).await?;
        let starting = StartupLock::take(&url)
            .await
            .context("cannot wait for other hubs of this database to finish starting")?;
        let store = Store::connect(&url)
            .await
            .context("cannot open the hub's database")?;

        let credentials_path = options.data_dir.join(CREDENTIALS_FILE);
        let given = match &options.first_start.admin_password_file {
            Some(path) => Some(read_admin_password(path)?),
            None => None,
        };
        let admin_password_given = given.is_some();
        let what = bootstrap::FirstStart {
            admin_password: given,
            demo_tenant: options.first_start.demo_tenant,
        };
        let initial_credentials = bootstrap::first_start_with(&store, what, |credentials| {
            if admin_password_given {
                // The installer holds the one secret created: nothing to
                // write down.
                Ok(())
            } else {
                local_files::write_private(&credentials_path, credentials.to_file_text().as_bytes())
            }
        })
        .await
        .context("cannot create the first platform admin")?;

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
        starting.release().await;

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
        if !simulated.is_empty() {
            embedded::open_snapshot_dir(&options.data_dir)?;
        }
        for (name, fleet) in simulated {
            let pool = &fleet.pools[0];
            let (cloud, region) = (pool.cloud, pool.region.clone());
            let mut embedded = EmbeddedOptions::new(name.clone(), fleet);
            embedded.time_factor = options.time_factor;
            embedded.requeue = options.requeue;
            embedded.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            // The hub decides what runs: quota applies to kubectl too.
            embedded.admission = Some(keyring.admission_key(&name));
            // Its objects outlive a restart: loaded when kept before.
            embedded.snapshot = Some(embedded::snapshot_file(&options.data_dir, &name)?);
            if options.real_fetch {
                embedded.real_fetch_disks = Some(options.data_dir.join(NODES_DIR).join(&name));
            }
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
            // The gateway reaches the simulated engines where they listen.
            let engines = cluster.nodes.engine_addresses();
            state.registry().route_engines(
                &name,
                Arc::new(move |pod_ip: &str, port: u16| engines.resolve(pod_ip, port)),
            );
            clusters.push(cluster);
        }

        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr().context("no local address")?;
        let (stop, mut stopped) = watch::channel(false);
        // Every hub keeps its connections to the registered clusters
        // current (another hub may have registered one) and its own
        // request limits; each other loop runs on one hub of the database.
        let elector = Elector::new(&url, &hub_identity())?;
        let mut background = vec![
            tokio::spawn(refresh_clusters(state.clone(), stopped.clone())),
            modelfleet_api::service::throttle::spawn(state.hub().clone(), stopped.clone()),
        ];
        let hub = state.hub().clone();
        background.push(elector.spawn("cluster-sync", stopped.clone(), move |stop| {
            modelfleet_api::sync::run(hub.clone(), stop)
        }));
        let hub = state.hub().clone();
        background.push(elector.spawn("failover", stopped.clone(), move |stop| {
            modelfleet_api::failover::run(hub.clone(), stop)
        }));
        let hub = state.hub().clone();
        background.push(elector.spawn("billing", stopped.clone(), move |stop| {
            let task = modelfleet_api::billing::schedule::spawn(hub.clone(), stop);
            async move {
                let _ = task.await;
            }
        }));
        let store = state.store().clone();
        background.push(
            elector.spawn("session-purge", stopped.clone(), move |stop| {
                purge_sessions(store.clone(), stop)
            }),
        );
        if let Some(target) = audit_target {
            let every =
                Duration::from_secs(u64::from(state.settings().audit_export_every_hours) * 3600);
            let (store, keyring) = (state.store().clone(), keyring.clone());
            background.push(elector.spawn("audit-export", stopped.clone(), move |stop| {
                audit::run_scheduled(store.clone(), keyring.clone(), target.clone(), every, stop)
            }));
            let store = state.store().clone();
            let retention = state.settings().audit_retention_days;
            background.push(elector.spawn("audit-prune", stopped.clone(), move |stop| {
                prune_audit(store.clone(), retention, every, stop)
            }));
        }
        let app =
            modelfleet_api::router_with_console(state.clone(), modelfleet_web::console::router());
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            // Peer addresses go into the audit trail as sourceIPs.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(without_delay(listener), app)
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
            admin_password_given,
            clusters,
            state,
            stop,
            server,
            lock,
            background,
        })
    }

    /// Stops accepting, lets requests in flight finish (up to
    /// [`DRAIN_DEADLINE`]), stops the background loops at the end of their
    /// iteration and lets go of their locks, so another hub takes them at
    /// once (up to [`SHUTDOWN_DEADLINE`] in all, inside Kubernetes' default
    /// 30 s grace); what is still running then is cut off.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
        if tokio::time::timeout(DRAIN_DEADLINE, &mut self.server)
            .await
            .is_err()
        {
            tracing::warn!(
                ?DRAIN_DEADLINE,
                "requests still running at the drain deadline: cut off"
            );
            self.server.abort();
        }
        for mut task in self.background {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("a background loop did not stop by the shutdown deadline: cut off");
                task.abort();
            }
        }
        // The last answers' tokens, before the database closes.
        if let Err(e) = self.state.gateway().flush().await {
            tracing::error!(error = %e, "metered tokens could not be written before stopping");
        }
        for cluster in self.clusters {
            cluster.shutdown().await;
        }
        self.state.store().close().await;
        self.lock.release().await;
    }
}

/// The admin's first password from `path`: one line, whitespace around it
/// dropped (a Secret's value often ends with a newline).
fn read_admin_password(path: &std::path::Path) -> anyhow::Result<modelfleet_api::Secret> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the initial admin password from {}",
            path.display()
        )
    })?;
    let password = text.trim();
    if password.is_empty() || password.contains('\n') {
        anyhow::bail!(
            "{} must hold the initial admin password on one line",
            path.display()
        );
    }
    Ok(modelfleet_api::Secret::new(password.to_owned()))
}

/// How long requests in flight may take to finish once the hub stops.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long stopping may take in all: inside Kubernetes' default 30 s
/// grace period before SIGKILL.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(25);

/// How often every hub connects the clusters other hubs registered.
const CLUSTER_REFRESH: Duration = Duration::from_secs(5);

/// Connects the clusters registered (by any hub of the database) since
/// this one started, every [`CLUSTER_REFRESH`].
pub async fn refresh_clusters(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CLUSTER_REFRESH) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let policy = state.hub().kubeconfig_policy();
        match state
            .registry()
            .refresh(state.store(), state.keyring(), policy)
            .await
        {
            Ok(failed) => {
                for (name, e) in failed {
                    tracing::warn!(cluster = %name, error = %e, "a registered cluster is not connected");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the registered clusters"),
        }
    }
}

/// This hub's name among the hubs of its database: the pod's name in a
/// cluster (`POD_NAME`), else the host's, with the process id.
fn hub_identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "hub".to_owned());
    format!("{host}/{}", std::process::id())
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

/// `listener` with Nagle's algorithm off on each accepted connection: a
/// streamed answer's events (and a small answer after its headers) leave
/// at once, instead of waiting up to the peer's delayed ACK (40 ms on
/// Linux) for the previous segment to be acknowledged.
pub(crate) fn without_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt as _;
    fn no_delay(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    }
    listener.tap_io(no_delay as fn(&mut tokio::net::TcpStream))
}
