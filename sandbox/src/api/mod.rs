//! The sandbox's Kubernetes API server: the part of the API that
//! modelfleet's operator (kube-rs `Api`, `Controller`, server-side apply,
//! finalizers, events, leases) and `kubectl` use, in process.
//!
//! One [`ApiServer`] is one cluster's API. Its [`router`](ApiServer::router)
//! answers HTTP; [`client`](ApiServer::client) gives a `kube::Client` that
//! calls the router without a socket, as the server's loopback identity;
//! [`client_as`](ApiServer::client_as) one that sends a bearer token;
//! [`serve`](ApiServer::serve) puts the same router on a loopback port
//! (HTTPS, and plain HTTP on the same port) for kubectl and out-of-process
//! clients. Several servers can run in one process; each has its own
//! objects.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use modelfleet_sandbox::api::ApiServer;
//!
//! let server = ApiServer::new();
//! let client = server.client(); // in-process, system:masters
//! let tenant = server.client_as(&server.issue_token("alice", &["tenants"]));
//! let serving = server.serve("127.0.0.1:0".parse().unwrap()).await?;
//! std::fs::write("/tmp/kubeconfig", serving.kubeconfig_yaml("sandbox"))?;
//! server.faults().write_error_rate(0.05);
//! # drop((client, tenant)); Ok(()) }
//! ```
//!
//! A server's objects can be kept in a file across restarts
//! ([`ApiServer::load`], [`ApiServer::keep_snapshot`]; see `snapshot`).
//!
//! ## What it does as the real server does
//!
//! Discovery (`/version`, `/api`, `/apis`, group and resource lists, CRDs
//! appearing and disappearing); namespaces, nodes, pods, services,
//! configmaps, secrets, serviceaccounts, events (core and
//! `events.k8s.io`), leases, deployments, poddisruptionbudgets,
//! networkpolicies, ingresses, ingressclasses, roles, rolebindings,
//! clusterroles, clusterrolebindings, validating admission policies and
//! their bindings (stored, not evaluated), CRDs and custom resources; get, list and watch
//! with label and field selectors, resourceVersion resumption, bookmarks
//! and 410 Gone; create (`generateName`), update with optimistic
//! concurrency, JSON merge, JSON and strategic merge patch, server-side
//! apply with managed fields, conflicts and force; delete with
//! preconditions, finalizers, graceful pod termination and owner-reference
//! garbage collection (background, foreground, orphan); `/status`,
//! `/scale`, `pods/binding` and `pods/log` (`kubectl logs`, from the
//! kubelet's [`PodLogs`](crate::logs::PodLogs)); `generation`; CRD schema pruning,
//! defaulting and validation with the real 422 shape; server-side
//! printing (`Table`) with printer columns; OpenAPI v3 for kubectl's
//! validation and `explain`; `dryRun=All`.
//!
//! Identity and access as kube-apiserver 1.33 with RBAC: bearer tokens
//! (static tokens from [`issue_token`](ApiServer::issue_token), the
//! `kubernetes-admin` token of kubeconfigs, ServiceAccount tokens that
//! stop working when their account is deleted), `system:anonymous` for a
//! request without one, the real 401 for a bad one; impersonation
//! (`kubectl --as`) with the `impersonate` verb; every request
//! authorized (`system:masters`, then RBAC with the real rule matching,
//! subresources, resourceNames and nonResourceURLs) with the real 403
//! wording; the bootstrap ClusterRoles and bindings (`cluster-admin`,
//! `admin`, `edit`, `view`, `system:discovery`, `system:basic-user`,
//! `system:public-info-viewer`); RBAC's escalation checks (`escalate`,
//! `bind`, or holding every granted permission); server-side apply that
//! creates needs `create`; `SelfSubjectAccessReview`,
//! `SelfSubjectRulesReview`, `SubjectAccessReview` and
//! `SelfSubjectReview` (so `kubectl auth can-i`, `can-i --list` and
//! `whoami` work). Pod Security admission with the real checks and
//! messages: `enforce` refuses pods, `warn` (defaulting to a stricter
//! `enforce`) adds `Warning`s to pods and Deployment templates.
//!
//! ## What it does differently
//!
//! - Strategic merge patch uses a table of well-known merge keys instead
//!   of the Go types' tags (see `patch`).
//! - Built-in kinds are checked only where modelfleet could go wrong
//!   (names, containers, deployment selectors, pod spec immutability);
//!   their schemas are not published and unknown fields are kept.
//! - CEL rules (`x-kubernetes-validations`) and string formats in CRD
//!   schemas are not evaluated.
//! - Lists ignore `limit`/`continue` and return everything in one page.
//! - Aggregated discovery and OpenAPI v2 are not served (kubectl falls
//!   back to the legacy discovery documents and uses OpenAPI v3).
//! - Authentication is bearer tokens only: no client certificates, OIDC,
//!   webhook token review or `TokenRequest`; impersonation takes users,
//!   ServiceAccounts and groups but not `Impersonate-Extra-*` or UIDs;
//!   ServiceAccount tokens are opaque (not JWTs) and are checked only
//!   against the account's existence. The serving certificate and its CA
//!   are fixed sandbox material (see `tls`), and plain HTTP is also
//!   answered on the same port (kubectl sends no credentials over it, so
//!   such requests are anonymous).
//! - Authorization is `system:masters` and RBAC only (no Node or webhook
//!   authorizer). Of the bootstrap policy only the roles above exist
//!   (none of the controllers' `system:*` roles); `admin`, `edit` and
//!   `view` carry the rules the real ones aggregate for the kinds served
//!   here, and `aggregationRule`s are kept but not evaluated.
//!   `localsubjectaccessreviews` are not served; access reviews ignore
//!   `fieldSelector`/`labelSelector` attributes and `extra`.
//! - Pod Security admission evaluates every level at `latest` (a version
//!   label is shown in messages but older policy versions are not
//!   applied), has no exemptions and no `audit` mode, inspects only pods
//!   and Deployment templates among workloads, and ignores unreadable
//!   labels; the Windows `hostProcess` check is not implemented.
//! - `pods/log` answers from the simulated kubelet's output (what it knows
//!   of each container, a simulated download's progress) kept in memory,
//!   the last 5,000 lines per container; `previous` is always refused as
//!   for a container that never restarted, and no other `pods/*` proxy
//!   (`exec`, `attach`, `portforward`) is served.
//! - Garbage collection, namespace and CRD cleanup happen inline with the
//!   delete that triggers them, not in background controllers.

mod admission;
mod apply;
mod auth;
mod convert;
mod discovery;
mod error;
mod faults;
mod http;
mod openapi;
mod ops;
mod patch;
mod registry;
mod selector;
mod snapshot;
mod store;
mod table;
mod tls;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use self::faults::{Faults, Verb};
pub use self::snapshot::{SnapshotError, SnapshotKeeper};
use crate::logs::PodLogs;

/// The strings of a JSON array (anything else in it skipped); none when
/// `value` is absent or no array.
pub(crate) fn string_list(value: Option<&serde_json::Value>) -> Vec<String> {
    value
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// How a server behaves; the defaults suit tests and `modelfleet serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiServerOptions {
    /// Changes kept per resource for watches to resume from; older
    /// resourceVersions answer 410 Gone.
    pub history_limit: usize,
    /// Events a watch may fall behind before it is closed.
    pub watch_buffer: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Seeds generated names and cluster IPs.
    pub seed: u64,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        ApiServerOptions {
            history_limit: 10_000,
            watch_buffer: 8_192,
            bookmark_interval: Duration::from_secs(10),
            seed: 0x6D6F_64656C,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<ops::State>,
    faults: Faults,
    /// What the cluster's containers printed, for `pods/log`.
    logs: PodLogs,
    options: ApiServerOptions,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ops::State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One in-process Kubernetes API server. Clones share the same objects.
#[derive(Debug, Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    /// A server with the `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease` namespaces and nothing else.
    pub fn new() -> Self {
        Self::with_options(ApiServerOptions::default())
    }

    pub fn with_options(options: ApiServerOptions) -> Self {
        let state = ops::State::new(options.history_limit, options.watch_buffer, options.seed);
        ApiServer::from_state(state, options)
    }

    /// The HTTP API as an axum router (no socket). A request without an
    /// `Authorization` header is `system:anonymous`, as on the socket.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(http::handle)
            .with_state(self.shared.clone())
    }

    /// A `kube::Client` that calls this server in process, with `default`
    /// as its default namespace, as the loopback identity (user
    /// `system:apiserver` in `system:masters`). Must be called inside a
    /// tokio runtime.
    pub fn client(&self) -> kube::Client {
        let token = self.shared.lock().tokens.loopback().to_owned();
        self.client_as(&token)
    }

    /// A `kube::Client` that calls this server in process and sends
    /// `Authorization: Bearer {token}` with every request.
    pub fn client_as(&self, token: &str) -> kube::Client {
        let value = ::http::HeaderValue::from_str(&format!("Bearer {token}"))
            .unwrap_or_else(|_| ::http::HeaderValue::from_static("Bearer invalid"));
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut request: ::http::Request<kube::client::Body>| {
                request
                    .headers_mut()
                    .insert(::http::header::AUTHORIZATION, value.clone());
                request
            })
            .service(self.router());
        kube::Client::new(service, "default")
    }

    /// A static bearer token (as in a token file) for `username` in
    /// `groups` and `system:authenticated`.
    pub fn issue_token(&self, username: &str, groups: &[&str]) -> String {
        self.shared.lock().tokens.issue(username, groups)
    }

    /// A token for user `system:serviceaccount:{namespace}:{name}` (groups
    /// `system:serviceaccounts`, `system:serviceaccounts:{namespace}`,
    /// `system:authenticated`); it answers 401 while that ServiceAccount
    /// does not exist.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.shared.lock().tokens.service_account(namespace, name)
    }

    /// The token of user `kubernetes-admin` in `system:masters`, what
    /// kubeadm's `admin.conf` carries.
    pub fn admin_token(&self) -> String {
        self.shared.lock().tokens.admin().to_owned()
    }

    /// Where this server reads containers' output for `pods/{name}/log`:
    /// give it to the cluster's kubelet
    /// ([`ClusterOptions::pod_logs`](crate::cluster::ClusterOptions)).
    pub fn pod_logs(&self) -> PodLogs {
        self.shared.logs.clone()
    }

    /// The fault-injection handle of this server.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.current_rv()
    }

    /// Serves the router on `addr` (port 0 picks a free one) until the
    /// handle is shut down or dropped.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<ServingHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let router = self.router();
        let acceptor = tls::acceptor();
        let task = tokio::spawn(async move {
            // Connections live in this set, so ending this task ends them
            // too, open watches included.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let service = TowerToHyperService::new(router.clone());
                        let acceptor = acceptor.clone();
                        connections.spawn(async move {
                            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            // A TLS handshake starts with 0x16; anything
                            // else is plain HTTP.
                            let mut first = [0u8; 1];
                            let tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
                            let ended = if tls {
                                match acceptor.accept(stream).await {
                                    Ok(stream) => builder.serve_connection(TokioIo::new(stream), service).await,
                                    Err(error) => Err(error.into()),
                                }
                            } else {
                                builder.serve_connection(TokioIo::new(stream), service).await
                            };
                            if let Err(error) = ended {
                                tracing::debug!(%error, "sandbox API connection ended");
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(ServingHandle {
            url: format!("http://{addr}"),
            https_url: format!("https://{addr}"),
            addr,
            task,
            admin_token: self.admin_token(),
        })
    }

    /// A kubeconfig for `url` (plain HTTP) with the admin token, with one
    /// cluster, user and context named `cluster_name`, namespace `default`.
    pub fn kubeconfig_yaml(&self, url: &str, cluster_name: &str) -> String {
        kubeconfig_yaml(url, cluster_name, &self.admin_token())
    }
}

/// A kubeconfig for `url` whose user sends `token`; see
/// [`ApiServer::kubeconfig_yaml`]. It trusts the sandbox's CA; kubectl
/// sends the token only when `url` is `https://`.
pub fn kubeconfig_yaml(url: &str, cluster_name: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(tls::ca_pem());
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {cluster_name}\n  \
           cluster:\n    \
             certificate-authority-data: {ca}\n    \
             server: {url}\n\
         users:\n\
         - name: {cluster_name}\n  \
           user:\n    \
             token: {token}\n\
         contexts:\n\
         - name: {cluster_name}\n  \
           context:\n    \
             cluster: {cluster_name}\n    \
             user: {cluster_name}\n    \
             namespace: default\n\
         current-context: {cluster_name}\n\
         preferences: {{}}\n"
    )
}

/// A server listening on a socket; dropping it stops serving.
#[derive(Debug)]
pub struct ServingHandle {
    url: String,
    https_url: String,
    addr: SocketAddr,
    task: JoinHandle<()>,
    admin_token: String,
}

impl ServingHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `https://127.0.0.1:PORT`, the same port over TLS (what kubeconfigs
    /// name: kubectl sends credentials only over HTTPS).
    pub fn https_url(&self) -> &str {
        &self.https_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig pointing at this server, as `kubernetes-admin`.
    pub fn kubeconfig_yaml(&self, cluster_name: &str) -> String {
        kubeconfig_yaml(&self.https_url, cluster_name, &self.admin_token)
    }

    /// A kubeconfig pointing at this server whose user sends `token`.
    pub fn kubeconfig_yaml_with_token(&self, cluster_name: &str, token: &str) -> String {
        kubeconfig_yaml(&self.https_url, cluster_name, token)
    }

    /// Stops accepting and closes every open connection.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServingHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
