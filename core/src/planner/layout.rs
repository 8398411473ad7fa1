//! Choosing tensor and pipeline parallelism for one precision on one pool.
//!
//! A replica is `nodes` pods, one per node; each pod runs `stages_per_node`
//! pipeline stages of `tensor_parallel` devices. Tensor parallelism never
//! spans nodes. Over NVLink or HCCS a node runs a single stage (the usual
//! layout: tensor parallel within a node, pipeline parallel across nodes);
//! over PCIe a node may run several stages. The search prefers the fewest devices that hold the requested
//! context and concurrency, then the fewest nodes, then — at equal size —
//! tensor parallelism over a fast fabric (NVLink, HCCS) and pipeline
//! parallelism over PCIe.

use std::cmp::Reverse;

use crate::accelerator::Accelerator;
use crate::fleet::NodePool;
use crate::model::ModelArch;
use crate::precision::Precision;

use super::memory::{DeviceMemory, MemoryUtilization};
use super::reason::{LayoutDesc, Reason};

/// The most nodes one replica may span. Beyond this, multi-node serving is
/// dominated by inter-node traffic and one failure takes down too much.
pub const MAX_NODES_PER_REPLICA: u32 = 8;

/// What the layout must hold, and what the user fixed.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub max_model_len: u32,
    pub concurrency: u32,
    pub utilization: MemoryUtilization,
    pub tensor_parallel: Option<u32>,
    pub pipeline_parallel: Option<u32>,
}

impl Needs {
    pub fn tokens(&self) -> u64 {
        u64::from(self.max_model_len) * u64::from(self.concurrency)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub tensor_parallel: u32,
    pub pipeline_parallel: u32,
    pub nodes: u32,
    pub memory: DeviceMemory,
}

impl Layout {
    pub fn devices(&self) -> u32 {
        self.tensor_parallel * self.pipeline_parallel
    }

    /// Devices each pod of the replica asks for.
    pub fn devices_per_node(&self) -> u32 {
        self.devices() / self.nodes
    }

    fn desc(&self) -> LayoutDesc {
        LayoutDesc {
            tensor_parallel: self.tensor_parallel,
            pipeline_parallel: self.pipeline_parallel,
            nodes: self.nodes,
            devices: self.devices(),
        }
    }
}

/// Why a tensor-parallel size cannot serve this model on this node shape.
pub fn tensor_parallel_problem(
    model: &ModelArch,
    tp: u32,
    devices_per_node: u32,
) -> Option<Reason> {
    if tp > devices_per_node {
        return Some(Reason::TensorParallelExceedsNode {
            tensor_parallel: tp,
            devices_per_node,
        });
    }
    if !model.attention_heads.is_multiple_of(tp) {
        return Some(Reason::TensorParallelHeads {
            model: model.id.clone(),
            heads: model.attention_heads,
            tensor_parallel: tp,
        });
    }
    if model.mla.is_none()
        && !model.kv_heads.is_multiple_of(tp)
        && !tp.is_multiple_of(model.kv_heads)
    {
        return Some(Reason::TensorParallelKvHeads {
            model: model.id.clone(),
            kv_heads: model.kv_heads,
            tensor_parallel: tp,
        });
    }
    if !model.ffn_size.is_multiple_of(tp) {
        return Some(Reason::TensorParallelFfn {
            model: model.id.clone(),
            ffn: model.ffn_size,
            tensor_parallel: tp,
        });
    }
    None
}

/// The best layout of `model` in `precision` on `pool`'s node shape, or the
/// reason there is none. Free capacity is checked by the caller.
pub fn best_layout(
    model: &ModelArch,
    accelerator: &Accelerator,
    pool: &NodePool,
    precision: Precision,
    needs: &Needs,
) -> Result<Layout, Reason> {
    let dpn = pool.devices_per_node;
    let max_nodes = pool.nodes_total.min(MAX_NODES_PER_REPLICA);
    if max_nodes == 0 || dpn == 0 {
        return Err(Reason::NoNodes);
    }
    if let Some(tp) = needs.tensor_parallel
        && let Some(problem) = tensor_parallel_problem(model, tp, dpn)
    {
        return Err(problem);
    }
    if let Some(pp) = needs.pipeline_parallel
        && pp > model.layers
    {
        return Err(Reason::PipelineParallelLayers {
            model: model.id.clone(),
            layers: model.layers,
            pipeline_parallel: pp,
        });
    }

    let fast = accelerator.interconnect.is_fast();
    // Every shape the pool allows, as (tp, pp, nodes).
    let mut shapes = Vec::new();
    let mut first_tp_problem = None;
    for tp in 1..=dpn {
        if needs.tensor_parallel.is_some_and(|fixed| fixed != tp) {
            continue;
        }
        if let Some(problem) = tensor_parallel_problem(model, tp, dpn) {
            first_tp_problem.get_or_insert(problem);
            continue;
        }
        // Over a fast fabric a node runs one stage across its devices;
        // over PCIe it may run several stages instead of wider tensor splits.
        let most_stages_per_node = if fast { 1 } else { dpn / tp };
        for stages_per_node in 1..=most_stages_per_node {
            for nodes in 1..=max_nodes {
                // A replica that spans nodes takes them whole: a pod per
                // node with all its devices, as LeaderWorkerSet groups run.
                if nodes > 1 && tp * stages_per_node != dpn {
                    continue;
                }
                let pp = stages_per_node * nodes;
                if pp > model.layers || needs.pipeline_parallel.is_some_and(|fixed| fixed != pp) {
                    continue;
                }
                shapes.push((tp, pp, nodes));
            }
        }
    }
    if shapes.is_empty() {
        return Err(match (needs.pipeline_parallel, first_tp_problem) {
            (Some(pp), _) => Reason::TooManyNodes {
                pipeline_parallel: pp,
                nodes_needed: pp.div_ceil(needs.tensor_parallel.map_or(dpn, |tp| dpn / tp)),
                nodes_allowed: max_nodes,
            },
            (None, Some(problem)) => problem,
            (None, None) => Reason::NoNodes,
        });
    }

    // Smallest first; at equal size fewer nodes; then the parallelism the
    // fabric favours.
    shapes.sort_by_key(|&(tp, pp, nodes)| {
        let parallel_pref = if fast { Reverse(tp) } else { Reverse(pp) };
        (tp * pp, nodes, parallel_pref)
    });

    let evaluate = |&(tp, pp, nodes): &(u32, u32, u32)| Layout {
        tensor_parallel: tp,
        pipeline_parallel: pp,
        nodes,
        memory: DeviceMemory::compute(model, accelerator, precision, tp, pp, needs.utilization),
    };
    let enough = |l: &Layout| l.memory.fits && l.memory.kv_tokens() >= needs.tokens();

    // The sort order is the preference order: the first layout that holds
    // the requested context and concurrency is the one to use.
    if let Some(layout) = shapes.iter().map(evaluate).find(enough) {
        return Ok(layout);
    }

    // Nothing fits: explain with the layout that came closest, the one with
    // the most KV cache (or, if weights fit nowhere, the least weight per device).
    let all: Vec<Layout> = shapes.iter().map(evaluate).collect();
    let closest = all
        .iter()
        .filter(|l| l.memory.fits)
        .max_by_key(|l| (l.memory.kv_tokens(), Reverse(l.devices())));
    Err(match closest {
        Some(best) => Reason::KvCacheTooSmall {
            precision,
            best: best.desc(),
            tokens: best.memory.kv_tokens(),
            max_model_len: needs.max_model_len,
            concurrency: needs.concurrency,
        },
        None => {
            let largest = all
                .iter()
                .min_by_key(|l| (l.memory.weights, Reverse(l.devices())))
                .expect("shapes is not empty");
            let m = largest.memory;
            Reason::WeightsDoNotFit {
                model: model.id.clone(),
                precision,
                weights_total: super::memory::weight_bytes_total(model, precision),
                largest: largest.desc(),
                per_device_need: m.weights + m.activation + m.non_torch,
                per_device_budget: m.budget,
            }
        }
    })
}
