//! Issue 17, findings 1 and 2, with the real operator on a sandbox cluster,
//! the real `kubectl scale` and requests as kubectl sends them: an
//! admission is the hub's seal over the spec it admitted, not an
//! annotation its creator controls.
//!
//! - A ModelDeployment applied already annotated `admitted` (even with a
//!   made-up seal) runs nothing: on main the operator ran it at once.
//! - Scaling an admitted one within quota is admitted again within a sync
//!   pass; beyond quota it is held at its admitted size with
//!   `Admitted=False`, reason `ChangedSinceAdmission`, and the quota's
//!   message, and the refusal is audited; another image is held too. On
//!   main each ran unchecked.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::contract::admission::{ANNOTATION, REASON_CHANGED, SIGNATURE_ANNOTATION};
use modelfleet_core::contract::condition;
use modelfleet_core::crd::ModelDeployment;
use serde_json::{Value, json};
use support::{Hub, eventually, kubectl, l40s_hub};

const NS: &str = "mf-acme";

async fn namespace(hub: &Hub) {
    let namespaces: Api<Namespace> = Api::all(hub.kube.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(NS.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

fn manifest(name: &str, annotations: Value) -> ModelDeployment {
    serde_json::from_value(json!({
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": {"model": "llama-3.1-8b", "source": "s3://models/llama-3.1-8b"}
    }))
    .unwrap()
}

fn mds(hub: &Hub) -> Api<ModelDeployment> {
    Api::namespaced(hub.kube.clone(), NS)
}

/// The `Admitted` condition, once it has `status`.
async fn admitted_condition(
    hub: &Hub,
    name: &str,
    status: &str,
    reason: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    eventually(&format!("{name}: Admitted={status} ({reason})"), || async {
        let md = mds(hub).get(name).await.unwrap();
        md.status.and_then(|s| {
            s.conditions.into_iter().find(|c| {
                c.type_ == condition::ADMITTED && c.status == status && c.reason == reason
            })
        })
    })
    .await
}

/// The replicas of the engine Deployment the operator built, if any.
async fn workload_replicas(hub: &Hub, name: &str) -> Option<i32> {
    let workloads: Api<Deployment> = Api::namespaced(hub.kube.clone(), NS);
    workloads
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|d| d.spec.and_then(|s| s.replicas))
}

async fn patch_spec(hub: &Hub, name: &str, spec: Value) {
    mds(hub)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

async fn an_admission_the_hub_did_not_seal_runs_nothing(db: TestDb) {
    // No cluster sync: the hub never looks, so only a forged admission
    // could make anything run.
    let hub = l40s_hub(db).await;
    hub.tenant("acme", json!({"totalDevices": 8})).await;
    namespace(&hub).await;
    let forged = json!({
        ANNOTATION: "admitted",
        SIGNATURE_ANNOTATION: format!("v1.{}", "ab".repeat(32)),
    });
    mds(&hub)
        .create(&PostParams::default(), &manifest("forged", forged))
        .await
        .unwrap();
    admitted_condition(&hub, "forged", "Unknown", "AwaitingAdmission").await;
    assert_eq!(workload_replicas(&hub, "forged").await, None);
    let pods: Api<Pod> = Api::namespaced(hub.kube.clone(), NS);
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn a_change_after_admission_is_admitted_again_or_held(db: TestDb) {
    let hub = l40s_hub(db).await;
    let background = hub.background();
    // Room for two single-device replicas.
    let (_, key) = hub.tenant("acme", json!({"totalDevices": 2})).await;
    namespace(&hub).await;
    mds(&hub)
        .create(&PostParams::default(), &manifest("llama", json!({})))
        .await
        .unwrap();
    admitted_condition(&hub, "llama", "True", "Admitted").await;
    eventually("one replica runs", || async {
        (workload_replicas(&hub, "llama").await == Some(1)).then_some(())
    })
    .await;
    // The sandbox's API over HTTP, for the real kubectl.
    let serving = hub.sandboxes[0]
        .server
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, serving.kubeconfig_yaml("aws-a")).unwrap();
    let scale = |replicas: &str| {
        let (ok, out) = kubectl(
            &kubeconfig,
            &[
                "-n",
                NS,
                "scale",
                "md",
                "llama",
                &format!("--replicas={replicas}"),
            ],
        );
        assert!(ok, "kubectl scale: {out}");
    };

    // Within quota: admitted again, and it scales.
    scale("2");
    eventually(
        "two replicas run once the hub admits the change",
        || async { (workload_replicas(&hub, "llama").await == Some(2)).then_some(()) },
    )
    .await;
    let listed = hub.get("/api/v1/deployments", &key).await.body["items"][0].clone();
    assert_eq!(listed["replicas"], 2, "{listed:#}");

    // Beyond quota: held at two, saying why.
    scale("5");
    let held = eventually("the hub's reason", || async {
        let c = admitted_condition(&hub, "llama", "False", REASON_CHANGED).await;
        c.message.contains("total devices").then_some(c)
    })
    .await;
    assert!(
        held.message.starts_with("replicas changed"),
        "{}",
        held.message
    );
    assert_eq!(workload_replicas(&hub, "llama").await, Some(2));
    let listed = hub.get("/api/v1/deployments", &key).await.body["items"][0].clone();
    assert_eq!(
        listed["replicas"], 2,
        "the quota still holds two: {listed:#}"
    );
    let trail = hub
        .get(
            "/api/v1/audit?resource=deployments&outcome=Failure",
            &hub.admin,
        )
        .await
        .body
        .to_string();
    assert!(trail.contains("QuotaExceeded"), "the refusal is audited");

    // Another image: held too, whatever the quota.
    patch_spec(
        &hub,
        "llama",
        json!({"replicas": 2, "serving": {"image": "docker.io/evil/miner:latest"}}),
    )
    .await;
    eventually("held for its image", || async {
        let c = admitted_condition(&hub, "llama", "False", REASON_CHANGED).await;
        c.message.contains("serving.image").then_some(())
    })
    .await;
    let workloads: Api<Deployment> = Api::namespaced(hub.kube.clone(), NS);
    let image = workloads
        .get("llama")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap();
    assert!(!image.contains("evil"), "{image}");

    // Put back as admitted: admitted again.
    patch_spec(&hub, "llama", json!({"serving": {"image": null}})).await;
    admitted_condition(&hub, "llama", "True", "Admitted").await;
    serving.shutdown().await;
    background.stop().await;
}

/// Issue 17, finding 3: images and engine flags are the platform's choice.
async fn an_engine_image_or_flag_the_platform_does_not_allow_is_refused(db: TestDb) {
    let hub = l40s_hub(db).await;
    let background = hub.background();
    hub.tenant("acme", json!({"totalDevices": 8})).await;
    namespace(&hub).await;
    for (name, serving, named) in [
        (
            "miner",
            json!({"image": "docker.io/evil/miner:latest"}),
            "evil/miner",
        ),
        (
            "remote",
            json!({"extraArgs": ["--trust-remote-code"]}),
            "--trust-remote-code",
        ),
    ] {
        let mut md = manifest(name, json!({}));
        md.spec.serving = serde_json::from_value(serving).unwrap();
        mds(&hub).create(&PostParams::default(), &md).await.unwrap();
        let refused = admitted_condition(&hub, name, "False", "EngineNotAllowed").await;
        assert!(refused.message.contains(named), "{}", refused.message);
        assert_eq!(workload_replicas(&hub, name).await, None);
    }
    // The platform's own flags go through.
    let mut md = manifest("tuned", json!({}));
    md.spec.serving =
        serde_json::from_value(json!({"extraArgs": ["--max-num-seqs", "64"]})).unwrap();
    mds(&hub).create(&PostParams::default(), &md).await.unwrap();
    admitted_condition(&hub, "tuned", "True", "Admitted").await;
    background.stop().await;
}

modelfleet_api::store_tests!(
    an_admission_the_hub_did_not_seal_runs_nothing,
    a_change_after_admission_is_admitted_again_or_held,
    an_engine_image_or_flag_the_platform_does_not_allow_is_refused,
);
