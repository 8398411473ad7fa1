//! `modelfleet model --source URI`: a model sized from its own files — its
//! `config.json` and its safetensors headers, never the weights — printed
//! as a model file that `plan --model-file` and a ModelDeployment's
//! `spec.architecture` take.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use modelfleet_core::ModelArch;
use modelfleet_core::checkpoint::id_from_source;
use modelfleet_fetch::endpoint::EndpointOverrides;
use modelfleet_fetch::{Env, Inspected};

use crate::source::SourceArgs;

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model's directory: s3://, oss://, obs:// or cos://bucket/prefix,
    /// hf://org/model[@revision] or modelscope://org/model[@revision],
    /// holding config.json and the *.safetensors shards.
    #[arg(long)]
    source: String,
    /// The model's id [default: from the source's last part, lower-cased].
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    reach: SourceArgs,
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Yaml,
    Json,
}

pub fn run(args: ModelArgs) -> anyhow::Result<ExitCode> {
    let id = args.id.clone();
    let (model, inspected) = read(
        &args.source,
        id.as_deref(),
        &args.reach.overrides(),
        &args.reach.env(),
    )?;
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&model)?),
        Format::Yaml => {
            println!("# {}", summary(&args.source, &inspected));
            print!("{}", serde_yaml::to_string(&model)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads and sizes the model at `source`.
pub fn read(
    source: &str,
    id: Option<&str>,
    endpoint: &EndpointOverrides,
    env: &Env,
) -> anyhow::Result<(ModelArch, Inspected)> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let inspected = runtime
        .block_on(modelfleet_fetch::inspect(source, endpoint, env))
        .map_err(anyhow::Error::msg)?;
    let id = id.map_or_else(|| id_from_source(source), str::to_owned);
    let model = inspected
        .checkpoint
        .architecture(&id, "")
        .with_context(|| format!("sizing {source} from its config.json"))?;
    Ok((model, inspected))
}

/// What was read: `config.json and 4 safetensors headers (1.2 MiB of
/// 15.0 GiB)`.
pub fn summary(source: &str, inspected: &Inspected) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    format!(
        "read from {source}: config.json and {} safetensors header{} ({:.2} MiB of {:.2} GiB); \
         credentials: {}",
        inspected.shards,
        if inspected.shards == 1 { "" } else { "s" },
        inspected.read_bytes as f64 / MIB,
        inspected.listed_bytes as f64 / MIB / 1024.0,
        inspected.credentials.0,
    )
}
