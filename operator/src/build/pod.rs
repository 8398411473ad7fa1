//! One engine pod: the devices it asks for, the pool it is pinned to, the
//! taints it tolerates, the weights it fetches and mounts, and the probes
//! that tell Kubernetes when it serves.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, HTTPGetAction, HostPathVolumeSource, LocalObjectReference, NodeAffinity,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretEnvSource, SecretKeySelector, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelfleet_core::accelerator::{Accelerator, Vendor};
use modelfleet_core::contract::labels::{
    MODEL_BYTES_ANNOTATION, POOL_LABEL, ROLE_SERVER, ROLE_WORKER,
};
use modelfleet_core::contract::pool_settings::{
    MODEL_CACHE_MOUNT, cache_claim_name, through_mirror,
};
use modelfleet_core::contract::{devices, tenancy};
use modelfleet_core::crd::{ModelSource, SourceScheme};
use modelfleet_core::fleet::{ModelCache, NodePool};
use modelfleet_core::planner::Plan;

use super::engine::{self, HTTP_PORT, LEADER_SCRIPT, MODELS_DIR, RAY_PORT, WORKER_SCRIPT};
use super::identity;
use super::meta::Owner;
use super::sizing;

/// Shared memory for the engine's worker processes (NCCL/HCCL buffers,
/// PyTorch tensors between processes); the container runtime's 64 MiB
/// default makes multi-device serving fail.
const GIB: u64 = 1 << 30;

/// The user the fetch container runs as: the modelfleet image's own
/// non-root user (distroless's `nonroot`).
pub const FETCH_USER: i64 = 65532;

/// What a pod is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The whole replica on one node (a Deployment's pod).
    Server,
    /// Node 0 of a multi-node replica: Ray head and `vllm serve`.
    Leader,
    /// Another node of a multi-node replica: a Ray worker.
    Worker,
}

/// Everything a pod template is made from.
#[derive(Debug)]
pub struct PodInputs<'a> {
    pub owner: &'a Owner,
    pub plan: &'a Plan,
    pub pool: &'a NodePool,
    pub accelerator: &'a Accelerator,
    pub image: String,
    /// The arguments after `vllm serve`.
    pub serve_args: Vec<String>,
    pub source: ModelSource,
    /// The Secret whose keys the fetch container (only) gets as
    /// environment variables: the source's credentials.
    pub source_secret: Option<&'a str>,
    pub fetcher_image: &'a str,
    /// Mount the Ascend driver from the node ([`ASCEND_HOST_PATHS`]); off
    /// where the Ascend Docker Runtime injects it, as MindCluster installs.
    pub ascend_host_paths: bool,
    /// Require the API key of the namespace's Secret
    /// ([`tenancy::ENGINE_API_KEY_SECRET`]) on every engine request.
    pub engine_api_key: bool,
}

pub fn pod_template(inputs: &PodInputs, role: Role) -> PodTemplateSpec {
    let label_role = if role == Role::Worker {
        ROLE_WORKER
    } else {
        ROLE_SERVER
    };
    let fetches = inputs.source.scheme != SourceScheme::Pvc;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(inputs.owner.pod_labels(label_role)),
            annotations: Some(
                [(
                    MODEL_BYTES_ANNOTATION.to_owned(),
                    model_bytes(inputs.plan).to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            // A Service named like an engine setting (`vllm` gives
            // VLLM_PORT=tcp://…) would otherwise inject variables the engine
            // misreads as its own configuration.
            enable_service_links: Some(false),
            // An engine has no business with the Kubernetes API: no token
            // in the pod for a compromised engine to use.
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            affinity: Some(pin_to_pool(inputs.pool)),
            tolerations: Some(tolerations(inputs.pool, inputs.accelerator)),
            init_containers: fetches.then(|| vec![fetch_container(inputs)]),
            containers: vec![engine_container(inputs, role)],
            volumes: Some(volumes(inputs)),
            // The pool's own registry credentials (its nodes' annotation).
            image_pull_secrets: pull_secrets(inputs.pool),
            ..PodSpec::default()
        }),
    }
}

fn mirror(pool: &NodePool) -> Option<&str> {
    pool.settings.registry_mirror.as_deref()
}

fn pull_secrets(pool: &NodePool) -> Option<Vec<LocalObjectReference>> {
    let names = &pool.settings.image_pull_secrets;
    (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect()
    })
}

/// Requires every label the pool's nodes share (the node-group label, or
/// `modelfleet.io/pool` where a platform engineer set it; discovery records
/// them on the pool). A pool without recorded labels is pinned by
/// `modelfleet.io/pool`, which its nodes must then carry.
fn pin_to_pool(pool: &NodePool) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(pool_node_selector(pool)),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    }
}

/// The pool's nodes, as a node selector.
pub(super) fn pool_node_selector(pool: &NodePool) -> NodeSelector {
    let labels = if pool.labels.is_empty() {
        BTreeMap::from([(POOL_LABEL.to_owned(), pool.name.clone())])
    } else {
        pool.labels.clone()
    };
    let requirements = labels
        .into_iter()
        .map(|(key, value)| NodeSelectorRequirement {
            key,
            operator: "In".to_owned(),
            values: Some(vec![value]),
        })
        .collect();
    NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: Some(requirements),
            match_fields: None,
        }],
    }
}

/// The pool's node cache, when the weights are fetched and fit in it.
pub fn cache_of<'a>(inputs: &PodInputs<'a>) -> Option<&'a ModelCache> {
    let cache = inputs.pool.settings.model_cache.as_ref()?;
    (inputs.source.scheme != SourceScheme::Pvc && model_bytes(inputs.plan) <= cache.bytes)
        .then_some(cache)
}

/// The taint device nodes usually carry for their device resource, then
/// the pool's own. The device taint is tolerated whatever its value:
/// clouds set `nvidia.com/gpu=present` or `=true`.
fn tolerations(pool: &NodePool, accelerator: &Accelerator) -> Vec<Toleration> {
    let mut tolerations = vec![Toleration {
        key: Some(devices::resource_on(pool, accelerator).to_owned()),
        operator: Some("Exists".to_owned()),
        effect: Some("NoSchedule".to_owned()),
        ..Toleration::default()
    }];
    for taint in &pool.taints {
        let toleration = Toleration {
            key: Some(taint.key.clone()),
            operator: Some(
                if taint.value.is_some() {
                    "Equal"
                } else {
                    "Exists"
                }
                .to_owned(),
            ),
            value: taint.value.clone(),
            effect: Some(taint.effect.clone()),
            ..Toleration::default()
        };
        if !tolerations.contains(&toleration) {
            tolerations.push(toleration);
        }
    }
    tolerations
}

fn engine_container(inputs: &PodInputs, role: Role) -> Container {
    // Whichever name the pool's nodes advertise the devices as.
    let resource = devices::resource_on(inputs.pool, inputs.accelerator);
    let count = Quantity(inputs.plan.devices_per_node.to_string());
    // Weights in the node cache take none of the pod's own disk.
    let size = sizing::engine(
        inputs.plan,
        model_bytes(inputs.plan),
        inputs.source.scheme != SourceScheme::Pvc && cache_of(inputs).is_none(),
    );
    // Devices: requests equal limits, as extended resources must.
    let mut requests = BTreeMap::from([
        (resource.to_owned(), count.clone()),
        ("cpu".to_owned(), sizing::millicores(size.cpu_millis)),
        ("memory".to_owned(), sizing::gib(size.memory_request)),
    ]);
    if let Some(storage) = size.storage {
        requests.insert("ephemeral-storage".to_owned(), sizing::gib(storage));
    }
    let limits = BTreeMap::from([
        (resource.to_owned(), count),
        ("memory".to_owned(), sizing::gib(size.memory_limit)),
    ]);
    let (command, args) = match role {
        // The vLLM image's own entrypoint, written out so that the
        // vllm-ascend image (which has none) runs the same way.
        Role::Server => (vec!["vllm", "serve"], inputs.serve_args.clone()),
        Role::Leader => (
            vec!["/bin/sh", "-c", LEADER_SCRIPT, "leader"],
            inputs.serve_args.clone(),
        ),
        Role::Worker => (vec!["/bin/sh", "-c", WORKER_SCRIPT], Vec::new()),
    };
    let serves = role != Role::Worker;
    let mut ports = Vec::new();
    if serves {
        ports.push(port("http", HTTP_PORT));
    }
    if role == Role::Leader {
        ports.push(port("ray", RAY_PORT));
    }
    Container {
        name: "engine".to_owned(),
        image: Some(through_mirror(&inputs.image, mirror(inputs.pool))),
        command: Some(command.into_iter().map(str::to_owned).collect()),
        args: (!args.is_empty()).then_some(args),
        ports: (!ports.is_empty()).then_some(ports),
        env: Some(env(inputs, role)),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(engine_mounts(inputs)),
        startup_probe: serves.then(|| startup_probe(inputs.plan)),
        readiness_probe: serves.then(|| health_probe(5, 3)),
        liveness_probe: serves.then(|| health_probe(10, 6)),
        // The vLLM and vllm-ascend images run as root (their caches and
        // Ray's files live under /root) and need no Linux capability —
        // devices come from the device plugin — so every one is dropped
        // and none can be regained.
        security_context: Some(hardened(None)),
        ..Container::default()
    }
}

/// A container's security context: no privilege escalation, every
/// capability dropped, the pod's RuntimeDefault seccomp profile; with a
/// user, that user and a read-only root filesystem too.
fn hardened(user: Option<i64>) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        run_as_non_root: user.map(|_| true),
        run_as_user: user,
        run_as_group: user,
        read_only_root_filesystem: user.map(|_| true),
        ..SecurityContext::default()
    }
}

fn env(inputs: &PodInputs, role: Role) -> Vec<EnvVar> {
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    };
    // The weights are on local disk; never let the engine or a tokenizer
    // reach for the Hugging Face Hub at run time.
    let mut env = vec![var("HF_HUB_OFFLINE", "1")];
    if inputs.engine_api_key && role != Role::Worker {
        env.push(EnvVar {
            name: tenancy::ENGINE_API_KEY_ENV.to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: tenancy::ENGINE_API_KEY_SECRET.to_owned(),
                    key: tenancy::ENGINE_API_KEY_FIELD.to_owned(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    if let Some(interface) = &inputs.pool.settings.network_interface {
        // The interface the collectives bind to: on nodes with several
        // (a management and a data network), NCCL and HCCL otherwise pick
        // one that cannot reach the other nodes, or the slow one.
        let collective = match inputs.accelerator.vendor {
            Vendor::Huawei => ["HCCL_SOCKET_IFNAME", "TP_SOCKET_IFNAME"].as_slice(),
            _ => ["NCCL_SOCKET_IFNAME"].as_slice(),
        };
        for name in collective.iter().chain(&["GLOO_SOCKET_IFNAME"]) {
            env.push(var(name, interface));
        }
    }
    if inputs.accelerator.vendor == Vendor::Huawei && role != Role::Server {
        // The device plugin sets ASCEND_RT_VISIBLE_DEVICES; Ray must not
        // renumber it when it places the engine's workers.
        env.push(var("RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES", "1"));
    }
    env
}

/// Allows 10 minutes to load and warm up, plus a minute per 20 GiB of
/// weights: a 70B model in bf16 gets about 17 minutes, a 175B one 27.
/// Fetching happens before, in the init container, and is not counted.
fn startup_probe(plan: &Plan) -> Probe {
    let weights = plan.weights_bytes_per_device * u64::from(plan.devices_per_replica);
    let seconds = 600 + 60 * weights.div_ceil(20 * GIB);
    let checks = i32::try_from(seconds / 10).unwrap_or(i32::MAX);
    health_probe(10, checks)
}

fn health_probe(period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health".to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// The weights' size as the plan counts them: what every pod downloads
/// (each pod of a multi-node group fetches the whole model).
pub fn model_bytes(plan: &Plan) -> u64 {
    plan.weights_bytes_per_device
        .saturating_mul(u64::from(plan.devices_per_replica))
}

/// Where a container's termination message goes (Kubernetes' default).
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Downloads the weights into the shared volume before the engine starts;
/// with a node cache, into the cache, linked from the shared volume.
fn fetch_container(inputs: &PodInputs) -> Container {
    let dest = engine::model_dir(&inputs.owner.model);
    let mut command: Vec<String> = ["modelfleet", "fetch", "--source"]
        .into_iter()
        .map(str::to_owned)
        .chain([inputs.source.to_string(), "--dest".to_owned(), dest])
        .collect();
    let mut mounts = vec![mount(WEIGHTS_VOLUME, MODELS_DIR, false)];
    let cache = cache_of(inputs);
    if let Some(cache) = cache {
        command.extend([
            "--cache".to_owned(),
            MODEL_CACHE_MOUNT.to_owned(),
            "--cache-size".to_owned(),
            cache.bytes.to_string(),
        ]);
        mounts.push(mount(CACHE_VOLUME, MODEL_CACHE_MOUNT, false));
    }
    let cce = identity::cce_identity(inputs);
    if cce.is_some() {
        mounts.push(identity::cce_mount());
    }
    // Where the weights came from (downloaded, the node cache), for the
    // pod's status and so the deployment's.
    command.extend(["--summary-file".to_owned(), TERMINATION_LOG.to_owned()]);
    // The kubelet creates a hostPath directory owned by root, mode 0755,
    // and ownership of a hostPath cannot be given by fsGroup: writing the
    // cache takes root, still without a capability to bypass a file's
    // permissions.
    let security = match cache {
        Some(_) => SecurityContext {
            run_as_user: Some(0),
            run_as_group: Some(0),
            read_only_root_filesystem: Some(true),
            ..hardened(None)
        },
        None => hardened(Some(FETCH_USER)),
    };
    Container {
        name: modelfleet_core::contract::fetch::CONTAINER.to_owned(),
        image: Some(through_mirror(inputs.fetcher_image, mirror(inputs.pool))),
        command: Some(command),
        volume_mounts: Some(mounts),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity(sizing::FETCH_CPU.to_owned())),
                (
                    "memory".to_owned(),
                    Quantity(sizing::FETCH_MEMORY_REQUEST.to_owned()),
                ),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity(sizing::FETCH_MEMORY_LIMIT.to_owned()),
            )])),
            ..ResourceRequirements::default()
        }),
        env: cce.map(|cce| identity::cce_env(cce, &inputs.pool.region)),
        // The source's credentials, for this container alone: the engine
        // never sees them.
        env_from: inputs.source_secret.map(|name| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.to_owned(),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }]
        }),
        // Our own image: nothing written but the weights' volumes, as a
        // non-root user unless the node cache needs root.
        security_context: Some(security),
        // A failed download's last lines (its one-line reason) become the
        // container's termination message, which the status shows.
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    }
}

const WEIGHTS_VOLUME: &str = "model-weights";
const CACHE_VOLUME: &str = "model-cache";
const SHM_VOLUME: &str = "dshm";

/// The host paths a vllm-ascend container needs from an Atlas node (driver
/// libraries and version, the DCMI library and `npu-smi`), mounted
/// read-only at the same paths as vllm-ascend's own `docker run` does —
/// only with `--ascend-host-paths`: host paths break Pod Security
/// `baseline`, which tenant namespaces enforce, and the Ascend Docker
/// Runtime (part of MindCluster, which the device plugin comes with)
/// mounts the same files into every container given an NPU.
const ASCEND_HOST_PATHS: [(&str, &str, &str); 4] = [
    ("ascend-driver", "/usr/local/Ascend/driver", "Directory"),
    ("ascend-dcmi", "/usr/local/dcmi", "Directory"),
    ("npu-smi", "/usr/local/bin/npu-smi", "File"),
    ("ascend-install-info", "/etc/ascend_install.info", "File"),
];

fn volumes(inputs: &PodInputs) -> Vec<Volume> {
    let weights = match inputs.source.scheme {
        SourceScheme::Pvc => Volume {
            name: WEIGHTS_VOLUME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: inputs.source.root.clone(),
                read_only: Some(true),
            }),
            ..Volume::default()
        },
        // As large as the engine's ephemeral-storage request: a download
        // larger than planned is evicted, not left to fill the node. With
        // the node cache it holds a link.
        _ => Volume {
            name: WEIGHTS_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: None,
                size_limit: Some(sizing::gib(match cache_of(inputs) {
                    Some(_) => GIB,
                    None => sizing::weights_volume(model_bytes(inputs.plan)),
                })),
            }),
            ..Volume::default()
        },
    };
    let shm = Volume {
        name: SHM_VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_owned()),
            size_limit: Some(sizing::gib(sizing::SHM_BYTES)),
        }),
        ..Volume::default()
    };
    let mut volumes = vec![weights, shm];
    if cache_of(inputs).is_some() {
        volumes.push(Volume {
            name: CACHE_VOLUME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: cache_claim_name(&inputs.pool.name),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    if let Some(cce) = identity::cce_identity(inputs) {
        volumes.push(identity::cce_volume(cce));
    }
    if inputs.accelerator.vendor == Vendor::Huawei && inputs.ascend_host_paths {
        volumes.extend(ASCEND_HOST_PATHS.iter().map(|(name, path, kind)| Volume {
            name: (*name).to_owned(),
            host_path: Some(HostPathVolumeSource {
                path: (*path).to_owned(),
                type_: Some((*kind).to_owned()),
            }),
            ..Volume::default()
        }));
    }
    volumes
}

fn engine_mounts(inputs: &PodInputs) -> Vec<VolumeMount> {
    let weights = match inputs.source.scheme {
        // The claim's directory appears where fetched weights would be.
        SourceScheme::Pvc => VolumeMount {
            sub_path: (!inputs.source.path.is_empty()).then(|| inputs.source.path.clone()),
            ..mount(
                WEIGHTS_VOLUME,
                &engine::model_dir(&inputs.owner.model),
                true,
            )
        },
        _ => mount(WEIGHTS_VOLUME, MODELS_DIR, true),
    };
    let mut mounts = vec![weights, mount(SHM_VOLUME, "/dev/shm", false)];
    if cache_of(inputs).is_some() {
        // Where the fetch's link in the weights' volume points.
        mounts.push(mount(CACHE_VOLUME, MODEL_CACHE_MOUNT, true));
    }
    if inputs.accelerator.vendor == Vendor::Huawei && inputs.ascend_host_paths {
        mounts.extend(
            ASCEND_HOST_PATHS
                .iter()
                .map(|(name, path, _)| mount(name, path, true)),
        );
    }
    mounts
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}
