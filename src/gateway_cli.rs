//! `modelfleet gateway`: the inference gateway alone (see
//! [`modelfleet::gateway`]), from the same database and key settings as
//! `modelfleet api`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use modelfleet::gateway::{GatewayOptions, RunningGateway};
use modelfleet::hub::{DATABASE_FILE, HubOptions};
use modelfleet_api::ApiSettings;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    log: crate::logging::LogArgs,
    /// The hubs' database, as given to `modelfleet api`: the data
    /// directory's SQLite file unless `--database-url` names another (a
    /// gateway opens only an existing one, and never migrates it).
    #[command(flatten)]
    storage: crate::serve::Storage,
    /// Address of the OpenAI-compatible API (`0.0.0.0:8080` in a container).
    #[arg(long, env = "MODELFLEET_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The hubs' key that seals secrets: a file holding it in base64,
    /// readable by this user alone, e.g. the hubs' mounted Secret
    /// [default: MODELFLEET_SECRET_KEY]. It opens the registered clusters'
    /// kubeconfigs and derives the engines' keys.
    #[arg(long, env = "MODELFLEET_SECRET_KEY_FILE", value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    /// How long requests in flight (streams included) may take to finish
    /// after SIGTERM, in seconds; then they are cut off. Keep it below the
    /// pod's terminationGracePeriodSeconds.
    #[arg(long, env = "MODELFLEET_GATEWAY_DRAIN_SECONDS", default_value_t = modelfleet::gateway::DEFAULT_DRAIN.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    drain_seconds: u64,
    /// The hub's settings; a gateway uses the `--gateway-*` ones, the
    /// trusted proxies, the failed-key limits and `--allow-insecure-clusters`.
    #[command(flatten)]
    settings: ApiSettings,
}

pub fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(&args.log);
    // The same default as `modelfleet api`: SQLite in the data directory.
    let mut hub = HubOptions::new(&args.storage.data_dir, args.listen);
    hub.database_url = args.storage.database_url;
    if hub.database_url.is_none() {
        let file = args.storage.data_dir.join(DATABASE_FILE);
        anyhow::ensure!(
            file.is_file(),
            "no hub database at {}: give the hubs' --database-url (PostgreSQL), or start \
             `modelfleet api` or `modelfleet serve` on this data directory first",
            file.display()
        );
    }
    let mut options = GatewayOptions::new(hub.database_url(), args.listen);
    options.secret_key_file = args.secret_key_file;
    options.settings = args.settings;
    options.drain = Duration::from_secs(args.drain_seconds);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Caught before anything answers, so a stop that comes early is
        // still a clean one.
        let stop = crate::signals::Stop::install()?;
        let gateway = RunningGateway::start(options).await?;
        let clusters = gateway.state.registry().names();
        println!("modelfleet gateway is up");
        println!(
            "  OpenAI API:   {}/v1  (a tenant's API key as the bearer token)",
            gateway.url
        );
        println!("  clusters:     {} connected", clusters.len());
        println!("Ctrl-C or SIGTERM stops it.");
        tracing::info!(url = %gateway.url, clusters = clusters.len(), "the gateway is up");
        stop.wait().await;
        tracing::info!("stopping: draining requests in flight");
        gateway.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
