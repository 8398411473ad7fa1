//! What the Pod Security checks share: the real checks' wording helpers
//! (`joinQuote`, `pluralize`), the container visitor, and the seccomp
//! evaluation both seccomp checks use.

use std::collections::BTreeSet;

use serde_json::Value;

/// `(reason, detail)` of a failed check.
pub type Violation = (String, String);

pub(super) fn join_quote(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    format!("\"{}\"", items.join("\", \""))
}

pub(super) fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

pub(super) fn containers_of(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect()
}

pub(super) fn name(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

pub(super) fn sc<'a>(c: &'a Value, pointer: &str) -> Option<&'a Value> {
    c.pointer(&format!("/securityContext{pointer}"))
        .filter(|v| !v.is_null())
}

pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(super) use crate::api::string_list as strings;

pub(super) fn containers(bad: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", bad.len()),
        join_quote(bad)
    )
}

pub(super) fn violation(reason: &str, detail: String) -> Option<Violation> {
    Some((reason.to_owned(), detail))
}

pub(super) fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

pub(super) fn valid_seccomp(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}

/// Shared by both seccomp checks: who set a bad type, which types, and
/// (for restricted) which containers set none without a pod-level one.
pub(super) fn seccomp(spec: &Value) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut pod_set = false;
    if let Some(p) = spec
        .pointer("/securityContext/seccompProfile")
        .filter(|p| !p.is_null())
    {
        let t = str_at(p, "/type");
        if valid_seccomp(t) {
            pod_set = true;
        } else {
            setters.push("pod".to_owned());
            values.insert(t.to_owned());
        }
    }
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers_of(spec) {
        match sc(c, "/seccompProfile") {
            Some(p) => {
                let t = str_at(p, "/type");
                if !valid_seccomp(t) {
                    explicit.push(name(c));
                    values.insert(t.to_owned());
                }
            }
            None if !pod_set => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers(&explicit));
    }
    (setters, values.into_iter().collect(), implicit)
}

pub(super) fn seccomp_explicit(setters: &[String], values: &[String]) -> Option<Violation> {
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(values)
        ),
    )
}
