//! The simulated vLLM engine: what an engine pod of the sandbox answers
//! on its HTTP port, so that the inference gateway can route real
//! requests to sandbox replicas. docs/sandbox-engine.md says what is
//! faithful to vLLM and what is not.
//!
//! One engine per running engine pod (the kubelet starts it when the
//! serving container becomes ready and stops it with the container),
//! listening on a loopback port; [`EngineAddresses`] maps a pod's
//! address to it. It serves vLLM's OpenAI-compatible routes with vLLM's
//! shapes, deterministic text, token counts that follow the prompt,
//! latencies that follow the model's size and plan ([`perf`]), a queue
//! bounded by `--max-num-seqs` and the KV cache ([`queue`]), and
//! `/metrics` with vLLM's names ([`metrics`]).
//!
//! | room | what | pure |
//! | --- | --- | --- |
//! | [`args`] | reading `vllm serve`'s command line | yes |
//! | [`spec`] | an engine's settings from its pod | yes |
//! | [`perf`] | speed and KV-cache size | yes |
//! | [`tokens`] | the tokenizer and the answers | yes |
//! | [`openai`] | request bodies and error answers | yes |
//! | [`queue`] | admission, first come first served | |
//! | [`metrics`] | counters and their exposition | |
//! | `generate` | one request's timeline | |
//! | `server`, `handlers`, `embeddings` | HTTP | |
//! | [`addresses`] | pod address → loopback address | |

pub mod addresses;
pub mod args;
mod embeddings;
mod generate;
mod handlers;
pub mod metrics;
pub mod openai;
pub mod perf;
pub mod queue;
mod server;
pub mod spec;
pub mod tokens;

pub use addresses::{EngineAddresses, EngineInfo};
pub use server::Engine;
pub use spec::EngineSpec;
