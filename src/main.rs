//! The `modelfleet` binary. It only wires the crates together: each
//! subcommand parses its arguments, calls into the parts, and prints.

mod audit;
mod catalog;
mod fetch;
mod gateway_cli;
mod logging;
mod model;
mod operator;
mod output;
mod plan;
mod sandbox;
mod serve;
mod signals;
mod source;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, not glibc's malloc: see the dependency's note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// modelfleet: serve large language models on GPU and NPU node pools across clouds.
#[derive(Debug, Parser)]
#[command(name = "modelfleet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Size a model: precision, tensor and pipeline parallelism, KV-cache
    /// capacity and cost on every pool of a fleet, best first.
    Plan(Box<plan::PlanArgs>),
    /// Size a model from its own files: read the config.json and the
    /// safetensors headers (never the weights) at a source and print its
    /// architecture as a model file for `plan --model-file` and a
    /// ModelDeployment's spec.architecture.
    Model(model::ModelArgs),
    /// List the models and accelerators modelfleet knows.
    Catalog(catalog::CatalogArgs),
    /// Print the ModelDeployment CustomResourceDefinition as YAML.
    Crd,
    /// Download a model's weights from an object store into a directory:
    /// what each pod's `fetch-weights` init container runs.
    Fetch(fetch::FetchArgs),
    /// Run the ModelDeployment controller against a cluster.
    Operator(operator::OperatorArgs),
    /// Print a cluster's admission key (64 hex characters) for its
    /// operator's `--admission-key-file`: what the hub seals admitted
    /// ModelDeployments with. A secret: put it in a Secret only the
    /// operator reads.
    AdmissionKey(operator::AdmissionKeyArgs),
    /// Run a simulated cluster with the operator, for kubectl.
    ///
    /// Its objects live in memory only: they are gone when it stops (`serve`
    /// keeps its sandbox clusters' objects in its data directory).
    Sandbox(sandbox::SandboxArgs),
    /// Run the whole product on this machine: the hub's API, a sandbox
    /// cluster with an operator for each cluster of the fleet.
    Serve(Box<serve::ServeArgs>),
    /// Run the hub alone: its API and console, its background loops, and
    /// the clusters registered in its database (PostgreSQL, or SQLite in
    /// the data directory); no simulated clusters.
    Api(Box<serve::ApiArgs>),
    /// Run the inference gateway alone: OpenAI's API for tenants' API
    /// keys, routed to their deployments' engines, from the hubs' database
    /// (never migrated) and key; stateless, so any number run side by side.
    Gateway(Box<gateway_cli::GatewayArgs>),
    /// Bring the hub's database schema up to date.
    Migrate(serve::MigrateArgs),
    /// The audit trail: verify its hash chain and its exports.
    Audit(audit::AuditArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::run(*args),
        Command::Model(args) => model::run(args),
        Command::Catalog(args) => catalog::run(args),
        Command::Crd => {
            print!("{}", modelfleet_core::crd::crd_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Fetch(args) => fetch::run(args),
        Command::Operator(args) => operator::run(args),
        Command::AdmissionKey(args) => operator::admission_key(args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Serve(args) => serve::serve(*args),
        Command::Api(args) => serve::api(*args),
        Command::Gateway(args) => gateway_cli::run(*args),
        Command::Migrate(args) => serve::migrate(args),
        Command::Audit(args) => audit::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            // The same code clap uses for bad arguments: the input was wrong.
            ExitCode::from(2)
        }
    }
}
