//! The build step, driven through the real planner: golden YAML for the
//! examples in `manifests/examples/`, and direct checks of the facts a
//! reader should not have to take from a snapshot.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::contract::labels::{DEPLOYMENT_LABEL, ROLE_LABEL, ROLE_SERVER, ROLE_WORKER};
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::crd::fixtures::{TEST_NAMESPACE, TEST_UID};
use modelfleet_core::crd::lws::LeaderWorkerSet;
use modelfleet_core::fleet::Fleet;

use super::*;

/// One cluster's pools, as discovery would report them: the GPU pools carry
/// their EKS node-group label, the H100 pool a serving-only taint, the
/// Ascend pool its CCE node-pool label.
const FLEET: &str = r#"
exchangeRates: {reference: USD, rates: {CNY: "0.14"}}
pools:
  - {cloud: aws, region: us-east-1, cluster: prod, name: g6e-l40s, accelerator: l40s,
     devicesPerNode: 8, nodesTotal: 2, nodesFree: 2, pricePerDeviceHour: "3.77 USD",
     labels: {eks.amazonaws.com/nodegroup: g6e-l40s}}
  - {cloud: aws, region: us-east-1, cluster: prod, name: p5-h100, accelerator: h100-80gb,
     devicesPerNode: 8, nodesTotal: 4, nodesFree: 4, pricePerDeviceHour: "6.88 USD",
     labels: {eks.amazonaws.com/nodegroup: p5-h100},
     taints: [{key: workload, value: llm-serving, effect: NoSchedule}]}
  - {cloud: huaweicloud, region: cn-southwest-2, cluster: prod, name: snt9b-910b,
     accelerator: ascend-910b, devicesPerNode: 8, nodesTotal: 2, nodesFree: 2,
     pricePerDeviceHour: "22.00 CNY", labels: {cce.cloud.com/cce-nodepool: snt9b-910b}}
  - {cloud: aws, region: us-east-1, cluster: prod, name: spare-l40s, accelerator: l40s,
     devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, pricePerDeviceHour: "9.99 USD"}
"#;

/// A stable image for the init container, so that snapshots do not change
/// with the crate version.
fn options() -> BuildOptions {
    BuildOptions {
        fetcher_image: format!("{MODELFLEET_IMAGE_REPOSITORY}:test"),
        ascend_host_paths: false,
        engine_api_key: false,
    }
}

/// Plans `md` on the fixture fleet with the real planner, then builds.
fn plan_and_build(md: &ModelDeployment) -> (Plan, Resources<Built>) {
    plan_and_build_on(md, &Fleet::from_yaml(FLEET).unwrap())
}

fn plan_and_build_on(md: &ModelDeployment, fleet: &Fleet) -> (Plan, Resources<Built>) {
    plan_and_build_with(md, fleet, &options())
}

fn plan_and_build_with(
    md: &ModelDeployment,
    fleet: &Fleet,
    options: &BuildOptions,
) -> (Plan, Resources<Built>) {
    let report = md.spec.planner_inputs().unwrap().plan(fleet).unwrap();
    let plan = report
        .best()
        .unwrap_or_else(|| panic!("no plan: {:#?}", report.rejections))
        .clone();
    let (pool, accelerator) = planned_on(fleet, &plan);
    let built = build(md, &plan, pool, accelerator, options).unwrap();
    (plan, built)
}

/// The pool and accelerator `plan` was made for.
fn planned_on<'a>(fleet: &'a Fleet, plan: &Plan) -> (&'a NodePool, &'static Accelerator) {
    let pool = fleet
        .pools
        .iter()
        .find(|p| p.reference() == plan.pool)
        .unwrap();
    (pool, Accelerator::find(&plan.accelerator).unwrap())
}

/// An example manifest as the API server would hand it to the operator.
fn stored(path: &std::path::Path) -> ModelDeployment {
    let mut md: ModelDeployment =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    md.metadata.namespace = Some(TEST_NAMESPACE.to_owned());
    md.metadata.uid = Some(TEST_UID.to_owned());
    md
}

#[test]
fn golden_objects_for_the_examples() {
    insta::glob!("../../../manifests/examples", "*.yaml", |path| {
        let (plan, built) = plan_and_build(&stored(path));
        let header = format!(
            "# plan: {} on {}, {} x TP{} x PP{}, {} node(s) per replica\n",
            plan.precision,
            plan.pool,
            plan.accelerator,
            plan.tensor_parallel,
            plan.pipeline_parallel,
            plan.nodes_per_replica
        );
        insta::assert_snapshot!(format!("{header}{}", built.to_yaml()));
    });
}

fn deployment(built: &Resources<Built>) -> &Deployment {
    match &built.workload {
        Workload::Deployment(d) => d,
        Workload::LeaderWorkerSet(_) => panic!("expected a Deployment"),
    }
}

fn lws(built: &Resources<Built>) -> &LeaderWorkerSet {
    match &built.workload {
        Workload::LeaderWorkerSet(l) => l,
        Workload::Deployment(_) => panic!("expected a LeaderWorkerSet"),
    }
}

fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn engine(spec: &PodSpec) -> &Container {
    &spec.containers[0]
}

fn devices(c: &Container, resource: &str) -> (String, String) {
    let r = c.resources.as_ref().unwrap();
    let get = |m: &Option<BTreeMap<String, Quantity>>| m.as_ref().unwrap()[resource].0.clone();
    (get(&r.requests), get(&r.limits))
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

fn affinity(spec: &PodSpec) -> Vec<(String, Vec<String>)> {
    let node = spec
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let terms = &node
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    terms[0]
        .match_expressions
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.key.clone(), e.values.clone().unwrap()))
        .collect()
}

fn tolerates(spec: &PodSpec, key: &str) -> bool {
    spec.tolerations
        .as_ref()
        .unwrap()
        .iter()
        .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some("NoSchedule"))
}

#[test]
fn an_8b_model_is_one_pod_with_one_l40s() {
    let md = ModelDeployment::test("llama-8b")
        .model("llama-3.1-8b")
        .on("l40s");
    let (plan, built) = plan_and_build(&md);
    assert_eq!(
        plan.pool.to_string(),
        "prod/g6e-l40s",
        "the cheaper L40S pool"
    );
    let spec = pod_spec(deployment(&built));
    let c = engine(spec);
    assert_eq!(devices(c, "nvidia.com/gpu"), ("1".into(), "1".into()));
    assert_eq!(c.image.as_deref(), Some(VLLM_IMAGE));
    assert_eq!(c.command.as_ref().unwrap(), &["vllm", "serve"]);
    let args = c.args.as_ref().unwrap();
    assert_eq!(args[0], "/models/llama-3.1-8b");
    assert_eq!(flag(args, "--served-model-name"), Some("llama-3.1-8b"));
    assert_eq!(flag(args, "--tensor-parallel-size"), Some("1"));
    assert_eq!(flag(args, "--pipeline-parallel-size"), Some("1"));
    assert_eq!(flag(args, "--max-model-len"), Some("8192"));
    assert_eq!(flag(args, "--gpu-memory-utilization"), Some("0.90"));
    assert_eq!(flag(args, "--port"), Some("8000"));
    assert!(!args.iter().any(|a| a == "--quantization"));
    assert_eq!(
        affinity(spec),
        [(
            "eks.amazonaws.com/nodegroup".to_owned(),
            vec!["g6e-l40s".to_owned()]
        )]
    );
    assert!(tolerates(spec, "nvidia.com/gpu"));
    let fetch = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        fetch.command.as_ref().unwrap().join(" "),
        "modelfleet fetch --source s3://models/llama-3.1-8b --dest /models/llama-3.1-8b \
         --summary-file /dev/termination-log"
    );
    assert_eq!(built.endpoint, "http://llama-8b.models.svc:8000/v1");
}

#[test]
fn a_70b_model_splits_across_four_h100s_and_tolerates_the_pools_taint() {
    let md = ModelDeployment::test("llama-70b")
        .model("llama-3.1-70b")
        .on("h100-80gb")
        .precision("bf16")
        .replicas(2)
        .extra_args(&["--enable-prefix-caching"]);
    let (_, built) = plan_and_build(&md);
    let d = deployment(&built);
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    let spec = pod_spec(d);
    let args = engine(spec).args.as_ref().unwrap();
    assert_eq!(flag(args, "--tensor-parallel-size"), Some("4"));
    assert_eq!(devices(engine(spec), "nvidia.com/gpu").0, "4");
    assert_eq!(
        args.last().unwrap(),
        "--enable-prefix-caching",
        "user args come last"
    );
    assert!(tolerates(spec, "workload"));
    let rolling = d.spec.as_ref().unwrap().strategy.as_ref().unwrap();
    let rolling = rolling.rolling_update.as_ref().unwrap();
    assert_eq!(
        rolling.max_surge,
        Some(IntOrString::Int(0)),
        "no surge onto devices that are not free"
    );
}

#[test]
fn a_175b_model_spans_two_h100_nodes_as_a_leader_worker_set() {
    let md = ModelDeployment::test("gpt3-175b")
        .model("gpt3-175b")
        .on("h100-80gb")
        .precision("bf16")
        .concurrency(64);
    let (plan, built) = plan_and_build(&md);
    assert_eq!((plan.nodes_per_replica, plan.pipeline_parallel), (2, 2));
    let lws = lws(&built);
    assert_eq!(
        built.workload.name(),
        "gpt3-175b-group",
        "LWS's own headless Service takes the LWS's name"
    );
    assert_eq!(built.service.metadata.name.as_deref(), Some("gpt3-175b"));
    let template = &lws.spec.leader_worker_template;
    assert_eq!(template.size, 2, "one pod per node of the replica");
    assert_eq!(
        template.restart_policy.as_deref(),
        Some("RecreateGroupOnPodRestart")
    );

    let leader = template
        .leader_template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap();
    let c = engine(leader);
    assert_eq!(devices(c, "nvidia.com/gpu").0, "8");
    let command = c.command.as_ref().unwrap();
    assert!(
        command[2].contains("ray start --head --port=6379"),
        "{command:?}"
    );
    assert!(command[2].contains("$LWS_GROUP_SIZE"));
    assert!(command[2].ends_with(r#"exec vllm serve "$@""#));
    let args = c.args.as_ref().unwrap();
    assert_eq!(flag(args, "--tensor-parallel-size"), Some("8"));
    assert_eq!(flag(args, "--pipeline-parallel-size"), Some("2"));
    assert_eq!(flag(args, "--distributed-executor-backend"), Some("ray"));
    assert!(c.readiness_probe.is_some());

    let worker = template.worker_template.spec.as_ref().unwrap();
    let w = engine(worker);
    assert_eq!(devices(w, "nvidia.com/gpu").0, "8");
    assert_eq!(
        w.command.as_ref().unwrap()[2],
        r#"exec ray start --address="$LWS_LEADER_ADDRESS:6379" --block"#
    );
    assert!(w.readiness_probe.is_none(), "workers serve no HTTP");
    assert!(
        worker.init_containers.is_some(),
        "every node needs the weights"
    );

    let selector = built
        .service
        .spec
        .as_ref()
        .unwrap()
        .selector
        .as_ref()
        .unwrap();
    assert_eq!(
        selector[ROLE_LABEL], ROLE_SERVER,
        "traffic goes to leaders only"
    );
    let labels = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| {
        t.metadata.as_ref().unwrap().labels.as_ref().unwrap()[ROLE_LABEL].clone()
    };
    assert_eq!(
        labels(template.leader_template.as_ref().unwrap()),
        ROLE_SERVER
    );
    assert_eq!(labels(&template.worker_template), ROLE_WORKER);
}

#[test]
fn pods_request_the_device_resource_their_pools_nodes_advertise() {
    // Huawei Cloud CCE's AI suite advertises the 910B as ascend-1980.
    let mut fleet = Fleet::from_yaml(FLEET).unwrap();
    for pool in &mut fleet.pools {
        if pool.accelerator == "ascend-910b" {
            pool.device_resource = Some("huawei.com/ascend-1980".to_owned());
        }
    }
    let md = ModelDeployment::test("llama-70b-ascend")
        .model("llama-3.1-70b")
        .on("ascend-910b");
    let (plan, built) = plan_and_build_on(&md, &fleet);
    let spec = pod_spec(deployment(&built));
    let c = engine(spec);
    assert_eq!(
        devices(c, "huawei.com/ascend-1980"),
        (
            plan.devices_per_node.to_string(),
            plan.devices_per_node.to_string()
        )
    );
    let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert!(
        !requests.contains_key("huawei.com/Ascend910"),
        "{requests:?}"
    );
    assert!(tolerates(spec, "huawei.com/ascend-1980"));
}

#[test]
fn a_70b_model_on_ascend_runs_vllm_ascend_with_the_driver_mounted_only_when_asked() {
    let md = ModelDeployment::test("llama-70b-ascend")
        .model("llama-3.1-70b")
        .on("ascend-910b");
    // By default the Ascend Docker Runtime mounts the driver: no host path
    // (which a namespace enforcing Pod Security baseline would refuse).
    let (_, built) = plan_and_build(&md);
    let spec = pod_spec(deployment(&built));
    assert!(
        spec.volumes.iter().flatten().all(|v| v.host_path.is_none()),
        "{:?}",
        spec.volumes
    );
    let with_paths = BuildOptions {
        ascend_host_paths: true,
        ..options()
    };
    let (plan, built) = plan_and_build_with(&md, &Fleet::from_yaml(FLEET).unwrap(), &with_paths);
    let spec = pod_spec(deployment(&built));
    let c = engine(spec);
    assert_eq!(c.image.as_deref(), Some(VLLM_ASCEND_IMAGE));
    assert_eq!(
        devices(c, "huawei.com/Ascend910").0,
        plan.devices_per_node.to_string()
    );
    assert!(tolerates(spec, "huawei.com/Ascend910"));
    let driver = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == "/usr/local/Ascend/driver")
        .expect("the Ascend driver is mounted");
    assert_eq!(driver.read_only, Some(true));
    let volume = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == driver.name)
        .unwrap();
    assert_eq!(
        volume.host_path.as_ref().unwrap().path,
        "/usr/local/Ascend/driver"
    );
    assert_eq!(
        affinity(spec),
        [(
            "cce.cloud.com/cce-nodepool".to_owned(),
            vec!["snt9b-910b".to_owned()]
        )]
    );
    let labels = deployment(&built).metadata.labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], "vllm-ascend");
}

#[test]
fn quantization_flags_follow_the_precision_and_engine() {
    let fp8 = ModelDeployment::test("fp8")
        .model("llama-3.1-70b")
        .on("h100-80gb")
        .precision("fp8");
    let args = engine(pod_spec(deployment(&plan_and_build(&fp8).1)))
        .args
        .clone()
        .unwrap();
    assert_eq!(flag(&args, "--quantization"), Some("fp8"));

    let int8 = ModelDeployment::test("w8a8")
        .model("llama-3.1-70b")
        .on("ascend-910b")
        .precision("int8");
    let args = engine(pod_spec(deployment(&plan_and_build(&int8).1)))
        .args
        .clone()
        .unwrap();
    assert_eq!(flag(&args, "--quantization"), Some("ascend"));

    let int4 = ModelDeployment::test("awq")
        .model("llama-3.1-70b")
        .on("h100-80gb")
        .precision("int4");
    let args = engine(pod_spec(deployment(&plan_and_build(&int4).1)))
        .args
        .clone()
        .unwrap();
    assert_eq!(
        flag(&args, "--quantization"),
        None,
        "vLLM reads the method from the checkpoint"
    );
}

#[test]
fn weights_on_a_claim_are_mounted_not_fetched() {
    let md = ModelDeployment::test("from-pvc")
        .source("pvc://weights/llama/8b")
        .on("l40s");
    let (_, built) = plan_and_build(&md);
    let spec = pod_spec(deployment(&built));
    assert!(spec.init_containers.is_none());
    let weights = &engine(spec).volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (weights.mount_path.as_str(), weights.sub_path.as_deref()),
        ("/models/llama-3.1-8b", Some("llama/8b"))
    );
    let claim = spec.volumes.as_ref().unwrap()[0]
        .persistent_volume_claim
        .clone()
        .unwrap();
    assert_eq!(
        (claim.claim_name.as_str(), claim.read_only),
        ("weights", Some(true))
    );
}

/// The source's credentials reach the container that fetches the
/// weights, from the Secret the spec names, and no other container; a
/// Secret that must not be used that way builds nothing.
#[test]
fn the_source_secret_goes_to_the_fetcher_alone() {
    let mut md = ModelDeployment::test("keyed").on("l40s");
    md.spec.source_secret = Some("model-store-keys".to_owned());
    let (_, built) = plan_and_build(&md);
    let spec = pod_spec(deployment(&built));
    let fetcher = &spec.init_containers.as_ref().unwrap()[0];
    let from = fetcher
        .env_from
        .as_ref()
        .expect("the fetcher gets the Secret");
    let secret = from[0].secret_ref.as_ref().unwrap();
    assert_eq!(secret.name, "model-store-keys");
    assert_eq!(
        secret.optional,
        Some(false),
        "a missing Secret stops the pod"
    );
    assert!(engine(spec).env_from.is_none(), "the engine never sees it");
    let unkeyed = ModelDeployment::test("plain").on("l40s");
    let (_, built) = plan_and_build(&unkeyed);
    let spec = pod_spec(deployment(&built));
    assert!(spec.init_containers.as_ref().unwrap()[0].env_from.is_none());

    let plan = plan_and_build(&unkeyed).0;
    let fleet = Fleet::from_yaml(FLEET).unwrap();
    let (pool, accelerator) = planned_on(&fleet, &plan);
    for (secret, source, needle) in [
        (
            modelfleet_core::contract::tenancy::ENGINE_API_KEY_SECRET,
            "s3://models/llama",
            "engines' API key",
        ),
        ("Keys", "s3://models/llama", "must name a Secret"),
        ("keys", "pvc://weights/llama", "mounted, not fetched"),
    ] {
        let mut md = ModelDeployment::test("bad").on("l40s").source(source);
        md.spec.source_secret = Some(secret.to_owned());
        let e = build(&md, &plan, pool, accelerator, &options())
            .err()
            .unwrap_or_else(|| panic!("{secret} on {source} was built"));
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn a_pool_without_labels_is_pinned_by_the_modelfleet_pool_label() {
    let md = ModelDeployment::test("spare")
        .on("l40s")
        .pool("prod/spare-l40s");
    let (_, built) = plan_and_build(&md);
    assert_eq!(
        affinity(pod_spec(deployment(&built))),
        [(
            "modelfleet.io/pool".to_owned(),
            vec!["spare-l40s".to_owned()]
        )]
    );
}

#[test]
fn every_object_is_owned_by_the_model_deployment_and_labelled() {
    let md = ModelDeployment::test("owned")
        .on("l40s")
        .image("registry.local/vllm:patched");
    let (_, built) = plan_and_build(&md);
    let metas = [
        &deployment(&built).metadata,
        &built.service.metadata,
        &built.disruption_budget.metadata,
    ];
    for meta in metas {
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("ModelDeployment", "owned", TEST_UID, Some(true))
        );
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "modelfleet");
        assert_eq!(labels["app.kubernetes.io/instance"], "owned");
        assert_eq!(labels[DEPLOYMENT_LABEL], "owned");
        assert_eq!(meta.namespace.as_deref(), Some(TEST_NAMESPACE));
    }
    let image = engine(pod_spec(deployment(&built))).image.clone();
    assert_eq!(image.as_deref(), Some("registry.local/vllm:patched"));
    let pdb = built.disruption_budget.spec.as_ref().unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
}

#[test]
fn build_refuses_an_unstored_object_or_a_foreign_plan() {
    let fleet = Fleet::from_yaml(FLEET).unwrap();
    let md = ModelDeployment::test("x").on("l40s");
    let (plan, _) = plan_and_build_on(&md, &fleet);
    let l40s = Accelerator::find("l40s").unwrap();
    let mut unstored = md.clone();
    unstored.metadata.uid = None;
    let err = build(&unstored, &plan, &fleet.pools[0], l40s, &options()).unwrap_err();
    assert_eq!(err, BuildError::NotStored { field: "uid" });
    let err = build(&md, &plan, &fleet.pools[1], l40s, &options()).unwrap_err();
    assert_eq!(err.metric_label(), "build_plan_mismatch");
}

#[test]
fn applied_resources_report_what_the_workload_reports() {
    let md = ModelDeployment::test("x").on("l40s").replicas(2);
    let (_, built) = plan_and_build(&md);
    let mut workload = deployment(&built).clone();
    workload.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus {
        ready_replicas: Some(1),
        ..Default::default()
    });
    let (service, pdb) = (built.service.clone(), built.disruption_budget.clone());
    let applied = built.applied(Workload::Deployment(Box::new(workload)), service, pdb);
    assert_eq!(applied.ready_replicas(), 1);
    assert_eq!(applied.endpoint, "http://x.models.svc:8000/v1");
}

/// Every pod the operator builds — a one-node server, a multi-node
/// group's leader and workers, on GPUs and on Ascend — is hardened the
/// same way: no service-account token, the RuntimeDefault seccomp profile,
/// and containers that drop every capability and cannot escalate; the
/// weight fetcher also runs as a non-root user on a read-only root.
#[test]
fn every_pod_is_hardened_and_carries_no_token() {
    let mut specs: Vec<(String, PodSpec)> = Vec::new();
    for md in [
        ModelDeployment::test("small")
            .model("llama-3.1-8b")
            .on("l40s"),
        ModelDeployment::test("ascend")
            .model("llama-3.1-70b")
            .on("ascend-910b"),
    ] {
        let (_, built) = plan_and_build(&md);
        specs.push((md.spec.model.clone(), pod_spec(deployment(&built)).clone()));
    }
    let md = ModelDeployment::test("gpt3-175b")
        .model("gpt3-175b")
        .on("h100-80gb")
        .precision("bf16")
        .concurrency(64);
    let (_, built) = plan_and_build(&md);
    let template = &lws(&built).spec.leader_worker_template;
    for (role, pod) in [
        ("leader", template.leader_template.as_ref()),
        ("worker", Some(&template.worker_template)),
    ] {
        specs.push((role.to_owned(), pod.unwrap().spec.clone().unwrap()));
    }

    for (what, spec) in &specs {
        assert_eq!(spec.automount_service_account_token, Some(false), "{what}");
        let seccomp = spec
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| p.type_.as_str());
        assert_eq!(seccomp, Some("RuntimeDefault"), "{what}");
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for c in containers {
            let sc = c.security_context.as_ref().unwrap_or_else(|| {
                panic!("{what}/{}: no securityContext", c.name);
            });
            assert_eq!(
                sc.allow_privilege_escalation,
                Some(false),
                "{what}/{}",
                c.name
            );
            assert_eq!(sc.privileged, Some(false), "{what}/{}", c.name);
            let caps = sc.capabilities.as_ref().unwrap();
            assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
            assert_eq!(caps.add, None, "{what}/{}", c.name);
            if c.name == "fetch-weights" {
                assert_eq!(sc.run_as_non_root, Some(true));
                assert_eq!(sc.run_as_user, Some(pod::FETCH_USER));
                assert_eq!(sc.read_only_root_filesystem, Some(true));
            }
        }
    }
    assert!(
        specs
            .iter()
            .any(|(_, s)| s.init_containers.as_ref().is_some_and(|i| !i.is_empty())),
        "a fetcher was checked"
    );
}

/// Where a hub manages the cluster, every engine that answers HTTP (a
/// server, a group's leader) takes its API key from the namespace's
/// Secret — never a literal in the pod spec — and a group's workers,
/// which answer nothing, get none. A standalone operator sets none.
#[test]
fn engines_require_the_namespace_api_key_when_a_hub_manages_the_cluster() {
    use modelfleet_core::contract::tenancy;
    let hub_managed = BuildOptions {
        engine_api_key: true,
        ..options()
    };
    let fleet = Fleet::from_yaml(FLEET).unwrap();
    let key_of = |c: &Container| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == tenancy::ENGINE_API_KEY_ENV)
            .cloned()
    };
    let small = ModelDeployment::test("small")
        .model("llama-3.1-8b")
        .on("l40s");
    let (_, built) = plan_and_build_with(&small, &fleet, &hub_managed);
    let var = key_of(engine(pod_spec(deployment(&built)))).expect("the server gets the key");
    assert_eq!(var.value, None, "the key is never written into the spec");
    let from = var.value_from.unwrap().secret_key_ref.unwrap();
    assert_eq!(from.name, tenancy::ENGINE_API_KEY_SECRET);
    assert_eq!(from.key, tenancy::ENGINE_API_KEY_FIELD);
    assert_eq!(from.optional, Some(false), "no Secret, no engine");

    let (_, standalone) = plan_and_build(&small);
    assert_eq!(key_of(engine(pod_spec(deployment(&standalone)))), None);

    let big = ModelDeployment::test("gpt3-175b")
        .model("gpt3-175b")
        .on("h100-80gb")
        .precision("bf16")
        .concurrency(64);
    let (_, built) = plan_and_build_with(&big, &fleet, &hub_managed);
    let template = &lws(&built).spec.leader_worker_template;
    let leader = template
        .leader_template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap();
    assert!(key_of(engine(leader)).is_some());
    let worker = template.worker_template.spec.as_ref().unwrap();
    assert_eq!(key_of(engine(worker)), None);
}

mod cache;
mod identity;
