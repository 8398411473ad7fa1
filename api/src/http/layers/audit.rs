//! One audit record for every request that writes, and for every request
//! refused for who sent it (401, 403), whatever the method.
//!
//! A request that changes something is recorded by the store, on the
//! transaction that makes the change ([`crate::Tx::commit`]), with the
//! audit id this layer gives the request. Everything else — a request
//! refused by validation, quota, role or authentication, a request that
//! failed, a write endpoint that only computes (plans), an idempotent
//! replay — changes nothing, and this layer records it after the response,
//! in a transaction of its own. Both carry the same audit id, so a request
//! is recorded once: this layer writes only when no record has that id.
//!
//! Refusals before authentication (401, and 429 from the limits of
//! [`crate::service::throttle`]) are recorded alike, but a flood of them
//! costs one record per source per window: the first refusal from a source
//! is recorded at once, later ones in its window are only counted, and one
//! `refused-repeatedly` record says how many once the window is over.

use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::RequestId;
use crate::http::AppState;
use crate::http::error::ProblemReport;
use crate::identity::{Actor, Origin};
use crate::ids::AuditId;
use crate::service::throttle::{Refusal, Source};
use crate::store::AuditEntry;

/// Who a request came from, as audit records say: its address, user
/// agent and request id, and what the audit layer knows of it.
pub fn origin(parts: &Parts) -> Origin {
    Origin {
        source_ip: parts
            .extensions
            .get::<super::ClientAddr>()
            .map(|c| c.0)
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<std::net::SocketAddr>>()
                    .map(|ConnectInfo(addr)| addr.ip())
            }),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        ..Origin::default()
    }
    .with_request(parts.extensions.get::<RequestAudit>())
}

/// The response header naming the request's `auditID`, as Kubernetes'
/// API server sends it.
pub const AUDIT_ID_HEADER: HeaderName = HeaderName::from_static("audit-id");

/// What the audit layer knows of a request, in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct RequestAudit {
    pub audit_id: AuditId,
    pub received_at: DateTime<Utc>,
    /// Path and query.
    pub uri: String,
    /// Who the request authenticated as, once it has.
    caller: Arc<Mutex<Option<Actor>>>,
}

impl RequestAudit {
    /// Remembers who the request authenticated as.
    pub(crate) fn authenticated(&self, actor: &Actor) {
        if let Ok(mut slot) = self.caller.lock() {
            *slot = Some(actor.clone());
        }
    }

    fn caller(&self) -> Option<Actor> {
        self.caller.lock().ok().and_then(|slot| slot.clone())
    }
}

fn writes(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

pub(crate) async fn audit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let tracking = RequestAudit {
        audit_id: AuditId::new(),
        received_at: crate::store::now(),
        uri: request.uri().path_and_query().map_or_else(
            || path.clone(),
            |pq| pq.as_str().chars().take(1024).collect(),
        ),
        caller: Arc::default(),
    };
    request.extensions_mut().insert(tracking.clone());
    let (parts, body) = request.into_parts();
    let origin = origin(&parts);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    // As kube-apiserver does: the id to find this request's record by.
    if let Ok(value) = HeaderValue::from_str(&tracking.audit_id.to_string()) {
        response.headers_mut().insert(AUDIT_ID_HEADER, value);
    }

    let status = response.status();
    let anonymous_refusal =
        status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS;
    let refused_caller = anonymous_refusal || status == StatusCode::FORBIDDEN;
    if !writes(&method) && !refused_caller {
        return response;
    }
    if anonymous_refusal {
        let hub = state.hub();
        let (refusal, due) = hub.throttle().refused(Source::of(origin.source_ip), status);
        hub.record_refusals(due).await;
        if refusal == Refusal::Counted {
            return response;
        }
    }
    let store = state.store();
    match store.audit_recorded(tracking.audit_id).await {
        Ok(true) => return response,
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "could not look up a request's audit record"),
    }
    let actor = tracking
        .caller()
        .map(|actor| actor.with_origin(origin.clone()))
        .unwrap_or_else(|| Actor::anonymous(origin));
    let message = response
        .extensions()
        .get::<Arc<ProblemReport>>()
        .map(|report| report.problem.detail.chars().take(1024).collect());
    let entry = entry_for(&method, &path, status, message);
    if let Err(e) = store.record_request(&actor, entry).await {
        state.metrics().audit_write_failed();
        // Nothing changed (a change is recorded with it or not made), so the
        // answer stands; the missing record is an operational alert.
        tracing::error!(error = %e, audit_id = %tracking.audit_id,
            "could not record a request in the audit trail");
    }
    response
}

/// The record of a request that changed nothing, from its method and path:
/// `/api/v1/clusters/{id}/prices/{pool}` is resource `clusters/prices`,
/// name `{pool}`.
fn entry_for(
    method: &Method,
    path: &str,
    status: StatusCode,
    message: Option<String>,
) -> AuditEntry {
    let segments: Vec<&str> = path
        .trim_start_matches("/api/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let resource = segments
        .iter()
        .step_by(2)
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let name = segments
        .iter()
        .skip(1)
        .step_by(2)
        .next_back()
        .map(|s| s.chars().take(256).collect());
    let sessions = resource == "sessions";
    let verb = match *method {
        Method::POST if sessions => "login",
        Method::DELETE if sessions => "logout",
        Method::POST => "create",
        Method::PUT | Method::PATCH => "update",
        Method::DELETE => "delete",
        _ if name.is_some() => "get",
        _ => "list",
    };
    AuditEntry {
        verb: verb.to_owned(),
        resource: if resource.is_empty() {
            "api".to_owned()
        } else {
            resource.chars().take(256).collect()
        },
        name,
        code: Some(status.as_u16()),
        message,
        ..AuditEntry::default()
    }
}

impl Origin {
    /// The request's audit identity, from the audit layer's extension.
    pub(crate) fn with_request(mut self, tracking: Option<&RequestAudit>) -> Origin {
        if let Some(t) = tracking {
            self.audit_id = Some(t.audit_id);
            self.received_at = Some(t.received_at);
            self.request_uri = Some(t.uri.clone());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_resource_and_object() {
        let e = entry_for(
            &Method::PUT,
            "/api/v1/clusters/c1/prices/gpu-a",
            StatusCode::FORBIDDEN,
            None,
        );
        assert_eq!(
            (e.verb.as_str(), e.resource.as_str(), e.name.as_deref()),
            ("update", "clusters/prices", Some("gpu-a"))
        );
        assert_eq!(e.code, Some(403));
        let e = entry_for(
            &Method::POST,
            "/api/v1/deployments",
            StatusCode::CONFLICT,
            None,
        );
        assert_eq!(
            (e.verb.as_str(), e.resource.as_str(), e.name),
            ("create", "deployments", None)
        );
        let e = entry_for(
            &Method::POST,
            "/api/v1/sessions",
            StatusCode::UNAUTHORIZED,
            None,
        );
        assert_eq!(e.verb, "login");
        let e = entry_for(
            &Method::GET,
            "/api/v1/tenants/t1",
            StatusCode::FORBIDDEN,
            None,
        );
        assert_eq!((e.verb.as_str(), e.name.as_deref()), ("get", Some("t1")));
    }
}
