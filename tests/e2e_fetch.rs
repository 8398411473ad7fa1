//! End to end, the weights' real path: an S3 server on loopback (s3s-fs)
//! holds a small model; a ModelDeployment names it with `s3://` and a
//! Secret of credentials; the sandbox's kubelet runs modelfleet's real
//! fetch code for the pod's `fetch-weights` init container (the operator
//! builds it as for a real cluster), and the deployment reaches Ready on
//! what was downloaded. A wrong key fails with the fetch's own reason and
//! no retry storm; a fetch killed halfway resumes instead of starting over.

#[path = "support/deployments.rs"]
mod deployments;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, ListParams, LogParams, PostParams};
use modelfleet::embedded::{EmbeddedCluster, EmbeddedOptions};
use modelfleet_core::crd::{ModelDeployment, Phase, WeightsFrom};
use modelfleet_core::fleet::{Fleet, ModelCache};
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result};
use tokio::sync::watch;

use deployments::{phase, wait_for};

const ACCESS_KEY: &str = "AKIDE2EFETCH0001";
const SECRET_KEY: &str = "e2e-fetch-secret-key";
const MIB: usize = 1024 * 1024;

/// s3s-fs, counting GETs; GETs past `open` wait until the gate opens.
struct Gated {
    inner: s3s_fs::FileSystem,
    gets: Arc<AtomicUsize>,
    open: usize,
    gate: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl S3 for Gated {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.inner.list_objects_v2(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let n = self.gets.fetch_add(1, Ordering::SeqCst) + 1;
        if n > self.open {
            let mut gate = self.gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        self.inner.get_object(req).await
    }
}

/// Counts every HTTP request, refused ones included.
#[derive(Clone)]
struct CountRequests<S> {
    inner: S,
    requests: Arc<AtomicUsize>,
}

impl<S, R> hyper::service::Service<R> for CountRequests<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.call(request)
    }
}

struct Store {
    endpoint: String,
    gets: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    gate: watch::Sender<bool>,
    /// Shard bytes by file name.
    files: Vec<(String, Vec<u8>)>,
    _root: tempfile::TempDir,
}

/// Deterministic bytes that differ from offset to offset.
fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(u64::from(seed)) as u8
        })
        .collect()
}

/// Bucket `models`, prefix `tiny/`: a config and two shards of
/// `shard_mib` MiB. GETs after the first `open` wait for the gate.
async fn store(shard_mib: usize, open: usize) -> Store {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("models").join("tiny");
    std::fs::create_dir_all(&dir).unwrap();
    let files = vec![
        (
            "config.json".to_owned(),
            br#"{"architectures": ["LlamaForCausalLM"]}"#.to_vec(),
        ),
        (
            "model-00001-of-00002.safetensors".to_owned(),
            content(1, shard_mib * MIB),
        ),
        (
            "model-00002-of-00002.safetensors".to_owned(),
            content(2, shard_mib * MIB),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let gets = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = watch::channel(open == usize::MAX);
    let service = {
        let mut b = S3ServiceBuilder::new(Gated {
            inner: s3s_fs::FileSystem::new(root.path()).unwrap(),
            gets: gets.clone(),
            open,
            gate: gate_rx,
        });
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        b.build()
    };
    let service = CountRequests {
        inner: service,
        requests: requests.clone(),
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Store {
        endpoint: format!("http://{addr}"),
        gets,
        requests,
        gate,
        files,
        _root: root,
    }
}

async fn cluster(disks: &Path) -> EmbeddedCluster {
    cluster_of(disks, Fleet::example()).await
}

async fn cluster_of(disks: &Path, fleet: Fleet) -> EmbeddedCluster {
    let mut options = EmbeddedOptions::new("sandbox", fleet);
    options.time_factor = 0.005;
    options.requeue = Duration::from_millis(300);
    options.real_fetch_disks = Some(disks.to_owned());
    EmbeddedCluster::start(options).await.unwrap()
}

async fn credentials(client: &kube::Client, name: &str, endpoint: &str, secret_key: &str) {
    let data = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", secret_key),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn deployment(name: &str, secret: &str) -> ModelDeployment {
    deployment_of(name, secret, 1)
}

fn deployment_of(name: &str, secret: &str, replicas: u32) -> ModelDeployment {
    serde_yaml::from_str(&format!(
        "apiVersion: modelfleet.io/v1alpha1\n\
         kind: ModelDeployment\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec:\n  \
           model: llama-3.1-8b\n  \
           source: s3://models/tiny\n  \
           sourceSecret: {secret}\n  \
           serving: {{maxModelLen: 8192}}\n  \
           replicas: {replicas}\n  \
           placement: {{accelerators: [l40s]}}\n"
    ))
    .unwrap()
}

async fn pods_of(client: &kube::Client, name: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels(&format!("modelfleet.io/deployment={name}")))
        .await
        .unwrap()
        .items
}

async fn pod_of(client: &kube::Client, name: &str) -> Pod {
    let mut pods = pods_of(client, name).await;
    assert_eq!(pods.len(), 1, "one pod for {name}");
    pods.remove(0)
}

async fn fetch_log(client: &kube::Client, pod: &str) -> String {
    Api::<Pod>::namespaced(client.clone(), "default")
        .logs(
            pod,
            &LogParams {
                container: Some("fetch-weights".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

impl Store {
    /// Every file of the model is in `dir`, byte for byte.
    fn assert_arrived(&self, dir: &Path) {
        for (name, bytes) in &self.files {
            let fetched = std::fs::read(dir.join(name)).unwrap();
            assert!(&fetched == bytes, "{name} arrived whole and unchanged");
        }
    }
}

/// How often the pod's fetch container has restarted.
fn fetch_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .and_then(|s| s.first())
        .map_or(0, |s| s.restart_count)
}

/// The pod's model directory on its node's disk.
fn model_dir(disks: &Path, pod: &Pod) -> PathBuf {
    let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
    disks
        .join(node)
        .join(pod.metadata.uid.as_deref().unwrap())
        .join("models")
        .join("llama-3.1-8b")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_becomes_ready_on_weights_the_real_fetch_downloaded() {
    let store = store(4, usize::MAX).await;
    let disks = tempfile::tempdir().unwrap();
    let cluster = cluster(disks.path()).await;
    let client = cluster.client();
    credentials(&client, "s3-creds", &store.endpoint, SECRET_KEY).await;
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &deployment("tiny", "s3-creds"))
        .await
        .unwrap();
    wait_for(&api, "tiny", "Ready", |md| phase(md) == Some(Phase::Ready)).await;

    let pod = pod_of(&client, "tiny").await;
    store.assert_arrived(&model_dir(disks.path(), &pod));
    // 4 MiB shards in 16 MiB chunks: one GET per file.
    assert_eq!(store.gets.load(Ordering::SeqCst), store.files.len());
    let log = fetch_log(&client, pod.metadata.name.as_deref().unwrap()).await;
    assert!(
        log.contains("fetch s3://models/tiny into /models/llama-3.1-8b"),
        "{log}"
    );
    assert!(log.contains("fetch: 3 files, "), "{log}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_fails_with_the_fetchs_reason_and_no_retry_storm() {
    let store = store(1, usize::MAX).await;
    let disks = tempfile::tempdir().unwrap();
    let cluster = cluster(disks.path()).await;
    let client = cluster.client();
    credentials(&client, "bad-creds", &store.endpoint, "not-the-secret").await;
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &deployment("denied", "bad-creds"))
        .await
        .unwrap();
    let md = wait_for(&api, "denied", "Failed", |md| {
        phase(md) == Some(Phase::Failed)
    })
    .await;
    let ready = md
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready
            .message
            .contains("init container fetch-weights keeps failing"),
        "{}",
        ready.message
    );
    assert!(
        ready.message.contains("s3://models/tiny") && ready.message.contains("AWS_ACCESS_KEY_ID"),
        "the fetch's own line, naming the object and the credentials' source: {}",
        ready.message
    );
    assert!(
        !ready.message.contains("not-the-secret"),
        "no secret in a status"
    );
    // Let the back-off run a while: each run is refused at its first
    // request, and runs are spaced by a doubling back-off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pod = pod_of(&client, "denied").await;
    let restarts = fetch_restarts(&pod);
    let requests = store.requests.load(Ordering::SeqCst);
    assert!(restarts >= 1, "it was retried");
    assert!(
        requests <= usize::try_from(restarts).unwrap() + 2,
        "{requests} requests for {restarts} restarts: one refused request per run"
    );
    assert_eq!(store.gets.load(Ordering::SeqCst), 0, "nothing downloaded");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_killed_halfway_resumes_where_it_stopped() {
    // Two 48 MiB shards are six 16 MiB chunks, and the config one more;
    // the first four asked for are served (three chunks at least), the
    // rest wait, and the fetch is killed meanwhile.
    let store = store(48, 4).await;
    let disks = tempfile::tempdir().unwrap();
    let cluster = cluster(disks.path()).await;
    let client = cluster.client();
    credentials(&client, "s3-creds", &store.endpoint, SECRET_KEY).await;
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &deployment("resumed", "s3-creds"))
        .await
        .unwrap();
    let md = wait_for(&api, "resumed", "a third fetched", |md| {
        md.status.as_ref().is_some_and(|s| {
            s.fetching
                .first()
                .is_some_and(|f| f.bytes_done >= 3 * 16 * MIB as u64)
        })
    })
    .await;
    let pod = &md.status.unwrap().fetching[0].pod;
    // The journal is kept within a second of the last chunk.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let gets_before = store.gets.load(Ordering::SeqCst);
    assert_eq!(
        gets_before, 7,
        "every chunk asked for at once: four served, three waiting"
    );
    cluster.nodes.fail_pod("default", pod).unwrap();
    store.gate.send_replace(true);
    wait_for(&api, "resumed", "Ready", |md| {
        phase(md) == Some(Phase::Ready)
    })
    .await;
    let pod = pod_of(&client, "resumed").await;
    store.assert_arrived(&model_dir(disks.path(), &pod));
    // Only the three that waited are asked for again; a fetch that
    // started over would ask for all seven.
    let restarts = fetch_restarts(&pod);
    assert_eq!(restarts, 1, "the fetch ran twice");
    // The log is the second run's (the first one's is `--previous`).
    let log = fetch_log(&client, pod.metadata.name.as_deref().unwrap()).await;
    assert_eq!(
        store.gets.load(Ordering::SeqCst) - gets_before,
        3,
        "only the chunks not yet on disk were fetched again: {log}"
    );
    assert!(log.contains("bytes kept from an earlier try"), "{log}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_on_the_same_node_starts_from_the_node_cache() {
    let store = store(4, usize::MAX).await;
    let disks = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::example();
    for pool in fleet.pools.iter_mut().filter(|p| p.accelerator == "l40s") {
        pool.settings.model_cache = Some(ModelCache {
            path: "/var/lib/modelfleet/models".into(),
            bytes: 100 << 30,
        });
    }
    let cluster = cluster_of(disks.path(), fleet).await;
    let client = cluster.client();
    credentials(&client, "s3-creds", &store.endpoint, SECRET_KEY).await;
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment_of("cached", "s3-creds", 2),
    )
    .await
    .unwrap();
    let md = wait_for(
        &api,
        "cached",
        "Ready with both pods' weights known",
        |md| {
            phase(md) == Some(Phase::Ready)
                && md.status.as_ref().is_some_and(|s| s.weights.len() == 2)
        },
    )
    .await;

    let pods = pods_of(&client, "cached").await;
    assert_eq!(pods.len(), 2);
    let node = |p: &Pod| p.spec.as_ref().unwrap().node_name.clone().unwrap();
    assert_eq!(node(&pods[0]), node(&pods[1]), "bin-packed onto one node");
    // One download for the node: one GET per file, not two.
    assert_eq!(store.gets.load(Ordering::SeqCst), store.files.len());
    let mut from: Vec<WeightsFrom> = md.status.unwrap().weights.iter().map(|w| w.from).collect();
    from.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(from, [WeightsFrom::Download, WeightsFrom::NodeCache]);

    // Both pods' model directories are links into the namespace's
    // directory of the node's cache, where the files arrived whole.
    let cache = disks
        .path()
        .join(node(&pods[0]))
        .join("host/var/lib/modelfleet/models/default");
    for pod in &pods {
        let link = model_dir(disks.path(), pod);
        let target = std::fs::read_link(&link).unwrap();
        assert!(
            target.starts_with(&cache),
            "{} -> {}",
            link.display(),
            target.display()
        );
        store.assert_arrived(&link);
    }
    // The cache reached the pods as a claim bound to a hostPath volume
    // made for this namespace alone.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim_name = pods[0]
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .unwrap();
    let claim = claims.get(&claim_name).await.unwrap();
    assert_eq!(claim.status.unwrap().phase.as_deref(), Some("Bound"));
    let volume = Api::<PersistentVolume>::all(client.clone())
        .get(claim.spec.unwrap().volume_name.as_deref().unwrap())
        .await
        .unwrap();
    let spec = volume.spec.unwrap();
    assert_eq!(
        spec.host_path.unwrap().path,
        "/var/lib/modelfleet/models/default"
    );
    assert_eq!(
        spec.claim_ref.unwrap().namespace.as_deref(),
        Some("default")
    );
    // The engine reads the cache, and cannot write it.
    let engine = &pods[0].spec.as_ref().unwrap().containers[0];
    let mount = engine
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "model-cache")
        .unwrap();
    assert_eq!(mount.read_only, Some(true));
    cluster.shutdown().await;
}
