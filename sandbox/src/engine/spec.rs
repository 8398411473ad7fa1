//! Everything one simulated engine runs with, read from its pod the way
//! vLLM reads its command line and environment, plus what the kubelet
//! knows of the node (the accelerator). Pure.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};
use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::contract::devices::DEVICE_RESOURCES;
use modelfleet_core::contract::tenancy::ENGINE_API_KEY_ENV;
use modelfleet_core::model::ModelArch;

use super::args::{self, ServeArgs};
use super::perf::{Served, Speed};
use crate::cluster::kubelet::runtime::Timings;
use crate::cluster::resources::{container_requests, units};

/// The context length of a model vLLM cannot look up (vLLM reads it from
/// the model's `config.json`; the sandbox from the catalog).
pub const DEFAULT_MAX_MODEL_LEN: u32 = 8192;

/// How one simulated engine behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSpec {
    /// `--served-model-name`s: what `model` may be in a request; the
    /// first is the one answers carry.
    pub served_model_names: Vec<String>,
    /// The weights' directory (`root` in `/v1/models`).
    pub root: String,
    /// `--port`: the pod port the engine answers on.
    pub port: u16,
    pub max_model_len: u32,
    /// `--max-num-seqs`: sequences running at once.
    pub max_num_seqs: u32,
    /// Tokens the KV cache holds (see `perf`).
    pub kv_cache_tokens: u64,
    /// `--api-key` or `VLLM_API_KEY`: required on every `/v1` request.
    pub api_key: Option<String>,
    /// Already scaled by the sandbox's time factor.
    pub speed: Speed,
}

impl EngineSpec {
    /// The engine `container` of `pod` runs, if it runs vLLM's OpenAI
    /// server; `env` is its environment as the kubelet resolved it.
    pub fn of_container(
        pod: &Pod,
        container: &Container,
        accelerator: Option<&Accelerator>,
        env: &BTreeMap<String, String>,
        time_factor: f64,
    ) -> Option<EngineSpec> {
        let words = args::serve_words(container)?;
        let ServeArgs {
            model,
            served_model_names,
            port,
            max_model_len,
            max_num_seqs,
            tensor_parallel,
            pipeline_parallel,
            gpu_memory_utilization,
            api_key,
        } = args::parse(&words);
        // The catalog knows a model by its served name (what the operator
        // passes) or by its directory's name.
        let known = served_model_names
            .iter()
            .map(String::as_str)
            .chain(Path::new(&model).file_name().and_then(|n| n.to_str()))
            .find_map(|name| ModelArch::find(name).ok());
        let devices: i128 = {
            let requests = container_requests(container);
            DEVICE_RESOURCES
                .iter()
                .filter_map(|(resource, _)| requests.get(*resource))
                .map(|m| units(*m))
                .sum()
        };
        let max_model_len = max_model_len
            .or(known.map(|m| m.max_context))
            .unwrap_or(DEFAULT_MAX_MODEL_LEN);
        let served = Served {
            model_bytes: Timings::model_bytes(pod),
            model: known,
            accelerator,
            tensor_parallel: tensor_parallel
                .unwrap_or_else(|| u32::try_from(devices).unwrap_or(1).max(1)),
            pipeline_parallel: pipeline_parallel.unwrap_or(1),
            gpu_memory_utilization,
            max_model_len,
        };
        // vLLM: `--api-key` first, else the environment.
        let api_key = api_key
            .or_else(|| env.get(ENGINE_API_KEY_ENV).cloned())
            .filter(|k| !k.is_empty());
        Some(EngineSpec {
            served_model_names,
            root: model,
            port,
            max_model_len,
            max_num_seqs,
            kv_cache_tokens: served.kv_cache_tokens(),
            api_key,
            speed: served.speed().scaled(time_factor),
        })
    }

    /// The name answers carry.
    pub fn model_name(&self) -> &str {
        self.served_model_names
            .first()
            .map_or(self.root.as_str(), String::as_str)
    }

    /// Whether `model` names this engine's model; vLLM serves a request
    /// without `model` with its own.
    pub fn serves(&self, model: Option<&str>) -> bool {
        model.is_none_or(|m| self.served_model_names.iter().any(|n| n == m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(command: serde_json::Value, args: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "m-0", "annotations": {"modelfleet.io/model-bytes": "16000000000"}},
            "spec": {"containers": [{
                "name": "engine", "image": "vllm/vllm-openai:v0.13.0",
                "command": command, "args": args,
                "resources": {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn an_operator_built_pod_becomes_an_engine() {
        let pod = pod(
            json!(["vllm", "serve"]),
            json!([
                "/models/llama-3.1-8b",
                "--served-model-name",
                "llama-3.1-8b",
                "--port",
                "8000",
                "--tensor-parallel-size",
                "1",
                "--max-model-len",
                "4096",
                "--gpu-memory-utilization",
                "0.90"
            ]),
        );
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let env = BTreeMap::from([(ENGINE_API_KEY_ENV.to_owned(), "k".to_owned())]);
        let h100 = Accelerator::find("h100-80gb");
        let spec = EngineSpec::of_container(&pod, c, h100, &env, 1.0).unwrap();
        assert_eq!(spec.model_name(), "llama-3.1-8b");
        assert_eq!(spec.root, "/models/llama-3.1-8b");
        assert_eq!(
            (spec.port, spec.max_model_len, spec.max_num_seqs),
            (8000, 4096, 256)
        );
        assert_eq!(spec.api_key.as_deref(), Some("k"));
        assert!(spec.serves(Some("llama-3.1-8b")) && spec.serves(None));
        assert!(!spec.serves(Some("other")));
        assert!(spec.kv_cache_tokens > 100_000, "{}", spec.kv_cache_tokens);
        // No --tensor-parallel-size: the devices the container asks for.
        let two = self::pod(json!(["vllm", "serve"]), json!(["/models/llama-3.1-8b"]));
        let c2 = &two.spec.as_ref().unwrap().containers[0];
        let spec2 = EngineSpec::of_container(&two, c2, h100, &BTreeMap::new(), 1.0).unwrap();
        assert!(spec2.speed.per_token < spec.speed.per_token);
        assert_eq!(spec2.max_model_len, 131_072, "the catalog's context length");
        assert_eq!(spec2.api_key, None);
        let fast = EngineSpec::of_container(&pod, c, h100, &env, 0.001).unwrap();
        assert!(fast.speed.per_token < spec.speed.per_token);
        let worker = pod_with_worker();
        let c3 = &worker.spec.as_ref().unwrap().containers[0];
        assert_eq!(EngineSpec::of_container(&worker, c3, h100, &env, 1.0), None);
    }

    fn pod_with_worker() -> Pod {
        pod(
            json!(["/bin/sh", "-c", "exec ray start --block"]),
            json!([]),
        )
    }
}
