//! The serving engine's command line: image, `vllm serve` flags, and for
//! multi-node replicas the Ray start-up a person running vLLM across nodes by
//! hand would type.

use modelfleet_core::accelerator::{Accelerator, Runtime};
use modelfleet_core::planner::{MemoryUtilization, Plan};
use modelfleet_core::precision::Precision;

use super::BuildError;

pub use modelfleet_core::contract::engine::{VLLM_ASCEND_A3_IMAGE, VLLM_ASCEND_IMAGE, VLLM_IMAGE};

/// The engine's HTTP port: OpenAI API, `/health`, `/metrics`.
pub const HTTP_PORT: i32 = modelfleet_core::contract::engine::ENGINE_HTTP_PORT as i32;
/// The Ray head's port on the leader of a multi-node replica.
pub const RAY_PORT: i32 = 6379;
/// Where weights are mounted in every engine container.
pub const MODELS_DIR: &str = "/models";

/// The engine image: the user's override, else the pinned one for the
/// runtime and hardware generation.
pub fn image(override_image: Option<&str>, accelerator: &Accelerator) -> String {
    if let Some(image) = override_image {
        return image.to_owned();
    }
    match accelerator.runtime {
        Runtime::Vllm => VLLM_IMAGE,
        Runtime::VllmAscend if accelerator.product_label.starts_with("module-a3") => {
            VLLM_ASCEND_A3_IMAGE
        }
        Runtime::VllmAscend => VLLM_ASCEND_IMAGE,
    }
    .to_owned()
}

/// Where the weights of `model` are inside the container.
pub fn model_dir(model: &str) -> String {
    format!("{MODELS_DIR}/{model}")
}

/// Everything after `vllm serve`: the model directory, then modelfleet's
/// flags, then the user's extra arguments (last, so they win where vLLM
/// takes the last occurrence).
pub fn serve_args(
    model: &str,
    plan: &Plan,
    multi_node: bool,
    extra_args: &[String],
) -> Result<Vec<String>, BuildError> {
    let mut args = vec![
        model_dir(model),
        "--served-model-name".to_owned(),
        model.to_owned(),
        "--port".to_owned(),
        HTTP_PORT.to_string(),
        "--tensor-parallel-size".to_owned(),
        plan.tensor_parallel.to_string(),
        "--pipeline-parallel-size".to_owned(),
        plan.pipeline_parallel.to_string(),
        "--max-model-len".to_owned(),
        plan.max_model_len.to_string(),
        // Always explicit: vLLM's default moved between releases, and the
        // planner sized the KV cache for exactly this share.
        "--gpu-memory-utilization".to_owned(),
        fraction(plan.gpu_memory_utilization),
    ];
    args.extend(quantization_args(plan.runtime, plan.precision)?);
    if multi_node {
        args.extend([
            "--distributed-executor-backend".to_owned(),
            "ray".to_owned(),
        ]);
    }
    args.extend(extra_args.iter().cloned());
    Ok(args)
}

/// The flags that make the engine serve in `precision`.
///
/// - NVIDIA fp8: `--quantization fp8` quantizes bf16 weights on load (and
///   reads an fp8 checkpoint such as DeepSeek-V3's as it is).
/// - NVIDIA int8 and int4: no flag. vLLM does not quantize to integers on
///   load; `source` must hold a pre-quantized checkpoint (GPTQ, AWQ or
///   compressed-tensors), whose `config.json` names its method and which
///   vLLM detects.
/// - Ascend int8 and int4: `--quantization ascend`, vllm-ascend's loader for
///   the W8A8 and W4A8 checkpoints msModelSlim produces.
fn quantization_args(runtime: Runtime, precision: Precision) -> Result<Vec<String>, BuildError> {
    let method = match (runtime, precision) {
        (_, Precision::Bf16) | (Runtime::Vllm, Precision::Int8 | Precision::Int4) => None,
        (Runtime::Vllm, Precision::Fp8) => Some("fp8"),
        (Runtime::VllmAscend, Precision::Int8 | Precision::Int4) => Some("ascend"),
        (Runtime::VllmAscend, Precision::Fp8) => {
            return Err(BuildError::UnsupportedPrecision { runtime, precision });
        }
    };
    Ok(method
        .map(|m| vec!["--quantization".to_owned(), m.to_owned()])
        .unwrap_or_default())
}

/// `0.90`, `0.905`, `1.00`: exact, at least two decimals.
fn fraction(utilization: MemoryUtilization) -> String {
    let bp = utilization.basis_points();
    let digits = format!("{:04}", bp % 10_000);
    let trimmed = digits.trim_end_matches('0');
    let decimals = if trimmed.len() < 2 {
        &digits[..2]
    } else {
        trimmed
    };
    format!("{}.{decimals}", bp / 10_000)
}

/// The leader of a multi-node replica: start the Ray head, wait until every
/// worker of the group has joined (LWS sets `LWS_GROUP_SIZE`), then become
/// `vllm serve` with the arguments passed after the script (`"$@"`, so no
/// argument is ever re-parsed by the shell).
pub const LEADER_SCRIPT: &str = r#"set -eu
ray start --head --port=6379
until [ "$(python3 -c 'import ray; ray.init(address="auto", logging_level="ERROR"); print(sum(1 for n in ray.nodes() if n["Alive"]))' 2>/dev/null)" = "$LWS_GROUP_SIZE" ]; do
  echo "waiting for $LWS_GROUP_SIZE Ray nodes"
  sleep 5
done
exec vllm serve "$@""#;

/// A worker of a multi-node replica: join the leader's Ray cluster and stay.
pub const WORKER_SCRIPT: &str = r#"exec ray start --address="$LWS_LEADER_ADDRESS:6379" --block"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_is_written_exactly() {
        let f = |x| fraction(MemoryUtilization::from_fraction(x).unwrap());
        assert_eq!(
            [f(0.9), f(0.905), f(1.0), f(0.05)],
            ["0.90", "0.905", "1.00", "0.05"]
        );
    }

    #[test]
    fn quantization_follows_the_engine() {
        let q = |r, p| quantization_args(r, p).unwrap().join(" ");
        assert_eq!(q(Runtime::Vllm, Precision::Fp8), "--quantization fp8");
        assert_eq!(q(Runtime::Vllm, Precision::Int4), "");
        assert_eq!(q(Runtime::Vllm, Precision::Bf16), "");
        assert_eq!(
            q(Runtime::VllmAscend, Precision::Int8),
            "--quantization ascend"
        );
        assert!(quantization_args(Runtime::VllmAscend, Precision::Fp8).is_err());
    }

    #[test]
    fn ascend_a3_gets_its_own_build() {
        let a3 = Accelerator::find("ascend-910c").unwrap();
        let a2 = Accelerator::find("ascend-910b").unwrap();
        assert_eq!(image(None, a3), VLLM_ASCEND_A3_IMAGE);
        assert_eq!(image(None, a2), VLLM_ASCEND_IMAGE);
        assert_eq!(
            image(Some("registry.local/vllm:patched"), a2),
            "registry.local/vllm:patched"
        );
    }
}
