//! Why a pool was rejected, in words a user understands and with a stable
//! code a program can match on.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::fleet::{Cloud, PoolRef};
use crate::money::Money;
use crate::precision::Precision;

use super::memory::GIB;

/// A layout, as rejection messages describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutDesc {
    pub tensor_parallel: u32,
    pub pipeline_parallel: u32,
    pub nodes: u32,
    pub devices: u32,
}

impl fmt::Display for LayoutDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} device{} on {} node{}, tensor parallel {} × pipeline parallel {}",
            self.devices,
            if self.devices == 1 { "" } else { "s" },
            self.nodes,
            if self.nodes == 1 { "" } else { "s" },
            self.tensor_parallel,
            self.pipeline_parallel
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    CloudNotAllowed {
        cloud: Cloud,
    },
    RegionNotAllowed {
        region: String,
    },
    AcceleratorNotAllowed {
        accelerator: String,
    },
    SpotNotAllowed,
    NotPinnedPool {
        pinned: String,
    },
    UnknownAccelerator {
        accelerator: String,
    },
    NoNodes,
    PrecisionUnsupported {
        accelerator: String,
        precision: Precision,
        supported: String,
    },
    TensorParallelExceedsNode {
        tensor_parallel: u32,
        devices_per_node: u32,
    },
    TensorParallelHeads {
        model: String,
        heads: u32,
        tensor_parallel: u32,
    },
    TensorParallelKvHeads {
        model: String,
        kv_heads: u32,
        tensor_parallel: u32,
    },
    TensorParallelFfn {
        model: String,
        ffn: u32,
        tensor_parallel: u32,
    },
    PipelineParallelLayers {
        model: String,
        layers: u32,
        pipeline_parallel: u32,
    },
    TooManyNodes {
        pipeline_parallel: u32,
        nodes_needed: u32,
        nodes_allowed: u32,
    },
    WeightsDoNotFit {
        model: String,
        precision: Precision,
        weights_total: u64,
        largest: LayoutDesc,
        per_device_need: u64,
        per_device_budget: u64,
    },
    KvCacheTooSmall {
        precision: Precision,
        best: LayoutDesc,
        tokens: u64,
        max_model_len: u32,
        concurrency: u32,
    },
    InsufficientCapacity {
        nodes_needed: u32,
        devices_per_node: u32,
        nodes_free: u32,
        /// Free devices on partly used nodes that were too few to help.
        partly_free: Vec<u32>,
    },
    Unpriced,
    OverBudget {
        cost: Money,
        budget: Money,
    },
    CurrencyMismatch {
        cost: Money,
        budget: Money,
    },
}

fn gib(bytes: u64) -> String {
    // Display only: one decimal is what a person compares.
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

impl Reason {
    /// Whether the pool was set aside by the user's constraints rather than
    /// found unable to serve the model.
    pub fn is_constraint(&self) -> bool {
        matches!(
            self,
            Reason::CloudNotAllowed { .. }
                | Reason::RegionNotAllowed { .. }
                | Reason::AcceleratorNotAllowed { .. }
                | Reason::SpotNotAllowed
                | Reason::NotPinnedPool { .. }
        )
    }

    /// A stable, bounded code for programs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::CloudNotAllowed { .. } => "cloud_not_allowed",
            Reason::RegionNotAllowed { .. } => "region_not_allowed",
            Reason::AcceleratorNotAllowed { .. } => "accelerator_not_allowed",
            Reason::SpotNotAllowed => "spot_not_allowed",
            Reason::NotPinnedPool { .. } => "not_pinned_pool",
            Reason::UnknownAccelerator { .. } => "unknown_accelerator",
            Reason::NoNodes => "no_nodes",
            Reason::PrecisionUnsupported { .. } => "precision_unsupported",
            Reason::TensorParallelExceedsNode { .. } => "tensor_parallel_exceeds_node",
            Reason::TensorParallelHeads { .. } => "tensor_parallel_heads",
            Reason::TensorParallelKvHeads { .. } => "tensor_parallel_kv_heads",
            Reason::TensorParallelFfn { .. } => "tensor_parallel_ffn",
            Reason::PipelineParallelLayers { .. } => "pipeline_parallel_layers",
            Reason::TooManyNodes { .. } => "too_many_nodes",
            Reason::WeightsDoNotFit { .. } => "weights_do_not_fit",
            Reason::KvCacheTooSmall { .. } => "kv_cache_too_small",
            Reason::InsufficientCapacity { .. } => "insufficient_capacity",
            Reason::Unpriced => "unpriced",
            Reason::OverBudget { .. } => "over_budget",
            Reason::CurrencyMismatch { .. } => "currency_mismatch",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::CloudNotAllowed { cloud } => {
                write!(f, "cloud {cloud} is not among the allowed clouds")
            }
            Reason::RegionNotAllowed { region } => {
                write!(f, "region {region} is not among the allowed regions")
            }
            Reason::AcceleratorNotAllowed { accelerator } => {
                write!(
                    f,
                    "accelerator {accelerator} is not among the allowed accelerators"
                )
            }
            Reason::SpotNotAllowed => write!(
                f,
                "spot capacity can be reclaimed at short notice and the spot policy is never"
            ),
            Reason::NotPinnedPool { pinned } => write!(f, "the request is pinned to pool {pinned}"),
            Reason::UnknownAccelerator { accelerator } => write!(
                f,
                "accelerator {accelerator:?} is not in the catalog, so the model cannot be sized for it"
            ),
            Reason::NoNodes => write!(f, "the pool has no nodes"),
            Reason::PrecisionUnsupported {
                accelerator,
                precision,
                supported,
            } => write!(
                f,
                "{accelerator} does not support {precision} (it supports {supported})"
            ),
            Reason::TensorParallelExceedsNode {
                tensor_parallel,
                devices_per_node,
            } => write!(
                f,
                "tensor parallel {tensor_parallel} exceeds the {devices_per_node} devices of one node; \
                 tensor parallelism does not span nodes"
            ),
            Reason::TensorParallelHeads {
                model,
                heads,
                tensor_parallel,
            } => write!(
                f,
                "{model} has {heads} attention heads; tensor parallel {tensor_parallel} does not divide them"
            ),
            Reason::TensorParallelKvHeads {
                model,
                kv_heads,
                tensor_parallel,
            } => write!(
                f,
                "{model} has {kv_heads} key/value heads; tensor parallel {tensor_parallel} neither \
                 divides them nor is a multiple of them"
            ),
            Reason::TensorParallelFfn {
                model,
                ffn,
                tensor_parallel,
            } => write!(
                f,
                "{model}'s feed-forward width {ffn} is not divisible by tensor parallel {tensor_parallel}"
            ),
            Reason::PipelineParallelLayers {
                model,
                layers,
                pipeline_parallel,
            } => write!(
                f,
                "{model} has {layers} layers; pipeline parallel {pipeline_parallel} would leave a stage empty"
            ),
            Reason::TooManyNodes {
                pipeline_parallel,
                nodes_needed,
                nodes_allowed,
            } => write!(
                f,
                "pipeline parallel {pipeline_parallel} needs {nodes_needed} nodes per replica; \
                 at most {nodes_allowed} can be used here"
            ),
            Reason::WeightsDoNotFit {
                model,
                precision,
                weights_total,
                largest,
                per_device_need,
                per_device_budget,
            } => write!(
                f,
                "{model} in {precision} has {} of weights; even spread over {largest}, each device \
                 needs {} for weights, activations and runtime, more than its budget of {}",
                gib(*weights_total),
                gib(*per_device_need),
                gib(*per_device_budget)
            ),
            Reason::KvCacheTooSmall {
                precision,
                best,
                tokens,
                max_model_len,
                concurrency,
            } => write!(
                f,
                "in {precision}, the KV cache holds at most {tokens} tokens ({best}); {concurrency} concurrent \
                 sequence{} of {max_model_len} tokens need {}",
                if *concurrency == 1 { "" } else { "s" },
                u64::from(*max_model_len) * u64::from(*concurrency)
            ),
            Reason::InsufficientCapacity {
                nodes_needed,
                devices_per_node,
                nodes_free,
                partly_free,
            } => {
                write!(
                    f,
                    "needs {nodes_needed} node{} of {devices_per_node} devices, pool has {nodes_free} free",
                    if *nodes_needed == 1 { "" } else { "s" }
                )?;
                if !partly_free.is_empty() {
                    let counts: Vec<_> = partly_free.iter().map(u32::to_string).collect();
                    write!(
                        f,
                        " (and partly used nodes with {} free devices, too few for a replica)",
                        counts.join(", ")
                    )?;
                }
                Ok(())
            }
            Reason::Unpriced => write!(f, "the pool has no price, so the budget cannot be checked"),
            Reason::OverBudget { cost, budget } => {
                write!(
                    f,
                    "costs {cost} per hour, above the budget of {budget} per hour"
                )
            }
            Reason::CurrencyMismatch { cost, budget } => write!(
                f,
                "priced in {} and the budget is in {}, with no exchange rate between them",
                cost.currency(),
                budget.currency()
            ),
        }
    }
}

/// A pool the planner did not choose, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub pool: PoolRef,
    pub accelerator: String,
    pub reason: Reason,
}

impl Serialize for Rejection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            pool: &'a PoolRef,
            accelerator: &'a str,
            code: &'static str,
            reason: String,
        }
        Repr {
            pool: &self.pool,
            accelerator: &self.accelerator,
            code: self.reason.code(),
            reason: self.reason.to_string(),
        }
        .serialize(serializer)
    }
}
