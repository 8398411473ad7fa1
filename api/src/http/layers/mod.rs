//! Middleware every request passes, outermost first: a request id, the
//! boundary where errors become finished problem documents and are logged,
//! once; then, around the API's routes, the audit layer (`audit`: one
//! record per write or refused request) and the idempotency layer
//! (`idempotency`: `Idempotency-Key` replays).

pub mod audit;
pub mod idempotency;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{debug, error};

use crate::http::error::{ApiError, PROBLEM_JSON, ProblemReport};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one request: the caller's `X-Request-Id` if it is sane, else a
/// fresh UUID. Sent back, put in problems and in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The address a request came from: its peer, or — when the peer is a
/// trusted proxy (`--trusted-proxies`) — the client `X-Forwarded-For`
/// names. Audit records and sign-in origins use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The client behind `peer`: `peer` itself unless it is a trusted proxy;
/// then the last address of `forwarded` (an `X-Forwarded-For` value, each
/// proxy appending the address it saw) that is not a trusted proxy, or the
/// first when every one is.
pub fn client_address(
    peer: std::net::IpAddr,
    forwarded: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(forwarded) = forwarded else {
        return peer;
    };
    let chain: Vec<std::net::IpAddr> = forwarded
        .split(',')
        .map_while(|hop| hop.trim().parse().ok())
        .collect();
    if chain.len() != forwarded.split(',').count() {
        // A hop that is not an address: believe nothing of the header.
        return peer;
    }
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// Records the request's [`ClientAddr`].
pub(crate) async fn client_addr(
    axum::extract::State(state): axum::extract::State<crate::http::AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let client = client_address(peer, forwarded, &state.settings().trusted_proxies);
        request.extensions_mut().insert(ClientAddr(client));
    }
    next.run(request).await
}

pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| sane(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    // The gateway answers with its own id (what the request is metered
    // under, never one a client chose); everything else with this one.
    if !response.headers().contains_key(REQUEST_ID_HEADER)
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Finishes problems: stamps each with the request's path and id, turns
/// bare error statuses from outside the handlers (unknown route, wrong
/// method) into problems, and logs each failure once.
pub(crate) async fn problems(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // The inference gateway answers in OpenAI's error shape, which its
    // clients read.
    if response
        .extensions()
        .get::<crate::gateway::AnswerAsIs>()
        .is_some()
    {
        debug!(%method, route = route.as_deref().unwrap_or("unmatched"),
            status = status.as_u16(), request_id = request_id.as_deref(), "inference refused");
        return response;
    }
    let report = match response.extensions().get::<Arc<ProblemReport>>() {
        Some(report) => ProblemReport::clone(report),
        None => {
            let content_type = response.headers().get(header::CONTENT_TYPE);
            let is_problem = content_type.is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
            // The console's error pages are finished already.
            let is_page = content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            if is_problem || is_page {
                return response;
            }
            ProblemReport {
                problem: crate::http::error::problem(&ApiError::for_status(status)),
                internal: None,
            }
        }
    };
    let ProblemReport {
        mut problem,
        internal,
    } = report;
    problem.instance = Some(path);
    problem.request_id = request_id.clone();
    let route = route.as_deref().unwrap_or("unmatched");
    if status.is_server_error() {
        error!(
            %method, route, status = status.as_u16(), request_id = request_id.as_deref(),
            detail = %problem.detail, cause = internal.as_deref(), "request failed"
        );
    } else {
        debug!(
            %method, route, status = status.as_u16(), request_id = request_id.as_deref(),
            detail = %problem.detail, "request refused"
        );
    }
    let (mut parts, _) = response.into_parts();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod client_tests {
    use super::client_address;

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // From a trusted proxy: the last untrusted hop.
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("203.0.113.9, 10.9.9.9"), &trusted),
            ip("203.0.113.9")
        );
        // A client that forges a hop before its own gains nothing.
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("198.51.100.1, 203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // From anyone else the header is ignored.
        assert_eq!(
            client_address(ip("198.51.100.7"), Some("203.0.113.9"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("203.0.113.9"), &[]),
            ip("10.1.2.3")
        );
        // Garbage in the header: the peer.
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("evil, 203.0.113.9"), &trusted),
            ip("10.1.2.3")
        );
        // Every hop a trusted proxy: the first.
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("10.0.0.5, 10.0.0.6"), &trusted),
            ip("10.0.0.5")
        );
    }
}
