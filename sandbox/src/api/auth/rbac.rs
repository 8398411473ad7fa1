//! RBAC rule evaluation, pure: what a `PolicyRule` allows, which subjects
//! a binding names, and how the server words a denial. The state-reading
//! half (bindings and roles from the store) is in `super`.

use serde_json::{Value, json};

use super::UserInfo;
use crate::api::error::ApiError;

/// One `rbac.authorization.k8s.io/v1` `PolicyRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    crate::api::string_list(value.get(field))
}

impl PolicyRule {
    pub fn from_json(value: &Value) -> Self {
        PolicyRule {
            verbs: strings(value, "verbs"),
            api_groups: strings(value, "apiGroups"),
            resources: strings(value, "resources"),
            resource_names: strings(value, "resourceNames"),
            non_resource_urls: strings(value, "nonResourceURLs"),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn rules_of(role: &Value) -> Vec<PolicyRule> {
        role.get("rules")
            .and_then(Value::as_array)
            .map(|rules| rules.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }
}

/// What a resource request asks for, as the authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// A request's authorization attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Resource(ResourceAttributes),
    NonResource { verb: String, path: String },
}

impl Attributes {
    pub fn namespace(&self) -> &str {
        match self {
            Attributes::Resource(r) => &r.namespace,
            Attributes::NonResource { .. } => "",
        }
    }
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|i| i == item)
}

/// `*` or the verb itself.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    has(&rule.verbs, "*") || has(&rule.verbs, verb)
}

fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    has(&rule.api_groups, "*") || has(&rule.api_groups, group)
}

/// `*`, the exact `resource/subresource`, or `*/subresource`.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || has(&rule.resource_names, name)
}

/// `*`, the exact path, or a prefix ending in `*`.
pub fn url_matches(pattern: &str, path: &str) -> bool {
    pattern == "*"
        || pattern == path
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Whether `rule` allows the request (the real `RuleAllows`).
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    match attrs {
        Attributes::Resource(r) => {
            let combined = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            verb_matches(rule, &r.verb)
                && group_matches(rule, &r.group)
                && resource_matches(rule, &combined, &r.subresource)
                && name_matches(rule, &r.name)
        }
        Attributes::NonResource { verb, path } => {
            verb_matches(rule, verb) && rule.non_resource_urls.iter().any(|u| url_matches(u, path))
        }
    }
}

/// The ServiceAccount user name: `system:serviceaccount:{ns}:{name}`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Whether a binding's subject names `user`; a ServiceAccount without a
/// namespace means one in the binding's namespace.
pub fn applies_to(user: &UserInfo, subject: &Value, binding_namespace: &str) -> bool {
    let field = |f: &str| subject.get(f).and_then(Value::as_str).unwrap_or("");
    match field("kind") {
        "User" => user.name == field("name"),
        "Group" => user.groups.iter().any(|g| g == field("name")),
        "ServiceAccount" => {
            let namespace = match field("namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            !namespace.is_empty() && user.name == service_account_user(namespace, field("name"))
        }
        _ => false,
    }
}

/// `User "alice"`, `ServiceAccount "name/namespace"`, as reasons name them.
pub fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let field = |f: &str| subject.get(f).and_then(Value::as_str).unwrap_or("");
    match field("kind") {
        "ServiceAccount" => {
            let namespace = match field("namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            format!(
                "ServiceAccount {}",
                quote(&format!("{}/{namespace}", field("name")))
            )
        }
        kind => format!("{kind} {}", quote(field("name"))),
    }
}

/// Go's `%q` for a plain string.
pub fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `%q` for a string slice: `["a" "b"]`.
pub fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `User "u" cannot get resource "pods" in API group "" in the namespace "x"`.
pub fn forbidden_message(user: &str, attrs: &Attributes) -> String {
    match attrs {
        Attributes::NonResource { verb, path } => {
            format!("User {} cannot {verb} path {}", quote(user), quote(path))
        }
        Attributes::Resource(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace {}", quote(&r.namespace))
            };
            format!(
                "User {} cannot {} resource {} in API group {} {scope}",
                quote(user),
                r.verb,
                quote(&resource),
                quote(&r.group)
            )
        }
    }
}

/// The 403 the real server answers a denied request with (`NewForbidden`).
pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {why}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {} is forbidden: {why}", quote(name))
    };
    let mut details = json!({});
    for (field, value) in [("name", name), ("group", group), ("kind", resource)] {
        if !value.is_empty() {
            details[field] = json!(value);
        }
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(403, "Forbidden", message)
    }
}

/// The denial of `attrs` for `user`, with the authorizer's reason if any.
pub fn denied(user: &str, attrs: &Attributes, reason: &str) -> ApiError {
    let mut why = forbidden_message(user, attrs);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    match attrs {
        Attributes::Resource(r) => forbidden(&r.group, &r.resource, &r.name, &why),
        Attributes::NonResource { .. } => forbidden("", "", "", &why),
    }
}

#[cfg(test)]
#[path = "rbac_tests.rs"]
mod tests;
