//! End to end: the real operator against a sandbox cluster, driven through
//! the real `kubectl` and through a `kube::Client`, as a platform engineer
//! would drive a cluster.

#[path = "support/deployments.rs"]
mod deployments;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use modelfleet::embedded::{EmbeddedCluster, EmbeddedOptions};
use modelfleet_core::crd::{ModelDeployment, Phase};
use modelfleet_core::fleet::Fleet;

use deployments::{WAIT, phase, wait_for};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

async fn start(fleet: Fleet, listen: bool) -> EmbeddedCluster {
    let mut options = EmbeddedOptions::new("sandbox", fleet);
    options.time_factor = 0.005;
    options.requeue = Duration::from_millis(500);
    if listen {
        options.listen = Some("127.0.0.1:0".parse().unwrap());
    }
    EmbeddedCluster::start(options)
        .await
        .expect("the embedded cluster starts")
}

async fn pods_of(client: &kube::Client, namespace: &str, name: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default().labels(&format!("modelfleet.io/deployment={name}")))
        .await
        .unwrap()
        .items
}

async fn node_pool(client: &kube::Client, node: &str) -> String {
    let api: Api<Node> = Api::all(client.clone());
    let node = api.get(node).await.unwrap();
    node.metadata
        .labels
        .unwrap_or_default()
        .get("modelfleet.io/pool")
        .cloned()
        .unwrap_or_default()
}

fn example(file: &str) -> ModelDeployment {
    let text = std::fs::read_to_string(repo(&format!("manifests/examples/{file}"))).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("kubectl is installed (.ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// While a replica downloads its weights, the deployment's status says how
/// far it has got, read by the operator (with the rights manifests/ gives
/// it) from the fetch container's log, which `kubectl logs` shows too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loading_deployment_shows_its_download_progress() {
    let mut options = EmbeddedOptions::new("sandbox", Fleet::example());
    options.time_factor = 0.005;
    options.requeue = Duration::from_millis(300);
    options.listen = Some("127.0.0.1:0".parse().unwrap());
    // About 16 GB of weights at 4 MB/s of simulated time: 20 s of real
    // time, as long as the test looks.
    options.fetch_bytes_per_second = 4_000_000;
    let cluster = EmbeddedCluster::start(options).await.unwrap();
    let api: Api<ModelDeployment> = Api::namespaced(cluster.client(), "default");
    api.create(&PostParams::default(), &example("llama-3.1-8b-l40s.yaml"))
        .await
        .unwrap();
    let md = wait_for(&api, "llama-8b", "Loading with progress", |md| {
        md.status.as_ref().is_some_and(|s| {
            s.phase == Some(Phase::Loading)
                && s.fetching
                    .first()
                    .is_some_and(|f| f.bytes_done > 0 && f.bytes_done < f.bytes_total)
        })
    })
    .await;
    let status = md.status.unwrap();
    let fetching = &status.fetching[0];
    let pods = pods_of(&cluster.client(), "default", "llama-8b").await;
    assert_eq!(pods.len(), 1);
    assert_eq!(Some(&fetching.pod), pods[0].metadata.name.as_ref());
    let annotated: u64 =
        pods[0].metadata.annotations.as_ref().unwrap()["modelfleet.io/model-bytes"]
            .parse()
            .unwrap();
    assert_eq!(fetching.bytes_total, annotated);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready.message.contains("GiB of weights fetched by 1 pod"),
        "{}",
        ready.message
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let pod = fetching.pod.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        kubectl(
            &kubeconfig,
            &["logs", &pod, "-c", "fetch-weights", "--tail=1"],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.starts_with("fetch s3://models/meta-llama/Llama-3.1-8B-Instruct: "),
        "{out}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_crd_and_an_example_and_the_operator_serves_it() {
    let cluster = start(Fleet::example(), true).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let kc = |args: &[&str]| {
        let kubeconfig = kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                kubectl(&kubeconfig, &refs)
            })
            .await
            .unwrap()
        }
    };

    let crds = repo("manifests/crds").display().to_string();
    let (ok, out) = kc(&["apply", "-f", &crds]).await;
    assert!(ok, "{out}");
    let (ok, out) = kc(&["api-resources", "--api-group=modelfleet.io"]).await;
    assert!(
        ok && out.contains("modeldeployments") && out.contains(" md "),
        "{out}"
    );

    let example = repo("manifests/examples/llama-3.1-8b-l40s.yaml")
        .display()
        .to_string();
    let (ok, out) = kc(&["apply", "-f", &example]).await;
    assert!(ok, "{out}");
    let api: Api<ModelDeployment> = Api::namespaced(cluster.client(), "default");
    wait_for(&api, "llama-8b", "Ready", |md| {
        phase(md) == Some(Phase::Ready)
    })
    .await;

    let (ok, out) = kc(&["get", "md"]).await;
    assert!(ok, "{out}");
    let header = out.lines().next().unwrap();
    for column in [
        "NAME",
        "MODEL",
        "ACCELERATOR",
        "DEVICES",
        "READY",
        "PHASE",
        "AGE",
    ] {
        assert!(header.contains(column), "{column} missing from {header:?}");
    }
    let row = out.lines().find(|l| l.starts_with("llama-8b")).unwrap();
    for cell in ["llama-3.1-8b", "l40s", "Ready"] {
        assert!(row.contains(cell), "{cell} missing from {row:?}");
    }
    let (ok, out) = kc(&["describe", "md", "llama-8b"]).await;
    assert!(
        ok && out.contains("PlanChosen") && out.contains("WorkloadReady"),
        "{out}"
    );

    // Server-side apply of the same file, then a change through it.
    let (ok, out) = kc(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &example,
    ])
    .await;
    assert!(ok, "{out}");

    let (ok, out) = kc(&["delete", "md", "llama-8b", "--wait=true", "--timeout=60s"]).await;
    assert!(ok, "{out}");
    assert!(
        pods_of(&cluster.client(), "default", "llama-8b")
            .await
            .is_empty()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_land_on_the_planned_pool_and_175b_spans_two_nodes() {
    let cluster = start(Fleet::example(), false).await;
    let client = cluster.client();
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    for file in [
        "llama-3.1-70b-h100.yaml",
        "gpt3-175b-h100-two-nodes.yaml",
        "llama-3.1-70b-ascend-910b.yaml",
    ] {
        api.create(&PostParams::default(), &example(file))
            .await
            .unwrap();
    }
    for name in ["llama-70b", "gpt3-175b", "llama-70b-ascend"] {
        let md = wait_for(&api, name, "Ready", |md| phase(md) == Some(Phase::Ready)).await;
        let plan = md.status.as_ref().unwrap().plan.clone().unwrap();
        let pool = plan.pool.split('/').nth(1).unwrap().to_owned();
        let pods = pods_of(&client, "default", name).await;
        assert!(!pods.is_empty());
        for pod in &pods {
            let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
            assert_eq!(
                node_pool(&client, &node).await,
                pool,
                "{name}: pod on {node}"
            );
        }
        if name == "gpt3-175b" {
            assert_eq!(plan.nodes_per_replica, 2);
            let nodes: BTreeSet<_> = pods
                .iter()
                .map(|p| p.spec.as_ref().unwrap().node_name.clone())
                .collect();
            assert_eq!(nodes.len(), 2, "a 175B replica spans two nodes: {nodes:?}");
        }
        if name == "llama-70b-ascend" {
            let limits = pods[0].spec.as_ref().unwrap().containers[0]
                .resources
                .clone()
                .unwrap()
                .limits
                .unwrap();
            assert!(limits.contains_key("huawei.com/Ascend910"), "{limits:?}");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_for_free_capacity_reports_unschedulable_and_deleting_frees_devices() {
    // Two H100 nodes, one of them busy: a 175B replica needs both.
    let fleet = Fleet::from_yaml(
        "pools:\n- {cloud: aws, region: us-east-1, cluster: sandbox, name: p5-h100, accelerator: h100-80gb,\n   \
         devicesPerNode: 8, nodesTotal: 2, nodesFree: 1, pricePerDeviceHour: \"6.88 USD\"}\n",
    )
    .unwrap();
    let cluster = start(fleet, false).await;
    let client = cluster.client();
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &example("gpt3-175b-h100-two-nodes.yaml"),
    )
    .await
    .unwrap();
    let md = wait_for(&api, "gpt3-175b", "Unschedulable", |md| {
        md.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "WorkloadReady" && c.reason == "Unschedulable")
        })
    })
    .await;
    assert_eq!(phase(&md), Some(Phase::Scheduling));
    let message = &md
        .status
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "WorkloadReady")
        .unwrap()
        .message
        .clone();
    assert!(message.contains("Insufficient nvidia.com/gpu"), "{message}");

    // A model that fits the free node waits too, until the 175B is deleted.
    api.create(&PostParams::default(), &example("llama-3.1-70b-h100.yaml"))
        .await
        .unwrap();
    api.delete("gpt3-175b", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while api.get_opt("gpt3-175b").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "gpt3-175b was never deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pods_of(&client, "default", "gpt3-175b").await.is_empty());
    wait_for(&api, "llama-70b", "Ready", |md| {
        phase(md) == Some(Phase::Ready)
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_failing_writes_and_dropped_watches_every_deployment_converges_once() {
    let cluster = start(Fleet::example(), false).await;
    cluster
        .api
        .faults()
        .seed(7)
        .write_error_rate(0.05)
        .drop_watches_every(Some(Duration::from_secs(2)));
    let client = cluster.client();
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    let files = [
        "llama-3.1-8b-l40s.yaml",
        "llama-3.1-70b-h100.yaml",
        "gpt3-175b-h100-two-nodes.yaml",
        "llama-3.1-70b-ascend-910b.yaml",
    ];
    for file in files {
        // A create can itself be one of the failed writes: retry as a client would.
        let md = example(file);
        let mut tries = 0;
        while let Err(e) = api.create(&PostParams::default(), &md).await {
            tries += 1;
            assert!(tries < 20, "{file}: {e}");
            if api
                .get_opt(&md.metadata.name.clone().unwrap())
                .await
                .ok()
                .flatten()
                .is_some()
            {
                break;
            }
        }
    }
    for name in ["llama-8b", "llama-70b", "gpt3-175b", "llama-70b-ascend"] {
        let md = wait_for(&api, name, "Ready", |md| phase(md) == Some(Phase::Ready)).await;
        // No duplicate workloads: exactly the pods the plan asks for.
        let plan = md.status.as_ref().unwrap().plan.clone().unwrap();
        let pods = pods_of(&client, "default", name).await;
        let expected = md.spec.replicas * plan.nodes_per_replica;
        assert_eq!(
            pods.len() as u32,
            expected,
            "{name}: {:?}",
            pods.iter()
                .map(|p| p.metadata.name.clone())
                .collect::<Vec<_>>()
        );
    }
    cluster.api.faults().clear();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ascend_deployment_on_a_cce_pool_requests_ascend_1980_and_becomes_ready() {
    // Huawei Cloud CCE's AI suite advertises the 910B as ascend-1980.
    let fleet = Fleet::from_yaml(
        "pools:\n- {cloud: huaweicloud, region: cn-southwest-2, cluster: sandbox, name: snt9b-cce, \
         accelerator: ascend-910b,\n   devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, \
         deviceResource: huawei.com/ascend-1980, pricePerDeviceHour: \"22.00 CNY\"}\n",
    )
    .unwrap();
    let cluster = start(fleet, false).await;
    let client = cluster.client();
    let nodes: Api<Node> = Api::all(client.clone());
    for node in nodes.list(&ListParams::default()).await.unwrap() {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("cce.cloud.com/cce-nodepool").map(String::as_str),
            Some("snt9b-cce")
        );
        let allocatable = node.status.unwrap().allocatable.unwrap();
        assert_eq!(allocatable["huawei.com/ascend-1980"].0, "8");
        assert!(!allocatable.contains_key("huawei.com/Ascend910"));
    }

    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &example("llama-3.1-70b-ascend-910b.yaml"),
    )
    .await
    .unwrap();
    let md = wait_for(&api, "llama-70b-ascend", "Ready", |md| {
        phase(md) == Some(Phase::Ready)
    })
    .await;
    let plan = md.status.unwrap().plan.unwrap();
    assert_eq!(plan.pool, "sandbox/snt9b-cce");
    let per_node = (plan.devices_per_replica / plan.nodes_per_replica).to_string();
    let pods = pods_of(&client, "default", "llama-70b-ascend").await;
    assert!(!pods.is_empty());
    for pod in &pods {
        let engine = &pod.spec.as_ref().unwrap().containers[0];
        let resources = engine.resources.clone().unwrap();
        for asked in [resources.requests.unwrap(), resources.limits.unwrap()] {
            assert_eq!(
                asked.get("huawei.com/ascend-1980").map(|q| q.0.as_str()),
                Some(per_node.as_str()),
                "{asked:?}"
            );
            assert!(!asked.contains_key("huawei.com/Ascend910"), "{asked:?}");
        }
        let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
        assert_eq!(node_pool(&client, &node).await, "snt9b-cce");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pools_network_interface_mirror_and_pull_secrets_reach_its_pods() {
    // The nodes of a pool in a mainland-China region, annotated by its
    // platform engineer: images through the region's mirror with its
    // credentials, and the collectives on the data network.
    let fleet = Fleet::from_yaml(
        "pools:\n- {cloud: aws, region: us-east-1, cluster: sandbox, name: p5-h100, accelerator: h100-80gb,\n   \
         devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, pricePerDeviceHour: \"6.88 USD\",\n   \
         settings: {networkInterface: eth1, registryMirror: registry.cn-hangzhou.aliyuncs.com/mirror,\n   \
         imagePullSecrets: [acr-pull]}}\n",
    )
    .unwrap();
    let cluster = start(fleet, false).await;
    let client = cluster.client();
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &example("llama-3.1-70b-h100.yaml"))
        .await
        .unwrap();
    wait_for(&api, "llama-70b", "Ready", |md| {
        phase(md) == Some(Phase::Ready)
    })
    .await;
    let pods = pods_of(&client, "default", "llama-70b").await;
    let spec = pods[0].spec.as_ref().unwrap();
    let pull: Vec<_> = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(pull, ["acr-pull"]);
    let mirror = "registry.cn-hangzhou.aliyuncs.com/mirror/";
    let engine = &spec.containers[0];
    let fetch = &spec.init_containers.as_ref().unwrap()[0];
    for image in [&engine.image, &fetch.image] {
        assert!(image.as_deref().unwrap().starts_with(mirror), "{image:?}");
    }
    assert!(
        engine
            .image
            .as_deref()
            .unwrap()
            .contains("/vllm/vllm-openai:"),
        "{:?}",
        engine.image
    );
    let env: Vec<_> = engine
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
        .collect();
    for name in ["NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"] {
        assert!(env.contains(&(name, "eth1")), "{name} missing: {env:?}");
    }
    cluster.shutdown().await;
}
