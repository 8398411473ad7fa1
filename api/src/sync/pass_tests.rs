//! Sync passes driven over caches filled from a sandbox API server, with
//! a throwaway database on each backend: many deployments in one cluster
//! each get their own status, and each object is told apart by the row its
//! id label names — the hub's own, released, moved elsewhere, replaced, or
//! only a copied label — now that a pass reads those rows together.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::{reflector, watcher};
use kube::{CustomResourceExt, ResourceExt};
use modelfleet_core::contract::admission::{
    ANNOTATION, REASON_ANNOTATION, REASON_NAME_TAKEN, REASON_NO_TENANT, REJECTED,
};
use modelfleet_core::crd::{ModelDeployment, ModelDeploymentStatus, Phase};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::model::ParamCount;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::precision::Precision;
use modelfleet_core::quota::Quota;
use modelfleet_sandbox::ApiServer;
use serde_json::json;

use super::Missing;
use crate::clusters::{DEPLOYMENT_ID_LABEL, TENANT_LABEL};
use crate::identity::{Actor, Scope};
use crate::ids::DeploymentId;
use crate::secret::{Keyring, SecretKey};
use crate::service::Hub;
use crate::store::testing::TestDb;
use crate::store::{Deployment, DeploymentRequest, DeploymentStatus, NewTenant, Source, Tenant};
use crate::{ApiSettings, ClusterRegistry};

const CLUSTER: &str = "sync-test";
const TENANT: &str = "acme";
const NAMESPACE: &str = "mf-acme";

/// A hub with one sandbox cluster (an API server, no nodes) and a tenant.
struct Fixture {
    hub: Hub,
    kube: kube::Client,
    tenant: Tenant,
    missing: Missing,
    _server: ApiServer,
}

async fn fixture(db: &TestDb) -> Fixture {
    let server = ApiServer::new();
    let kube = server.client();
    Api::<CustomResourceDefinition>::all(kube.clone())
        .create(&PostParams::default(), &ModelDeployment::crd())
        .await
        .unwrap();
    let keyring = Arc::new(Keyring::new(SecretKey::generate().unwrap()));
    let hub = Hub::new(
        db.store.clone(),
        keyring,
        ClusterRegistry::new(),
        ApiSettings::default(),
    );
    hub.register_sandbox_cluster(CLUSTER, Cloud::Aws, "us-east-1", kube.clone())
        .await
        .unwrap();
    let mut tx = db.store.begin(&Actor::system("test")).await.unwrap();
    let tenant = tx
        .create_tenant(NewTenant {
            name: TENANT.into(),
            display_name: "Acme".into(),
            quota: Quota::unlimited(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Fixture {
        hub,
        kube,
        tenant,
        missing: Missing::default(),
        _server: server,
    }
}

impl Fixture {
    /// A deployment `name` admitted onto `cluster`, as the hub admits one.
    async fn admit(&self, name: &str, cluster: &str) -> Deployment {
        let mut tx = self
            .hub
            .store()
            .begin(&Actor::system("test"))
            .await
            .unwrap();
        let row = tx
            .admit_deployment(
                self.tenant.id,
                DeploymentRequest {
                    name: name.into(),
                    model: "llama-3.1-8b".into(),
                    model_params: ParamCount::billions(8),
                    cluster: cluster.into(),
                    namespace: NAMESPACE.into(),
                    pool: "l40s".into(),
                    accelerator: "l40s".into(),
                    devices_per_replica: 1,
                    replicas: 1,
                    precision: Precision::Bf16,
                    replica_cost_per_hour: Money::from_micros(1_500_000, Currency::Usd),
                    source: Source::Api,
                    resource_uid: None,
                },
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        row
    }

    /// `row`'s ModelDeployment as the hub writes it: labelled with its id,
    /// applied into the tenant's namespace and sealed.
    async fn apply(&self, row: &Deployment) -> ModelDeployment {
        let md = object(NAMESPACE, &row.name, row.id);
        self.hub
            .registry()
            .apply_deployment(CLUSTER, TENANT, &md)
            .await
            .unwrap()
    }

    /// One pass over what the cluster holds now, each object's status as
    /// `status` says (what its operator would have written).
    async fn pass(&mut self, status: impl Fn(&ModelDeployment) -> ModelDeploymentStatus) {
        let (mds, mut writer) = reflector::store::<ModelDeployment>();
        let (pods, _pod_writer) = reflector::store::<Pod>();
        let listed = Api::<ModelDeployment>::all(self.kube.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        for mut md in listed.items {
            md.status = Some(status(&md));
            writer.apply_watcher_event(&watcher::Event::Apply(md));
        }
        super::pass(&self.hub, CLUSTER, &mds, &pods, &mut self.missing)
            .await
            .unwrap();
    }

    async fn get(&self, namespace: &str, name: &str) -> Option<ModelDeployment> {
        Api::<ModelDeployment>::namespaced(self.kube.clone(), namespace)
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn row(&self, id: DeploymentId) -> Deployment {
        self.hub.store().deployment(Scope::All, id).await.unwrap()
    }
}

/// A ModelDeployment named `name` in `namespace` carrying `id`'s label.
fn object(namespace: &str, name: &str, id: DeploymentId) -> ModelDeployment {
    serde_json::from_value(json!({
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {TENANT_LABEL: TENANT, DEPLOYMENT_ID_LABEL: id.to_string()},
        },
        "spec": {
            "model": "llama-3.1-8b",
            "source": "s3://models/llama-3.1-8b",
            "placement": {"pool": format!("{CLUSTER}/l40s")},
        },
    }))
    .unwrap()
}

/// The status an operator reports for deployment `d-<i>`: every other one
/// Ready with an endpoint, the rest still pending.
fn numbered_status(md: &ModelDeployment) -> ModelDeploymentStatus {
    let i: usize = md.name_any()[2..].parse().unwrap();
    let ready = i.is_multiple_of(2);
    ModelDeploymentStatus {
        phase: Some(if ready { Phase::Ready } else { Phase::Pending }),
        ready_replicas: Some(u32::from(ready)),
        endpoint: ready.then(|| format!("http://d-{i}.{NAMESPACE}.svc:8000")),
        ..ModelDeploymentStatus::default()
    }
}

async fn a_pass_over_many_deployments_records_each_ones_status(db: TestDb) {
    let mut f = fixture(&db).await;
    let mut rows = Vec::new();
    for i in 0..60 {
        let row = f.admit(&format!("d-{i}"), CLUSTER).await;
        let applied = f.apply(&row).await;
        rows.push((row, applied));
    }

    f.pass(numbered_status).await;
    let mut revisions = Vec::new();
    for (i, (row, applied)) in rows.iter().enumerate() {
        let now = f.row(row.id).await;
        let ready = i.is_multiple_of(2);
        assert_eq!(
            (now.phase, now.ready_replicas, now.endpoint.clone()),
            (
                if ready { Phase::Ready } else { Phase::Pending },
                u32::from(ready),
                ready.then(|| format!("http://d-{i}.{NAMESPACE}.svc:8000")),
            ),
            "d-{i}"
        );
        assert_eq!(now.resource_uid, applied.metadata.uid, "d-{i}");
        assert!(now.deleted_at.is_none(), "d-{i}");
        revisions.push(now.revision);
    }

    // Nothing changed since: a second pass writes nothing.
    f.pass(numbered_status).await;
    for ((row, _), revision) in rows.iter().zip(revisions) {
        assert_eq!(f.row(row.id).await.revision, revision, "{}", row.name);
    }
}

async fn each_object_is_told_apart_by_the_row_its_label_names(db: TestDb) {
    let mut f = fixture(&db).await;
    let store = db.store.clone();
    // The hub's own, running here.
    let kept = f.admit("kept", CLUSTER).await;
    let kept_md = f.apply(&kept).await;
    // Released while its object stayed (the delete did not reach the
    // cluster).
    let released = f.admit("released", CLUSTER).await;
    f.apply(&released).await;
    let mut tx = store.begin(&Actor::system("test")).await.unwrap();
    tx.release_deployment(released.id).await.unwrap();
    tx.commit().await.unwrap();
    // Placed on another cluster now (as failover leaves it), its object
    // still here.
    let moved = f.admit("moved", "elsewhere").await;
    f.apply(&moved).await;
    // Placed here, but recorded with another object's uid: the object
    // here replaced the hub's.
    let replaced = f.admit("replaced", CLUSTER).await;
    let replaced_md = f.apply(&replaced).await;
    let mut tx = store.begin(&Actor::system("test")).await.unwrap();
    tx.record_deployment_status(
        replaced.id,
        &DeploymentStatus {
            phase: Phase::Pending,
            ready_replicas: 0,
            message: None,
            resource_uid: Some("the-hubs-own-object".into()),
            conditions: None,
            endpoint: None,
            unschedulable: false,
            weights: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The label of `kept` copied onto an object in another namespace.
    Api::<Namespace>::all(f.kube.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("team-x".into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let copy = Api::<ModelDeployment>::namespaced(f.kube.clone(), "team-x")
        .create(&PostParams::default(), &object("team-x", "kept", kept.id))
        .await
        .unwrap();
    let moved_before = f.row(moved.id).await;

    f.pass(|_| ModelDeploymentStatus {
        phase: Some(Phase::Ready),
        ready_replicas: Some(1),
        ..ModelDeploymentStatus::default()
    })
    .await;

    // Tracked: its status recorded, with its own uid.
    let kept_now = f.row(kept.id).await;
    assert_eq!((kept_now.phase, kept_now.ready_replicas), (Phase::Ready, 1));
    assert_eq!(kept_now.resource_uid, kept_md.metadata.uid);
    assert_ne!(kept_now.resource_uid, copy.metadata.uid);
    // Stale: deleted from the cluster; their rows stay as they were.
    assert!(f.get(NAMESPACE, "released").await.is_none());
    assert!(f.get(NAMESPACE, "moved").await.is_none());
    assert!(f.row(released.id).await.deleted_at.is_some());
    assert_eq!(f.row(moved.id).await, moved_before);
    // Replaced: not the hub's, so not admitted under a taken name; its row
    // keeps the hub's object's uid.
    let replacer = f.get(NAMESPACE, "replaced").await.unwrap();
    assert_eq!(replacer.metadata.uid, replaced_md.metadata.uid);
    assert_eq!(
        replacer
            .annotations()
            .get(REASON_ANNOTATION)
            .map(String::as_str),
        Some(REASON_NAME_TAKEN)
    );
    assert_eq!(
        f.row(replaced.id).await.resource_uid.as_deref(),
        Some("the-hubs-own-object")
    );
    // The copied label claims nothing: the copy is judged as an object of
    // its own (in no tenant's namespace), and left where it is.
    let copy_now = f.get("team-x", "kept").await.unwrap();
    assert_eq!(
        copy_now.annotations().get(ANNOTATION).map(String::as_str),
        Some(REJECTED)
    );
    assert_eq!(
        copy_now
            .annotations()
            .get(REASON_ANNOTATION)
            .map(String::as_str),
        Some(REASON_NO_TENANT)
    );
    assert!(f.get(NAMESPACE, "kept").await.is_some());
}

crate::store_tests!(
    a_pass_over_many_deployments_records_each_ones_status,
    each_object_is_told_apart_by_the_row_its_label_names,
);
