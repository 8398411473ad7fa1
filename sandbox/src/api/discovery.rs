//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}` and
//! the `APIResourceList` of each group version, rebuilt from the registry
//! on every request so CRDs appear and disappear as they are created and
//! deleted. Aggregated discovery (`as=APIGroupDiscoveryList`) is not
//! offered: the plain documents are answered with `application/json`,
//! which clients, kubectl included, accept as the legacy format.

use serde_json::{Value, json};

use super::registry::Registry;

/// The Kubernetes version the sandbox speaks (the k8s-openapi feature).
pub const MAJOR: &str = "1";
pub const MINOR: &str = "33";

/// The verbs of a resource that supports them all.
pub(crate) const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-modelfleet-sandbox"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(registry: &Registry, group: &str) -> Option<Value> {
    let versions = registry.group_versions(group);
    let preferred = versions.first()?;
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    Some(json!({
        "name": group,
        "versions": entries,
        "preferredVersion": {"groupVersion": format!("{group}/{preferred}"), "version": preferred},
    }))
}

pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|g| !g.is_empty())
        .filter_map(|g| group_doc(registry, g))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(registry: &Registry, group: &str) -> Option<Value> {
    let mut doc = group_doc(registry, group)?;
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The `APIResourceList` of one group version, or `None` if nothing is
/// served there.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for ty in registry.in_group_version(group, version) {
        let info = ty.version(version)?;
        let mut main = json!({
            "name": ty.plural,
            "singularName": ty.singular,
            "namespaced": ty.namespaced,
            "kind": ty.kind,
            "verbs": if ty.review { &["create"][..] } else { VERBS },
        });
        if !ty.short_names.is_empty() {
            main["shortNames"] = json!(ty.short_names);
        }
        if !ty.categories.is_empty() {
            main["categories"] = json!(ty.categories);
        }
        resources.push(main);
        let sub = |name: &str, kind: &str, verbs: &[&str]| {
            json!({"name": format!("{}/{name}", ty.plural), "singularName": "", "namespaced": ty.namespaced,
                   "kind": kind, "verbs": verbs})
        };
        if info.status {
            resources.push(sub("status", &ty.kind, &["get", "patch", "update"]));
        }
        if info.scale.is_some() {
            let mut scale = sub("scale", "Scale", &["get", "patch", "update"]);
            scale["group"] = json!("autoscaling");
            scale["version"] = json!("v1");
            resources.push(scale);
        }
        if ty.binding {
            resources.push(sub("binding", "Binding", &["create"]));
            resources.push(sub("log", "Pod", &["get"]));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_v1_lists_subresources_and_short_names() {
        let registry = Registry::default();
        let doc = resource_list(&registry, "", "v1").unwrap();
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/status") && names.contains(&"pods/binding"));
        assert!(names.contains(&"pods/log"));
        let pods = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert!(
            group_list(&registry)["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "apps")
        );
        assert!(resource_list(&registry, "apps", "v2").is_none());
    }
}
