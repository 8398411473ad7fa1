//! The memory arithmetic a serving engine (vLLM, vllm-ascend) does when it
//! starts: what one device holds for weights, activations, runtime and KV
//! cache. All integers, in bytes; see `shared/reference/models.md`.

use crate::accelerator::Accelerator;
use crate::model::ModelArch;
use crate::precision::Precision;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// Peak activation memory vLLM's profiling pass measures per device,
/// largely independent of context length (measured on H100).
pub const ACTIVATION_DENSE: u64 = 5 * GIB;
pub const ACTIVATION_MOE: u64 = 8 * GIB;
/// Memory outside PyTorch's allocator: CUDA/CANN context, and at more than
/// one device the collective-communication buffers.
pub const NON_TORCH_SINGLE_DEVICE: u64 = 15 * GIB / 100;
pub const NON_TORCH_MULTI_DEVICE: u64 = 60 * GIB / 100;
/// vLLM allocates the KV cache in blocks of this many tokens.
pub const KV_BLOCK_TOKENS: u64 = 16;
/// The KV cache is kept in 16-bit whatever the weight precision.
pub const KV_BYTES_PER_VALUE: u64 = 2;

/// `gpu_memory_utilization` in basis points (0.90 = 9000): the share of a
/// device's memory the engine may use for everything together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemoryUtilization(u16);

impl MemoryUtilization {
    /// vLLM's long-standing default; always passed explicitly to the engine.
    pub const DEFAULT: MemoryUtilization = MemoryUtilization(9000);
    const MIN: u16 = 500;
    const MAX: u16 = 10_000;

    /// Accepts 0.05 to 1.00, rounded to basis points.
    pub fn from_fraction(f: f64) -> Result<Self, String> {
        let bp = (f * 10_000.0).round();
        if !(f64::from(Self::MIN)..=f64::from(Self::MAX)).contains(&bp) {
            return Err(format!(
                "gpu memory utilization {f} must be between 0.05 and 1.0 (0.90 is usual)"
            ));
        }
        Ok(MemoryUtilization(bp as u16))
    }

    pub fn basis_points(self) -> u16 {
        self.0
    }

    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// The bytes of `device_bytes` the engine may use.
    pub fn of(self, device_bytes: u64) -> u64 {
        (u128::from(device_bytes) * u128::from(self.0) / 10_000) as u64
    }
}

impl Default for MemoryUtilization {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Layers on the busiest pipeline stage: stages split layers as evenly as
/// they can, so one stage may carry one more.
pub fn layers_per_stage(model: &ModelArch, pipeline_parallel: u32) -> u64 {
    u64::from(model.layers.div_ceil(pipeline_parallel))
}

/// Weight bytes on the busiest device of a replica.
///
/// Transformer layers are stored in `precision` (int4 adds group-wise scales
/// and zeros: two 16-bit values per 128 weights, 1/32 byte per weight). The
/// embedding and output head stay in 16-bit, as quantized checkpoints keep
/// them. With pipeline parallelism the first stage holds the embedding and
/// the last the output head; tied weights are needed at both ends. Tensor
/// parallelism splits everything, embeddings included (vocab-parallel).
pub fn weight_bytes_per_device(
    model: &ModelArch,
    precision: Precision,
    tensor_parallel: u32,
    pipeline_parallel: u32,
) -> u64 {
    let embedding = model.embedding_params();
    let body = model.total_params.0.saturating_sub(embedding);
    let body_on_stage = u128::from(body) * u128::from(layers_per_stage(model, pipeline_parallel))
        / u128::from(model.layers);
    let mut body_bytes = body_on_stage * u128::from(precision.bits()) / 8;
    if precision == Precision::Int4 {
        body_bytes += body_on_stage / 32;
    }
    let embedding_on_stage = if pipeline_parallel == 1 {
        embedding
    } else {
        u64::from(model.vocab_size) * u64::from(model.hidden_size)
    };
    let total = body_bytes + u128::from(embedding_on_stage) * 2;
    total.div_ceil(u128::from(tensor_parallel)) as u64
}

/// Weight bytes of the whole model in `precision`, for messages.
pub fn weight_bytes_total(model: &ModelArch, precision: Precision) -> u64 {
    weight_bytes_per_device(model, precision, 1, 1)
}

/// KV-cache bytes one token takes on the busiest device.
///
/// GQA and full multi-head attention: layers × 2 (K and V) × KV heads on
/// the device × head_dim × 2 bytes; tensor parallelism splits the KV heads
/// until there is one per device, after which they are replicated.
/// MLA: layers × (kv_lora_rank + qk_rope_head_dim) × 2 bytes, the same
/// latent on every tensor-parallel rank.
pub fn kv_bytes_per_token(model: &ModelArch, tensor_parallel: u32, pipeline_parallel: u32) -> u64 {
    let layers = layers_per_stage(model, pipeline_parallel);
    let per_layer = match &model.mla {
        Some(mla) => u64::from(mla.kv_lora_rank + mla.qk_rope_head_dim) * KV_BYTES_PER_VALUE,
        None => {
            let heads_on_device = model.kv_heads.div_ceil(tensor_parallel).max(1);
            2 * u64::from(heads_on_device) * u64::from(model.head_dim) * KV_BYTES_PER_VALUE
        }
    };
    layers * per_layer
}

/// Activation peak per device.
pub fn activation_bytes(model: &ModelArch) -> u64 {
    if model.is_moe() {
        ACTIVATION_MOE
    } else {
        ACTIVATION_DENSE
    }
}

/// Runtime memory outside the allocator per device.
pub fn non_torch_bytes(devices_per_replica: u32) -> u64 {
    if devices_per_replica > 1 {
        NON_TORCH_MULTI_DEVICE
    } else {
        NON_TORCH_SINGLE_DEVICE
    }
}

/// How one device of a replica spends its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    pub device: u64,
    /// `device × gpu_memory_utilization`.
    pub budget: u64,
    pub weights: u64,
    pub activation: u64,
    pub non_torch: u64,
    /// What is left for the KV cache; zero when nothing is.
    pub kv_cache: u64,
    pub kv_bytes_per_token: u64,
    /// Whether weights, activations and runtime fit in the budget at all.
    pub fits: bool,
}

impl DeviceMemory {
    pub fn compute(
        model: &ModelArch,
        accelerator: &Accelerator,
        precision: Precision,
        tensor_parallel: u32,
        pipeline_parallel: u32,
        utilization: MemoryUtilization,
    ) -> DeviceMemory {
        let device = accelerator.usable_bytes();
        let budget = utilization.of(device);
        let weights = weight_bytes_per_device(model, precision, tensor_parallel, pipeline_parallel);
        let activation = activation_bytes(model);
        let non_torch = non_torch_bytes(tensor_parallel * pipeline_parallel);
        let fixed = weights + activation + non_torch;
        DeviceMemory {
            device,
            budget,
            weights,
            activation,
            non_torch,
            kv_cache: budget.saturating_sub(fixed),
            kv_bytes_per_token: kv_bytes_per_token(model, tensor_parallel, pipeline_parallel),
            fits: fixed < budget,
        }
    }

    /// Tokens the replica's KV cache holds: whole blocks of the busiest device.
    pub fn kv_tokens(&self) -> u64 {
        let block = self.kv_bytes_per_token * KV_BLOCK_TOKENS;
        (self.kv_cache / block) * KV_BLOCK_TOKENS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str) -> &'static ModelArch {
        ModelArch::find(id).unwrap()
    }

    #[test]
    fn llama_70b_bf16_weights_split_four_ways() {
        // embeddings: 128256 × 8192 × 2 (untied)         = 2,101,346,304 params
        // body: 70,553,706,496 − 2,101,346,304           = 68,452,360,192 params
        // bf16: (68,452,360,192 + 2,101,346,304) × 2 B   = 141,107,412,992 B
        // TP 4: 141,107,412,992 / 4                       = 35,276,853,248 B (32.85 GiB)
        let m = model("llama-3.1-70b");
        assert_eq!(weight_bytes_total(m, Precision::Bf16), 141_107_412_992);
        assert_eq!(
            weight_bytes_per_device(m, Precision::Bf16, 4, 1),
            35_276_853_248
        );
    }

    #[test]
    fn quantized_weights_keep_16_bit_embeddings() {
        // fp8: body 68,452,360,192 × 1 B + embeddings 2,101,346,304 × 2 B
        //    = 68,452,360,192 + 4,202,692,608 = 72,655,052,800 B
        // int4: body × 0.5 + body / 32 + embeddings × 2
        //    = 34,226,180,096 + 2,139,136,256 + 4,202,692,608 B
        let m = model("llama-3.1-70b");
        assert_eq!(weight_bytes_total(m, Precision::Fp8), 72_655_052_800);
        assert_eq!(
            weight_bytes_total(m, Precision::Int4),
            34_226_180_096 + 2_139_136_256 + 4_202_692_608
        );
    }

    #[test]
    fn pipeline_stages_take_a_share_of_layers_and_one_embedding() {
        // gpt3-175b, tied embeddings: 50257 × 12288   = 617,558,016 params
        // body: 175,000,000,000 − 617,558,016         = 174,382,441,984 params
        // PP 2: 48 of 96 layers → 87,191,220,992 params × 2 B = 174,382,441,984 B
        // plus the embedding on this stage × 2 B      = 1,235,116,032 B
        // TP 8: 175,617,558,016 / 8                   = 21,952,194,752 B
        let m = model("gpt3-175b");
        assert_eq!(
            weight_bytes_per_device(m, Precision::Bf16, 8, 2),
            21_952_194_752
        );
        // 61 layers in 2 stages: the busier stage has 31.
        assert_eq!(layers_per_stage(model("deepseek-v3"), 2), 31);
    }

    #[test]
    fn kv_per_token_gqa_splits_heads_until_one_per_device() {
        // llama-3.1-70b: 80 layers × 2 × 8 KV heads × 128 × 2 B = 327,680 B
        let m = model("llama-3.1-70b");
        assert_eq!(kv_bytes_per_token(m, 1, 1), 327_680);
        // TP 4 → 2 heads per device: 80 × 2 × 2 × 128 × 2 = 81,920 B
        assert_eq!(kv_bytes_per_token(m, 4, 1), 81_920);
        // TP 8 → 1 head: 40,960 B; TP 16 cannot split further: still 1 head.
        assert_eq!(kv_bytes_per_token(m, 8, 1), 40_960);
        assert_eq!(kv_bytes_per_token(m, 16, 1), 40_960);
    }

    #[test]
    fn kv_per_token_full_multi_head() {
        // gpt3-175b, 96 KV heads, TP 8 → 12 per device:
        // 96 layers × 2 × 12 × 128 × 2 B = 589,824 B
        assert_eq!(kv_bytes_per_token(model("gpt3-175b"), 8, 1), 589_824);
    }

    #[test]
    fn kv_per_token_mla_is_not_split_by_tensor_parallel() {
        // deepseek-v3: 61 layers × (512 + 64) × 2 B = 70,272 B at any TP.
        let m = model("deepseek-v3");
        assert_eq!(kv_bytes_per_token(m, 1, 1), 70_272);
        assert_eq!(kv_bytes_per_token(m, 8, 1), 70_272);
        // PP 2: 31 layers × 576 × 2 = 35,712 B.
        assert_eq!(kv_bytes_per_token(m, 8, 2), 35_712);
    }

    #[test]
    fn device_budget_leaves_the_kv_cache() {
        // llama-3.1-70b bf16 on 4 × H100:
        // device 81,090 MiB                  = 85,029,027,840 B
        // × 0.90                             = 76,526,125,056 B
        // − weights 35,276,853,248 − activation 5 GiB (5,368,709,120)
        // − non-torch 0.6 GiB (644,245,094)  = 35,236,317,594 B of KV cache
        // / (81,920 B × 16 per block)        = 26,883 blocks → 430,128 tokens
        let h100 = Accelerator::find("h100-80gb").unwrap();
        let mem = DeviceMemory::compute(
            model("llama-3.1-70b"),
            h100,
            Precision::Bf16,
            4,
            1,
            MemoryUtilization::DEFAULT,
        );
        assert_eq!(mem.device, 85_029_027_840);
        assert_eq!(mem.budget, 76_526_125_056);
        assert_eq!(mem.kv_cache, 35_236_317_594);
        assert_eq!(mem.kv_tokens(), 430_128);
        assert!(mem.fits);
    }

    #[test]
    fn moe_models_reserve_more_activation_memory() {
        assert_eq!(activation_bytes(model("mixtral-8x7b")), 8 * GIB);
        assert_eq!(activation_bytes(model("llama-3.1-8b")), 5 * GIB);
    }

    #[test]
    fn what_does_not_fit_has_no_kv_cache() {
        // llama-3.1-70b bf16 on one H100: 141 GB of weights in a 76.5 GB budget.
        let h100 = Accelerator::find("h100-80gb").unwrap();
        let mem = DeviceMemory::compute(
            model("llama-3.1-70b"),
            h100,
            Precision::Bf16,
            1,
            1,
            MemoryUtilization::DEFAULT,
        );
        assert!(!mem.fits);
        assert_eq!(mem.kv_tokens(), 0);
    }

    #[test]
    fn utilization_is_validated() {
        assert_eq!(
            MemoryUtilization::from_fraction(0.9)
                .unwrap()
                .basis_points(),
            9000
        );
        assert!(MemoryUtilization::from_fraction(0.0).is_err());
        assert!(MemoryUtilization::from_fraction(1.2).is_err());
        assert!(MemoryUtilization::from_fraction(f64::NAN).is_err());
    }
}
