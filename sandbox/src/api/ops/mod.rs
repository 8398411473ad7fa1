//! API semantics over the store: what get, list, create, update, patch,
//! apply and delete do to objects, independent of HTTP. Every write goes
//! through one pipeline (`write::finish`).

pub mod builtin;
pub mod delete;
mod hooks;
pub mod patching;
pub mod subresources;
mod write;

pub use write::{create, update};
pub(crate) use write::{create_from, replace_from};

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::apply::{Scope, fieldset::Shape};
use super::auth::{UserInfo, authn::Tokens, bootstrap};
use super::convert::to_view;
use super::error::{ApiError, ApiResult};
use super::faults::Rng;
use super::registry::{self, GroupResource, Registry, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::snapshot::Restored;
use super::store::{ObjectKey, Store};

/// Everything behind one API server's lock.
#[derive(Debug)]
pub struct State {
    pub registry: Registry,
    pub store: Store,
    pub(crate) rng: Rng,
    next_ip: u32,
    /// The bearer tokens this server accepts.
    pub tokens: Tokens,
}

/// `fieldValidation`: what to do with fields the schema does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// How a write was asked for.
#[derive(Debug, Clone)]
pub struct WriteParams {
    pub dry_run: bool,
    pub manager: String,
    pub validation: FieldValidation,
    pub force: bool,
    /// Who writes; `None` for the server's own writes, which admission's
    /// RBAC escalation checks do not apply to.
    pub user: Option<UserInfo>,
}

/// The result of a write, in the requested version.
#[derive(Debug)]
pub struct Written {
    pub object: Value,
    pub created: bool,
    pub warnings: Vec<String>,
}

/// Which resource a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub ty: Arc<ResourceType>,
    pub version: String,
    pub namespace: Option<String>,
}

impl Target {
    pub fn key(&self, name: &str) -> ObjectKey {
        (self.namespace.clone().unwrap_or_default(), name.to_owned())
    }

    fn scope(&self, status: bool) -> Scope {
        if status {
            Scope::StatusOnly
        } else if self.ty.has_status(&self.version) {
            Scope::NoStatus
        } else {
            Scope::All
        }
    }

    fn schema(&self) -> Option<&Value> {
        self.ty
            .version(&self.version)
            .and_then(|v| v.schema.as_ref())
    }

    fn shape(&self) -> Shape<'_> {
        match self.schema() {
            Some(schema) => Shape::Schema(schema),
            None if self.ty.crd.is_some() => Shape::Unknown,
            None => Shape::Builtin,
        }
    }
}

/// Current time as the API prints it.
pub fn now() -> String {
    utc_now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Now, as `modelfleet_clock` tells it (the wall clock, or a test's
/// simulated one).
pub fn utc_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(modelfleet_clock::now())
}

pub fn meta<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl State {
    pub fn new(history_limit: usize, channel_capacity: usize, seed: u64) -> Self {
        let mut state = Self::empty(history_limit, channel_capacity, seed);
        state.bootstrap();
        state
    }

    /// The state a snapshot kept: its objects as they were, the resources
    /// its CRDs define served again, and whatever of the built-in
    /// namespaces and bootstrap policy is missing created, as the real
    /// server reconciles them at each start.
    pub fn restored(
        history_limit: usize,
        channel_capacity: usize,
        seed: u64,
        snapshot: Restored,
    ) -> Self {
        // Another seed than the first run's, so generated names differ
        // from those it handed out.
        let mut state = Self::empty(history_limit, channel_capacity, seed ^ snapshot.rv);
        state.next_ip = snapshot.next_service_ip.max(1);
        let crds = GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions");
        for (gr, key, crd) in &snapshot.objects {
            if *gr != crds {
                continue;
            }
            match registry::from_crd(crd) {
                Ok(ty) => state.registry.install(ty),
                Err(causes) => tracing::warn!(crd = %key.1, ?causes,
                    "a CustomResourceDefinition of the snapshot is not valid any more: its resource is not served"),
            }
        }
        state.store.restore(snapshot.rv, snapshot.objects);
        state.bootstrap();
        state
    }

    fn empty(history_limit: usize, channel_capacity: usize, seed: u64) -> Self {
        State {
            registry: Registry::default(),
            store: Store::new(history_limit, channel_capacity),
            rng: Rng::new(seed),
            next_ip: 1,
            tokens: Tokens::new(),
        }
    }

    /// Creates the built-in namespaces and the bootstrap RBAC policy
    /// where they do not exist.
    fn bootstrap(&mut self) {
        let params = WriteParams {
            dry_run: false,
            manager: "kube-apiserver".into(),
            validation: FieldValidation::Ignore,
            force: false,
            user: None,
        };
        let namespaces = ["default", "kube-system", "kube-public", "kube-node-lease"].map(
            |name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        );
        // The namespaces, then the bootstrap RBAC policy, before any
        // client can ask.
        for (group, plural, objects) in [
            ("", "namespaces", namespaces.to_vec()),
            (
                "rbac.authorization.k8s.io",
                "clusterroles",
                bootstrap::cluster_roles(),
            ),
            (
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                bootstrap::cluster_role_bindings(),
            ),
        ] {
            let target = Target {
                ty: self
                    .registry
                    .get(&GroupResource::new(group, plural))
                    .expect("namespaces and RBAC are built in"),
                version: "v1".into(),
                namespace: None,
            };
            for obj in objects {
                let name = meta(&obj, "name").unwrap_or_default().to_owned();
                if self
                    .store
                    .get(&target.ty.storage, &(String::new(), name))
                    .is_some()
                {
                    continue;
                }
                create(self, &target, obj, &params).expect("the bootstrap objects are valid");
            }
        }
    }

    /// The number the next service IP is made from (see `allocate_ip`).
    pub(crate) fn next_service_ip(&self) -> u32 {
        self.next_ip
    }

    /// The next free service IP in 10.96.0.0/12.
    fn allocate_ip(&mut self) -> String {
        let n = self.next_ip;
        self.next_ip += 1;
        format!("10.96.{}.{}", (n / 254) % 256, n % 254 + 1)
    }

    fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| ALPHABET[(self.rng.next_u64() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

pub fn get(state: &State, target: &Target, name: &str) -> ApiResult<Value> {
    let obj = state
        .store
        .get(&target.ty.storage, &target.key(name))
        .ok_or_else(|| ApiError::not_found(&target.ty.gr(), name))?;
    Ok(to_view(&target.ty, &target.version, obj.clone()))
}

/// Matching objects (in the requested version) and the list's resourceVersion.
pub fn list(
    state: &State,
    target: &Target,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> (Vec<Value>, u64) {
    let items = state
        .store
        .list(&target.ty.storage, target.namespace.as_deref())
        .into_iter()
        .filter(|obj| labels.matches_object(obj))
        .map(|obj| to_view(&target.ty, &target.version, obj.clone()))
        .filter(|obj| fields.matches(obj))
        .collect();
    (items, state.store.current_rv())
}

/// Checks `apiVersion`/`kind` of a body against the endpoint, filling them
/// in when absent.
pub fn check_kind(target: &Target, body: &mut Value) -> ApiResult<()> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let want_version = target.ty.api_version(&target.version);
    match body.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != want_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
        _ => body["apiVersion"] = Value::String(want_version),
    }
    match body.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != target.ty.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                target.ty.kind
            )));
        }
        _ => body["kind"] = Value::String(target.ty.kind.clone()),
    }
    Ok(())
}

pub(crate) fn check_namespace(
    state: &State,
    target: &Target,
    body: &mut Value,
) -> ApiResult<String> {
    if !target.ty.namespaced {
        meta_mut(body).remove("namespace");
        return Ok(String::new());
    }
    let Some(ns) = target.namespace.clone() else {
        return Err(ApiError::bad_request(
            "the namespace of the object must be given in the URL",
        ));
    };
    match meta(body, "namespace") {
        Some(given) if given != ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => {
            meta_mut(body).insert("namespace".into(), Value::String(ns.clone()));
        }
    }
    let namespaces = GroupResource::new("", "namespaces");
    match state.store.get(&namespaces, &(String::new(), ns.clone())) {
        None => Err(ApiError::not_found(&namespaces, &ns)),
        Some(n) if meta(n, "deletionTimestamp").is_some() => Err(ApiError::forbidden(
            &target.ty.gr(),
            meta(body, "name").unwrap_or(""),
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        )),
        Some(_) => Ok(ns),
    }
}

#[cfg(test)]
mod tests;
