//! `modelfleet serve`: the whole product on one machine (see
//! [`modelfleet::hub`]); `modelfleet api`: the hub alone, for the clusters
//! registered in its database; and `modelfleet migrate`, which brings a
//! hub database up to date without starting anything else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use modelfleet::hub::{CREDENTIALS_FILE, FirstStartOptions, HubOptions, KeySource, RunningHub};
use modelfleet_api::ApiSettings;
use modelfleet_core::fleet::Fleet;

#[derive(Debug, Args)]
pub(crate) struct Storage {
    /// Where the hub keeps its state: the SQLite database, the key that
    /// seals secrets, the first start's credentials, and the sandbox
    /// clusters' kubeconfigs and objects (`sandbox/<cluster>.json`, so a
    /// restart of `serve` resumes them).
    #[arg(
        long,
        env = "MODELFLEET_DATA_DIR",
        default_value = "modelfleet-data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,
    /// The hub's database instead of SQLite in the data directory:
    /// `postgres://user@host/db` or `sqlite://path?mode=rwc`.
    #[arg(long, env = "MODELFLEET_DATABASE_URL", value_name = "URL")]
    pub(crate) database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    log: crate::logging::LogArgs,
    #[command(flatten)]
    storage: Storage,
    /// Address of the API and the console.
    #[arg(long, env = "MODELFLEET_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Node pools to simulate, one sandbox cluster per `cluster` in it
    /// [default: examples/fleet.yaml's fleet, all four clouds].
    #[arg(long, env = "MODELFLEET_FLEET", value_name = "FILE")]
    fleet: Option<PathBuf>,
    /// Scales how long simulated models take to load (1.0 is real time).
    #[arg(long, default_value_t = 0.05)]
    time_factor: f64,
    /// Download the weights for real: the sandbox nodes run modelfleet's
    /// own fetch for each pod, from the source the deployment names (your
    /// bucket or model hub, with the source credentials you give it), into
    /// `<data-dir>/nodes/`. Without it downloads are simulated, and the
    /// catalog's default sources are never contacted.
    #[arg(long, env = "MODELFLEET_REAL_FETCH")]
    real_fetch: bool,
    #[command(flatten)]
    settings: ApiSettings,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    log: crate::logging::LogArgs,
    #[command(flatten)]
    storage: Storage,
    /// Address of the API and the console (`0.0.0.0:8080` in a container).
    #[arg(long, env = "MODELFLEET_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The key that seals secrets (kubeconfigs, webhook secrets, TOTP):
    /// a file holding it in base64, readable by this user alone, e.g. a
    /// mounted Secret [default: MODELFLEET_SECRET_KEY]. Every hub of one
    /// database must be given the same key; none is ever made up.
    #[arg(long, env = "MODELFLEET_SECRET_KEY_FILE", value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    /// The platform admin's first password, on the first start of an
    /// empty database: a file holding it (a mounted Secret). They choose
    /// their own at first sign-in. Without it, one is generated and written
    /// to the data directory's `initial-credentials`.
    #[arg(
        long,
        env = "MODELFLEET_INITIAL_ADMIN_PASSWORD_FILE",
        value_name = "FILE"
    )]
    initial_admin_password_file: Option<PathBuf>,
    /// Default prices (and exchange rates) for the catalog, in the fleet
    /// file's format; no clusters are simulated from it.
    #[arg(long, env = "MODELFLEET_FLEET", value_name = "FILE")]
    fleet: Option<PathBuf>,
    #[command(flatten)]
    settings: ApiSettings,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    storage: Storage,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(&args.log);
    let fleet = match &args.fleet {
        Some(path) => crate::sandbox::read_fleet(path)?,
        None => Fleet::example(),
    };
    crate::sandbox::check_time_factor(args.time_factor)?;
    let mut options = HubOptions::new(args.storage.data_dir, args.listen);
    options.database_url = args.storage.database_url;
    options.fleet = fleet;
    options.time_factor = args.time_factor;
    options.settings = args.settings;
    options.real_fetch = args.real_fetch;
    run_hub(options)
}

pub fn api(args: ApiArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(&args.log);
    let fleet = match &args.fleet {
        Some(path) => crate::sandbox::read_fleet(path)?,
        None => Fleet::default(),
    };
    let mut options = HubOptions::new(args.storage.data_dir, args.listen);
    options.database_url = args.storage.database_url;
    options.key = KeySource::Given(args.secret_key_file);
    options.sandbox_clusters = false;
    options.first_start = FirstStartOptions {
        demo_tenant: false,
        admin_password_file: args.initial_admin_password_file,
    };
    options.fleet = fleet;
    options.settings = args.settings;
    run_hub(options)
}

/// Starts the hub, says where it answers, and runs until Ctrl-C or
/// SIGTERM.
fn run_hub(options: HubOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Caught before anything answers, so a stop that comes early is
        // still a clean one.
        let stop = crate::signals::Stop::install()?;
        let hub = RunningHub::start(options).await?;
        let data_dir = hub.data_dir.display();
        println!("modelfleet is up");
        println!("  console:      {}/", hub.url);
        println!("  API:          {}/api/v1  (docs: {}/api/docs)", hub.url, hub.url);
        match &hub.initial_credentials {
            Some(created) => match &created.demo {
                Some(demo) => {
                    println!(
                        "  credentials:  {data_dir}/{CREDENTIALS_FILE}  (created now: the admin's and the demo tenant admin's passwords and the demo tenant's API key)"
                    );
                    println!(
                        "  sign in as:   {}  (password: sed -n 's/^tenant_password=//p' {data_dir}/{CREDENTIALS_FILE})",
                        demo.tenant_user
                    );
                }
                None => println!(
                    "  sign in as:   {}  (first password: {}; choose your own at first sign-in)",
                    created.admin_user,
                    if hub.admin_password_given {
                        "the one you gave".to_owned()
                    } else {
                        format!("sed -n 's/^admin_password=//p' {data_dir}/{CREDENTIALS_FILE}")
                    }
                ),
            },
            None => println!(
                "  credentials:  set on first start (the platform admin signs in as admin)"
            ),
        }
        for cluster in &hub.clusters {
            println!(
                "  cluster {:<16} export KUBECONFIG={data_dir}/{}.kubeconfig",
                cluster.name, cluster.name
            );
        }
        let registered = hub.state.registry().names();
        if hub.clusters.is_empty() {
            println!(
                "  clusters:     {} connected ({})",
                registered.len(),
                if registered.is_empty() {
                    "register one with POST /api/v1/clusters".to_owned()
                } else {
                    registered.join(", ")
                }
            );
        }
        tracing::info!(url = %hub.url, clusters = hub.state.registry().names().len(), "the hub is up");
        println!("Ctrl-C or SIGTERM stops it.");
        stop.wait().await;
        tracing::info!("stopping: draining requests, ending background loops");
        hub.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let mut options = HubOptions::new(args.storage.data_dir, ([127, 0, 0, 1], 0).into());
    options.database_url = args.storage.database_url;
    let url = options.database_url();
    if options.database_url.is_none() {
        modelfleet_api::local_files::open_data_dir(&options.data_dir)?;
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime
        .block_on(modelfleet_api::store::migrate(&url))
        .context("cannot migrate the hub's database")?;
    println!("the hub's database is up to date");
    Ok(ExitCode::SUCCESS)
}
