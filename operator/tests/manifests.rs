//! The YAML in `manifests/` checked against the Kubernetes types, offline.
//!
//! `kubectl apply --dry-run=client` needs an API server for discovery, so it
//! cannot run here. Instead every document is read into its k8s-openapi (or
//! modelfleet) type and written back: a field the type does not have (a
//! typo, a wrong level of nesting) is dropped on the way and the comparison
//! names it. The RBAC is checked against what the build step emits.

#[path = "support/round_trip.rs"]
mod round_trip;

use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use modelfleet_core::crd::ModelDeployment;
use round_trip::missing_fields;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn documents(relative: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(manifests().join(relative)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn check_as<T: DeserializeOwned + Serialize>(doc: &Value, file: &str) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{file}: {} is not valid: {e}", doc["kind"]));
    let mut missing = Vec::new();
    missing_fields(
        doc,
        &serde_json::to_value(&typed).unwrap(),
        "",
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "{file}: {} has fields its type does not know: {missing:?}",
        doc["kind"]
    );
    typed
}

fn check_document(doc: &Value, file: &str) {
    match doc["kind"].as_str().unwrap() {
        "Namespace" => drop(check_as::<Namespace>(doc, file)),
        "ServiceAccount" => drop(check_as::<ServiceAccount>(doc, file)),
        "ClusterRole" => drop(check_as::<ClusterRole>(doc, file)),
        "ClusterRoleBinding" => drop(check_as::<ClusterRoleBinding>(doc, file)),
        "Role" => drop(check_as::<Role>(doc, file)),
        "RoleBinding" => drop(check_as::<RoleBinding>(doc, file)),
        "Deployment" => drop(check_as::<Deployment>(doc, file)),
        "Service" => drop(check_as::<Service>(doc, file)),
        "CustomResourceDefinition" => drop(check_as::<CustomResourceDefinition>(doc, file)),
        "ModelDeployment" => drop(check_as::<ModelDeployment>(doc, file)),
        "ValidatingAdmissionPolicy" => drop(check_as::<ValidatingAdmissionPolicy>(doc, file)),
        "ValidatingAdmissionPolicyBinding" => {
            drop(check_as::<ValidatingAdmissionPolicyBinding>(doc, file))
        }
        other => panic!("{file}: no check for kind {other}"),
    }
}

#[test]
fn every_manifest_reads_as_its_kubernetes_type() {
    let mut checked = 0;
    for dir in ["crds", "examples", "operator", "hub-member", "testing"] {
        let mut files: Vec<_> = std::fs::read_dir(manifests().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        for file in files {
            let relative = format!("{dir}/{file}");
            for doc in documents(&relative) {
                check_document(&doc, &relative);
                checked += 1;
            }
        }
    }
    assert!(checked >= 19, "only {checked} documents found");
}

#[test]
fn the_typo_check_catches_an_unknown_field() {
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targtPort": 8080}]}
    });
    let caught = std::panic::catch_unwind(|| check_document(&doc, "inline"));
    assert!(caught.is_err(), "a misspelt field must fail the check");
}

fn cluster_role(file: &str, name: &str) -> Vec<PolicyRule> {
    let role: ClusterRole = documents(file)
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == name)
        .map(|d| serde_json::from_value(d).unwrap())
        .unwrap_or_else(|| panic!("{file} has no ClusterRole {name}"));
    role.rules.unwrap()
}

fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g == group))
            && r.resources
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|x| x == resource))
            && r.verbs.iter().any(|v| v == verb)
    })
}

fn no_wildcards(rules: &[PolicyRule]) {
    for rule in rules {
        assert!(
            !rule.verbs.iter().any(|v| v == "*")
                && !rule.resources.iter().flatten().any(|r| r == "*")
                && !rule.api_groups.iter().flatten().any(|g| g == "*"),
            "no wildcards: {rule:?}"
        );
    }
}

const BUILT: [(&str, &str); 4] = [
    ("apps", "deployments"),
    ("leaderworkerset.x-k8s.io", "leaderworkersets"),
    ("", "services"),
    ("policy", "poddisruptionbudgets"),
];

/// Cluster-wide the operator reads what it builds and reports on
/// ModelDeployments; it writes workloads only through the role a tenant
/// namespace binds, and secrets and network policies only there.
#[test]
fn the_operator_writes_only_where_its_workload_role_is_bound() {
    let everywhere = cluster_role("operator/10-rbac.yaml", "modelfleet-operator");
    let bound = cluster_role("operator/10-rbac.yaml", "modelfleet-operator-workloads");
    for (group, resource) in BUILT {
        for verb in ["get", "list", "watch"] {
            assert!(
                allows(&everywhere, group, resource, verb),
                "{verb} {group}/{resource}"
            );
        }
        for verb in ["create", "patch", "delete"] {
            assert!(
                !allows(&everywhere, group, resource, verb),
                "{verb} {group}/{resource} must not be cluster-wide"
            );
            assert!(
                allows(&bound, group, resource, verb),
                "{verb} {group}/{resource}"
            );
        }
    }
    assert!(allows(
        &everywhere,
        "modelfleet.io",
        "modeldeployments/status",
        "patch"
    ));
    assert!(allows(
        &everywhere,
        "modelfleet.io",
        "modeldeployments/finalizers",
        "update"
    ));
    assert!(allows(&everywhere, "", "nodes", "list"));
    assert!(
        !allows(&everywhere, "", "nodes", "patch"),
        "discovery only reads nodes"
    );
    assert!(!allows(
        &everywhere,
        "modelfleet.io",
        "modeldeployments",
        "delete"
    ));
    for (group, resource) in [("", "secrets"), ("networking.k8s.io", "networkpolicies")] {
        assert!(!allows(&everywhere, group, resource, "create"));
        assert!(allows(&bound, group, resource, "create"));
    }
    // Existing secrets only by the one name it writes.
    let secret_reads: Vec<_> = bound
        .iter()
        .filter(|r| r.resources.iter().flatten().any(|x| x == "secrets"))
        .filter(|r| {
            r.verbs
                .iter()
                .any(|v| v == "get" || v == "patch" || v == "list")
        })
        .collect();
    assert!(!secret_reads.is_empty());
    for rule in secret_reads {
        assert_eq!(
            rule.resource_names.as_deref(),
            Some(&["modelfleet-engine-api-key".to_owned()][..])
        );
        assert!(!rule.verbs.iter().any(|v| v == "list" || v == "watch"));
    }
    // The node cache: volumes are cluster-scoped, made and patched but
    // never deleted (they keep a namespace's models); claims only where
    // the workload role is bound.
    assert!(allows(&everywhere, "", "persistentvolumes", "create"));
    assert!(!allows(&everywhere, "", "persistentvolumes", "delete"));
    assert!(!allows(&everywhere, "", "persistentvolumeclaims", "create"));
    assert!(allows(&bound, "", "persistentvolumeclaims", "create"));
    assert!(!allows(&bound, "", "persistentvolumeclaims", "delete"));
    no_wildcards(&everywhere);
    no_wildcards(&bound);
}

/// The hub's role in a member cluster: it may bind the operator's workload
/// role and no other, and it cannot write workloads, secrets or RBAC roles.
#[test]
fn the_hub_may_only_bind_the_operator_role_and_write_its_own_objects() {
    let hub = cluster_role("hub-member/00-rbac.yaml", "modelfleet-hub");
    let binds: Vec<_> = hub
        .iter()
        .filter(|r| r.verbs.iter().any(|v| v == "bind" || v == "escalate"))
        .collect();
    assert_eq!(binds.len(), 1);
    assert_eq!(
        binds[0].resource_names.as_deref(),
        Some(
            &[
                "modelfleet-operator-workloads".to_owned(),
                "modelfleet-hub-tenant-logs".to_owned(),
                "modelfleet-hub-tenant-credentials".to_owned()
            ][..]
        )
    );
    // What it may bind to itself: writing Secrets it cannot read (the
    // admission policy holds it to modelfleet-source-*), and reading pods'
    // logs, nothing more.
    let credentials = cluster_role(
        "hub-member/00-rbac.yaml",
        "modelfleet-hub-tenant-credentials",
    );
    assert_eq!(credentials.len(), 1);
    assert_eq!(
        credentials[0].resources.as_deref(),
        Some(&["secrets".to_owned()][..])
    );
    assert_eq!(credentials[0].verbs, ["create", "patch", "delete"]);
    let policies = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/hub-member/10-admission-policy.yaml"),
    )
    .unwrap();
    assert!(policies.contains(
        "request.userInfo.username == 'system:serviceaccount:modelfleet-system:modelfleet-hub'"
    ));
    assert!(policies.contains(".metadata.name.startsWith('modelfleet-source-')"));
    let logs = cluster_role("hub-member/00-rbac.yaml", "modelfleet-hub-tenant-logs");
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].resources.as_deref(),
        Some(&["pods/log".to_owned()][..])
    );
    assert_eq!(logs[0].verbs, ["get"]);
    assert!(!allows(&hub, "", "pods/log", "get"), "not cluster-wide");
    assert!(!binds[0].verbs.iter().any(|v| v == "escalate"));
    for (group, resource) in BUILT {
        assert!(
            !allows(&hub, group, resource, "create"),
            "{group}/{resource}"
        );
    }
    for (group, resource) in [
        ("", "secrets"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ] {
        for verb in ["get", "create", "patch", "update"] {
            let granted = hub.iter().any(|r| {
                r.api_groups.iter().flatten().any(|g| g == group)
                    && r.resources.iter().flatten().any(|x| x == resource)
                    && r.verbs.iter().any(|v| v == verb)
            });
            assert!(!granted, "{verb} {group}/{resource}");
        }
    }
    assert!(allows(&hub, "modelfleet.io", "modeldeployments", "create"));
    assert!(allows(&hub, "", "namespaces", "patch"));
    no_wildcards(&hub);
}

#[test]
fn the_operator_deployment_probes_its_own_endpoints() {
    let deployment: Deployment = documents("operator/20-deployment.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .map(|d| serde_json::from_value(d).unwrap())
        .unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("modelfleet-operator")
    );
    let container = &pod.containers[0];
    assert_eq!(
        container.args.as_deref(),
        Some(&["operator".to_owned()][..])
    );
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&container.liveness_probe), "/healthz");
    assert_eq!(path(&container.readiness_probe), "/readyz");
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 8080);
}
