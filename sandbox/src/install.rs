//! `kubectl apply --server-side -f FILE`, in process: what a platform
//! engineer applies to a real cluster before modelfleet runs there (the
//! operator's and the hub's RBAC from `manifests/`), applied to a sandbox
//! cluster the same way, so that the sandbox's components run with the
//! identities and rights they would have on a real one.

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, Scope};
use kube::{Client, ResourceExt};
use modelfleet_core::contract::tenancy;
use serde::Deserialize;

use crate::ApiServer;

/// Why a manifest could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("document {index} is not a Kubernetes object: {source}")]
    NotAnObject {
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {index} has no apiVersion and kind")]
    NoKind { index: usize },
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Applies every document of `yaml` server-side with `manager`, in order
/// (so a Namespace comes before what lives in it), and returns
/// `kind/name` of each.
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    manager: &str,
) -> Result<Vec<String>, InstallError> {
    let mut applied = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|source| InstallError::NotAnObject { index, source })?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_yaml::from_value(value)
            .map_err(|source| InstallError::NotAnObject { index, source })?;
        let types = object.types.clone().ok_or(InstallError::NoKind { index })?;
        let gvk = GroupVersionKind::try_from(&types).map_err(|_| InstallError::NoKind { index })?;
        let name = object.name_any();
        let failed = |source| InstallError::Apply {
            kind: types.kind.clone(),
            name: name.clone(),
            source,
        };
        let (resource, capabilities) =
            discovery::pinned_kind(client, &gvk).await.map_err(failed)?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                object.metadata.namespace.as_deref().unwrap_or("default"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(failed)?;
        applied.push(format!("{}/{name}", types.kind));
    }
    Ok(applied)
}

/// What `manifests/operator/` installs: the operator's namespace,
/// ServiceAccount and roles.
pub const OPERATOR_MANIFESTS: [&str; 2] = [
    include_str!("../../manifests/operator/00-namespace.yaml"),
    include_str!("../../manifests/operator/10-rbac.yaml"),
];
/// What `manifests/hub-member/` grants the hub. (Its
/// ValidatingAdmissionPolicy is left out: this API server evaluates no CEL.)
pub const HUB_MEMBER_RBAC: &str = include_str!("../../manifests/hub-member/00-rbac.yaml");

/// Clients for the identities modelfleet's components have in a cluster
/// installed from `manifests/`.
#[derive(Clone)]
pub struct Identities {
    /// ServiceAccount `modelfleet-system/modelfleet-operator`.
    pub operator: Client,
    /// ServiceAccount `modelfleet-system/modelfleet-hub`.
    pub hub: Client,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities").finish_non_exhaustive()
    }
}

/// Applies the operator's and the hub's RBAC from `manifests/` as a
/// platform engineer would (with `admin`, a client allowed to), and
/// returns clients that act as their ServiceAccounts: each can do in this
/// cluster exactly what it could in a real one.
pub async fn modelfleet_rbac(
    server: &ApiServer,
    admin: &Client,
) -> Result<Identities, InstallError> {
    for manifest in OPERATOR_MANIFESTS.iter().chain([&HUB_MEMBER_RBAC]) {
        apply_yaml(admin, manifest, "platform-engineer").await?;
    }
    let (namespace, operator) = tenancy::OPERATOR_SERVICE_ACCOUNT;
    Ok(Identities {
        operator: server.client_as(&server.service_account_token(namespace, operator)),
        hub: server.client_as(&server.service_account_token(namespace, "modelfleet-hub")),
    })
}

/// Binds the operator's workload role in `namespace`, as a standalone
/// operator's administrator does for each namespace it may run models in.
pub async fn bind_operator(admin: &Client, namespace: &str) -> Result<(), InstallError> {
    let binding = tenancy::operator_role_binding(namespace, tenancy::OPERATOR_SERVICE_ACCOUNT);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    bindings
        .patch(
            tenancy::OPERATOR_BINDING,
            &PatchParams::apply("platform-engineer").force(),
            &Patch::Apply(&binding),
        )
        .await
        .map_err(|source| InstallError::Apply {
            kind: "RoleBinding".to_owned(),
            name: tenancy::OPERATOR_BINDING.to_owned(),
            source,
        })?;
    Ok(())
}
