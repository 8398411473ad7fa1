//! An engine pod of the sandbox answers vLLM's OpenAI-compatible API at
//! the address its pod resolves to: the shapes the `openai` client reads,
//! usage that adds up whether streamed or not, vLLM's errors, and its
//! API key.

mod cluster_support;
mod engine_support;

use base64::Engine as _;
use serde_json::{Value, json};

use cluster_support::sandbox;
use engine_support::*;

fn parse(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_pod_answers_the_openai_api_as_vllm_does() {
    let sandbox = sandbox().await;
    create_key_secret(&sandbox.client).await;
    let (_, base) = ready_engine(&sandbox, &engine_pod("llama-0", "p5-h100-1", &[], true)).await;
    let client = http();

    // Probes and scrapes need no key; the API does.
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    for key in [None, Some("wrong")] {
        let mut request = client.get(format!("{base}/v1/models"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(
            refused.json::<Value>().await.unwrap(),
            json!({"error": "Unauthorized"})
        );
    }
    let unkeyed = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat("hi", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(unkeyed.status(), 401);

    let models: Value = client
        .get(format!("{base}/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let card = &models["data"][0];
    assert_eq!(card["id"], MODEL);
    assert_eq!(card["object"], "model");
    assert_eq!(card["owned_by"], "vllm");
    assert_eq!(card["max_model_len"], 4096);
    assert_eq!(card["root"], format!("/models/{MODEL}"));

    // A chat: vLLM's shape, deterministic, usage that follows the prompt.
    let request = chat("Tell me about the sandbox.", json!({}));
    let answer: Value = post(&base, "/v1/chat/completions", &request)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        answer["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{answer}"
    );
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], MODEL);
    assert!(answer["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &answer["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap().to_owned();
    assert!(!content.is_empty());
    let usage = answer["usage"].clone();
    // BOS, one message (4 + 26 bytes / 4, rounded up), the assistant header.
    assert_eq!(usage["prompt_tokens"], 1 + 4 + 7 + 4);
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((16..=64).contains(&completion), "{usage}");
    assert_eq!(usage["total_tokens"], 16 + completion);
    let again: Value = post(&base, "/v1/chat/completions", &request)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["choices"][0]["message"]["content"], content.as_str());
    let longer = chat(&"Tell me about the sandbox. ".repeat(40), json!({}));
    let more: Value = post(&base, "/v1/chat/completions", &longer)
        .await
        .json()
        .await
        .unwrap();
    assert!(more["usage"]["prompt_tokens"].as_u64() > usage["prompt_tokens"].as_u64());

    // Streamed with usage: the role first, the words, the usage, [DONE];
    // the same words and the same usage as unstreamed.
    let streamed = json!({"stream": true, "stream_options": {"include_usage": true}});
    let response = post(
        &base,
        "/v1/chat/completions",
        &chat("Tell me about the sandbox.", streamed),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        response.headers()
    );
    let events = Events::new(response).all().await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| parse(e))
        .collect();
    let first = &chunks[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let (last, words) = chunks[1..].split_last().unwrap();
    assert_eq!(last["choices"], json!([]));
    for count in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(last["usage"][count], usage[count], "{count}");
    }
    assert_eq!(words.len() as u64, completion, "one chunk per token");
    let text: String = words
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, content);
    for chunk in &chunks[..chunks.len() - 1] {
        assert_eq!(chunk["usage"], Value::Null, "{chunk}");
        assert_eq!(chunk["id"], first["id"]);
    }
    assert_eq!(words.last().unwrap()["choices"][0]["finish_reason"], "stop");
    assert!(
        words[..words.len() - 1]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );

    // max_tokens cuts the answer.
    let cut: Value = post(
        &base,
        "/v1/chat/completions",
        &chat("Tell me about the sandbox.", json!({"max_tokens": 5})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(cut["choices"][0]["finish_reason"], "length");
    assert_eq!(cut["usage"]["completion_tokens"], 5);
    assert!(content.starts_with(cut["choices"][0]["message"]["content"].as_str().unwrap()));

    // Completions, and embeddings as floats and as the openai client's base64.
    let completion: Value = post(
        &base,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "Once upon"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(completion["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(completion["object"], "text_completion");
    assert_eq!(completion["usage"]["prompt_tokens"], 1 + 3);
    assert_eq!(
        completion["usage"]["completion_tokens"], 16,
        "completions default to 16 tokens"
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
    let streamed = post(
        &base,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "Once upon", "stream": true}),
    )
    .await;
    let events = Events::new(streamed).all().await;
    assert_eq!(events.len(), 16 + 1, "a chunk per token, then [DONE]");
    assert_eq!(parse(&events[0])["object"], "text_completion");
    let text: String = events[..16]
        .iter()
        .map(|e| parse(e)["choices"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, completion["choices"][0]["text"].as_str().unwrap());
    for format in ["float", "base64"] {
        let embedded: Value = post(
            &base,
            "/v1/embeddings",
            &json!({"model": MODEL, "input": ["a cat", "a dog"], "encoding_format": format}),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(embedded["object"], "list");
        assert_eq!(embedded["data"][1]["index"], 1);
        assert_eq!(embedded["usage"]["prompt_tokens"], 2 * (1 + 2));
        let vector: Vec<f32> = match format {
            "float" => serde_json::from_value(embedded["data"][0]["embedding"].clone()).unwrap(),
            _ => base64::engine::general_purpose::STANDARD
                .decode(embedded["data"][0]["embedding"].as_str().unwrap())
                .unwrap()
                .chunks(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        };
        let norm: f32 = vector.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_refuses_what_vllm_refuses_in_its_words() {
    let sandbox = sandbox().await;
    let (_, base) = ready_engine(&sandbox, &engine_pod("llama-0", "p5-h100-1", &[], false)).await;
    let error = |status: u16, kind: &str, body: Value| {
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert_eq!(body["error"]["code"], status, "{body}");
        assert!(body["error"]["param"].is_null());
        body["error"]["message"].as_str().unwrap().to_owned()
    };

    // Without a key the engine answers anyone, as vLLM without one does.
    let other = json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]});
    let refused = post(&base, "/v1/chat/completions", &other).await;
    assert_eq!(refused.status(), 404);
    let message = error(404, "NotFoundError", refused.json().await.unwrap());
    assert_eq!(message, "The model `gpt-4` does not exist.");

    // 4096 tokens of context: a prompt of 5000 tokens does not fit.
    let long = chat(&"abcd".repeat(5000), json!({}));
    let refused = post(&base, "/v1/chat/completions", &long).await;
    assert_eq!(refused.status(), 400);
    let message = error(400, "BadRequestError", refused.json().await.unwrap());
    assert!(
        message.contains("This model's maximum context length is 4096 tokens"),
        "{message}"
    );
    assert!(message.contains("5009 input tokens"), "{message}");
    // Nor does a short prompt asking for more than is left.
    let greedy = chat("hi", json!({"max_tokens": 4090}));
    let refused = post(&base, "/v1/chat/completions", &greedy).await;
    assert_eq!(refused.status(), 400);
    let message = error(400, "BadRequestError", refused.json().await.unwrap());
    assert!(
        message.contains("'max_tokens' or 'max_completion_tokens' is too large: 4090"),
        "{message}"
    );
    assert!(
        message.contains("maximum context length is 4096 tokens"),
        "{message}"
    );

    let malformed = http()
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    error(400, "BadRequestError", malformed.json().await.unwrap());
    let no_messages = post(&base, "/v1/chat/completions", &json!({"model": MODEL})).await;
    assert_eq!(no_messages.status(), 400);
    let zero = post(
        &base,
        "/v1/chat/completions",
        &chat("hi", json!({"max_tokens": 0})),
    )
    .await;
    assert_eq!(zero.status(), 400);
    let missing = http()
        .get(format!("{base}/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
