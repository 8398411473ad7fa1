//! The inference gateway (issue 20): OpenAI's API on the hub's listener —
//! `GET /v1/models`, `POST /v1/chat/completions`, `/v1/completions` and
//! `/v1/embeddings` — for a tenant's API keys, where `model` names one of
//! the tenant's deployments. Each request goes to one Ready replica of it
//! ([`balance`]), with the engines' API key for the deployment's namespace
//! (derived from the cluster's admission key: no tenant ever holds it),
//! and the answer comes back as the engine gives it; a streamed answer
//! event by event ([`stream`]).
//!
//! A request is tried on another replica only before any byte of its
//! answer, and only when the replica refused the connection or answered
//! 503; a replica that refused or answered 5xx is left out for a while. A
//! client that goes away drops the engine's connection, which cancels the
//! request there.

mod answer;
mod balance;
mod budget;
pub(crate) mod cache;
mod engines;
mod error;
mod limits;
mod meter;
mod metrics;
mod screen;
mod stream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use tracing::{debug, warn};

use crate::config::ApiSettings;
use crate::http::AppState;
use crate::identity::{Permission, Principal};
use crate::ids::DeploymentId;
use crate::ids::{ApiKeyId, RequestId, TenantId};
use crate::service::Caller;
use crate::service::Pending;
use crate::service::throttle::{Limit, Limiter, MAX_KEYS};
use crate::store::{Deployment, Store, StoreError, TokenRecord};
use answer::{Bill, Whole, answer_headers, pass_stream, pass_whole, prompt_bytes, read_whole};
pub use error::{AnswerAsIs, OpenAiError};
use limits::TokenRate;
pub use meter::{FlushError, Metering};
pub use metrics::GatewayMetrics;

/// Connecting to a replica.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// From sending a request to the answer's headers (a non-streamed answer
/// comes whole) or between two chunks of a streamed one.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);
/// The most bytes of a non-streamed answer (embeddings of a large batch).
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// Tries of one request, on distinct replicas.
const TRIES: usize = 3;

/// What the four operations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Operation {
    Chat,
    Completion,
    Embedding,
}

impl Operation {
    fn path(self) -> &'static str {
        match self {
            Operation::Chat => "/v1/chat/completions",
            Operation::Completion => "/v1/completions",
            Operation::Embedding => "/v1/embeddings",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Completion => "completion",
            Operation::Embedding => "embedding",
        }
    }
}

/// The gateway's state in one hub process: the replicas it knows, the
/// requests in flight on each, its HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    balancer: Arc<balance::Balancer>,
    engines: Arc<Mutex<engines::Listed>>,
    /// One listing per deployment at a time.
    listing: Arc<tokio::sync::Mutex<()>>,
    metrics: GatewayMetrics,
    per_key: Arc<Limiter<ApiKeyId>>,
    per_tenant: Arc<Limiter<TenantId>>,
    /// Requests in flight per deployment.
    in_flight: Arc<Mutex<HashMap<DeploymentId, usize>>>,
    replica_concurrency: usize,
    /// Tenants' budget verdicts, cached a few seconds.
    budgets: Arc<budget::BudgetGate>,
    /// Tenants' input screens, cached; the classifier's client.
    screens: Arc<screen::Screens>,
    metering: Metering,
    key_tokens: Arc<TokenRate<ApiKeyId>>,
    tenant_tokens: Arc<TokenRate<TenantId>>,
    /// Keys that authenticated and deployments found by name, moments ago.
    keys: Arc<cache::KeyCache>,
    deployments: Arc<cache::DeploymentCache>,
    /// The `Authorization` each cluster's engines in each namespace take.
    engine_keys: Arc<Mutex<engines::EngineKeys>>,
    /// Each engine's URL per operation, parsed once.
    urls: Arc<Mutex<HashMap<(SocketAddr, Operation), reqwest::Url>>>,
}

/// A request's place among its deployment's requests in flight; dropping
/// it gives the place back.
struct Slot {
    in_flight: Arc<Mutex<HashMap<DeploymentId, usize>>>,
    deployment: DeploymentId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = in_flight.get_mut(&self.deployment) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(&self.deployment);
            }
        }
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(metrics: GatewayMetrics, settings: &ApiSettings, store: Store) -> Self {
        let spool = settings.gateway_spool_dir.as_deref();
        let metering = Metering::new(store.clone(), spool).unwrap_or_else(|e| {
            tracing::error!(
                dir = %spool.map(|d| d.display().to_string()).unwrap_or_default(),
                error = %e,
                "the gateway's spool directory cannot be used; metered tokens wait in memory"
            );
            Metering::new(store, None).expect("a meter without a spool needs no files")
        });
        // No proxy (an engine is a pod address, never reached through one
        // the environment names), no redirects (an engine does not send
        // one; following it would carry the engine key elsewhere).
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(ANSWER_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .expect("a plain HTTP client builds");
        Gateway {
            http,
            balancer: Arc::default(),
            engines: Arc::default(),
            listing: Arc::default(),
            metrics,
            per_key: Arc::new(Limiter::new(
                per_minute(settings.gateway_key_requests_per_minute),
                MAX_KEYS,
            )),
            per_tenant: Arc::new(Limiter::new(
                per_minute(settings.gateway_tenant_requests_per_minute),
                MAX_KEYS,
            )),
            in_flight: Arc::default(),
            replica_concurrency: settings.gateway_replica_concurrency as usize,
            budgets: Arc::default(),
            screens: Arc::default(),
            metering,
            key_tokens: Arc::new(TokenRate::new(settings.gateway_key_tokens_per_minute)),
            tenant_tokens: Arc::new(TokenRate::new(settings.gateway_tenant_tokens_per_minute)),
            keys: Arc::default(),
            deployments: Arc::default(),
            engine_keys: Arc::default(),
            urls: Arc::default(),
        }
    }

    /// The meter that records each answered request's tokens.
    pub fn metering(&self) -> &Metering {
        &self.metering
    }

    /// Writes every metered request taken so far: what a stopping process
    /// calls after its last answer.
    pub async fn flush(&self) -> Result<u64, FlushError> {
        self.metering.flush().await
    }

    /// A place for one more request of `deployment`, whose `replicas` are
    /// Ready, within the replicas' concurrency.
    fn slot(&self, deployment: &Deployment, replicas: usize) -> Result<Slot, OpenAiError> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = in_flight.entry(deployment.id).or_insert(0);
        let limit = self.replica_concurrency.saturating_mul(replicas);
        if self.replica_concurrency > 0 && *n >= limit {
            return Err(OpenAiError::too_many(
                format!(
                    "`{}` has {limit} requests in flight, all its {replicas} ready replicas take \
                     at once; retry in a moment",
                    deployment.name
                ),
                1,
            ));
        }
        *n += 1;
        Ok(Slot {
            in_flight: self.in_flight.clone(),
            deployment: deployment.id,
        })
    }

    /// Takes one request from the key's and the tenant's buckets.
    fn admit(&self, caller: &Caller, tenant: TenantId) -> Result<(), OpenAiError> {
        let now = Instant::now();
        let refused = |wait: Duration, whose: &str| {
            let seconds = u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX);
            OpenAiError::too_many(
                format!("Rate limit reached: {whose} requests per minute; retry in {seconds} s"),
                seconds,
            )
        };
        let refused_tokens = |wait: Duration, whose: &str| {
            let seconds = u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX);
            OpenAiError::too_many(
                format!("Rate limit reached: {whose} tokens per minute; retry in {seconds} s"),
                seconds,
            )
        };
        if let Principal::ApiKey { id, .. } = &caller.actor.principal {
            self.key_tokens
                .admit(id, now)
                .map_err(|wait| refused_tokens(wait, "this key's"))?;
        }
        self.tenant_tokens
            .admit(&tenant, now)
            .map_err(|wait| refused_tokens(wait, "your organisation's"))?;
        if let Principal::ApiKey { id, .. } = &caller.actor.principal {
            self.per_key
                .take(id, None, now)
                .map_err(|wait| refused(wait, "this key's"))?;
        }
        self.per_tenant
            .take(&tenant, None, now)
            .map_err(|wait| refused(wait, "your organisation's"))
    }
}

/// A bucket of `n` requests refilled evenly over a minute; 0 is no limit.
fn per_minute(n: u32) -> Limit {
    Limit {
        burst: n,
        refill: Duration::from_secs(60) / n.max(1),
    }
}

/// The gateway's routes. The caller merges them beside `/api/v1`.
pub fn router(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(models))
        .route(
            "/v1/chat/completions",
            post(|s, p, b| infer(s, p, b, Operation::Chat)),
        )
        .route(
            "/v1/completions",
            post(|s, p, b| infer(s, p, b, Operation::Completion)),
        )
        .route(
            "/v1/embeddings",
            post(|s, p, b| infer(s, p, b, Operation::Embedding)),
        )
        .layer(DefaultBodyLimit::max(max_body))
}

/// The tenant an inference request acts for.
async fn tenant_of(state: &AppState, parts: &Parts) -> Result<(Caller, TenantId), OpenAiError> {
    let caller = crate::http::auth::authenticate_cached(state, parts, &state.gateway().keys)
        .await
        .map_err(|e| match e.status() {
            StatusCode::TOO_MANY_REQUESTS => {
                OpenAiError::too_many("too many failed API keys from this address", 60)
            }
            _ => OpenAiError::unauthorized(),
        })?;
    // A person's session that must first change its password or enrol a
    // second factor does nothing else: not on `/api/v1`, not here.
    match caller.pending {
        Some(Pending::PasswordChange) => {
            return Err(OpenAiError::forbidden(
                "this account must choose a new password before anything else: change it \
                 (POST /api/v1/users/me/password, or the console) and sign in again",
            ));
        }
        Some(Pending::SecondFactor) => {
            return Err(OpenAiError::forbidden(
                "your role must sign in with a second factor: enrol an authenticator app \
                 first (POST /api/v1/users/me/totp, or the console)",
            ));
        }
        None => {}
    }
    caller.require(Permission::Infer).map_err(|_| {
        OpenAiError::forbidden(
            "your role may not call models; a tenant-admin or developer key (or an \
             inference-only key) may",
        )
    })?;
    let tenant = caller.actor.tenant.ok_or_else(|| {
        OpenAiError::forbidden(
            "models are called with a tenant's API key; platform staff have no deployments",
        )
    })?;
    Ok((caller, tenant))
}

async fn models(State(state): State<AppState>, parts: Parts) -> Result<Response, OpenAiError> {
    let (caller, _) = tenant_of(&state, &parts).await?;
    let deployments = state
        .store()
        .deployments(caller.scope(), false)
        .await
        .map_err(|_| OpenAiError::internal())?;
    let data: Vec<serde_json::Value> = deployments
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.name,
                "object": "model",
                "created": d.created_at.timestamp(),
                "owned_by": "modelfleet",
                "root": d.model,
                "ready": d.ready_replicas > 0,
            })
        })
        .collect();
    Ok(axum::Json(serde_json::json!({"object": "list", "data": data})).into_response())
}

/// The request's text whose prefix decides its replica.
fn prompt_of(request: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let mut prompt = Vec::new();
    if let Some(messages) = request.get("messages").and_then(|m| m.as_array()) {
        for m in messages {
            if let Some(role) = m.get("role").and_then(|r| r.as_str()) {
                prompt.extend_from_slice(role.as_bytes());
                prompt.push(0);
            }
            match m.get("content") {
                Some(serde_json::Value::String(text)) => prompt.extend_from_slice(text.as_bytes()),
                Some(other) => prompt.extend_from_slice(other.to_string().as_bytes()),
                None => {}
            }
            prompt.push(0);
            if prompt.len() >= balance::AFFINITY_BYTES {
                break;
            }
        }
    } else if let Some(p) = request.get("prompt") {
        match p {
            serde_json::Value::String(text) => prompt.extend_from_slice(text.as_bytes()),
            other => prompt.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    prompt
}

async fn infer(
    State(state): State<AppState>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
    operation: Operation,
) -> Result<Response, OpenAiError> {
    let (caller, tenant) = tenant_of(&state, &parts).await?;
    state.gateway().admit(&caller, tenant)?;
    state.gateway().budgets.check(state.store(), tenant).await?;
    if state.gateway().metering.is_backed_up() {
        return Err(OpenAiError::unavailable(
            "requests cannot be metered right now (the usage database is behind); retry shortly",
            10,
        ));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            OpenAiError::too_large(state.settings().gateway_max_body_bytes)
        }
        _ => OpenAiError::invalid("body", "the request body could not be read"),
    })?;
    let mut request: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|e| OpenAiError::invalid("body", format!("the body is not a JSON object: {e}")))?;
    screen::check(&state, &caller, tenant, operation, &request).await?;
    let name = match request.get("model") {
        Some(serde_json::Value::String(name)) if !name.is_empty() => name.clone(),
        _ => {
            return Err(OpenAiError::invalid(
                "model",
                "`model` must name one of your deployments",
            ));
        }
    };
    let deployment = match state.gateway().deployments.get(tenant, &name) {
        Some(d) => d,
        None => match state
            .store()
            .deployment_by_name(caller.scope(), tenant, &name)
            .await
        {
            Ok(d) => {
                let d = Arc::new(d);
                state.gateway().deployments.put(&d);
                d
            }
            Err(StoreError::NotFound(_)) => return Err(OpenAiError::model_not_found(&name)),
            Err(e) => {
                warn!(error = %e, "reading a deployment for the gateway");
                return Err(OpenAiError::internal());
            }
        },
    };
    let streamed = operation != Operation::Embedding
        && request.get("stream").and_then(|s| s.as_bool()) == Some(true);
    let mut client_wants_usage = false;
    if streamed {
        let options = request
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        let Some(options) = options.as_object_mut() else {
            return Err(OpenAiError::invalid(
                "stream_options",
                "`stream_options` must be an object",
            ));
        };
        client_wants_usage = options.get("include_usage").and_then(|u| u.as_bool()) == Some(true);
        options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
    }
    let prompt = prompt_of(&request);
    let affinity = balance::affinity(&prompt);
    // The engine serves the model under its own name.
    request.insert(
        "model".to_owned(),
        serde_json::Value::String(deployment.model.clone()),
    );
    let upstream_body =
        Bytes::from(serde_json::to_vec(&request).map_err(|_| OpenAiError::internal())?);
    let gateway = state.gateway();
    let authorization = gateway.engine_authorization(&state, &deployment)?;
    let mut engines = gateway.engines(&state, &deployment).await?;
    if engines.is_empty() {
        return Err(OpenAiError::unavailable(
            format!(
                "`{name}` has no ready replica (it is {}); retry when it is Ready",
                deployment.phase
            ),
            5,
        ));
    }
    let labels = metrics::Labels::new(&gateway.metrics, &deployment, operation.label());
    let slot = gateway.slot(&deployment, engines.len()).inspect_err(|_| {
        labels.failed("concurrency");
    })?;
    let bill = Bill {
        metering: gateway.metering.clone(),
        rates: (gateway.key_tokens.clone(), gateway.tenant_tokens.clone()),
        record: TokenRecord {
            request: RequestId::new(),
            tenant,
            deployment: deployment.id,
            api_key: match &caller.actor.principal {
                Principal::ApiKey { id, .. } => Some(*id),
                _ => None,
            },
            model: deployment.model.clone(),
            cluster: deployment.cluster.clone(),
            operation: operation.label().to_owned(),
            status: 0,
            input_tokens: 0,
            output_tokens: 0,
            at: crate::store::now(),
            first_token_ms: None,
            duration_ms: None,
        },
        prompt_bytes: prompt_bytes(&request),
    };
    let started = Instant::now();
    let mut tried = Vec::new();
    let mut last_error = None;
    let mut listed_again = false;
    while tried.len() < TRIES {
        let Some(lease) = gateway
            .balancer
            .pick(&engines, affinity, &tried, Instant::now())
        else {
            // Every replica of the last listing failed: it may be up to
            // two seconds old, so list once more before giving up.
            if listed_again {
                break;
            }
            listed_again = true;
            gateway.forget(deployment.id);
            engines = gateway.engines(&state, &deployment).await?;
            continue;
        };
        let addr = lease.engine.addr;
        tried.push(addr);
        let sent = gateway
            .http
            .post(gateway.url(addr, operation)?)
            .header(header::AUTHORIZATION, authorization.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(upstream_body.clone())
            .send();
        let answer = match tokio::time::timeout(ANSWER_TIMEOUT, sent).await {
            Err(_) => {
                labels.failed("timeout");
                return Err(OpenAiError::gateway_timeout(format!(
                    "`{name}` did not answer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) if e.is_connect() => {
                debug!(%addr, error = %e, "an engine refused the connection");
                gateway.balancer.eject(addr, Instant::now());
                last_error = Some("a replica refused the connection");
                continue;
            }
            Ok(Err(e)) if e.is_timeout() => {
                gateway.balancer.eject(addr, Instant::now());
                labels.failed("timeout");
                return Err(OpenAiError::gateway_timeout(format!(
                    "`{name}` did not answer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) => {
                // Reset, or gone before its headers (a replica stopped
                // mid-request): nothing reached the client, so another
                // replica may answer it.
                debug!(%addr, error = %e, "an engine's answer failed");
                gateway.balancer.eject(addr, Instant::now());
                last_error = Some("a replica failed before answering");
                continue;
            }
            Ok(Ok(answer)) => answer,
        };
        let status = answer.status();
        if status.is_server_error() {
            gateway.balancer.eject(addr, Instant::now());
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            last_error = Some("a replica was unavailable");
            continue;
        }
        let head = answer_headers(&answer, bill.record.request);
        if streamed && status.is_success() {
            // The first chunk is awaited here, so a replica that breaks
            // before it sends anything is one more try, not a failure.
            let mut upstream = answer.bytes_stream();
            let first = loop {
                match upstream.next().await {
                    Some(Ok(chunk)) if chunk.is_empty() => {}
                    Some(Ok(chunk)) => break Some(chunk),
                    Some(Err(_)) => break None,
                    None => break Some(Bytes::new()),
                }
            };
            let Some(first) = first else {
                gateway.balancer.eject(addr, Instant::now());
                last_error = Some("a replica's stream broke before its first event");
                continue;
            };
            let upstream = futures::stream::iter([Ok(first)]).chain(upstream);
            return Ok(pass_stream(
                head,
                status.as_u16(),
                upstream,
                (lease, slot),
                client_wants_usage,
                (labels, bill),
                started,
            ));
        }
        match read_whole(answer).await {
            Ok(body) => {
                return Ok(pass_whole(
                    head,
                    status,
                    body,
                    (lease, slot),
                    (labels, bill),
                    started,
                ));
            }
            Err(Whole::CutOff) => {
                gateway.balancer.eject(addr, Instant::now());
                last_error = Some("a replica's answer was cut off");
                continue;
            }
            Err(Whole::TooLarge) => {
                labels.failed("too_large");
                return Err(OpenAiError::upstream(format!(
                    "the replica's answer is larger than {} MiB",
                    MAX_ANSWER_BYTES >> 20
                )));
            }
        }
    }
    labels.failed("unavailable");
    Err(OpenAiError::unavailable(
        format!(
            "no replica of `{name}` could take the request ({}); retry shortly",
            last_error.unwrap_or("all were tried")
        ),
        2,
    ))
}
