//! `modelfleet plan`: size a model against a fleet from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_core::planner::{
    self, Constraints, MemoryUtilization, PlanReport, ServingRequest, SpotPolicy,
};
use modelfleet_core::{ModelArch, Money, PrecisionChoice};

use crate::output::{OutputFormat, gib, table};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which-model").required(true))]
pub struct PlanArgs {
    /// A catalog model id (see `modelfleet catalog models`).
    #[arg(long, group = "which-model")]
    model: Option<String>,
    /// A YAML or JSON file describing a model of your own, with the fields
    /// of a catalog model (see examples/custom-model.yaml).
    #[arg(long, value_name = "PATH", group = "which-model")]
    model_file: Option<PathBuf>,
    /// A model not in the catalog, sized from its own config.json and
    /// safetensors headers at this source (s3://, oss://, obs://, cos://,
    /// hf://, modelscope://), reached as `modelfleet model` reaches it
    /// (AWS_ENDPOINT_URL, AWS_REGION, HF_ENDPOINT, HF_TOKEN, …).
    #[arg(long, value_name = "URI", group = "which-model")]
    source: Option<String>,
    /// Longest sequence (prompt + output) to serve [default: 8192, or the
    /// model's context if shorter].
    #[arg(long, value_name = "N")]
    max_model_len: Option<u32>,
    /// Sequences of max-model-len tokens the KV cache must hold at once.
    #[arg(long, value_name = "N", default_value_t = planner::DEFAULT_CONCURRENCY)]
    concurrency: u32,
    /// auto, bf16, fp8, int8 or int4. auto keeps the model's published
    /// precision where it fits and the accelerator supports it.
    #[arg(long, value_name = "P", default_value = "auto")]
    precision: PrecisionChoice,
    /// Share of device memory the engine may use (vLLM's --gpu-memory-utilization).
    #[arg(long, value_name = "F", default_value_t = 0.90)]
    gpu_memory_utilization: f64,
    /// Only these accelerators (catalog ids; repeat or separate with commas).
    #[arg(long, value_name = "SKU", value_delimiter = ',')]
    accelerator: Vec<String>,
    /// Fix the tensor-parallel size instead of letting the planner choose.
    #[arg(long, value_name = "N")]
    tensor_parallel: Option<u32>,
    /// Fix the pipeline-parallel size (stages) instead of letting the planner choose.
    #[arg(long, value_name = "N")]
    pipeline_parallel: Option<u32>,
    /// Replicas of the whole model.
    #[arg(long, value_name = "N", default_value_t = 1)]
    replicas: u32,
    /// Only these clouds: aws, aliyun, tencentcloud, huaweicloud, generic.
    #[arg(long, value_delimiter = ',')]
    cloud: Vec<Cloud>,
    /// Only these regions.
    #[arg(long, value_delimiter = ',')]
    region: Vec<String>,
    /// Whether spot capacity may be used: never, allowed, preferred.
    #[arg(long, value_enum, default_value_t = SpotArg::Never)]
    spot: SpotArg,
    /// Only this pool, as cluster/pool.
    #[arg(long, value_name = "CLUSTER/POOL")]
    pool: Option<String>,
    /// Refuse plans costing more per hour, e.g. "40 USD".
    #[arg(long, value_name = "MONEY")]
    max_cost_per_hour: Option<Money>,
    /// A fleet of node pools in YAML [default: one node of each catalog accelerator].
    #[arg(long, value_name = "FILE")]
    fleet: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SpotArg {
    Never,
    Allowed,
    Preferred,
}

impl From<SpotArg> for SpotPolicy {
    fn from(s: SpotArg) -> Self {
        match s {
            SpotArg::Never => SpotPolicy::Never,
            SpotArg::Allowed => SpotPolicy::Allowed,
            SpotArg::Preferred => SpotPolicy::Preferred,
        }
    }
}

/// Exit 0 with at least one plan; 1 when the request is valid but nothing
/// fits (the reasons are printed); errors in the input are the caller's 2.
pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let model = load_model(&args)?;
    let fleet = match &args.fleet {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read fleet file {}", path.display()))?;
            Fleet::from_yaml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Fleet::catalog_nodes(),
    };
    let request = ServingRequest {
        max_model_len: args.max_model_len,
        concurrency: args.concurrency,
        precision: args.precision,
        gpu_memory_utilization: MemoryUtilization::from_fraction(args.gpu_memory_utilization)
            .map_err(anyhow::Error::msg)?,
        tensor_parallel: args.tensor_parallel,
        pipeline_parallel: args.pipeline_parallel,
        replicas: args.replicas,
    };
    let constraints = Constraints {
        clouds: args.cloud.clone(),
        regions: args.region.clone(),
        accelerators: args.accelerator.clone(),
        spot: args.spot.into(),
        pool: args.pool.clone(),
        max_cost_per_hour: args.max_cost_per_hour,
    };
    let report = planner::plan(&model, &request, &fleet, &constraints)?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print!("{}", render(&model, &report)),
    }
    if report.plans.is_empty() {
        if args.output == OutputFormat::Table {
            eprintln!(
                "error: no pool can serve {} as asked; the reasons are above",
                model.id
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn load_model(args: &PlanArgs) -> anyhow::Result<ModelArch> {
    match (&args.model, &args.model_file, &args.source) {
        (Some(id), None, None) => Ok(ModelArch::find(id)?.clone()),
        (None, Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read model file {}", path.display()))?;
            Ok(ModelArch::from_yaml(&text).with_context(|| format!("in {}", path.display()))?)
        }
        (None, None, Some(source)) => {
            let env = modelfleet_fetch::Env::from_process();
            let (model, inspected) = crate::model::read(source, None, &Default::default(), &env)?;
            eprintln!("{}", crate::model::summary(source, &inspected));
            Ok(model)
        }
        _ => bail!("give one of --model, --model-file or --source"),
    }
}

fn render(model: &ModelArch, report: &PlanReport) -> String {
    let r = &report.request;
    let mut out = format!(
        "{} ({}, {} parameters{}) · max model length {} · {} concurrent sequences · precision {} · gpu memory utilization {:.2} · {} replica{}\n\n",
        model.id,
        model.display_name(),
        model.total_params,
        model
            .active_params
            .map(|a| format!(", {a} active"))
            .unwrap_or_default(),
        r.max_model_len,
        r.concurrency,
        r.precision,
        r.gpu_memory_utilization.as_fraction(),
        r.replicas,
        if r.replicas == 1 { "" } else { "s" },
    );
    if report.plans.is_empty() {
        out.push_str("No feasible plan.\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .plans
            .iter()
            .map(|p| {
                vec![
                    p.rank.to_string(),
                    p.pool.to_string(),
                    format!("{}/{}", p.pool.cloud, p.pool.region),
                    p.accelerator.clone(),
                    p.precision.to_string(),
                    format!("{}×{}", p.tensor_parallel, p.pipeline_parallel),
                    p.nodes_per_replica.to_string(),
                    p.devices_per_replica.to_string(),
                    gib(p.weights_bytes_per_device),
                    gib(p.kv_cache_bytes_per_device),
                    p.kv_cache_tokens.to_string(),
                    p.max_concurrency.to_string(),
                    p.cost_per_hour
                        .map_or_else(|| "unpriced".to_owned(), |c| c.to_string()),
                    if p.capacity_type == modelfleet_core::fleet::CapacityType::Spot {
                        "spot".to_owned()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "RANK",
                "POOL",
                "CLOUD/REGION",
                "ACCELERATOR",
                "PRECISION",
                "TP×PP",
                "NODES",
                "DEVICES",
                "WEIGHTS/DEV",
                "KV/DEV",
                "KV TOKENS",
                "MAX SEQS",
                "COST/HOUR",
                "",
            ],
            &rows,
        ));
        for p in &report.plans {
            for note in &p.notes {
                out.push_str(&format!("note ({}): {note}\n", p.pool));
            }
        }
    }
    let (set_aside, rejected): (Vec<_>, Vec<_>) = report
        .rejections
        .iter()
        .partition(|r| r.reason.is_constraint());
    if !rejected.is_empty() {
        out.push_str("\nRejected:\n");
        for r in rejected {
            out.push_str(&format!("  {} ({}): {}\n", r.pool, r.accelerator, r.reason));
        }
    }
    if !set_aside.is_empty() {
        // Pools the user's own constraints excluded: one line per reason
        // kind, so they do not bury the rejections that say something new.
        let mut by_code: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in set_aside {
            by_code
                .entry(r.reason.code())
                .or_default()
                .push(r.pool.to_string());
        }
        out.push_str("\nExcluded by your constraints:\n");
        for (code, pools) in by_code {
            out.push_str(&format!(
                "  {}: {}\n",
                code.replace('_', " "),
                pools.join(", ")
            ));
        }
    }
    out
}
