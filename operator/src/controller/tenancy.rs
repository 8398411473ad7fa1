//! The tenancy step, where a hub manages the cluster: before anything runs
//! in a namespace, its NetworkPolicy and its engines' API key Secret are in
//! place (see [`modelfleet_core::contract::tenancy`]). Applied server-side
//! once per namespace and again after the steady requeue period, so one
//! someone deleted comes back.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use modelfleet_core::contract::admission::AdmissionKey;
use modelfleet_core::contract::tenancy;

use super::apply::{ApplyError, MANAGER};

/// When each namespace's objects were last applied.
#[derive(Debug, Default)]
pub struct Applied(Mutex<HashMap<String, Instant>>);

impl Applied {
    fn due(&self, namespace: &str, every: Duration) -> bool {
        let applied = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        applied
            .get(namespace)
            .is_none_or(|at| at.elapsed() >= every)
    }

    fn done(&self, namespace: &str) {
        let mut applied = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        applied.insert(namespace.to_owned(), Instant::now());
    }
}

/// Applies the namespace's NetworkPolicy and API key Secret unless that
/// was done less than `every` ago.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    key: &AdmissionKey,
    applied: &Applied,
    every: Duration,
) -> Result<(), ApplyError> {
    if !applied.due(namespace, every) {
        return Ok(());
    }
    let params = PatchParams::apply(MANAGER).force();
    let policy = tenancy::network_policy(namespace);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    policies
        .patch(tenancy::NETWORK_POLICY, &params, &Patch::Apply(&policy))
        .await
        .map_err(|source| ApplyError::Apply {
            kind: "NetworkPolicy".to_owned(),
            name: tenancy::NETWORK_POLICY.to_owned(),
            source,
        })?;
    let secret = tenancy::engine_api_key_secret(namespace, key);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    secrets
        .patch(
            tenancy::ENGINE_API_KEY_SECRET,
            &params,
            &Patch::Apply(&secret),
        )
        .await
        .map_err(|source| ApplyError::Apply {
            kind: "Secret".to_owned(),
            name: tenancy::ENGINE_API_KEY_SECRET.to_owned(),
            source,
        })?;
    applied.done(namespace);
    Ok(())
}
