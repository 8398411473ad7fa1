//! Issue 17, findings 5 and 6, on a sandbox cluster that enforces RBAC and
//! Pod Security as a real API server does, with the real operator and hub
//! acting as the ServiceAccounts `manifests/` gives them, and the real
//! `kubectl`:
//!
//! - a deployment made through the API runs with those least-privilege
//!   identities alone;
//! - its tenant namespace carries the Pod Security labels (a hostPath pod
//!   is refused there), the operator's RoleBinding, the default-deny
//!   NetworkPolicy and the engines' API key Secret, and the engine pod
//!   takes its key from that Secret, mounts no token and is hardened;
//! - the operator's ServiceAccount may write workloads in the tenant
//!   namespace and gets 403 in `kube-system` (`kubectl auth can-i` says
//!   so too); on main it could write anywhere;
//! - a hub registered with a kubeconfig that can do more than
//!   `manifests/hub-member/` says so on the cluster and fails the
//!   compliance report's least-privilege item; with the hub's own
//!   ServiceAccount it lists nothing.

mod support;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, PostParams};
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::contract::tenancy;
use modelfleet_core::fleet::Cloud;
use serde_json::json;
use support::{Hub, eventually, kubectl, l40s_hub, roomy};

const NS: &str = "mf-acme";

/// The engine pods of deployment `name`, once one is running.
async fn running_pods(hub: &Hub, name: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(hub.kube.clone(), NS);
    eventually(&format!("a pod of {name} runs"), || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("modelfleet.io/deployment={name}")))
            .await
            .unwrap();
        let running = list
            .items
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
        running.then_some(list.items)
    })
    .await
}

fn a_deployment(namespace: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "miner", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "miner"}},
            "template": {
                "metadata": {"labels": {"app": "miner"}},
                "spec": {"containers": [{"name": "c", "image": "evil/miner"}]}
            }
        }
    }))
    .unwrap()
}

async fn a_tenant_namespace_is_fenced_and_the_operator_writes_only_there(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    let reply = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "llama", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(reply.status, 202, "{:#}", reply.body);
    // The hub and the operator did all of it with manifests/' rights.
    let pods = running_pods(&hub, "llama").await;

    let ns = Api::<Namespace>::all(hub.kube.clone())
        .get(NS)
        .await
        .unwrap();
    let labels = ns.metadata.labels.unwrap();
    for (key, value) in tenancy::pod_security_labels() {
        assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert_eq!(labels["modelfleet.io/tenant"], "acme");

    let binding = Api::<RoleBinding>::namespaced(hub.kube.clone(), NS)
        .get(tenancy::OPERATOR_BINDING)
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, tenancy::OPERATOR_WORKLOADS_ROLE);

    let policy = Api::<NetworkPolicy>::namespaced(hub.kube.clone(), NS)
        .get(tenancy::NETWORK_POLICY)
        .await
        .expect("the operator wrote the namespace's NetworkPolicy");
    assert_eq!(policy.spec, tenancy::network_policy(NS).spec);

    let secret = Api::<Secret>::namespaced(hub.kube.clone(), NS)
        .get(tenancy::ENGINE_API_KEY_SECRET)
        .await
        .expect("the operator wrote the engines' API key");
    let expected = hub
        .state
        .registry()
        .admission_key("aws-a")
        .unwrap()
        .engine_api_key(NS);
    assert_eq!(
        secret.data.unwrap()[tenancy::ENGINE_API_KEY_FIELD],
        ByteString(expected.into_bytes())
    );
    // The engine pod as the cluster runs it: no token, hardened.
    let spec = pods[0].spec.as_ref().unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
    let engine = &spec.containers[0];
    let hardened = engine.security_context.as_ref().unwrap();
    assert_eq!(hardened.allow_privilege_escalation, Some(false));
    assert_eq!(
        hardened.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    let var = engine
        .env
        .iter()
        .flatten()
        .find(|e| e.name == tenancy::ENGINE_API_KEY_ENV)
        .expect("the engine requires the key");
    assert_eq!(var.value, None);
    assert_eq!(
        var.value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        tenancy::ENGINE_API_KEY_SECRET
    );

    // Pod Security baseline: a pod mounting the host is refused, whoever
    // (here the cluster's admin) creates it.
    let host: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "peek", "namespace": NS},
        "spec": {
            "containers": [{"name": "c", "image": "busybox",
                            "volumeMounts": [{"name": "root", "mountPath": "/host"}]}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]
        }
    }))
    .unwrap();
    let refused = Api::<Pod>::namespaced(hub.kube.clone(), NS)
        .create(&PostParams::default(), &host)
        .await
        .expect_err("a hostPath pod is refused in a tenant namespace");
    let kube::Error::Api(status) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains(
            r#"violates PodSecurity "baseline:latest": hostPath volumes (volume "root")"#
        ),
        "{}",
        status.message
    );

    // The operator's identity: workloads in the tenant namespace, 403 in
    // kube-system.
    let server = &hub.sandboxes[0].server;
    let (sa_ns, sa_name) = tenancy::OPERATOR_SERVICE_ACCOUNT;
    let token = server.service_account_token(sa_ns, sa_name);
    let as_operator = server.client_as(&token);
    let denied = Api::<Deployment>::namespaced(as_operator.clone(), "kube-system")
        .create(&PostParams::default(), &a_deployment("kube-system"))
        .await
        .expect_err("the operator cannot write in kube-system");
    let kube::Error::Api(status) = denied else {
        panic!("{denied:?}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        format!(
            "deployments.apps is forbidden: User \"system:serviceaccount:{sa_ns}:{sa_name}\" \
             cannot create resource \"deployments\" in API group \"apps\" in the namespace \"kube-system\""
        )
    );
    // ... and kubectl, with the operator's token, tells the same.
    let serving = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("operator.kubeconfig");
    std::fs::write(
        &kubeconfig,
        serving.kubeconfig_yaml_with_token("aws-a", &token),
    )
    .unwrap();
    let (_, answer) = kubectl(
        &kubeconfig,
        &[
            "auth",
            "can-i",
            "create",
            "deployments.apps",
            "-n",
            "kube-system",
        ],
    );
    assert_eq!(answer.trim(), "no");
    let (ok, answer) = kubectl(
        &kubeconfig,
        &["auth", "can-i", "create", "deployments.apps", "-n", NS],
    );
    assert!(ok, "{answer}");
    assert_eq!(answer.trim(), "yes");
    let (_, answer) = kubectl(&kubeconfig, &["auth", "can-i", "get", "secrets", "-n", NS]);
    assert_eq!(answer.trim(), "no", "only its own Secret, by name");

    // The hub's kubeconfig has exactly what it needs.
    let clusters = hub.get("/api/v1/clusters", &hub.admin).await;
    let cluster = &clusters.body["items"][0];
    assert_eq!(cluster["excessRights"], json!([]), "{cluster:#}");
    assert!(cluster.get("rightsUnknown").is_none(), "{cluster:#}");
    let item = least_privilege_item(&hub).await;
    assert!(
        item["evidence"].as_array().unwrap().iter().any(|e| e
            == "cluster aws-a: the hub's kubeconfig has exactly the rights of manifests/hub-member/"),
        "{item:#}"
    );
}

/// The compliance report's least-privilege item.
async fn least_privilege_item(hub: &Hub) -> serde_json::Value {
    let report = hub.get("/api/v1/compliance/mlps-l3", &hub.admin).await;
    assert_eq!(report.status, 200, "{:#}", report.body);
    report.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "L3-CES1-05..10")
        .unwrap()
        .clone()
}

async fn a_kubeconfig_with_more_rights_than_the_hub_needs_is_flagged(db: TestDb) {
    let hub = l40s_hub(db).await;
    // Registered as the cluster's administrator instead.
    hub.state
        .registry()
        .attach("aws-a", Cloud::Aws, "us-east-1", hub.kube.clone());
    let clusters = hub.get("/api/v1/clusters", &hub.admin).await;
    let cluster = &clusters.body["items"][0];
    assert_eq!(cluster["excessRights"], json!(["* *.*"]), "{cluster:#}");

    let item = least_privilege_item(&hub).await;
    assert!(
        item["evidence"].as_array().unwrap().iter().any(|e| {
            let e = e.as_str().unwrap();
            e.starts_with("cluster aws-a: the hub's kubeconfig can do more") && e.contains("* *.*")
        }),
        "{item:#}"
    );
}

modelfleet_api::store_tests!(
    a_tenant_namespace_is_fenced_and_the_operator_writes_only_there,
    a_kubeconfig_with_more_rights_than_the_hub_needs_is_flagged,
);
