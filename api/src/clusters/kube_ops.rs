//! The hub's calls into a cluster: list Nodes and Pods for discovery, and
//! write, scale and delete ModelDeployments in a tenant's namespace.
//! Writes are server-side apply under one field manager, so the hub owns
//! exactly the fields it sets and a re-apply is idempotent.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use modelfleet_core::contract::{admission, discovery, namespace, tenancy};
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::crd::lws::LeaderWorkerSet;
use serde_json::json;

use super::{ClusterError, ClusterRegistry, Discovered, timed};
use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::time::Instant;

use crate::store::now;

pub use modelfleet_core::contract::labels::{DEPLOYMENT_ID_LABEL, TENANT_LABEL};

/// The field manager of everything the hub applies.
pub const FIELD_MANAGER: &str = "modelfleet-hub";

/// The namespace a tenant's deployments live in, in every cluster.
pub fn namespace_of(tenant_name: &str) -> String {
    namespace::tenant_namespace(tenant_name)
}

pub(super) async fn discover(
    cluster: &str,
    client: &kube::Client,
) -> Result<Discovered, ClusterError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes = timed(cluster, "listing nodes", nodes.list(&ListParams::default())).await?;
    // Finished pods hold no devices; leaving them out keeps the list short.
    let running = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let pods = timed(cluster, "listing pods", pods.list(&running)).await?;
    let found = discovery::discover(cluster, &nodes.items, &pods.items);
    Ok(Discovered {
        pools: found.fleet.pools,
        skipped: found.skipped,
        lws_available: lws_served(cluster, client).await?,
        excess_rights: super::rights::check(cluster, client).await,
        observed_at: now(),
    })
}

/// Whether the cluster serves the LeaderWorkerSet API, which multi-node
/// replicas run as: the question the operator asks when it starts.
async fn lws_served(cluster: &str, client: &kube::Client) -> Result<bool, ClusterError> {
    let lws: Api<LeaderWorkerSet> = Api::all(client.clone());
    let probe = ListParams::default().limit(1);
    match timed(
        cluster,
        "looking for the LeaderWorkerSet API",
        lws.list(&probe),
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(ClusterError::Kube {
            source: kube::Error::Api(status),
            ..
        }) if status.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

impl ClusterRegistry {
    /// Applies `md` (named, in its namespace: the tenant's unless it says
    /// otherwise) into `cluster`, creating the namespace first if missing
    /// and labelling it with the tenant. Returns the object as
    /// the cluster stored it.
    pub async fn apply_deployment(
        &self,
        cluster: &str,
        tenant_name: &str,
        md: &ModelDeployment,
    ) -> Result<ModelDeployment, ClusterError> {
        let client = self.client(cluster).await?;
        let namespace = md
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| namespace_of(tenant_name));
        self.prepare_namespace(cluster, &namespace, tenant_name)
            .await?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let name = md.metadata.name.clone().unwrap_or_default();
        let mds: Api<ModelDeployment> = Api::namespaced(client, &namespace);
        let stored = timed(
            cluster,
            "applying the ModelDeployment",
            mds.patch(&name, &params, &Patch::Apply(md)),
        )
        .await?;
        // Admitted against the quota before it was written; sealed now that
        // it has its uid. The seal covers the spec as stored: if anyone
        // changed it since, it no longer fits and the operator holds it
        // until sync decides (so no version precondition is needed, and
        // the operator's status writes cannot make this fail).
        let mut annotations = serde_json::Map::new();
        for (k, v) in admission::seal(&stored, &self.admission_key(cluster)?) {
            annotations.insert(k.to_owned(), json!(v));
        }
        // A refusal written before this seal (sync seeing the object in the
        // moment between the apply and this patch) no longer holds.
        for k in [admission::REASON_ANNOTATION, admission::MESSAGE_ANNOTATION] {
            annotations.insert(k.to_owned(), serde_json::Value::Null);
        }
        let patch = json!({"metadata": {"annotations": annotations}});
        let merge = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        timed(
            cluster,
            "sealing the ModelDeployment's admission",
            mds.patch(&name, &merge, &Patch::Merge(&patch)),
        )
        .await
    }

    /// Makes `namespace` a tenant namespace: labelled with its tenant and
    /// with Pod Security `baseline` enforced (`restricted` warned and
    /// audited), and with the RoleBinding that lets the operator write
    /// there — the only namespaces it can. Server-side apply, so doing it
    /// again changes nothing; done at most every few minutes per
    /// namespace, so sync can ask on every pass (and clusters set up
    /// before tenant namespaces had these get them).
    pub async fn prepare_namespace(
        &self,
        cluster: &str,
        namespace: &str,
        tenant_name: &str,
    ) -> Result<(), ClusterError> {
        let member = self.member(cluster)?;
        let fresh = |prepared: &BTreeMap<String, Instant>| {
            prepared
                .get(namespace)
                .is_some_and(|at| at.elapsed() < super::PREPARED_FOR)
        };
        if fresh(
            &member
                .prepared
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return Ok(());
        }
        apply_tenant_namespace(cluster, &member.client, namespace, tenant_name).await?;
        member
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(namespace.to_owned(), Instant::now());
        Ok(())
    }
}

/// The tenant namespace's labels and the operator's RoleBinding there.
async fn apply_tenant_namespace(
    cluster: &str,
    client: &kube::Client,
    namespace: &str,
    tenant_name: &str,
) -> Result<(), ClusterError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut labels: BTreeMap<String, String> = tenancy::pod_security_labels()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.insert(TENANT_LABEL.to_owned(), tenant_name.to_owned());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    timed(
        cluster,
        "applying the tenant namespace",
        namespaces.patch(namespace, &params, &Patch::Apply(&ns)),
    )
    .await?;
    let binding = tenancy::operator_role_binding(namespace, tenancy::OPERATOR_SERVICE_ACCOUNT);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    timed(
        cluster,
        "binding the operator's role in the tenant namespace",
        bindings.patch(tenancy::OPERATOR_BINDING, &params, &Patch::Apply(&binding)),
    )
    .await?;
    // Reading the namespace's pods' logs (for the console) and writing
    // source credentials' Secrets. A cluster whose hub role predates them
    // cannot bind them: the deployments still run, the console says the
    // logs cannot be read, and a deployment fetching with a credential the
    // hub keeps is refused naming the step.
    if let Err(error) =
        super::credentials::bind_hub_roles(cluster, client, namespace, &params).await
    {
        tracing::warn!(cluster, namespace, %error, "cannot bind the hub's roles in the tenant namespace");
    }
    Ok(())
}

impl ClusterRegistry {
    /// Sets `spec.replicas` of a ModelDeployment, sealing the result as
    /// admitted; everything else stays. The seal covers the spec as read
    /// with the new count: a change someone makes meanwhile does not fit
    /// it, and is held until sync decides.
    pub async fn scale_deployment(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<(), ClusterError> {
        let client = self.client(cluster).await?;
        let mds: Api<ModelDeployment> = Api::namespaced(client, namespace);
        let mut md = timed(cluster, "reading the ModelDeployment", mds.get(name)).await?;
        md.spec.replicas = replicas;
        let sealed = admission::seal(&md, &self.admission_key(cluster)?);
        let mut annotations = serde_json::Map::new();
        for (k, v) in sealed {
            annotations.insert(k.to_owned(), json!(v));
        }
        // A refusal of an earlier change no longer applies.
        annotations.insert(admission::REASON_ANNOTATION.to_owned(), json!(null));
        annotations.insert(admission::MESSAGE_ANNOTATION.to_owned(), json!(null));
        let patch = json!({
            "metadata": { "annotations": annotations },
            "spec": { "replicas": replicas },
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        timed(
            cluster,
            "scaling the ModelDeployment",
            mds.patch(name, &params, &Patch::Merge(&patch)),
        )
        .await
        .map(drop)
    }

    /// Deletes a ModelDeployment; its finalizer lets the operator clean up.
    /// One that is already gone counts as deleted.
    pub async fn delete_deployment(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ClusterError> {
        let client = self.client(cluster).await?;
        let mds: Api<ModelDeployment> = Api::namespaced(client, namespace);
        super::deleted(
            timed(
                cluster,
                "deleting the ModelDeployment",
                mds.delete(name, &DeleteParams::default()),
            )
            .await,
        )
    }

    /// A ModelDeployment, or `None` when it does not exist.
    pub async fn get_deployment(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ModelDeployment>, ClusterError> {
        let client = self.client(cluster).await?;
        let mds: Api<ModelDeployment> = Api::namespaced(client, namespace);
        timed(cluster, "reading the ModelDeployment", mds.get_opt(name)).await
    }

    /// Writes the hub's admission decision on a ModelDeployment (and, when
    /// admitted, the id of the deployment it counts as, and the seal of
    /// `md`'s spec as read), as a merge patch of its metadata so the spec
    /// someone applied stays theirs.
    pub async fn annotate_admission(
        &self,
        cluster: &str,
        md: &ModelDeployment,
        namespace: &str,
        name: &str,
        decision: &Decision,
    ) -> Result<(), ClusterError> {
        use modelfleet_core::contract::admission::{
            ANNOTATION, MESSAGE_ANNOTATION, REASON_ANNOTATION, REJECTED,
        };
        let client = self.client(cluster).await?;
        let mds: Api<ModelDeployment> = Api::namespaced(client, namespace);
        let patch = match decision {
            Decision::Admitted { deployment, tenant } => {
                let mut annotations = serde_json::Map::new();
                for (k, v) in admission::seal(md, &self.admission_key(cluster)?) {
                    annotations.insert(k.to_owned(), json!(v));
                }
                annotations.insert(REASON_ANNOTATION.to_owned(), json!(null));
                annotations.insert(MESSAGE_ANNOTATION.to_owned(), json!(null));
                json!({"metadata": {
                    "annotations": annotations,
                    "labels": {
                        DEPLOYMENT_ID_LABEL: deployment.to_string(),
                        TENANT_LABEL: tenant,
                    },
                }})
            }
            // Any seal goes with a rejection: it admits nothing any more.
            Decision::Rejected { reason, message } => json!({"metadata": {"annotations": {
                ANNOTATION: REJECTED,
                REASON_ANNOTATION: reason,
                MESSAGE_ANNOTATION: message,
                admission::SPEC_ANNOTATION: null,
                admission::SIGNATURE_ANNOTATION: null,
            }}}),
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        timed(
            cluster,
            "annotating the ModelDeployment",
            mds.patch(name, &params, &Patch::Merge(&patch)),
        )
        .await
        .map(drop)
    }
}

impl ClusterRegistry {
    /// Says on an admitted ModelDeployment why a change to it was not
    /// admitted; its admission (and seal) stays as it was.
    pub async fn explain_refusal(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), ClusterError> {
        let client = self.client(cluster).await?;
        let mds: Api<ModelDeployment> = Api::namespaced(client, namespace);
        let patch = json!({"metadata": {"annotations": {
            admission::REASON_ANNOTATION: reason,
            admission::MESSAGE_ANNOTATION: message,
        }}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        timed(
            cluster,
            "explaining a refused change on the ModelDeployment",
            mds.patch(name, &params, &Patch::Merge(&patch)),
        )
        .await
        .map(drop)
    }
}

/// What the hub decided about a ModelDeployment it did not create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Admitted {
        deployment: crate::ids::DeploymentId,
        tenant: String,
    },
    Rejected {
        /// One CamelCase word, e.g. `QuotaExceeded`.
        reason: &'static str,
        message: String,
    },
}
