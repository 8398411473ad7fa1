//! The hub's own rights in a tenant namespace, and the Secrets of the
//! source credentials it keeps for tenants.
//!
//! The hub binds two ClusterRoles to itself in each tenant namespace, and
//! only there (the member cluster's admission policy refuses either
//! binding elsewhere): `modelfleet-hub-tenant-logs`, to read its pods'
//! logs, and `modelfleet-hub-tenant-credentials`, to write Secrets — which
//! the same policy narrows to `modelfleet-source-*`. It holds no right to
//! read any Secret: it writes a credential's Secret whole, by server-side
//! apply, and removes it by name.

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use modelfleet_core::contract::tenancy;

use super::{ClusterError, ClusterRegistry, FIELD_MANAGER, timed};
use crate::secret::Secret;

/// Binds the hub's log-reading and credential-writing roles in
/// `namespace` to whoever this client is (a SelfSubjectReview says). A
/// cluster whose hub role predates one of them cannot bind it: that is
/// logged, and what needs it says so when it is used.
pub(super) async fn bind_hub_roles(
    cluster: &str,
    client: &kube::Client,
    namespace: &str,
    params: &PatchParams,
) -> Result<(), ClusterError> {
    let reviews: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = timed(
        cluster,
        "asking who the hub is",
        reviews.create(&PostParams::default(), &SelfSubjectReview::default()),
    )
    .await?;
    let Some(username) = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
    else {
        return Ok(());
    };
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    let hub = tenancy::subject_of(&username);
    let logs = tenancy::hub_logs_role_binding(namespace, hub.clone());
    if let Err(error) = timed(
        cluster,
        "binding the hub's log reading in the tenant namespace",
        bindings.patch(tenancy::HUB_LOGS_BINDING, params, &Patch::Apply(&logs)),
    )
    .await
    {
        tracing::warn!(cluster, namespace, %error, "cannot let the hub read logs in the tenant namespace");
    }
    let credentials = tenancy::hub_credentials_role_binding(namespace, hub);
    if let Err(error) = timed(
        cluster,
        "binding the hub's credential writing in the tenant namespace",
        bindings.patch(
            tenancy::HUB_CREDENTIALS_BINDING,
            params,
            &Patch::Apply(&credentials),
        ),
    )
    .await
    {
        tracing::warn!(cluster, namespace, %error, "cannot let the hub write source credentials in the tenant namespace");
    }
    Ok(())
}

impl ClusterRegistry {
    /// Writes the tenant's source credential `name` as its Secret in
    /// `namespace` of `cluster` (a tenant namespace, prepared first), with
    /// exactly `values`: a key removed from the credential goes from the
    /// Secret too.
    pub async fn apply_source_credential(
        &self,
        cluster: &str,
        tenant_name: &str,
        namespace: &str,
        name: &str,
        values: &BTreeMap<String, Secret>,
    ) -> Result<(), ClusterError> {
        self.prepare_namespace(cluster, namespace, tenant_name)
            .await?;
        let client = self.client(cluster).await?;
        let bytes: BTreeMap<String, Vec<u8>> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().as_bytes().to_vec()))
            .collect();
        let secret = tenancy::source_credential_secret(namespace, name, &bytes);
        let secrets: Api<KubeSecret> = Api::namespaced(client, namespace);
        timed(
            cluster,
            "writing the source credential's Secret (the hub's role there must allow it: apply \
             manifests/hub-member/ of this version)",
            secrets.patch(
                &tenancy::source_credential_secret_name(name),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            ),
        )
        .await
        .map(drop)
    }

    /// Removes the Secret of source credential `name` from `namespace` of
    /// `cluster`; one already gone is no error.
    pub async fn delete_source_credential(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ClusterError> {
        let client = self.client(cluster).await?;
        let secrets: Api<KubeSecret> = Api::namespaced(client, namespace);
        super::deleted(
            timed(
                cluster,
                "removing the source credential's Secret",
                secrets.delete(
                    &tenancy::source_credential_secret_name(name),
                    &DeleteParams::default(),
                ),
            )
            .await,
        )
    }
}
