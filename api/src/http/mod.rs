//! The hub's REST API: axum under `/api/v1`, JSON in and out, errors as
//! RFC 9457 problem documents, the OpenAPI 3.1 document generated from the
//! handlers at `/api/openapi.json` with a Swagger UI at `/api/docs`, and
//! `/healthz`, `/readyz`, `/metrics`.
//!
//! One module per resource under `v1/`, named after its URL segment, each
//! with its own `router()` and its request and response types; they are
//! assembled here and nowhere else. Handlers are thin: they authenticate
//! the [`Caller`], extract and validate the request, call the operation on
//! the [`crate::service::Hub`], and map what it returns to JSON or a
//! problem document; the operation checks tenant and role and audits.

pub(crate) mod auth;
pub mod document;
pub mod error;
pub mod extract;
mod health;
pub mod layers;
pub mod metrics;
pub mod page;
pub(crate) mod schema;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use modelfleet_core::fleet::Cloud;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use auth::Caller;
pub use error::{ApiError, Problem};
pub use layers::audit::{AUDIT_ID_HEADER, origin};
pub use layers::idempotency::{IDEMPOTENCY_KEY, REPLAYED};
pub use layers::{REQUEST_ID_HEADER, RequestId};
pub use metrics::HttpMetrics;
pub use v1::compliance::ReportRenderer;

use crate::audit::ExportTarget;
use crate::clusters::ClusterRegistry;
use crate::config::ApiSettings;
use crate::secret::Keyring;
use crate::service::Hub;
use crate::store::{Cluster, Store, StoreError};

/// What every handler shares: the hub's services, and what only HTTP
/// needs (metrics, the report renderer). Cheap to clone: one reference
/// count, since every layer and handler of every request takes a clone
/// (the gateway's benchmark found dozens of shared counts bumped per
/// request when each part was cloned on its own).
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

#[derive(Clone)]
struct Parts {
    hub: Hub,
    metrics: Arc<HttpMetrics>,
    report_renderer: Option<Arc<dyn ReportRenderer>>,
    gateway: crate::gateway::Gateway,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("hub", &self.0.hub)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        registry: ClusterRegistry,
        settings: ApiSettings,
    ) -> Self {
        AppState::from_hub(Hub::new(store, keyring, registry, settings))
    }

    pub fn from_hub(hub: Hub) -> Self {
        let metrics = Arc::new(HttpMetrics::default());
        let gateway = crate::gateway::Gateway::new(
            metrics.gateway().clone(),
            hub.settings(),
            hub.store().clone(),
        );
        AppState(Arc::new(Parts {
            hub,
            gateway,
            metrics,
            report_renderer: None,
        }))
    }

    /// The hub's services: what handlers, the console and the background
    /// loops call.
    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }

    /// The inference gateway's replicas and connections in this process.
    pub fn gateway(&self) -> &crate::gateway::Gateway {
        &self.0.gateway
    }

    /// Where `POST /api/v1/audit/exports` writes.
    pub fn with_audit_target(mut self, target: ExportTarget) -> Self {
        let parts = Arc::make_mut(&mut self.0);
        parts.hub = parts.hub.clone().with_audit_target(target);
        self
    }

    pub fn audit_target(&self) -> Option<&ExportTarget> {
        self.0.hub.audit_target()
    }

    /// Lets the compliance report be served as HTML and PDF.
    pub fn with_report_renderer(mut self, renderer: Arc<dyn ReportRenderer>) -> Self {
        Arc::make_mut(&mut self.0).report_renderer = Some(renderer);
        self
    }

    pub fn report_renderer(&self) -> Option<&Arc<dyn ReportRenderer>> {
        self.0.report_renderer.as_ref()
    }

    pub fn store(&self) -> &Store {
        self.0.hub.store()
    }

    pub fn keyring(&self) -> &Keyring {
        self.0.hub.keyring()
    }

    pub fn registry(&self) -> &ClusterRegistry {
        self.0.hub.registry()
    }

    pub fn settings(&self) -> &ApiSettings {
        self.0.hub.settings()
    }

    pub fn metrics(&self) -> &HttpMetrics {
        &self.0.metrics
    }

    /// Registers (once; later calls find the row) and connects an embedded
    /// sandbox cluster that runs in this process: how `modelfleet serve`
    /// puts its sandbox clusters in front of the API.
    pub async fn register_sandbox_cluster(
        &self,
        name: &str,
        cloud: Cloud,
        region: &str,
        client: kube::Client,
    ) -> Result<Cluster, StoreError> {
        self.0
            .hub
            .register_sandbox_cluster(name, cloud, region, client)
            .await
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "modelfleet hub API",
        description = "Deploy large language models across clusters and clouds, within each tenant's quota.\n\n\
            Authenticate with `Authorization: Bearer <token>`: a tenant API key, or a session token from `POST /api/v1/sessions`. \
            Errors are RFC 9457 problem documents (`application/problem+json`). \
            Authenticated POST requests may carry an `Idempotency-Key` header to make retries safe.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "sessions", description = "Signing in with a password"),
        (name = "tenants", description = "Tenants and their quotas (platform admins)"),
        (name = "users", description = "A tenant's people"),
        (name = "api-keys", description = "A tenant's API keys"),
        (name = "clusters", description = "Registered clusters, their pools and prices (platform admins)"),
        (name = "plans", description = "Sizing and placement across every cluster"),
        (name = "models", description = "Models the catalog does not know, sized from their own files"),
        (name = "prices", description = "The price catalog billing rates usage with"),
        (name = "billing", description = "Usage, invoices, budgets, discounts and billing exports"),
        (name = "deployments", description = "Models deployed by a tenant"),
        (name = "quota", description = "A tenant's limits and what is in use"),
        (name = "audit", description = "The tamper-evident audit trail (auditors, platform and tenant admins)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A tenant API key (`mf_…`) or a session token (`mfs_…`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every `/api/v1` resource's routes with their OpenAPI description, each
/// named after its module.
fn resources() -> Vec<(&'static str, OpenApiRouter<AppState>)> {
    vec![
        ("sessions", v1::sessions::router()),
        ("tenants", v1::tenants::router()),
        ("users", v1::users::router()),
        ("api_keys", v1::api_keys::router()),
        ("clusters", v1::clusters::router()),
        ("plans", v1::plans::router()),
        ("models", v1::models::router()),
        ("prices", v1::prices::router()),
        ("usage", v1::usage::router()),
        ("invoices", v1::invoices::router()),
        ("billing", v1::billing::router()),
        ("deployments", v1::deployments::router()),
        ("quota", v1::quota::router()),
        ("audit", v1::audit::router()),
        ("compliance", v1::compliance::router()),
    ]
}

/// Every `/api/v1` route, with its OpenAPI description.
fn api_v1() -> OpenApiRouter<AppState> {
    let v1 = resources()
        .into_iter()
        .fold(OpenApiRouter::new(), |v1, (_, resource)| v1.merge(resource));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1)
}

/// The routes' description finished with what every operation shares.
fn finish(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    utoipa::Modify::modify(&document::CommonProblems, &mut openapi);
    openapi
}

/// The OpenAPI 3.1 document the API serves at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    finish(api_v1().into_openapi())
}

/// Each resource module's part of the document as it describes itself
/// alone, by module. Merging keeps the first schema of a name and drops
/// later ones silently, so the contract test compares every module's
/// schemas with the document's: two types of one name cannot both be
/// right.
pub fn openapi_parts() -> Vec<(&'static str, utoipa::openapi::OpenApi)> {
    resources()
        .into_iter()
        .map(|(name, resource)| (name, resource.into_openapi()))
        .collect()
}

/// The whole HTTP surface of the hub, ready to serve.
pub fn router(state: AppState) -> Router {
    router_with_console(state, Router::new())
}

/// The inference gateway alone, as `modelfleet gateway` serves it: the
/// gateway's `/v1/…` routes with the probes and `/metrics`, behind the same
/// layers as on the hub's listener (request ids, client addresses behind
/// trusted proxies, request metrics) — no `/api/v1`, no console.
pub fn gateway_router(state: AppState) -> Router {
    Router::new()
        .merge(crate::gateway::router(
            state.settings().gateway_max_body_bytes,
        ))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::render))
        .with_state(state.clone())
        .layer(from_fn_with_state(state.0.metrics.clone(), metrics::track))
        .layer(from_fn_with_state(state.clone(), layers::client_addr))
        .layer(from_fn(layers::problems))
        .layer(from_fn(layers::request_id))
}

/// [`router`] with the web console's pages at the root. The console passes
/// the same audit layer and body limit as the API (its writes and refusals
/// are recorded alike), and answers its errors as HTML pages of its own,
/// which the problem layer leaves alone.
pub fn router_with_console(state: AppState, console: Router<AppState>) -> Router {
    let (v1, openapi) = api_v1().split_for_parts();
    let openapi = finish(openapi);
    let max_body = state.settings().max_body_bytes;
    let v1 = v1
        .layer(from_fn_with_state(
            state.clone(),
            layers::idempotency::idempotency,
        ))
        .layer(from_fn_with_state(state.clone(), layers::audit::audit))
        .layer(DefaultBodyLimit::max(max_body));
    let console = console
        .layer(from_fn_with_state(state.clone(), layers::audit::audit))
        .layer(DefaultBodyLimit::max(max_body));
    Router::new()
        .merge(v1)
        .merge(crate::gateway::router(
            state.settings().gateway_max_body_bytes,
        ))
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::render))
        .merge(console)
        .with_state(state.clone())
        .layer(from_fn_with_state(state.0.metrics.clone(), metrics::track))
        .layer(from_fn_with_state(state.clone(), layers::client_addr))
        .layer(from_fn(layers::problems))
        .layer(from_fn(layers::request_id))
}
