//! Per-kind steps of a write that need the server's state: a CRD is
//! checked, established and served; a namespace gets its finalizer and
//! phase; a service its cluster IP; a pod its initial status and the
//! immutability of its spec.

use serde_json::{Value, json};

use super::super::error::Cause;
use super::super::registry::{self, BUILTIN_GROUPS, GroupResource};
use super::{State, Target, builtin, meta, now};

pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn is(target: &Target, group: &str, plural: &str) -> bool {
    target.ty.group == group && target.ty.plural == plural
}

pub fn before_write(
    state: &mut State,
    target: &Target,
    old: Option<&Value>,
    obj: &mut Value,
    causes: &mut Vec<Cause>,
) {
    if is(target, "apiextensions.k8s.io", "customresourcedefinitions") {
        crd(state, old, obj, causes);
    } else if is(target, "", "namespaces") {
        if old.is_none() {
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            obj["status"] = json!({"phase": "Active"});
        }
    } else if is(target, "", "services") {
        service(state, old, obj);
    } else if is(target, "", "pods") {
        pod(old, obj, causes);
    }
}

pub fn after_write(state: &mut State, target: &Target, written: &Value) {
    if is(target, "apiextensions.k8s.io", "customresourcedefinitions")
        && meta(written, "deletionTimestamp").is_none()
        && let Ok(ty) = registry::from_crd(written)
    {
        state.registry.install(ty);
    }
}

fn condition(kind: &str, reason: &str, message: &str, old: Option<&Value>) -> Value {
    let since = old
        .and_then(|o| o.pointer("/status/conditions"))
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c["type"] == kind && c["status"] == "True")
        })
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| Value::String(now()));
    json!({"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": since})
}

fn crd(state: &State, old: Option<&Value>, obj: &mut Value, causes: &mut Vec<Cause>) {
    let ty = match registry::from_crd(obj) {
        Ok(ty) => ty,
        Err(found) => {
            causes.extend(found);
            return;
        }
    };
    if BUILTIN_GROUPS.contains(&ty.group.as_str())
        || state
            .registry
            .get(&GroupResource::new(&ty.group, &ty.plural))
            .is_some_and(|t| t.crd.as_deref() != Some(meta(obj, "name").unwrap_or("")))
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.group",
            format!(
                "Invalid value: \"{}\": the group is served by the API server itself",
                ty.group
            ),
        ));
        return;
    }
    if let Some(old) = old
        && old.pointer("/spec/scope") != obj.pointer("/spec/scope")
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.scope",
            "Invalid value: field is immutable",
        ));
    }
    if old.is_none() {
        let finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            let mut finalizers = finalizers;
            finalizers.push(json!(CRD_CLEANUP_FINALIZER));
            obj["metadata"]["finalizers"] = Value::Array(finalizers);
        }
    }
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !stored.iter().any(|v| v == ty.storage_version.as_str()) {
        stored.push(json!(ty.storage_version));
    }
    let mut names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    names["singular"] = json!(ty.singular);
    names["listKind"] = json!(ty.list_kind);
    let mut conditions = vec![
        condition("NamesAccepted", "NoConflicts", "no conflicts found", old),
        condition(
            "Established",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            old,
        ),
    ];
    if meta(obj, "deletionTimestamp").is_some() {
        conditions.push(
            json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress", "lastTransitionTime": now()}),
        );
    }
    obj["status"] =
        json!({"acceptedNames": names, "conditions": conditions, "storedVersions": stored});
}

fn service(state: &mut State, old: Option<&Value>, obj: &mut Value) {
    if obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return;
    }
    let given = obj
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ip = if !given.is_empty() {
        given.to_owned()
    } else if let Some(previous) = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
    {
        previous.to_owned()
    } else {
        state.allocate_ip()
    };
    obj["spec"]["clusterIP"] = json!(ip);
    obj["spec"]["clusterIPs"] = json!([ip]);
}

/// The spec fields a pod update may change.
fn mutable_part_removed(spec: Option<&Value>) -> Value {
    let mut spec = spec.cloned().unwrap_or(json!({}));
    if let Some(map) = spec.as_object_mut() {
        for field in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            map.remove(field);
        }
        for list in ["containers", "initContainers"] {
            if let Some(items) = map.get_mut(list).and_then(Value::as_array_mut) {
                for c in items {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
    }
    spec
}

fn pod(old: Option<&Value>, obj: &mut Value, causes: &mut Vec<Cause>) {
    match old {
        None => {
            obj["status"] = json!({"phase": "Pending", "qosClass": builtin::qos_class(obj)});
        }
        Some(old) => {
            if mutable_part_removed(old.get("spec")) != mutable_part_removed(obj.get("spec")) {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,\
                     `spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` \
                     (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` \
                     (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
    }
}
