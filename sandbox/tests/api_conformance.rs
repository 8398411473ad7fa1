//! Conformance of the sandbox API server, through a real in-process
//! `kube::Client`: the semantics the operator and controllers rely on.

mod support;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use modelfleet_sandbox::{ApiServer, ApiServerOptions};
use serde_json::json;
use support::{install_widget_crd, widget, widgets};

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn status_code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn server() -> (ApiServer, Client) {
    let server = ApiServer::new();
    let client = server.client();
    (server, client)
}

#[tokio::test]
async fn create_get_and_list_with_label_and_field_selectors() {
    let (_server, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    api.create(&pp, &cm("a", json!({"app": "web", "tier": "front"})))
        .await
        .unwrap();
    api.create(&pp, &cm("b", json!({"app": "db"})))
        .await
        .unwrap();
    api.create(&pp, &cm("c", json!({"app": "web", "skip": "yes"})))
        .await
        .unwrap();
    assert_eq!(
        status_code(api.create(&pp, &cm("a", json!({}))).await.unwrap_err()),
        409
    );
    let got = api.get("a").await.unwrap();
    assert!(got.metadata.uid.is_some() && got.metadata.creation_timestamp.is_some());

    let names = |list: kube::core::ObjectList<ConfigMap>| {
        list.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    };
    let web = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert!(web.metadata.resource_version.is_some());
    assert_eq!(names(web), ["a", "c"]);
    let set = api
        .list(&ListParams::default().labels("app in (web,db),!skip"))
        .await
        .unwrap();
    assert_eq!(names(set), ["a", "b"]);
    let notin = api
        .list(&ListParams::default().labels("app notin (web)"))
        .await
        .unwrap();
    assert_eq!(names(notin), ["b"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["b"]);
    let unsupported = api
        .list(&ListParams::default().fields("data.k=v"))
        .await
        .unwrap_err();
    assert_eq!(status_code(unsupported), 400);

    let all: Api<ConfigMap> = Api::all(client.clone());
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    system.create(&pp, &cm("d", json!({}))).await.unwrap();
    let everywhere = all
        .list(&ListParams::default().fields("metadata.namespace=kube-system"))
        .await
        .unwrap();
    assert_eq!(names(everywhere), ["d"]);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );

    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    assert_eq!(
        status_code(missing.create(&pp, &cm("x", json!({}))).await.unwrap_err()),
        404
    );
    assert_eq!(status_code(api.get("nope").await.unwrap_err()), 404);

    let pods: Api<Pod> = Api::namespaced(client, "default");
    for (name, node) in [("p1", "n1"), ("p2", "n2")] {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i:1"}]}}))
        .unwrap();
        pods.create(&pp, &pod).await.unwrap();
    }
    let on_n2 = pods
        .list(&ListParams::default().fields("spec.nodeName=n2"))
        .await
        .unwrap();
    assert_eq!(
        on_n2.items.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        ["p2"]
    );
    assert_eq!(
        on_n2.items[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
}

#[tokio::test]
async fn a_stale_update_conflicts() {
    let (_server, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut fresh = first.clone();
    fresh.data = Some([("k".to_owned(), "new".to_owned())].into());
    let updated = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), first.resource_version());
    let mut stale = first;
    stale.data = Some([("k".to_owned(), "stale".to_owned())].into());
    let err = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn generation_moves_only_with_the_spec_and_status_is_kept_apart() {
    let (_server, client) = server();
    install_widget_crd(&client).await;
    let api = widgets(&client, "default");
    let mut w = widget("w", json!({"size": 1}));
    w.data["status"] = json!({"phase": "Ignored"});
    let made = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(made.metadata.generation, Some(1));
    assert!(
        made.data.get("status").is_none(),
        "status is dropped on create"
    );

    let labelled = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "status": {"phase": "X"}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    assert!(
        labelled.data.get("status").is_none(),
        "writes to the main resource ignore status"
    );

    let status = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"]["phase"], "Ready");
    assert_eq!(
        status.data["spec"]["size"], 1,
        "writes to /status ignore the spec"
    );
    assert_eq!(status.metadata.generation, Some(1));

    let resized = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(resized.metadata.generation, Some(2));
    assert_eq!(resized.data["status"]["phase"], "Ready");

    let same = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.resource_version(),
        resized.resource_version(),
        "a no-op writes nothing"
    );
}

#[tokio::test]
async fn a_finalizer_holds_deletion_until_removed_then_a_watch_sees_deleted() {
    let (_server, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let made = api.create(&PostParams::default(), &held).await.unwrap();
    let mut events = api
        .watch(
            &WatchParams::default().fields("metadata.name=held"),
            &made.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    let deleted = api.delete("held", &DeleteParams::default()).await.unwrap();
    let terminating = deleted
        .left()
        .expect("still there while the finalizer holds it");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(
        api.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    assert!(matches!(
        events.try_next().await.unwrap(),
        Some(WatchEvent::Modified(_))
    ));

    // Adding a finalizer to an object being deleted is refused.
    let add = Patch::Json::<()>(
        serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/other"}]))
        .unwrap(),
    );
    assert_eq!(
        status_code(
            api.patch("held", &PatchParams::default(), &add)
                .await
                .unwrap_err()
        ),
        422
    );

    let remove = Patch::Json::<()>(
        serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": ["example.com/hold"]},
        {"op": "remove", "path": "/metadata/finalizers"}]))
        .unwrap(),
    );
    api.patch("held", &PatchParams::default(), &remove)
        .await
        .unwrap();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Deleted(obj)) => assert_eq!(obj.name_any(), "held"),
        other => panic!("expected DELETED, got {other:?}"),
    }
    assert_eq!(status_code(api.get("held").await.unwrap_err()), 404);
}

#[tokio::test]
async fn owned_objects_are_collected_with_their_owner() {
    let (_server, client) = server();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let configmaps: Api<ConfigMap> = Api::namespaced(client, "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "owner"},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}
    }))
    .unwrap();
    for round in ["background", "orphan"] {
        let owner = deployments
            .create(&PostParams::default(), &deployment)
            .await
            .unwrap();
        let reference = owner.controller_owner_ref(&()).unwrap();
        for name in ["child-1", "child-2"] {
            let mut child = cm(name, json!({}));
            child.metadata.owner_references = Some(vec![reference.clone()]);
            configmaps
                .create(&PostParams::default(), &child)
                .await
                .unwrap();
        }
        let params = if round == "orphan" {
            DeleteParams::orphan()
        } else {
            DeleteParams::background()
        };
        deployments.delete("owner", &params).await.unwrap();
        let left = configmaps.list(&ListParams::default()).await.unwrap().items;
        if round == "orphan" {
            assert_eq!(left.len(), 2);
            assert!(left.iter().all(|c| c.metadata.owner_references.is_none()));
            for c in left {
                configmaps
                    .delete(&c.name_any(), &DeleteParams::default())
                    .await
                    .unwrap();
            }
        } else {
            assert!(
                left.is_empty(),
                "dependents of a deleted owner are collected: {left:?}"
            );
        }
    }
    // A dependent created after its owner is gone is collected at once.
    let mut dangling = cm("dangling", json!({}));
    dangling.metadata.owner_references = Some(vec![
        serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "gone", "uid": "no-such-uid"}))
        .unwrap(),
    ]);
    configmaps
        .create(&PostParams::default(), &dangling)
        .await
        .unwrap();
    assert_eq!(
        status_code(configmaps.get("dangling").await.unwrap_err()),
        404
    );
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let (_server, client) = server();
    let configmaps: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = configmaps
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut child = cm("child", json!({}));
    child.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    child.metadata.finalizers = Some(vec!["example.com/slow".into()]);
    configmaps
        .create(&PostParams::default(), &child)
        .await
        .unwrap();
    configmaps
        .delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let waiting = configmaps.get("owner").await.unwrap();
    assert_eq!(
        waiting.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_owned()])
    );
    assert!(
        configmaps
            .get("child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    configmaps
        .patch(
            "child",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(status_code(configmaps.get("child").await.unwrap_err()), 404);
    assert_eq!(status_code(configmaps.get("owner").await.unwrap_err()), 404);
}

#[tokio::test]
async fn watches_resume_from_a_resource_version_and_expire_when_too_old() {
    let server = ApiServer::with_options(ApiServerOptions {
        history_limit: 5,
        bookmark_interval: Duration::from_millis(200),
        ..ApiServerOptions::default()
    });
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .create(&PostParams::default(), &cm("c0", json!({})))
        .await
        .unwrap();
    let after_first = first.resource_version().unwrap();
    for i in 1..3 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let resumed: Vec<String> = api
        .watch(&WatchParams::default().timeout(1), &after_first)
        .await
        .unwrap()
        .take(2)
        .map(|e| match e.unwrap() {
            WatchEvent::Added(c) => c.name_any(),
            other => panic!("{other:?}"),
        })
        .collect()
        .await;
    assert_eq!(
        resumed,
        ["c1", "c2"],
        "history after the given version is replayed"
    );

    for i in 3..12 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), &after_first)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    let now = server.resource_version();
    let mut bookmarks = api
        .watch(&WatchParams::default().timeout(30), &now.to_string())
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap();
    assert!(matches!(
        bookmarks.try_next().await.unwrap(),
        Some(WatchEvent::Added(_))
    ));
    match bookmarks.try_next().await.unwrap() {
        Some(WatchEvent::Bookmark(b)) => {
            assert!(b.metadata.resource_version.parse::<u64>().unwrap() > now);
        }
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
}

#[tokio::test]
async fn the_runtime_watcher_sees_added_modified_and_deleted() {
    let (_server, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let writer = api.clone();
    let writes = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer
            .create(&PostParams::default(), &cm("w", json!({})))
            .await
            .unwrap();
        writer
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"k": "changed"}})),
            )
            .await
            .unwrap();
        writer.delete("w", &DeleteParams::default()).await.unwrap();
    });
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("the watcher keeps up")
            .unwrap()
            .unwrap();
        match event {
            watcher::Event::Apply(c) => seen.push(format!("apply {}", c.data.unwrap()["k"])),
            watcher::Event::Delete(c) => seen.push(format!("delete {}", c.name_any())),
            _ => {}
        }
    }
    writes.await.unwrap();
    assert_eq!(seen, ["apply v", "apply changed", "delete w"]);
}
