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
    /// Run only ModelDeployments a modelfleet hub has admitted (annotation
    /// `modelfleet.io/admission`), so that quota applies to `kubectl apply`
    /// too. Set it when a hub manages this cluster.
    #[arg(long, env = "MODELFLEET_REQUIRE_ADMISSION")]
    require_admission: bool,
}

pub fn run(args: OperatorArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("cannot reach a Kubernetes API server (in-cluster config or KUBECONFIG)")?;
        let mut settings = Settings::new(args.cluster);
        settings.concurrency = args.concurrency;
        settings.require_admission = args.require_admission;
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
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shutdown.trigger();
            }
        });
        runner::run(client, options, stop).await?;
        Ok(ExitCode::SUCCESS)
    })
}
