//! Writes through a real in-process `kube::Client`: server-side apply and
//! field ownership, CRD schema validation, JSON patch `test`, events
//! published by kube's `Recorder`, the kinds a Helm chart installs
//! (Ingress, ValidatingAdmissionPolicy and its binding), and deletes whose
//! options come in protobuf, as client-go's typed clients send them.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use modelfleet_sandbox::ApiServer;
use serde_json::json;
use support::{install_widget_crd, widget, widgets};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
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
async fn server_side_apply_creates_updates_removes_and_resolves_conflicts() {
    let (_server, client) = server();
    install_widget_crd(&client).await;
    let api = widgets(&client, "default");
    let apply = |manager: &str, force: bool| {
        let params = PatchParams::apply(manager);
        if force { params.force() } else { params }
    };
    let config = |spec: serde_json::Value| json!({"apiVersion": "example.modelfleet.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
    let created = api
        .patch(
            "w",
            &apply("alice", false),
            &Patch::Apply(config(
                json!({"size": 1, "color": "red", "labels": {"a": "1"}}),
            )),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["color"], "red");
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["alice"]);

    let removed = api
        .patch(
            "w",
            &apply("alice", false),
            &Patch::Apply(config(json!({"size": 1, "labels": {"a": "1"}}))),
        )
        .await
        .unwrap();
    assert!(
        removed.data["spec"].get("color").is_none(),
        "a field dropped from the applied config goes"
    );

    let conflict = api
        .patch(
            "w",
            &apply("bob", false),
            &Patch::Apply(config(json!({"size": 2}))),
        )
        .await
        .unwrap_err();
    match conflict {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("conflict with \"alice\""),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    let shared = api
        .patch(
            "w",
            &apply("bob", false),
            &Patch::Apply(config(json!({"size": 1, "labels": {"b": "2"}}))),
        )
        .await
        .unwrap();
    assert_eq!(shared.data["spec"]["labels"], json!({"a": "1", "b": "2"}));
    let forced = api
        .patch(
            "w",
            &apply("bob", true),
            &Patch::Apply(config(json!({"size": 3, "labels": {"b": "2"}}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["size"], 3);
    assert_eq!(
        forced.metadata.generation,
        Some(4),
        "create, removal, shared labels, size"
    );

    // Status through server-side apply on /status, as the operator does.
    let status = json!({"apiVersion": "example.modelfleet.io/v1", "kind": "Widget", "status": {"phase": "Ready"}});
    let with_status = api
        .patch_status("w", &apply("controller", true), &Patch::Apply(status))
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["phase"], "Ready");
    assert_eq!(with_status.data["spec"]["size"], 3);
}

#[tokio::test]
async fn custom_resources_are_validated_against_the_crd_schema() {
    let (_server, client) = server();
    install_widget_crd(&client).await;
    let api = widgets(&client, "default");
    let bad = widget("bad", json!({"size": -1, "color": "green"}));
    match api.create(&PostParams::default(), &bad).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert_eq!(
                s.message,
                "Widget.example.modelfleet.io \"bad\" is invalid: [spec.color: Unsupported value: \"green\": \
                 supported values: \"red\", \"blue\", spec.size: Invalid value: -1: spec.size in body should be \
                 greater than or equal to 0]"
            );
            let fields: Vec<String> = s
                .details
                .unwrap()
                .causes
                .into_iter()
                .map(|c| c.field)
                .collect();
            assert_eq!(fields, ["spec.color", "spec.size"]);
        }
        other => panic!("{other:?}"),
    }
    let missing = widget("missing", json!({}));
    assert_eq!(
        status_code(
            api.create(&PostParams::default(), &missing)
                .await
                .unwrap_err()
        ),
        422
    );
    let pruned = api
        .create(
            &PostParams::default(),
            &widget("ok", json!({"size": 1, "unknown": true})),
        )
        .await
        .unwrap();
    assert!(
        pruned.data["spec"].get("unknown").is_none(),
        "unknown fields are pruned"
    );
}

#[tokio::test]
async fn recorder_events_are_readable_as_core_events() {
    let (_server, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let subject = api
        .create(&PostParams::default(), &cm("subject"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "tester".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("it works".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &subject.object_ref(&()))
        .await
        .unwrap();
    recorder
        .publish(&event, &subject.object_ref(&()))
        .await
        .unwrap();
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let found = core
        .list(
            &ListParams::default()
                .fields("involvedObject.name=subject,involvedObject.kind=ConfigMap"),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(
        found.len(),
        1,
        "a repeated event is one event with a series"
    );
    assert_eq!(found[0].message.as_deref(), Some("it works"));
    assert_eq!(found[0].reporting_component.as_deref(), Some("tester"));
}

#[tokio::test]
async fn a_failed_json_patch_test_answers_422() {
    let (_server, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let patch = Patch::Json::<()>(
        serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": ["someone"]},
        {"op": "add", "path": "/metadata/finalizers", "value": ["mine"]}]))
        .unwrap(),
    );
    match api
        .patch("a", &PatchParams::default(), &patch)
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (422, "Invalid")),
        other => panic!("{other:?}"),
    }
    assert!(api.get("a").await.unwrap().metadata.finalizers.is_none());
}

#[tokio::test]
async fn kubes_finalizer_helper_adds_runs_cleanup_and_lets_go() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event as Finalizer, finalizer};
    use std::sync::Arc;

    let (_server, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("guarded"))
        .await
        .unwrap();
    let run = |obj: ConfigMap| {
        let api = api.clone();
        async move {
            finalizer(
                &api,
                "example.com/cleanup",
                Arc::new(obj),
                |event| async move {
                    Ok::<_, std::convert::Infallible>(match event {
                        Finalizer::Apply(_) => Action::await_change(),
                        Finalizer::Cleanup(_) => Action::await_change(),
                    })
                },
            )
            .await
            .map_err(|e| e.to_string())
        }
    };
    // First pass: the helper adds its finalizer with a JSON patch that
    // tests the absent list against null.
    run(api.get("guarded").await.unwrap()).await.unwrap();
    let held = api.get("guarded").await.unwrap();
    assert_eq!(
        held.metadata.finalizers,
        Some(vec!["example.com/cleanup".to_owned()])
    );
    run(held).await.unwrap();
    api.delete("guarded", &Default::default()).await.unwrap();
    let deleting = api.get("guarded").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    // Cleanup: the helper removes its finalizer and the object goes.
    run(deleting).await.unwrap();
    assert_eq!(status_code(api.get("guarded").await.unwrap_err()), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_lease_manager_elects_exactly_one_leader_and_hands_over() {
    use kube_lease_manager::LeaseManagerBuilder;
    use std::time::Duration;

    let (_server, client) = server();
    let manager = |identity: &str| {
        LeaseManagerBuilder::new(client.clone(), "leader")
            .with_namespace("default")
            .with_identity(identity)
            .with_duration(3)
            .with_grace(1)
            .build()
    };
    let (mut a, a_task) = manager("a").await.unwrap().watch().await;
    let (mut b, b_task) = manager("b").await.unwrap().watch().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !*a.borrow_and_update() && !*b.borrow_and_update() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody took the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..20 {
        let (la, lb) = (*a.borrow(), *b.borrow());
        assert!(la != lb, "exactly one leader at a time (a={la}, b={lb})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The leader steps down (its channel closes); the other takes over.
    let (mut follower, leader_task, follower_task) = if *a.borrow() {
        drop(a);
        (b, a_task, b_task)
    } else {
        drop(b);
        (a, b_task, a_task)
    };
    leader_task.await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !*follower.borrow_and_update() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease was not handed over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(follower);
    follower_task.await.unwrap().unwrap();
}

/// A length-delimited protobuf field (short values only).
fn pb_field(n: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(n << 3) | 2, u8::try_from(bytes.len()).unwrap()];
    out.extend_from_slice(bytes);
    out
}

/// `DeleteOptions` as client-go encodes them: the `k8s\0` envelope around
/// a runtime.Unknown naming the kind, preconditions.uid (field 2.1) and
/// propagationPolicy (field 4) inside.
fn protobuf_delete_options(uid: &str) -> Vec<u8> {
    let raw = [
        pb_field(2, &pb_field(1, uid.as_bytes())),
        pb_field(4, b"Background"),
    ]
    .concat();
    // What Helm 4 sends when it purges its release Secrets.
    let type_meta = [pb_field(1, b"v1"), pb_field(2, b"DeleteOptions")].concat();
    [
        b"k8s\0".to_vec(),
        pb_field(1, &type_meta),
        pb_field(2, &raw),
    ]
    .concat()
}

fn protobuf_delete(name: &str, body: Vec<u8>) -> http::Request<Vec<u8>> {
    http::Request::delete(format!("/api/v1/namespaces/default/configmaps/{name}"))
        .header(
            http::header::CONTENT_TYPE,
            "application/vnd.kubernetes.protobuf",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_delete_with_protobuf_options_honours_them() {
    let (_server, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &cm("release"))
        .await
        .unwrap();
    let uid = created.metadata.uid.unwrap();

    // The options are read, not skipped: a precondition naming another uid
    // is refused as the real server refuses it, and nothing is deleted.
    let refused = client
        .request_text(protobuf_delete(
            "release",
            protobuf_delete_options("not-its-uid"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status_code(refused), 409);
    assert!(api.get_opt("release").await.unwrap().is_some());

    let answer = client
        .request_text(protobuf_delete("release", protobuf_delete_options(&uid)))
        .await
        .unwrap();
    assert!(answer.contains("\"Success\""), "{answer}");
    assert!(api.get_opt("release").await.unwrap().is_none());

    // A body that is neither JSON nor the protobuf envelope is still a 400.
    api.create(&PostParams::default(), &cm("other"))
        .await
        .unwrap();
    let garbage = client
        .request_text(protobuf_delete("other", b"not protobuf".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(status_code(garbage), 400);
    assert!(api.get_opt("other").await.unwrap().is_some());
}

#[tokio::test]
async fn ingresses_and_admission_policies_are_served() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

    let (_server, client) = server();
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    for (group, kind, namespaced) in [
        ("networking.k8s.io", "Ingress", true),
        ("networking.k8s.io", "IngressClass", false),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy",
            false,
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding",
            false,
        ),
    ] {
        let gvk = kube::api::GroupVersionKind::gvk(group, "v1", kind);
        let (_, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("discovery lists {group}/v1 {kind}"));
        assert_eq!(
            caps.scope == kube::discovery::Scope::Namespaced,
            namespaced,
            "{kind}"
        );
    }

    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "hub"},
        "spec": {"ingressClassName": "nginx",
                 "tls": [{"hosts": ["hub.example.com"], "secretName": "hub-tls"}],
                 "rules": [{"host": "hub.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "hub", "port": {"name": "http"}}}}]}}]}
    }))
    .unwrap();
    ingresses
        .create(&PostParams::default(), &ingress)
        .await
        .unwrap();
    let got = ingresses.get("hub").await.unwrap();
    assert_eq!(
        got.spec.unwrap().tls.unwrap()[0].secret_name.as_deref(),
        Some("hub-tls")
    );
    // A load balancer's address is written through /status, as a
    // controller does; writes to the main resource leave status alone.
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}});
    ingresses
        .patch_status("hub", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    ingresses
        .patch(
            "hub",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": null, "metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    let got = ingresses.get("hub").await.unwrap();
    assert_eq!(
        got.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip
            .as_deref(),
        Some("203.0.113.7")
    );

    let classes: Api<IngressClass> = Api::all(client.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "nginx"},
                "spec": {"controller": "k8s.io/ingress-nginx"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        classes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": {"name": "scope"},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": ["rbac.authorization.k8s.io"],
                     "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["rolebindings"]}]},
                 "validations": [{"expression": "true", "reason": "Forbidden"}]}
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": "scope"},
        "spec": {"policyName": "scope", "validationActions": ["Deny"]}
    }))
    .unwrap();
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let got = policies.get("scope").await.unwrap();
    assert_eq!(got.metadata.generation, Some(1));
    assert_eq!(
        bindings
            .get("scope")
            .await
            .unwrap()
            .spec
            .unwrap()
            .validation_actions,
        Some(vec!["Deny".to_owned()])
    );
    // Cluster-scoped: not found under a namespace's path.
    let in_namespace = client
        .request_text(
            http::Request::get(
                "/apis/admissionregistration.k8s.io/v1/namespaces/default/validatingadmissionpolicies/scope",
            )
            .body(Vec::new())
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(in_namespace), 404);
    bindings.delete("scope", &Default::default()).await.unwrap();
    policies.delete("scope", &Default::default()).await.unwrap();
    assert!(policies.get_opt("scope").await.unwrap().is_none());
}
