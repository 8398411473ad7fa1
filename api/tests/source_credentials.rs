//! Source credentials the hub keeps for a tenant: sealed, listed without
//! their values, written by the hub as the Secret `modelfleet-source-<name>`
//! into the tenant's namespace of the cluster it places a deployment in
//! (before the ModelDeployment, which names it), written again when they
//! are replaced, and removed — never while a live deployment uses them —
//! from every namespace they were written to. Each test runs on SQLite
//! and, when `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use axum::http::{Method, StatusCode};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::contract::admission::{ANNOTATION, MESSAGE_ANNOTATION};
use modelfleet_core::crd::{ModelDeployment, Phase};
use serde_json::{Value, json};
use support::{Hub, eventually, l40s_hub};

const ACCESS_KEY: &str = "AKIAHUBKEPT0000ABCD";
const SECRET_KEY: &str = "hub-kept/secret+access-key-0001";
const ROTATED_SECRET: &str = "hub-kept/secret+access-key-0002";

fn pair(access: &str, secret: &str) -> Value {
    json!({"keys": {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}})
}

async fn put(hub: &Hub, tenant: &str, name: &str, key: &str, body: Value) -> support::Reply {
    hub.call(
        Method::PUT,
        &format!("/api/v1/tenants/{tenant}/source-credentials/{name}"),
        Some(key),
        Some(body),
    )
    .await
}

async fn delete(hub: &Hub, tenant: &str, name: &str, key: &str) -> support::Reply {
    hub.call(
        Method::DELETE,
        &format!("/api/v1/tenants/{tenant}/source-credentials/{name}"),
        Some(key),
        None,
    )
    .await
}

async fn listed(hub: &Hub, tenant: &str, key: &str) -> support::Reply {
    hub.get(&format!("/api/v1/tenants/{tenant}/source-credentials"), key)
        .await
}

/// The Secret's keys and values in the tenant's namespace, as the cluster
/// holds them.
async fn secret_in_cluster(hub: &Hub, name: &str) -> Option<Vec<(String, String)>> {
    let secrets: Api<Secret> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let secret = secrets.get_opt(name).await.unwrap()?;
    Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect(),
    )
}

fn no_secret_in(text: &str) {
    for secret in [SECRET_KEY, ROTATED_SECRET, ACCESS_KEY] {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

async fn a_kept_credential_reaches_the_cluster_only_where_its_tenant_deploys(db: TestDb) {
    let hub = l40s_hub(db).await;
    let sync = hub.sync_only();
    let (acme, key) = hub.tenant("acme", support::roomy()).await;
    let (other, other_key) = hub.tenant("other", support::roomy()).await;

    // Added by the tenant's admin, shown without its values.
    let added = put(&hub, &acme, "store", &key, pair(ACCESS_KEY, SECRET_KEY)).await;
    assert_eq!(added.status, StatusCode::CREATED, "{:#}", added.body);
    no_secret_in(&added.body.to_string());
    assert_eq!(added.body["created"], true);
    assert_eq!(
        added.body["credential"]["keys"],
        json!([
            {"name": "AWS_ACCESS_KEY_ID", "last4": "…ABCD"},
            {"name": "AWS_SECRET_ACCESS_KEY", "last4": null},
        ])
    );
    assert_eq!(
        added.body["credential"]["secret"],
        "modelfleet-source-store"
    );
    let list = listed(&hub, &acme, &key).await;
    assert_eq!(list.status, StatusCode::OK, "{:#}", list.body);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    no_secret_in(&list.body.to_string());

    // An outsider, with no token or a made-up one, gets 401 everywhere.
    let path = format!("/api/v1/tenants/{acme}/source-credentials");
    for token in [None, Some("mf_not_a_real_key_0000000000000000")] {
        for (method, at, body) in [
            (Method::GET, path.clone(), None),
            (
                Method::PUT,
                format!("{path}/store"),
                Some(pair(ACCESS_KEY, SECRET_KEY)),
            ),
            (Method::DELETE, format!("{path}/store"), None),
        ] {
            let reply = hub.call(method.clone(), &at, token, body).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {at}");
            no_secret_in(&reply.body.to_string());
        }
    }

    // Another tenant can neither see nor write it; a developer cannot
    // write it.
    assert_eq!(
        listed(&hub, &acme, &other_key).await.status,
        StatusCode::NOT_FOUND
    );
    let theirs = put(
        &hub,
        &acme,
        "store",
        &other_key,
        pair(ACCESS_KEY, "x".repeat(20).as_str()),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{:#}", theirs.body);
    let dev = hub
        .post(
            "/api/v1/api-keys",
            &key,
            json!({"name": "dev", "role": "developer", "tenant": acme}),
        )
        .await;
    let dev = dev.body["token"].as_str().unwrap().to_owned();
    let refused = put(&hub, &acme, "mine", &dev, pair(ACCESS_KEY, SECRET_KEY)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:#}", refused.body);
    assert_eq!(
        listed(&hub, &acme, &dev).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "a developer sees which credentials there are"
    );

    // Bad input is refused, changes nothing, and never echoes a value.
    for (name, body, says) in [
        ("Store", pair(ACCESS_KEY, SECRET_KEY), "lower-case"),
        (
            "store",
            json!({"keys": {"PATH": "/usr/local/bin"}}),
            "not a key",
        ),
        (
            "store",
            json!({"keys": {"AWS_ACCESS_KEY_ID": ACCESS_KEY}}),
            "together",
        ),
        (
            "store",
            json!({"keys": {"HF_TOKEN": 1234567890123_u64}}),
            "must be a string",
        ),
        (
            "store",
            json!({"keys": {"HF_TOKEN": "hf_with a space"}}),
            "spaces",
        ),
        ("store", json!({"keys": {}}), "at least one"),
    ] {
        let reply = put(&hub, &acme, name, &key, body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {:#}",
            reply.body
        );
        let text = reply.body.to_string();
        assert!(text.contains(says), "{says}: {text}");
        assert!(!text.contains("1234567890123"), "{text}");
        no_secret_in(&text);
    }
    let unchanged = listed(&hub, &acme, &key).await;
    assert_eq!(
        unchanged.body["items"][0]["keys"],
        added.body["credential"]["keys"]
    );

    // A deployment naming a credential the tenant does not keep is refused
    // and holds nothing; so is one naming both kinds of secret.
    for (body, says) in [
        (
            json!({"name": "chat", "model": "llama-3.1-8b", "source": "s3://models/llama-3.1-8b",
                   "sourceCredential": "nope"}),
            "no source credential named \"nope\"",
        ),
        (
            json!({"name": "chat", "model": "llama-3.1-8b", "source": "s3://models/llama-3.1-8b",
                   "sourceCredential": "store", "sourceSecret": "mine"}),
            "not both",
        ),
        (
            json!({"name": "chat", "model": "llama-3.1-8b", "source": "s3://models/llama-3.1-8b",
                   "sourceCredential": "../x"}),
            "lower-case",
        ),
    ] {
        let reply = hub.post("/api/v1/deployments", &key, body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:#}",
            reply.body
        );
        assert!(
            reply.body["detail"].as_str().unwrap().contains(says),
            "{says}: {:#}",
            reply.body
        );
    }
    let none = hub.get("/api/v1/deployments", &key).await;
    assert_eq!(
        none.body["items"].as_array().unwrap().len(),
        0,
        "{:#}",
        none.body
    );
    // Another tenant cannot fetch with acme's credential.
    let borrowed = hub
        .post(
            "/api/v1/deployments",
            &other_key,
            json!({"name": "chat", "model": "llama-3.1-8b",
                   "source": "s3://models/llama-3.1-8b", "sourceCredential": "store"}),
        )
        .await;
    assert_eq!(
        borrowed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:#}",
        borrowed.body
    );
    let other_secrets: Api<Secret> = Api::namespaced(hub.kube.clone(), "mf-other");
    assert!(
        other_secrets
            .get_opt("modelfleet-source-store")
            .await
            .unwrap()
            .is_none()
    );
    let _ = other;

    // Deployed with it: the Secret is in the tenant's namespace with the
    // credential's keys, the ModelDeployment names it, and only the
    // container fetching the weights reads it.
    let deployed = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "chat", "model": "llama-3.1-8b",
                   "source": "s3://models/llama-3.1-8b", "sourceCredential": "store"}),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{:#}", deployed.body);
    let id = deployed.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        secret_in_cluster(&hub, "modelfleet-source-store").await,
        Some(vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), SECRET_KEY.to_owned()),
        ])
    );
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let md = mds.get("chat").await.unwrap();
    assert_eq!(
        md.spec.source_secret.as_deref(),
        Some("modelfleet-source-store")
    );
    let pods: Api<Pod> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let pod = eventually("the deployment's pod exists", || async {
        pods.list(&ListParams::default().labels("modelfleet.io/deployment=chat"))
            .await
            .unwrap()
            .items
            .into_iter()
            .next()
    })
    .await;
    let spec = pod.spec.unwrap();
    let from_secret = |c: &k8s_openapi::api::core::v1::Container| -> Vec<String> {
        c.env_from
            .iter()
            .flatten()
            .filter_map(|e| e.secret_ref.as_ref().map(|s| s.name.clone()))
            .collect()
    };
    let init = spec.init_containers.unwrap();
    assert_eq!(from_secret(&init[0]), ["modelfleet-source-store"]);
    for c in &spec.containers {
        assert!(from_secret(c).is_empty(), "{} reads no credential", c.name);
    }
    eventually("the deployment is Ready", || async {
        let shown = hub.get(&format!("/api/v1/deployments/{id}"), &key).await;
        (shown.body["phase"] == "Ready").then_some(())
    })
    .await;
    let list = listed(&hub, &acme, &key).await;
    assert_eq!(list.body["items"][0]["usedBy"], json!(["chat"]));

    // Replaced: written again where it is used.
    let replaced = put(&hub, &acme, "store", &key, pair(ACCESS_KEY, ROTATED_SECRET)).await;
    assert_eq!(replaced.status, StatusCode::OK, "{:#}", replaced.body);
    assert_eq!(replaced.body["created"], false);
    assert_eq!(
        replaced.body["clusters"],
        json!([{"cluster": "aws-a", "namespace": "mf-acme", "error": null}])
    );
    no_secret_in(&replaced.body.to_string());
    assert_eq!(
        secret_in_cluster(&hub, "modelfleet-source-store").await,
        Some(vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY.to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                ROTATED_SECRET.to_owned()
            ),
        ])
    );

    // Not removed while a live deployment fetches with it.
    let in_use = delete(&hub, &acme, "store", &key).await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{:#}", in_use.body);
    assert!(
        in_use.body["detail"].as_str().unwrap().contains("chat"),
        "{:#}",
        in_use.body
    );
    assert!(
        secret_in_cluster(&hub, "modelfleet-source-store")
            .await
            .is_some()
    );

    // Once the deployment is gone, removed here and from the cluster.
    let released = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/deployments/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert!(released.status.is_success(), "{:#}", released.body);
    let removed = delete(&hub, &acme, "store", &key).await;
    assert_eq!(removed.status, StatusCode::OK, "{:#}", removed.body);
    assert_eq!(
        removed.body["clusters"],
        json!([{"cluster": "aws-a", "namespace": "mf-acme", "error": null}])
    );
    assert_eq!(
        secret_in_cluster(&hub, "modelfleet-source-store").await,
        None
    );
    assert_eq!(listed(&hub, &acme, &key).await.body["items"], json!([]));
    assert_eq!(
        delete(&hub, &acme, "store", &key).await.status,
        StatusCode::NOT_FOUND
    );

    // Every change is audited, by name, and no record holds a value.
    let records = hub.store.audit_records_after(0, 100_000).await.unwrap();
    let verbs: Vec<&str> = records
        .iter()
        .filter(|r| r.event.object_ref.resource == "source-credentials")
        .map(|r| r.event.verb.as_str())
        .collect();
    assert_eq!(verbs, ["create", "update", "delete"]);
    no_secret_in(&serde_json::to_string(&records).unwrap());
    sync.stop().await;
}

modelfleet_api::store_tests!(a_kept_credential_reaches_the_cluster_only_where_its_tenant_deploys);

fn applied(name: &str, secret: &str) -> ModelDeployment {
    serde_json::from_value(json!({
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "mf-acme"},
        "spec": {"model": "llama-3.1-8b", "source": "s3://models/llama-3.1-8b",
                 "sourceSecret": secret}
    }))
    .unwrap()
}

/// A ModelDeployment applied with kubectl that names a kept credential is
/// admitted with its Secret written; one naming a credential the tenant
/// does not keep is refused, saying so.
async fn kubectl_applied_deployments_get_their_kept_credential(db: TestDb) {
    let hub = l40s_hub(db).await;
    let sync = hub.sync_only();
    let (acme, key) = hub.tenant("acme", support::roomy()).await;
    let added = put(
        &hub,
        &acme,
        "store",
        &key,
        json!({"keys": {"HF_TOKEN": "hf_kubectlpath0wxyz"}}),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{:#}", added.body);

    let namespaces: Api<Namespace> = Api::all(hub.kube.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("mf-acme".to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    if namespaces.get_opt("mf-acme").await.unwrap().is_none() {
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    mds.create(
        &PostParams::default(),
        &applied("kept", "modelfleet-source-store"),
    )
    .await
    .unwrap();
    mds.create(
        &PostParams::default(),
        &applied("unkept", "modelfleet-source-nope"),
    )
    .await
    .unwrap();

    eventually("the one naming a kept credential is admitted", || async {
        let md = mds.get("kept").await.unwrap();
        md.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ANNOTATION))
            .then_some(())
    })
    .await;
    assert_eq!(
        secret_in_cluster(&hub, "modelfleet-source-store").await,
        Some(vec![(
            "HF_TOKEN".to_owned(),
            "hf_kubectlpath0wxyz".to_owned()
        )])
    );
    let message = eventually("the one naming no kept credential is refused", || async {
        let md = mds.get("unkept").await.unwrap();
        md.metadata
            .annotations
            .and_then(|a| a.get(MESSAGE_ANNOTATION).cloned())
    })
    .await;
    assert!(
        message.contains("no source credential named \"nope\""),
        "{message}"
    );
    let in_use = delete(&hub, &acme, "store", &key).await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{:#}", in_use.body);
    let kept = mds.get("kept").await.unwrap();
    assert_ne!(
        kept.status.and_then(|s| s.phase),
        Some(Phase::Failed),
        "it runs"
    );
    sync.stop().await;
}

modelfleet_api::store_tests!(kubectl_applied_deployments_get_their_kept_credential);

/// A deployment naming a Secret of the tenant's own that does not exist in
/// the cluster starts nothing, and says which Secret is missing.
async fn a_deployment_naming_a_missing_secret_says_which(db: TestDb) {
    let hub = l40s_hub(db).await;
    let sync = hub.sync_only();
    let (_, key) = hub.tenant("acme", support::roomy()).await;
    let deployed = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "chat", "model": "llama-3.1-8b",
                   "source": "s3://models/llama-3.1-8b", "sourceSecret": "model-store-keys"}),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{:#}", deployed.body);
    let id = deployed.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = eventually("the deployment says why it does not start", || async {
        let shown = hub.get(&format!("/api/v1/deployments/{id}"), &key).await;
        (shown.body["phase"] == "Failed").then_some(shown.body)
    })
    .await;
    assert!(
        shown.to_string().contains(
            "container fetch-weights cannot start: secret \\\"model-store-keys\\\" not found"
        ),
        "{shown:#}"
    );
    sync.stop().await;
}

modelfleet_api::store_tests!(a_deployment_naming_a_missing_secret_says_which);

/// A tenant keeps at most 50 credentials; at the limit it can still
/// replace one, and removing one makes room.
async fn a_tenant_keeps_a_bounded_number_of_credentials(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (acme, key) = hub.tenant("acme", support::roomy()).await;
    let token = json!({"keys": {"HF_TOKEN": "hf_boundedcount0001"}});
    for i in 0..50 {
        let reply = put(&hub, &acme, &format!("hub-{i}"), &key, token.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{i}: {:#}", reply.body);
    }
    let over = put(&hub, &acme, "hub-50", &key, token.clone()).await;
    assert_eq!(
        over.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:#}",
        over.body
    );
    assert!(
        over.body["detail"].as_str().unwrap().contains("at most 50"),
        "{:#}",
        over.body
    );
    let replaced = put(&hub, &acme, "hub-7", &key, token.clone()).await;
    assert_eq!(replaced.status, StatusCode::OK, "{:#}", replaced.body);
    assert_eq!(
        delete(&hub, &acme, "hub-7", &key).await.status,
        StatusCode::OK
    );
    let room = put(&hub, &acme, "hub-50", &key, token).await;
    assert_eq!(room.status, StatusCode::CREATED, "{:#}", room.body);
    assert_eq!(
        listed(&hub, &acme, &key).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
}

modelfleet_api::store_tests!(a_tenant_keeps_a_bounded_number_of_credentials);

/// Each change of a credential in use is written to its clusters: a tenant
/// gets 10, then one every 6 s (429 with `Retry-After`); changes of a
/// credential no deployment uses reach no cluster and are not counted.
async fn changes_that_reach_clusters_are_limited_per_tenant(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (acme, key) = hub.tenant("acme", support::roomy()).await;
    let (other, other_key) = hub.tenant("other", support::roomy()).await;
    for (tenant, key) in [(&acme, &key), (&other, &other_key)] {
        let added = put(&hub, tenant, "store", key, pair(ACCESS_KEY, SECRET_KEY)).await;
        assert_eq!(added.status, StatusCode::CREATED, "{:#}", added.body);
    }
    let deployed = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "chat", "model": "llama-3.1-8b",
                   "source": "s3://models/llama-3.1-8b", "sourceCredential": "store"}),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{:#}", deployed.body);
    let mut refused = None;
    // Far more than the burst: a slow machine refilling a few on the way
    // still runs out.
    for _ in 0..40 {
        let reply = put(&hub, &acme, "store", &key, pair(ACCESS_KEY, ROTATED_SECRET)).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    }
    let refused = refused.expect("a loop of replacements is refused");
    assert!(refused.headers.contains_key("retry-after"));
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("retry after"),
        "{:#}",
        refused.body
    );
    // Unused credentials, and other tenants, are not held back.
    let unused = put(&hub, &acme, "spare", &key, pair(ACCESS_KEY, SECRET_KEY)).await;
    assert_eq!(unused.status, StatusCode::CREATED, "{:#}", unused.body);
    let theirs = put(
        &hub,
        &other,
        "store",
        &other_key,
        pair(ACCESS_KEY, ROTATED_SECRET),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::OK, "{:#}", theirs.body);
}

modelfleet_api::store_tests!(changes_that_reach_clusters_are_limited_per_tenant);
