//! `POST /v1/embeddings`: a deterministic unit vector per input, after the
//! input's prefill time. (A real vLLM answers this only when it serves an
//! embedding model; the simulated engine answers for any model.)

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::generate;
use super::openai::{self, ApiError, EmbeddingRequest};
use super::server::{State, unix_now};
use super::tokens::embedding;

pub async fn embeddings(Extract(state): Extract<Arc<State>>, body: Bytes) -> Response {
    match answer(&state, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn answer(state: &Arc<State>, body: &[u8]) -> Result<Response, ApiError> {
    let EmbeddingRequest {
        model,
        input,
        encoding_format,
        dimensions,
    } = openai::parse(body)?;
    if let Some(model) = model.as_deref()
        && !state.spec.serves(Some(model))
    {
        return Err(ApiError::no_such_model(model));
    }
    let base64 = match encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format must be 'float' or 'base64', got {other:?}"
            )));
        }
    };
    if dimensions.is_some() {
        return Err(ApiError::bad_request(format!(
            "Model \"{}\" does not support matryoshka representation, changing output \
             dimensions will lead to poor results.",
            state.spec.model_name()
        )));
    }
    if input.is_empty() {
        return Err(ApiError::bad_request(
            "Either prompt or prompt_embeds must be provided and non-empty.",
        ));
    }
    let inputs = input.tokenized(true);
    let context = u64::from(state.spec.max_model_len);
    if let Some(long) = inputs.iter().find(|i| i.tokens > context) {
        return Err(ApiError::bad_request(format!(
            "This model's maximum context length is {context} tokens. However, you requested \
             {} tokens in the input for embedding generation. Please reduce the length of the \
             input.",
            long.tokens
        )));
    }
    let tokens: Vec<u64> = inputs.iter().map(|i| i.tokens).collect();
    generate::embed(state, &tokens).await;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding(input.seed);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"index": index, "object": "embedding", "embedding": embedding})
        })
        .collect();
    let prompt_tokens: u64 = tokens.iter().sum();
    Ok(axum::Json(json!({
        "id": format!("embd-{}", uuid::Uuid::new_v4().simple()),
        "object": "list",
        "created": unix_now(),
        "model": state.spec.model_name(),
        "data": data,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens,
            "completion_tokens": 0,
            "prompt_tokens_details": null,
        },
    }))
    .into_response())
}
