//! `modelfleet fetch`: what a pod's `fetch-weights` init container runs.
//! Progress and the outcome go to stderr (the container's log); the exit
//! code says whether the weights are there.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use modelfleet_core::contract::fetch::{FetchProgress, progress_line, summary_line};
use modelfleet_fetch::{Cache, FetchOptions, Progress, Tuning};

use crate::source::SourceArgs;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Where the weights are: s3://, oss://, obs:// or cos://bucket/prefix
    /// (every object under the prefix), hf://org/model[@revision] (Hugging
    /// Face: HF_ENDPOINT, HF_TOKEN), modelscope://org/model[@revision]
    /// (ModelScope: MODELSCOPE_ENDPOINT, MODELSCOPE_API_TOKEN; revision
    /// default master) or https://host[:port]/path/to/file (one file, saved
    /// under its own name).
    #[arg(long)]
    source: String,
    /// The directory to create with the weights; it appears only complete
    /// (with --cache, a link to the cache's copy).
    #[arg(long)]
    dest: PathBuf,
    /// The node's model cache: the weights are downloaded there once per
    /// node (one fetch at a time per model, the others wait), checked
    /// against the source's listing on every use, and --dest links to them.
    #[arg(long, requires = "cache_size")]
    cache: Option<PathBuf>,
    /// How much the cache may hold, as a Kubernetes quantity (500Gi, 2Ti)
    /// or bytes; the least recently used models are evicted past it.
    #[arg(long, requires = "cache", value_parser = cache_size)]
    cache_size: Option<u64>,
    /// A file to write one line to at the end: how many files and bytes,
    /// and whether they were downloaded or came from the cache (a
    /// container's /dev/termination-log, which its pod's status shows).
    #[arg(long)]
    summary_file: Option<PathBuf>,
    #[command(flatten)]
    reach: SourceArgs,
    /// Ranged GETs in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// MiB per ranged GET.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    chunk_mib: u16,
    /// Seconds without a byte before a connection is taken as stalled and
    /// the chunk resumed on a new one.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=3600))]
    stall_seconds: u16,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn cache_size(text: &str) -> Result<u64, String> {
    modelfleet_core::contract::pool_settings::quantity_bytes(text)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("{text:?} is not a size: write a quantity like 500Gi or 2Ti"))
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB
}

pub fn run(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let options = FetchOptions {
        source: args.source.clone(),
        dest: args.dest.clone(),
        endpoint: args.reach.overrides(),
        tuning: Tuning {
            chunk_size: u64::from(args.chunk_mib) * 1024 * 1024,
            concurrency: usize::from(args.concurrency),
            stall_after: Duration::from_secs(u64::from(args.stall_seconds)),
            ..Tuning::default()
        },
        env: args.reach.env(),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let started = Instant::now();
    let source = args.source;
    let report = move |p: Progress| {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let figures = FetchProgress {
            done: p.done,
            total: p.total,
        };
        eprintln!(
            "{}",
            progress_line(&source, figures, p.files, p.done as f64 / secs)
        );
    };
    let every = Duration::from_secs(2);
    let fetched = runtime
        .block_on(async {
            match (&args.cache, args.cache_size) {
                (Some(dir), Some(max_bytes)) => {
                    let cache = Cache {
                        dir: dir.clone(),
                        max_bytes,
                    };
                    modelfleet_fetch::fetch_through_cache(&options, &cache, every, report).await
                }
                _ => modelfleet_fetch::fetch(&options, every, report).await,
            }
        })
        .map_err(anyhow::Error::msg)?;
    if let Some(path) = &args.summary_file {
        std::fs::write(path, summary_line(fetched.summary()))
            .with_context(|| format!("cannot write the summary to {}", path.display()))?;
    }
    if fetched.from_cache {
        eprintln!(
            "fetch: {} files, {:.2} GiB from the node cache into {}; nothing downloaded",
            fetched.files,
            gib(fetched.bytes),
            args.dest.display()
        );
    } else if fetched.already_there {
        eprintln!(
            "fetch: {} already holds {} ({} files, {:.2} GiB); nothing to do",
            args.dest.display(),
            options.source,
            fetched.files,
            gib(fetched.bytes)
        );
    } else {
        eprintln!(
            "fetch: {} files, {:.2} GiB into {} in {:.1} s ({:.2} GiB kept from an earlier try)",
            fetched.files,
            gib(fetched.bytes),
            args.dest.display(),
            started.elapsed().as_secs_f64(),
            gib(fetched.resumed_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
