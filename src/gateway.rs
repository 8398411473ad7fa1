//! `modelfleet gateway`: the inference gateway on its own — OpenAI's API
//! (`/v1/models`, `/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`), the probes and `/metrics` — for a fleet whose hubs
//! (`modelfleet api`) share its database. It keeps no state of its own, so
//! any number run behind one Service and scale out apart from the hubs.
//!
//! It reads the hubs' database and seals nothing: it never migrates (a
//! schema older than it expects is refused, since the hubs migrate), runs
//! none of the hubs' elected background loops, and only keeps its
//! connections to the registered clusters current, as every hub does.
//! On SIGTERM it stops accepting and lets the requests in flight finish,
//! streams included, within its grace period.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use modelfleet_api::{ApiSettings, AppState, ClusterRegistry, Keyring, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long requests in flight may take to finish once a gateway stops,
/// unless told otherwise: a streamed answer of a few thousand tokens, inside
/// Kubernetes' default 30 s grace period.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(20);

/// What the background tasks get to end after the drain.
const STOP_TASKS_WITHIN: Duration = Duration::from_secs(3);

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub listen: SocketAddr,
    /// The hubs' database (PostgreSQL in production).
    pub database_url: String,
    /// The file holding the key that seals secrets (the hubs' key), else
    /// `MODELFLEET_SECRET_KEY`: it opens the registered clusters'
    /// kubeconfigs and derives the engines' keys.
    pub secret_key_file: Option<PathBuf>,
    pub settings: ApiSettings,
    /// How long requests in flight may take to finish on shutdown.
    pub drain: Duration,
}

impl GatewayOptions {
    pub fn new(database_url: impl Into<String>, listen: SocketAddr) -> Self {
        GatewayOptions {
            listen,
            database_url: database_url.into(),
            secret_key_file: None,
            settings: ApiSettings::default(),
            drain: DEFAULT_DRAIN,
        }
    }
}

/// A running gateway. [`RunningGateway::shutdown`] stops it.
#[derive(Debug)]
pub struct RunningGateway {
    /// Where it listens: `http://127.0.0.1:8081`.
    pub url: String,
    pub state: AppState,
    drain: Duration,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    /// The cluster refresh and the request limits' sweep.
    background: Vec<JoinHandle<()>>,
}

impl RunningGateway {
    pub async fn start(options: GatewayOptions) -> anyhow::Result<RunningGateway> {
        let keyring = Keyring::from_file_or_env(options.secret_key_file.as_deref())
            .context("cannot load the key that seals secrets")?
            .context(
                "the gateway needs the hubs' key that seals secrets: --secret-key-file FILE (a \
                 mounted Secret readable by this user alone) or MODELFLEET_SECRET_KEY — the same \
                 key every hub of this database is given",
            )?;
        let store = Store::open_unmigrated(&options.database_url)
            .await
            .context("cannot open the hubs' database")?;
        let schema = match store.schema().await {
            Ok(schema) => schema,
            Err(e) => {
                store.close().await;
                return Err(e).context("cannot read the version of the database's schema");
            }
        };
        if !schema.is_current() {
            store.close().await;
            match schema.applied {
                None => anyhow::bail!(
                    "the database holds no modelfleet schema: start a hub (`modelfleet api`) or \
                     run `modelfleet migrate` against it first (the gateway never migrates)"
                ),
                Some(applied) => anyhow::bail!(
                    "the database's schema is at migration {applied}, older than this gateway's \
                     {expected}: upgrade the hubs first (they migrate it; or run `modelfleet \
                     migrate`), then the gateways (the gateway never migrates)",
                    expected = schema.expected
                ),
            }
        }

        let keyring = Arc::new(keyring);
        let state = AppState::new(
            store,
            keyring.clone(),
            ClusterRegistry::new(),
            options.settings,
        );
        let policy = state.hub().kubeconfig_policy();
        for (name, e) in state
            .registry()
            .load(state.store(), &keyring, policy)
            .await
            .context("cannot read the registered clusters")?
        {
            tracing::warn!(cluster = %name, error = %e, "a registered cluster is not connected");
        }

        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr().context("no local address")?;
        let (stop, stopped) = watch::channel(false);
        // What every hub runs too, and nothing the hubs elect one of them
        // for: this process owns no loop.
        let background = vec![
            tokio::spawn(crate::hub::refresh_clusters(state.clone(), stopped.clone())),
            modelfleet_api::service::throttle::spawn(state.hub().clone(), stopped.clone()),
        ];
        let app = modelfleet_api::http::gateway_router(state.clone());
        let mut stopping = stopped;
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            // Peer addresses count failed keys per client address.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(crate::hub::without_delay(listener), app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "the gateway's listener stopped");
            }
        });
        Ok(RunningGateway {
            url: format!("http://{addr}"),
            state,
            drain: options.drain,
            stop,
            server,
            background,
        })
    }

    /// Stops accepting, lets requests in flight finish — a stream until
    /// its last event — up to the drain period, cuts off what still runs
    /// then, writes the tokens metered so far, and closes the database.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(self.drain, &mut self.server)
            .await
            .is_err()
        {
            tracing::warn!(
                drain = ?self.drain,
                "requests still running at the end of the drain period: cut off"
            );
            self.server.abort();
        }
        // The last answers' tokens, after the last request ended and
        // before the database closes.
        if let Err(e) = self.state.gateway().flush().await {
            tracing::error!(error = %e, "metered tokens could not be written before stopping");
        }
        let deadline = tokio::time::Instant::now() + STOP_TASKS_WITHIN;
        for mut task in self.background {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
        self.state.store().close().await;
    }
}
