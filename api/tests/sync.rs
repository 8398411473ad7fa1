//! Cluster sync against sandbox clusters with the real operator: a
//! deployment's phase and ready replicas reach the database, each replica's
//! device interval opens when its pod is bound and closes when it is gone,
//! and stopping and starting sync neither duplicates nor loses intervals.
//! Each test runs on SQLite and, when `MODELFLEET_TEST_DATABASE_URL` is
//! set, on PostgreSQL.

mod support;

use axum::http::{Method, StatusCode};
use chrono::DurationRound;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use modelfleet_api::ids::{DeploymentId, TenantId};
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::fleet::{Cloud, Fleet};
use serde_json::json;
use support::two_clouds::{intervals, row};
use support::{Hub, SandboxSpec, eventually, test_settings};

const CLUSTER: &str = "aws-a";

fn fleet() -> Fleet {
    Fleet::from_yaml(
        "pools:\n\
         - {cloud: aws, region: us-east-1, cluster: aws-a, name: l40s, accelerator: l40s, \
            devicesPerNode: 4, nodesTotal: 2, nodesFree: 2, pricePerDeviceHour: \"1.80 USD\"}\n",
    )
    .unwrap()
}

async fn hub(db: TestDb) -> Hub {
    let spec = SandboxSpec {
        name: CLUSTER,
        cloud: Cloud::Aws,
        region: "us-east-1",
        fleet: fleet(),
        operator: Some(true),
    };
    Hub::start_clusters(db, vec![spec], test_settings()).await
}

/// Deploys Llama 3.1 8B as `chat`: its id, and the API's answer.
async fn deploy_chat(hub: &Hub, key: &str) -> (DeploymentId, support::Reply) {
    let reply = hub
        .post(
            "/api/v1/deployments",
            key,
            json!({"name": "chat", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    let id = reply.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (id, reply)
}

async fn pods_of(hub: &Hub, name: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let selector = format!("modelfleet.io/deployment={name}");
    pods.list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

async fn a_deployment_reaches_ready_and_its_intervals_follow_its_pods(db: TestDb) {
    let hub = hub(db).await;
    let sync = hub.sync_only();
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    let tenant: TenantId = tenant.parse().unwrap();
    let (id, reply) = deploy_chat(&hub, &key).await;
    let devices = reply.body["plan"]["devicesPerReplica"].as_u64().unwrap();

    let ready = eventually("the deployment is Ready in the database", || async {
        let d = row(&hub, id).await;
        (d.phase == modelfleet_core::crd::Phase::Ready).then_some(d)
    })
    .await;
    assert_eq!(ready.ready_replicas, 1);
    assert!(ready.unschedulable_since.is_none());
    let shown = hub.get(&format!("/api/v1/deployments/{id}"), &key).await;
    assert_eq!(shown.body["phase"], "Ready", "{:#}", shown.body);
    assert_eq!(shown.body["readyReplicas"], 1, "{:#}", shown.body);

    let first = eventually("the replica's interval is open", || async {
        let found = intervals(&hub, tenant, id).await;
        (found.len() == 1).then_some(found)
    })
    .await
    .remove(0);
    let pod = pods_of(&hub, "chat").await.remove(0);
    assert_eq!(Some(&first.pod_uid), pod.metadata.uid.as_ref());
    assert_eq!(
        Some(&first.node),
        pod.spec.as_ref().unwrap().node_name.as_ref()
    );
    assert_eq!(
        (
            first.cluster.as_str(),
            first.pool.as_str(),
            first.accelerator.as_str()
        ),
        (CLUSTER, "l40s", "l40s")
    );
    assert_eq!(first.devices as u64, devices);
    assert!(first.released_at.is_none());
    assert!(first.allocated_at <= chrono::Utc::now());

    // Stop sync; start it again: the running replica's interval is the
    // same row, and a new replica gets its own.
    sync.stop().await;
    let sync = hub.sync_only();
    let scaled = hub
        .call(
            Method::PATCH,
            &format!("/api/v1/deployments/{id}"),
            Some(&key),
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{:#}", scaled.body);
    let both = eventually("the second replica's interval is open", || async {
        let found = intervals(&hub, tenant, id).await;
        (found.len() == 2).then_some(found)
    })
    .await;
    assert!(both.contains(&first), "kept as it was: {both:#?}");
    assert!(both.iter().all(|i| i.released_at.is_none()), "{both:#?}");
    eventually("both replicas are ready", || async {
        (row(&hub, id).await.ready_replicas == 2).then_some(())
    })
    .await;

    // Delete while sync is stopped: the pods go, the intervals stay open
    // until a sync sees it, and then close at the time it sees it.
    sync.stop().await;
    let deleted = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/deployments/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{:#}", deleted.body);
    eventually("the pods are gone", || async {
        pods_of(&hub, "chat").await.is_empty().then_some(())
    })
    .await;
    assert!(
        intervals(&hub, tenant, id)
            .await
            .iter()
            .all(|i| i.released_at.is_none()),
        "nothing closes them while sync is stopped"
    );
    // To the microsecond, as the store keeps times.
    let restarted = chrono::Utc::now()
        .duration_trunc(chrono::TimeDelta::microseconds(1))
        .unwrap();
    let sync = hub.sync_only();
    let closed = eventually("the intervals are closed", || async {
        let found = intervals(&hub, tenant, id).await;
        found
            .iter()
            .all(|i| i.released_at.is_some())
            .then_some(found)
    })
    .await;
    assert_eq!(closed.len(), 2, "none duplicated, none lost: {closed:#?}");
    for interval in &closed {
        let released = interval.released_at.unwrap();
        assert!(
            released >= restarted,
            "closed when it was seen: {interval:#?}"
        );
        assert!(released >= interval.allocated_at);
    }
    sync.stop().await;
}

modelfleet_api::store_tests!(a_deployment_reaches_ready_and_its_intervals_follow_its_pods);

/// A deployment the hub placed whose ModelDeployment disappears from its
/// cluster (deleted there with kubectl, or lost with the cluster's state)
/// is never shown as running with nothing behind it: after a grace longer
/// than any watch lag, the hub applies again what it applied (the hub's
/// record is the desired state), at the replica count it holds, and says
/// so in the deployment's status and the audit trail, as the system.
async fn a_deployment_missing_from_its_cluster_is_applied_again(db: TestDb) {
    use modelfleet_core::crd::ModelDeployment;
    let hub = hub(db).await;
    let sync = hub.sync_only();
    let (_, key) = hub.tenant("acme", support::roomy()).await;
    let reply = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "chat", "model": "llama-3.1-8b", "replicas": 2}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    let id: DeploymentId = reply.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    eventually("the deployment is Ready", || async {
        let d = row(&hub, id).await;
        (d.phase == modelfleet_core::crd::Phase::Ready && d.ready_replicas == 2).then_some(())
    })
    .await;
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let before = mds.get("chat").await.unwrap();

    // Gone from the cluster, behind the hub's back.
    mds.delete("chat", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let gone_at = std::time::Instant::now();
    let again = eventually("the hub applies it again", || async {
        match mds.get_opt("chat").await.unwrap() {
            Some(md)
                if md.metadata.uid != before.metadata.uid
                    && md.metadata.deletion_timestamp.is_none() =>
            {
                Some(md)
            }
            _ => None,
        }
    })
    .await;
    assert!(
        gone_at.elapsed() >= std::time::Duration::from_secs(10),
        "not before the grace for watch lag"
    );
    assert_eq!(again.spec, before.spec, "what the hub applied, as it was");
    let shown = row(&hub, id).await;
    assert!(shown.deleted_at.is_none());
    // Sealed anew: the operator runs it, and it is Ready again.
    eventually("the deployment is Ready again", || async {
        let d = row(&hub, id).await;
        (d.phase == modelfleet_core::crd::Phase::Ready && d.ready_replicas == 2).then_some(())
    })
    .await;
    // The re-application is in the audit trail, by the system, saying why.
    let records = hub.store.audit_records_after(0, 100_000).await.unwrap();
    let id_text = id.to_string();
    let record = records
        .iter()
        .find(|r| {
            r.event.verb == "update"
                && r.event.object_ref.resource == "deployments"
                && r.event.object_ref.uid.as_deref() == Some(id_text.as_str())
                && r.event.user.username.starts_with("system:")
        })
        .expect("the re-application is audited");
    let message = record
        .event
        .response_status
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        message.contains("missing from cluster aws-a: applied again with 2 replica(s)"),
        "{message}"
    );
    sync.stop().await;
}

modelfleet_api::store_tests!(a_deployment_missing_from_its_cluster_is_applied_again);

/// The replicas' last lines come from the cluster, through the RoleBinding
/// the hub gave itself in the tenant's namespace (its cluster role cannot
/// read logs anywhere else), for the deployment's tenant alone.
async fn replicas_last_lines_are_read_from_the_cluster_for_their_tenant_only(db: TestDb) {
    let hub = hub(db).await;
    let _sync = hub.sync_only();
    let (_, key) = hub.tenant("acme", support::roomy()).await;
    let (_, other) = hub.tenant("other", support::roomy()).await;
    let id = deploy_chat(&hub, &key).await.0;
    eventually("the deployment is Ready", || async {
        (row(&hub, id).await.phase == modelfleet_core::crd::Phase::Ready).then_some(())
    })
    .await;

    let logs = hub
        .get(&format!("/api/v1/deployments/{id}/logs?lines=3"), &key)
        .await;
    assert_eq!(logs.status, StatusCode::OK, "{:#}", logs.body);
    let replicas = logs.body["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 1, "{:#}", logs.body);
    let pod = pods_of(&hub, "chat").await.remove(0);
    assert_eq!(replicas[0]["pod"], pod.metadata.name.unwrap().as_str());
    assert_eq!(replicas[0]["phase"], "Running");
    let containers: Vec<&str> = replicas[0]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["fetch-weights", "engine"]);
    for c in replicas[0]["containers"].as_array().unwrap() {
        let lines = c["lines"].as_array().unwrap();
        assert!(
            !lines.is_empty() && lines.len() <= 3,
            "{}: {:#}",
            c["container"],
            c
        );
    }
    let fetch = &replicas[0]["containers"][0]["lines"];
    assert!(
        fetch
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("fetch")),
        "the fetch's own lines: {fetch:#}"
    );
    // By name too, in the caller's tenant.
    let by_name = hub.get("/api/v1/deployments/chat/logs", &key).await;
    assert_eq!(by_name.status, StatusCode::OK, "{:#}", by_name.body);

    // Another tenant cannot tell the deployment exists.
    let theirs = hub
        .get(&format!("/api/v1/deployments/{id}/logs"), &other)
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{:#}", theirs.body);
    for bad in ["0", "201", "lots"] {
        let reply = hub
            .get(&format!("/api/v1/deployments/{id}/logs?lines={bad}"), &key)
            .await;
        assert!(
            reply.status == StatusCode::UNPROCESSABLE_ENTITY
                || reply.status == StatusCode::BAD_REQUEST,
            "lines={bad}: {} {:#}",
            reply.status,
            reply.body
        );
    }

    // The hub reads logs through its own binding in the tenant namespace.
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(hub.kube.clone(), "mf-acme");
    let binding = bindings.get("modelfleet-hub-logs").await.unwrap();
    assert_eq!(binding.role_ref.name, "modelfleet-hub-tenant-logs");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "modelfleet-hub")
    );

    // Each read reaches the cluster: a tenant gets 20, then one every 3 s.
    let mut refused = None;
    for _ in 0..25 {
        let reply = hub
            .get(&format!("/api/v1/deployments/{id}/logs?lines=1"), &key)
            .await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("a flood of log reads is refused");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("retry after"),
        "{:#}",
        refused.body
    );
}

modelfleet_api::store_tests!(replicas_last_lines_are_read_from_the_cluster_for_their_tenant_only);
