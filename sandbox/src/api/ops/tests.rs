use serde_json::json;

use super::*;
use crate::api::registry::GroupResource;

fn state() -> State {
    State::new(100, 100, 1)
}

fn params() -> WriteParams {
    WriteParams {
        dry_run: false,
        manager: "test".into(),
        validation: FieldValidation::Strict,
        force: false,
        user: None,
    }
}

fn target(state: &State, group: &str, plural: &str, ns: Option<&str>) -> Target {
    Target {
        ty: state
            .registry
            .get(&GroupResource::new(group, plural))
            .unwrap(),
        version: "v1".into(),
        namespace: ns.map(str::to_owned),
    }
}

#[test]
fn default_namespaces_exist_and_creates_need_one() {
    let mut state = state();
    let cms = target(&state, "", "configmaps", Some("nowhere"));
    let err = create(
        &mut state,
        &cms,
        json!({"metadata": {"name": "c"}}),
        &params(),
    )
    .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
    let cms = target(&state, "", "configmaps", Some("kube-system"));
    let made = create(
        &mut state,
        &cms,
        json!({"metadata": {"generateName": "c-"}}),
        &params(),
    )
    .unwrap();
    let name = meta(&made.object, "name").unwrap();
    assert!(name.starts_with("c-") && name.len() == 7, "{name}");
    assert_eq!(made.object["apiVersion"], "v1");
    assert_eq!(made.object["kind"], "ConfigMap");
}

#[test]
fn generation_follows_spec_and_status_stays_apart() {
    let mut state = state();
    let deploys = target(&state, "apps", "deployments", Some("default"));
    let body = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}},
        "status": {"replicas": 9}});
    let made = create(&mut state, &deploys, body, &params())
        .unwrap()
        .object;
    assert_eq!(made["metadata"]["generation"], 1);
    assert!(made.get("status").is_none());
    let mut labelled = made.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    labelled["status"] = json!({"replicas": 3});
    let after = update(&mut state, &deploys, "d", false, labelled, &params())
        .unwrap()
        .object;
    assert_eq!(after["metadata"]["generation"], 1);
    assert!(after.get("status").is_none());
    let mut status = after.clone();
    status["status"] = json!({"replicas": 3});
    status["spec"]["replicas"] = json!(5);
    let after = update(&mut state, &deploys, "d", true, status, &params())
        .unwrap()
        .object;
    assert_eq!(after["status"]["replicas"], 3);
    assert_eq!(after["spec"]["replicas"], 1);
    let mut scaled = after.clone();
    scaled["spec"]["replicas"] = json!(2);
    let after = update(&mut state, &deploys, "d", false, scaled, &params())
        .unwrap()
        .object;
    assert_eq!(after["metadata"]["generation"], 2);
}

#[test]
fn a_write_that_changes_nothing_keeps_the_resource_version() {
    let mut state = state();
    let cms = target(&state, "", "configmaps", Some("default"));
    let made = create(
        &mut state,
        &cms,
        json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
        &params(),
    )
    .unwrap();
    let again = update(&mut state, &cms, "c", false, made.object.clone(), &params()).unwrap();
    assert_eq!(
        again.object["metadata"]["resourceVersion"],
        made.object["metadata"]["resourceVersion"]
    );
}
