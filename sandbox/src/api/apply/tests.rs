use serde_json::json;

use super::*;

fn writer(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        api_version: "v1",
        time: "2025-01-01T00:00:00Z",
        scope: Scope::All,
    }
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
}

#[test]
fn apply_creates_then_removes_fields_it_no_longer_applies() {
    let first = apply(
        None,
        &cm(json!({"a": "1", "b": "2"})),
        Shape::Builtin,
        writer("m"),
        false,
    )
    .unwrap();
    assert_eq!(first["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(
        first["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    let second = apply(
        Some(&first),
        &cm(json!({"a": "1"})),
        Shape::Builtin,
        writer("m"),
        false,
    )
    .unwrap();
    assert_eq!(second["data"], json!({"a": "1"}));
}

#[test]
fn a_field_another_manager_owns_conflicts_unless_forced() {
    let first = apply(
        None,
        &cm(json!({"a": "1"})),
        Shape::Builtin,
        writer("one"),
        false,
    )
    .unwrap();
    let causes = apply(
        Some(&first),
        &cm(json!({"a": "2"})),
        Shape::Builtin,
        writer("two"),
        false,
    )
    .unwrap_err();
    assert_eq!(causes[0].field, ".data.a");
    assert_eq!(causes[0].message, "conflict with \"one\" using v1");
    // The same value is shared, not a conflict.
    let shared = apply(
        Some(&first),
        &cm(json!({"a": "1"})),
        Shape::Builtin,
        writer("two"),
        false,
    )
    .unwrap();
    assert_eq!(entries(&shared).len(), 2);
    let forced = apply(
        Some(&first),
        &cm(json!({"a": "2"})),
        Shape::Builtin,
        writer("two"),
        true,
    )
    .unwrap();
    assert_eq!(forced["data"]["a"], "2");
    let owners: Vec<String> = entries(&forced).into_iter().map(|e| e.manager).collect();
    assert_eq!(owners, ["two"]);
}

#[test]
fn numbers_equal_in_value_are_shared_not_conflicts() {
    // A CRD applied from code stores `minimum: 1`; the same file applied
    // from YAML sends `1.0`. Structured-merge-diff compares them as numbers.
    let crd = |minimum: Value, maximum: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "spec": {"versions": [{"name": "v1", "minimum": minimum, "maximum": maximum}]}})
    };
    let first = apply(
        None,
        &crd(json!(1), json!(2)),
        Shape::Builtin,
        writer("one"),
        false,
    )
    .unwrap();
    let shared = apply(
        Some(&first),
        &crd(json!(1.0), json!(2.0)),
        Shape::Builtin,
        writer("two"),
        false,
    )
    .unwrap();
    assert_eq!(entries(&shared).len(), 2);
    // A different number still conflicts.
    let causes = apply(
        Some(&first),
        &crd(json!(1.5), json!(2)),
        Shape::Builtin,
        writer("two"),
        false,
    )
    .unwrap_err();
    assert_eq!(causes[0].message, "conflict with \"one\" using v1");
}

#[test]
fn a_removed_field_stays_when_another_manager_owns_it() {
    let first = apply(
        None,
        &cm(json!({"a": "1", "b": "2"})),
        Shape::Builtin,
        writer("one"),
        false,
    )
    .unwrap();
    let both = apply(
        Some(&first),
        &cm(json!({"b": "2"})),
        Shape::Builtin,
        writer("two"),
        false,
    )
    .unwrap();
    let after = apply(
        Some(&both),
        &cm(json!({"a": "1"})),
        Shape::Builtin,
        writer("one"),
        false,
    )
    .unwrap();
    assert_eq!(after["data"], json!({"a": "1", "b": "2"}));
}

#[test]
fn updates_take_ownership_of_what_they_change() {
    let first = apply(
        None,
        &cm(json!({"a": "1"})),
        Shape::Builtin,
        writer("applier"),
        false,
    )
    .unwrap();
    let mut edited = first.clone();
    edited["data"]["a"] = json!("9");
    record_update(Some(&first), &mut edited, Shape::Builtin, writer("editor"));
    let list = entries(&edited);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].manager.as_str(), list[0].operation.as_str()),
        ("editor", "Update")
    );
    let causes = apply(
        Some(&edited),
        &cm(json!({"a": "1"})),
        Shape::Builtin,
        writer("applier"),
        false,
    )
    .unwrap_err();
    assert_eq!(causes[0].message, "conflict with \"editor\" using v1");
}

#[test]
fn status_scope_touches_only_status() {
    let obj = json!({"metadata": {"name": "x"}, "spec": {"r": 1}, "status": {"phase": "A"}});
    let status_writer = Writer {
        scope: Scope::StatusOnly,
        ..writer("ctl")
    };
    let applied = json!({"metadata": {"name": "x"}, "status": {"phase": "B"}});
    let out = apply(Some(&obj), &applied, Shape::Builtin, status_writer, true).unwrap();
    assert_eq!(out["status"]["phase"], "B");
    let list = entries(&out);
    assert_eq!(list[0].subresource.as_deref(), Some("status"));
    assert_eq!(
        list[0].fields.iter().next().unwrap(),
        &vec!["f:status".to_owned(), "f:phase".to_owned()]
    );
}

#[test]
fn keyed_list_items_merge_and_leave() {
    let pod =
        |containers: Value| json!({"metadata": {"name": "p"}, "spec": {"containers": containers}});
    let first = apply(
        None,
        &pod(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}])),
        Shape::Builtin,
        writer("m"),
        false,
    )
    .unwrap();
    let second = apply(
        Some(&first),
        &pod(json!([{"name": "a", "image": "2"}])),
        Shape::Builtin,
        writer("m"),
        false,
    )
    .unwrap();
    assert_eq!(
        second["spec"]["containers"],
        json!([{"name": "a", "image": "2"}])
    );
}

#[test]
fn kubectl_takes_over_fields_of_its_own_client_side_apply() {
    let mut live = cm(json!({"a": "1"}));
    live["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"a\":\"1\"}}"});
    record_update(
        None,
        &mut live,
        Shape::Builtin,
        writer("kubectl-client-side-apply"),
    );
    let taken = apply(
        Some(&live),
        &cm(json!({"a": "2"})),
        Shape::Builtin,
        writer("kubectl"),
        false,
    )
    .unwrap();
    assert_eq!(taken["data"]["a"], "2");
    // Someone else changed it since: a real conflict.
    let mut edited = live.clone();
    edited["data"]["a"] = json!("9");
    record_update(
        Some(&live),
        &mut edited,
        Shape::Builtin,
        writer("kubectl-client-side-apply"),
    );
    assert!(
        apply(
            Some(&edited),
            &cm(json!({"a": "2"})),
            Shape::Builtin,
            writer("kubectl"),
            false
        )
        .is_err()
    );
}
