//! The review kinds: `SelfSubjectAccessReview`, `SelfSubjectRulesReview`
//! and `SubjectAccessReview` (`authorization.k8s.io/v1`) and
//! `SelfSubjectReview` (`authentication.k8s.io/v1`). Each is answered from
//! the request and never stored, as the real server does.

use serde_json::{Value, json};

use super::rbac::{Attributes, PolicyRule, ResourceAttributes};
use super::{UserInfo, aggregate, authorize, rules_for};
use crate::api::error::{ApiError, ApiResult, Cause};
use crate::api::ops::State;
use crate::api::registry::ResourceType;

fn text(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn invalid(ty: &ResourceType, field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        &ty.kind,
        &ty.group,
        "",
        vec![Cause::new("FieldValueInvalid", field, message)],
    )
}

/// The attributes a review's spec asks about.
fn attributes(ty: &ResourceType, spec: &Value) -> ApiResult<Attributes> {
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Ok(Attributes::Resource(ResourceAttributes {
            verb: text(r, "verb"),
            group: text(r, "group"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            namespace: text(r, "namespace"),
            name: text(r, "name"),
        })),
        (None, Some(n)) => Ok(Attributes::NonResource {
            verb: text(n, "verb"),
            path: text(n, "path"),
        }),
        (Some(_), Some(_)) => Err(invalid(
            ty,
            "spec.nonResourceAttributes",
            "Invalid value: \"\": cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            ty,
            "spec.resourceAttributes",
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

fn answered(body: &Value, ty: &ResourceType, status: Value) -> Value {
    json!({
        "kind": ty.kind,
        "apiVersion": ty.api_version("v1"),
        "metadata": {"creationTimestamp": null},
        "spec": body.get("spec").cloned().unwrap_or(json!({})),
        "status": status,
    })
}

fn access_status(state: &State, user: &UserInfo, attrs: &Attributes) -> Value {
    let decision = authorize(state, user, attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    status
}

/// Answers a POST of a review of kind `ty` by `user`.
pub fn answer(state: &State, user: &UserInfo, ty: &ResourceType, body: &Value) -> ApiResult<Value> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    match ty.plural.as_str() {
        "selfsubjectaccessreviews" => {
            let attrs = attributes(ty, &spec)?;
            Ok(answered(body, ty, access_status(state, user, &attrs)))
        }
        "subjectaccessreviews" => {
            let attrs = attributes(ty, &spec)?;
            let groups: Vec<String> = spec
                .get("groups")
                .and_then(Value::as_array)
                .map(|g| {
                    g.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let subject = UserInfo {
                name: text(&spec, "user"),
                groups,
            };
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(invalid(
                    ty,
                    "spec.user",
                    "Invalid value: \"\": at least one of user or group must be specified",
                ));
            }
            Ok(answered(body, ty, access_status(state, &subject, &attrs)))
        }
        "selfsubjectrulesreviews" => {
            let namespace = text(&spec, "namespace");
            let (rules, errors) = rules_for(state, user, &namespace);
            Ok(answered(body, ty, rules_status(&rules, &errors)))
        }
        "selfsubjectreviews" => Ok(json!({
            "kind": ty.kind,
            "apiVersion": ty.api_version("v1"),
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": {"username": user.name, "groups": user.groups}},
        })),
        _ => Err(ApiError::no_route()),
    }
}

/// `resourceRules` and `nonResourceRules` of a rules review.
fn rules_status(rules: &[PolicyRule], errors: &[String]) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in rules {
        if !rule.resources.is_empty() {
            let mut r = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
            if !rule.resource_names.is_empty() {
                r["resourceNames"] = json!(rule.resource_names);
            }
            resource_rules.push(r);
        }
        if !rule.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(aggregate(errors));
    }
    status
}
