//! Admission, after defaulting and validation, on every write whoever
//! makes it (kubectl, the operator, the simulated controllers): RBAC's
//! escalation checks on roles and bindings, and Pod Security admission
//! on pods and Deployment pod templates.

pub mod pod_security;

use serde_json::{Map, Value};

use super::auth::escalation::confirm_no_escalation;
use super::auth::rbac::{Attributes, PolicyRule, ResourceAttributes, forbidden};
use super::auth::{RBAC_GROUP, UserInfo, authorize, role_ref_rules, rules_for};
use super::error::{ApiError, ApiResult};
use super::ops::{State, Target, meta};
use super::registry::GroupResource;

/// Checks a write of `candidate` (replacing `old`, if any); returns the
/// warnings to send with the answer. `user` is `None` for the server's
/// own writes.
pub fn admit(
    state: &State,
    target: &Target,
    old: Option<&Value>,
    candidate: &Value,
    status_only: bool,
    user: Option<&UserInfo>,
) -> ApiResult<Vec<String>> {
    if status_only {
        return Ok(Vec::new());
    }
    if target.ty.group == RBAC_GROUP
        && let Some(user) = user
        && !user.is_privileged()
        && !only_gc_fields_change(old, candidate)
    {
        no_escalation(state, target, candidate, user)?;
    }
    pod_security_admission(state, target, old, candidate)
}

/// An update that changes only what garbage collection needs (owner
/// references, finalizers) is not checked, as RBAC's storage skips it.
fn only_gc_fields_change(old: Option<&Value>, candidate: &Value) -> bool {
    let Some(old) = old else {
        return false;
    };
    let strip = |obj: &Value| {
        let mut copy = obj.clone();
        if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "ownerReferences",
                "finalizers",
                "managedFields",
                "resourceVersion",
            ] {
                m.remove(field);
            }
        }
        copy
    };
    strip(old) == strip(candidate)
}

fn no_escalation(state: &State, target: &Target, obj: &Value, user: &UserInfo) -> ApiResult<()> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let plural = target.ty.plural.as_str();
    let name = meta(obj, "name").unwrap_or("");
    let refused = |why: &str| forbidden(RBAC_GROUP, plural, name, why);
    let allowed = |verb: &str, resource: &str, name: &str| {
        let attrs = Attributes::Resource(ResourceAttributes {
            verb: verb.to_owned(),
            group: RBAC_GROUP.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.clone(),
            name: name.to_owned(),
            ..ResourceAttributes::default()
        });
        authorize(state, user, &attrs).allowed
    };
    let requested = match plural {
        "roles" | "clusterroles" => {
            if allowed("escalate", plural, name) {
                return Ok(());
            }
            PolicyRule::rules_of(obj)
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
            let role_resource = match role_ref.get("kind").and_then(Value::as_str) {
                Some("Role") => "roles",
                _ => "clusterroles",
            };
            let role_name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
            if allowed("bind", role_resource, role_name) {
                return Ok(());
            }
            role_ref_rules(state, &role_ref, &namespace).map_err(|e| refused(&e))?
        }
        _ => return Ok(()),
    };
    let (owned, errors) = rules_for(state, user, &namespace);
    confirm_no_escalation(user, &owned, &requested, &errors).map_err(|e| refused(&e))
}

fn labels_of_namespace(state: &State, namespace: &str) -> Map<String, Value> {
    state
        .store
        .get(
            &GroupResource::new("", "namespaces"),
            &(String::new(), namespace.to_owned()),
        )
        .and_then(|ns| ns.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn images(pod_spec: Option<&Value>) -> Vec<Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|l| pod_spec.and_then(|s| s.get(*l)).and_then(Value::as_array))
        .flatten()
        .map(|c| c.get("image").cloned().unwrap_or(Value::Null))
        .collect()
}

fn pod_security_admission(
    state: &State,
    target: &Target,
    old: Option<&Value>,
    candidate: &Value,
) -> ApiResult<Vec<String>> {
    let (metadata, spec, controller) = match (target.ty.group.as_str(), target.ty.plural.as_str()) {
        ("", "pods") => {
            // Only a change of image is a significant pod update.
            if let Some(old) = old
                && images(old.get("spec")) == images(candidate.get("spec"))
            {
                return Ok(Vec::new());
            }
            (candidate.get("metadata"), candidate.get("spec"), false)
        }
        ("apps", "deployments") => {
            let template = candidate.pointer("/spec/template");
            if old.is_some_and(|o| o.pointer("/spec/template") == template) {
                return Ok(Vec::new());
            }
            (
                template.and_then(|t| t.get("metadata")),
                template.and_then(|t| t.get("spec")),
                true,
            )
        }
        _ => return Ok(Vec::new()),
    };
    let Some(namespace) = target.namespace.as_deref() else {
        return Ok(Vec::new());
    };
    let policy = pod_security::policy(&labels_of_namespace(state, namespace));
    let empty = Value::Object(Map::new());
    let outcome = pod_security::admit(
        &policy,
        metadata.unwrap_or(&empty),
        spec.unwrap_or(&empty),
        controller,
    );
    match outcome.forbidden {
        Some(why) => Err(ApiError::forbidden(
            &target.ty.gr(),
            meta(candidate, "name").unwrap_or(""),
            &why,
        )),
        None => Ok(outcome.warnings),
    }
}
