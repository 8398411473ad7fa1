//! The Helm chart `charts/modelfleet` with the real Helm: `helm lint
//! --strict` of every example values file, `helm template` read into the
//! Kubernetes types (a field a type does not know fails), the security
//! settings and RBAC a platform team relies on, the values the schema and
//! the templates refuse, and `helm install`, `upgrade` and `uninstall`
//! against a sandbox cluster, checked through `kubectl`.

#[path = "support/helm.rs"]
mod helm;
#[path = "../operator/tests/support/round_trip.rs"]
mod round_trip;

use std::path::Path;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use round_trip::missing_fields;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use helm::{NAMESPACE, Tools, chart, ci_values, documents, find, has, names, repo};

fn ci(name: &str) -> std::path::PathBuf {
    chart().join("ci").join(name)
}

/// `doc` read into its type and written back, losing nothing.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let what = format!("{}/{}", doc["kind"], doc["metadata"]["name"]);
    let value: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what} is not a valid object of its kind: {e}"));
    let mut missing = Vec::new();
    missing_fields(
        doc,
        &serde_json::to_value(&value).unwrap(),
        "",
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "{what} has fields its type does not know: {missing:?}"
    );
    value
}

/// Every rendered object is a known kind and reads into its type.
fn check_types(objects: &[Value]) {
    for doc in objects {
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/part-of"], "modelfleet",
            "{doc}"
        );
        for label in ["name", "instance", "version", "component", "managed-by"] {
            assert!(
                doc["metadata"]["labels"][format!("app.kubernetes.io/{label}")].is_string(),
                "{} lacks app.kubernetes.io/{label}",
                doc["metadata"]["name"]
            );
        }
        match doc["kind"].as_str().unwrap() {
            "Deployment" => drop(typed::<Deployment>(doc)),
            "Service" => drop(typed::<Service>(doc)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(doc)),
            "Secret" => drop(typed::<Secret>(doc)),
            "ConfigMap" => drop(typed::<ConfigMap>(doc)),
            "ClusterRole" => drop(typed::<ClusterRole>(doc)),
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(doc)),
            "Role" => drop(typed::<Role>(doc)),
            "RoleBinding" => drop(typed::<RoleBinding>(doc)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(doc)),
            "HorizontalPodAutoscaler" => drop(typed::<HorizontalPodAutoscaler>(doc)),
            "NetworkPolicy" => drop(typed::<NetworkPolicy>(doc)),
            "Ingress" => drop(typed::<Ingress>(doc)),
            "ValidatingAdmissionPolicy" => drop(typed::<ValidatingAdmissionPolicy>(doc)),
            "ValidatingAdmissionPolicyBinding" => {
                drop(typed::<ValidatingAdmissionPolicyBinding>(doc))
            }
            // Custom resources of Gateway API and the Prometheus Operator:
            // no k8s-openapi type; their fields are checked where rendered.
            "HTTPRoute" | "ServiceMonitor" => {}
            other => panic!("the chart renders a {other}, which this test does not check"),
        }
        if doc["kind"] != "ClusterRole"
            && doc["kind"] != "ClusterRoleBinding"
            && doc["kind"] != "ValidatingAdmissionPolicy"
            && doc["kind"] != "ValidatingAdmissionPolicyBinding"
        {
            assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{doc}");
        }
    }
}

fn deployment(objects: &[Value], name: &str) -> Deployment {
    typed(find(objects, "Deployment", name))
}

fn pod_spec(d: &Deployment) -> PodSpec {
    d.spec.clone().unwrap().template.spec.unwrap()
}

/// Restricted Pod Security, as the profile's checks read it.
fn assert_restricted(name: &str, spec: &PodSpec) {
    let pod = spec.security_context.clone().unwrap();
    assert_eq!(pod.run_as_non_root, Some(true), "{name}");
    assert_eq!(pod.run_as_user, Some(65532), "{name}");
    assert_eq!(pod.run_as_group, Some(65532), "{name}");
    assert_eq!(
        pod.seccomp_profile.unwrap().type_,
        "RuntimeDefault",
        "{name}"
    );
    assert!(
        spec.host_network.is_none() && spec.host_pid.is_none(),
        "{name}"
    );
    for c in &spec.containers {
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(sc.privileged, Some(false), "{name}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(
            sc.capabilities.unwrap().drop,
            Some(vec!["ALL".to_owned()]),
            "{name}"
        );
        assert!(c.resources.as_ref().unwrap().requests.is_some(), "{name}");
    }
    for v in spec.volumes.iter().flatten() {
        assert!(v.host_path.is_none(), "{name} mounts a host path");
    }
}

fn probe_path(probe: Option<&k8s_openapi::api::core::v1::Probe>) -> Option<String> {
    probe
        .and_then(|p| p.http_get.as_ref())
        .and_then(|g| g.path.clone())
}

fn manifest_documents(relative: &str) -> Vec<Value> {
    documents(&std::fs::read_to_string(repo().join("manifests").join(relative)).unwrap())
}

fn rules_of(objects: &[Value], kind: &str, name: &str) -> Vec<PolicyRule> {
    let doc = find(objects, kind, name);
    serde_json::from_value(doc["rules"].clone()).unwrap()
}

#[test]
fn crds_are_the_manifests_crds_byte_for_byte() {
    let list = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let manifests = repo().join("manifests/crds");
    let crds = chart().join("crds");
    assert_eq!(
        list(&manifests),
        list(&crds),
        "charts/modelfleet/crds/ must hold exactly manifests/crds/ (copy them over)"
    );
    for name in list(&manifests) {
        assert!(
            std::fs::read(manifests.join(&name)).unwrap()
                == std::fs::read(crds.join(&name)).unwrap(),
            "charts/modelfleet/crds/{name} differs from manifests/crds/{name}: \
             cp manifests/crds/{name} charts/modelfleet/crds/"
        );
    }
}

#[test]
fn the_chart_the_manifests_and_the_operator_name_one_image() {
    let version = env!("CARGO_PKG_VERSION");
    let chart_yaml: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart_yaml["appVersion"], version, "Chart.yaml appVersion");
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        values["image"]["repository"],
        modelfleet_operator::build::MODELFLEET_IMAGE_REPOSITORY
    );
    let image = format!(
        "{}:v{version}",
        modelfleet_operator::build::MODELFLEET_IMAGE_REPOSITORY
    );
    // The operator's init containers fetch weights with this same image.
    assert_eq!(
        modelfleet_operator::build::BuildOptions::default().fetcher_image,
        image
    );
    let manifest = manifest_documents("operator/20-deployment.yaml");
    let operator = deployment(&manifest, "modelfleet-operator");
    assert_eq!(
        pod_spec(&operator).containers[0].image.as_deref(),
        Some(image.as_str())
    );

    let objects = Tools::offline()
        .template(&[&ci("hub-values.yaml")], &[])
        .unwrap();
    for name in ["modelfleet-api", "modelfleet-operator"] {
        let d = deployment(&objects, name);
        assert_eq!(
            pod_spec(&d).containers[0].image.as_deref(),
            Some(image.as_str()),
            "{name}"
        );
    }
    let pinned = Tools::offline()
        .template(
            &[&ci("hub-values.yaml")],
            &[&format!("image.digest=sha256:{}", "ab".repeat(32))],
        )
        .unwrap();
    assert_eq!(
        pod_spec(&deployment(&pinned, "modelfleet-api")).containers[0].image,
        Some(format!(
            "{}@sha256:{}",
            modelfleet_operator::build::MODELFLEET_IMAGE_REPOSITORY,
            "ab".repeat(32)
        ))
    );
}

#[test]
fn lint_strict_passes_with_every_example_values_file() {
    let tools = Tools::offline();
    for file in ci_values() {
        let ran = tools.helm(&[
            "lint",
            "--strict",
            chart().to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--values",
            file.to_str().unwrap(),
        ]);
        assert!(
            ran.ok,
            "helm lint --strict -f {}:\n{}\n{}",
            file.display(),
            ran.stdout,
            ran.stderr
        );
        assert!(
            ran.stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{}",
            ran.stdout
        );
    }
}

#[test]
fn every_example_renders_objects_of_known_types_with_restricted_pods() {
    let tools = Tools::offline();
    for file in ci_values() {
        let objects = tools
            .template(&[&file], &[])
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        check_types(&objects);
        let deployments: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .collect();
        assert!(!deployments.is_empty(), "{}", file.display());
        for d in deployments {
            let d: Deployment = typed(d);
            let name = d.metadata.name.clone().unwrap();
            assert_restricted(&name, &pod_spec(&d));
        }
    }
}

#[test]
fn the_hub_runs_api_with_its_settings_secrets_and_probes_and_no_cluster_credentials() {
    let objects = Tools::offline()
        .template(&[&ci("hub-values.yaml")], &[])
        .unwrap();
    let hub = deployment(&objects, "modelfleet-api");
    assert_eq!(hub.spec.as_ref().unwrap().replicas, Some(2));
    let spec = pod_spec(&hub);
    // The hub never talks to its own cluster's API as its pod.
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.service_account_name.as_deref(), Some("modelfleet-api"));
    let sa: ServiceAccount = typed(find(&objects, "ServiceAccount", "modelfleet-api"));
    assert_eq!(sa.automount_service_account_token, Some(false));
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        assert!(
            !binding["subjects"].to_string().contains("modelfleet-api"),
            "the hub's pods are granted nothing: {binding}"
        );
    }

    let api = &spec.containers[0];
    let args = api.args.clone().unwrap();
    assert_eq!(args[0], "api");
    assert!(args.contains(&"--log-format=json".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--initial-admin-password-file=/etc/modelfleet/admin/password".to_owned()),
        "{args:?}"
    );
    assert_eq!(
        probe_path(api.liveness_probe.as_ref()).as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        probe_path(api.readiness_probe.as_ref()).as_deref(),
        Some("/readyz")
    );
    assert_eq!(api.ports.as_ref().unwrap()[0].container_port, 8080);

    // Secrets reach the process from Secrets, never from the pod spec.
    let env = api.env.clone().unwrap();
    let from_secret = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .map(|s| (s.name.clone(), s.key.clone()))
            .unwrap_or_else(|| panic!("{name} comes from a Secret"))
    };
    assert_eq!(
        from_secret("MODELFLEET_DATABASE_URL"),
        ("modelfleet-api-database".to_owned(), "url".to_owned())
    );
    assert_eq!(
        from_secret("MODELFLEET_SECRET_KEY"),
        ("modelfleet-api-secret-key".to_owned(), "key".to_owned())
    );
    assert!(env.iter().all(|e| e.value.is_none()), "{env:?}");
    let rendered = serde_json::to_string(&hub).unwrap();
    assert!(
        !rendered.contains("change-me"),
        "the database password is in the pod spec"
    );

    // Settings as the environment `modelfleet api` reads.
    let config: ConfigMap = typed(find(&objects, "ConfigMap", "modelfleet-api"));
    let data = config.data.unwrap();
    assert_eq!(data["MODELFLEET_LISTEN"], "0.0.0.0:8080");
    assert_eq!(data["MODELFLEET_DATA_DIR"], "/var/lib/modelfleet");
    assert_eq!(data["MODELFLEET_FAILOVER_AFTER_SECONDS"], "300");
    assert_eq!(data["MODELFLEET_CLUSTER_LOST_AFTER_SECONDS"], "300");
    assert_eq!(
        data["MODELFLEET_SECOND_FACTOR_ROLES"],
        "platform-admin,auditor"
    );
    let mounts = api.volume_mounts.clone().unwrap();
    assert!(mounts.iter().any(|m| m.mount_path == "/var/lib/modelfleet"));

    // The generated key is 32 random bytes; kept with resource-policy keep.
    let key: Secret = typed(find(&objects, "Secret", "modelfleet-api-secret-key"));
    let key_bytes = &key.data.as_ref().unwrap()["key"].0;
    let decoded = base64_decode(std::str::from_utf8(key_bytes).unwrap());
    assert_eq!(decoded.len(), 32);
    assert_eq!(
        key.metadata.annotations.unwrap()["helm.sh/resource-policy"],
        "keep"
    );
    let database: Secret = typed(find(&objects, "Secret", "modelfleet-api-database"));
    assert!(String::from_utf8_lossy(&database.data.unwrap()["url"].0).starts_with("postgres://"));

    // Only 8080 in, and never the clouds' metadata services out.
    let policy: NetworkPolicy = typed(find(&objects, "NetworkPolicy", "modelfleet-api"));
    let policy_spec = policy.spec.unwrap();
    let ingress = policy_spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let ports = ingress[0].ports.clone().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        ports[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    assert_eq!(
        policy_spec.policy_types,
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
    );
    let egress = serde_json::to_string(&policy_spec.egress).unwrap();
    for blocked in ["169.254.0.0/16", "100.100.100.200/32", "fe80::/10"] {
        assert!(egress.contains(blocked), "{egress}");
    }
    let pdb: PodDisruptionBudget = typed(find(&objects, "PodDisruptionBudget", "modelfleet-api"));
    assert_eq!(
        pdb.spec.unwrap().selector.unwrap().match_labels,
        hub.spec.unwrap().selector.match_labels
    );
}

#[test]
fn the_gateway_runs_beside_the_hubs_on_their_database_and_key_and_scales_on_cpu() {
    let tools = Tools::offline();
    // Off unless asked for: the hubs answer /v1 themselves.
    let plain = tools.template(&[&ci("hub-values.yaml")], &[]).unwrap();
    assert!(
        !has(&plain, "Deployment", "modelfleet-gateway"),
        "{}",
        names(&plain)
    );

    let objects = tools.template(&[&ci("gateway-values.yaml")], &[]).unwrap();
    check_types(&objects);
    let hub = deployment(&objects, "modelfleet-api");
    let gateway = deployment(&objects, "modelfleet-gateway");
    let spec = pod_spec(&gateway);
    assert_restricted("modelfleet-gateway", &spec);
    // The tenant namespaces' NetworkPolicy lets exactly these pods reach
    // the engines.
    let (label, value) = modelfleet_core::contract::tenancy::GATEWAY_POD_LABEL;
    let pod_labels = gateway
        .spec
        .clone()
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(pod_labels[label], value);
    assert_eq!(
        NAMESPACE,
        modelfleet_core::contract::tenancy::GATEWAY_NAMESPACE
    );
    assert_eq!(spec.automount_service_account_token, Some(false));
    let container = &spec.containers[0];
    let args = container.args.clone().unwrap();
    assert_eq!(args[0], "gateway", "{args:?}");
    assert!(args.contains(&"--log-format=json".to_owned()), "{args:?}");
    assert_eq!(
        probe_path(container.liveness_probe.as_ref()).as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        probe_path(container.readiness_probe.as_ref()).as_deref(),
        Some("/readyz")
    );
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 8080);
    // A read-only root: what it writes goes to its own emptyDirs.
    let mounts = container.volume_mounts.clone().unwrap();
    assert!(mounts.iter().any(|m| m.mount_path == "/tmp"));

    // The hubs' database and key, from the same Secrets, and their
    // settings; nothing secret in the pod spec.
    let env_of = |d: &Deployment| pod_spec(d).containers[0].env.clone().unwrap();
    let secret_refs = |d: &Deployment| {
        env_of(d)
            .into_iter()
            .filter_map(|e| {
                let r = e.value_from?.secret_key_ref?;
                Some((e.name, r.name, r.key))
            })
            .filter(|(name, _, _)| {
                name == "MODELFLEET_DATABASE_URL" || name == "MODELFLEET_SECRET_KEY"
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(secret_refs(&gateway), secret_refs(&hub));
    assert_eq!(secret_refs(&gateway).len(), 2);
    assert!(env_of(&gateway).iter().all(|e| e.value.is_none()));
    let from: Vec<String> = container
        .env_from
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.config_map_ref.unwrap().name)
        .collect();
    assert_eq!(from, ["modelfleet-api", "modelfleet-gateway"]);
    let config: ConfigMap = typed(find(&objects, "ConfigMap", "modelfleet-gateway"));
    let data = config.data.unwrap();
    assert_eq!(data["MODELFLEET_GATEWAY_DRAIN_SECONDS"], "20");
    assert_eq!(data["MODELFLEET_GATEWAY_MAX_BODY_BYTES"], "8388608");
    assert_eq!(data["MODELFLEET_GATEWAY_KEY_REQUESTS_PER_MINUTE"], "600");
    // Metered tokens are spooled on the pod's emptyDir, not the read-only root.
    assert!(data["MODELFLEET_GATEWAY_SPOOL_DIR"].starts_with("/var/lib/modelfleet/"));
    assert!(mounts.iter().any(|m| m.mount_path == "/var/lib/modelfleet"));

    // Stopping: endpoints let go (preStop), requests drain, then room.
    let stop = container.lifecycle.clone().unwrap().pre_stop.unwrap();
    assert_eq!(stop.sleep.unwrap().seconds, 5);
    assert_eq!(spec.termination_grace_period_seconds, Some(5 + 20 + 5));

    // The autoscaler owns the replica count; the budget keeps one per
    // disruption; the Service and its monitor select the pods.
    assert_eq!(gateway.spec.as_ref().unwrap().replicas, None);
    let hpa: HorizontalPodAutoscaler = typed(find(
        &objects,
        "HorizontalPodAutoscaler",
        "modelfleet-gateway",
    ));
    let hpa_spec = hpa.spec.unwrap();
    assert_eq!(hpa_spec.scale_target_ref.name, "modelfleet-gateway");
    assert_eq!(hpa_spec.scale_target_ref.kind, "Deployment");
    assert_eq!((hpa_spec.min_replicas, hpa_spec.max_replicas), (Some(2), 8));
    let selector = gateway.spec.clone().unwrap().selector.match_labels;
    let pdb: PodDisruptionBudget =
        typed(find(&objects, "PodDisruptionBudget", "modelfleet-gateway"));
    assert_eq!(pdb.spec.unwrap().selector.unwrap().match_labels, selector);
    let service: Service = typed(find(&objects, "Service", "modelfleet-gateway"));
    let service_spec = service.spec.unwrap();
    assert_eq!(service_spec.selector, selector);
    assert_eq!(service_spec.ports.unwrap()[0].port, 80);
    let monitor = find(&objects, "ServiceMonitor", "modelfleet-gateway");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let policy: NetworkPolicy = typed(find(&objects, "NetworkPolicy", "modelfleet-gateway"));
    assert_eq!(
        policy.spec.unwrap().pod_selector.unwrap().match_labels,
        selector
    );

    // Without the autoscaler the chart sets the replicas itself.
    let fixed = tools
        .template(
            &[&ci("gateway-values.yaml")],
            &["gateway.autoscaling.enabled=false", "gateway.replicas=3"],
        )
        .unwrap();
    assert!(!has(
        &fixed,
        "HorizontalPodAutoscaler",
        "modelfleet-gateway"
    ));
    assert_eq!(
        deployment(&fixed, "modelfleet-gateway")
            .spec
            .unwrap()
            .replicas,
        Some(3)
    );

    // NOTES say how to call it.
    let install = tools.helm(&[
        "install",
        "modelfleet",
        chart().to_str().unwrap(),
        "-n",
        NAMESPACE,
        "-f",
        ci("gateway-values.yaml").to_str().unwrap(),
        "--dry-run=client",
    ]);
    assert!(install.ok, "{}", install.stderr);
    let notes = &install.stdout[install.stdout.find("NOTES:").unwrap()..];
    for line in [
        "http://modelfleet-gateway.modelfleet-system.svc/v1",
        "kubectl -n modelfleet-system port-forward svc/modelfleet-gateway 8081:80",
        "curl http://127.0.0.1:8081/v1/chat/completions",
    ] {
        assert!(notes.contains(line), "{notes}");
    }
    let plain_notes = tools.helm(&[
        "install",
        "modelfleet",
        chart().to_str().unwrap(),
        "-n",
        NAMESPACE,
        "-f",
        ci("hub-values.yaml").to_str().unwrap(),
        "--dry-run=client",
    ]);
    assert!(!plain_notes.stdout.contains("modelfleet-gateway"));
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

#[test]
fn the_operator_leads_by_lease_with_the_manifests_rbac() {
    let objects = Tools::offline()
        .template(&[&ci("hub-values.yaml")], &[])
        .unwrap();
    let operator = deployment(&objects, "modelfleet-operator");
    assert_eq!(operator.spec.as_ref().unwrap().replicas, Some(2));
    let spec = pod_spec(&operator);
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some("modelfleet-operator")
    );
    let c = &spec.containers[0];
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "operator");
    assert!(
        !args.contains(&"--no-leader-election".to_owned()),
        "{args:?}"
    );
    let env: Vec<String> = c.env.clone().unwrap().into_iter().map(|e| e.name).collect();
    assert!(env.contains(&"POD_NAME".to_owned()) && env.contains(&"POD_NAMESPACE".to_owned()));
    assert_eq!(
        probe_path(c.liveness_probe.as_ref()).as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        probe_path(c.readiness_probe.as_ref()).as_deref(),
        Some("/readyz")
    );

    let policy = manifest_documents("operator/15-cache-volume-policy.yaml");
    for kind in [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        let (chart, shipped) = (
            find(&objects, kind, "modelfleet-operator-cache-volumes"),
            find(&policy, kind, "modelfleet-operator-cache-volumes"),
        );
        for field in [
            "validations",
            "matchConstraints",
            "policyName",
            "validationActions",
        ] {
            assert_eq!(
                chart["spec"][field], shipped["spec"][field],
                "{kind} {field} as in manifests/operator/15-cache-volume-policy.yaml"
            );
        }
    }
    let manifest = manifest_documents("operator/10-rbac.yaml");
    for (kind, name) in [
        ("ClusterRole", "modelfleet-operator"),
        ("ClusterRole", "modelfleet-operator-workloads"),
        ("Role", "modelfleet-operator-leader-election"),
    ] {
        assert_eq!(
            rules_of(&objects, kind, name),
            rules_of(&manifest, kind, name),
            "the chart's {kind} {name} grants what manifests/operator/10-rbac.yaml grants"
        );
    }
    for (kind, name) in [
        ("ClusterRoleBinding", "modelfleet-operator"),
        ("RoleBinding", "modelfleet-operator-leader-election"),
    ] {
        assert_eq!(
            find(&objects, kind, name)["subjects"],
            find(&manifest, kind, name)["subjects"]
        );
        assert_eq!(
            find(&objects, kind, name)["roleRef"],
            find(&manifest, kind, name)["roleRef"]
        );
    }
    // The hub's member access is not installed in hub mode by default.
    assert!(
        !has(&objects, "ClusterRole", "modelfleet-hub"),
        "{}",
        names(&objects)
    );

    // One replica runs without leader election, as the binary requires.
    let single = Tools::offline()
        .template(&[&ci("hub-values.yaml")], &["operator.replicas=1"])
        .unwrap();
    let args = pod_spec(&deployment(&single, "modelfleet-operator")).containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.contains(&"--no-leader-election".to_owned()),
        "{args:?}"
    );
}

#[test]
fn member_mode_is_the_operator_and_the_hubs_least_privileged_access_only() {
    let objects = Tools::offline()
        .template(&[&ci("member-values.yaml")], &[])
        .unwrap();
    for o in &objects {
        assert!(
            !o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("modelfleet-api"),
            "member mode runs no hub: {}",
            names(&objects)
        );
    }
    let operator = deployment(&objects, "modelfleet-operator");
    let spec = pod_spec(&operator);
    let args = spec.containers[0].args.clone().unwrap();
    assert!(
        args.contains(&"--cluster=aliyun-hz-prod".to_owned()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--admission-key-file=/etc/modelfleet/admission/key".to_owned()),
        "{args:?}"
    );
    let volume = spec.volumes.unwrap()[0].secret.clone().unwrap();
    assert_eq!(
        volume.secret_name.as_deref(),
        Some("modelfleet-operator-admission-key")
    );
    assert_eq!(volume.default_mode, Some(0o440));

    let manifest = manifest_documents("hub-member/00-rbac.yaml");
    for role in [
        "modelfleet-hub",
        "modelfleet-hub-tenant-logs",
        "modelfleet-hub-tenant-credentials",
    ] {
        assert_eq!(
            rules_of(&objects, "ClusterRole", role),
            rules_of(&manifest, "ClusterRole", role),
            "the chart's ClusterRole {role} grants what manifests/hub-member/00-rbac.yaml grants"
        );
    }
    assert_eq!(
        find(&objects, "ClusterRoleBinding", "modelfleet-hub")["subjects"],
        find(&manifest, "ClusterRoleBinding", "modelfleet-hub")["subjects"]
    );
    let policy = manifest_documents("hub-member/10-admission-policy.yaml");
    for name in [
        "modelfleet-operator-binding-scope",
        "modelfleet-hub-secret-scope",
    ] {
        for kind in [
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ] {
            assert_eq!(
                find(&objects, kind, name)["spec"],
                find(&policy, kind, name)["spec"],
                "{kind} {name} as in manifests/hub-member/10-admission-policy.yaml"
            );
        }
    }
}

#[test]
fn ingress_tls_prices_and_existing_secrets_are_wired() {
    let objects = Tools::offline()
        .template(&[&ci("existing-secrets-ingress-values.yaml")], &[])
        .unwrap();
    // Nothing secret is made when every secret is the user's.
    assert!(
        !objects.iter().any(|o| o["kind"] == "Secret"),
        "{}",
        names(&objects)
    );
    let ingress: Ingress = typed(find(&objects, "Ingress", "modelfleet-api"));
    let spec = ingress.spec.unwrap();
    let tls = &spec.tls.unwrap()[0];
    assert_eq!(tls.secret_name.as_deref(), Some("modelfleet-tls"));
    assert_eq!(tls.hosts, Some(vec!["modelfleet.example.com".to_owned()]));
    let backend = spec.rules.unwrap()[0].http.clone().unwrap().paths[0]
        .backend
        .clone();
    assert_eq!(backend.service.unwrap().name, "modelfleet-api");

    let hub = deployment(&objects, "modelfleet-api");
    assert_eq!(hub.spec.as_ref().unwrap().replicas, Some(3));
    let c = pod_spec(&hub).containers[0].clone();
    let env = serde_json::to_value(c.env.unwrap()).unwrap();
    let env_text = env.to_string();
    for wired in [
        r#""name":"modelfleet-db-app""#,
        r#""key":"uri""#,
        r#""name":"modelfleet-secret-key""#,
        r#""name":"modelfleet-audit-s3""#,
    ] {
        assert!(env_text.contains(wired), "{wired} not in {env_text}");
    }
    assert!(
        c.args
            .unwrap()
            .contains(&"--fleet=/etc/modelfleet/fleet/fleet.yaml".to_owned())
    );
    // The prices given as values are a fleet the hub reads.
    let fleet: ConfigMap = typed(find(&objects, "ConfigMap", "modelfleet-api-fleet"));
    let text = &fleet.data.unwrap()["fleet.yaml"];
    let parsed = modelfleet_core::Fleet::from_yaml(text).unwrap();
    assert_eq!(parsed.pools.len(), 1);
    let config: ConfigMap = typed(find(&objects, "ConfigMap", "modelfleet-api"));
    let data = config.data.unwrap();
    assert_eq!(data["MODELFLEET_AUDIT_EXPORT"], "s3://audit/modelfleet");
    assert_eq!(data["MODELFLEET_TRUSTED_PROXIES"], "10.0.0.0/8");
    assert_eq!(data["MODELFLEET_FAILOVER_AFTER_SECONDS"], "120");
    // The admission key of the hub's own cluster, from the user's Secret.
    let operator = pod_spec(&deployment(&objects, "modelfleet-operator"));
    assert_eq!(
        operator.volumes.unwrap()[0]
            .secret
            .clone()
            .unwrap()
            .secret_name
            .as_deref(),
        Some("modelfleet-admission-key")
    );
    let policy: NetworkPolicy = typed(find(&objects, "NetworkPolicy", "modelfleet-api"));
    let from = serde_json::to_string(&policy.spec.unwrap().ingress.unwrap()[0].from).unwrap();
    assert!(from.contains("ingress-nginx"), "{from}");
}

#[test]
fn gateway_api_route_and_service_monitors_render_when_asked() {
    let objects = Tools::offline()
        .template(
            &[&ci("hub-values.yaml")],
            &[
                "hub.httpRoute.enabled=true",
                "hub.httpRoute.parentRefs[0].name=public",
                "hub.httpRoute.parentRefs[0].sectionName=https",
                "hub.httpRoute.hostnames[0]=modelfleet.example.com",
                "serviceMonitor.enabled=true",
            ],
        )
        .unwrap();
    let route = find(&objects, "HTTPRoute", "modelfleet-api");
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(route["spec"]["parentRefs"][0]["sectionName"], "https");
    assert_eq!(route["spec"]["hostnames"][0], "modelfleet.example.com");
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"][0]["name"],
        "modelfleet-api"
    );
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["port"], 80);
    for name in ["modelfleet-api", "modelfleet-operator"] {
        let monitor = find(&objects, "ServiceMonitor", name);
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
        // It selects the Service that carries the pods' port.
        let service = objects
            .iter()
            .find(|o| {
                o["kind"] == "Service" && o["spec"]["selector"]["app.kubernetes.io/name"] == *name
            })
            .unwrap();
        for (k, v) in monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(&service["metadata"]["labels"][k], v, "{name}");
        }
    }
    check_types(&objects);
}

#[test]
fn a_changed_setting_or_database_rolls_the_hubs_pods() {
    let tools = Tools::offline();
    let annotations = |sets: &[&str]| {
        let objects = tools.template(&[&ci("hub-values.yaml")], sets).unwrap();
        deployment(&objects, "modelfleet-api")
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()
    };
    let before = annotations(&[]);
    assert_eq!(before, annotations(&[]), "the same values roll nothing");
    let setting = annotations(&["hub.settings.sessionMinutes=30"]);
    assert_ne!(before["checksum/config"], setting["checksum/config"]);
    let database = annotations(&["hub.database.url=postgres://other@db:5432/modelfleet"]);
    assert_ne!(before["checksum/secrets"], database["checksum/secrets"]);
}

#[test]
fn bad_values_are_refused_with_a_message_saying_what_to_fix() {
    let tools = Tools::offline();
    let hub = ci("hub-values.yaml");
    let member = ci("member-values.yaml");
    let cases: &[(&Path, &[&str], &str)] = &[
        (
            &hub,
            &["hub.replicas=0"],
            "at '/hub/replicas': minimum: got 0, want 1",
        ),
        (
            &hub,
            &["operator.replicas=0"],
            "at '/operator/replicas': minimum: got 0, want 1",
        ),
        (
            &hub,
            &["image.pullPolicy=Sometimes"],
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            &hub,
            &["mode=standalone"],
            "at '/mode': value must be one of 'hub', 'member'",
        ),
        (
            &hub,
            &["hub.database.url=mysql://root@db/modelfleet"],
            "at '/hub/database/url'",
        ),
        (
            &hub,
            &["hub.replica=3"],
            "additional properties 'replica' not allowed",
        ),
        (
            &hub,
            &["hub.settings.auditRetentionDays=90"],
            "at '/hub/settings/auditRetentionDays': minimum: got 90, want 184",
        ),
        (
            &hub,
            &["hub.settings.secondFactorRoles[0]=root"],
            "at '/hub/settings/secondFactorRoles/0'",
        ),
        (
            &hub,
            &["hub.database.url="],
            "hub mode needs the hub's PostgreSQL: set hub.database.url",
        ),
        (
            &hub,
            &["hub.database.existingSecret=db"],
            "set hub.database.url or hub.database.existingSecret, not both",
        ),
        (
            &hub,
            &["hub.ingress.enabled=true"],
            "hub.ingress.enabled needs hub.ingress.host",
        ),
        (
            &hub,
            &["hub.httpRoute.enabled=true"],
            "hub.httpRoute.enabled needs hub.httpRoute.parentRefs",
        ),
        (
            &member,
            &["operator.admissionKey.value="],
            "member mode needs the cluster's admission key",
        ),
        (
            &member,
            &["operator.admissionKey.value=not-hex"],
            "at '/operator/admissionKey/value'",
        ),
        (
            &member,
            &["operator.cluster="],
            "member mode needs operator.cluster",
        ),
        (
            &member,
            &["gateway.enabled=true"],
            "gateway.enabled needs hub mode",
        ),
        (
            &hub,
            &["gateway.enabled=true", "gateway.replicas=0"],
            "at '/gateway/replicas': minimum: got 0, want 1",
        ),
        (
            &hub,
            &[
                "gateway.enabled=true",
                "gateway.autoscaling.enabled=true",
                "gateway.autoscaling.minReplicas=5",
                "gateway.autoscaling.maxReplicas=3",
            ],
            "gateway.autoscaling.minReplicas (5) is above gateway.autoscaling.maxReplicas (3)",
        ),
        (
            &hub,
            &["gateway.settings.replicaConcurrency=-1"],
            "at '/gateway/settings/replicaConcurrency': minimum: got -1, want 0",
        ),
    ];
    for (file, sets, message) in cases {
        let err = tools
            .template(&[file], sets)
            .expect_err(&format!("{sets:?} must be refused"));
        assert!(
            err.contains(message),
            "{sets:?}: expected {message:?} in:\n{err}"
        );
    }
    // ValidatingAdmissionPolicy v1 needs Kubernetes 1.30.
    let old_cluster = tools.helm(&[
        "template",
        "modelfleet",
        chart().to_str().unwrap(),
        "--namespace",
        NAMESPACE,
        "--values",
        hub.to_str().unwrap(),
        "--kube-version",
        "1.29.9",
    ]);
    assert!(!old_cluster.ok);
    assert!(
        old_cluster.stderr.contains(">=1.30.0-0"),
        "{}",
        old_cluster.stderr
    );
    let elsewhere = tools
        .template_in("default", &[&hub], &[])
        .expect_err("another namespace must be refused");
    assert!(
        elsewhere.contains("install modelfleet into the namespace modelfleet-system"),
        "{elsewhere}"
    );
}

// ---------------------------------------------------------------------------
// helm install, upgrade and uninstall against a sandbox cluster

mod live {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use modelfleet_core::Fleet;
    use modelfleet_sandbox::ApiServer;
    use modelfleet_sandbox::cluster::{ClusterHandle, ClusterOptions, SimulatedCluster};
    use serde_json::Value;

    use super::helm::{NAMESPACE, Ran, Tools, chart};
    use super::{base64_decode, ci};

    /// A sandbox API server with simulated nodes (so Deployments get pods,
    /// through Pod Security admission), served over HTTPS for helm and
    /// kubectl, and the namespace the README tells to create, `restricted`.
    pub struct Cluster {
        pub tools: Arc<Tools>,
        _server: ApiServer,
        _serving: modelfleet_sandbox::ServingHandle,
        _cluster: ClusterHandle,
    }

    impl Cluster {
        pub async fn start() -> Cluster {
            let server = ApiServer::new();
            let cluster = SimulatedCluster::start(
                server.client(),
                &Fleet::example(),
                ClusterOptions::default()
                    .time_factor(0.001)
                    .pod_logs(server.pod_logs()),
            )
            .await
            .expect("the simulated cluster starts");
            let serving = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let tools = Arc::new(Tools::for_cluster(&serving.kubeconfig_yaml("sandbox")));
            let c = Cluster {
                tools,
                _server: server,
                _serving: serving,
                _cluster: cluster,
            };
            c.kubectl(&["create", "namespace", NAMESPACE]).await;
            c.kubectl(&[
                "label",
                "namespace",
                NAMESPACE,
                "pod-security.kubernetes.io/enforce=restricted",
            ])
            .await;
            c
        }

        async fn run(&self, helm: bool, args: &[&str]) -> Ran {
            let tools = self.tools.clone();
            let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                if helm {
                    tools.helm(&args)
                } else {
                    tools.kubectl(&args)
                }
            })
            .await
            .unwrap()
        }

        pub async fn helm(&self, args: &[&str]) -> Ran {
            let ran = self.run(true, args).await;
            assert!(
                ran.ok,
                "helm {args:?} failed:\n{}\n{}",
                ran.stdout, ran.stderr
            );
            ran
        }

        /// `helm install modelfleet` of the chart with one of its ci
        /// values files.
        pub async fn install(&self, values_file: &str) -> Ran {
            let (chart, values) = (chart_arg(), values(values_file));
            self.helm(&[
                "install",
                "modelfleet",
                &chart,
                "-n",
                NAMESPACE,
                "-f",
                &values,
            ])
            .await
        }

        pub async fn kubectl(&self, args: &[&str]) -> String {
            let ran = self.run(false, args).await;
            assert!(
                ran.ok,
                "kubectl {args:?} failed:\n{}\n{}",
                ran.stdout, ran.stderr
            );
            ran.stdout
        }

        pub async fn kubectl_fails(&self, args: &[&str]) -> String {
            let ran = self.run(false, args).await;
            assert!(
                !ran.ok,
                "kubectl {args:?} should have failed:\n{}",
                ran.stdout
            );
            ran.stderr
        }

        pub async fn json(&self, args: &[&str]) -> Value {
            let mut all = args.to_vec();
            all.extend(["-o", "json"]);
            serde_json::from_str(&self.kubectl(&all).await).unwrap()
        }

        /// The value of `key` in Secret `name`, decoded.
        pub async fn secret(&self, name: &str, key: &str) -> String {
            let secret = self.json(&["get", "secret", name, "-n", NAMESPACE]).await;
            let encoded = secret["data"][key].as_str().unwrap();
            String::from_utf8(base64_decode(encoded)).unwrap()
        }

        /// Waits until the Deployment `name` has `replicas` pods, admitted
        /// by Pod Security `restricted`.
        pub async fn pods_of(&self, name: &str, replicas: usize) {
            let start = Instant::now();
            loop {
                let pods = self
                    .json(&[
                        "get",
                        "pods",
                        "-n",
                        NAMESPACE,
                        "-l",
                        &format!("app.kubernetes.io/name={name}"),
                    ])
                    .await;
                let live = pods["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                    .count();
                if live == replicas {
                    return;
                }
                if start.elapsed() > Duration::from_secs(30) {
                    let events = self.kubectl(&["get", "events", "-n", NAMESPACE]).await;
                    panic!("{name} has {live} pods, not {replicas}; events:\n{events}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }

        pub async fn can_i(&self, who: &str, args: &[&str]) -> bool {
            let mut all = vec!["auth", "can-i"];
            all.extend(args);
            let who = format!("--as=system:serviceaccount:{NAMESPACE}:{who}");
            all.push(&who);
            let ran = self.run(false, &all).await;
            ran.stdout.trim() == "yes"
        }
    }

    pub fn chart_arg() -> String {
        chart().to_str().unwrap().to_owned()
    }

    pub fn values(name: &str) -> String {
        ci(name).to_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_installs_upgrades_keeping_its_secrets_and_uninstalls() {
    let started = std::time::Instant::now();
    let c = live::Cluster::start().await;
    let chart = live::chart_arg();
    let values = live::values("hub-values.yaml");
    let install = c.install("hub-values.yaml").await;
    // NOTES say how to sign in, and print no secret.
    assert!(
        install
            .stdout
            .contains("kubectl -n modelfleet-system get secret modelfleet-api-admin"),
        "{}",
        install.stdout
    );
    assert!(
        install.stdout.contains("port-forward svc/modelfleet-api"),
        "{}",
        install.stdout
    );
    let password = c.secret("modelfleet-api-admin", "password").await;
    assert_eq!(password.len(), 24);
    let key = c.secret("modelfleet-api-secret-key", "key").await;
    assert_eq!(base64_decode(&key).len(), 32);
    for secret in [password.as_str(), key.as_str(), "change-me"] {
        assert!(
            !install.stdout.contains(secret),
            "helm install printed a secret"
        );
    }

    // The CRD from crds/, both Deployments, their pods admitted as restricted.
    c.kubectl(&["get", "crd", "modeldeployments.modelfleet.io"])
        .await;
    let hub = c
        .json(&["get", "deployment", "modelfleet-api", "-n", NAMESPACE])
        .await;
    assert_eq!(hub["spec"]["replicas"], 2);
    c.pods_of("modelfleet-api", 2).await;
    c.pods_of("modelfleet-operator", 2).await;
    for kind in [
        "service",
        "networkpolicy",
        "poddisruptionbudget",
        "configmap",
    ] {
        c.kubectl(&["get", kind, "modelfleet-api", "-n", NAMESPACE])
            .await;
    }
    // The hub's pods may do nothing with the cluster's API; the operator
    // may write workloads nowhere until a tenant namespace binds it.
    assert!(
        !c.can_i("modelfleet-api", &["list", "secrets", "-n", NAMESPACE])
            .await
    );
    assert!(!c.can_i("modelfleet-api", &["list", "pods", "-A"]).await);
    assert!(
        c.can_i(
            "modelfleet-operator",
            &["watch", "modeldeployments.modelfleet.io", "-A"]
        )
        .await
    );
    assert!(
        !c.can_i(
            "modelfleet-operator",
            &["create", "deployments", "-n", "default"]
        )
        .await
    );
    assert!(
        !c.can_i("modelfleet-operator", &["get", "secrets", "-n", NAMESPACE])
            .await
    );
    assert!(
        c.can_i("modelfleet-operator", &["patch", "leases", "-n", NAMESPACE])
            .await
    );

    // An upgrade with more replicas keeps the generated secrets.
    c.helm(&[
        "upgrade",
        "modelfleet",
        &chart,
        "-n",
        NAMESPACE,
        "-f",
        &values,
        "--set",
        "hub.replicas=3",
    ])
    .await;
    let hub = c
        .json(&["get", "deployment", "modelfleet-api", "-n", NAMESPACE])
        .await;
    assert_eq!(hub["spec"]["replicas"], 3);
    c.pods_of("modelfleet-api", 3).await;
    assert_eq!(c.secret("modelfleet-api-secret-key", "key").await, key);
    assert_eq!(c.secret("modelfleet-api-admin", "password").await, password);
    let releases = c
        .json(&[
            "get",
            "secrets",
            "-n",
            NAMESPACE,
            "-l",
            "owner=helm,name=modelfleet",
        ])
        .await;
    assert_eq!(
        releases["items"].as_array().unwrap().len(),
        2,
        "two revisions"
    );

    // Uninstall removes everything but the secret key (resource-policy
    // keep) and the CRD (Helm never deletes crds/), release records included.
    let uninstall = c.helm(&["uninstall", "modelfleet", "-n", NAMESPACE]).await;
    assert!(
        uninstall.stdout.contains("uninstalled"),
        "{}",
        uninstall.stdout
    );
    for kind in [
        "deployments",
        "services",
        "configmaps",
        "networkpolicies",
        "poddisruptionbudgets",
        "roles",
        "rolebindings",
    ] {
        let left = c
            .json(&[
                "get",
                kind,
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/instance=modelfleet",
            ])
            .await;
        assert_eq!(
            left["items"],
            serde_json::json!([]),
            "{kind} left after uninstall"
        );
    }
    for (kind, name) in [
        ("clusterrole", "modelfleet-operator"),
        ("clusterrole", "modelfleet-operator-workloads"),
        ("clusterrolebinding", "modelfleet-operator"),
        ("secret", "modelfleet-api-admin"),
        ("secret", "modelfleet-api-database"),
        ("serviceaccount", "modelfleet-api"),
    ] {
        let err = c.kubectl_fails(&["get", kind, name, "-n", NAMESPACE]).await;
        assert!(err.contains("NotFound"), "{kind} {name}: {err}");
    }
    assert_eq!(c.secret("modelfleet-api-secret-key", "key").await, key);
    c.kubectl(&["get", "crd", "modeldeployments.modelfleet.io"])
        .await;
    let releases = c
        .json(&["get", "secrets", "-n", NAMESPACE, "-l", "owner=helm"])
        .await;
    assert_eq!(releases["items"], serde_json::json!([]));

    // Installed again on the same namespace, the hub finds its key.
    c.install("hub-values.yaml").await;
    assert_eq!(c.secret("modelfleet-api-secret-key", "key").await, key);
    eprintln!("hub install, upgrade, uninstall: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cluster_gets_the_operator_and_the_hubs_least_privileged_access() {
    let c = live::Cluster::start().await;
    // The CRD applied beforehand as manifests/README.md says: Helm applies
    // the same one again, sharing its fields rather than conflicting.
    let crd = repo().join("manifests/crds/modeldeployment.yaml");
    c.kubectl(&["apply", "--server-side", "-f", crd.to_str().unwrap()])
        .await;
    let install = c.install("member-values.yaml").await;
    assert!(
        install.stdout.contains("create token modelfleet-hub"),
        "{}",
        install.stdout
    );
    assert!(
        !install.stdout.contains("3f1c2b4a5d6e"),
        "NOTES printed the admission key"
    );
    c.pods_of("modelfleet-operator", 2).await;
    let err = c
        .kubectl_fails(&["get", "deployment", "modelfleet-api", "-n", NAMESPACE])
        .await;
    assert!(err.contains("NotFound"), "{err}");
    c.kubectl(&[
        "get",
        "validatingadmissionpolicy",
        "modelfleet-operator-binding-scope",
    ])
    .await;
    c.kubectl(&[
        "get",
        "validatingadmissionpolicybinding",
        "modelfleet-operator-binding-scope",
    ])
    .await;

    // The hub's identity here: tenants' namespaces and ModelDeployments,
    // the operator's binding, and nothing that runs code or reads secrets.
    let hub = "modelfleet-hub";
    assert!(
        c.can_i(
            hub,
            &["create", "modeldeployments.modelfleet.io", "-n", "team-a"]
        )
        .await
    );
    assert!(c.can_i(hub, &["create", "namespaces"]).await);
    assert!(
        !c.can_i(hub, &["create", "deployments", "-n", "team-a"])
            .await
    );
    assert!(!c.can_i(hub, &["create", "pods", "-n", "kube-system"]).await);
    assert!(!c.can_i(hub, &["get", "secrets", "-n", NAMESPACE]).await);
    assert!(!c.can_i(hub, &["bind", "clusterroles/cluster-admin"]).await);
    assert!(
        c.can_i(hub, &["bind", "clusterroles/modelfleet-operator-workloads"])
            .await
    );
    // Only the operator reads the admission key's Secret.
    assert!(
        !c.can_i(
            hub,
            &[
                "get",
                "secret/modelfleet-operator-admission-key",
                "-n",
                NAMESPACE
            ]
        )
        .await
    );
    assert_eq!(
        c.secret("modelfleet-operator-admission-key", "key").await,
        "3f1c2b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
    );

    c.helm(&["uninstall", "modelfleet", "-n", NAMESPACE]).await;
    for (kind, name) in [
        (
            "validatingadmissionpolicy",
            "modelfleet-operator-binding-scope",
        ),
        (
            "validatingadmissionpolicybinding",
            "modelfleet-operator-binding-scope",
        ),
        ("clusterrole", "modelfleet-hub"),
        ("serviceaccount", "modelfleet-hub"),
        ("deployment", "modelfleet-operator"),
        ("secret", "modelfleet-operator-admission-key"),
    ] {
        let err = c.kubectl_fails(&["get", kind, name, "-n", NAMESPACE]).await;
        assert!(err.contains("NotFound"), "{kind} {name}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_with_its_own_secrets_and_an_ingress_installs_as_the_example_stands() {
    let c = live::Cluster::start().await;
    // The Secrets the example names, made beforehand as a platform team
    // (or CloudNativePG, for the database) would.
    for (name, key, value) in [
        (
            "modelfleet-db-app",
            "uri",
            "postgres://app:pw@modelfleet-db-rw:5432/app",
        ),
        (
            "modelfleet-secret-key",
            "key",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        ),
        ("modelfleet-admin", "password", "a-password-of-ours"),
        (
            "modelfleet-admission-key",
            "key",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ),
    ] {
        c.kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            "-n",
            NAMESPACE,
            &format!("--from-literal={key}={value}"),
        ])
        .await;
    }
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "modelfleet-audit-s3",
        "-n",
        NAMESPACE,
        "--from-literal=accessKeyId=AKID",
        "--from-literal=secretAccessKey=SECRET",
    ])
    .await;
    let install = c.install("existing-secrets-ingress-values.yaml").await;
    assert!(
        install.stdout.contains("https://modelfleet.example.com/"),
        "{}",
        install.stdout
    );
    assert!(
        install.stdout.contains("get secret modelfleet-admin"),
        "{}",
        install.stdout
    );
    assert!(!install.stdout.contains("a-password-of-ours"));
    let ingress = c
        .json(&["get", "ingress", "modelfleet-api", "-n", NAMESPACE])
        .await;
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "modelfleet-tls");
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "modelfleet.example.com"
    );
    c.pods_of("modelfleet-api", 3).await;
    // The hub's own cluster can be registered too (memberAccess.enabled).
    c.kubectl(&["get", "clusterrole", "modelfleet-hub"]).await;
    let fleet = c
        .json(&["get", "configmap", "modelfleet-api-fleet", "-n", NAMESPACE])
        .await;
    assert!(
        fleet["data"]["fleet.yaml"]
            .as_str()
            .unwrap()
            .contains("p5-h100")
    );
    c.helm(&["uninstall", "modelfleet", "-n", NAMESPACE]).await;
    // The user's Secrets are theirs: uninstall leaves them.
    assert_eq!(
        c.secret("modelfleet-admin", "password").await,
        "a-password-of-ours"
    );
}
