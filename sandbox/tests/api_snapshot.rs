//! An API server kept in a snapshot file and loaded again, as `modelfleet
//! serve` restarts its sandbox clusters: the same objects with the same
//! uids, owner references that still collect dependents, CRDs still
//! served, resourceVersions that never go back, watches from before the
//! restart answered 410 Gone, and a bad file refused by name.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use modelfleet_sandbox::{ApiServer, ApiServerOptions, SnapshotError};
use serde_json::json;
use support::{install_widget_crd, widget, widgets};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

fn rv(resource: &impl Resource) -> u64 {
    resource.resource_version().unwrap().parse().unwrap()
}

fn load(path: &std::path::Path) -> ApiServer {
    ApiServer::load(ApiServerOptions::default(), path)
        .expect("the snapshot loads")
        .expect("there is a snapshot")
}

#[tokio::test]
async fn a_snapshot_keeps_objects_uids_owners_and_resource_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    assert!(
        ApiServer::load(ApiServerOptions::default(), &path)
            .unwrap()
            .is_none(),
        "no file: nothing to load"
    );

    let server = ApiServer::new();
    let client = server.client();
    install_widget_crd(&client).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let owner = deployments
        .create(&PostParams::default(), &deployment("owner"))
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut child = cm("child");
    child.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    let child = configmaps
        .create(&PostParams::default(), &child)
        .await
        .unwrap();
    let kept = widgets(&client, "default")
        .create(&PostParams::default(), &widget("w", json!({"size": 3})))
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "first"}, "spec": {"ports": [{"port": 80}]}}))
    .unwrap();
    let first_ip = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"token": "dA=="}}))
            .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let saved_rv = server.write_snapshot(&path).unwrap();
    assert_eq!(saved_rv, server.resource_version());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the snapshot holds Secrets: its owner's alone");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["cluster.json"], "no temporary file is left");

    let restored = load(&path);
    assert!(
        restored.resource_version() >= saved_rv,
        "resourceVersions never go back: {} < {saved_rv}",
        restored.resource_version()
    );
    let client = restored.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let again = deployments.get("owner").await.unwrap();
    assert_eq!(again.uid(), owner.uid());
    assert_eq!(rv(&again), rv(&owner), "objects keep their resourceVersion");
    let child_again = configmaps.get("child").await.unwrap();
    assert_eq!(child_again.uid(), child.uid());
    assert_eq!(
        child_again.metadata.owner_references,
        child.metadata.owner_references
    );
    // The CRD is served again, with its objects.
    let widget_again = widgets(&client, "default").get("w").await.unwrap();
    assert_eq!(widget_again.uid(), kept.uid());
    assert_eq!(widget_again.data["spec"]["size"], 3);
    let secret_again = Api::<Secret>::namespaced(client.clone(), "default")
        .get("s")
        .await
        .unwrap();
    assert_eq!(secret_again.data.unwrap()["token"].0, b"t");
    // The built-in namespaces and bootstrap policy are there, once.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    assert_eq!(
        namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        4
    );

    // New writes continue above every version handed out before.
    let written = configmaps
        .create(&PostParams::default(), &cm("new"))
        .await
        .unwrap();
    assert!(rv(&written) > saved_rv, "{} <= {saved_rv}", rv(&written));
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let mut second = service.clone();
    second.metadata.name = Some("second".to_owned());
    let second_ip = services
        .create(&PostParams::default(), &second)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip;
    assert_ne!(second_ip, first_ip, "service IPs are not handed out twice");

    // The owner's dependents were restored with it: deleting it collects
    // the child.
    deployments
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    let left: Vec<String> = configmaps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert!(!left.contains(&"child".to_owned()), "{left:?}");

    // A snapshot of the restored server loads again, its counter as high.
    let later_rv = restored.write_snapshot(&path).unwrap();
    assert!(later_rv > saved_rv);
    assert!(load(&path).resource_version() >= later_rv);
}

#[tokio::test]
async fn a_watch_from_before_the_restart_is_gone_and_one_from_after_it_follows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let server = ApiServer::new();
    let configmaps: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let before = configmaps
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap();
    configmaps
        .create(&PostParams::default(), &cm("b"))
        .await
        .unwrap();
    server.write_snapshot(&path).unwrap();

    let restored = load(&path);
    let configmaps: Api<ConfigMap> = Api::namespaced(restored.client(), "default");
    let mut stream = configmaps
        .watch(&WatchParams::default(), &before.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // A client lists again and watches from the list's version.
    let list = configmaps.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    let from = list.metadata.resource_version.unwrap();
    let mut stream = configmaps
        .watch(&WatchParams::default().timeout(10), &from)
        .await
        .unwrap()
        .boxed();
    configmaps
        .create(&PostParams::default(), &cm("c"))
        .await
        .unwrap();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Added(c)) => assert_eq!(c.name_any(), "c"),
        other => panic!("expected the new object, got {other:?}"),
    }
}

#[tokio::test]
async fn service_account_tokens_issued_after_a_restart_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let server = ApiServer::new();
    let accounts: Api<ServiceAccount> = Api::namespaced(server.client(), "default");
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let old_token = server.service_account_token("default", "robot");
    server.write_snapshot(&path).unwrap();

    let restored = load(&path);
    // Tokens are not kept: the old one is unknown, a new one works.
    let old = Api::<ConfigMap>::namespaced(restored.client_as(&old_token), "default");
    match old.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(status) => assert_eq!(status.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let token = restored.service_account_token("default", "robot");
    let robot = Api::<ConfigMap>::namespaced(restored.client_as(&token), "default");
    match robot.list(&ListParams::default()).await.unwrap_err() {
        // Authenticated, not authorized: the account has no role.
        kube::Error::Api(status) => assert_eq!(status.code, 403),
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test]
async fn a_corrupt_or_unreadable_snapshot_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let server = ApiServer::new();
    server.write_snapshot(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let error = ApiServer::load(ApiServerOptions::default(), &path).unwrap_err();
    assert!(matches!(error, SnapshotError::Corrupt { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("move it away"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        &good[..good.len() / 2],
        "a refused snapshot is left as it was"
    );

    let mut other_format: serde_json::Value = serde_json::from_slice(&good).unwrap();
    other_format["format"] = json!(99);
    std::fs::write(&path, serde_json::to_vec(&other_format).unwrap()).unwrap();
    let message = ApiServer::load(ApiServerOptions::default(), &path)
        .unwrap_err()
        .to_string();
    assert!(message.contains("format 99"), "{message}");

    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let error = ApiServer::load(ApiServerOptions::default(), &path).unwrap_err();
    assert!(matches!(error, SnapshotError::Read { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn a_keeper_writes_while_objects_change_and_once_more_when_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let server = ApiServer::new();
    let keeper = server.keep_snapshot(path.clone(), Duration::from_millis(50));
    let configmaps: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    configmaps
        .create(&PostParams::default(), &cm("periodic"))
        .await
        .unwrap();
    // Written in the background: poll until the file has it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(loaded)) = ApiServer::load(ApiServerOptions::default(), &path) {
            let found = Api::<ConfigMap>::namespaced(loaded.client(), "default")
                .get_opt("periodic")
                .await
                .unwrap();
            if found.is_some() {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never written in the background"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    configmaps
        .create(&PostParams::default(), &cm("last"))
        .await
        .unwrap();
    let last_rv = keeper.stop().await.unwrap();
    assert_eq!(last_rv, server.resource_version());
    let loaded = load(&path);
    let last = Api::<ConfigMap>::namespaced(loaded.client(), "default")
        .get("last")
        .await
        .unwrap();
    assert!(rv(&last) <= last_rv);
}
