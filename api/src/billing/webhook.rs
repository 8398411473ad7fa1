//! Posting budget alerts to a tenant's webhook: signed, so the receiver can
//! tell a post comes from this hub and is fresh; retried while the receiver
//! is unreachable or overloaded; given up on as soon as it says no.
//!
//! The signature is Stripe's scheme, which receivers already know how to
//! check: [`SIGNATURE_HEADER`] holds `t=<unix seconds>,v1=<hex HMAC-SHA256>`
//! over `"<t>.<body>"`. Every attempt is signed anew, so a receiver that
//! rejects an old `t` (a replay) still accepts a late retry; the
//! `Modelfleet-Delivery` id stays the same on every attempt, so a receiver
//! whose answer got lost can tell the retry is a duplicate.
//!
//! Nothing here may put the signing secret, a signature, or the
//! credentials and query of a URL (where tenants put tokens) into an error
//! or a log line: errors are stored with the alert and shown to the tenant.
//! Logs name the receiver by its origin only.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use sha2::Sha256;
use tracing::warn;

use crate::net::is_public;

/// The header carrying `t=<unix seconds>,v1=<hex signature>`.
pub const SIGNATURE_HEADER: &str = "Modelfleet-Signature";
/// The header carrying the caller's delivery id, the same on every attempt.
pub const DELIVERY_HEADER: &str = "Modelfleet-Delivery";
/// What the hub's webhook posts call themselves.
pub const USER_AGENT: &str = concat!("modelfleet-webhooks/", env!("CARGO_PKG_VERSION"));

const URL_EXAMPLE: &str = "write it like https://hooks.example.com/modelfleet";

/// The signature header's value for `body` sent at `timestamp` (Unix
/// seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Whether `header` (a [`SIGNATURE_HEADER`] value) signs `body` with
/// `secret`; any one of several `v1` signatures may match, as during a
/// secret rotation. The comparison takes constant time.
///
/// This does not judge how old `t` is: a receiver must also reject
/// signatures whose `t` is too far from its own clock, or it accepts
/// replays.
pub fn verify(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v1)) => signatures.extend(hex::decode(v1).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    signatures
        .iter()
        .any(|tag| mac(secret, timestamp, body).verify_slice(tag).is_ok())
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// How hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included (at least one is made).
    pub attempts: u32,
    /// The wait after the first failed attempt; it doubles after each
    /// further one.
    pub first_backoff: Duration,
    /// The longest wait between attempts, also for a receiver's
    /// `Retry-After`: a receiver cannot hold a delivery for an hour. Also
    /// the first wait before a later pass tries an alert again.
    pub max_backoff: Duration,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
}

impl Default for Retry {
    /// 5 attempts over about 15 s (waits of 1, 2, 4 and 8 s), 10 s each.
    fn default() -> Self {
        Retry {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// The longest one delivery can take, name resolution aside: every
    /// attempt taking its whole timeout, and the longest wait after each
    /// but the last.
    pub fn longest(&self) -> Duration {
        let attempts = self.attempts.max(1);
        self.timeout
            .saturating_mul(attempts)
            .saturating_add(self.max_backoff.saturating_mul(attempts - 1))
    }

    /// The wait after failed attempt number `attempt` (from 1).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A delivery the receiver accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Attempts made, the accepted one included.
    pub attempts: u32,
    /// The receiver's 2xx status.
    pub status: u16,
}

/// Why an alert was not delivered. Messages never hold the secret, a
/// signature, or the URL's credentials or query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook URL {0}; {URL_EXAMPLE}")]
    InvalidUrl(String),
    /// A 4xx other than 408 and 429, or a redirect: asking again would get
    /// the same answer.
    #[error(
        "the webhook answered HTTP {status} on attempt {attempts}, which retrying would not \
         change; check that the URL is the receiver's endpoint (redirects are not followed) and \
         that the receiver has this budget's signing secret"
    )]
    Refused { status: u16, attempts: u32 },
    #[error(
        "the webhook did not take the delivery in {attempts} attempts (last: {last}); check that \
         the receiver is up and reachable from the hub"
    )]
    GaveUp { attempts: u32, last: String },
    #[error("the webhook client cannot be used: {0}")]
    Client(String),
}

impl WebhookError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            WebhookError::InvalidUrl(_) => "invalid_url",
            WebhookError::Refused { .. } => "refused",
            WebhookError::GaveUp { .. } => "gave_up",
            WebhookError::Client(_) => "client",
        }
    }
}

/// Posts signed bodies to webhooks. One is enough for the whole hub: the
/// client inside pools connections.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    retry: Retry,
    /// Whether receivers on loopback, private, link-local and other
    /// non-public addresses are posted to (off unless the operator says).
    allow_private: bool,
}

impl WebhookSender {
    pub fn new(retry: Retry) -> Result<Self, WebhookError> {
        Ok(WebhookSender {
            client: http_client(&retry, None)?,
            retry,
            allow_private: false,
        })
    }

    /// Also posts to loopback, private and link-local addresses. Off by
    /// default: a tenant admin chooses the URL, and without this a webhook
    /// could make the hub call its own network (a cloud's metadata service
    /// at 169.254.169.254, say).
    pub fn allowing_private_addresses(mut self) -> Self {
        self.allow_private = true;
        self
    }

    /// How hard each delivery tries.
    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    /// The client for one delivery: when private addresses are refused,
    /// the receiver's name is resolved here, every address is checked, and
    /// the connection is pinned to them, so a second lookup cannot answer
    /// differently.
    async fn client_for(&self, url: &Url) -> Result<reqwest::Client, WebhookError> {
        if self.allow_private {
            return Ok(self.client.clone());
        }
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|_| WebhookError::GaveUp {
                    attempts: 1,
                    last: "the receiver's name does not resolve".to_owned(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(WebhookError::GaveUp {
                attempts: 1,
                last: "the receiver's name has no address".to_owned(),
            });
        }
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(WebhookError::InvalidUrl(format!(
                "resolves to {}, which is not a public address; the hub posts alerts only to \
                 public receivers",
                bad.ip()
            )));
        }
        http_client(&self.retry, Some((bare, &addrs)))
    }

    /// Posts `body` to `url`, signed with `secret`, until the receiver
    /// answers 2xx, refuses it, or the attempts run out. `delivery_id`
    /// goes out unchanged on every attempt.
    pub async fn deliver(
        &self,
        url: &str,
        secret: &[u8],
        delivery_id: &str,
        body: &[u8],
    ) -> Result<Delivered, WebhookError> {
        let url = parse_url(url)?;
        let delivery_id = HeaderValue::from_str(delivery_id).map_err(|_| {
            WebhookError::Client(
                "the delivery id must be printable ASCII (an alert id, say)".to_owned(),
            )
        })?;
        let receiver = origin(&url);
        let client = self.client_for(&url).await?;
        let attempts = self.retry.attempts.max(1);
        // Cheap to clone for each attempt.
        let body = Bytes::copy_from_slice(body);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let signature = sign(secret, chrono::Utc::now().timestamp(), &body);
            let sent = client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(DELIVERY_HEADER, delivery_id.clone())
                .header(SIGNATURE_HEADER, signature)
                .body(body.clone())
                .send()
                .await;
            let (reason, wait) = match sent {
                Ok(response) => {
                    let status = response.status();
                    match judge(status) {
                        Verdict::Accepted => {
                            return Ok(Delivered {
                                attempts: attempt,
                                status: status.as_u16(),
                            });
                        }
                        Verdict::Refused => {
                            warn!(attempt, of = attempts, receiver = %receiver, status = status.as_u16(),
                                "webhook refused the delivery; not retrying");
                            return Err(WebhookError::Refused {
                                status: status.as_u16(),
                                attempts: attempt,
                            });
                        }
                        Verdict::Retry => (
                            format!("HTTP {}", status.as_u16()),
                            retry_after(status, response.headers(), self.retry.max_backoff),
                        ),
                    }
                }
                Err(e) if e.is_builder() => {
                    return Err(WebhookError::Client(format!(
                        "cannot build the request: {}",
                        e.without_url()
                    )));
                }
                Err(e) => (describe(&e), None),
            };
            warn!(attempt, of = attempts, receiver = %receiver, reason = %reason,
                "webhook delivery attempt failed");
            last = reason;
            if attempt < attempts {
                tokio::time::sleep(wait.unwrap_or_else(|| self.retry.backoff(attempt))).await;
            }
        }
        Err(WebhookError::GaveUp { attempts, last })
    }
}

/// The HTTP client deliveries go through; with `pin`, the receiver's name
/// connects only to the addresses given.
///
/// It never uses a proxy, whatever `HTTP_PROXY`, `HTTPS_PROXY` or
/// `ALL_PROXY` say: a proxy resolves the receiver's name again, on its own
/// network, and so would undo both the pinning and the address check.
fn http_client(
    retry: &Retry,
    pin: Option<(&str, &[SocketAddr])>,
) -> Result<reqwest::Client, WebhookError> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(retry.timeout)
        // A redirect is a failed delivery: following it would send a
        // signed alert to an address the tenant never configured.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT);
    if let Some((host, addrs)) = pin {
        builder = builder.resolve_to_addrs(host, addrs);
    }
    builder
        .build()
        .map_err(|e| WebhookError::Client(format!("cannot build the HTTP client: {e}")))
}

/// Checks a receiver's URL when a tenant sets it: an http(s) URL whose
/// host, when it is an address or `localhost`, is a public one (unless
/// `allow_private`). Names are resolved, checked and pinned at each
/// delivery instead, since what they resolve to can change.
pub fn check_receiver(url: &str, allow_private: bool) -> Result<(), WebhookError> {
    let url = parse_url(url)?;
    if allow_private {
        return Ok(());
    }
    let not_public = |what: &dyn std::fmt::Display| {
        WebhookError::InvalidUrl(format!(
            "names {what}, which is not a public address; the hub posts alerts only to public \
             receivers"
        ))
    };
    // The URL parser has already normalised the host: `2130706433` and
    // `0x7f.1` are 127.0.0.1 here, as they would be when delivering.
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if is_public(ip) {
            Ok(())
        } else {
            Err(not_public(&ip))
        };
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(not_public(&name));
    }
    Ok(())
}

/// What may be shown of a receiver's URL: its scheme and host (and a port
/// other than the scheme's), then `/…`. The rest stays hidden: Slack-style
/// receivers take whoever knows the path for the sender.
pub fn masked(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(url) if url.has_host() => format!("{}/…", origin(&url)),
        _ => "…".to_owned(),
    }
}

/// `url` if it is an absolute http(s) URL with a host. The message never
/// repeats the URL, which may hold a token.
fn parse_url(url: &str) -> Result<Url, WebhookError> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| WebhookError::InvalidUrl(format!("is not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(WebhookError::InvalidUrl(format!(
            "uses the scheme {:?}; only http and https can be delivered to",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::InvalidUrl("has no host".to_owned()));
    }
    Ok(parsed)
}

/// `scheme://host:port`: what logs may say about a receiver. Not the path
/// either: some services put the token there (`/services/T0/B0/<token>`).
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

enum Verdict {
    Accepted,
    Retry,
    Refused,
}

/// What a status says about asking again: 408, 429 and 5xx are the
/// receiver's passing trouble; any other non-2xx is its answer.
fn judge(status: StatusCode) -> Verdict {
    if status.is_success() {
        Verdict::Accepted
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Verdict::Retry
    } else {
        Verdict::Refused
    }
}

/// The wait a 429 or 503 asks for in whole seconds, up to `max`. The
/// HTTP-date form is not honoured: the usual backoff applies instead.
fn retry_after(status: StatusCode, headers: &HeaderMap, max: Duration) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(max))
}

/// A short reason for a failed request, from the kind of failure only:
/// reqwest's own message carries the whole URL, query included.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let io_kind = io_kind(e).filter(|k| !matches!(k, io::ErrorKind::Other));
    match (e.is_connect(), io_kind) {
        (true, Some(kind)) => kind.to_string(),
        (true, None) => "could not connect".to_owned(),
        (false, Some(kind)) => format!("the connection failed: {kind}"),
        (false, None) => "the request failed".to_owned(),
    }
}

fn io_kind(e: &reqwest::Error) -> Option<io::ErrorKind> {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::Response;
    use axum::response::IntoResponse;
    use axum::routing::{any, post};

    use super::*;

    const SECRET: &[u8] = b"whsec_test";

    /// One scripted answer of the test receiver.
    #[derive(Clone)]
    struct Answer {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
    }

    fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
        }
    }

    impl Answer {
        fn with(mut self, name: &'static str, value: &'static str) -> Answer {
            self.headers.push((name, value));
            self
        }
    }

    struct Request {
        headers: HeaderMap,
        body: Bytes,
    }

    /// A real HTTP receiver on a loopback port: `/hook` records each
    /// request and answers from the script (the last answer repeats);
    /// `/elsewhere` only counts hits.
    #[derive(Default)]
    struct Receiver {
        script: Mutex<VecDeque<Answer>>,
        seen: Mutex<Vec<Request>>,
        elsewhere: Mutex<usize>,
    }

    impl Receiver {
        fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Request>> {
            self.seen.lock().unwrap()
        }
    }

    async fn hook(
        State(receiver): State<Arc<Receiver>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        receiver.seen().push(Request { headers, body });
        let answer = {
            let mut script = receiver.script.lock().unwrap();
            if script.len() > 1 {
                script.pop_front().unwrap()
            } else {
                script.front().cloned().unwrap_or(status(200))
            }
        };
        let mut response = Response::builder().status(answer.status);
        for (name, value) in answer.headers {
            response = response.header(name, value);
        }
        response.body(Body::empty()).unwrap()
    }

    async fn elsewhere(State(receiver): State<Arc<Receiver>>) -> StatusCode {
        *receiver.elsewhere.lock().unwrap() += 1;
        StatusCode::OK
    }

    /// Starts a receiver; returns its base URL (`http://127.0.0.1:port`).
    async fn receiver(script: Vec<Answer>) -> (String, Arc<Receiver>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Arc::new(Receiver {
            script: Mutex::new(script.into()),
            ..Receiver::default()
        });
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/elsewhere", any(elsewhere))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, receiver)
    }

    fn sender(attempts: u32) -> WebhookSender {
        WebhookSender::new(Retry {
            attempts,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            timeout: Duration::from_secs(5),
        })
        .unwrap()
        // The receivers of these tests listen on loopback.
        .allowing_private_addresses()
    }

    fn header<'a>(request: &'a Request, name: &str) -> &'a str {
        request.headers.get(name).unwrap().to_str().unwrap()
    }

    const BODY: &[u8] = br#"{"alert":"a1","threshold":80}"#;

    #[test]
    fn signs_as_stripe_does() {
        // Expected value from Python: hmac.new(key, b"1700000000." + body, sha256).
        assert_eq!(
            sign(SECRET, 1_700_000_000, br#"{"alert":"a1"}"#),
            "t=1700000000,v1=8d396f5020d97b00c24e6b3d443cd12f2cdde1bb5235a911ad69c833e6f60c2e"
        );
    }

    #[test]
    fn verify_checks_secret_body_and_timestamp() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert!(verify(SECRET, &header, BODY));
        assert!(!verify(b"other", &header, BODY));
        assert!(!verify(SECRET, &header, b"{}"));
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify(SECRET, &moved, BODY));
        // A signature with a rotated-out secret next to the current one.
        let old = sign(b"old", 1_700_000_000, BODY);
        let (_, old) = old.split_once(',').unwrap();
        let both = header.replacen(',', &format!(",{old},"), 1);
        assert!(verify(SECRET, &both, BODY));
        for garbage in ["", "t=1700000000", "v1=00", "t=x,v1=zz", "nonsense"] {
            assert!(!verify(SECRET, garbage, BODY), "{garbage:?}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = Retry::default();
        let waits: Vec<u64> = (1..=9).map(|a| retry.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry.backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn retry_after_is_read_on_429_and_503_only_and_capped() {
        let max = Duration::from_secs(60);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let after = |status| retry_after(status, &headers, max);
        assert_eq!(
            after(StatusCode::TOO_MANY_REQUESTS),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            after(StatusCode::SERVICE_UNAVAILABLE),
            Some(Duration::from_secs(7))
        );
        assert_eq!(after(StatusCode::INTERNAL_SERVER_ERROR), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(
            retry_after(StatusCode::TOO_MANY_REQUESTS, &headers, max),
            Some(max)
        );
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(StatusCode::TOO_MANY_REQUESTS, &headers, max),
            None
        );
    }

    #[tokio::test]
    async fn delivers_signed_body_on_first_try() {
        let (base, receiver) = receiver(vec![status(200)]).await;
        let done = sender(3)
            .deliver(&format!("{base}/hook"), SECRET, "alert-1", BODY)
            .await
            .unwrap();
        assert_eq!(
            done,
            Delivered {
                attempts: 1,
                status: 200
            }
        );

        let seen = receiver.seen();
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert_eq!(request.body.as_ref(), BODY);
        let signature = header(request, SIGNATURE_HEADER);
        assert!(verify(SECRET, signature, &request.body));
        assert!(!verify(b"another secret", signature, &request.body));
        assert!(!verify(
            SECRET,
            signature,
            br#"{"alert":"a1","threshold":100}"#
        ));
        assert_eq!(header(request, DELIVERY_HEADER), "alert-1");
        assert_eq!(header(request, "content-type"), "application/json");
        assert_eq!(header(request, "user-agent"), USER_AGENT);
    }

    #[tokio::test]
    async fn retries_server_errors_with_the_same_delivery_id() {
        let (base, receiver) = receiver(vec![status(503), status(500), status(200)]).await;
        let done = sender(5)
            .deliver(&format!("{base}/hook"), SECRET, "alert-2", BODY)
            .await
            .unwrap();
        assert_eq!(
            done,
            Delivered {
                attempts: 3,
                status: 200
            }
        );

        let seen = receiver.seen();
        assert_eq!(seen.len(), 3);
        for request in seen.iter() {
            assert_eq!(header(request, DELIVERY_HEADER), "alert-2");
            assert!(verify(SECRET, header(request, SIGNATURE_HEADER), BODY));
        }
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        let (base, receiver) = receiver(vec![status(500)]).await;
        let error = sender(3)
            .deliver(&format!("{base}/hook"), SECRET, "alert-3", BODY)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            WebhookError::GaveUp {
                attempts: 3,
                last: "HTTP 500".to_owned()
            }
        );
        assert_eq!(receiver.seen().len(), 3);
    }

    #[tokio::test]
    async fn does_not_retry_a_refusal() {
        let (base, receiver) = receiver(vec![status(400), status(200)]).await;
        let error = sender(5)
            .deliver(&format!("{base}/hook"), SECRET, "alert-4", BODY)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            WebhookError::Refused {
                status: 400,
                attempts: 1
            }
        );
        assert_eq!(receiver.seen().len(), 1);
    }

    #[tokio::test]
    async fn does_not_follow_redirects() {
        let (base, receiver) = receiver(vec![
            status(302).with("location", "/elsewhere"),
            status(200),
        ])
        .await;
        let error = sender(5)
            .deliver(&format!("{base}/hook"), SECRET, "alert-5", BODY)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            WebhookError::Refused {
                status: 302,
                attempts: 1
            }
        );
        assert_eq!(receiver.seen().len(), 1);
        assert_eq!(*receiver.elsewhere.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn rejects_bad_urls_before_sending() {
        let (base, receiver) = receiver(vec![status(200)]).await;
        let port = base.rsplit_once(':').unwrap().1;
        let secret = b"whsec_do_not_leak";
        for url in [
            "ftp://x".to_owned(),
            "not a url".to_owned(),
            "https://".to_owned(),
            format!("ftp://127.0.0.1:{port}/hook"),
            "ftp://user:hunter2@x/hook?token=s3cr3t".to_owned(),
        ] {
            let error = sender(3)
                .deliver(&url, secret, "alert-6", BODY)
                .await
                .unwrap_err();
            assert!(
                matches!(error, WebhookError::InvalidUrl(_)),
                "{url}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains("https://hooks.example.com/modelfleet"),
                "{message}"
            );
            for leak in ["whsec_do_not_leak", "hunter2", "s3cr3t"] {
                assert!(!message.contains(leak), "{message}");
            }
        }
        assert_eq!(receiver.seen().len(), 0);
    }

    #[tokio::test]
    async fn refuses_receivers_on_non_public_addresses() {
        let (base, receiver) = receiver(vec![status(200)]).await;
        let strict = WebhookSender::new(Retry::default()).unwrap();
        for url in [
            format!("{base}/hook"),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://10.0.0.7/hook".to_owned(),
            "http://[::1]:9/hook".to_owned(),
            "http://localhost:9/hook".to_owned(),
        ] {
            let error = strict
                .deliver(&url, b"secret", "alert-9", BODY)
                .await
                .unwrap_err();
            assert!(
                matches!(&error, WebhookError::InvalidUrl(m) if m.contains("not a public address")),
                "{url}: {error:?}"
            );
        }
        assert_eq!(receiver.seen().len(), 0, "nothing was sent");
        for (ip, public) in [
            ("8.8.8.8", true),
            ("100.64.1.1", false),
            ("192.168.1.1", false),
            ("0.1.2.3", false),
            ("2606:4700::1111", true),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    /// Each range a receiver must not be in, by a sample address, with
    /// the public addresses just beside it.
    const NOT_PUBLIC: &[&str] = &[
        // NAT64 (64:ff9b::/96) around 127.0.0.1, 10.1.2.3 and 169.254.169.254.
        "64:ff9b::7f00:1",
        "64:ff9b::a01:203",
        "64:ff9b::a9fe:a9fe",
        // Local-use NAT64 (64:ff9b:1::/48): what it maps to is the network's.
        "64:ff9b:1::808:808",
        // 6to4 (2002::/16), whatever it wraps.
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2002:808:808::1",
        // IPv4-mapped and IPv4-compatible IPv6.
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.7",
        "::ffff:198.18.0.1",
        "::10.0.0.7",
        // Teredo, documentation and other special IPv6.
        "2001::1",
        "2001:db8::1",
        "100::1",
        "fec0::1",
        "3fff::1",
        // Benchmarking (198.18.0.0/15) and reserved (240.0.0.0/4) IPv4.
        "198.18.0.1",
        "198.19.255.255",
        "240.0.0.1",
        "255.255.255.254",
        // IETF protocol assignments and the 6to4 relay anycast.
        "192.0.0.8",
        "192.88.99.1",
    ];

    const PUBLIC: &[&str] = &[
        "198.17.255.255",
        "198.20.0.1",
        "223.255.255.254",
        "8.8.8.8",
        "64:ff9b::808:808",
        "::ffff:8.8.8.8",
        "2606:4700::1111",
        "2a00:1450:4001::1",
    ];

    #[test]
    fn wrapped_benchmarking_and_reserved_addresses_are_not_public() {
        for ip in NOT_PUBLIC {
            assert!(!is_public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in PUBLIC {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as not public");
        }
    }

    #[test]
    fn receivers_named_by_a_non_public_address_are_refused_when_set() {
        for ip in NOT_PUBLIC {
            let host: IpAddr = ip.parse().unwrap();
            let url = match host {
                IpAddr::V4(v4) => format!("https://{v4}/hook?token=s3cr3t"),
                IpAddr::V6(v6) => format!("https://[{v6}]/hook?token=s3cr3t"),
            };
            let error = check_receiver(&url, false).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("not a public address"), "{url}: {message}");
            assert!(!message.contains("s3cr3t"), "{message}");
            assert_eq!(check_receiver(&url, true), Ok(()), "{url}");
        }
        // The parser's normal forms: all loopback.
        for url in [
            "http://2130706433/hook",
            "http://0x7f.1/hook",
            "http://127.1/hook",
            "http://LocalHost./hook",
            "http://api.localhost/hook",
        ] {
            assert!(check_receiver(url, false).is_err(), "{url}");
        }
        for ip in PUBLIC {
            let host: IpAddr = ip.parse().unwrap();
            let url = match host {
                IpAddr::V4(v4) => format!("https://{v4}/hook"),
                IpAddr::V6(v6) => format!("https://[{v6}]/hook"),
            };
            assert_eq!(check_receiver(&url, false), Ok(()), "{url}");
        }
        // Names are judged when delivering, by what they resolve to then.
        assert_eq!(check_receiver("https://hooks.example.com/x", false), Ok(()));
        assert!(matches!(
            check_receiver("ftp://hooks.example.com/x", false),
            Err(WebhookError::InvalidUrl(_))
        ));
    }

    #[test]
    fn masking_keeps_scheme_and_host_only() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T0/B0/s3cr3t",
                "https://hooks.slack.com/…",
            ),
            (
                "http://hooks.example.com:8443/a?token=s3cr3t#x",
                "http://hooks.example.com:8443/…",
            ),
            (
                "https://hooks.example.com:443/s3cr3t",
                "https://hooks.example.com/…",
            ),
            (
                "https://[2606:4700::1111]/s3cr3t",
                "https://[2606:4700::1111]/…",
            ),
            ("not a url s3cr3t", "…"),
        ] {
            assert_eq!(masked(url), shown, "{url}");
        }
    }

    /// Through the step that resolves and pins a receiver before each
    /// delivery, not `deliver`: a check that wrongly let one through must
    /// not make this test send anything off the machine.
    #[tokio::test]
    async fn delivery_refuses_wrapped_benchmarking_and_reserved_addresses() {
        let strict = WebhookSender::new(Retry::default()).unwrap();
        for ip in NOT_PUBLIC {
            let host: IpAddr = ip.parse().unwrap();
            let url = match host {
                IpAddr::V4(v4) => format!("http://{v4}:9/hook"),
                IpAddr::V6(v6) => format!("http://[{v6}]:9/hook"),
            };
            let error = strict
                .client_for(&parse_url(&url).unwrap())
                .await
                .unwrap_err();
            assert!(
                matches!(&error, WebhookError::InvalidUrl(m) if m.contains("not a public address")),
                "{url}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn keeps_url_tokens_out_of_errors() {
        let error = sender(2)
            .deliver(
                "https://127.0.0.1:1/hook?token=s3cr3t",
                SECRET,
                "alert-7",
                BODY,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(error, WebhookError::GaveUp { attempts: 2, .. }),
            "{error:?}"
        );
        let WebhookError::GaveUp { last, .. } = &error else {
            unreachable!()
        };
        assert_eq!(last, "connection refused");
        let message = error.to_string();
        assert!(!message.contains("s3cr3t"), "{message}");
        assert!(!format!("{error:?}").contains("s3cr3t"), "{error:?}");
    }

    #[tokio::test]
    async fn honours_retry_after_on_429() {
        let (base, receiver) =
            receiver(vec![status(429).with("retry-after", "0"), status(200)]).await;
        let done = sender(3)
            .deliver(&format!("{base}/hook"), SECRET, "alert-8", BODY)
            .await
            .unwrap();
        assert_eq!(
            done,
            Delivered {
                attempts: 2,
                status: 200
            }
        );
        assert_eq!(receiver.seen().len(), 2);
    }
}
