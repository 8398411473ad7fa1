//! Probes. `/healthz`: the process answers. `/readyz`: it can also reach
//! its database, so a load balancer sends it traffic. Clusters are not part
//! of readiness: one unreachable cluster must not take the hub out.

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

pub(crate) async fn live() -> &'static str {
    "ok"
}

pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer",
            )
        }
    }
}
