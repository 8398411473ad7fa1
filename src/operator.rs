//! `modelfleet operator`: the in-cluster controller.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use modelfleet_operator::controller::{DEFAULT_CONCURRENCY, Settings};
use modelfleet_operator::leader::LeaderElection;
use modelfleet_operator::runner::{self, Options, Shutdown};

/// Runs in a cluster (or against any kubeconfig) and reconciles its
/// ModelDeployments.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    log: crate::logging::LogArgs,
    /// This cluster's name, as pools are referenced (`cluster/pool`) by the
    /// hub and in `spec.placement.pool`.
    #[arg(long, env = "MODELFLEET_CLUSTER", default_value = "default")]
    cluster: String,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "MODELFLEET_PROBE_ADDR", default_value = "0.0.0.0:8080")]
    probe_addr: SocketAddr,
    /// Run without leader election (only when exactly one replica runs).
    #[arg(long, env = "MODELFLEET_NO_LEADER_ELECTION")]
    no_leader_election: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "modelfleet-system")]
    lease_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "modelfleet-operator")]
    identity: String,
    /// ModelDeployments reconciled at once; more only adds memory and API
    /// load once the API server is the bottleneck.
    #[arg(long, env = "MODELFLEET_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Run only ModelDeployments a modelfleet hub has admitted and sealed
    /// with this cluster's admission key, so that quota, budget and the
    /// platform's rules apply to `kubectl` too. Set it when a hub manages
    /// this cluster: a file (mount it from a Secret only the operator
    /// reads) holding the 64 hex characters `modelfleet admission-key`
    /// prints for the cluster.
    #[arg(long, env = "MODELFLEET_ADMISSION_KEY_FILE")]
    admission_key_file: Option<std::path::PathBuf>,
    /// Mount the Ascend driver's files (`/usr/local/Ascend/driver`,
    /// `/usr/local/dcmi`, `npu-smi`, `/etc/ascend_install.info`) from the
    /// node into vllm-ascend pods, for nodes without the Ascend Docker
    /// Runtime that would mount them. Host paths break Pod Security
    /// `baseline`, which the namespaces a hub creates enforce: only for
    /// namespaces a platform admin has deliberately exempted.
    #[arg(long, env = "MODELFLEET_ASCEND_HOST_PATHS")]
    ascend_host_paths: bool,
}

pub fn run(args: OperatorArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(&args.log);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("cannot reach a Kubernetes API server (in-cluster config or KUBECONFIG)")?;
        let mut settings = Settings::new(args.cluster);
        settings.concurrency = args.concurrency;
        settings.build.ascend_host_paths = args.ascend_host_paths;
        settings.admission = match &args.admission_key_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the admission key {}", path.display()))?;
                Some(
                    modelfleet_core::contract::admission::AdmissionKey::from_hex(&text)
                        .with_context(|| format!("{} holds no admission key", path.display()))?,
                )
            }
            None => None,
        };
        let options = Options {
            settings,
            probe_addr: Some(args.probe_addr),
            leader_election: (!args.no_leader_election).then(|| LeaderElection {
                lease_name: "modelfleet-operator".to_owned(),
                namespace: args.lease_namespace,
                identity: args.identity,
                lease_seconds: 15,
                grace_seconds: 5,
            }),
        };
        let (shutdown, stop) = Shutdown::channel();
        let signals = crate::signals::Stop::install()?;
        tokio::spawn(async move {
            signals.wait().await;
            shutdown.trigger();
        });
        runner::run(client, options, stop).await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Debug, clap::Args)]
pub struct AdmissionKeyArgs {
    /// The cluster's name, as registered with the hub.
    #[arg(long)]
    cluster: String,
    /// The hub's data directory, whose `secret.key` the key derives from
    /// (unless MODELFLEET_SECRET_KEY gives the hub's key).
    #[arg(long, default_value = "modelfleet-data")]
    data_dir: std::path::PathBuf,
}

/// Prints a cluster's admission key, derived from the hub's secret key;
/// never creates one.
pub fn admission_key(args: AdmissionKeyArgs) -> anyhow::Result<ExitCode> {
    let file = args.data_dir.join(modelfleet::hub::KEY_FILE);
    let keyring = match modelfleet_api::SecretKey::from_env()
        .context("MODELFLEET_SECRET_KEY is not a key")?
    {
        Some(key) => modelfleet_api::Keyring::new(key),
        None if file.exists() => modelfleet_api::Keyring::from_env_or_file(&file)
            .with_context(|| format!("cannot read the hub's key {}", file.display()))?,
        None => anyhow::bail!(
            "no hub key at {}: give the hub's data directory with --data-dir, or its key in \
             MODELFLEET_SECRET_KEY",
            file.display()
        ),
    };
    println!("{}", keyring.admission_key(&args.cluster).to_hex());
    Ok(ExitCode::SUCCESS)
}
