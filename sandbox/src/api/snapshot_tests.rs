use serde_json::json;

use super::*;
use crate::api::store::Store;

fn snapshot(objects: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "format": FORMAT,
        "resourceVersion": "40",
        "nextServiceIp": 3,
        "resources": [{"group": "", "resource": "configmaps", "objects": objects}]
    }))
    .unwrap()
}

fn cm(name: &str, uid: &str, rv: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": rv}})
}

#[test]
fn a_snapshot_is_read_with_its_keys_and_counter() {
    let restored = parse(&snapshot(vec![cm("a", "1", "7"), cm("b", "2", "9")])).unwrap();
    assert_eq!(restored.rv, 40);
    assert_eq!(restored.next_service_ip, 3);
    let keys: Vec<_> = restored.objects.iter().map(|(_, k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        [
            ("default".to_owned(), "a".to_owned()),
            ("default".to_owned(), "b".to_owned())
        ]
    );
}

#[test]
fn what_no_server_wrote_is_refused_with_the_reason() {
    let twice = parse(&snapshot(vec![cm("a", "1", "7"), cm("a", "2", "9")])).unwrap_err();
    assert!(
        twice.contains("configmaps default/a is in it twice"),
        "{twice}"
    );
    let same_uid = parse(&snapshot(vec![cm("a", "1", "7"), cm("b", "1", "9")])).unwrap_err();
    assert!(same_uid.contains("uid 1"), "{same_uid}");
    let no_uid = parse(&snapshot(vec![json!({"metadata": {"name": "a"}})])).unwrap_err();
    assert!(no_uid.contains("lacks a name, a uid"), "{no_uid}");
    let garbage = parse(b"{\"format\": 1").unwrap_err();
    assert!(garbage.starts_with("not a snapshot"), "{garbage}");
}

#[test]
fn a_restored_store_continues_its_counter_and_keeps_dependents() {
    let mut child = cm("child", "c", "12");
    child["metadata"]["ownerReferences"] = json!([{"uid": "owner"}]);
    // An object newer than the counter the file names (a file edited by
    // hand): the counter goes past it all the same.
    let restored = parse(&snapshot(vec![child, cm("late", "l", "55")])).unwrap();
    let mut store = Store::new(10, 16);
    store.restore(restored.rv, restored.objects);
    assert_eq!(store.current_rv(), 55);
    assert_eq!(store.dependents_of("owner"), ["c"]);
    assert!(store.by_uid("l").is_some());
    let gr = GroupResource::new("", "configmaps");
    // Watches from before the restore are gone; from it on they follow.
    assert_eq!(store.subscribe(&gr, Some(40)).unwrap_err(), 55);
    assert!(store.subscribe(&gr, Some(55)).unwrap().replay.is_empty());
    let written = store.put(&gr, ("default".into(), "new".into()), cm("new", "n", "0"));
    assert_eq!(written["metadata"]["resourceVersion"], "56");
}
