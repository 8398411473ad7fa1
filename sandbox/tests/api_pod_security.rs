//! Pod Security admission and NetworkPolicy storage through the real
//! kubectl: an enforcing namespace refuses a hostPath pod with the real
//! message, a warning namespace makes kubectl print the warning, and a
//! NetworkPolicy round-trips.

mod support;

use modelfleet_sandbox::ApiServer;
use serde_json::{Value, json};
use support::kubectl::{Kubectl, installed};

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod(name: &str, namespace: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_pod_security_refusals_and_warnings() {
    if !installed() {
        return;
    }
    let server = ApiServer::new();
    let serving = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let k = Kubectl::new(&serving.kubeconfig_yaml("sandbox"));
    let enforcing = k.file(
        "enforcing.yaml",
        &namespace(
            "npu",
            json!({"pod-security.kubernetes.io/enforce": "baseline"}),
        ),
    );
    let warning = k.file(
        "warning.yaml",
        &namespace(
            "apps",
            json!({"pod-security.kubernetes.io/warn": "restricted"}),
        ),
    );
    k.ok(&["apply", "-f", &enforcing]).await;
    k.ok(&["apply", "-f", &warning]).await;

    let driver = k.file(
        "driver.yaml",
        &pod(
            "npu-probe",
            "npu",
            json!({"containers": [{"name": "probe", "image": "busybox:1.36",
                       "volumeMounts": [{"name": "ascend-driver", "mountPath": "/usr/local/Ascend"}]}],
                   "volumes": [{"name": "ascend-driver", "hostPath": {"path": "/usr/local/Ascend/driver"}}]}),
        ),
    );
    let stderr = k.fails(&["apply", "-f", &driver]).await;
    assert!(
        stderr.contains(
            "pods \"npu-probe\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"ascend-driver\")"
        ),
        "{stderr}"
    );
    let listed = k.ok(&["get", "pods", "-n", "npu", "-o", "name"]).await;
    assert!(listed.stdout.trim().is_empty(), "{}", listed.stdout);

    let app = k.file(
        "app.yaml",
        &pod(
            "app",
            "apps",
            json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
        ),
    );
    let run = k.ok(&["apply", "-f", &app]).await;
    assert!(run.stdout.contains("pod/app created"), "{}", run.stdout);
    assert!(
        run.stderr.contains(
            "Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false \
             (container \"app\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities \
             (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true \
             (pod or container \"app\" must set securityContext.runAsNonRoot=true), seccompProfile \
             (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        ),
        "{}",
        run.stderr
    );

    // A Deployment's template gets the warning too (it is not enforced:
    // its pods are).
    let deployment = k.file(
        "deployment.yaml",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"hostNetwork": true, "containers": [{"name": "web", "image": "nginx:1.27"}]}}}}),
    );
    let run = k.ok(&["apply", "-f", &deployment]).await;
    assert!(
        run.stderr.contains(
            "Warning: would violate PodSecurity \"restricted:latest\": host namespaces (hostNetwork=true), \
             allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false)"
        ),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_and_reads_back_a_network_policy() {
    if !installed() {
        return;
    }
    let server = ApiServer::new();
    let serving = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let k = Kubectl::new(&serving.kubeconfig_yaml("sandbox"));
    let spec = json!({
        "podSelector": {"matchLabels": {"app": "vllm"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}],
                     "ports": [{"protocol": "TCP", "port": 8000}]}]
    });
    let policy = k.file(
        "netpol.yaml",
        &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "vllm-ingress", "namespace": "default"}, "spec": spec}),
    );
    let run = k.ok(&["apply", "-f", &policy]).await;
    assert!(
        run.stdout
            .contains("networkpolicy.networking.k8s.io/vllm-ingress created"),
        "{}",
        run.stdout
    );
    let table = k.ok(&["get", "netpol", "-n", "default"]).await.stdout;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "POD-SELECTOR", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["vllm-ingress", "app=vllm"], "{table}");
    let yaml: Value = serde_yaml::from_str(
        &k.ok(&["get", "netpol", "vllm-ingress", "-o", "yaml"])
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(yaml["kind"], "NetworkPolicy");
    assert_eq!(yaml["spec"], spec);
}
