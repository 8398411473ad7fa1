//! How fast a simulated engine is and how many tokens its KV cache holds,
//! from the model's size, its plan (tensor and pipeline parallelism, the
//! memory share) and the accelerator. Pure; docs/sandbox-engine.md gives
//! the formulas with worked figures.
//!
//! - Decode is memory-bound: every step reads the weights on the critical
//!   path once. Pipeline stages run one after another for a token, so one
//!   step reads `model bytes × active share / tensor parallel` per device:
//!   `per token = STEP_OVERHEAD + that / (bandwidth × DECODE_EFFICIENCY)`.
//! - Prefill is compute-bound: 2 FLOPs per active parameter per prompt
//!   token. Parameters are taken as `bytes / 2` (bf16); an 8-bit model has
//!   half the bytes and twice the FLOPs rate, which cancels, so
//!   `per prompt token = model bytes × active share / (tensor parallel ×
//!   bf16 FLOPs × PREFILL_MFU)` and `TTFT = TTFT_BASE + prompt tokens ×
//!   per prompt token`.
//! - KV-cache tokens: the planner's arithmetic (`DeviceMemory`) with the
//!   pod's model bytes for the weights.

use std::time::Duration;

use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::model::ModelArch;
use modelfleet_core::planner::MemoryUtilization;
use modelfleet_core::planner::memory::{
    GIB, KV_BLOCK_TOKENS, activation_bytes, kv_bytes_per_token, non_torch_bytes,
};

/// What decoding and prefill are bound by, per device. The catalog holds
/// no bandwidth or FLOPs, so they are here, from the vendors' data
/// sheets (dense bf16, no sparsity; Ascend figures as publicly reported).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hardware {
    pub id: &'static str,
    /// Device memory bandwidth, bytes per second.
    pub bandwidth: f64,
    /// Dense bf16 throughput, FLOPs per second.
    pub flops: f64,
}

const TB: f64 = 1e12;

pub const HARDWARE: &[Hardware] = &[
    hw("h200", 4.8 * TB, 989.0 * TB),
    hw("h100-80gb", 3.35 * TB, 989.0 * TB),
    hw("a100-80gb", 2.039 * TB, 312.0 * TB),
    hw("a100-40gb", 1.555 * TB, 312.0 * TB),
    hw("l40s", 0.864 * TB, 362.0 * TB),
    hw("a10", 0.6 * TB, 125.0 * TB),
    hw("ascend-910b", 1.6 * TB, 313.0 * TB),
    hw("ascend-910b4", 0.8 * TB, 280.0 * TB),
    hw("ascend-910c", 3.2 * TB, 780.0 * TB),
];

/// For an accelerator the table does not know: an A100-class device.
pub const DEFAULT_HARDWARE: Hardware = hw("default", 2.0 * TB, 300.0 * TB);

const fn hw(id: &'static str, bandwidth: f64, flops: f64) -> Hardware {
    Hardware {
        id,
        bandwidth,
        flops,
    }
}

/// Scheduling, sampling and kernel launches in every decode step.
pub const STEP_OVERHEAD: Duration = Duration::from_millis(3);
/// Share of the memory bandwidth a decode step achieves.
pub const DECODE_EFFICIENCY: f64 = 0.8;
/// Tokenizing, scheduling and the first step's fixed cost.
pub const TTFT_BASE: Duration = Duration::from_millis(15);
/// Share of peak FLOPs prefill achieves (model FLOPs utilization).
pub const PREFILL_MFU: f64 = 0.5;
/// The model's size when the pod does not say: an 8B model in bf16.
pub const DEFAULT_MODEL_BYTES: u64 = 16_000_000_000;
/// KV bytes per token of a model not in the catalog, before tensor
/// parallelism: a Llama-3-8B-class stack (32 layers × 8 KV heads × 128 ×
/// K and V × 2 bytes).
pub const DEFAULT_KV_BYTES_PER_TOKEN: u64 = 131_072;
/// Device memory of an accelerator the catalog does not know.
pub const DEFAULT_DEVICE_BYTES: u64 = 80 * GIB;

pub fn hardware(accelerator: Option<&str>) -> &'static Hardware {
    accelerator
        .and_then(|id| HARDWARE.iter().find(|h| h.id == id))
        .unwrap_or(&DEFAULT_HARDWARE)
}

/// An engine's speed, in real time (before the sandbox's time factor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed {
    pub ttft_base: Duration,
    pub per_prompt_token: Duration,
    /// One decode step: the time between two output tokens.
    pub per_token: Duration,
}

/// The model and plan an engine serves, as far as its speed and cache go.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    /// The pod's model-bytes annotation.
    pub model_bytes: Option<u64>,
    /// The catalog's description of the served model, if it has one.
    pub model: Option<&'a ModelArch>,
    pub accelerator: Option<&'a Accelerator>,
    pub tensor_parallel: u32,
    pub pipeline_parallel: u32,
    pub gpu_memory_utilization: f64,
    pub max_model_len: u32,
}

impl Served<'_> {
    fn bytes(&self) -> u64 {
        self.model_bytes.unwrap_or(DEFAULT_MODEL_BYTES)
    }

    /// Share of the weights one token uses: active over total parameters
    /// for a mixture of experts, else all of them.
    fn active_share(&self) -> f64 {
        match self.model {
            Some(m) if m.total_params.0 > 0 => m.active_params().0 as f64 / m.total_params.0 as f64,
            _ => 1.0,
        }
    }

    pub fn speed(&self) -> Speed {
        let hw = hardware(self.accelerator.map(|a| a.id));
        let tp = f64::from(self.tensor_parallel.max(1));
        let read = self.bytes() as f64 * self.active_share() / tp;
        Speed {
            ttft_base: TTFT_BASE,
            per_prompt_token: Duration::from_secs_f64(read / (hw.flops * PREFILL_MFU)),
            per_token: STEP_OVERHEAD
                + Duration::from_secs_f64(read / (hw.bandwidth * DECODE_EFFICIENCY)),
        }
    }

    /// Tokens the replica's KV cache holds, as the planner counts them,
    /// and never fewer than one sequence of `max_model_len` (with fewer,
    /// vLLM refuses to start; the sandbox serves one at a time instead).
    pub fn kv_cache_tokens(&self) -> u64 {
        let (tp, pp) = (self.tensor_parallel.max(1), self.pipeline_parallel.max(1));
        let device = self
            .accelerator
            .map_or(DEFAULT_DEVICE_BYTES, Accelerator::usable_bytes);
        let budget = MemoryUtilization::from_fraction(self.gpu_memory_utilization)
            .map_or((device as f64 * self.gpu_memory_utilization) as u64, |u| {
                u.of(device)
            });
        let weights = self.bytes() / u64::from(tp * pp);
        let (activation, per_token) = match self.model {
            Some(m) => (activation_bytes(m), kv_bytes_per_token(m, tp, pp)),
            None => (
                5 * GIB,
                (DEFAULT_KV_BYTES_PER_TOKEN / u64::from(tp * pp)).max(1),
            ),
        };
        let fixed = weights + activation + non_torch_bytes(tp * pp);
        let block = per_token.max(1) * KV_BLOCK_TOKENS;
        let tokens = budget.saturating_sub(fixed) / block * KV_BLOCK_TOKENS;
        tokens.max(u64::from(self.max_model_len))
    }
}

impl Speed {
    /// Arrival (or admission) to the first token for a prompt.
    pub fn ttft(&self, prompt_tokens: u64) -> Duration {
        self.ttft_base
            + self
                .per_prompt_token
                .saturating_mul(u32::try_from(prompt_tokens).unwrap_or(u32::MAX))
    }

    /// Every duration times `factor` (the sandbox's `time_factor`).
    pub fn scaled(&self, factor: f64) -> Speed {
        let f = factor.max(0.0);
        Speed {
            ttft_base: self.ttft_base.mul_f64(f),
            per_prompt_token: self.per_prompt_token.mul_f64(f),
            per_token: self.per_token.mul_f64(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served<'a>(bytes: u64, model: &str, accelerator: &str, tp: u32, pp: u32) -> Served<'a> {
        Served {
            model_bytes: Some(bytes),
            model: ModelArch::find(model).ok(),
            accelerator: Accelerator::find(accelerator),
            tensor_parallel: tp,
            pipeline_parallel: pp,
            gpu_memory_utilization: 0.9,
            max_model_len: 8192,
        }
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    #[test]
    fn decode_reads_the_weights_of_one_device_per_token() {
        // 16 GB on one H100: 3 ms + 16e9 / (3.35e12 × 0.8) ≈ 8.97 ms.
        let one = served(16_000_000_000, "llama-3.1-8b", "h100-80gb", 1, 1).speed();
        assert!((ms(one.per_token) - 8.970).abs() < 0.01, "{:?}", one);
        // The same model over four devices reads a quarter per device.
        let four = served(16_000_000_000, "llama-3.1-8b", "h100-80gb", 4, 1).speed();
        assert!(four.per_token < one.per_token);
        assert!((ms(four.per_token) - (3.0 + 5.970 / 4.0)).abs() < 0.01);
        // Pipeline stages run in series: no faster per token.
        let piped = served(16_000_000_000, "llama-3.1-8b", "h100-80gb", 1, 2).speed();
        assert_eq!(piped.per_token, one.per_token);
        // Slower memory, slower tokens.
        let a10 = served(16_000_000_000, "llama-3.1-8b", "a10", 1, 1).speed();
        assert!(a10.per_token > one.per_token);
        // A mixture of experts reads only its active experts.
        let moe = served(16_000_000_000, "mixtral-8x7b", "h100-80gb", 1, 1).speed();
        assert!(moe.per_token < one.per_token, "{moe:?}");
    }

    #[test]
    fn the_first_token_waits_for_prefill_of_the_whole_prompt() {
        // 16e9 / (989e12 × 0.5) ≈ 32.4 µs per prompt token.
        let speed = served(16_000_000_000, "llama-3.1-8b", "h100-80gb", 1, 1).speed();
        assert!((speed.per_prompt_token.as_secs_f64() * 1e6 - 32.36).abs() < 0.01);
        assert!((ms(speed.ttft(1000)) - (15.0 + 32.36)).abs() < 0.01);
        assert!(speed.ttft(2000) > speed.ttft(1000));
        let fast = speed.scaled(0.001);
        // Scaled durations round to nanoseconds: 32.36 ns becomes 32.
        assert!((ms(fast.ttft(1000)) - (15.0 + 32.36) / 1000.0).abs() < 0.001);
        assert_eq!(speed.scaled(1.0), speed);
    }

    #[test]
    fn the_kv_cache_holds_what_the_planner_counts() {
        use modelfleet_core::planner::memory::DeviceMemory;
        use modelfleet_core::precision::Precision;
        let model = ModelArch::find("llama-3.1-8b").unwrap();
        let h100 = Accelerator::find("h100-80gb").unwrap();
        let planned = DeviceMemory::compute(
            model,
            h100,
            Precision::Bf16,
            1,
            1,
            MemoryUtilization::from_fraction(0.9).unwrap(),
        );
        let mut s = served(planned.weights, "llama-3.1-8b", "h100-80gb", 1, 1);
        let tokens = s.kv_cache_tokens();
        assert_eq!(tokens, planned.kv_tokens());
        // A model too large for the device still holds one sequence.
        s.model_bytes = Some(200 * GIB);
        assert_eq!(s.kv_cache_tokens(), 8192);
        // Unknown model and device: the documented defaults.
        let unknown = Served {
            model: None,
            accelerator: None,
            ..served(16_000_000_000, "none", "none", 1, 1)
        };
        let budget = MemoryUtilization::from_fraction(0.9)
            .unwrap()
            .of(DEFAULT_DEVICE_BYTES);
        let fixed = 16_000_000_000 + 5 * GIB + non_torch_bytes(1);
        let expected = (budget - fixed) / (DEFAULT_KV_BYTES_PER_TOKEN * 16) * 16;
        assert_eq!(unknown.kv_cache_tokens(), expected);
    }
}
