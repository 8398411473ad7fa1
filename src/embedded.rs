//! An embedded cluster: a sandbox Kubernetes API server, a simulated fleet
//! of GPU and NPU nodes behind it, the ModelDeployment CRD installed, and
//! the real modelfleet operator reconciling against it through the same
//! `kube::Client` path it uses in production.
//!
//! `modelfleet sandbox` runs one; `modelfleet serve` runs one per cloud; the
//! end-to-end tests start them in-process.
//!
//! With a snapshot file (as under `serve`) a cluster's objects outlive a
//! restart: the API server is loaded from the file, kept in it every
//! [`SNAPSHOT_EVERY`] while objects change, and written there once more on
//! [`EmbeddedCluster::shutdown`]. Everything started against it copes with
//! what is already there: the CRD and RBAC are applied server-side, the
//! simulated nodes leave existing nodes and pods as they are and adopt
//! running pods, and the operator reconciles the ModelDeployments it finds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::fleet::Fleet;
use modelfleet_operator::controller::Settings;
use modelfleet_operator::runner::{self, Options, Shutdown};
use modelfleet_sandbox::cluster::{
    ClusterHandle, ClusterOptions, PodNetwork, RealFetch, SimulatedCluster, Timings,
};
use modelfleet_sandbox::{ApiServer, ApiServerOptions, ServingHandle, SnapshotKeeper};
use tokio::task::JoinHandle;

/// How to start an embedded cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// The cluster's name, as pools are referenced (`cluster/pool`).
    pub name: String,
    pub fleet: Fleet,
    /// Scales the simulated load times (1.0 is real time).
    pub time_factor: f64,
    /// Serve the API over HTTP for kubectl (port 0 picks one).
    pub listen: Option<SocketAddr>,
    /// How often the operator looks again at a converging deployment.
    pub requeue: Duration,
    /// Run only ModelDeployments a hub has admitted and sealed with this
    /// key (as under `serve`).
    pub admission: Option<modelfleet_core::contract::admission::AdmissionKey>,
    /// Keep the cluster's objects in this file (loaded at start when it
    /// exists); in memory only when `None`.
    pub snapshot: Option<PathBuf>,
    /// How fast the simulated nodes download a model (before
    /// `time_factor` scales time).
    pub fetch_bytes_per_second: u64,
    /// Run modelfleet's own fetch init containers for real, with the
    /// nodes' disks under this directory (see the sandbox's
    /// `kubelet::real_fetch`); simulated when `None`.
    pub real_fetch_disks: Option<PathBuf>,
    /// Give pods loopback addresses (`127.<block>.<n>.<m>`) and let each
    /// engine listen at its pod's address, so other processes of this
    /// machine — a `modelfleet gateway` — reach them (see the sandbox's
    /// `PodNetwork`); otherwise only this process does, through
    /// [`ClusterHandle::engine_addresses`].
    pub loopback_pods: bool,
}

/// How often a cluster with a snapshot file writes it while its objects
/// change.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(10);

/// The directory, in `serve`'s data directory, where each sandbox
/// cluster's objects are kept (`{cluster}.json`, its Secrets included).
pub const SNAPSHOT_DIR: &str = "sandbox";

/// [`SNAPSHOT_DIR`] in `data_dir`: created for its owner only, or refused
/// when others may enter it, as the data directory itself.
pub fn open_snapshot_dir(data_dir: &Path) -> anyhow::Result<()> {
    modelfleet_api::local_files::open_data_dir(&data_dir.join(SNAPSHOT_DIR))
        .context("cannot keep the sandbox clusters' objects in the data directory")?;
    Ok(())
}

/// Where sandbox cluster `name` keeps its objects under `data_dir`.
pub fn snapshot_file(data_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    anyhow::ensure!(
        plain,
        "the sandbox cluster name {name:?} cannot name a file: use letters, digits, '-', '_' and '.'"
    );
    Ok(data_dir.join(SNAPSHOT_DIR).join(format!("{name}.json")))
}

impl EmbeddedOptions {
    pub fn new(name: impl Into<String>, fleet: Fleet) -> Self {
        EmbeddedOptions {
            name: name.into(),
            fleet,
            time_factor: 0.01,
            listen: None,
            requeue: Duration::from_secs(2),
            admission: None,
            snapshot: None,
            fetch_bytes_per_second: Timings::default().fetch_bytes_per_second,
            real_fetch_disks: None,
            loopback_pods: false,
        }
    }
}

/// A running embedded cluster; dropping it leaves its tasks running until
/// the runtime stops, [`EmbeddedCluster::shutdown`] stops them.
#[derive(Debug)]
pub struct EmbeddedCluster {
    pub name: String,
    pub api: ApiServer,
    /// Clients acting as the operator's and the hub's ServiceAccounts.
    pub identities: modelfleet_sandbox::install::Identities,
    pub nodes: ClusterHandle,
    pub serving: Option<ServingHandle>,
    snapshot: Option<SnapshotKeeper>,
    operator: JoinHandle<()>,
    stop: Shutdown,
}

impl EmbeddedCluster {
    pub async fn start(options: EmbeddedOptions) -> anyhow::Result<EmbeddedCluster> {
        let (api, snapshot) = match &options.snapshot {
            Some(path) => {
                let api = match ApiServer::load(ApiServerOptions::default(), path)? {
                    Some(api) => {
                        tracing::info!(cluster = %options.name, snapshot = %path.display(),
                            objects_at = api.resource_version(), "sandbox cluster loaded");
                        api
                    }
                    None => ApiServer::new(),
                };
                let keeper = api.keep_snapshot(path.clone(), SNAPSHOT_EVERY);
                (api, Some(keeper))
            }
            None => (ApiServer::new(), None),
        };
        let client = api.client();
        install_crd(&client).await?;
        let mut cluster_options = ClusterOptions::default()
            .time_factor(options.time_factor)
            .pod_logs(api.pod_logs());
        cluster_options.timings.fetch_bytes_per_second = options.fetch_bytes_per_second;
        cluster_options.real_fetch = options.real_fetch_disks.clone().map(|disks| RealFetch {
            image_repository: modelfleet_operator::build::MODELFLEET_IMAGE_REPOSITORY.to_owned(),
            disks,
        });
        if options.loopback_pods {
            cluster_options.pod_network = PodNetwork::loopback()
                .context("cannot take a block of loopback addresses for the pods")?;
        }
        let nodes = SimulatedCluster::start(client.clone(), &options.fleet, cluster_options)
            .await
            .with_context(|| format!("cannot start the simulated nodes of {}", options.name))?;
        // The operator and the hub act with the rights manifests/ gives
        // them, as on a real cluster; `client()` stays the cluster's admin.
        let identities = modelfleet_sandbox::install::modelfleet_rbac(&api, &client)
            .await
            .with_context(|| format!("cannot install modelfleet's RBAC in {}", options.name))?;
        if options.admission.is_none() {
            // No hub binds the operator's role in tenant namespaces: it
            // may run models in `default`, as a standalone install's admin
            // would allow.
            modelfleet_sandbox::install::bind_operator(&client, "default")
                .await
                .with_context(|| format!("cannot bind the operator's role in {}", options.name))?;
        }
        let serving = match options.listen {
            Some(addr) => Some(
                api.serve(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let mut settings = Settings::new(options.name.clone());
        settings.converging_requeue = options.requeue;
        settings.unplannable_requeue = options.requeue * 5;
        settings.admission = options.admission.clone();
        let (stop, stopped) = Shutdown::channel();
        let operator_options = Options {
            settings,
            probe_addr: None,
            leader_election: None,
        };
        let operator_client = identities.operator.clone();
        let operator = tokio::spawn(async move {
            if let Err(e) = runner::run(operator_client, operator_options, stopped).await {
                tracing::error!(error = %e, "the embedded operator stopped");
            }
        });
        Ok(EmbeddedCluster {
            name: options.name,
            api,
            identities,
            nodes,
            serving,
            snapshot,
            operator,
            stop,
        })
    }

    /// The cluster's administrator (what the user's kubeconfig holds).
    pub fn client(&self) -> Client {
        self.api.client()
    }

    /// The hub's identity in this cluster (`manifests/hub-member/`): what a
    /// hub registers it with.
    pub fn hub_client(&self) -> Client {
        self.identities.hub.clone()
    }

    /// A kubeconfig for `kubectl`, if the cluster listens.
    pub fn kubeconfig(&self) -> anyhow::Result<String> {
        let serving = self
            .serving
            .as_ref()
            .context("this embedded cluster does not listen on a port")?;
        Ok(serving.kubeconfig_yaml(&self.name))
    }

    /// Writes [`Self::kubeconfig`] to `path`, a place the user chose.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig()?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Stops the operator, the simulated nodes and the listener, then
    /// writes the snapshot, if the cluster keeps one, with all they did.
    pub async fn shutdown(self) {
        self.stop.trigger();
        let _ = self.operator.await;
        self.nodes.shutdown().await;
        if let Some(serving) = self.serving {
            serving.shutdown().await;
        }
        if let Some(snapshot) = self.snapshot
            && let Err(error) = snapshot.stop().await
        {
            tracing::error!(cluster = %self.name, %error,
                "the sandbox cluster's last changes are not in its snapshot");
        }
    }
}

/// Installs (or updates) the ModelDeployment CRD, as `kubectl apply -f
/// manifests/crds/` would.
pub async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ModelDeployment::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(
        &name,
        &PatchParams::apply("modelfleet").force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("cannot install the CRD {name}"))?;
    Ok(())
}
