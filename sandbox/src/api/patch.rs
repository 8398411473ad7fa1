//! The three non-apply patch types: JSON merge patch (RFC 7386), JSON
//! patch (RFC 6902, including `test`), and strategic merge patch.
//!
//! Strategic merge patch is an approximation: the real server reads merge
//! keys and strategies from each built-in type's Go struct tags; here a
//! table of the well-known list fields (`containers` by `name`, `ports`
//! by port, `conditions` by `type`, …) stands in, keyed by field name
//! alone. The `$patch`, `$retainKeys`, `$deleteFromPrimitiveList` and
//! `$setElementOrder` directives are honoured; lists outside the table
//! are replaced, as a merge patch would.

use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};

pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies an RFC 6902 patch. A failed `test` (and any operation that does
/// not apply) answers 422, as the real server does and as kube's
/// finalizer helper expects; a malformed body answers 400.
pub fn json(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let mut ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    // The real server reads a missing member as null in `test`: kube's
    // finalizer helper tests `/metadata/finalizers` against null before
    // adding the first finalizer.
    ops.0.retain(|op| match op {
        json_patch::PatchOperation::Test(t) => {
            !(t.value.is_null() && target.pointer(t.path.as_str()).is_none())
        }
        _ => true,
    });
    json_patch::patch(target, &ops).map_err(|e| {
        let mut err = ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}"));
        err.details = Some(serde_json::json!({"causes": [{"reason": "FieldValueInvalid", "message": e.to_string(), "field": ""}]}));
        err
    })
}

/// Merge key of a list field, by field name; `None` for lists that are
/// replaced wholesale.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "readinessGates" => match field {
            "readinessGates" => "conditionType",
            _ => "name",
        },
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Lists of scalars merged as sets.
fn primitive_merge(field: &str) -> bool {
    matches!(field, "finalizers")
}

pub fn strategic(target: &mut Value, patch: &Value) {
    apply_strategic(target, patch, "");
}

fn apply_strategic(target: &mut Value, patch: &Value, field: &str) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let _ = field;
    let retain: Option<Vec<String>> =
        patch_map
            .get("$retainKeys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            });
    for (key, value) in patch_map {
        if let Some(list_field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (
                target.get_mut(list_field).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        let Some(map) = target.as_object_mut() else {
            return;
        };
        if value.is_null() {
            map.remove(key);
            continue;
        }
        if value.get("$patch").and_then(Value::as_str) == Some("delete") {
            map.remove(key);
            continue;
        }
        match (map.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                apply_strategic(existing, value, key);
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                if let Some(merge_key) = merge_key(key, items) {
                    merge_list(existing, items, merge_key);
                } else if primitive_merge(key) {
                    for item in items {
                        if !existing.contains(item) {
                            existing.push(item.clone());
                        }
                    }
                } else {
                    *existing = items.iter().map(strip_directives).collect();
                }
            }
            _ => {
                map.insert(key.clone(), strip_directives(value));
            }
        }
    }
    if let (Some(retain), Some(map)) = (retain, target.as_object_mut()) {
        map.retain(|k, _| retain.contains(k));
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key);
        let position = id.and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
        let directive = item.get("$patch").and_then(Value::as_str);
        match (position, directive) {
            (Some(i), Some("delete")) => {
                existing.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), Some("replace")) => existing[i] = strip_directives(item),
            (Some(i), _) => apply_strategic(&mut existing[i], item, key),
            (None, _) => existing.push(strip_directives(item)),
        }
    }
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_of_a_missing_member_against_null_passes() {
        let mut target = json!({"metadata": {"name": "x"}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                           {"op": "add", "path": "/metadata/finalizers", "value": ["a"]}]);
        json(&mut target, &patch).unwrap();
        assert_eq!(target["metadata"]["finalizers"], json!(["a"]));
    }

    #[test]
    fn failed_test_op_is_422() {
        let mut obj = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": ["b"]},
                           {"op": "add", "path": "/metadata/finalizers/-", "value": "c"}]);
        let err = json(&mut obj, &patch).unwrap_err();
        assert_eq!((err.code, err.reason), (422, "Invalid"));
        assert_eq!(obj["metadata"]["finalizers"], json!(["a"]));
        let ok = json!([{"op": "test", "path": "/metadata/finalizers", "value": ["a"]},
                        {"op": "add", "path": "/metadata/finalizers/-", "value": "c"}]);
        json(&mut obj, &ok).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["a", "c"]));
        assert_eq!(json(&mut obj, &json!({"op": 1})).unwrap_err().code, 400);
    }

    #[test]
    fn strategic_merges_containers_by_name_and_honours_directives() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]},
            "metadata": {"finalizers": ["f1"], "labels": {"x": "1", "y": "2"}}});
        let patch = json!({
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"}]},
            "metadata": {"finalizers": ["f2"], "labels": {"y": null},
                         "$deleteFromPrimitiveList/finalizers": ["f1"]}});
        strategic(&mut pod, &patch);
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}])
        );
        assert_eq!(pod["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(pod["metadata"]["finalizers"], json!(["f2"]));
        assert!(pod.get("$setElementOrder/containers").is_none());
    }
}
