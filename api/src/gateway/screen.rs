//! The input screen (issue 20, part 7): before a request goes to a model,
//! its prompt text is held to the tenant's screen — a largest size, deny
//! patterns, and an external classifier — and refused with 400
//! `input_refused` and an audit record when a rule says so.
//!
//! The prompt text is every string an engine reads as input: each chat
//! message's `content` (a string, or the `text` of its text parts),
//! `prompt` and `suffix` (completions) and `input` (embeddings), a string
//! or a list of strings. A prompt given as token ids cannot be read, so a
//! tenant with any rule set gets such a request refused (rule
//! `token-ids`).
//!
//! What an attacker could do with each part, and what stops it:
//! - **Slow patterns**: patterns are the `regex` crate's (no
//!   backtracking: time linear in the prompt), bounded in number, length
//!   and compiled size when they are set (`store::input_screen`).
//! - **The database on every request**: a tenant's screen is read at most
//!   once per [`SCREEN_FOR`] per hub process and kept compiled.
//! - **The classifier URL**: http(s) to public addresses only, as budget
//!   webhooks (unless `--webhook-allow-private-addresses`): a literal
//!   address is checked before each post, a name is resolved by
//!   [`PublicOnly`] which refuses it if any address is not public (and the
//!   connection uses those addresses); no proxy, no redirect, at most
//!   [`CLASSIFIER_TIMEOUT`] and [`MAX_CLASSIFIER_ANSWER`] bytes of answer.
//! - **Posts in the hub's name**: each post is signed as budget webhooks'
//!   deliveries are (`Modelfleet-Signature`, [`webhook::sign`]) with the
//!   tenant's secret, so a classifier can refuse posts that are not the
//!   hub's. The secret is opened when the screen is read, kept in the
//!   cached screen as a [`Secret`] (never printed), and never logged. A
//!   classifier set before secrets were required is posted to unsigned
//!   (the API shows `classifierSigned: false`); one whose secret this hub
//!   cannot open is not posted to at all (no judgement).
//! - **The audit trail flooded by refusals**: each tenant's refusals are
//!   recorded one by one up to [`AUDIT_BURST`], then one every
//!   [`AUDIT_REFILL`]; the refusals in between are counted, and the next
//!   record says how many (`modelfleet.io/refusals-not-recorded`).
//! - **Prompts in the trail**: only when the tenant opted in
//!   (`storePrompts`), and at most [`MAX_STORED_PROMPT`] bytes of it; the
//!   error the client sees names the rule, never the prompt or a pattern.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use regex::RegexSet;
use reqwest::Url;
use tracing::warn;

use super::{Gateway, OpenAiError, Operation};
use crate::billing::webhook;
use crate::http::AppState;
use crate::ids::TenantId;
use crate::net::is_public;
use crate::secret::Secret;
use crate::service::Caller;
use crate::service::throttle::{Limit, Limiter, MAX_KEYS};
use crate::store::{AuditEntry, InputScreen, deny_set};

/// How long a tenant's screen, once read, is used before it is read
/// again (a change made through this hub applies at once).
pub const SCREEN_FOR: Duration = Duration::from_secs(5);
/// How long the last reading serves when the database cannot be read.
const STALE_SCREEN_FOR: Duration = Duration::from_secs(60);
/// The whole classifier call: connecting, posting, the answer.
pub const CLASSIFIER_TIMEOUT: Duration = Duration::from_secs(2);
/// The most bytes of a classifier's answer read.
const MAX_CLASSIFIER_ANSWER: usize = 64 << 10;
/// Refusals of one tenant recorded one by one before the rest are counted.
pub const AUDIT_BURST: u32 = 20;
/// Then one refusal record per tenant this often.
pub const AUDIT_REFILL: Duration = Duration::from_secs(3);
/// The most bytes of a prompt an audit record holds (when the tenant
/// opted in).
pub const MAX_STORED_PROMPT: usize = 2048;
/// What the classifier's posts call themselves.
const USER_AGENT: &str = concat!("modelfleet-input-screen/", env!("CARGO_PKG_VERSION"));

/// A tenant's screen, ready to run.
struct Compiled {
    screen: InputScreen,
    deny: Option<RegexSet>,
    classifier: Option<Url>,
    signing: Signing,
}

/// How posts to a tenant's classifier are signed.
enum Signing {
    /// No secret is stored: no classifier, or one set before secrets were
    /// required.
    Unsigned,
    Key(Secret),
    /// A secret is stored that this hub cannot open (a key it lacks): the
    /// classifier is not posted to, rather than posted to unsigned.
    Unopenable,
}

/// The screens this process knows, the classifier clients, and the audit
/// budget of refusals.
pub(super) struct Screens {
    cached: Mutex<HashMap<TenantId, (Instant, Arc<Compiled>)>>,
    /// Refuses non-public addresses.
    public_client: OnceLock<reqwest::Client>,
    /// For `--webhook-allow-private-addresses`.
    any_client: OnceLock<reqwest::Client>,
    audits: Limiter<TenantId>,
    not_recorded: Mutex<HashMap<TenantId, u64>>,
}

impl Default for Screens {
    fn default() -> Self {
        Screens {
            cached: Mutex::default(),
            public_client: OnceLock::new(),
            any_client: OnceLock::new(),
            audits: Limiter::new(
                Limit {
                    burst: AUDIT_BURST,
                    refill: AUDIT_REFILL,
                },
                MAX_KEYS,
            ),
            not_recorded: Mutex::default(),
        }
    }
}

impl Gateway {
    /// Reads `tenant`'s screen anew at its next request: it was just set
    /// through this hub.
    pub fn forget_screen(&self, tenant: TenantId) {
        self.screens
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&tenant);
    }
}

/// Why a request was refused: the rule (a bounded label) and what the
/// client and the audit record are told.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    rule: &'static str,
    /// For the client: names the rule, never the prompt or a pattern.
    message: String,
    /// For the audit record: may name the pattern or the classifier's
    /// reason.
    detail: String,
    /// 503 when the classifier did not answer and the screen fails closed.
    unavailable: bool,
}

/// Holds `request` (an inference request of `caller` for `tenant`) to the
/// tenant's input screen.
pub(super) async fn check(
    state: &AppState,
    caller: &Caller,
    tenant: TenantId,
    operation: Operation,
    request: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), OpenAiError> {
    let screens = &state.gateway().screens;
    let compiled = screens.screen(state, tenant).await?;
    if !compiled.screen.screens() {
        return Ok(());
    }
    let Some(refusal) = judge(state, screens, &compiled, tenant, operation, request).await else {
        return Ok(());
    };
    let texts = prompt_texts(request).unwrap_or_default();
    record(
        state, screens, caller, &compiled, operation, request, &refusal, &texts,
    )
    .await;
    let param = match operation {
        Operation::Chat => "messages",
        Operation::Completion => "prompt",
        Operation::Embedding => "input",
    };
    Err(if refusal.unavailable {
        OpenAiError::screen_unavailable(refusal.message)
    } else {
        OpenAiError::input_refused(param, refusal.message)
    })
}

/// The first rule that refuses the request, if any: token ids, size,
/// patterns, then the classifier (the only one that leaves the hub).
async fn judge(
    state: &AppState,
    screens: &Screens,
    compiled: &Compiled,
    tenant: TenantId,
    operation: Operation,
    request: &serde_json::Map<String, serde_json::Value>,
) -> Option<Refusal> {
    let refuse = |rule, message: String, detail: String| Refusal {
        rule,
        message,
        detail,
        unavailable: false,
    };
    let Some(texts) = prompt_texts(request) else {
        return Some(refuse(
            "token-ids",
            "your organisation screens prompts, and a prompt given as token ids cannot be \
             screened; send it as text"
                .to_owned(),
            "the prompt was given as token ids".to_owned(),
        ));
    };
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    if let Some(max) = compiled.screen.max_prompt_bytes
        && bytes as u64 > max
    {
        return Some(refuse(
            "prompt-size",
            format!(
                "the prompt is {bytes} bytes; your organisation's input screen takes at most \
                 {max}: shorten it"
            ),
            format!("the prompt is {bytes} bytes, more than {max}"),
        ));
    }
    if let Some(deny) = &compiled.deny
        && let Some(i) = texts.iter().find_map(|t| deny.matches(t).iter().next())
    {
        let n = i + 1;
        return Some(refuse(
            "deny-pattern",
            format!("the prompt matches deny pattern {n} of your organisation's input screen"),
            format!(
                "the prompt matches deny pattern {n}: {}",
                compiled
                    .screen
                    .deny_patterns
                    .get(i)
                    .map_or("", String::as_str)
            ),
        ));
    }
    let url = compiled.classifier.as_ref()?;
    let post = Post {
        url,
        signing: &compiled.signing,
        tenant,
        operation,
    };
    match classify(state, screens, &post, request, &texts).await {
        Ok(Verdict::Allowed) => None,
        Ok(Verdict::Flagged(reason)) => Some(refuse(
            "classifier",
            "your organisation's input classifier refused the prompt".to_owned(),
            match reason {
                Some(reason) => format!("the classifier flagged the prompt: {reason}"),
                None => "the classifier flagged the prompt".to_owned(),
            },
        )),
        Err(why) if compiled.screen.classifier_fail_open => {
            warn!(%tenant, classifier = %webhook::masked(url.as_str()), reason = %why,
                "the input classifier did not answer; letting the request through (fail open)");
            None
        }
        Err(why) => Some(Refusal {
            rule: "classifier-unavailable",
            message: format!(
                "your organisation's input classifier did not answer ({why}); retry shortly"
            ),
            detail: format!("the classifier did not answer: {why}"),
            unavailable: true,
        }),
    }
}

impl Screens {
    /// `tenant`'s screen, from this process's cache when it is fresh.
    async fn screen(
        &self,
        state: &AppState,
        tenant: TenantId,
    ) -> Result<Arc<Compiled>, OpenAiError> {
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tenant)
            .cloned();
        if let Some((at, compiled)) = &cached
            && at.elapsed() < SCREEN_FOR
        {
            return Ok(compiled.clone());
        }
        let read = state
            .store()
            .input_screen_opened(state.keyring(), tenant)
            .await;
        let (screen, secret) = match read {
            Ok(read) => read,
            Err(e) => {
                warn!(%tenant, error = %e, "reading a tenant's input screen");
                return match cached {
                    Some((at, compiled)) if at.elapsed() < STALE_SCREEN_FOR => Ok(compiled),
                    _ => Err(OpenAiError::internal()),
                };
            }
        };
        let signing = match secret {
            None => Signing::Unsigned,
            Some(Ok(secret)) => Signing::Key(secret),
            Some(Err(e)) => {
                warn!(%tenant, error = %e,
                    "a tenant's classifier secret does not open; its classifier is not posted to");
                Signing::Unopenable
            }
        };
        let compiled = Arc::new(compile(screen, signing));
        let mut cache = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_KEYS {
            cache.retain(|_, (at, _)| at.elapsed() < SCREEN_FOR);
        }
        cache.insert(tenant, (Instant::now(), compiled.clone()));
        Ok(compiled)
    }

    /// The classifier client: refusing non-public addresses unless the
    /// platform allows them.
    fn client(&self, allow_private: bool) -> &reqwest::Client {
        let cell = if allow_private {
            &self.any_client
        } else {
            &self.public_client
        };
        cell.get_or_init(|| {
            let mut builder = reqwest::Client::builder()
                // A proxy would resolve the classifier's name again, on its
                // own network, undoing the address check.
                .no_proxy()
                // A redirect would post the prompt where the tenant never said.
                .redirect(reqwest::redirect::Policy::none())
                .timeout(CLASSIFIER_TIMEOUT)
                .connect_timeout(CLASSIFIER_TIMEOUT)
                .user_agent(USER_AGENT);
            if !allow_private {
                builder = builder.dns_resolver(Arc::new(PublicOnly));
            }
            builder.build().expect("a plain HTTP client builds")
        })
    }

    /// Counts a refusal against `tenant`'s audit budget: `Some(n)` when it
    /// is recorded, with the `n` refusals before it that were not.
    fn audit_budget(&self, tenant: TenantId) -> Option<u64> {
        let mut counts = self
            .not_recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match self.audits.take(&tenant, None, Instant::now()) {
            Ok(()) => Some(counts.remove(&tenant).unwrap_or(0)),
            Err(_) => {
                if counts.len() < MAX_KEYS || counts.contains_key(&tenant) {
                    *counts.entry(tenant).or_default() += 1;
                }
                None
            }
        }
    }
}

/// A stored screen compiled. Patterns were checked when they were set; a
/// pattern that no longer compiles (a newer limit) is left out, loudly.
fn compile(screen: InputScreen, signing: Signing) -> Compiled {
    let deny = if screen.deny_patterns.is_empty() {
        None
    } else {
        match deny_set(&screen.deny_patterns) {
            Ok(set) => Some(set),
            Err(e) => {
                warn!(tenant = %screen.tenant, error = %e, "a tenant's deny patterns do not compile");
                None
            }
        }
    };
    let classifier = screen
        .classifier_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok());
    Compiled {
        screen,
        deny,
        classifier,
        signing,
    }
}

/// The request's prompt text, piece by piece; `None` when some of it is
/// token ids.
fn prompt_texts(request: &serde_json::Map<String, serde_json::Value>) -> Option<Vec<&str>> {
    use serde_json::Value;
    let mut texts = Vec::new();
    if let Some(Value::Array(messages)) = request.get("messages") {
        for message in messages {
            match message.get("content") {
                Some(Value::String(text)) => texts.push(text.as_str()),
                Some(Value::Array(parts)) => {
                    for part in parts {
                        if let Some(Value::String(text)) = part.get("text") {
                            texts.push(text.as_str());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for field in ["prompt", "suffix", "input"] {
        match request.get(field) {
            Some(Value::String(text)) => texts.push(text.as_str()),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(text) => texts.push(text.as_str()),
                        Value::Number(_) | Value::Array(_) => return None,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(texts)
}

/// A classifier's judgement.
enum Verdict {
    Allowed,
    /// With the classifier's reason, if it gave one.
    Flagged(Option<String>),
}

/// Where and how one request's prompt is posted.
struct Post<'a> {
    url: &'a Url,
    signing: &'a Signing,
    tenant: TenantId,
    operation: Operation,
}

/// Posts the prompt to the tenant's classifier, signed with the tenant's
/// secret. The error says why there is no judgement, in words that hold
/// no part of the URL but its origin, and never the secret.
async fn classify(
    state: &AppState,
    screens: &Screens,
    post: &Post<'_>,
    request: &serde_json::Map<String, serde_json::Value>,
    texts: &[&str],
) -> Result<Verdict, String> {
    use reqwest::header::CONTENT_TYPE;
    let allow_private = state.settings().webhook_allow_private_addresses;
    // A literal address never reaches the resolver: check it here.
    webhook::check_receiver(post.url.as_str(), allow_private)
        .map_err(|_| "its URL names an address that is not public".to_owned())?;
    let body = serde_json::to_vec(&serde_json::json!({
        "input": texts,
        "tenant": post.tenant.to_string(),
        "model": request.get("model"),
        "endpoint": post.operation.path(),
    }))
    .map_err(|_| "the prompt could not be written as JSON".to_owned())?;
    let mut sending = screens
        .client(allow_private)
        .post(post.url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(webhook::DELIVERY_HEADER, uuid::Uuid::new_v4().to_string());
    match post.signing {
        Signing::Key(secret) => {
            let signature = webhook::sign(
                secret.expose().as_bytes(),
                chrono::Utc::now().timestamp(),
                &body,
            );
            sending = sending.header(webhook::SIGNATURE_HEADER, signature);
        }
        Signing::Unsigned => {}
        Signing::Unopenable => {
            return Err(
                "the hub cannot open the secret that signs its posts; a tenant admin \
                 should set the input screen again"
                    .to_owned(),
            );
        }
    }
    let sent = sending.body(body).send().await.map_err(|e| describe(&e))?;
    let status = sent.status();
    if !status.is_success() {
        return Err(format!("it answered HTTP {}", status.as_u16()));
    }
    let mut answer = Vec::new();
    let mut chunks = sent.bytes_stream();
    use futures::StreamExt as _;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| describe(&e))?;
        if answer.len() + chunk.len() > MAX_CLASSIFIER_ANSWER {
            return Err(format!(
                "its answer is larger than {} KiB",
                MAX_CLASSIFIER_ANSWER >> 10
            ));
        }
        answer.extend_from_slice(&chunk);
    }
    verdict(&answer).ok_or_else(|| "its answer has no `flagged`".to_owned())
}

/// Reads `{"flagged": bool, "reason"?: "…"}`, or OpenAI's moderation
/// shape `{"results": [{"flagged": bool, "categories": {…}}]}`.
fn verdict(answer: &[u8]) -> Option<Verdict> {
    let answer: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let reason = |v: &serde_json::Value| -> Option<String> {
        if let Some(reason) = v.get("reason").and_then(|r| r.as_str()) {
            return Some(reason.chars().take(200).collect());
        }
        let categories: Vec<&str> = v
            .get("categories")?
            .as_object()?
            .iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .map(|(name, _)| name.as_str())
            .take(10)
            .collect();
        (!categories.is_empty()).then(|| categories.join(", ").chars().take(200).collect())
    };
    if let Some(flagged) = answer.get("flagged").and_then(|f| f.as_bool()) {
        return Some(if flagged {
            Verdict::Flagged(reason(&answer))
        } else {
            Verdict::Allowed
        });
    }
    let results = answer.get("results")?.as_array()?;
    let mut read_any = false;
    for result in results {
        match result.get("flagged").and_then(|f| f.as_bool()) {
            Some(true) => return Some(Verdict::Flagged(reason(result))),
            Some(false) => read_any = true,
            None => return None,
        }
    }
    read_any.then_some(Verdict::Allowed)
}

/// A failed post in words that hold no URL (reqwest's own messages do).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!(
            "it did not answer within {} s",
            CLASSIFIER_TIMEOUT.as_secs()
        )
    } else if e.is_connect() {
        "it could not be reached, or its name resolves to an address that is not public".to_owned()
    } else if e.is_redirect() {
        "it answered with a redirect, which is not followed".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

/// Resolves a classifier's name and refuses it when any of its addresses
/// is not public; the connection then goes to those addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(format!("{host} does not resolve to public addresses only").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Writes a refusal's audit record, within the tenant's audit budget.
#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    screens: &Screens,
    caller: &Caller,
    compiled: &Compiled,
    operation: Operation,
    request: &serde_json::Map<String, serde_json::Value>,
    refusal: &Refusal,
    texts: &[&str],
) {
    let tenant = compiled.screen.tenant;
    let Some(not_recorded) = screens.audit_budget(tenant) else {
        return;
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "modelfleet.io/input-rule".to_owned(),
        refusal.rule.to_owned(),
    );
    annotations.insert(
        "modelfleet.io/endpoint".to_owned(),
        operation.path().to_owned(),
    );
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    annotations.insert("modelfleet.io/prompt-bytes".to_owned(), bytes.to_string());
    if compiled.screen.store_prompts {
        annotations.insert(
            "modelfleet.io/prompt".to_owned(),
            truncated(&texts.join("\n"), MAX_STORED_PROMPT),
        );
    }
    let mut message = refusal.detail.clone();
    if not_recorded > 0 {
        annotations.insert(
            "modelfleet.io/refusals-not-recorded".to_owned(),
            not_recorded.to_string(),
        );
        message.push_str(&format!(
            "; {not_recorded} earlier refusals of this organisation's prompts were counted, not \
             recorded one by one"
        ));
    }
    let model = request
        .get("model")
        .and_then(|m| m.as_str())
        .map(|m| truncated(m, 253));
    let entry = AuditEntry {
        verb: "refuse".to_owned(),
        resource: "inference".to_owned(),
        tenant: Some(tenant),
        name: model,
        uid: None,
        code: Some(if refusal.unavailable { 503 } else { 400 }),
        message: Some(truncated(&message, 1024)),
        annotations,
    };
    let written = async {
        let mut tx = state.store().begin(&caller.actor).await?;
        tx.audit_as(entry);
        tx.commit().await
    }
    .await;
    if let Err(e) = written {
        state.metrics().audit_write_failed();
        warn!(%tenant, error = %e, "could not record a refused inference request");
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn texts(v: serde_json::Value) -> Option<Vec<String>> {
        let map = v.as_object().unwrap().clone();
        prompt_texts(&map).map(|t| t.into_iter().map(str::to_owned).collect())
    }

    #[test]
    fn every_string_an_engine_reads_is_prompt_text() {
        assert_eq!(
            texts(json!({"messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "assistant", "content": null}]})),
            Some(vec!["be brief".to_owned(), "hello".to_owned()])
        );
        assert_eq!(
            texts(json!({"prompt": ["one", "two"], "suffix": "end"})),
            Some(vec!["one".to_owned(), "two".to_owned(), "end".to_owned()])
        );
        assert_eq!(texts(json!({"input": "x"})), Some(vec!["x".to_owned()]));
        assert_eq!(texts(json!({"prompt": [1, 2, 3]})), None);
        assert_eq!(texts(json!({"input": [[1, 2], [3]]})), None);
    }

    #[test]
    fn verdicts_read_both_shapes_and_nothing_else() {
        let flagged = |a: &str| match verdict(a.as_bytes()) {
            Some(Verdict::Flagged(reason)) => Some(reason),
            _ => None,
        };
        assert_eq!(
            flagged(r#"{"flagged": true, "reason": "jailbreak"}"#),
            Some(Some("jailbreak".to_owned()))
        );
        assert!(matches!(
            verdict(br#"{"flagged": false}"#),
            Some(Verdict::Allowed)
        ));
        assert_eq!(
            flagged(
                r#"{"results": [{"flagged": true, "categories": {"violence": true, "hate": false}}]}"#
            ),
            Some(Some("violence".to_owned()))
        );
        assert!(matches!(
            verdict(br#"{"results": [{"flagged": false}]}"#),
            Some(Verdict::Allowed)
        ));
        for unreadable in [r#"{}"#, r#"{"results": []}"#, "ok", r#"{"flagged": "yes"}"#] {
            assert!(verdict(unreadable.as_bytes()).is_none(), "{unreadable}");
        }
    }

    /// A classifier's name that resolves to the hub's own machine is not
    /// connected to (the address check of a name, at connection time).
    #[tokio::test]
    async fn names_that_resolve_inward_are_refused() {
        use reqwest::dns::Resolve as _;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let refused = PublicOnly.resolve(name).await.err().unwrap();
        assert!(
            refused.to_string().contains("not resolve to public"),
            "{refused}"
        );
    }

    #[test]
    fn stored_prompts_are_cut_at_a_character() {
        assert_eq!(truncated("héllo", 2), "h…");
        assert_eq!(truncated("hi", 2), "hi");
    }
}
