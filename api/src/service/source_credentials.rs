//! Source credentials the hub keeps for tenants: added, replaced and
//! removed by the tenant's admins (audited with their transaction), shown
//! without their values, and written by the hub as the Secret
//! `modelfleet-source-<name>` into the tenant's namespace of each cluster
//! it places a deployment fetching with them — before the ModelDeployment,
//! so its first pod finds it. Replacing a credential writes it again
//! wherever a live deployment uses it; removing one is refused while a
//! live deployment uses it, and takes its Secret from every namespace the
//! hub wrote it in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use http::StatusCode;
use modelfleet_core::contract::tenancy;
use modelfleet_core::crd::ModelDeployment;
use serde::Serialize;
use utoipa::ToSchema;

use super::placement::PlaceError;
use super::{Caller, Error, Hub, Result};
use crate::identity::Permission;
use crate::ids::TenantId;
use crate::secret::Secret;
use crate::store::{CredentialPlace, Deployment, KeyHint, SourceCredential, StoreError};

/// Changes of a credential that write to clusters (replacing one in use,
/// removing one written before) each tenant may make: 10, and one more
/// every 6 seconds. Each writes to every cluster namespace concerned.
pub(crate) const CLUSTER_WRITES: super::throttle::Limit = super::throttle::Limit {
    burst: 10,
    refill: std::time::Duration::from_secs(6),
};

/// A source credential as callers see it: never its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    pub name: String,
    /// Which keys it holds, with the last four characters of identifiers
    /// and tokens.
    pub keys: Vec<KeyHint>,
    /// The Secret a ModelDeployment names (`sourceSecret`) to fetch with
    /// it; `sourceCredential` on `POST /api/v1/deployments` names the
    /// credential itself.
    #[schema(example = "modelfleet-source-store")]
    pub secret: String,
    /// The tenant's live deployments fetching with it.
    pub used_by: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Writing (or removing) a credential's Secret in one cluster namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub cluster: String,
    pub namespace: String,
    /// Why it failed; absent when it was done.
    pub error: Option<String>,
}

/// A credential added or replaced, and where its Secret was written again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialWritten {
    pub credential: CredentialView,
    /// True when the credential is new.
    pub created: bool,
    /// Each cluster namespace where a live deployment fetches with it.
    /// Pods started from now on fetch with the new keys; running ones
    /// already have their weights.
    pub clusters: Vec<Delivery>,
}

impl Hub {
    /// A tenant's source credentials, without their values.
    pub async fn source_credentials(
        &self,
        caller: &Caller,
        tenant: TenantId,
    ) -> Result<Vec<CredentialView>> {
        caller.require(Permission::Read)?;
        let credentials = self
            .store
            .source_credentials(caller.scope(), tenant)
            .await?;
        let mut views = Vec::with_capacity(credentials.len());
        for credential in credentials {
            views.push(self.credential_view(credential).await?);
        }
        Ok(views)
    }

    async fn credential_view(&self, credential: SourceCredential) -> Result<CredentialView> {
        let used_by = self
            .store
            .deployments_using_credential(credential.tenant, &credential.name)
            .await?;
        Ok(CredentialView {
            secret: credential.secret_name(),
            name: credential.name,
            keys: credential.keys,
            used_by,
            created_at: credential.created_at,
            updated_at: credential.updated_at,
        })
    }

    /// Adds or replaces a tenant's source credential, then writes it again
    /// wherever a live deployment fetches with it. Tenant admins and
    /// platform admins.
    pub async fn put_source_credential(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &str,
        values: BTreeMap<String, Secret>,
    ) -> Result<CredentialWritten> {
        let tenant_row = self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManageTenant)?;
        if !self
            .store
            .credential_places(tenant, name, true)
            .await?
            .is_empty()
        {
            self.take_cluster_write(tenant)?;
        }
        let mut tx = self.store.begin(&caller.actor).await?;
        let (credential, created) = tx
            .put_source_credential(&self.keyring, tenant, name, &values)
            .await?;
        tx.commit_with(if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        })
        .await?;
        let mut clusters = Vec::new();
        for place in self.store.credential_places(tenant, name, true).await? {
            let outcome = self
                .registry
                .apply_source_credential(
                    &place.cluster,
                    &tenant_row.name,
                    &place.namespace,
                    name,
                    &values,
                )
                .await;
            clusters.push(delivery(place, outcome));
        }
        Ok(CredentialWritten {
            credential: self.credential_view(credential).await?,
            created,
            clusters,
        })
    }

    /// Removes a tenant's source credential — refused while a live
    /// deployment fetches with it — and its Secret from every namespace
    /// the hub wrote it in. Tenant admins and platform admins.
    pub async fn delete_source_credential(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &str,
    ) -> Result<Vec<Delivery>> {
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManageTenant)?;
        if !self
            .store
            .credential_places(tenant, name, false)
            .await?
            .is_empty()
        {
            self.take_cluster_write(tenant)?;
        }
        let mut tx = self.store.begin(&caller.actor).await?;
        if tx.delete_source_credential(tenant, name).await?.is_none() {
            tx.rollback().await?;
            return Err(Error::not_found("source credential"));
        }
        tx.commit_with(StatusCode::OK).await?;
        let mut clusters = Vec::new();
        for place in self.store.credential_places(tenant, name, false).await? {
            let outcome = self
                .registry
                .delete_source_credential(&place.cluster, &place.namespace, name)
                .await;
            clusters.push(delivery(place, outcome));
        }
        Ok(clusters)
    }

    /// One of the tenant's credential changes that reach clusters, or 429.
    fn take_cluster_write(&self, tenant: TenantId) -> Result<()> {
        self.credential_writes
            .take(&tenant.to_string(), None, std::time::Instant::now())
            .map_err(|wait| {
                let seconds = u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX);
                Error::too_many_requests(
                    format!(
                        "too many changes of source credentials in use, each written to its \
                         clusters; retry after {seconds} seconds"
                    ),
                    seconds,
                )
            })
    }

    /// Writes the source credential `md` fetches with (a `sourceSecret`
    /// naming one the hub keeps) into the held deployment's namespace,
    /// before `md` itself: nothing for any other `md`.
    pub(crate) async fn deliver_source_credential(
        &self,
        held: &Deployment,
        tenant_name: &str,
        md: &ModelDeployment,
    ) -> std::result::Result<(), PlaceError> {
        let Some(name) = md
            .spec
            .source_secret
            .as_deref()
            .and_then(tenancy::source_credential_of)
        else {
            return Ok(());
        };
        let values = self
            .store
            .open_source_credential(&self.keyring, held.tenant, name)
            .await?
            .ok_or_else(|| {
                StoreError::invalid(
                    "sourceCredential",
                    format!("the tenant's source credential {name:?} was removed; add it again"),
                )
            })?;
        self.registry
            .apply_source_credential(&held.cluster, tenant_name, &held.namespace, name, &values)
            .await
            .map_err(|error| PlaceError::Cluster {
                error,
                undone: false,
            })
    }
}

fn delivery(
    place: CredentialPlace,
    outcome: std::result::Result<(), crate::clusters::ClusterError>,
) -> Delivery {
    Delivery {
        cluster: place.cluster,
        namespace: place.namespace,
        error: outcome.err().map(|e| e.to_string()),
    }
}
