//! "Try it" and the traffic figures on a deployment's page, against a
//! sandbox cluster whose Ready replica is the simulated engine (which
//! answers deterministically): a developer's message streams back through
//! the gateway chunk by chunk; viewers are not offered the box and are
//! refused; a post without the CSRF token, an empty message and an
//! over-long one are refused with a clear error and reach no model; and the
//! figures count the call.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use modelfleet_api::Role;
use serde_json::{Value, json};
use support::hub::{eventually, l40s_hub, roomy};
use support::{Browser, Hub, on_sqlite, user};
use tower::ServiceExt;

/// An answer read frame by frame, as a browser's `ReadableStream` sees it.
struct Streamed {
    status: StatusCode,
    content_type: String,
    frames: Vec<Vec<u8>>,
}

impl Streamed {
    fn text(&self) -> String {
        String::from_utf8(self.frames.concat()).unwrap()
    }

    /// The `data:` payloads of its server-sent events.
    fn events(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| e.trim().strip_prefix("data: ").unwrap_or(e).to_owned())
            .collect()
    }

    fn error_message(&self) -> String {
        let body: Value = serde_json::from_str(&self.text()).unwrap();
        body["error"]["message"].as_str().unwrap().to_owned()
    }
}

/// Posts the form as the page's script does, with `browser`'s cookies,
/// and reads the answer one frame at a time.
async fn post_streamed(
    hub: &Hub,
    browser: &Browser,
    path: &str,
    fields: &[(&str, &str)],
) -> Streamed {
    let cookies = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::from(serde_urlencoded::to_string(fields).unwrap()))
        .unwrap();
    let response = support::app(&hub.state).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames.push(data.to_vec());
        }
    }
    Streamed {
        status,
        content_type,
        frames,
    }
}

/// Sends `message` from `browser`'s page with the page's CSRF token.
async fn try_message(hub: &Hub, browser: &Browser, id: &str, message: &str) -> Streamed {
    let csrf = browser.cookies["mf_csrf"].clone();
    post_streamed(
        hub,
        browser,
        &format!("/deployments/{id}/try"),
        &[("csrf", &csrf), ("message", message)],
    )
    .await
}

/// A tenant with a developer and a viewer signed in, and a Ready
/// deployment of the 8B model named `assistant` (its devices `priced` or
/// not): its id and the tenant admin's API key.
async fn ready_deployment(hub: &Hub, priced: bool) -> (String, String, Browser, Browser) {
    if priced {
        // The pool's device-hours, from now on (prices never apply to the
        // past); without it, device time cannot be rated.
        let price = hub
            .post(
                "/api/v1/prices",
                &hub.admin,
                json!({"cloud": "aws", "region": "us-east-1", "accelerator": "l40s",
                    "pricePerDeviceHour": "1.80 USD"}),
            )
            .await;
        assert!(price.status.is_success(), "{:#}", price.body);
    }
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    let tenant = tenant.parse().unwrap();
    user(hub, Some(tenant), "dev", Role::Developer).await;
    user(hub, Some(tenant), "vic", Role::Viewer).await;
    let reply = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "assistant", "model": "llama-3.1-8b", "replicas": 1}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    let id = reply.body["deployment"]["id"].as_str().unwrap().to_owned();
    let mut developer = Browser::new(hub);
    developer.sign_in("dev").await;
    let mut viewer = Browser::new(hub);
    viewer.sign_in("vic").await;
    // Ready as the page shows it (cluster sync), one replica answering.
    let path = format!("/deployments/{id}");
    eventually("the deployment's page says Ready", || {
        let mut developer = developer.clone();
        let path = path.clone();
        async move {
            let page = developer.get(&path).await;
            (page.one("#phase") == "Ready" && page.one("#ready-replicas") == "1").then_some(())
        }
    })
    .await;
    (id, key, developer, viewer)
}

#[tokio::test]
async fn a_developer_tries_a_deployment_and_its_answer_streams_back() {
    on_sqlite(|db| async move {
        let hub = l40s_hub(db).await;
        let background = hub.background();
        let (id, key, mut developer, mut viewer) = ready_deployment(&hub, true).await;

        // The developer's page offers the box, with its script (no inline
        // script) and the form's token; the text says it is billed.
        let page = developer.get(&format!("/deployments/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.has("#try-form textarea#try-message"),
            "{}",
            page.text()
        );
        assert_eq!(
            page.attrs("#try-form", "action"),
            [format!("/deployments/{id}/try")]
        );
        assert_eq!(
            page.attrs("#try-form input[name=csrf]", "value"),
            [developer.cookies["mf_csrf"].clone()]
        );
        assert!(
            page.one("#try-billed").contains("billed"),
            "{}",
            page.text()
        );
        assert!(
            page.attrs("script", "src")
                .contains(&"/static/try.js".to_owned()),
            "{:?}",
            page.attrs("script", "src")
        );
        assert!(page.texts("script").iter().all(String::is_empty));
        let script = developer.get("/static/try.js").await;
        assert_eq!(script.status, StatusCode::OK);
        assert_eq!(
            script.headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(script.text().contains("textContent") && !script.text().contains("innerHTML"));

        // The message streams back: many frames, each whole events, the
        // chat's chunks, its usage, then [DONE].
        // The figures, before any call: nothing in the window.
        assert!(page.has("#traffic[hx-get]"), "{}", page.text());
        let figures = developer.get(&format!("/deployments/{id}/traffic")).await;
        assert_eq!(figures.status, StatusCode::OK, "{}", figures.text());
        assert_eq!(figures.one("#traffic-requests"), "0");
        assert_eq!(figures.one("#traffic-rps"), "0");
        assert_eq!(figures.one("#traffic-cost"), "No traffic");
        assert_eq!(figures.one("#traffic-ttft"), "No streamed answers");

        let prompt = "Tell me about the sea in three sentences.";
        let answer = try_message(&hub, &developer, &id, prompt).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert!(
            answer.content_type.starts_with("text/event-stream"),
            "{}",
            answer.content_type
        );
        assert!(
            answer.frames.len() > 2,
            "the answer came in {} frames: buffered, not streamed",
            answer.frames.len()
        );
        let events = answer.events();
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let streamed: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(!streamed.is_empty(), "{events:?}");
        let usage = &chunks.last().unwrap()["usage"];
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{events:?}");
        assert!(
            usage["completion_tokens"].as_u64().unwrap() > 0,
            "{events:?}"
        );

        // The figures count it once the gateway has metered it: one
        // request, its tokens, its time to first token and per token, and
        // (billed by device time) the window's device cost per million.
        hub.state.gateway().flush().await.unwrap();
        let figures = developer.get(&format!("/deployments/{id}/traffic")).await;
        assert_eq!(figures.one("#traffic-requests"), "1", "{}", figures.text());
        assert_eq!(figures.one("#traffic-errors"), "0");
        assert_eq!(figures.one("#traffic-rps"), "0.0011");
        assert_eq!(
            figures.one("#traffic-input-tokens"),
            usage["prompt_tokens"].to_string()
        );
        assert_eq!(
            figures.one("#traffic-output-tokens"),
            usage["completion_tokens"].to_string()
        );
        for (css, what) in [("#traffic-ttft", "TTFT"), ("#traffic-tpot", "TPOT")] {
            let shown = figures.one(css);
            assert!(
                shown.ends_with("ms (1 streamed answers)") && shown.matches(" / ").count() == 2,
                "{what}: {shown}"
            );
        }
        // Device time is rated by the second: once a second of the
        // replica's has passed in the window, it costs something.
        let cost = eventually("the window's device time costs something", || {
            let mut developer = developer.clone();
            let path = format!("/deployments/{id}/traffic");
            async move {
                let figures = developer.get(&path).await;
                let cost = figures.one("#traffic-cost [data-billed=time]");
                assert!(cost.ends_with(" USD per 1M tokens"), "{cost}");
                (!cost.starts_with("0.00 ")).then_some(figures.one("#traffic-cost"))
            }
        })
        .await;
        println!("cost per million tokens: {cost}");

        // It is the deployment's own answer: the same prompt through the
        // API with a key gets the same deterministic text.
        let plain = hub
            .post(
                "/v1/chat/completions",
                &key,
                json!({"model": "assistant", "messages": [{"role": "user", "content": prompt}]}),
            )
            .await;
        assert_eq!(plain.status, StatusCode::OK, "{:#}", plain.body);
        assert_eq!(
            plain.body["choices"][0]["message"]["content"],
            streamed.as_str()
        );

        // A viewer is not offered the box, and is refused if they post.
        let page = viewer.get(&format!("/deployments/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.has("#try-form"), "{}", page.text());
        assert!(
            !page
                .attrs("script", "src")
                .contains(&"/static/try.js".to_owned())
        );
        let refused = try_message(&hub, &viewer, &id, "hello").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
        assert!(refused.error_message().contains("may not call models"));

        // They see the figures: the try and the API call, not the refusal.
        hub.state.gateway().flush().await.unwrap();
        let figures = viewer.get(&format!("/deployments/{id}/traffic")).await;
        assert_eq!(figures.one("#traffic-requests"), "2", "{}", figures.text());

        background.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_tries_are_refused_with_a_clear_error_and_reach_no_model() {
    on_sqlite(|db| async move {
        let hub = l40s_hub(db).await;
        let background = hub.background();
        let (id, _key, mut developer, _viewer) = ready_deployment(&hub, false).await;
        let path = format!("/deployments/{id}/try");
        let answered_before = counted_requests(&hub).await;

        // No token, or another one: refused before anything runs.
        for fields in [
            vec![("message", "hello")],
            vec![
                ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                ("message", "hello"),
            ],
        ] {
            let page = developer.post_raw(&path, &fields).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
            assert!(page.text().contains("out of date"), "{}", page.text());
        }

        // Empty (or only blanks), and too long: a clear error, in OpenAI's
        // shape the page's script shows.
        for message in ["", "  \n\t "] {
            let refused = try_message(&hub, &developer, &id, message).await;
            assert_eq!(
                refused.status,
                StatusCode::BAD_REQUEST,
                "{}",
                refused.text()
            );
            assert_eq!(
                refused.error_message(),
                "Write a message first: an empty message is not sent."
            );
        }
        let long = "word ".repeat(1000);
        let refused = try_message(&hub, &developer, &id, &long).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{}",
            refused.text()
        );
        let message = refused.error_message();
        assert!(
            message.contains("too long") && message.ends_with("4999 / 4000"),
            "{message}"
        );

        // In Chinese for a Chinese page.
        developer.cookies.insert("mf_lang".into(), "zh".into());
        let refused = try_message(&hub, &developer, &id, "").await;
        assert_eq!(refused.error_message(), "请先输入消息：空消息不会发送。");
        let page = developer.get(&format!("/deployments/{id}")).await;
        assert_eq!(page.one("#try h2"), "试用");

        // Another tenant's deployment, or none at all: not found.
        let refused = try_message(
            &hub,
            &developer,
            "7d0c7c62-44d4-4a0e-9e54-1f6fb3a1e6a2",
            "hi",
        )
        .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text());
        // A developer of another tenant, signed in with their own session
        // and CSRF token, neither calls this deployment nor reads its
        // figures.
        let (globex, _) = hub.tenant("globex", roomy()).await;
        user(&hub, Some(globex.parse().unwrap()), "gina", Role::Developer).await;
        let mut outsider = Browser::new(&hub);
        outsider.sign_in("gina").await;
        let refused = try_message(&hub, &outsider, &id, "hi").await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text());
        let figures = outsider.get(&format!("/deployments/{id}/traffic")).await;
        assert_eq!(figures.status, StatusCode::NOT_FOUND, "{}", figures.text());

        // Its device time has no price: the figures say so, and still count.
        let figures = developer.get(&format!("/deployments/{id}/traffic")).await;
        assert_eq!(figures.status, StatusCode::OK, "{}", figures.text());
        assert_eq!(figures.one("#traffic-requests"), "0");
        let cost = figures.one("#traffic-cost [data-billed=unpriced]");
        assert!(cost.contains("no price for aws/us-east-1/l40s"), "{cost}");

        // None of these reached the gateway's engines.
        hub.state.gateway().flush().await.unwrap();
        assert_eq!(counted_requests(&hub).await, answered_before);
        background.stop().await;
    })
    .await;
}

/// Answered gateway requests, from the hub's `/metrics`.
async fn counted_requests(hub: &Hub) -> u64 {
    let metrics = hub.call(Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap().to_owned();
    text.lines()
        .filter(|l| l.starts_with("modelfleet_hub_gateway_requests_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}
