//! The inference gateway against sandbox clusters whose engine pods answer
//! OpenAI's API (the sandbox's simulated engines): a tenant's key calls
//! its deployment by name, plain and streamed; the usage chunk a client
//! did not ask for never reaches it, yet every answer's tokens are
//! counted; refusals are OpenAI's error shape; another tenant's model does
//! not exist; a replica that stops answering costs no request that had not
//! started. Each test runs on SQLite and, when
//! `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{TimeDelta, Utc};
use http_body_util::BodyExt;
use modelfleet_api::config::ApiSettings;
use modelfleet_api::gateway::Metering;
use modelfleet_api::identity::Scope;
use modelfleet_api::ids::{RequestId, TenantId};
use modelfleet_api::store::testing::TestDb;
use modelfleet_api::store::{TokenFilter, TokenRecord};
use serde_json::{Value, json};
use support::{Hub, eventually, l40s_hub, l40s_hub_with, test_settings};
use tower::ServiceExt;

/// A deployment of the 8B model, once a chat request gets an answer.
async fn ready(hub: &Hub, key: &str, name: &str, replicas: u32) {
    let reply = hub
        .post(
            "/api/v1/deployments",
            key,
            json!({"name": name, "model": "llama-3.1-8b", "replicas": replicas}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    // Before its replicas are Ready: 503, OpenAI's shape, a Retry-After.
    let early = chat(hub, key, name, "hello").await;
    if early.status == StatusCode::SERVICE_UNAVAILABLE {
        assert_eq!(
            early.body["error"]["type"], "server_error",
            "{:#}",
            early.body
        );
        assert!(early.headers.contains_key(header::RETRY_AFTER));
    }
    eventually("the deployment answers through the gateway", || async {
        (chat(hub, key, name, "hello").await.status == StatusCode::OK).then_some(())
    })
    .await;
}

async fn chat(hub: &Hub, key: &str, model: &str, prompt: &str) -> support::Reply {
    hub.post(
        "/v1/chat/completions",
        key,
        json!({"model": model, "messages": [{"role": "user", "content": prompt}]}),
    )
    .await
}

/// A streamed request's events, as the client reads them.
async fn stream(hub: &Hub, key: &str, body: Value) -> (StatusCode, Vec<String>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/completions")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = hub.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let events = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| e.trim().strip_prefix("data: ").unwrap_or(e).to_owned())
        .collect();
    (status, events)
}

/// The gateway's token counter for a tenant, from `/metrics`.
async fn counted_tokens(hub: &Hub, tenant: &str, kind: &str) -> u64 {
    let metrics = hub.call(Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap().to_owned();
    text.lines()
        .filter(|l| l.starts_with("modelfleet_hub_gateway_tokens_total{"))
        .filter(|l| l.contains(&format!("tenant=\"{tenant}\"")))
        .filter(|l| l.contains(&format!("kind=\"{kind}\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

async fn a_tenant_calls_its_deployment_plain_and_streamed(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    ready(&hub, &key, "assistant", 1).await;

    let models = hub.get("/v1/models", &key).await;
    assert_eq!(models.status, StatusCode::OK, "{:#}", models.body);
    assert_eq!(models.body["object"], "list");
    assert_eq!(models.body["data"][0]["id"], "assistant");
    assert_eq!(models.body["data"][0]["root"], "llama-3.1-8b");

    let prompt = "Tell me about the sea in three sentences.";
    let plain = chat(&hub, &key, "assistant", prompt).await;
    assert_eq!(plain.status, StatusCode::OK, "{:#}", plain.body);
    assert_eq!(plain.body["object"], "chat.completion");
    let text = plain.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert!(!text.is_empty());
    let usage = plain.body["usage"].clone();
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");

    // Streamed without asking for usage: chunks, then [DONE]; no usage
    // chunk, though the gateway asked the engine for one.
    let body = json!({"model": "assistant", "stream": true,
        "messages": [{"role": "user", "content": prompt}]});
    let (status, events) = stream(&hub, &key, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks.len() > 1, "{events:?}");
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "no usage-only chunk: {events:?}"
    );
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text, "the same deterministic answer");

    // Asking for it: the last chunk before [DONE] is the usage, equal to
    // the plain answer's.
    let mut asking = body;
    asking["stream_options"] = json!({"include_usage": true});
    let (_, events) = stream(&hub, &key, asking).await;
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"], json!([]), "{events:?}");
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(last["usage"][field], usage[field], "{field}");
    }

    // Every answer counted: three of the same prompt, and the readiness
    // probes' "hello"s before them.
    let prompts = counted_tokens(&hub, &tenant, "prompt").await;
    let completions = counted_tokens(&hub, &tenant, "completion").await;
    assert!(
        prompts >= 3 * usage["prompt_tokens"].as_u64().unwrap(),
        "{prompts}"
    );
    assert!(
        completions >= 3 * usage["completion_tokens"].as_u64().unwrap(),
        "{completions}"
    );

    let embedded = hub
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "assistant", "input": ["one", "two"]}),
        )
        .await;
    assert_eq!(embedded.status, StatusCode::OK, "{:#}", embedded.body);
    assert_eq!(embedded.body["data"].as_array().unwrap().len(), 2);
    let completed = hub
        .post(
            "/v1/completions",
            &key,
            json!({"model": "assistant", "prompt": "Once upon a time", "max_tokens": 5}),
        )
        .await;
    assert_eq!(completed.status, StatusCode::OK, "{:#}", completed.body);
    assert_eq!(completed.body["usage"]["completion_tokens"], 5);
}

async fn refusals_are_openai_errors_and_tenants_see_only_their_own(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (_, acme) = hub.tenant("acme", support::roomy()).await;
    let (_, globex) = hub.tenant("globex", support::roomy()).await;
    ready(&hub, &acme, "secret-model", 1).await;

    let error = |reply: &support::Reply, status: StatusCode, kind: &str| {
        assert_eq!(reply.status, status, "{:#}", reply.body);
        assert_eq!(reply.body["error"]["type"], kind, "{:#}", reply.body);
        assert!(reply.body["error"]["message"].as_str().is_some());
    };
    // Another tenant's deployment does not exist for globex.
    let theirs = chat(&hub, &globex, "secret-model", "hi").await;
    error(&theirs, StatusCode::NOT_FOUND, "invalid_request_error");
    assert_eq!(theirs.body["error"]["code"], "model_not_found");
    let listed = hub.get("/v1/models", &globex).await;
    assert_eq!(listed.body["data"], json!([]));
    // No key, a made-up key: 401 in OpenAI's shape.
    let none = hub
        .call(
            Method::POST,
            "/v1/chat/completions",
            None,
            Some(json!({"model": "secret-model", "messages": []})),
        )
        .await;
    error(&none, StatusCode::UNAUTHORIZED, "authentication_error");
    let made_up = chat(&hub, "mf_not-a-key", "secret-model", "hi").await;
    error(&made_up, StatusCode::UNAUTHORIZED, "authentication_error");
    // Bad bodies change nothing and say what was wrong.
    let not_json = hub
        .raw(Method::POST, "/v1/chat/completions", &acme, "{not json")
        .await;
    error(&not_json, StatusCode::BAD_REQUEST, "invalid_request_error");
    let no_model = hub
        .post("/v1/chat/completions", &acme, json!({"messages": []}))
        .await;
    error(&no_model, StatusCode::BAD_REQUEST, "invalid_request_error");
    assert_eq!(no_model.body["error"]["param"], "model");
    // Platform staff have no deployments to call.
    let staff = chat(&hub, &hub.admin, "secret-model", "hi").await;
    error(&staff, StatusCode::FORBIDDEN, "permission_error");
}

async fn a_stopped_replica_costs_no_request(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (_, key) = hub.tenant("acme", support::roomy()).await;
    ready(&hub, &key, "pair", 2).await;
    let sandbox = &hub.sandboxes[0];
    // Both replicas Ready, then one crashes: requests keep succeeding (a
    // refused connection is retried on the other replica before any byte
    // went to the client).
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(sandbox.kube.clone(), "mf-acme");
    eventually("two engines are Ready", || async {
        let listed = pods.list(&Default::default()).await.unwrap().items;
        let ready = listed
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == 2).then_some(())
    })
    .await;
    for i in 0..4 {
        let reply = chat(&hub, &key, "pair", &format!("warm {i}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    }
    let victim = pods.list(&Default::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    sandbox.nodes.fail_pod("mf-acme", &victim).unwrap();
    for i in 0..10 {
        let reply = chat(&hub, &key, "pair", &format!("after {i}")).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {:#}",
            reply.body
        );
    }
}

async fn keys_and_tenants_are_held_to_their_request_rates(db: TestDb) {
    let settings = ApiSettings {
        gateway_key_requests_per_minute: 3,
        gateway_tenant_requests_per_minute: 5,
        gateway_max_body_bytes: 4096,
        ..test_settings()
    };
    let hub = l40s_hub_with(db, settings).await;
    let (tenant, first) = hub.tenant("acme", support::roomy()).await;
    let (_, other_tenant) = hub.tenant("globex", support::roomy()).await;
    let second = hub
        .post(
            "/api/v1/api-keys",
            &hub.admin,
            json!({"name": "app", "role": "developer", "tenant": tenant}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{:#}", second.body);
    let second = second.body["token"].as_str().unwrap().to_owned();

    // Counted before anything is looked up: an unknown model is a 404
    // within the limit, a 429 past it.
    let call = |key: String| {
        let hub = &hub;
        async move { chat(hub, &key, "nothing", "hi").await }
    };
    for _ in 0..3 {
        assert_eq!(call(first.clone()).await.status, StatusCode::NOT_FOUND);
    }
    let limited = call(first.clone()).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:#}",
        limited.body
    );
    assert_eq!(limited.body["error"]["type"], "rate_limit_error");
    let wait: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "one more every 20 s: {wait}");
    // The tenant's other key has its own bucket, but the tenant's holds
    // five in all: two more, then 429.
    for _ in 0..2 {
        assert_eq!(call(second.clone()).await.status, StatusCode::NOT_FOUND);
    }
    let tenant_limited = call(second.clone()).await;
    assert_eq!(tenant_limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        tenant_limited.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("organisation"),
        "{:#}",
        tenant_limited.body
    );
    // Another tenant is not held back by acme's use.
    assert_eq!(
        call(other_tenant.clone()).await.status,
        StatusCode::NOT_FOUND
    );

    // A body over the gateway's limit: 413 in OpenAI's shape.
    let big =
        json!({"model": "nothing", "messages": [{"role": "user", "content": "x".repeat(8192)}]});
    let refused = hub.post("/v1/chat/completions", &other_tenant, big).await;
    assert_eq!(
        refused.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:#}",
        refused.body
    );
    assert_eq!(refused.body["error"]["type"], "invalid_request_error");
}

async fn a_deployment_takes_no_more_requests_than_its_replicas_can(db: TestDb) {
    let settings = ApiSettings {
        gateway_replica_concurrency: 1,
        ..test_settings()
    };
    let hub = l40s_hub_with(db, settings).await;
    let (_, key) = hub.tenant("acme", support::roomy()).await;
    ready(&hub, &key, "single", 1).await;
    // A streamed answer the client has not read yet holds the one place.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/completions")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"model": "single", "stream": true,
                "messages": [{"role": "user", "content": "a long story"}]})
            .to_string(),
        ))
        .unwrap();
    let held = hub.router.clone().oneshot(request).await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let refused = chat(&hub, &key, "single", "hi").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:#}",
        refused.body
    );
    assert_eq!(refused.body["error"]["type"], "rate_limit_error");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in flight"),
        "{:#}",
        refused.body
    );
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    // The client goes away: its place is free again.
    drop(held);
    let answered = chat(&hub, &key, "single", "hi").await;
    assert_eq!(answered.status, StatusCode::OK, "{:#}", answered.body);
}

/// The tenant's metered tokens in the store, once the gateway has written
/// what it took: `(requests, input, output)`.
async fn metered(hub: &Hub, tenant: &str) -> (u64, u64, u64) {
    hub.state.gateway().flush().await.unwrap();
    let totals = hub
        .store
        .token_totals(
            Scope::All,
            &TokenFilter {
                tenant: Some(tenant.parse().unwrap()),
                from: Utc::now() - TimeDelta::days(3650),
                to: Utc::now() + TimeDelta::days(3650),
                deployment: None,
                api_key: None,
            },
        )
        .await
        .unwrap();
    totals.iter().fold((0, 0, 0), |(r, i, o), t| {
        (r + t.requests, i + t.input_tokens, o + t.output_tokens)
    })
}

fn usage_of(body: &Value) -> (u64, u64) {
    (
        body["usage"]["prompt_tokens"].as_u64().unwrap(),
        body["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    )
}

async fn every_answer_is_metered_once_under_its_request_id(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    ready(&hub, &key, "assistant", 1).await;
    let (_, other_key) = hub.tenant("globex", support::roomy()).await;
    ready(&hub, &other_key, "assistant", 1).await;
    let before = metered(&hub, &tenant).await;

    let mut seen = (0, 0);
    let mut ids = std::collections::BTreeSet::new();
    let add = |seen: &mut (u64, u64), (i, o): (u64, u64)| {
        seen.0 += i;
        seen.1 += o;
    };
    for prompt in ["one", "two words", "and now three words"] {
        let reply = chat(&hub, &key, "assistant", prompt).await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        add(&mut seen, usage_of(&reply.body));
        let id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(ids.insert(id), "each request has its own id");
    }
    let embedded = hub
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "assistant", "input": ["one", "two"]}),
        )
        .await;
    assert_eq!(embedded.status, StatusCode::OK, "{:#}", embedded.body);
    add(&mut seen, usage_of(&embedded.body));
    // Streamed, asking for usage and not: both are metered, the second
    // from the usage chunk the client never saw (the same prompt, so the
    // same tokens).
    let body = json!({"model": "assistant", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "a streamed question"}]});
    let (_, events) = stream(&hub, &key, body.clone()).await;
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    let streamed = usage_of(&last);
    add(&mut seen, streamed);
    let mut quiet = body;
    quiet.as_object_mut().unwrap().remove("stream_options");
    let (status, _) = stream(&hub, &key, quiet).await;
    assert_eq!(status, StatusCode::OK);
    add(&mut seen, streamed);
    // A client that names its own request id, the same twice, is still
    // metered twice: the id the gateway meters under is its own, and is
    // the one the client is told.
    for _ in 0..2 {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/chat/completions")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", "chosen-by-the-client")
            .body(Body::from(
                json!({"model": "assistant", "messages": [{"role": "user", "content": "again"}]})
                    .to_string(),
            ))
            .unwrap();
        let reply = hub.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        add(&mut seen, usage_of(&reply.body));
        let id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, "chosen-by-the-client");
        assert!(ids.insert(id), "each request has its own id");
    }
    // Another tenant's calls are not this tenant's usage.
    let theirs = chat(&hub, &other_key, "assistant", "not yours").await;
    assert_eq!(theirs.status, StatusCode::OK);

    let after = metered(&hub, &tenant).await;
    assert_eq!(after.0 - before.0, 8, "eight requests");
    assert_eq!(
        (after.1 - before.1, after.2 - before.2),
        seen,
        "the tokens metered are the tokens the client was told"
    );
    // Writing again (what a replayed spool does) adds nothing.
    assert_eq!(metered(&hub, &tenant).await, after);

    // Each row keeps its timings: the two streamed answers a time to
    // first token and per output token, every answer its duration.
    let deployment = hub
        .store
        .deployment_by_name(Scope::All, tenant.parse().unwrap(), "assistant")
        .await
        .unwrap();
    let traffic = hub
        .store
        .deployment_traffic(
            Scope::All,
            deployment.id,
            Utc::now() - TimeDelta::hours(1),
            Utc::now() + TimeDelta::seconds(1),
        )
        .await
        .unwrap();
    assert_eq!(traffic.requests, after.0, "{traffic:?}");
    let ttft = traffic.ttft_ms.expect("streamed answers are timed");
    assert_eq!(ttft.samples, 2, "{traffic:?}");
    let tpot = traffic.tpot_ms.expect("streamed answers of several tokens");
    assert!(
        tpot.p50 > 0.0,
        "the simulated engine takes time per token: {traffic:?}"
    );
}

async fn a_spool_left_by_a_stopped_gateway_is_written_once(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    ready(&hub, &key, "assistant", 1).await;
    let tenant_id: TenantId = tenant.parse().unwrap();
    let deployment = hub
        .store
        .deployment_by_name(Scope::All, tenant_id, "assistant")
        .await
        .unwrap();
    let before = metered(&hub, &tenant).await;
    let dir = tempfile::tempdir().unwrap();
    let record = |n: u64| TokenRecord {
        request: RequestId::new(),
        tenant: tenant_id,
        deployment: deployment.id,
        api_key: None,
        model: deployment.model.clone(),
        cluster: deployment.cluster.clone(),
        operation: "chat".to_owned(),
        status: 200,
        input_tokens: n,
        output_tokens: 2 * n,
        at: Utc::now(),
        first_token_ms: None,
        duration_ms: None,
    };
    {
        // A gateway that took three requests and stopped without writing.
        let gone = Metering::new(hub.store.clone(), Some(dir.path())).unwrap();
        for n in 1..=3 {
            gone.record(record(n));
        }
        assert_eq!(gone.pending(), 3);
    }
    assert_eq!(metered(&hub, &tenant).await, before, "not written yet");
    // The next one writes them first, then its own.
    let next = Metering::new(hub.store.clone(), Some(dir.path())).unwrap();
    next.record(record(10));
    assert_eq!(next.flush().await.unwrap(), 4);
    let after = metered(&hub, &tenant).await;
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (4, 16, 32)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the (empty) current file is left"
    );
    // A batch written, whose removal was lost, is written again: no change.
    let replayed = record(100);
    next.record(replayed.clone());
    next.record(replayed);
    next.flush().await.unwrap();
    let again = metered(&hub, &tenant).await;
    assert_eq!(again.0 - after.0, 1, "one request id, one row");
    assert_eq!(again.1 - after.1, 100);
}

async fn inference_only_keys_call_models_and_nothing_else(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (_, admin) = hub.tenant("acme", support::roomy()).await;
    ready(&hub, &admin, "assistant", 1).await;
    let created = hub
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({"name": "chatbot", "role": "developer", "inferenceOnly": true}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    assert_eq!(created.body["key"]["inferenceOnly"], true);
    let app = created.body["token"].as_str().unwrap().to_owned();

    let answered = chat(&hub, &app, "assistant", "hello").await;
    assert_eq!(answered.status, StatusCode::OK, "{:#}", answered.body);
    assert_eq!(hub.get("/v1/models", &app).await.status, StatusCode::OK);
    // Nothing through /api/v1, though a developer could.
    for (method, path, body) in [
        (Method::GET, "/api/v1/deployments", None),
        (
            Method::POST,
            "/api/v1/deployments",
            Some(json!({"name": "more", "model": "llama-3.1-8b"})),
        ),
        (
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "another", "role": "developer"})),
        ),
    ] {
        let refused = hub.call(method.clone(), path, Some(&app), body).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {:#}",
            refused.body
        );
    }

    // A key whose role may not call models cannot be limited to them…
    let viewer_app = hub
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({"name": "looker", "role": "viewer", "inferenceOnly": true}),
        )
        .await;
    assert!(viewer_app.status.is_client_error(), "{:#}", viewer_app.body);
    assert!(
        viewer_app
            .body
            .to_string()
            .contains("tenant-admin or developer"),
        "{:#}",
        viewer_app.body
    );
    // …and a viewer's key reads, but does not spend on models.
    let viewer = hub
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({"name": "looker", "role": "viewer"}),
        )
        .await;
    assert_eq!(viewer.status, StatusCode::CREATED, "{:#}", viewer.body);
    let viewer = viewer.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        hub.get("/api/v1/deployments", &viewer).await.status,
        StatusCode::OK
    );
    let refused = chat(&hub, &viewer, "assistant", "hello").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:#}", refused.body);
    assert_eq!(refused.body["error"]["type"], "permission_error");
}

async fn a_key_is_held_to_its_tokens_per_minute(db: TestDb) {
    let settings = ApiSettings {
        gateway_key_tokens_per_minute: 60,
        ..test_settings()
    };
    let hub = l40s_hub_with(db, settings).await;
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    ready(&hub, &key, "assistant", 1).await;
    // The readiness probes' tokens may have spent the minute already; a
    // fresh key starts with a full one.
    let fresh = hub
        .post(
            "/api/v1/api-keys",
            &hub.admin,
            json!({"name": "app", "role": "developer", "tenant": tenant}),
        )
        .await;
    let fresh = fresh.body["token"].as_str().unwrap().to_owned();
    let mut used = 0;
    let limited = loop {
        let reply = chat(&hub, &fresh, "assistant", "tell me a long story please").await;
        if reply.status != StatusCode::OK {
            break reply;
        }
        used += reply.body["usage"]["total_tokens"].as_u64().unwrap();
        assert!(used < 200, "still answering after {used} tokens");
    };
    assert!(
        used >= 60,
        "held back only once the minute's tokens are spent: {used}"
    );
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:#}",
        limited.body
    );
    assert!(
        limited.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens per minute"),
        "{:#}",
        limited.body
    );
    let wait: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=200).contains(&wait), "{wait}");
    // Another key of the tenant has its own minute.
    let other = hub
        .post(
            "/api/v1/api-keys",
            &hub.admin,
            json!({"name": "other", "role": "developer", "tenant": tenant}),
        )
        .await;
    let other = other.body["token"].as_str().unwrap().to_owned();
    let other = chat(&hub, &other, "assistant", "hi").await;
    assert_eq!(other.status, StatusCode::OK, "{:#}", other.body);
}

/// The gateway keeps keys and deployments it read moments ago; a key
/// revoked through the hub stops working at once all the same, and a
/// deleted deployment is soon unknown.
async fn a_revoked_key_and_a_deleted_deployment_stop_answering(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (_, admin) = hub.tenant("acme", support::roomy()).await;
    ready(&hub, &admin, "assistant", 1).await;
    let created = hub
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({"name": "app", "role": "developer"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let app = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["key"]["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let answered = chat(&hub, &app, "assistant", "hello").await;
        assert_eq!(answered.status, StatusCode::OK, "{:#}", answered.body);
    }
    let revoked = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:#}", revoked.body);
    let refused = chat(&hub, &app, "assistant", "hello").await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:#}",
        refused.body
    );
    assert_eq!(refused.body["error"]["code"], "invalid_api_key");
    // The tenant's other key still works.
    assert_eq!(
        chat(&hub, &admin, "assistant", "hello").await.status,
        StatusCode::OK
    );

    let listed = hub.get("/api/v1/deployments", &admin).await;
    let deployment = listed.body["items"][0]["id"].as_str().unwrap().to_owned();
    let deleted = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/deployments/{deployment}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(deleted.status.is_success(), "{:#}", deleted.body);
    eventually(
        "the deleted deployment is unknown to the gateway",
        || async {
            let gone = chat(&hub, &admin, "assistant", "hello").await;
            (gone.status == StatusCode::NOT_FOUND
                && gone.body["error"]["code"] == "model_not_found")
                .then_some(())
        },
    )
    .await;
}

modelfleet_api::store_tests!(
    a_revoked_key_and_a_deleted_deployment_stop_answering,
    a_key_is_held_to_its_tokens_per_minute,
    inference_only_keys_call_models_and_nothing_else,
    every_answer_is_metered_once_under_its_request_id,
    a_spool_left_by_a_stopped_gateway_is_written_once,
    a_deployment_takes_no_more_requests_than_its_replicas_can,
    keys_and_tenants_are_held_to_their_request_rates,
    a_tenant_calls_its_deployment_plain_and_streamed,
    refusals_are_openai_errors_and_tenants_see_only_their_own,
    a_stopped_replica_costs_no_request,
);
