//! The OpenAI-compatible request bodies vLLM accepts (the fields the
//! simulation reads; every other field is accepted and ignored, as vLLM
//! ignores fields it does not know) and its error answers.
//!
//! Errors take the shape vLLM has used since 0.10 (the pinned engine is
//! 0.13): `{"error": {"message", "type", "param", "code"}}`, which the
//! `openai` client reads as `BadRequestError`/`NotFoundError` with the
//! message. A missing or wrong API key gets vLLM's own
//! `{"error": "Unauthorized"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// An error the engine answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// vLLM's answer for a model it does not serve.
    pub fn no_such_model(model: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{model}` does not exist."),
        }
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::NOT_FOUND => "NotFoundError",
            StatusCode::BAD_REQUEST => "BadRequestError",
            _ => "InternalServerError",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": null,
            "code": self.status.as_u16(),
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// vLLM's 401 for a missing or wrong `Authorization: Bearer` key.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "Unauthorized"})),
    )
        .into_response()
}

/// Reads a JSON body into `T`, answering as vLLM's request validation does.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("JSON decode error: {e}")))?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamOptions {
    /// vLLM takes `stream_options: {}` as asking for usage.
    #[serde(default = "yes")]
    pub include_usage: Option<bool>,
}

fn yes() -> Option<bool> {
    Some(true)
}

fn sixteen() -> Option<i64> {
    Some(16)
}

/// What every generating request has besides its prompt.
#[derive(Debug, Clone, Deserialize)]
pub struct Sampling {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// vLLM's extensions: a floor on the answer's length, and ignoring the
    /// end-of-sequence token (benchmarks use both).
    #[serde(default)]
    pub min_tokens: Option<i64>,
    #[serde(default)]
    pub ignore_eos: Option<bool>,
}

impl Sampling {
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// A message's content: text, or parts of which the text ones count.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl ChatMessage {
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    /// OpenAI's and vLLM's default for completions is 16 tokens.
    #[serde(default = "sixteen")]
    pub max_tokens: Option<i64>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// A prompt (or embedding input): text, texts, token ids, or lists of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

/// One prompt of a request: its tokens and the seed of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokenized {
    pub tokens: u64,
    pub seed: u64,
}

impl Prompt {
    /// Each prompt, tokenized; `bos` adds the begin-of-sequence token to
    /// text (a tokenizer's special tokens), never to token ids.
    pub fn tokenized(&self, bos: bool) -> Vec<Tokenized> {
        use super::tokens::{BOS_TOKENS, ids_seed, text_seed, text_tokens};
        let text = |t: &str| Tokenized {
            tokens: text_tokens(t) + if bos { BOS_TOKENS } else { 0 },
            seed: text_seed(t),
        };
        let ids = |ids: &[u32]| Tokenized {
            tokens: ids.len() as u64,
            seed: ids_seed(ids),
        };
        match self {
            Prompt::Text(t) => vec![text(t)],
            Prompt::Texts(ts) => ts.iter().map(|t| text(t)).collect(),
            Prompt::Ids(i) => vec![ids(i)],
            Prompt::IdLists(l) => l.iter().map(|i| ids(i)).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Prompt::Text(t) => t.is_empty(),
            Prompt::Texts(ts) => ts.is_empty() || ts.iter().any(String::is_empty),
            Prompt::Ids(i) => i.is_empty(),
            Prompt::IdLists(l) => l.is_empty() || l.iter().any(Vec::is_empty),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub input: Prompt,
    /// `float` (the default) or `base64` (what the `openai` client asks
    /// for): little-endian f32s.
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_vllms_shape() {
        let e = ApiError::no_such_model("x");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(
            e.body(),
            json!({"error": {"message": "The model `x` does not exist.",
                "type": "NotFoundError", "param": null, "code": 404}})
        );
        assert_eq!(
            ApiError::bad_request("no").body()["error"]["type"],
            "BadRequestError"
        );
    }

    #[test]
    fn requests_read_as_vllm_reads_them() {
        let chat: ChatRequest = parse(
            br#"{"model": "m", "messages": [{"role": "user", "content":
                [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]}],
                "stream": true, "stream_options": {}, "temperature": 0.2}"#,
        )
        .unwrap();
        assert_eq!(chat.messages[0].text(), "a\nb");
        assert!(
            chat.sampling.include_usage(),
            "stream_options: {{}} asks for usage"
        );
        let completion: CompletionRequest = parse(br#"{"prompt": ["ab", "cdef"]}"#).unwrap();
        assert_eq!(completion.max_tokens, Some(16));
        let prompts = completion.prompt.tokenized(true);
        assert_eq!(prompts.iter().map(|p| p.tokens).collect::<Vec<_>>(), [2, 2]);
        let ids: CompletionRequest =
            parse(br#"{"prompt": [1, 2, 3], "max_tokens": null}"#).unwrap();
        assert_eq!(ids.max_tokens, None);
        assert_eq!(ids.prompt.tokenized(true)[0].tokens, 3);
        assert!(parse::<ChatRequest>(b"{not json").is_err());
        assert!(parse::<ChatRequest>(br#"{"model": "m"}"#).is_err());
    }
}
