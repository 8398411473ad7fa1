//! Checkpoints with real shapes and no weights, for tests: a model's
//! tensors as Hugging Face's Llama and Mixtral layouts name them, written
//! as safetensors shards whose data the test may leave sparse.

use serde_json::{Map, Value, json};

use crate::model::ModelArch;

/// `(name, dtype, shape)` of every tensor of a Llama-style model
/// (Mixtral-style when it has experts), in bf16.
pub fn llama_tensors(m: &ModelArch) -> Vec<(String, &'static str, Vec<u64>)> {
    let (h, kv) = (u64::from(m.hidden_size), u64::from(m.kv_heads * m.head_dim));
    let q = u64::from(m.attention_heads * m.head_dim);
    let (ffn, vocab) = (u64::from(m.ffn_size), u64::from(m.vocab_size));
    let mut t = vec![(
        "model.embed_tokens.weight".to_owned(),
        "BF16",
        vec![vocab, h],
    )];
    for l in 0..m.layers {
        let p = format!("model.layers.{l}");
        t.push((format!("{p}.self_attn.q_proj.weight"), "BF16", vec![q, h]));
        t.push((format!("{p}.self_attn.k_proj.weight"), "BF16", vec![kv, h]));
        t.push((format!("{p}.self_attn.v_proj.weight"), "BF16", vec![kv, h]));
        t.push((format!("{p}.self_attn.o_proj.weight"), "BF16", vec![h, q]));
        t.push((format!("{p}.input_layernorm.weight"), "BF16", vec![h]));
        t.push((
            format!("{p}.post_attention_layernorm.weight"),
            "BF16",
            vec![h],
        ));
        match &m.moe {
            None => {
                for w in ["gate_proj", "up_proj"] {
                    t.push((format!("{p}.mlp.{w}.weight"), "BF16", vec![ffn, h]));
                }
                t.push((format!("{p}.mlp.down_proj.weight"), "BF16", vec![h, ffn]));
            }
            Some(moe) => {
                let e = u64::from(moe.experts);
                let b = format!("{p}.block_sparse_moe");
                t.push((format!("{b}.gate.weight"), "BF16", vec![e, h]));
                for x in 0..moe.experts {
                    t.push((format!("{b}.experts.{x}.w1.weight"), "BF16", vec![ffn, h]));
                    t.push((format!("{b}.experts.{x}.w2.weight"), "BF16", vec![h, ffn]));
                    t.push((format!("{b}.experts.{x}.w3.weight"), "BF16", vec![ffn, h]));
                }
            }
        }
    }
    t.push(("model.norm.weight".to_owned(), "BF16", vec![h]));
    if !m.tie_word_embeddings {
        t.push(("lm_head.weight".to_owned(), "BF16", vec![vocab, h]));
    }
    t
}

/// The model's `config.json`, as `transformers` writes it.
pub fn llama_config(m: &ModelArch) -> Vec<u8> {
    let mut c = json!({
        "architectures": [if m.moe.is_some() { "MixtralForCausalLM" } else { "LlamaForCausalLM" }],
        "model_type": if m.moe.is_some() { "mixtral" } else { "llama" },
        "hidden_size": m.hidden_size,
        "intermediate_size": m.ffn_size,
        "num_hidden_layers": m.layers,
        "num_attention_heads": m.attention_heads,
        "num_key_value_heads": m.kv_heads,
        "head_dim": m.head_dim,
        "vocab_size": m.vocab_size,
        "max_position_embeddings": m.max_context,
        "tie_word_embeddings": m.tie_word_embeddings,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "torch_dtype": "bfloat16",
    });
    if let Some(moe) = &m.moe {
        c["num_local_experts"] = json!(moe.experts);
        c["num_experts_per_tok"] = json!(moe.top_k);
    }
    serde_json::to_vec_pretty(&c).expect("a JSON value serialises")
}

/// One safetensors shard: its first bytes (length and header) and how
/// many bytes of data follow them.
#[derive(Debug)]
pub struct Shard {
    pub head: Vec<u8>,
    pub data_len: u64,
}

impl Shard {
    pub fn file_len(&self) -> u64 {
        self.head.len() as u64 + self.data_len
    }
}

/// `tensors` split into `count` shards of about equal size.
pub fn shards(tensors: &[(String, &'static str, Vec<u64>)], count: usize) -> Vec<Shard> {
    let bytes = |t: &(String, &str, Vec<u64>)| t.2.iter().product::<u64>() * 2;
    let total: u64 = tensors.iter().map(bytes).sum();
    let per = total.div_ceil(count.max(1) as u64);
    let mut out = Vec::new();
    let mut header = Map::new();
    let mut offset = 0;
    let mut finish = |header: &mut Map<String, Value>, offset: &mut u64| {
        header.insert("__metadata__".into(), json!({"format": "pt"}));
        let text = serde_json::to_vec(&Value::Object(std::mem::take(header)))
            .expect("a JSON value serialises");
        let mut head = (text.len() as u64).to_le_bytes().to_vec();
        head.extend_from_slice(&text);
        out.push(Shard {
            head,
            data_len: *offset,
        });
        *offset = 0;
    };
    for t in tensors {
        let n = bytes(t);
        header.insert(
            t.0.clone(),
            json!({"dtype": t.1, "shape": t.2, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
        if offset >= per {
            finish(&mut header, &mut offset);
        }
    }
    if !header.is_empty() {
        finish(&mut header, &mut offset);
    }
    out
}
