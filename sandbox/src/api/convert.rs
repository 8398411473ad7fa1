//! Between what is stored and what a version shows. Objects are stored in
//! their storage version; custom resources with several versions are
//! served unconverted but for `apiVersion` (the CRD `None` conversion
//! strategy), and `events.k8s.io/v1` events are core `v1` events with
//! renamed fields, converted both ways as the real server does.

use serde_json::{Map, Value};

use super::registry::{Conversion, ResourceType};

/// `events.k8s.io/v1` name ↔ core `v1` name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let mut moved = Map::new();
    for (from, to) in pairs {
        if let Some(v) = map.remove(from) {
            moved.insert(to.to_owned(), v);
        }
    }
    map.extend(moved);
}

/// A stored object as `version` of `ty` shows it.
pub fn to_view(ty: &ResourceType, version: &str, mut obj: Value) -> Value {
    if ty.conversion == Conversion::EventsV1 {
        rename(&mut obj, EVENT_FIELDS.iter().map(|(v1, core)| (*core, *v1)));
    }
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(ty.api_version(version)));
        map.insert("kind".into(), Value::String(ty.kind.clone()));
    }
    obj
}

/// An object written through `ty` in the form it is stored in.
pub fn to_storage(ty: &ResourceType, mut obj: Value) -> Value {
    let (api_version, kind) = match ty.conversion {
        Conversion::EventsV1 => {
            rename(&mut obj, EVENT_FIELDS.iter().copied());
            ("v1".to_owned(), "Event".to_owned())
        }
        Conversion::None => (ty.api_version(&ty.storage_version), ty.kind.clone()),
    };
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::{GroupResource, Registry};
    use serde_json::json;

    #[test]
    fn events_v1_round_trip_through_core_storage() {
        let registry = Registry::default();
        let ty = registry
            .get(&GroupResource::new("events.k8s.io", "events"))
            .unwrap();
        let written = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "p"},
            "note": "hello", "reason": "Started", "reportingController": "ctl"});
        let stored = to_storage(&ty, written.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "hello");
        assert_eq!(stored["reportingComponent"], "ctl");
        assert_eq!(to_view(&ty, "v1", stored), written);
    }
}
