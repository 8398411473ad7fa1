//! Where a deployment's requests go: its Ready replicas, listed through
//! its cluster and kept a moment, each engine's URL, and the key the
//! engines of a tenant's namespace take.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use tracing::warn;

use super::{Gateway, OpenAiError, Operation};
use crate::clusters::Engine;
use crate::http::AppState;
use crate::ids::DeploymentId;
use crate::store::Deployment;

/// How long a deployment's replicas, once listed, are used before they
/// are listed again.
const ENGINES_FOR: Duration = Duration::from_secs(2);
/// How long the last listing serves when listing again fails.
const STALE_ENGINES_FOR: Duration = Duration::from_secs(30);

/// Each deployment's replicas, and when they were listed.
pub(super) type Listed = HashMap<DeploymentId, (Instant, Arc<Vec<Engine>>)>;

/// Engine keys by cluster, then namespace: HMACs of the hub's key, derived
/// once per process rather than twice per request (the keyring is fixed
/// for a process's life).
pub(super) type EngineKeys = HashMap<String, HashMap<String, HeaderValue>>;

/// Engine URLs kept at most; more are engines long gone.
const MAX_ENGINE_URLS: usize = 10_000;

impl Gateway {
    /// Where `operation` goes on the engine at `addr`.
    pub(super) fn url(
        &self,
        addr: SocketAddr,
        operation: Operation,
    ) -> Result<reqwest::Url, OpenAiError> {
        let mut urls = self.urls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(url) = urls.get(&(addr, operation)) {
            return Ok(url.clone());
        }
        let url = reqwest::Url::parse(&format!("http://{addr}{}", operation.path()))
            .map_err(|_| OpenAiError::internal())?;
        // Engines come and go (pods are replaced): keep the map bounded.
        if urls.len() >= MAX_ENGINE_URLS {
            urls.clear();
        }
        urls.insert((addr, operation), url.clone());
        Ok(url)
    }

    /// What a request to `deployment`'s engines authenticates with.
    pub(super) fn engine_authorization(
        &self,
        state: &AppState,
        deployment: &Deployment,
    ) -> Result<HeaderValue, OpenAiError> {
        let known = |keys: &EngineKeys| {
            keys.get(&deployment.cluster)
                .and_then(|n| n.get(&deployment.namespace))
                .cloned()
        };
        if let Some(value) = known(
            &self
                .engine_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return Ok(value);
        }
        let key = state
            .registry()
            .admission_key(&deployment.cluster)
            .map_err(|_| {
                OpenAiError::unavailable(
                    format!(
                        "the cluster of `{}` is not connected to this hub; retry shortly",
                        deployment.name
                    ),
                    5,
                )
            })?
            .engine_api_key(&deployment.namespace);
        let mut value =
            HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| OpenAiError::internal())?;
        value.set_sensitive(true);
        self.engine_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(deployment.cluster.clone())
            .or_default()
            .insert(deployment.namespace.clone(), value.clone());
        Ok(value)
    }

    /// Lists `deployment`'s replicas anew at the next request.
    pub(super) fn forget(&self, deployment: DeploymentId) {
        self.engines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&deployment);
    }

    /// `deployment`'s Ready replicas, as last listed.
    pub(super) async fn engines(
        &self,
        state: &AppState,
        deployment: &Deployment,
    ) -> Result<Arc<Vec<Engine>>, OpenAiError> {
        let fresh = |at: &Instant, within: Duration| at.elapsed() < within;
        let cached = |engines: &Mutex<Listed>| {
            engines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&deployment.id)
                .cloned()
        };
        if let Some((at, engines)) = cached(&self.engines)
            && fresh(&at, ENGINES_FOR)
        {
            return Ok(engines);
        }
        let _listing = self.listing.lock().await;
        if let Some((at, engines)) = cached(&self.engines)
            && fresh(&at, ENGINES_FOR)
        {
            return Ok(engines);
        }
        let listed = state
            .registry()
            .ready_engines(&deployment.cluster, &deployment.namespace, &deployment.name)
            .await;
        match listed {
            Ok(engines) => {
                let engines = Arc::new(engines);
                self.engines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(deployment.id, (Instant::now(), engines.clone()));
                Ok(engines)
            }
            Err(e) => {
                warn!(deployment = %deployment.id, error = %e, "listing a deployment's engines");
                match cached(&self.engines) {
                    Some((at, engines)) if fresh(&at, STALE_ENGINES_FOR) => Ok(engines),
                    _ => Err(OpenAiError::unavailable(
                        format!(
                            "the replicas of `{}` cannot be reached now; retry shortly",
                            deployment.name
                        ),
                        5,
                    )),
                }
            }
        }
    }
}
