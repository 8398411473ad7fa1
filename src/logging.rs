//! Logs for the long-running subcommands (`serve`, `api`, `operator`,
//! `sandbox`): `RUST_LOG` picks the level (`info` by default), written to
//! standard error — as text for people (colours only on a terminal) or as
//! one JSON object per line for log collectors (`--log-format json`).

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people; ANSI colours only when standard error is a terminal.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`),
    /// for Loki, Elasticsearch, Cloud Logging and the like.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// How logs are written to standard error.
    #[arg(long, env = "MODELFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests running several commands in-process) is harmless.
    let _ = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
