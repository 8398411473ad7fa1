//! Field sets as server-side apply tracks them: the paths an object sets,
//! in the `FieldsV1` encoding of `metadata.managedFields` (`f:spec`,
//! `k:{"name":"app"}` for an item of a keyed list, `v:"x"` for an item of
//! a set, `.` for an item owned as a whole).
//!
//! Which lists are keyed comes from the CRD schema
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`) for custom
//! resources and from a table of well-known fields for built-in kinds.
//! Lists neither declares are atomic: owned and replaced as one value.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One segment in `FieldsV1` spelling: `f:name`, `k:{…}` or `v:…`.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// How a list field merges.
#[derive(Debug, Clone, PartialEq)]
pub enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Where in a type a value sits, for knowing how its lists merge.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    /// A node of a CRD's structural schema.
    Schema(&'a Value),
    /// Somewhere in a built-in kind: lists by the well-known table.
    Builtin,
    /// Preserved unknown fields of a custom resource: everything atomic.
    Unknown,
}

impl<'a> Shape<'a> {
    pub fn child(self, field: &str) -> Shape<'a> {
        match self {
            Shape::Schema(s) => s
                .get("properties")
                .and_then(|p| p.get(field))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
                .map_or(Shape::Unknown, Shape::Schema),
            other => other,
        }
    }

    pub fn items(self) -> Shape<'a> {
        match self {
            Shape::Schema(s) => s.get("items").map_or(Shape::Unknown, Shape::Schema),
            other => other,
        }
    }

    /// How the list in field `name` (described by `self`) merges.
    pub fn list_kind(self, name: &str, items: &[Value]) -> ListKind {
        match self {
            Shape::Schema(s) => match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => ListKind::Set,
                Some("map") => ListKind::Map(
                    s.get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|k| {
                            k.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                _ => ListKind::Atomic,
            },
            Shape::Unknown => ListKind::Atomic,
            Shape::Builtin => builtin_list_kind(name, items),
        }
    }

    /// Maps declared `x-kubernetes-map-type: atomic` are owned whole.
    pub fn atomic_map(self) -> bool {
        matches!(self, Shape::Schema(s) if s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"))
    }
}

fn builtin_list_kind(name: &str, items: &[Value]) -> ListKind {
    let key = match name {
        "finalizers" => return ListKind::Set,
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "readinessGates" => "conditionType",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return ListKind::Atomic,
    };
    ListKind::Map(vec![key.to_owned()])
}

/// `k:{"name":"a"}` for an item of a keyed list.
pub fn key_segment(item: &Value, keys: &[String]) -> String {
    let mut map = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            map.insert(k.clone(), v.clone());
        }
    }
    format!("k:{}", Value::Object(map))
}

/// Every path `value` sets, under `prefix`.
pub fn fields_of(value: &Value, shape: Shape<'_>) -> FieldSet {
    let mut set = FieldSet::new();
    collect(value, shape, &mut Vec::new(), &mut set);
    set
}

fn collect(value: &Value, shape: Shape<'_>, path: &mut Path, set: &mut FieldSet) {
    let Value::Object(map) = value else {
        set.insert(path.clone());
        return;
    };
    if map.is_empty() || shape.atomic_map() {
        set.insert(path.clone());
        return;
    }
    for (key, child) in map {
        let child_shape = shape.child(key);
        path.push(format!("f:{key}"));
        match child {
            Value::Array(items) => collect_list(items, child_shape, key, path, set),
            _ => collect(child, child_shape, path, set),
        }
        path.pop();
    }
}

fn collect_list(
    items: &[Value],
    shape: Shape<'_>,
    name: &str,
    path: &mut Path,
    set: &mut FieldSet,
) {
    match shape.list_kind(name, items) {
        ListKind::Atomic => {
            set.insert(path.clone());
        }
        ListKind::Set => {
            for item in items {
                path.push(format!("v:{item}"));
                set.insert(path.clone());
                path.pop();
            }
        }
        ListKind::Map(keys) => {
            let item_shape = shape.items();
            for item in items {
                path.push(key_segment(item, &keys));
                set.insert(path.clone());
                if item.as_object().is_some_and(|m| !m.is_empty()) {
                    collect(item, item_shape, path, set);
                }
                path.pop();
            }
        }
    }
}

fn matches_segment(item: &Value, segment: &str) -> bool {
    if let Some(json) = segment.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(json) else {
            return false;
        };
        keys.iter().all(|(k, v)| item.get(k) == Some(v))
    } else if let Some(json) = segment.strip_prefix("v:") {
        serde_json::from_str::<Value>(json).is_ok_and(|v| &v == item)
    } else {
        false
    }
}

/// The value at `path`, if the object has one.
pub fn get<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = value;
    for segment in path {
        cur = if let Some(field) = segment.strip_prefix("f:") {
            cur.get(field)?
        } else {
            cur.as_array()?
                .iter()
                .find(|item| matches_segment(item, segment))?
        };
    }
    Some(cur)
}

/// Removes the field or list item at `path`, if present.
pub fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = value;
    for segment in parent_path {
        let next = if let Some(field) = segment.strip_prefix("f:") {
            cur.get_mut(field)
        } else {
            cur.as_array_mut()
                .and_then(|items| items.iter_mut().find(|item| matches_segment(item, segment)))
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(map) = cur.as_object_mut() {
            map.remove(field);
        }
    } else if let Some(items) = cur.as_array_mut() {
        items.retain(|item| !matches_segment(item, last));
    }
}

/// `.spec.containers[name="app"].image`, as conflict messages print paths.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if let Some(field) = segment.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(json) = segment.strip_prefix("k:") {
            let keys: Vec<String> = serde_json::from_str::<Map<String, Value>>(json)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            out.push_str(&format!("[{}]", keys.join(",")));
        } else if let Some(json) = segment.strip_prefix("v:") {
            out.push_str(&format!("[={json}]"));
        }
    }
    out
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<String, Node>,
}

/// Encodes a set as `fieldsV1`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for segment in path {
            node = node.children.entry(segment.clone()).or_default();
        }
        node.member = true;
    }
    fn encode(node: &Node) -> Value {
        let mut map: Map<String, Value> = node
            .children
            .iter()
            .map(|(k, child)| (k.clone(), encode(child)))
            .collect();
        if node.member && !map.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        Value::Object(map)
    }
    encode(&root)
}

/// Decodes `fieldsV1` into a set.
pub fn from_fields_v1(fields: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    fn decode(node: &Value, path: &mut Path, set: &mut FieldSet) {
        let Some(map) = node.as_object() else { return };
        for (key, child) in map {
            if key == "." {
                continue;
            }
            path.push(key.clone());
            let child_map = child.as_object();
            if child_map.is_none_or(|m| m.is_empty() || m.contains_key(".")) {
                set.insert(path.clone());
            }
            decode(child, path, set);
            path.pop();
        }
    }
    decode(fields, &mut Vec::new(), &mut set);
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keyed_lists_round_trip_through_fields_v1() {
        let obj = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"replicas": 2, "containers": [{"name": "app", "image": "i"}], "args": ["a", "b"]}});
        let set = fields_of(&obj, Shape::Builtin);
        let encoded = to_fields_v1(&set);
        assert_eq!(
            encoded,
            json!({
                "f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {"v:\"x\"": {}}},
                "f:spec": {"f:replicas": {}, "f:args": {},
                    "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}}}
            })
        );
        assert_eq!(from_fields_v1(&encoded), set);
    }

    #[test]
    fn paths_find_and_remove_list_items() {
        let mut obj = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}});
        let path: Path = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"a\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(get(&obj, &path), Some(&json!("1")));
        assert_eq!(display(&path), ".spec.containers[name=\"a\"].image");
        remove(&mut obj, &path[..3]);
        assert_eq!(obj, json!({"spec": {"containers": [{"name": "b"}]}}));
    }

    #[test]
    fn schema_decides_list_kinds_for_custom_resources() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "pools": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                      "items": {"type": "object"}},
            "containers": {"type": "array", "items": {"type": "object"}}}}}});
        let obj = json!({"spec": {"pools": [{"id": 1}], "containers": [{"name": "x"}]}});
        let set = fields_of(&obj, Shape::Schema(&schema));
        assert!(set.contains(&vec!["f:spec".to_owned(), "f:containers".to_owned()]));
        assert!(set.contains(&vec![
            "f:spec".to_owned(),
            "f:pools".to_owned(),
            "k:{\"id\":1}".to_owned()
        ]));
    }
}
