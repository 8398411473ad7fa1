//! API-conversation tests (the kube-rs controller-rs pattern): the real
//! reconcile runs against a `tower_test` mock of the API server that answers
//! like the real one and records every request, and each test checks the
//! conversation a platform engineer would expect.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use modelfleet_core::crd::{ModelDeployment, ModelDeploymentStatus, Phase};
use serde_json::{Value, json};

use super::*;

/// One request the operator made.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Call {
    fn is(&self, method: Method, path_suffix: &str) -> bool {
        self.method == method && self.path.ends_with(path_suffix)
    }
}

/// What the fake API server holds.
#[derive(Debug, Clone, Default)]
struct Cluster {
    nodes: Vec<Value>,
    pods: Vec<Value>,
    /// Answer 404 to every LeaderWorkerSet request, as a cluster without
    /// the LWS CRD does.
    no_lws: bool,
    /// Answer 403 to every write whose path contains this, as RBAC does
    /// where the operator's role is not bound.
    forbid: Option<&'static str>,
}

fn h100_node(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "eks.amazonaws.com/nodegroup": "p5-h100",
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            "topology.kubernetes.io/region": "us-east-1"}},
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8", "cpu": "192", "memory": "2000Gi"},
            "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn list(kind: &str, items: &[Value]) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn status_json(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": if code < 300 {"Success"} else {"Failure"},
           "reason": reason, "code": code, "message": reason})
}

/// Answers like an API server: lists from `cluster`, echoes what is
/// applied or patched, 404 for what does not exist.
fn answer(cluster: &Cluster, md: &Value, call: &Call) -> (StatusCode, Value) {
    let p = call.path.as_str();
    if cluster.no_lws && p.contains("leaderworkerset.x-k8s.io") {
        return (StatusCode::NOT_FOUND, status_json(404, "NotFound"));
    }
    if let Some(forbidden) = cluster.forbid
        && call.method != Method::GET
        && p.contains(forbidden)
    {
        return (StatusCode::FORBIDDEN, status_json(403, "Forbidden"));
    }
    match call.method {
        Method::GET if p == "/api/v1/nodes" => (StatusCode::OK, list("NodeList", &cluster.nodes)),
        Method::GET if p.ends_with("/pods") => (StatusCode::OK, list("PodList", &cluster.pods)),
        Method::DELETE => (StatusCode::NOT_FOUND, status_json(404, "NotFound")),
        Method::POST => (StatusCode::CREATED, call.body.clone()),
        Method::PATCH if call.content_type.contains("json-patch") => {
            let mut patched = md.clone();
            // The API server reads a missing field as null for `test`, as
            // kube's "no finalizers yet" test expects.
            if patched["metadata"].get("finalizers").is_none() {
                patched["metadata"]["finalizers"] = Value::Null;
            }
            let patch: json_patch::Patch = serde_json::from_value(call.body.clone()).unwrap();
            json_patch::patch(&mut patched, &patch).unwrap();
            (StatusCode::OK, patched)
        }
        Method::PATCH if p.ends_with("/status") => {
            let mut patched = md.clone();
            patched["status"] = call.body["status"].clone();
            (StatusCode::OK, patched)
        }
        Method::PATCH => {
            let mut applied = call.body.clone();
            applied["metadata"]["namespace"] = json!("team-a");
            applied["metadata"]["uid"] = json!("uid-of-child");
            (StatusCode::OK, applied)
        }
        _ => (StatusCode::NOT_FOUND, status_json(404, "NotFound")),
    }
}

/// Runs one reconcile of `md` against `cluster`; returns its result and the
/// conversation.
async fn converse(md: ModelDeployment, cluster: Cluster) -> (Result<Action, Error>, Vec<Call>) {
    converse_with(md, cluster, Settings::new("prod")).await
}

async fn converse_with(
    md: ModelDeployment,
    cluster: Cluster,
    mut settings: Settings,
) -> (Result<Action, Error>, Vec<Call>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let md_json = serde_json::to_value(&md).unwrap();
    let server = tokio::spawn(async move {
        let mut calls = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            let call = Call {
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, body) = answer(&cluster, &md_json, &call);
            calls.push(call);
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            respond.send_response(response);
        }
        calls
    });
    let client = Client::new(service, "default");
    settings.build = BuildOptions::default();
    let ctx = Arc::new(Context::new(client, settings, Metrics::new(), false));
    let result = reconcile(Arc::new(md), ctx).await;
    let calls = server.await.unwrap();
    (result, calls)
}

fn with_finalizer(mut md: ModelDeployment) -> ModelDeployment {
    md.meta_mut().finalizers = Some(vec![FINALIZER.to_owned()]);
    md.meta_mut().generation = Some(1);
    md
}

fn h100_cluster(nodes: usize) -> Cluster {
    Cluster {
        nodes: (0..nodes)
            .map(|i| h100_node(&format!("h100-{i}")))
            .collect(),
        pods: Vec::new(),
        no_lws: true,
        forbid: None,
    }
}

fn llama70() -> ModelDeployment {
    ModelDeployment::test("llama70")
        .model("llama-3.1-70b")
        .precision("bf16")
        .in_namespace("team-a")
}

fn find<'a>(calls: &'a [Call], method: Method, suffix: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.is(method.clone(), suffix))
        .unwrap_or_else(|| panic!("no {method} …{suffix} in {:#?}", paths(calls)))
}

fn paths(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

fn status_of(call: &Call) -> ModelDeploymentStatus {
    serde_json::from_value(call.body["status"].clone()).unwrap()
}

fn condition<'a>(
    status: &'a ModelDeploymentStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[tokio::test]
async fn first_reconcile_adds_the_finalizer_and_nothing_else() {
    let (result, calls) = converse(llama70(), h100_cluster(1)).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        paths(&calls),
        ["PATCH /apis/modelfleet.io/v1alpha1/namespaces/team-a/modeldeployments/llama70"]
    );
    let patch = &calls[0];
    assert!(
        patch
            .content_type
            .starts_with("application/json-patch+json")
    );
    // kube tests the finalizers' absence, then adds them.
    assert_eq!(patch.body[0]["op"], "test");
    assert_eq!(patch.body[1]["op"], "add");
    assert_eq!(patch.body[1]["path"], "/metadata/finalizers");
    assert_eq!(patch.body[1]["value"], json!([FINALIZER]));
}

#[tokio::test]
async fn a_planned_deployment_applies_its_children_then_writes_status() {
    let (result, calls) = converse(with_finalizer(llama70()), h100_cluster(1)).await;
    let action = result.unwrap();
    assert_eq!(
        action,
        Action::requeue(Settings::new("x").converging_requeue)
    );

    let order: Vec<String> = paths(&calls)
        .into_iter()
        .filter(|p| !p.contains("leaderworkersets"))
        .collect();
    assert_eq!(
        order,
        [
            "GET /api/v1/nodes",
            "GET /api/v1/pods",
            "PATCH /apis/apps/v1/namespaces/team-a/deployments/llama70",
            "PATCH /api/v1/namespaces/team-a/services/llama70",
            "PATCH /apis/policy/v1/namespaces/team-a/poddisruptionbudgets/llama70",
            "POST /apis/events.k8s.io/v1/namespaces/team-a/events",
            "PATCH /apis/modelfleet.io/v1alpha1/namespaces/team-a/modeldeployments/llama70/status",
        ]
    );
    // Server-side apply with one field manager, forced.
    for call in calls.iter().filter(|c| c.method == Method::PATCH) {
        assert!(
            call.content_type
                .starts_with("application/apply-patch+yaml"),
            "{call:?}"
        );
        assert!(
            call.query.contains("fieldManager=modelfleet-operator"),
            "{}",
            call.query
        );
        assert!(call.query.contains("force=true"), "{}", call.query);
    }
    // The Deployment asks for the planned devices on the discovered pool.
    let deployment = &find(&calls, Method::PATCH, "/deployments/llama70").body;
    let engine = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(engine["resources"]["limits"]["nvidia.com/gpu"], "4");
    let affinity =
        serde_json::to_string(&deployment["spec"]["template"]["spec"]["affinity"]).unwrap();
    assert!(
        affinity.contains("eks.amazonaws.com/nodegroup") && affinity.contains("p5-h100"),
        "{affinity}"
    );

    let event = &find(&calls, Method::POST, "/events").body;
    assert_eq!(event["reason"], "PlanChosen");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("4 × h100-80gb on prod/p5-h100"),
        "{event}"
    );

    let status = status_of(find(&calls, Method::PATCH, "/llama70/status"));
    assert_eq!(status.phase, Some(Phase::Scheduling));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&status, "Planned").status, "True");
    assert_eq!(condition(&status, "Ready").status, "False");
    let plan = status.plan.unwrap();
    assert_eq!((plan.tensor_parallel, plan.devices_per_replica), (4, 4));
    assert_eq!(
        status.endpoint.as_deref(),
        Some("http://llama70.team-a.svc:8000/v1")
    );
}

#[tokio::test]
async fn a_spec_change_reapplies_with_the_new_spec() {
    let mut md = with_finalizer(llama70().replicas(2));
    md.meta_mut().generation = Some(2);
    let (result, calls) = converse(md, h100_cluster(2)).await;
    result.unwrap();
    let deployment = &find(&calls, Method::PATCH, "/deployments/llama70").body;
    assert_eq!(deployment["spec"]["replicas"], 2);
    let status = status_of(find(&calls, Method::PATCH, "/llama70/status"));
    assert_eq!(status.observed_generation, Some(2));
}

#[tokio::test]
async fn an_unplannable_spec_sets_the_condition_creates_nothing_and_backs_off() {
    let md = with_finalizer(
        ModelDeployment::test("qwen")
            .model("qwen2.5-7b")
            .in_namespace("team-a"),
    );
    let mut md = md;
    md.spec.serving.tensor_parallel_size = Some(8);
    let (result, calls) = converse(md, h100_cluster(1)).await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(Settings::new("x").unplannable_requeue)
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.path.contains("/deployments/") || c.path.contains("/services/")),
        "created something: {:#?}",
        paths(&calls)
    );
    let event = &find(&calls, Method::POST, "/events").body;
    assert_eq!(event["reason"], "PlanFailed");
    assert_eq!(event["type"], "Warning");
    let status = status_of(find(&calls, Method::PATCH, "/qwen/status"));
    assert_eq!(status.phase, Some(Phase::Failed));
    let planned = condition(&status, "Planned");
    assert_eq!(
        (planned.status.as_str(), planned.reason.as_str()),
        ("False", "NoFeasiblePlan")
    );
    assert!(
        planned
            .message
            .contains("qwen2.5-7b has 28 attention heads; tensor parallel 8 does not divide them"),
        "{}",
        planned.message
    );
}

#[tokio::test]
async fn deletion_cleans_up_and_then_removes_the_finalizer() {
    let mut md = with_finalizer(llama70());
    md.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ));
    let (result, calls) = converse(md, h100_cluster(1)).await;
    assert_eq!(result.unwrap(), Action::await_change());
    let order = paths(&calls);
    let pos = |needle: &str| {
        order
            .iter()
            .position(|p| p == needle)
            .unwrap_or_else(|| panic!("{needle} not in {order:#?}"))
    };
    let status =
        pos("PATCH /apis/modelfleet.io/v1alpha1/namespaces/team-a/modeldeployments/llama70/status");
    let deployment = pos("DELETE /apis/apps/v1/namespaces/team-a/deployments/llama70");
    let service = pos("DELETE /api/v1/namespaces/team-a/services/llama70");
    let pdb = pos("DELETE /apis/policy/v1/namespaces/team-a/poddisruptionbudgets/llama70");
    let pods = pos("GET /api/v1/namespaces/team-a/pods");
    let unfinalize =
        pos("PATCH /apis/modelfleet.io/v1alpha1/namespaces/team-a/modeldeployments/llama70");
    assert!(
        status < deployment
            && deployment < service
            && service < pdb
            && pdb < pods
            && pods < unfinalize
    );
    assert_eq!(status_of(&calls[status]).phase, Some(Phase::Terminating));
    assert!(
        calls[pods]
            .query
            .contains("labelSelector=modelfleet.io%2Fdeployment%3Dllama70"),
        "{}",
        calls[pods].query
    );
    // The finalizer is removed by a JSON patch that leaves no finalizer.
    let removal = serde_json::to_string(&calls[unfinalize].body).unwrap();
    assert!(removal.contains("/metadata/finalizers"), "{removal}");
}

#[tokio::test]
async fn deletion_waits_while_pods_still_hold_devices() {
    let mut md = with_finalizer(llama70());
    md.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ));
    let mut cluster = h100_cluster(1);
    cluster.pods.push(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "llama70-abc", "namespace": "team-a", "labels": {"modelfleet.io/deployment": "llama70"}},
        "spec": {"nodeName": "h100-0", "containers": [{"name": "engine"}]}}));
    let (result, calls) = converse(md, cluster).await;
    let err = result.unwrap_err();
    assert_eq!(err.metric_label(), "still_deleting");
    assert!(err.to_string().contains("1 pod(s) of llama70"), "{err}");
    // The finalizer stays.
    assert!(!paths(&calls).contains(
        &"PATCH /apis/modelfleet.io/v1alpha1/namespaces/team-a/modeldeployments/llama70".to_owned()
    ));
}

#[test]
fn phases_are_counted_for_the_metric() {
    let mut ready = llama70();
    ready.status = Some(ModelDeploymentStatus {
        phase: Some(Phase::Ready),
        ..Default::default()
    });
    let counts = phase_counts([&ready, &llama70(), &ready]);
    assert_eq!(counts, BTreeMap::from([("Pending", 1), ("Ready", 2)]));
}

#[test]
fn nodes_of_the_fake_cluster_are_real_nodes() {
    // Guards the fixtures above: they must parse as the API's own types.
    let node: Node = serde_json::from_value(h100_node("n")).unwrap();
    assert_eq!(node.metadata.name.as_deref(), Some("n"));
}

/// The key the fake cluster's operator and its "hub" share.
fn admission_key() -> modelfleet_core::contract::admission::AdmissionKey {
    modelfleet_core::contract::admission::AdmissionKey::from_bytes([5; 32])
}

fn admission_required() -> Settings {
    let mut settings = Settings::new("prod");
    settings.admission = Some(admission_key());
    settings
}

fn annotate(mut md: ModelDeployment, pairs: &[(&str, &str)]) -> ModelDeployment {
    md.meta_mut().annotations = Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    md
}

fn created_workloads(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method == Method::PATCH || c.method == Method::POST)
        .filter(|c| c.path.contains("/deployments/") || c.path.contains("/services/"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

#[tokio::test]
async fn with_admission_required_an_unadmitted_deployment_waits_and_creates_nothing() {
    let md = with_finalizer(llama70());
    let (result, calls) = converse_with(md, h100_cluster(1), admission_required()).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert!(created_workloads(&calls).is_empty(), "{:#?}", paths(&calls));
    let status = status_of(find(&calls, Method::PATCH, "/llama70/status"));
    assert_eq!(status.phase, Some(Phase::Pending));
    let admitted = condition(&status, "Admitted");
    assert_eq!(
        (admitted.status.as_str(), admitted.reason.as_str()),
        ("Unknown", "AwaitingAdmission")
    );
}

#[tokio::test]
async fn a_rejected_deployment_says_why_and_its_workloads_are_removed() {
    use modelfleet_core::contract::admission::*;
    let md = annotate(
        with_finalizer(llama70()),
        &[
            (ANNOTATION, REJECTED),
            (REASON_ANNOTATION, REASON_QUOTA_EXCEEDED),
            (
                MESSAGE_ANNOTATION,
                "total devices: 8 in use of 8; this needs 4 more",
            ),
        ],
    );
    let (result, calls) = converse_with(md, h100_cluster(1), admission_required()).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert!(created_workloads(&calls).is_empty(), "{:#?}", paths(&calls));
    assert!(
        calls
            .iter()
            .any(|c| c.method == Method::DELETE && c.path.ends_with("/deployments/llama70")),
        "removes a workload that may already run: {:#?}",
        paths(&calls)
    );
    let status = status_of(find(&calls, Method::PATCH, "/llama70/status"));
    assert_eq!(status.phase, Some(Phase::Failed));
    let admitted = condition(&status, "Admitted");
    assert_eq!(
        (admitted.status.as_str(), admitted.reason.as_str()),
        ("False", "QuotaExceeded")
    );
    assert!(
        admitted.message.contains("8 in use"),
        "{}",
        admitted.message
    );
}

#[tokio::test]
async fn an_admitted_deployment_runs_and_says_so() {
    let mut md = with_finalizer(llama70());
    modelfleet_core::contract::admission::seal_in_place(&mut md, &admission_key());
    let (result, calls) = converse_with(md, h100_cluster(1), admission_required()).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(
        !created_workloads(&calls).is_empty(),
        "{:#?}",
        paths(&calls)
    );
    let status = status_of(find(&calls, Method::PATCH, "/llama70/status"));
    assert_eq!(condition(&status, "Admitted").status, "True");
    // The namespace's fence and the engines' key go in before the
    // workload does.
    let position = |suffix: &str| {
        calls
            .iter()
            .position(|c| c.method == Method::PATCH && c.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("no PATCH of {suffix}: {:#?}", paths(&calls)))
    };
    let policy = position("/networkpolicies/modelfleet-tenant-isolation");
    let secret = position("/secrets/modelfleet-engine-api-key");
    let workload = position("/deployments/llama70");
    assert!(
        policy < workload && secret < workload,
        "{:#?}",
        paths(&calls)
    );
}

/// Where the operator's workload role is not bound, the deployment says so
/// (and how to fix it) instead of failing in the log alone.
#[tokio::test]
async fn a_namespace_the_operator_may_not_write_in_is_reported() {
    let cluster = Cluster {
        forbid: Some("/apis/apps/v1/namespaces/"),
        ..h100_cluster(1)
    };
    let (result, calls) = converse(with_finalizer(llama70()), cluster).await;
    assert!(result.is_ok(), "{result:?}");
    let status = status_of(find(&calls, Method::PATCH, "/llama70/status"));
    let ready = condition(&status, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "NotPermitted");
    assert!(
        ready
            .message
            .contains("bind ClusterRole modelfleet-operator-workloads"),
        "{}",
        ready.message
    );
}

/// Issue 17, findings 1 and 2: an `admitted` annotation the tenant wrote
/// runs nothing; a sealed spec scaled afterwards creates and changes
/// nothing, and says it changed since admission.
#[tokio::test]
async fn a_forged_or_changed_admission_runs_nothing_new() {
    use modelfleet_core::contract::admission::*;
    let forged = annotate(with_finalizer(llama70()), &[(ANNOTATION, ADMITTED)]);
    let (result, calls) = converse_with(forged, h100_cluster(1), admission_required()).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert!(created_workloads(&calls).is_empty(), "{:#?}", paths(&calls));

    let mut md = with_finalizer(llama70());
    seal_in_place(&mut md, &admission_key());
    md.spec.replicas = 20;
    let (result, calls) = converse_with(md, h100_cluster(1), admission_required()).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert!(created_workloads(&calls).is_empty(), "{:#?}", paths(&calls));
    assert!(
        !calls.iter().any(|c| c.method == Method::DELETE),
        "what runs keeps running: {:#?}",
        paths(&calls)
    );
    let status = status_of(find(&calls, Method::PATCH, "/llama70/status"));
    let admitted = condition(&status, "Admitted");
    assert_eq!(
        (admitted.status.as_str(), admitted.reason.as_str()),
        ("False", REASON_CHANGED)
    );
}
