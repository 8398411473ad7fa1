use serde_json::json;

use super::fixtures::{llama_config, llama_tensors, shards};
use super::*;
use crate::model::ModelArch;

/// Every tensor of `shards`, read back through the parser as a source's
/// shards would be.
fn read(shards: &[fixtures::Shard]) -> Vec<Tensor> {
    shards
        .iter()
        .flat_map(|s| {
            let n = header_length(&s.head, s.file_len()).unwrap();
            parse_header(&s.head[8..8 + n as usize], s.file_len()).unwrap()
        })
        .collect()
}

fn from_files(catalog_id: &str, shard_count: usize) -> ModelArch {
    let m = ModelArch::find(catalog_id).unwrap();
    let tensors = read(&shards(&llama_tensors(m), shard_count));
    Checkpoint::new(&llama_config(m), tensors)
        .unwrap()
        .architecture(&m.id, &m.name)
        .unwrap()
}

#[test]
fn llama_sized_from_its_files_is_the_catalog_entry() {
    // (Qwen2.5's attention has biases, which this Llama layout lacks.)
    for id in ["llama-3.2-1b", "llama-3.1-8b", "llama-3.1-70b"] {
        let catalog = ModelArch::find(id).unwrap();
        assert_eq!(&from_files(id, 4), catalog, "{id}");
    }
}

#[test]
fn mixtral_from_its_files_counts_experts_and_active_parameters() {
    let catalog = ModelArch::find("mixtral-8x7b").unwrap();
    let read = from_files("mixtral-8x7b", 19);
    assert_eq!(read.total_params, catalog.total_params);
    assert_eq!(read.moe, catalog.moe);
    assert!(!read.tie_word_embeddings);
    // Active: everything but 6 of 8 experts in each layer.
    let routed: u64 = 32 * 8 * 3 * 4096 * 14336;
    let active = read.active_params.unwrap().0;
    assert_eq!(active, catalog.total_params.0 - routed / 8 * 6);
    assert!(active.abs_diff(catalog.active_params.unwrap().0) < 10_000);
}

#[test]
fn the_published_llama_config_reads_as_written_by_transformers() {
    // Llama 3.2 1B's config.json as published, rope scaling and all; its
    // head is tied, so no lm_head is stored.
    let config = br#"{
      "architectures": ["LlamaForCausalLM"], "attention_bias": false,
      "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64,
      "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 8192,
      "max_position_embeddings": 131072, "model_type": "llama",
      "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
      "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 32.0, "rope_type": "llama3"},
      "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
      "vocab_size": 128256}"#;
    let m = ModelArch::find("llama-3.2-1b").unwrap();
    let tensors = read(&shards(&llama_tensors(m), 1));
    let read = Checkpoint::new(config, tensors)
        .unwrap()
        .architecture("llama-3.2-1b", "Llama 3.2 1B")
        .unwrap();
    assert_eq!(&read, m);
}

fn tensor(name: &str, dtype: &str, elements: u64, bytes: u64) -> Tensor {
    Tensor {
        name: name.to_owned(),
        dtype: dtype.to_owned(),
        elements,
        bytes,
    }
}

#[test]
fn an_fp8_mla_checkpoint_leaves_out_scales_and_the_prediction_layer() {
    // DeepSeek-V3's layout in miniature: fp8 weights with block scales,
    // MLA, a shared expert, and a multi-token-prediction layer past
    // num_hidden_layers that vLLM does not load to serve.
    let config = json!({
        "model_type": "deepseek_v3", "num_hidden_layers": 2, "hidden_size": 64,
        "num_attention_heads": 4, "num_key_value_heads": 4, "kv_lora_rank": 16,
        "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16,
        "intermediate_size": 256, "moe_intermediate_size": 32, "n_routed_experts": 4,
        "n_shared_experts": 1, "num_experts_per_tok": 2, "vocab_size": 1000,
        "max_position_embeddings": 4096, "tie_word_embeddings": false,
        "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3",
                                "weight_block_size": [128, 128]},
    });
    let mut tensors = vec![
        tensor("model.embed_tokens.weight", "BF16", 64_000, 128_000),
        tensor("lm_head.weight", "BF16", 64_000, 128_000),
        tensor("model.norm.weight", "BF16", 64, 128),
    ];
    for l in 0..3 {
        let p = format!("model.layers.{l}");
        tensors.push(tensor(
            &format!("{p}.self_attn.kv_a_proj_with_mqa.weight"),
            "F8_E4M3",
            1536,
            1536,
        ));
        tensors.push(tensor(
            &format!("{p}.self_attn.kv_a_proj_with_mqa.weight_scale_inv"),
            "F32",
            1,
            4,
        ));
        for e in 0..4 {
            tensors.push(tensor(
                &format!("{p}.mlp.experts.{e}.down_proj.weight"),
                "F8_E4M3",
                2048,
                2048,
            ));
        }
        tensors.push(tensor(
            &format!("{p}.mlp.shared_experts.down_proj.weight"),
            "F8_E4M3",
            2048,
            2048,
        ));
        tensors.push(tensor(&format!("{p}.mlp.gate.weight"), "BF16", 256, 512));
    }
    let text = serde_json::to_vec(&config).unwrap();
    let checkpoint = Checkpoint::new(&text, tensors).unwrap();
    let m = checkpoint.architecture("tiny-v3", "").unwrap();
    let per_layer = 1536 + 4 * 2048 + 2048 + 256;
    assert_eq!(m.total_params.0, 128_064 + 2 * per_layer);
    assert_eq!(m.active_params.unwrap().0, m.total_params.0 - 2 * 2 * 2048);
    assert_eq!(m.native_precision, Precision::Fp8);
    assert_eq!(
        m.mla.as_ref().map(|m| (m.kv_lora_rank, m.qk_rope_head_dim)),
        Some((16, 8))
    );
    assert_eq!((m.kv_heads, m.head_dim, m.ffn_size), (4, 16, 32));
    assert_eq!(m.moe.as_ref().map(|m| m.shared_experts), Some(1));
    // The bytes count what is loaded, scales included, layer 2 not.
    let counted = checkpoint.count(2);
    assert_eq!(counted.bytes, 256_128 + 2 * (1536 + 4 + 5 * 2048 + 512));
}

#[test]
fn packed_int4_weights_count_every_value() {
    let config = json!({
        "num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4,
        "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 2048,
        "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128},
    });
    let tensors = vec![
        tensor("model.embed_tokens.weight", "F16", 6400, 12_800),
        // 64 × 128 int4 values, 8 to an int32.
        tensor("model.layers.0.mlp.up_proj.qweight", "I32", 1024, 4096),
        tensor("model.layers.0.mlp.up_proj.qzeros", "I32", 16, 64),
        tensor("model.layers.0.mlp.up_proj.scales", "F16", 128, 256),
        tensor("model.layers.0.mlp.up_proj.g_idx", "I32", 64, 256),
    ];
    let text = serde_json::to_vec(&config).unwrap();
    let m = Checkpoint::new(&text, tensors)
        .unwrap()
        .architecture("tiny-gptq", "")
        .unwrap();
    assert_eq!(m.total_params.0, 6400 + 8192);
    assert_eq!(m.native_precision, Precision::Int4);
    assert!(m.tie_word_embeddings, "no lm_head is stored");
    assert_eq!(
        m.kv_heads, 4,
        "no num_key_value_heads: full multi-head attention"
    );
}

#[test]
fn a_config_that_cannot_be_sized_names_each_field() {
    let config = json!({
        "hidden_size": 4096, "num_attention_heads": "32", "vocab_size": 32000,
        "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true},
    });
    let text = serde_json::to_vec(&config).unwrap();
    let err = Checkpoint::new(&text, vec![])
        .unwrap()
        .architecture("x", "")
        .unwrap_err()
        .to_string();
    for needle in [
        "no num_hidden_layers or n_layer or num_layers",
        "num_attention_heads is not a whole number",
        "no max_position_embeddings",
        "quant_method \"bitsandbytes\"",
        "no safetensors weights",
        "give the architecture by hand",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let err = Checkpoint::new(b"[1, 2]", vec![]).unwrap_err().to_string();
    assert!(err.contains("not a JSON object"), "{err}");
    let err = Checkpoint::new(b"{nope", vec![]).unwrap_err().to_string();
    assert!(err.contains("config.json is not JSON"), "{err}");
}

#[test]
fn headers_that_lie_are_refused() {
    // A length past the file, and one past the format's limit.
    let err = header_length(&100u64.to_le_bytes(), 50).unwrap_err();
    assert!(err.contains("not a safetensors file"), "{err}");
    assert!(header_length(&(MAX_HEADER_BYTES + 1).to_le_bytes(), u64::MAX).is_err());
    assert!(header_length(&[1, 2, 3], 100).is_err());

    let header = br#"{"w": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 32]}}"#;
    let len = header.len() as u64;
    assert_eq!(parse_header(header, 8 + len + 32).unwrap()[0].elements, 16);
    // Data past the end of the file.
    let err = parse_header(header, 8 + len + 16).unwrap_err();
    assert!(err.contains("fall outside"), "{err}");
    // A shape that does not fit the bytes.
    let header = br#"{"w": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 30]}}"#;
    let err = parse_header(header, 8 + header.len() as u64 + 30).unwrap_err();
    assert!(err.contains("cannot take 30 bytes"), "{err}");
    let err = parse_header(b"{\"w\": 3}", 100).unwrap_err();
    assert!(err.contains("no dtype"), "{err}");
}

#[test]
fn ids_come_from_the_source_name() {
    assert_eq!(id_from_source("hf://Qwen/Qwen3-8B"), "qwen3-8b");
    assert_eq!(
        id_from_source("hf://meta-llama/Llama-3.1-8B@main"),
        "llama-3.1-8b"
    );
    assert_eq!(id_from_source("s3://bucket/models/My_Model/"), "my-model");
    assert_eq!(
        id_from_source("modelscope://qwen/Qwen2.5-7B-Instruct"),
        "qwen2.5-7b-instruct"
    );
    assert_eq!(id_from_source("s3://bucket/__/"), "model");
    assert!(crate::model::is_model_id(&id_from_source(&format!(
        "s3://b/{}",
        "x".repeat(80)
    ))));
}
