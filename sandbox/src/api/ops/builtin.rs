//! What the real server's per-kind strategies do for built-in kinds:
//! defaulting, the checks modelfleet's workloads would fail in a real
//! cluster (names, containers, selectors), and allocation (cluster IPs).
//! Only a part of each kind's real validation is here; what is missing is
//! accepted.

use regex::Regex;
use serde_json::{Value, json};
use std::sync::OnceLock;

use super::super::error::Cause;
use super::super::registry::ResourceType;

fn set_default(obj: &mut Value, pointer: &str, value: Value) {
    if obj.pointer(pointer).is_some() {
        return;
    }
    let mut cur = obj;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i == parts.len() - 1 {
            map.insert((*part).to_owned(), value);
            return;
        }
        cur = map.entry((*part).to_owned()).or_insert_with(|| json!({}));
    }
}

fn pod_spec_defaults(spec: &mut Value) {
    set_default(spec, "/restartPolicy", json!("Always"));
    set_default(spec, "/terminationGracePeriodSeconds", json!(30));
    set_default(spec, "/dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "/schedulerName", json!("default-scheduler"));
    set_default(spec, "/securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let latest = !image.contains(':') || image.ends_with(":latest");
                let policy = if latest { "Always" } else { "IfNotPresent" };
                set_default(c, "/imagePullPolicy", json!(policy));
                set_default(c, "/terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "/terminationMessagePolicy", json!("File"));
                set_default(c, "/resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, "/protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// Defaults a built-in kind's fields, as decoding does on every write.
pub fn defaults(ty: &ResourceType, obj: &mut Value) {
    match (ty.group.as_str(), ty.plural.as_str()) {
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec_defaults(spec);
            }
        }
        ("apps", "deployments") => {
            set_default(obj, "/spec/replicas", json!(1));
            set_default(
                obj,
                "/spec/strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            set_default(obj, "/spec/revisionHistoryLimit", json!(10));
            set_default(obj, "/spec/progressDeadlineSeconds", json!(600));
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                pod_spec_defaults(spec);
            }
        }
        ("", "services") => {
            let external =
                obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            set_default(obj, "/spec/type", json!("ClusterIP"));
            set_default(obj, "/spec/sessionAffinity", json!("None"));
            if !external {
                set_default(obj, "/spec/ipFamilies", json!(["IPv4"]));
                set_default(obj, "/spec/ipFamilyPolicy", json!("SingleStack"));
                set_default(obj, "/spec/internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "/protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        set_default(p, "/targetPort", port);
                    }
                }
            }
        }
        ("", "secrets") => set_default(obj, "/type", json!("Opaque")),
        ("", "persistentvolumes") => {
            set_default(obj, "/spec/persistentVolumeReclaimPolicy", json!("Retain"));
            set_default(obj, "/spec/volumeMode", json!("Filesystem"));
            set_default(obj, "/status/phase", json!("Pending"));
        }
        ("", "persistentvolumeclaims") => {
            set_default(obj, "/spec/volumeMode", json!("Filesystem"));
            set_default(obj, "/status/phase", json!("Pending"));
        }
        _ => {}
    }
}

/// `BestEffort`, `Burstable` or `Guaranteed`, from the containers' resources.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| pod.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn subdomain() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
            .expect("valid")
    })
}

fn label_1123() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("valid"))
}

fn label_1035() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-z]([-a-z0-9]*[a-z0-9])?$").expect("valid"))
}

/// The name rules of each kind, in the real server's words.
pub fn name_causes(ty: &ResourceType, name: &str) -> Vec<Cause> {
    let invalid = |why: String| {
        vec![Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": {why}"),
        )]
    };
    match (ty.group.as_str(), ty.plural.as_str()) {
        ("", "namespaces") if name.len() > 63 || !label_1123().is_match(name) => invalid(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
             regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        ),
        ("", "services") if name.len() > 63 || !label_1035().is_match(name) => invalid(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with \
             an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or \
             'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        ),
        ("", "namespaces") | ("", "services") => Vec::new(),
        // RBAC names are path segments (`system:discovery` is one).
        ("rbac.authorization.k8s.io", _) => match name {
            "." | ".." => invalid(format!("may not be '{name}'")),
            _ if name.contains('/') => invalid("may not contain '/'".into()),
            _ if name.contains('%') => invalid("may not contain '%'".into()),
            _ => Vec::new(),
        },
        _ if name.len() > 253 || !subdomain().is_match(name) => invalid(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
             or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
             regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        ),
        _ => Vec::new(),
    }
}

fn pod_spec_causes(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.containers"),
            "Required value",
        )),
        Some(list) if list.is_empty() => causes.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.containers"),
            "Required value",
        )),
        Some(_) => {}
    }
    for list in ["initContainers", "containers"] {
        let items = spec.and_then(|s| s.get(list)).and_then(Value::as_array);
        for (i, c) in items.into_iter().flatten().enumerate() {
            for field in ["name", "image"] {
                if c.get(field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        format!("{path}.{list}[{i}].{field}"),
                        "Required value",
                    ));
                }
            }
        }
    }
}

/// Checks that mirror the real server's validation where a modelfleet
/// component could get them wrong.
pub fn validate(ty: &ResourceType, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (ty.group.as_str(), ty.plural.as_str()) {
        ("", "pods") => pod_spec_causes(obj.get("spec"), "spec", &mut causes),
        ("apps", "deployments") => {
            pod_spec_causes(
                obj.pointer("/spec/template/spec"),
                "spec.template.spec",
                &mut causes,
            );
            match obj.pointer("/spec/selector") {
                None => causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.selector",
                    "Required value",
                )),
                Some(selector) => {
                    let labels = obj.pointer("/spec/template/metadata/labels");
                    let matched = selector
                        .get("matchLabels")
                        .and_then(Value::as_object)
                        .is_none_or(|want| {
                            want.iter()
                                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                        });
                    if !matched {
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            "spec.template.metadata.labels",
                            format!(
                                "Invalid value: {}: `selector` does not match template `labels`",
                                labels.cloned().unwrap_or(json!({}))
                            ),
                        ));
                    }
                }
            }
            if let Some(r) = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .filter(|r| *r < 0)
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "spec.replicas",
                    format!("Invalid value: {r}: must be greater than or equal to 0"),
                ));
            }
        }
        ("policy", "poddisruptionbudgets")
            if obj.pointer("/spec/minAvailable").is_some()
                && obj.pointer("/spec/maxUnavailable").is_some() =>
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec",
                "Invalid value: \"object\": minAvailable and maxUnavailable cannot be both set",
            ));
        }
        _ => {}
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::{GroupResource, Registry};

    fn ty(group: &str, plural: &str) -> std::sync::Arc<ResourceType> {
        Registry::default()
            .get(&GroupResource::new(group, plural))
            .unwrap()
    }

    #[test]
    fn deployments_are_defaulted_and_selectors_checked() {
        let deploy = ty("apps", "deployments");
        let mut obj = json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
        defaults(&deploy, &mut obj);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let causes = validate(&deploy, &obj);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn qos_classes() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "c", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
        let both = json!({"cpu": "1", "memory": "1Gi"});
        assert_eq!(qos_class(&pod(json!({"limits": both}))), "Guaranteed");
    }

    #[test]
    fn names_follow_each_kinds_rule() {
        assert!(name_causes(&ty("", "pods"), "a.b-c").is_empty());
        assert_eq!(
            name_causes(&ty("", "pods"), "Bad")[0].field,
            "metadata.name"
        );
        assert!(!name_causes(&ty("", "services"), "1abc").is_empty());
        assert!(!name_causes(&ty("", "namespaces"), "a.b").is_empty());
    }
}
