//! Model architectures: the catalog, and models users describe themselves.
//!
//! The same fields describe a catalog model, a `--model-file` and a
//! ModelDeployment's inline model, so one YAML document works in all three.

use std::fmt;
use std::sync::LazyLock;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::precision::Precision;

/// A parameter count. Written as an integer or as text with a unit:
/// `70553706496`, `"70.55B"`, `"500M"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamCount(pub u64);

impl ParamCount {
    pub fn billions(n: u64) -> Self {
        ParamCount(n * 1_000_000_000)
    }

    /// Parses `"70.55B"`, `"500M"`, `"1.5T"` or a plain integer, exactly.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().replace('_', "");
        let (number, scale) = match t.chars().last()?.to_ascii_uppercase() {
            'K' => (&t[..t.len() - 1], 3),
            'M' => (&t[..t.len() - 1], 6),
            'B' | 'G' => (&t[..t.len() - 1], 9),
            'T' => (&t[..t.len() - 1], 12),
            _ => (t.as_str(), 0),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > scale {
            return None;
        }
        let digits = format!("{whole}{frac:0<scale$}");
        digits.parse().ok().map(ParamCount)
    }
}

impl fmt::Display for ParamCount {
    /// Billions to two decimals (`70.55B`), millions below a billion.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1_000_000_000 {
            let centi = (n + 5_000_000) / 10_000_000;
            write!(f, "{}.{:02}B", centi / 100, centi % 100)
        } else {
            write!(f, "{}M", (n + 500_000) / 1_000_000)
        }
    }
}

impl Serialize for ParamCount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

/// Kubernetes' int-or-string: the API server keeps `70.55B` as text and
/// `70553706496` as a number, and both read back the same.
impl JsonSchema for ParamCount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ParamCount".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A parameter count: an integer (70553706496) or text with a unit (\"70.55B\", \"500M\").",
            "x-kubernetes-int-or-string": true,
        })
    }
}

impl<'de> Deserialize<'de> for ParamCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(u64),
            Text(String),
        }
        match Repr::deserialize(deserializer) {
            Ok(Repr::Int(n)) => Ok(ParamCount(n)),
            Ok(Repr::Text(t)) => ParamCount::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a parameter count; write e.g. 70553706496 or \"70.55B\""
                ))
            }),
            Err(_) => Err(serde::de::Error::custom(
                "expected a parameter count such as 70553706496 or \"70.55B\"",
            )),
        }
    }
}

/// Mixture-of-experts routing. Every expert must be resident in memory; the
/// top-k only decides how much compute each token costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Moe {
    /// Routed experts per MoE layer.
    #[schemars(range(min = 2))]
    pub experts: u32,
    /// Always-active shared experts per MoE layer.
    #[serde(default)]
    pub shared_experts: u32,
    /// Routed experts each token uses.
    #[schemars(range(min = 1))]
    pub top_k: u32,
}

/// Multi-head latent attention (DeepSeek): the KV cache holds one compressed
/// latent per token and layer instead of per-head keys and values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mla {
    /// Width of the compressed key/value latent (`kv_lora_rank`).
    #[schemars(range(min = 1))]
    pub kv_lora_rank: u32,
    /// Rotary-embedding part of each key, cached beside the latent.
    pub qk_rope_head_dim: u32,
}

fn bf16() -> Precision {
    Precision::Bf16
}

fn is_bf16(p: &Precision) -> bool {
    *p == Precision::Bf16
}

/// A model's architecture: what sizing needs to know, in the field names of
/// its `config.json` turned camelCase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelArch {
    /// Stable id: lowercase letters, digits, '.', '-' (`llama-3.1-70b`).
    pub id: String,
    /// Display name; the id when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Transformer layers (`num_hidden_layers`).
    #[schemars(range(min = 1))]
    pub layers: u32,
    /// Width of the residual stream (`hidden_size`).
    #[schemars(range(min = 1))]
    pub hidden_size: u32,
    /// Query heads (`num_attention_heads`); tensor parallelism must divide it.
    #[schemars(range(min = 1))]
    pub attention_heads: u32,
    /// Key/value heads (GQA). Equal to `attentionHeads` for full multi-head
    /// attention; for MLA models, the attention heads.
    #[schemars(range(min = 1))]
    pub kv_heads: u32,
    /// Width of one attention head (`head_dim`).
    #[schemars(range(min = 1))]
    pub head_dim: u32,
    /// Feed-forward width; for mixture-of-experts models, per expert.
    #[schemars(range(min = 1))]
    pub ffn_size: u32,
    /// Tokens in the vocabulary (`vocab_size`).
    #[schemars(range(min = 1))]
    pub vocab_size: u32,
    /// Whether the output head shares the input embedding's weights.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Every parameter, experts included.
    pub total_params: ParamCount,
    /// Parameters used per token (mixture-of-experts); `totalParams` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_params: Option<ParamCount>,
    /// Mixture-of-experts routing; absent for dense models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<Moe>,
    /// Multi-head latent attention (DeepSeek); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla: Option<Mla>,
    /// Longest context the model was trained for (`max_position_embeddings`).
    #[schemars(range(min = 1))]
    pub max_context: u32,
    /// Precision the weights are published in.
    #[serde(default = "bf16", skip_serializing_if = "is_bf16")]
    pub native_precision: Precision,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {id:?}; known models: {known}")]
    Unknown { id: String, known: String },
    #[error("the model description could not be read: {0}")]
    Syntax(String),
    #[error("the model description is not valid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl ModelArch {
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }

    pub fn active_params(&self) -> ParamCount {
        self.active_params.unwrap_or(self.total_params)
    }

    pub fn is_moe(&self) -> bool {
        self.moe.is_some()
    }

    /// Parameters in the input embedding and, when untied, the output head.
    pub fn embedding_params(&self) -> u64 {
        let table = u64::from(self.vocab_size) * u64::from(self.hidden_size);
        if self.tie_word_embeddings {
            table
        } else {
            2 * table
        }
    }

    /// Looks a catalog model up by id.
    pub fn find(id: &str) -> Result<&'static ModelArch, ModelError> {
        let wanted = id.trim().to_ascii_lowercase();
        catalog()
            .iter()
            .find(|m| m.id == wanted)
            .ok_or_else(|| ModelError::Unknown {
                id: id.to_owned(),
                known: catalog()
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Reads a model a user described in YAML or JSON (JSON is YAML) and
    /// checks that it can be sized.
    pub fn from_yaml(text: &str) -> Result<ModelArch, ModelError> {
        let model: ModelArch =
            serde_yaml::from_str(text).map_err(|e| ModelError::Syntax(e.to_string()))?;
        model.validate()?;
        Ok(model)
    }

    /// Every problem that would make sizing meaningless, all at once.
    pub fn validate(&self) -> Result<(), ModelError> {
        let mut problems = Vec::new();
        if !is_model_id(&self.id) {
            problems.push(format!(
                "id {:?} must be 1-63 lowercase letters, digits, '.' or '-', starting with a letter or digit",
                self.id
            ));
        }
        for (field, value) in [
            ("layers", self.layers),
            ("hiddenSize", self.hidden_size),
            ("attentionHeads", self.attention_heads),
            ("kvHeads", self.kv_heads),
            ("headDim", self.head_dim),
            ("ffnSize", self.ffn_size),
            ("vocabSize", self.vocab_size),
            ("maxContext", self.max_context),
        ] {
            if value == 0 {
                problems.push(format!("{field} must be at least 1"));
            }
        }
        if self.kv_heads > self.attention_heads {
            problems.push(format!(
                "kvHeads ({}) cannot exceed attentionHeads ({})",
                self.kv_heads, self.attention_heads
            ));
        } else if self.kv_heads > 0 && !self.attention_heads.is_multiple_of(self.kv_heads) {
            problems.push(format!(
                "attentionHeads ({}) must be a multiple of kvHeads ({})",
                self.attention_heads, self.kv_heads
            ));
        }
        if self.total_params.0 == 0 {
            problems.push("totalParams must be more than 0".to_owned());
        } else if self.total_params.0 <= self.embedding_params() {
            problems.push(format!(
                "totalParams ({}) must exceed the embedding's vocabSize × hiddenSize{} ({})",
                self.total_params,
                if self.tie_word_embeddings {
                    ""
                } else {
                    " × 2"
                },
                ParamCount(self.embedding_params())
            ));
        }
        if let Some(active) = self.active_params {
            if active > self.total_params {
                problems.push(format!(
                    "activeParams ({active}) cannot exceed totalParams ({})",
                    self.total_params
                ));
            }
            if self.moe.is_none() && active != self.total_params {
                problems.push(
                    "activeParams differs from totalParams, which only a mixture-of-experts model (moe) can do"
                        .to_owned(),
                );
            }
        }
        if let Some(moe) = &self.moe {
            if moe.experts < 2 {
                problems.push("moe.experts must be at least 2".to_owned());
            }
            if moe.top_k == 0 || moe.top_k > moe.experts {
                problems.push(format!(
                    "moe.topK ({}) must be between 1 and moe.experts ({})",
                    moe.top_k, moe.experts
                ));
            }
        }
        if let Some(mla) = &self.mla
            && mla.kv_lora_rank == 0
        {
            problems.push("mla.kvLoraRank must be at least 1".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Invalid(problems))
        }
    }
}

/// A DNS-label-like id, so that it can name Kubernetes objects.
pub fn is_model_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.as_bytes()[id.len() - 1].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The models modelfleet knows by id, 1B to 671B, dense and MoE.
pub fn catalog() -> &'static [ModelArch] {
    static CATALOG: LazyLock<Vec<ModelArch>> = LazyLock::new(|| {
        serde_yaml::from_str(include_str!("models.yaml"))
            .expect("the built-in model catalog is valid YAML (checked by a test)")
    });
    &CATALOG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_model_is_valid_and_ids_are_unique() {
        let models = catalog();
        assert_eq!(models.len(), 26, "every row of docs/models.md");
        for m in models {
            m.validate().unwrap_or_else(|e| panic!("{}: {e}", m.id));
        }
        let mut ids: Vec<_> = models.iter().map(|m| &m.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), models.len());
    }

    #[test]
    fn catalog_sizes_match_the_reference_table() {
        // (id, total as the reference table prints it, active for MoE)
        let expected = [
            ("llama-3.2-1b", "1.24B", None),
            ("llama-3.2-3b", "3.21B", None),
            ("llama-3.1-8b", "8.03B", None),
            ("llama-3.1-70b", "70.55B", None),
            ("qwen2.5-7b", "7.62B", None),
            ("qwen2.5-14b", "14.77B", None),
            ("qwen2.5-32b", "32.76B", None),
            ("qwen2.5-72b", "72.71B", None),
            ("mixtral-8x7b", "46.70B", Some("12.88B")),
            ("mixtral-8x22b", "140.62B", Some("39.16B")),
            ("deepseek-v2-lite", "15.71B", Some("2.40B")),
            ("deepseek-v3", "671.00B", Some("37.00B")),
            ("gpt3-175b", "175.00B", None),
            ("bloom-176b", "176.25B", None),
            ("falcon-180b", "180.00B", None),
            ("qwen3-8b", "8.19B", None),
            ("qwen3-32b", "32.76B", None),
            ("qwen3-30b-a3b", "30.53B", Some("3.35B")),
            ("qwen3-235b-a22b", "235.09B", Some("22.19B")),
            ("deepseek-r1", "671.03B", Some("37.55B")),
            ("gpt-oss-20b", "20.91B", Some("4.19B")),
            ("gpt-oss-120b", "116.83B", Some("5.71B")),
            ("glm-4.5", "352.80B", Some("33.63B")),
            ("glm-4.5-air", "106.85B", Some("13.42B")),
            ("llama-4-scout", "108.64B", Some("17.17B")),
            ("llama-4-maverick", "401.58B", Some("17.18B")),
        ];
        for (id, total, active) in expected {
            let m = ModelArch::find(id).unwrap();
            assert_eq!(m.total_params.to_string(), total, "{id}");
            assert_eq!(
                m.active_params.map(|p| p.to_string()).as_deref(),
                active,
                "{id}"
            );
            assert_eq!(m.moe.is_some(), active.is_some(), "{id}");
        }
    }

    #[test]
    fn llama_8b_parameter_count_follows_from_its_architecture() {
        // A check that the architecture fields were transcribed right:
        // embeddings 128256 × 4096 × 2 (untied)            = 1,050,673,152
        // per layer: q 4096×4096 + k,v 2 × 4096×1024 + o 4096×4096
        //            + gated MLP 3 × 4096×14336 + 2 norms × 4096 = 218,112,000
        // 32 layers = 6,979,584,000; + final norm 4096      = 8,030,261,248
        let m = ModelArch::find("llama-3.1-8b").unwrap();
        let (h, ffn) = (u64::from(m.hidden_size), u64::from(m.ffn_size));
        let kv = u64::from(m.kv_heads * m.head_dim);
        let per_layer = h * h + 2 * h * kv + h * h + 3 * h * ffn + 2 * h;
        let total = m.embedding_params() + u64::from(m.layers) * per_layer + h;
        assert_eq!(total, m.total_params.0);
    }

    #[test]
    fn reads_a_user_model_with_friendly_units() {
        let m = ModelArch::from_yaml(
            "id: my-13b\nlayers: 40\nhiddenSize: 5120\nattentionHeads: 40\nkvHeads: 40\n\
             headDim: 128\nffnSize: 13824\nvocabSize: 32000\ntotalParams: \"13.02B\"\nmaxContext: 4096\n",
        )
        .unwrap();
        assert_eq!(m.total_params, ParamCount(13_020_000_000));
        assert_eq!(m.native_precision, Precision::Bf16);
    }

    #[test]
    fn names_every_problem_in_a_bad_model_file() {
        let err = ModelArch::from_yaml(
            "id: Bad_Id\nlayers: 0\nhiddenSize: 4096\nattentionHeads: 32\nkvHeads: 5\n\
             headDim: 128\nffnSize: 14336\nvocabSize: 32000\ntotalParams: 7B\nactiveParams: 8B\nmaxContext: 4096\n",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "id \"Bad_Id\"",
            "layers must be at least 1",
            "multiple of kvHeads (5)",
            "activeParams (8.00B) cannot exceed",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        let err = ModelArch::from_yaml("id: x\nlayers: [").unwrap_err();
        assert!(matches!(err, ModelError::Syntax(_)));
        let err = ModelArch::from_yaml("id: x\nlayerz: 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("layerz"), "{err}");
    }

    #[test]
    fn unknown_ids_list_the_known_ones() {
        let err = ModelArch::find("llama-9").unwrap_err().to_string();
        assert!(
            err.contains("llama-3.1-70b") && err.contains("falcon-180b"),
            "{err}"
        );
    }

    #[test]
    fn param_counts_parse_exactly() {
        assert_eq!(
            ParamCount::parse("70.55B"),
            Some(ParamCount(70_550_000_000))
        );
        assert_eq!(ParamCount::parse("500M"), Some(ParamCount(500_000_000)));
        assert_eq!(ParamCount::parse("1_000"), Some(ParamCount(1000)));
        assert_eq!(ParamCount::parse("1.2345678901B"), None);
        assert_eq!(ParamCount::parse("B"), None);
        assert_eq!(ParamCount::parse("-3B"), None);
        assert_eq!(ParamCount(1_235_814_400).to_string(), "1.24B");
        assert_eq!(ParamCount(450_000_000).to_string(), "450M");
    }
}
