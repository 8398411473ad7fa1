//! Numeric precisions a model's weights can be served in.

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Weight precision. The KV cache stays in 16-bit whatever the weights are
/// (vLLM's default `--kv-cache-dtype auto`), so this only changes weights.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 16-bit brain float (fp16 takes the same memory).
    Bf16,
    /// 8-bit float (W8A8-FP8); needs Hopper/Ada-class hardware.
    Fp8,
    /// 8-bit integer weights (W8A8 or W8A16).
    Int8,
    /// 4-bit integer weights with group-wise scales (AWQ/GPTQ-style).
    Int4,
}

impl Precision {
    /// Most faithful first: the order `auto` falls back in.
    pub const ALL: [Precision; 4] = [
        Precision::Bf16,
        Precision::Fp8,
        Precision::Int8,
        Precision::Int4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Bf16 => "bf16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
        }
    }

    /// Bits per weight, before quantization scales.
    pub fn bits(self) -> u64 {
        match self {
            Precision::Bf16 => 16,
            Precision::Fp8 | Precision::Int8 => 8,
            Precision::Int4 => 4,
        }
    }

    /// Whether weights in this precision are a quantized form that keeps the
    /// embedding and output head in 16-bit, as vLLM's fp8, int8 and int4
    /// checkpoints do.
    pub fn is_quantized(self) -> bool {
        self != Precision::Bf16
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision {0:?}; use one of auto, bf16, fp8, int8, int4")]
pub struct UnknownPrecision(pub String);

impl FromStr for Precision {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownPrecision(s.to_owned()))
    }
}

/// What the user asked for: a fixed precision, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// The model's published precision if the accelerator supports it and it
    /// fits the pool; otherwise the next in bf16 → fp8 → int8 → int4.
    #[default]
    Auto,
    #[serde(untagged)]
    Fixed(Precision),
}

/// One flat list of words, as Kubernetes needs: the derived schema of an
/// enum with an untagged variant is not a structural schema.
impl JsonSchema for PrecisionChoice {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PrecisionChoice".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "enum": ["auto", "bf16", "fp8", "int8", "int4"],
        })
    }
}

impl fmt::Display for PrecisionChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrecisionChoice::Auto => f.write_str("auto"),
            PrecisionChoice::Fixed(p) => p.fmt(f),
        }
    }
}

impl FromStr for PrecisionChoice {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("auto") {
            Ok(PrecisionChoice::Auto)
        } else {
            s.parse().map(PrecisionChoice::Fixed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_refuses_others() {
        assert_eq!("FP8".parse::<Precision>(), Ok(Precision::Fp8));
        assert_eq!("auto".parse::<PrecisionChoice>(), Ok(PrecisionChoice::Auto));
        assert_eq!(
            "int4".parse::<PrecisionChoice>(),
            Ok(PrecisionChoice::Fixed(Precision::Int4))
        );
        let err = "fp4".parse::<PrecisionChoice>().unwrap_err().to_string();
        assert!(err.contains("bf16, fp8, int8, int4"), "{err}");
    }

    #[test]
    fn choice_serializes_as_plain_words() {
        assert_eq!(
            serde_json::to_string(&PrecisionChoice::Auto).unwrap(),
            "\"auto\""
        );
        let fixed = PrecisionChoice::Fixed(Precision::Int8);
        assert_eq!(serde_json::to_string(&fixed).unwrap(), "\"int8\"");
        assert_eq!(
            serde_json::from_str::<PrecisionChoice>("\"int8\"").unwrap(),
            fixed
        );
        assert!(serde_json::from_str::<PrecisionChoice>("\"fp4\"").is_err());
    }
}
