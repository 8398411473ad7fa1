//! Sizing a model from its own files: the `config.json` every Hugging Face
//! checkpoint carries and the headers of its safetensors shards — never the
//! weights. The config gives the architecture (layers, heads, KV heads,
//! head size, experts, MLA ranks, quantization); the headers give every
//! tensor's name, type and shape, from which the exact parameter count, the
//! exact bytes on disk, whether the output head is tied, and how much of
//! the model is routed experts (so the active count) follow.
//!
//! The I/O (listing a source, ranged reads of each shard's first bytes) is
//! `modelfleet-fetch`'s; everything here works on the bytes it read.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Mla, ModelArch, ModelError, Moe, ParamCount};
use crate::precision::Precision;

/// The safetensors format's own limit on a header.
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;
/// The most a `config.json` may be; real ones are a few kilobytes.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// One tensor as a safetensors header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub name: String,
    /// `BF16`, `F8_E4M3`, `I32`, `U8`, …
    pub dtype: String,
    /// Elements as stored (a packed int4 tensor stores 8 values per `I32`).
    pub elements: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

/// The 8-byte little-endian length that starts every safetensors file, or
/// why it cannot be one.
pub fn header_length(first: &[u8], file_size: u64) -> Result<u64, String> {
    let bytes: [u8; 8] = first
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("it is shorter than 8 bytes")?;
    let n = u64::from_le_bytes(bytes);
    if n == 0 || n > MAX_HEADER_BYTES || 8 + n > file_size {
        return Err(format!(
            "its first 8 bytes announce a {n}-byte header in a {file_size}-byte file; \
             it is not a safetensors file"
        ));
    }
    Ok(n)
}

/// Reads a safetensors header (the JSON after the length) of a file of
/// `file_size` bytes whose header is `header.len()` bytes long.
pub fn parse_header(header: &[u8], file_size: u64) -> Result<Vec<Tensor>, String> {
    let map: BTreeMap<String, Value> = serde_json::from_slice(header)
        .map_err(|e| format!("its header is not the JSON object safetensors writes: {e}"))?;
    let data = file_size - 8 - header.len() as u64;
    let mut tensors = Vec::with_capacity(map.len());
    for (name, entry) in map {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: &str| format!("tensor {name:?}: {what}");
        let dtype = entry
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no dtype"))?
            .to_owned();
        let shape = entry
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no shape"))?;
        let mut elements: u64 = 1;
        for dim in shape {
            let dim = dim
                .as_u64()
                .ok_or_else(|| bad("a dimension is not a count"))?;
            elements = elements
                .checked_mul(dim)
                .ok_or_else(|| bad("its shape overflows"))?;
        }
        let offsets = entry
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
            .ok_or_else(|| bad("no data_offsets"))?;
        if offsets.0 > offsets.1 || offsets.1 > data {
            return Err(bad(&format!(
                "its data_offsets {offsets:?} fall outside the file's {data} bytes of data"
            )));
        }
        let bytes = offsets.1 - offsets.0;
        if let Some(width) = dtype_bits(&dtype)
            && elements * width != bytes * 8
        {
            return Err(bad(&format!(
                "{elements} elements of {dtype} cannot take {bytes} bytes"
            )));
        }
        tensors.push(Tensor {
            name,
            dtype,
            elements,
            bytes,
        });
    }
    Ok(tensors)
}

fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 64,
        "F32" | "I32" | "U32" => 32,
        "F16" | "BF16" | "I16" | "U16" => 16,
        "F8_E4M3" | "F8_E5M2" | "F8_E8M0" | "I8" | "U8" | "BOOL" => 8,
        _ => return None,
    })
}

/// A checkpoint as read from its source: the config and every shard's
/// tensors.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub config: Value,
    pub tensors: Vec<Tensor>,
}

/// What the headers add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Parameters the engine loads (quantization scales left out, packed
    /// values unpacked, layers past `num_hidden_layers` left out).
    pub params: u64,
    /// Of those, the routed experts'.
    pub routed_expert_params: u64,
    /// Bytes on disk of every tensor the engine loads, scales included.
    pub bytes: u64,
    /// Whether a separate output head (`lm_head.weight`) is stored.
    pub untied_head: bool,
}

impl Checkpoint {
    /// Reads a `config.json`; multimodal models keep the language model's
    /// part under `text_config`, which is what is sized.
    pub fn new(config_json: &[u8], tensors: Vec<Tensor>) -> Result<Checkpoint, ModelError> {
        let config: Value = serde_json::from_slice(config_json)
            .map_err(|e| ModelError::Syntax(format!("config.json is not JSON: {e}")))?;
        if !config.is_object() {
            return Err(ModelError::Syntax(
                "config.json is not a JSON object".to_owned(),
            ));
        }
        Ok(Checkpoint { config, tensors })
    }

    /// The part of the config that describes the language model.
    fn text(&self) -> &Value {
        self.config
            .get("text_config")
            .filter(|t| t.is_object())
            .unwrap_or(&self.config)
    }

    /// Sums the headers, as the engine would load them.
    pub fn count(&self, layers: u32) -> Counted {
        let bits = quantization_bits(self.text(), &self.config);
        let mut counted = Counted {
            params: 0,
            routed_expert_params: 0,
            bytes: 0,
            untied_head: false,
        };
        for t in &self.tensors {
            if beyond_layers(&t.name, layers) {
                continue;
            }
            counted.bytes += t.bytes;
            if is_quantization_aux(&t.name) {
                continue;
            }
            let params = t.elements * packing(&t.name, &t.dtype, bits);
            counted.params += params;
            if is_routed_expert(&t.name) {
                counted.routed_expert_params += params;
            }
            if t.name == "lm_head.weight" || t.name.ends_with(".lm_head.weight") {
                counted.untied_head = true;
            }
        }
        counted
    }

    /// The architecture, named `id`. Every field the config lacks or gives
    /// in a form that cannot be sized is named in one error.
    pub fn architecture(&self, id: &str, name: &str) -> Result<ModelArch, ModelError> {
        let config = self.text();
        let mut problems = Vec::new();
        let mut field = |keys: &[&str], required: bool| -> Option<u32> {
            let found = keys
                .iter()
                .find_map(|k| config.get(*k).filter(|v| !v.is_null()));
            match found.map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok())) {
                Some(Some(n)) => Some(n),
                Some(None) => {
                    problems.push(format!("config.json: {} is not a whole number", keys[0]));
                    None
                }
                None if required => {
                    problems.push(format!(
                        "config.json has no {}; give the architecture by hand instead \
                         (see examples/custom-model.yaml)",
                        keys.join(" or ")
                    ));
                    None
                }
                None => None,
            }
        };
        let layers = field(&["num_hidden_layers", "n_layer", "num_layers"], true);
        let hidden = field(&["hidden_size", "n_embd", "d_model"], true);
        let heads = field(&["num_attention_heads", "n_head"], true);
        let kv_heads = field(&["num_key_value_heads", "num_kv_heads", "n_head_kv"], false);
        let head_dim = field(&["head_dim"], false);
        let v_head_dim = field(&["v_head_dim"], false);
        let kv_lora_rank = field(&["kv_lora_rank"], false);
        let rope_dim = field(&["qk_rope_head_dim"], false);
        let intermediate = field(&["intermediate_size", "ffn_hidden_size", "n_inner"], false);
        let moe_intermediate = field(&["moe_intermediate_size"], false);
        let experts = field(
            &["num_local_experts", "n_routed_experts", "num_experts"],
            false,
        );
        let top_k = field(
            &["num_experts_per_tok", "experts_per_token", "moe_top_k"],
            false,
        );
        let shared = field(&["n_shared_experts"], false);
        let vocab = field(&["vocab_size"], true);
        let context = field(
            &["max_position_embeddings", "n_positions", "seq_length"],
            true,
        );
        let precision = precision_of(config, &self.config).map_err(|e| {
            problems.push(e);
        });
        if self.tensors.is_empty() {
            problems.push(
                "the source has no safetensors weights to count parameters from \
                 (*.safetensors); give the architecture by hand instead"
                    .to_owned(),
            );
        }
        let (Some(layers), Some(hidden), Some(heads), Some(vocab), Some(context), Ok(precision)) =
            (layers, hidden, heads, vocab, context, precision)
        else {
            return Err(ModelError::Invalid(problems));
        };
        if !problems.is_empty() {
            return Err(ModelError::Invalid(problems));
        }
        let counted = self.count(layers);
        let moe = match (experts, top_k) {
            (Some(experts), Some(top_k)) if experts > 1 => Some(Moe {
                experts,
                shared_experts: shared.unwrap_or_else(|| {
                    let any = self
                        .tensors
                        .iter()
                        .any(|t| t.name.contains("shared_expert"));
                    u32::from(any)
                }),
                top_k,
            }),
            _ => None,
        };
        let mla = kv_lora_rank.map(|kv_lora_rank| Mla {
            kv_lora_rank,
            qk_rope_head_dim: rope_dim.unwrap_or(0),
        });
        let ffn = if moe.is_some() {
            moe_intermediate.or(intermediate)
        } else {
            intermediate
        };
        let active = moe.as_ref().map(|m| {
            let idle = u128::from(counted.routed_expert_params)
                * u128::from(m.experts.saturating_sub(m.top_k))
                / u128::from(m.experts);
            ParamCount(counted.params - idle as u64)
        });
        let arch = ModelArch {
            id: id.to_owned(),
            name: name.to_owned(),
            layers,
            hidden_size: hidden,
            attention_heads: heads,
            // MLA caches one latent whatever the heads; the catalog writes
            // its heads as both.
            kv_heads: if mla.is_some() {
                heads
            } else {
                kv_heads.unwrap_or(heads)
            },
            head_dim: match (&mla, v_head_dim, head_dim) {
                (Some(_), Some(v), _) => v,
                (_, _, Some(d)) => d,
                _ => hidden / heads.max(1),
            },
            ffn_size: ffn.unwrap_or(4 * hidden),
            vocab_size: vocab,
            // What is stored decides, whatever the config says: a head
            // stored apart is loaded apart.
            tie_word_embeddings: !counted.untied_head,
            total_params: ParamCount(counted.params),
            active_params: active,
            moe,
            mla,
            max_context: context,
            native_precision: precision,
        };
        arch.validate()?;
        Ok(arch)
    }
}

/// Bits per packed value of a quantized checkpoint (GPTQ, AWQ and
/// compressed-tensors store several in one `I32`).
fn quantization_bits(text: &Value, config: &Value) -> u64 {
    let q = quantization(text, config);
    q.and_then(|q| {
        q.get("bits").and_then(Value::as_u64).or_else(|| {
            q.get("config_groups")?
                .as_object()?
                .values()
                .find_map(|g| g.get("weights")?.get("num_bits")?.as_u64())
        })
    })
    .filter(|b| *b > 0 && *b <= 32)
    .unwrap_or(4)
}

fn quantization<'a>(text: &'a Value, config: &'a Value) -> Option<&'a Value> {
    text.get("quantization_config")
        .or_else(|| config.get("quantization_config"))
        .filter(|q| q.is_object())
}

/// The precision the weights are published in, from `quantization_config`
/// or else `torch_dtype` (`dtype` in newer configs).
fn precision_of(text: &Value, config: &Value) -> Result<Precision, String> {
    let Some(q) = quantization(text, config) else {
        let dtype = ["torch_dtype", "dtype"]
            .iter()
            .find_map(|k| text.get(*k).or_else(|| config.get(*k))?.as_str());
        return match dtype {
            None | Some("bfloat16" | "float16" | "float32") => Ok(Precision::Bf16),
            Some(other) => Err(format!(
                "config.json: torch_dtype {other:?} is not one modelfleet sizes \
                 (bfloat16, float16, float32)"
            )),
        };
    };
    let method = q.get("quant_method").and_then(Value::as_str).unwrap_or("");
    let bits = quantization_bits(text, config);
    match method {
        "fp8" | "fbgemm_fp8" => Ok(Precision::Fp8),
        // OpenAI's gpt-oss: 4-bit floats in blocks of 32 with a shared
        // scale, the same memory as int4 with group-wise scales.
        "mxfp4" => Ok(Precision::Int4),
        "gptq" | "awq" | "marlin" | "gptq_marlin" | "awq_marlin" if bits == 4 => {
            Ok(Precision::Int4)
        }
        "gptq" | "gptq_marlin" if bits == 8 => Ok(Precision::Int8),
        "compressed-tensors" => {
            let group = q
                .get("config_groups")
                .and_then(Value::as_object)
                .and_then(|g| g.values().find_map(|g| g.get("weights")));
            let kind = group.and_then(|w| w.get("type")).and_then(Value::as_str);
            match (kind, bits) {
                (Some("float"), 8) => Ok(Precision::Fp8),
                (Some("int"), 8) => Ok(Precision::Int8),
                (Some("int"), 4) => Ok(Precision::Int4),
                _ => Err(format!(
                    "config.json: quantization_config (compressed-tensors, {bits}-bit {}) \
                     is not one modelfleet sizes; give the architecture by hand with \
                     nativePrecision set",
                    kind.unwrap_or("unknown type")
                )),
            }
        }
        other => Err(format!(
            "config.json: quantization_config.quant_method {other:?} ({bits}-bit) is not one \
             modelfleet sizes (fp8, gptq, awq, compressed-tensors, mxfp4); give the \
             architecture by hand with nativePrecision set"
        )),
    }
}

/// `model.layers.<i>.…` with `i` past the model's layers: DeepSeek's
/// multi-token-prediction layer, which vLLM loads only for speculative
/// decoding.
fn beyond_layers(name: &str, layers: u32) -> bool {
    if name.contains("vision") || name.contains("visual") {
        return false;
    }
    let Some(rest) = name.split("layers.").nth(1) else {
        return false;
    };
    let index = rest.split('.').next().and_then(|i| i.parse::<u32>().ok());
    index.is_some_and(|i| i >= layers)
}

/// Scales, zero points and group indices of quantized weights: memory,
/// not parameters.
fn is_quantization_aux(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    [
        "scale",
        "scales",
        "scale_inv",
        "qzeros",
        "zeros",
        "g_idx",
        "zero_point",
        "absmax",
        "quant_map",
        "shape",
    ]
    .iter()
    .any(|suffix| last == *suffix || last.ends_with(&format!("_{suffix}")))
}

/// Values per stored element: packed integers hold several.
fn packing(name: &str, dtype: &str, bits: u64) -> u64 {
    let last = name.rsplit('.').next().unwrap_or(name);
    match dtype {
        "I32" if last == "qweight" || last.ends_with("weight_packed") => 32 / bits,
        // Two 4-bit values per byte (gpt-oss's `*_blocks`).
        "U8" if last.ends_with("_blocks") => 2,
        _ => 1,
    }
}

/// A routed expert's weight (not a shared expert's, not the router's).
fn is_routed_expert(name: &str) -> bool {
    name.contains(".experts.")
}

/// A catalog-style id from a source: `hf://Qwen/Qwen3-8B@main` →
/// `qwen3-8b`; `s3://bucket/models/Llama-3.1-8B/` → `llama-3.1-8b`.
pub fn id_from_source(source: &str) -> String {
    let path = source.split_once("://").map_or(source, |(_, p)| p);
    let path = path.split('@').next().unwrap_or(path);
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let mut id: String = last
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    id = id
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned();
    id.truncate(63);
    id = id
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned();
    if id.is_empty() {
        "model".to_owned()
    } else {
        id
    }
}

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
