//! Identity and RBAC as the real API server enforces them, seen through
//! the real kubectl and kube clients: anonymous and bad tokens, a
//! ServiceAccount bound in one namespace, `kubectl auth can-i` and
//! `whoami`, escalation prevention, and the bootstrap policy.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use modelfleet_sandbox::ApiServer;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::kubectl::{Kubectl, installed};

fn parse<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("the test's object parses")
}

async fn create<T>(client: &kube::Client, namespace: Option<&str>, value: Value)
where
    T: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    T: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<T> = Api::namespaced(client.clone(), namespace.unwrap_or("default"));
    api.create(&PostParams::default(), &parse(value))
        .await
        .expect("created");
}

async fn create_cluster<T>(client: &kube::Client, value: Value)
where
    T: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    T: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>,
{
    let api: Api<T> = Api::all(client.clone());
    api.create(&PostParams::default(), &parse(value))
        .await
        .expect("created");
}

fn api_error(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.message.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

fn web_deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
}

/// `team-a` with ServiceAccount `bot` bound to a Role that manages
/// Deployments there.
async fn team_a(client: &kube::Client) {
    create_cluster::<Namespace>(client, json!({"metadata": {"name": "team-a"}})).await;
    create::<ServiceAccount>(client, Some("team-a"), json!({"metadata": {"name": "bot"}})).await;
    create::<Role>(
        client,
        Some("team-a"),
        json!({"metadata": {"name": "deployer"}, "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"],
             "verbs": ["create", "get", "list", "watch", "patch", "update", "delete"]}]}),
    )
    .await;
    create::<RoleBinding>(
        client,
        Some("team-a"),
        json!({"metadata": {"name": "bot-deploys"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
               "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "team-a"}]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_reach_only_public_info_and_bad_tokens_are_401() {
    if !installed() {
        return;
    }
    let server = ApiServer::new();
    let serving = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // kubectl sends no credentials over plain HTTP (and would prompt for
    // some over HTTPS without any): its requests are anonymous.
    let anonymous = Kubectl::new(&modelfleet_sandbox::api::kubeconfig_yaml(
        serving.url(),
        "sandbox",
        "ignored-over-http",
    ));
    // Discovery is for authenticated users only, so kubectl cannot even
    // map `pods`; the raw request shows the server's message.
    let stderr = anonymous.fails(&["get", "pods"]).await;
    assert!(stderr.contains("Error from server (Forbidden)"), "{stderr}");
    let stderr = anonymous
        .fails(&["get", "--raw", "/api/v1/namespaces/default/pods"])
        .await;
    assert!(
        stderr.contains(
            "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{stderr}"
    );
    let version: Value =
        serde_json::from_str(&anonymous.ok(&["get", "--raw", "/version"]).await.stdout).unwrap();
    assert_eq!(version["major"], "1");
    let stderr = anonymous.fails(&["get", "--raw", "/apis"]).await;
    assert!(
        stderr.contains("forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/apis\\\"")
            || stderr.contains("forbidden: User \"system:anonymous\" cannot get path \"/apis\""),
        "{stderr}"
    );

    let bad = Kubectl::new(&serving.kubeconfig_yaml_with_token("sandbox", "not-a-token"));
    // Discovery reads the 401 without its body, as against a real server.
    let stderr = bad.fails(&["get", "pods"]).await;
    assert!(
        stderr.contains("error: You must be logged in to the server"),
        "{stderr}"
    );
    let stderr = bad.fails(&["auth", "whoami"]).await;
    assert!(
        stderr.contains("error: You must be logged in to the server (Unauthorized)"),
        "{stderr}"
    );

    // The real 401 body, over plain HTTP as well.
    let client = server.client_as("not-a-token");
    let error = Api::<Namespace>::all(client)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(api_error(error), (401, "Unauthorized".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_bound_in_one_namespace_is_refused_in_another() {
    if !installed() {
        return;
    }
    let server = ApiServer::new();
    let admin = server.client();
    team_a(&admin).await;
    let serving = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let token = server.service_account_token("team-a", "bot");
    let bot = Kubectl::new(&serving.kubeconfig_yaml_with_token("sandbox", &token));

    let web = bot.file("web.yaml", &web_deployment());
    let created = bot.ok(&["apply", "-f", &web, "-n", "team-a"]).await;
    assert!(
        created.stdout.contains("deployment.apps/web created"),
        "{}",
        created.stdout
    );
    let stderr = bot.fails(&["apply", "-f", &web, "-n", "kube-system"]).await;
    // kubectl apply first reads the object, then creates it.
    assert!(
        stderr.contains(
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:team-a:bot\" cannot get resource \
             \"deployments\" in API group \"apps\" in the namespace \"kube-system\""
        ),
        "{stderr}"
    );
    let deployments: Api<Deployment> = Api::namespaced(server.client_as(&token), "kube-system");
    let error = deployments
        .create(&PostParams::default(), &parse(web_deployment()))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(error),
        (
            403,
            "deployments.apps is forbidden: User \"system:serviceaccount:team-a:bot\" cannot create resource \
             \"deployments\" in API group \"apps\" in the namespace \"kube-system\""
                .to_owned()
        )
    );

    // The exact Status a kube client gets for a named object.
    let client = server.client_as(&token);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    let error = deployments
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_error(error),
        (
            403,
            "deployments.apps \"x\" is forbidden: User \"system:serviceaccount:team-a:bot\" cannot patch \
             resource \"deployments\" in API group \"apps\" in the namespace \"kube-system\""
                .to_owned()
        )
    );
    let scale = deployments
        .patch_scale(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap_err();
    assert!(
        api_error(scale)
            .1
            .contains("cannot patch resource \"deployments/scale\"")
    );

    let no = bot
        .run(&[
            "auth",
            "can-i",
            "create",
            "deployments",
            "-n",
            "kube-system",
        ])
        .await;
    assert_eq!(no.stdout.trim(), "no", "{}", no.stderr);
    let yes = bot
        .ok(&["auth", "can-i", "create", "deployments", "-n", "team-a"])
        .await;
    assert_eq!(yes.stdout.trim(), "yes");
    let list = bot
        .ok(&["auth", "can-i", "--list", "-n", "team-a"])
        .await
        .stdout;
    let row = list
        .lines()
        .find(|l| l.starts_with("deployments.apps "))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.contains("[create get list watch patch update delete]"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("[/api/*]") && l.contains("[get]")),
        "{list}"
    );

    let whoami = bot.ok(&["auth", "whoami"]).await.stdout;
    assert!(
        whoami.contains("system:serviceaccount:team-a:bot"),
        "{whoami}"
    );
    assert!(whoami.contains("system:serviceaccounts:team-a"), "{whoami}");

    // Deleting the ServiceAccount ends its token.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "team-a");
    accounts
        .delete("bot", &DeleteParams::default())
        .await
        .unwrap();
    let stderr = bot.fails(&["auth", "whoami"]).await;
    assert!(
        stderr.contains("error: You must be logged in to the server (Unauthorized)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn roles_and_bindings_grant_only_what_their_writer_holds() {
    let server = ApiServer::new();
    let admin = server.client();
    create_cluster::<Namespace>(&admin, json!({"metadata": {"name": "team-a"}})).await;
    for (name, rules) in [
        (
            "role-manager",
            json!([
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
             "verbs": ["create", "get", "list", "update", "patch", "delete"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
             "verbs": ["bind"], "resourceNames": ["pod-reader"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]),
        ),
        (
            "pod-reader",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
        ),
        (
            "secret-reader",
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
        ),
    ] {
        create_cluster::<ClusterRole>(&admin, json!({"metadata": {"name": name}, "rules": rules}))
            .await;
    }
    create::<RoleBinding>(
        &admin,
        Some("team-a"),
        json!({"metadata": {"name": "alice-manages-roles"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "role-manager"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}),
    )
    .await;
    let alice = server.client_as(&server.issue_token("alice", &[]));
    let roles: Api<Role> = Api::namespaced(alice.clone(), "team-a");
    let error = roles
        .create(
            &PostParams::default(),
            &parse(json!({"metadata": {"name": "secrets"}, "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_error(error),
        (
            403,
            "roles.rbac.authorization.k8s.io \"secrets\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) \
             is attempting to grant RBAC permissions not currently held:\n\
             {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}"
                .to_owned()
        )
    );
    // What she holds she may hand on.
    roles
        .create(
            &PostParams::default(),
            &parse(json!({"metadata": {"name": "configs"}, "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})),
        )
        .await
        .expect("a role within her own permissions");

    let bindings: Api<RoleBinding> = Api::namespaced(alice, "team-a");
    let binding = |name: &str, role: &str| -> RoleBinding {
        parse(json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]}))
    };
    bindings
        .create(
            &PostParams::default(),
            &binding("bob-reads-pods", "pod-reader"),
        )
        .await
        .expect("she may bind pod-reader");
    let error = bindings
        .create(
            &PostParams::default(),
            &binding("bob-reads-secrets", "secret-reader"),
        )
        .await
        .unwrap_err();
    let (code, message) = api_error(error);
    assert_eq!(code, 403);
    assert!(
        message.starts_with(
            "rolebindings.rbac.authorization.k8s.io \"bob-reads-secrets\" is forbidden: user \"alice\" \
             (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn the_bootstrap_policy_is_there_and_reviews_answer_for_the_caller() {
    let server = ApiServer::new();
    let admin = server.client();
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
    ] {
        let role = roles
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let labels = role.metadata.labels.unwrap_or_default();
        assert_eq!(labels["kubernetes.io/bootstrapping"], "rbac-defaults");
    }
    let view = roles.get("view").await.unwrap();
    assert!(
        !serde_json::to_string(&view.rules)
            .unwrap()
            .contains("secrets")
    );

    let review = |client: kube::Client, attrs: Value| async move {
        let request = http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
            .header("Content-Type", "application/json")
            .body(
                serde_json::to_vec(&json!({"apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview", "spec": attrs}))
                .unwrap(),
            )
            .unwrap();
        client.request::<Value>(request).await.unwrap()
    };
    let answer = review(
        admin.clone(),
        json!({"resourceAttributes": {"verb": "delete", "resource": "nodes"}}),
    )
    .await;
    assert_eq!(answer["status"]["allowed"], true);
    let carol = server.client_as(&server.issue_token("carol", &["viewers"]));
    let answer = review(
        carol.clone(),
        json!({"nonResourceAttributes": {"verb": "get", "path": "/apis/apps"}}),
    )
    .await;
    assert_eq!(answer["status"]["allowed"], true);
    assert_eq!(
        answer["status"]["reason"],
        "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\""
    );
    let answer = review(
        carol,
        json!({"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "default"}}),
    )
    .await;
    assert_eq!(answer["status"]["allowed"], false);
}

#[tokio::test]
async fn server_side_apply_that_would_create_needs_create() {
    let server = ApiServer::new();
    let admin = server.client();
    create_cluster::<ClusterRole>(
        &admin,
        json!({"metadata": {"name": "configmap-patcher"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]}]}),
    )
    .await;
    create::<RoleBinding>(
        &admin,
        Some("default"),
        json!({"metadata": {"name": "dave-patches"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "configmap-patcher"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}]}),
    )
    .await;
    create::<ConfigMap>(
        &admin,
        Some("default"),
        json!({"metadata": {"name": "existing"}, "data": {"a": "1"}}),
    )
    .await;
    let dave = server.client_as(&server.issue_token("dave", &[]));
    let configmaps: Api<ConfigMap> = Api::namespaced(dave, "default");
    let apply = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "2"}});
    let params = PatchParams::apply("dave").force();
    configmaps
        .patch("existing", &params, &Patch::Apply(apply("existing")))
        .await
        .expect("patch is enough for an existing object");
    let error = configmaps
        .patch("new", &params, &Patch::Apply(apply("new")))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(error),
        (
            403,
            "configmaps \"new\" is forbidden: User \"dave\" cannot create resource \"configmaps\" in API group \"\" \
             in the namespace \"default\""
                .to_owned()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_needs_the_impersonate_verb() {
    if !installed() {
        return;
    }
    let server = ApiServer::new();
    let admin = server.client();
    team_a(&admin).await;
    let serving = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let k = Kubectl::new(&serving.kubeconfig_yaml("sandbox"));
    // kubectl's create generators send these in protobuf.
    let created = k
        .ok(&[
            "create",
            "rolebinding",
            "frank-views",
            "--clusterrole=view",
            "--user=frank",
            "-n",
            "team-a",
        ])
        .await;
    assert!(
        created
            .stdout
            .contains("rolebinding.rbac.authorization.k8s.io/frank-views created")
    );
    k.ok(&["create", "serviceaccount", "robot", "-n", "team-a"])
        .await;
    k.ok(&[
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=pods",
        "-n",
        "team-a",
    ])
    .await;
    let frank = k
        .run(&[
            "auth",
            "can-i",
            "list",
            "pods",
            "-n",
            "team-a",
            "--as=frank",
        ])
        .await;
    assert_eq!(frank.stdout.trim(), "yes", "{}", frank.stderr);
    let bot = "--as=system:serviceaccount:team-a:bot";
    let yes = k
        .ok(&[
            "auth",
            "can-i",
            "create",
            "deployments",
            "-n",
            "team-a",
            bot,
        ])
        .await;
    assert_eq!(yes.stdout.trim(), "yes");
    let no = k
        .run(&[
            "auth",
            "can-i",
            "create",
            "deployments",
            "-n",
            "kube-system",
            bot,
        ])
        .await;
    assert_eq!(no.stdout.trim(), "no", "{}", no.stderr);
    let whoami = k.ok(&["auth", "whoami", bot]).await.stdout;
    assert!(whoami.contains("system:serviceaccounts:team-a"), "{whoami}");

    let erin = Kubectl::new(
        &serving.kubeconfig_yaml_with_token("sandbox", &server.issue_token("erin", &[])),
    );
    let stderr = erin
        .fails(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "--as=bob",
        ])
        .await;
    assert!(
        stderr.contains(
            "users \"bob\" is forbidden: User \"erin\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{stderr}"
    );
}
