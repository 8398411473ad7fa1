//! Names, labels and owner references shared by every object built for one
//! ModelDeployment.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use modelfleet_core::contract::labels::{DEPLOYMENT_LABEL, MODEL_LABEL, ROLE_LABEL, ROLE_SERVER};
use modelfleet_core::crd::ModelDeployment;

use super::BuildError;

/// Appended to the ModelDeployment's name to name its LeaderWorkerSet.
pub const GROUP_SUFFIX: &str = "-group";

/// What the builder needs from a stored ModelDeployment's metadata.
#[derive(Debug, Clone)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub model: String,
    /// `app.kubernetes.io/name`: the engine (`vllm`, `vllm-ascend`).
    pub app: String,
    reference: OwnerReference,
}

impl Owner {
    /// Fails for an object that was never stored: without a uid there is
    /// nothing for owner references (and so garbage collection) to point at.
    pub fn of(md: &ModelDeployment, app: &str) -> Result<Owner, BuildError> {
        let missing = |field: &'static str| BuildError::NotStored { field };
        let name = md.metadata.name.clone().ok_or_else(|| missing("name"))?;
        let namespace = md
            .metadata
            .namespace
            .clone()
            .ok_or_else(|| missing("namespace"))?;
        // Blocking owner deletion keeps a foreground delete of the
        // ModelDeployment waiting until its children are gone.
        let reference = OwnerReference {
            block_owner_deletion: Some(true),
            ..md.controller_owner_ref(&()).ok_or_else(|| missing("uid"))?
        };
        Ok(Owner {
            name,
            namespace,
            model: md.spec.model.clone(),
            app: app.to_owned(),
            reference,
        })
    }

    /// Labels on every object and pod: the recommended `app.kubernetes.io`
    /// set, plus modelfleet's own for selection.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), self.app.clone()),
            ("app.kubernetes.io/instance".to_owned(), self.name.clone()),
            (
                "app.kubernetes.io/component".to_owned(),
                "model-server".to_owned(),
            ),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "modelfleet".to_owned(),
            ),
            (DEPLOYMENT_LABEL.to_owned(), self.name.clone()),
            (MODEL_LABEL.to_owned(), self.model.clone()),
        ])
    }

    /// The selector of every pod of this deployment. Deliberately only the
    /// deployment label: a Deployment's selector is immutable, and the engine
    /// or model may change with a new plan.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(DEPLOYMENT_LABEL.to_owned(), self.name.clone())])
    }

    /// Pods that answer HTTP: what the Service sends traffic to.
    pub fn server_selector(&self) -> BTreeMap<String, String> {
        let mut selector = self.selector();
        selector.insert(ROLE_LABEL.to_owned(), ROLE_SERVER.to_owned());
        selector
    }

    /// Labels for pods of one role.
    pub fn pod_labels(&self, role: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels();
        labels.insert(ROLE_LABEL.to_owned(), role.to_owned());
        labels
    }

    /// Metadata of a top-level object: same name and namespace as the
    /// ModelDeployment, labelled and owned by it (`controller: true`, so the
    /// controller's `owns()` watches map events back to it).
    pub fn object_meta(&self) -> ObjectMeta {
        self.object_meta_named(&self.name)
    }

    /// The LeaderWorkerSet's name. Not the ModelDeployment's own: LWS
    /// creates a headless Service named after itself for its pods' DNS,
    /// which would collide with the model's Service.
    pub fn group_name(&self) -> String {
        format!("{}{GROUP_SUFFIX}", self.name)
    }

    pub fn object_meta_named(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// The in-cluster URL of the OpenAI-compatible API behind the Service.
    pub fn endpoint(&self) -> String {
        format!(
            "http://{}.{}.svc:{}/v1",
            self.name,
            self.namespace,
            super::engine::HTTP_PORT
        )
    }
}
