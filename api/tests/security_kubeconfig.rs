//! Issue 16, finding 2: registering a cluster must not run code or read
//! files on the hub. A kubeconfig's `exec` and `auth-provider` commands
//! would run with the hub's environment (its secret key, object-store
//! credentials, database URL); `tokenFile`, `client-key` and
//! `certificate-authority` would read any local file and send it to the
//! kubeconfig's server. Each is refused with a 422 naming the field, and
//! nothing is stored; a stored kubeconfig that no longer passes is not used
//! when the hub starts, and the cluster says why.

mod support;

use axum::http::StatusCode;
use modelfleet_api::Secret;
use modelfleet_api::clusters::KubeconfigPolicy;
use modelfleet_api::identity::Actor;
use modelfleet_api::store::NewCluster;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::fleet::Cloud;
use serde_json::json;
use support::Hub;

fn kubeconfig(cluster: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         contexts:\n- name: c\n  context: {{cluster: k, user: u}}\n\
         clusters:\n- name: k\n  cluster:\n{cluster}\n\
         users:\n- name: u\n  user:\n{user}\n"
    )
}

/// A server that answers nothing: on a hub without the rule, the client
/// runs the exec command before it ever reaches the server.
const SERVER: &str = "    server: http://127.0.0.1:9";

async fn a_kubeconfig_cannot_make_the_hub_run_a_command_or_read_a_file(db: TestDb) {
    let hub = Hub::start(db).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let secret_file = dir.path().join("hub-secret");
    std::fs::write(&secret_file, "the hub's secret").unwrap();
    let command = format!("touch {}", marker.display());
    let cases = [
        (
            kubeconfig(
                SERVER,
                &format!(
                    "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      \
                     command: sh\n      args: ['-c', '{command}']\n      interactiveMode: Never"
                ),
            ),
            "kubeconfig.users[0].user.exec",
        ),
        (
            kubeconfig(
                SERVER,
                &format!(
                    "    auth-provider:\n      name: oidc\n      config: {{cmd-path: sh, cmd-args: '-c {command}'}}"
                ),
            ),
            "kubeconfig.users[0].user.auth-provider",
        ),
        (
            kubeconfig(SERVER, &format!("    tokenFile: {}", secret_file.display())),
            "kubeconfig.users[0].user.tokenFile",
        ),
        (
            kubeconfig(
                SERVER,
                &format!(
                    "    client-certificate: {0}\n    client-key: {0}",
                    secret_file.display()
                ),
            ),
            "kubeconfig.users[0].user.client-certificate",
        ),
        (
            kubeconfig(
                &format!(
                    "{SERVER}\n    certificate-authority: {}",
                    secret_file.display()
                ),
                "    token: abc",
            ),
            "kubeconfig.clusters[0].cluster.certificate-authority",
        ),
        (
            kubeconfig(
                "    server: https://127.0.0.1:9\n    proxy-url: http://127.0.0.1:9",
                "    token: abc",
            ),
            "kubeconfig.clusters[0].cluster.proxy-url",
        ),
        (
            kubeconfig("    server: http://127.0.0.1:9", "    token: abc"),
            "kubeconfig.clusters[0].cluster.server",
        ),
    ];
    for (i, (config, field)) in cases.iter().enumerate() {
        let reply = hub
            .post(
                "/api/v1/clusters",
                &hub.admin,
                json!({"name": format!("evil{i}"), "cloud": "aws", "region": "us-east-1", "kubeconfig": config}),
            )
            .await;
        assert!(
            !marker.exists(),
            "a kubeconfig command ran on the hub ({field}): {:#}",
            reply.body
        );
        let detail = reply.problem(422);
        assert_eq!(reply.body["field"], *field, "{detail}");
        assert!(!detail.contains("the hub's secret"), "{detail}");
    }
    let list = hub.get("/api/v1/clusters", &hub.admin).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("evil")),
        "a refused cluster was stored: {names:?}"
    );
}

async fn a_stored_kubeconfig_that_no_longer_passes_is_not_used(db: TestDb) {
    let hub = Hub::start(db).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    // Stored before the rule existed (written past the API, as an older
    // hub would have).
    let config = kubeconfig(
        SERVER,
        &format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      \
             command: touch\n      args: ['{}']\n      interactiveMode: Never",
            marker.display()
        ),
    );
    let mut tx = hub.store.begin(&Actor::system("test")).await.unwrap();
    tx.register_cluster(
        NewCluster {
            name: "legacy".into(),
            cloud: Cloud::Aws,
            region: "us-east-1".into(),
            kubeconfig: Some(Secret::new(config)),
        },
        hub.state.keyring(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let failed = hub
        .state
        .registry()
        .load(&hub.store, hub.state.keyring(), KubeconfigPolicy::default())
        .await
        .unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "legacy");

    let list = hub.get("/api/v1/clusters", &hub.admin).await;
    let legacy = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "legacy")
        .expect("the cluster stays registered")
        .clone();
    assert_eq!(legacy["reachable"], false, "{legacy:#}");
    let why = legacy["error"].as_str().unwrap();
    assert!(
        why.contains("users[0].user.exec"),
        "the cluster says why it is not used: {why}"
    );
    assert!(
        !marker.exists(),
        "a stored kubeconfig's command ran on the hub"
    );
}

modelfleet_api::store_tests!(
    a_kubeconfig_cannot_make_the_hub_run_a_command_or_read_a_file,
    a_stored_kubeconfig_that_no_longer_passes_is_not_used
);
