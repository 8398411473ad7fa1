//! `/scale` (an `autoscaling/v1` `Scale` over the replica paths a kind or
//! CRD declares) and `pods/binding` (how a scheduler assigns a node).

use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult};
use super::super::patch;
use super::super::selector::label_selector_string;
use super::patching::PatchType;
use super::{State, Target, WriteParams, get, meta, now, replace_from};

fn pointer(json_path: &str) -> String {
    json_path
        .trim_start_matches('.')
        .replace('.', "/")
        .replace("//", "/")
        .split('/')
        .fold(String::new(), |acc, s| {
            if s.is_empty() {
                acc
            } else {
                format!("{acc}/{s}")
            }
        })
}

fn no_scale(target: &Target) -> ApiError {
    let _ = target;
    ApiError::no_route()
}

fn to_scale(target: &Target, obj: &Value) -> ApiResult<Value> {
    let spec = target
        .ty
        .version(&target.version)
        .and_then(|v| v.scale.clone())
        .ok_or_else(|| no_scale(target))?;
    let replicas = obj
        .pointer(&pointer(&spec.spec_replicas_path))
        .cloned()
        .unwrap_or(json!(0));
    let current = obj
        .pointer(&pointer(&spec.status_replicas_path))
        .cloned()
        .unwrap_or(json!(0));
    let selector = spec
        .label_selector_path
        .as_ref()
        .and_then(|p| obj.pointer(&pointer(p)))
        .map(|s| match s {
            Value::String(s) => s.clone(),
            other => label_selector_string(other),
        })
        .unwrap_or_default();
    let m = |f: &str| {
        obj.pointer(&format!("/metadata/{f}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut metadata = json!({"name": m("name"), "uid": m("uid"), "resourceVersion": m("resourceVersion"),
        "creationTimestamp": m("creationTimestamp")});
    if let Some(ns) = meta(obj, "namespace") {
        metadata["namespace"] = json!(ns);
    }
    let mut status = json!({"replicas": current});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    Ok(
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": metadata,
        "spec": {"replicas": replicas}, "status": status}),
    )
}

pub fn get_scale(state: &State, target: &Target, name: &str) -> ApiResult<Value> {
    to_scale(target, &get(state, target, name)?)
}

/// PUT or PATCH of `/scale`: only `spec.replicas` reaches the object.
pub fn write_scale(
    state: &mut State,
    target: &Target,
    name: &str,
    body: &[u8],
    kind: Option<PatchType>,
    params: &WriteParams,
) -> ApiResult<Value> {
    let spec = target
        .ty
        .version(&target.version)
        .and_then(|v| v.scale.clone())
        .ok_or_else(|| no_scale(target))?;
    let old = get(state, target, name)?;
    let current = to_scale(target, &old)?;
    let doc: Value = match kind {
        Some(PatchType::Apply) => {
            serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        _ => serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let scale = match kind {
        None => doc,
        Some(PatchType::Json) => {
            let mut s = current.clone();
            patch::json(&mut s, &doc)?;
            s
        }
        Some(_) => {
            let mut s = current.clone();
            patch::merge(&mut s, &doc);
            s
        }
    };
    if let Some(rv) = meta(&scale, "resourceVersion")
        && Some(rv) != meta(&old, "resourceVersion")
    {
        return Err(ApiError::stale(&target.ty.gr(), name));
    }
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if replicas.as_i64().is_none_or(|r| r < 0) {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            vec![super::super::error::Cause::new(
                "FieldValueInvalid",
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            )],
        ));
    }
    let mut candidate = old.clone();
    let path = pointer(&spec.spec_replicas_path);
    match candidate.pointer_mut(&path) {
        Some(slot) => *slot = replicas,
        None => {
            let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            let field = path.rsplit('/').next().unwrap_or("replicas");
            if let Some(map) = candidate.pointer_mut(parent).and_then(Value::as_object_mut) {
                map.insert(field.to_owned(), replicas);
            }
        }
    }
    let written = replace_from(state, target, old, candidate, false, params, false)?;
    to_scale(target, &written.object)
}

/// `POST pods/{name}/binding`: sets `spec.nodeName` once, with
/// `PodScheduled=True`; 409 when the pod is already bound.
pub fn bind(state: &mut State, target: &Target, name: &str, binding: &Value) -> ApiResult<Value> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "Binding",
                "",
                name,
                vec![super::super::error::Cause::new(
                    "FieldValueRequired",
                    "target.name",
                    "Required value",
                )],
            )
        })?
        .to_owned();
    let key = target.key(name);
    let mut pod = state
        .store
        .get(&target.ty.storage, &key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&target.ty.gr(), name))?;
    if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str)
        && Some(uid) != meta(&pod, "uid")
    {
        return Err(ApiError::conflict(
            &target.ty.gr(),
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta(&pod, "uid").unwrap_or("")
            ),
        ));
    }
    if let Some(current) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError::conflict(
            &target.ty.gr(),
            name,
            &format!("pod {name} is already assigned to node \"{current}\""),
        ));
    }
    if meta(&pod, "deletionTimestamp").is_some() {
        return Err(ApiError::conflict(
            &target.ty.gr(),
            name,
            "pod is being deleted, cannot be assigned to a host",
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    let mut conditions: Vec<Value> = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != "PodScheduled");
    conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
    pod["status"]["conditions"] = Value::Array(conditions);
    state.store.put(&target.ty.storage, key, pod);
    Ok(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

#[cfg(test)]
mod tests {
    use super::pointer;

    #[test]
    fn json_paths_become_pointers() {
        assert_eq!(pointer(".spec.replicas"), "/spec/replicas");
        assert_eq!(pointer(".status.leader.count"), "/status/leader/count");
    }
}
