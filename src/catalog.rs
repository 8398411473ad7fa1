//! `modelfleet catalog`: what modelfleet knows.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use modelfleet_core::accelerator::ACCELERATORS;
use modelfleet_core::model::catalog;

use crate::output::{OutputFormat, table};

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Which catalog to list.
    what: What,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum What {
    Models,
    Accelerators,
}

pub fn run(args: CatalogArgs) -> anyhow::Result<ExitCode> {
    let text = match (args.what, args.output) {
        (What::Models, OutputFormat::Json) => serde_json::to_string_pretty(catalog())?,
        (What::Accelerators, OutputFormat::Json) => serde_json::to_string_pretty(ACCELERATORS)?,
        (What::Models, OutputFormat::Table) => models_table(),
        (What::Accelerators, OutputFormat::Table) => accelerators_table(),
    };
    println!("{}", text.trim_end());
    Ok(ExitCode::SUCCESS)
}

fn models_table() -> String {
    let rows: Vec<Vec<String>> = catalog()
        .iter()
        .map(|m| {
            let arch = match (&m.moe, &m.mla) {
                (Some(moe), Some(_)) => format!(
                    "MoE {}+{} top-{}, MLA",
                    moe.experts, moe.shared_experts, moe.top_k
                ),
                (Some(moe), None) => format!("MoE {} top-{}", moe.experts, moe.top_k),
                (None, _) if m.kv_heads == m.attention_heads => "dense, multi-head".to_owned(),
                (None, _) => format!("dense, GQA {}/{}", m.attention_heads, m.kv_heads),
            };
            vec![
                m.id.clone(),
                m.display_name().to_owned(),
                m.total_params.to_string(),
                m.active_params.map(|a| a.to_string()).unwrap_or_default(),
                arch,
                m.layers.to_string(),
                m.max_context.to_string(),
                m.native_precision.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "PARAMS",
            "ACTIVE",
            "ARCHITECTURE",
            "LAYERS",
            "CONTEXT",
            "PUBLISHED IN",
        ],
        &rows,
    )
}

fn accelerators_table() -> String {
    let rows: Vec<Vec<String>> = ACCELERATORS
        .iter()
        .map(|a| {
            vec![
                a.id.to_owned(),
                a.name.to_owned(),
                format!("{} GB", a.memory_gb),
                a.devices_per_node.to_string(),
                a.interconnect.to_string(),
                a.precision_list(),
                a.resource_name.to_owned(),
                a.runtime.to_string(),
                a.list_price
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "—".to_owned()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "MEMORY",
            "PER NODE",
            "INTERCONNECT",
            "PRECISIONS",
            "RESOURCE",
            "RUNTIME",
            "LIST PRICE/DEVICE-HOUR",
        ],
        &rows,
    )
}
