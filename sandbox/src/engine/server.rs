//! One simulated engine's HTTP server: vLLM's routes on a loopback port
//! the OS picks, its API-key check, and its lifetime (it stops, closing
//! every connection, when the [`Engine`] is dropped).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::metrics::Metrics;
use super::openai::unauthorized;
use super::queue::Queue;
use super::spec::EngineSpec;
use super::{embeddings, handlers};

/// What every request handler of one engine shares.
#[derive(Debug)]
pub struct State {
    pub spec: EngineSpec,
    pub queue: Arc<Queue>,
    pub metrics: Metrics,
}

/// The largest request body: a prompt of a long context, as JSON.
const BODY_LIMIT: usize = 64 << 20;

/// A running simulated engine. Dropping it stops it: the port closes and
/// open connections (streams included) are cut, as when the container dies.
pub struct Engine {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("addr", &self.addr)
            .field("model", &self.state.spec.model_name())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Listens on 127.0.0.1 on a port the OS picks and serves `spec`.
    pub async fn start(spec: EngineSpec) -> std::io::Result<Engine> {
        Engine::start_on(spec, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Listens at `addr` (a pod's own address on a loopback pod network,
    /// see [`crate::cluster::PodNetwork`]) and serves `spec`.
    pub async fn start_on(spec: EngineSpec, addr: SocketAddr) -> std::io::Result<Engine> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            queue: Queue::new(spec.max_num_seqs, spec.kv_cache_tokens),
            spec,
            metrics: Metrics::default(),
        });
        let router = router(state.clone());
        let task = tokio::spawn(async move {
            // Connections live in this set: ending the task cuts them.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let service = TowerToHyperService::new(router.clone());
                        connections.spawn(async move {
                            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            if let Err(error) = builder.serve_connection(TokioIo::new(stream), service).await {
                                tracing::debug!(%error, "simulated engine connection ended");
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Engine { addr, state, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn spec(&self) -> &EngineSpec {
        &self.state.spec
    }

    /// Sequences that ran to their end.
    pub fn requests_served(&self) -> u64 {
        self.state.metrics.requests_served()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(state: Arc<State>) -> Router {
    let v1 = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// vLLM's check: with a key, every `/v1` route needs `Bearer <key>`.
async fn authorize(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.spec.api_key {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same(given.as_bytes(), key.as_bytes()) {
            return unauthorized();
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn models(Extract(state): Extract<Arc<State>>) -> Response {
    let spec = &state.spec;
    let created = unix_now();
    let data: Vec<_> = spec
        .served_model_names
        .iter()
        .map(|name| {
            json!({
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": spec.root,
                "parent": null,
                "max_model_len": spec.max_model_len,
                "permission": [{
                    "id": format!("modelperm-{}", uuid::Uuid::new_v4().simple()),
                    "object": "model_permission",
                    "created": created,
                    "allow_create_engine": false,
                    "allow_sampling": true,
                    "allow_logprobs": true,
                    "allow_search_indices": false,
                    "allow_view": true,
                    "allow_fine_tuning": false,
                    "organization": "*",
                    "group": null,
                    "is_blocking": false,
                }],
            })
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn version() -> Response {
    let tag = modelfleet_core::contract::engine::VLLM_IMAGE
        .rsplit_once(":v")
        .map_or("", |(_, tag)| tag);
    axum::Json(json!({"version": tag})).into_response()
}

async fn metrics(Extract(state): Extract<Arc<State>>) -> Response {
    let text = state
        .metrics
        .render(state.spec.model_name(), state.queue.gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// FastAPI's answers for routes and methods it does not have.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"detail": "Not Found"})),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(json!({"detail": "Method Not Allowed"})),
    )
        .into_response()
}
