//! `modelfleet sandbox`: one simulated cluster with the operator running
//! against it, and a kubeconfig for the real `kubectl` — the `kubectl
//! apply` path without a cluster. Its objects live in memory only (no
//! snapshot file): each start is a new, empty cluster.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use modelfleet::embedded::{EmbeddedCluster, EmbeddedOptions};
use modelfleet_core::fleet::Fleet;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(flatten)]
    log: crate::logging::LogArgs,
    /// Node pools to simulate [default: examples/fleet.yaml's fleet, all four clouds].
    #[arg(long, env = "MODELFLEET_FLEET", value_name = "FILE")]
    fleet: Option<PathBuf>,
    /// Port of the Kubernetes API on 127.0.0.1 (0 picks a free one).
    #[arg(long, env = "MODELFLEET_SANDBOX_PORT", default_value_t = 6443)]
    port: u16,
    /// Where to write the kubeconfig for kubectl.
    #[arg(
        long,
        env = "MODELFLEET_KUBECONFIG",
        default_value = "sandbox.kubeconfig"
    )]
    kubeconfig: PathBuf,
    /// Cluster name, as pools are referenced (`cluster/pool`).
    #[arg(long, default_value = "sandbox")]
    name: String,
    /// Scales how long simulated models take to load (1.0 is real time).
    #[arg(long, default_value_t = 0.05)]
    time_factor: f64,
    /// Give pods loopback addresses (127.<block>.<n>.<m>, Linux only) and
    /// let each model's simulated engine answer at its pod's address, so
    /// anything on this machine — a hub's `modelfleet gateway`, curl —
    /// reaches it as a pod network would. Otherwise pods get addresses
    /// nothing answers on.
    #[arg(long, env = "MODELFLEET_SANDBOX_LOOPBACK_PODS")]
    loopback_pods: bool,
}

pub fn read_fleet(path: &Path) -> anyhow::Result<Fleet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read fleet file {}", path.display()))?;
    Fleet::from_yaml(&text).with_context(|| format!("in {}", path.display()))
}

pub fn check_time_factor(time_factor: f64) -> anyhow::Result<()> {
    if !(time_factor > 0.0 && time_factor <= 10.0) {
        anyhow::bail!("--time-factor {time_factor} must be above 0 and at most 10");
    }
    Ok(())
}

pub fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(&args.log);
    let fleet = match &args.fleet {
        Some(path) => read_fleet(path)?,
        None => Fleet::example(),
    };
    check_time_factor(args.time_factor)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut options = EmbeddedOptions::new(args.name.clone(), fleet);
        options.time_factor = args.time_factor;
        options.listen = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port));
        options.loopback_pods = args.loopback_pods;
        // Caught before the cluster answers, so an early stop is clean.
        let stop = crate::signals::Stop::install()?;
        let cluster = EmbeddedCluster::start(options).await?;
        cluster.write_kubeconfig(&args.kubeconfig)?;
        let url = cluster
            .serving
            .as_ref()
            .map(|s| s.url().to_owned())
            .unwrap_or_default();
        println!("sandbox cluster {} is up at {url}", args.name);
        println!("  export KUBECONFIG={}", args.kubeconfig.display());
        println!("  kubectl get nodes");
        println!("  kubectl apply -f manifests/examples/llama-3.1-8b-l40s.yaml");
        println!("  kubectl get md -w");
        println!("Ctrl-C or SIGTERM stops it.");
        stop.wait().await;
        cluster.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
