//! `POST /v1/chat/completions` and `POST /v1/completions`: vLLM's checks
//! in vLLM's order (the model, then the sampling parameters, then the
//! context length), then the answer whole or as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::generate::{Event, Generation, Sequence};
use super::openai::{self, ApiError, ChatRequest, CompletionRequest, Sampling, Tokenized};
use super::server::{State, unix_now};
use super::tokens::{self, Answer};

/// Which of the two APIs, for the objects' names and shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

/// A validated request, ready to run.
#[derive(Debug)]
struct Planned {
    kind: Kind,
    seqs: Vec<Sequence>,
    /// Counted once per prompt, whatever `n` is, as vLLM counts them.
    prompt_tokens: u64,
    stream: bool,
    include_usage: bool,
}

pub async fn chat(Extract(state): Extract<Arc<State>>, body: Bytes) -> Response {
    let planned = openai::parse::<ChatRequest>(&body).and_then(|request| {
        check_model(&state, &request.sampling)?;
        let messages: Vec<(String, String)> = request
            .messages
            .iter()
            .map(|m| (m.role.clone(), m.text()))
            .collect();
        let pairs = || messages.iter().map(|(r, t)| (r.as_str(), t.as_str()));
        let prompt = Tokenized {
            tokens: tokens::chat_tokens(pairs()),
            seed: tokens::chat_seed(pairs()),
        };
        let max_tokens = request.max_completion_tokens.or(request.max_tokens);
        plan(&state, Kind::Chat, &request.sampling, &[prompt], max_tokens)
    });
    match planned {
        Ok(planned) => run(state, planned).await,
        Err(error) => error.into_response(),
    }
}

pub async fn completions(Extract(state): Extract<Arc<State>>, body: Bytes) -> Response {
    let planned = openai::parse::<CompletionRequest>(&body).and_then(|request| {
        check_model(&state, &request.sampling)?;
        if request.prompt.is_empty() {
            return Err(ApiError::bad_request(
                "Either prompt or prompt_embeds must be provided and non-empty.",
            ));
        }
        let prompts = request.prompt.tokenized(true);
        plan(
            &state,
            Kind::Completion,
            &request.sampling,
            &prompts,
            request.max_tokens,
        )
    });
    match planned {
        Ok(planned) => run(state, planned).await,
        Err(error) => error.into_response(),
    }
}

pub fn check_model(state: &State, sampling: &Sampling) -> Result<(), ApiError> {
    match sampling.model.as_deref() {
        Some(model) if !state.spec.serves(Some(model)) => Err(ApiError::no_such_model(model)),
        _ => Ok(()),
    }
}

fn plan(
    state: &State,
    kind: Kind,
    sampling: &Sampling,
    prompts: &[Tokenized],
    max_tokens: Option<i64>,
) -> Result<Planned, ApiError> {
    let n = sampling.n.unwrap_or(1);
    if n < 1 {
        return Err(ApiError::bad_request(format!(
            "n must be at least 1, got {n}."
        )));
    }
    if let Some(max) = max_tokens
        && max < 1
    {
        return Err(ApiError::bad_request(format!(
            "max_tokens must be at least 1, got {max}."
        )));
    }
    let min_tokens = sampling.min_tokens.unwrap_or(0);
    if min_tokens < 0 {
        return Err(ApiError::bad_request(format!(
            "min_tokens must be greater than or equal to 0, got {min_tokens}."
        )));
    }
    if let Some(max) = max_tokens
        && min_tokens > max
    {
        return Err(ApiError::bad_request(format!(
            "min_tokens must be less than or equal to max_tokens={max}, got {min_tokens}."
        )));
    }
    let context = u64::from(state.spec.max_model_len);
    let mut seqs = Vec::new();
    for prompt in prompts {
        let input = prompt.tokens;
        if input >= context {
            return Err(ApiError::bad_request(format!(
                "This model's maximum context length is {context} tokens. However, your request \
                 has {input} input tokens. Please reduce the length of the input messages."
            )));
        }
        let room = context - input;
        let limit = match max_tokens {
            Some(max) if max as u64 > room => {
                return Err(ApiError::bad_request(format!(
                    "'max_tokens' or 'max_completion_tokens' is too large: {max}. This model's \
                     maximum context length is {context} tokens and your request has {input} \
                     input tokens ({max} > {context} - {input})."
                )));
            }
            Some(max) => max as u64,
            None => room,
        };
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let min = u32::try_from(min_tokens).unwrap_or(u32::MAX);
        for choice in 0..n {
            let choice = u32::try_from(choice).unwrap_or(u32::MAX);
            let ignore_eos = sampling.ignore_eos.unwrap_or(false);
            seqs.push(Sequence {
                prompt_tokens: input,
                answer: Answer::plan(prompt.seed, choice, limit, min, ignore_eos),
            });
        }
    }
    Ok(Planned {
        kind,
        seqs,
        prompt_tokens: prompts.iter().map(|p| p.tokens).sum(),
        stream: sampling.stream.unwrap_or(false),
        include_usage: sampling.include_usage(),
    })
}

/// What every object of one answer carries.
#[derive(Debug, Clone)]
struct Header {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
}

impl Header {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn wrap(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
    })
}

async fn run(state: Arc<State>, planned: Planned) -> Response {
    let Planned {
        kind,
        seqs,
        prompt_tokens,
        stream,
        include_usage,
    } = planned;
    let prefix = match kind {
        Kind::Chat => "chatcmpl",
        Kind::Completion => "cmpl",
    };
    let header = Header {
        kind,
        id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
        created: unix_now(),
        model: state.spec.model_name().to_owned(),
    };
    let answers: Vec<Answer> = seqs.iter().map(|s| s.answer).collect();
    let mut generation = Generation::new(state, seqs);
    if stream {
        let streamer = Streamer {
            generation,
            header,
            choices: answers.len(),
            include_usage,
            prompt_tokens,
            completion_tokens: 0,
            started: false,
            done: false,
        };
        let events = futures::stream::unfold(streamer, |mut s| async move {
            let bytes = s.step().await?;
            Some((Ok::<_, Infallible>(bytes), s))
        });
        return (
            [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
            Body::from_stream(events),
        )
            .into_response();
    }
    let mut texts = vec![String::new(); answers.len()];
    while let Some(Event { seq, text, .. }) = generation.next().await {
        texts[seq].push_str(&text);
    }
    let choices = answers
        .iter()
        .zip(texts)
        .enumerate()
        .map(|(index, (answer, text))| match kind {
            Kind::Chat => json!({
                "index": index,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": null,
                    "annotations": null,
                    "audio": null,
                    "function_call": null,
                    "tool_calls": [],
                    "reasoning_content": null,
                },
                "logprobs": null,
                "finish_reason": answer.finish.as_str(),
                "stop_reason": null,
            }),
            Kind::Completion => json!({
                "index": index,
                "text": text,
                "logprobs": null,
                "finish_reason": answer.finish.as_str(),
                "stop_reason": null,
                "prompt_logprobs": null,
            }),
        })
        .collect();
    let completion: u64 = answers.iter().map(|a| u64::from(a.tokens)).sum();
    let mut body = header.wrap(false, choices);
    let mut usage = usage(prompt_tokens, completion);
    usage["prompt_tokens_details"] = Value::Null;
    body["usage"] = usage;
    body["service_tier"] = Value::Null;
    body["system_fingerprint"] = Value::Null;
    body["kv_transfer_params"] = Value::Null;
    if kind == Kind::Chat {
        body["prompt_logprobs"] = Value::Null;
    }
    axum::Json(body).into_response()
}

/// A streamed answer, one server-sent event per token.
struct Streamer {
    generation: Generation,
    header: Header,
    choices: usize,
    include_usage: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Whether the first events (a chat's role) went out.
    started: bool,
    done: bool,
}

fn event(value: &Value) -> String {
    format!("data: {value}\n\n")
}

impl Streamer {
    /// A chunk with `choice`; `usage: null` on every one when the final
    /// chunk will carry the usage, as vLLM writes them.
    fn chunk(&self, choice: Value) -> Value {
        let mut chunk = self.header.wrap(true, vec![choice]);
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    /// The next events, as they fall due; `None` after `[DONE]`.
    async fn step(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut out = String::new();
        match self.generation.next().await {
            Some(Event { seq, text, finish }) => {
                if !self.started && self.header.kind == Kind::Chat {
                    for index in 0..self.choices {
                        out += &event(&self.chunk(json!({
                            "index": index,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": null,
                            "finish_reason": null,
                        })));
                    }
                }
                self.started = true;
                self.completion_tokens += 1;
                let mut choice = match self.header.kind {
                    Kind::Chat => json!({
                        "index": seq,
                        "delta": {"content": text},
                        "logprobs": null,
                        "finish_reason": null,
                    }),
                    Kind::Completion => json!({
                        "index": seq,
                        "text": text,
                        "logprobs": null,
                        "finish_reason": null,
                        "stop_reason": null,
                    }),
                };
                if let Some(finish) = finish {
                    choice["finish_reason"] = json!(finish.as_str());
                    choice["stop_reason"] = Value::Null;
                }
                out += &event(&self.chunk(choice));
            }
            None => {
                if self.include_usage {
                    let mut last = self.header.wrap(true, Vec::new());
                    last["usage"] = usage(self.prompt_tokens, self.completion_tokens);
                    out += &event(&last);
                }
                out += "data: [DONE]\n\n";
                self.done = true;
            }
        }
        Some(Bytes::from(out))
    }
}
