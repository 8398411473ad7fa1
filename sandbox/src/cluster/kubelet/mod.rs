//! The kubelet of every simulated node, and the node lifecycle
//! controller's part in what happens to pods of a node that stops
//! reporting. One task plays all nodes' kubelets: each pod bound to a node
//! is run by the runtime model in `runtime`, its status rendered by
//! `status`, and written back through the API.
//!
//! - A bound pod runs its init containers one by one, then its app
//!   containers; containers with a readiness or startup probe become ready
//!   after a load time that grows with the model (see `Timings`).
//! - A pod being deleted is finalized (deleted with grace 0) once its
//!   containers are "stopped", as a kubelet does; on a NotReady node it
//!   stays Terminating, as it would in a real cluster.
//! - On a NotReady node, pods lose their Ready condition, and after the
//!   grace period fail with reason `NodeLost`.
//! - A pod whose containers' Secrets or ConfigMaps are missing starts
//!   nothing: it waits with `CreateContainerConfigError` until they exist.
//! - `KubeletHandle::fail_pod` crashes a pod's main container, as an engine
//!   dying of an out-of-memory error would.
//! - A ready `vllm serve` container runs a simulated engine on a loopback
//!   port its pod's address resolves to (`engines`), until it stops.

mod config;
pub mod engines;
mod fetching;
pub mod mounts;
pub mod output;
pub mod real_fetch;
pub mod runtime;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::common::{
    is_terminal, later, name_of, namespace_of, node_is_ready, node_of, now, until,
};
use crate::engine::EngineAddresses;
use crate::logs::PodLogs;
use output::Printed;
use real_fetch::RealFetch;
use runtime::{PodRuntime, Stage, Timings, pick_pod_ip};

type Key = (String, String);

/// How often a pod waiting for a missing Secret or ConfigMap looks again.
const CONFIG_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("writing the status of pod {pod}: {source}")]
    Status {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("finalizing pod {pod}: {source}")]
    Delete {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

impl KubeletError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            KubeletError::Status { .. } => "status",
            KubeletError::Delete { .. } => "delete",
        }
    }
}

/// A fault asked for on a pod the kubelet is not running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod {namespace}/{name} is not running on a simulated node")]
pub struct NotRunning {
    pub namespace: String,
    pub name: String,
}

struct Shared {
    runtimes: Mutex<HashMap<Key, PodRuntime>>,
    timings: Timings,
    logs: PodLogs,
    written: Mutex<Written>,
    real_fetch: Option<RealFetch>,
    /// The real fetches running, by pod uid, with their container's name.
    fetches: Mutex<HashMap<String, (tokio::task::JoinHandle<()>, String)>>,
    /// Wakes the reconcile of a pod (a fault, a real fetch that ended).
    wake: mpsc::UnboundedSender<ObjectRef<Pod>>,
    /// Whether serving containers run simulated engines, and those that do.
    simulate_engines: bool,
    engines: EngineAddresses,
}

/// Per pod uid and container: the run whose lines are in the logs, how
/// many of them, and whether its end is.
type Written = HashMap<(String, String), (u32, usize, bool)>;

/// Reaches into the simulated container runtime, for fault injection.
#[derive(Clone)]
pub struct KubeletHandle {
    shared: Arc<Shared>,
    trigger: mpsc::UnboundedSender<ObjectRef<Pod>>,
}

impl std::fmt::Debug for KubeletHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletHandle").finish_non_exhaustive()
    }
}

impl KubeletHandle {
    /// Crashes the main container of `namespace/name`.
    pub fn fail_pod(&self, namespace: &str, name: &str) -> Result<(), NotRunning> {
        let key = (namespace.to_owned(), name.to_owned());
        {
            let mut runtimes = self
                .shared
                .runtimes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let rt = runtimes.get_mut(&key).ok_or_else(|| NotRunning {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
            let fetching = matches!(rt.stage, Stage::Init { index, since }
                if Some(index) == rt.real_init && since <= now());
            rt.crash(now(), &self.shared.timings);
            // An engine in that container dies with it, before the
            // kubelet next looks.
            self.shared.engines.stop_container(&key, &rt.uid, 0);
            if fetching && let Some(container) = self.shared.abort_fetch(&rt.uid) {
                let pod = (namespace, name, rt.uid.as_str());
                let logs = &self.shared.logs;
                logs.write(
                    pod,
                    &container,
                    now(),
                    "sandbox: the fetch was killed (injected fault)",
                );
                logs.end(pod, &container);
            }
        }
        // The receiver lives as long as the kubelet task; if that is gone
        // there is no one left to tell.
        let _ = self
            .trigger
            .unbounded_send(ObjectRef::new(name).within(namespace));
        Ok(())
    }

    /// The simulated engines this kubelet runs, and where they listen.
    pub fn engines(&self) -> EngineAddresses {
        self.shared.engines.clone()
    }
}

struct Ctx {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    shared: Arc<Shared>,
    /// When this kubelet first saw each node NotReady.
    down_since: Mutex<HashMap<String, Timestamp>>,
}

/// The kubelet task and the handle to its runtime; with
/// `simulate_engines`, serving containers run simulated engines.
pub fn kubelet(
    client: Client,
    timings: Timings,
    logs: PodLogs,
    real_fetch: Option<RealFetch>,
    simulate_engines: bool,
) -> (KubeletHandle, impl Future<Output = ()> + Send) {
    let (trigger, faults) = mpsc::unbounded();
    let shared = Arc::new(Shared {
        runtimes: Mutex::new(HashMap::new()),
        timings,
        logs,
        written: Mutex::new(HashMap::new()),
        real_fetch,
        fetches: Mutex::new(HashMap::new()),
        wake: trigger.clone(),
        simulate_engines,
        engines: EngineAddresses::default(),
    });
    let handle = KubeletHandle {
        shared: shared.clone(),
        trigger,
    };
    let task = async move {
        // One node watch both fills the store reconciles read and wakes
        // the pods of a node that changed.
        let (nodes, node_writer) = reflector::store::<Node>();
        let node_changes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(node_writer)
            .touched_objects();
        let controller =
            Controller::new(Api::<Pod>::all(client.clone()), watcher::Config::default());
        let pods = controller.store();
        let by_node = pods.clone();
        let sweep = engines::sweep(pods.clone(), shared.engines.clone());
        let ctx = Arc::new(Ctx {
            client,
            nodes,
            pods,
            shared,
            down_since: Mutex::new(HashMap::new()),
        });
        let run = controller
            .watches_stream(node_changes, move |node: Node| {
                let name = node.name_any();
                by_node
                    .state()
                    .into_iter()
                    .filter(|p| node_of(p) == Some(name.as_str()))
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            })
            .reconcile_on(faults)
            .run(reconcile, error_policy, ctx)
            .for_each(|result| {
                if let Err(error) = result {
                    tracing::debug!(%error, "kubelet");
                }
                std::future::ready(())
            });
        futures::join!(run, sweep);
    };
    (handle, task)
}

fn error_policy(_pod: Arc<Pod>, error: &KubeletError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(%error, reason = error.metric_label(), "kubelet retries");
    Action::requeue(Duration::from_millis(200))
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, KubeletError> {
    let Some(node_name) = node_of(&pod) else {
        return Ok(Action::await_change());
    };
    if ctx.nodes.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let Some(node) = ctx.nodes.get(&ObjectRef::new(node_name)) else {
        // No such node: nothing runs the pod (the real pod GC deletes it).
        return Ok(Action::await_change());
    };
    let now = now();
    let key = (
        namespace_of(pod.as_ref()).to_owned(),
        name_of(pod.as_ref()).to_owned(),
    );
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.0);
    let timings = &ctx.shared.timings;
    let node_ready = node_is_ready(&node);
    let down_since = {
        let mut down = ctx
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if node_ready {
            down.remove(node_name);
            None
        } else {
            Some(*down.entry(node_name.to_owned()).or_insert(now))
        }
    };
    if pod.metadata.deletion_timestamp.is_some() {
        if !node_ready {
            return Ok(Action::await_change());
        }
        ctx.runtimes().remove(&key);
        ctx.stop_engine(&pod);
        ctx.forget_output(&key, pod.metadata.uid.as_deref().unwrap_or_default());
        ctx.remove_volumes(node_name, pod.metadata.uid.as_deref().unwrap_or_default())
            .await;
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        return match api.delete(&key.1, &params).await {
            Ok(_) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => Ok(Action::await_change()),
            Err(source) => Err(KubeletError::Delete { pod: key.1, source }),
        };
    }
    if let Some(since) = down_since {
        // Nothing reaches a pod on a node that stopped reporting.
        ctx.stop_engine(&pod);
        if is_terminal(&pod) {
            return Ok(Action::await_change());
        }
        let lost_at = later(since, timings.scaled(timings.node_lost_grace));
        if now >= lost_at {
            ctx.runtimes().remove(&key);
            write_status(&api, &pod, status::mark_node_lost(&pod, node_name, now)).await?;
            return Ok(Action::await_change());
        }
        write_status(&api, &pod, status::mark_not_ready(&pod, now)).await?;
        return Ok(Action::requeue(
            until(now, lost_at).max(Duration::from_millis(1)),
        ));
    }
    let host_ip = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone())
        .unwrap_or_default();
    // A pod not yet started checks its containers' configuration first.
    let started = ctx
        .runtimes()
        .get(&key)
        .is_some_and(|rt| Some(rt.uid.as_str()) == pod.metadata.uid.as_deref());
    if !started
        && !is_terminal(&pod)
        && PodRuntime::adopt(&pod, now, timings).is_none()
        && let Some((container, message)) = config::missing(&ctx.client, &pod).await
    {
        let status = config::blocked(&pod, &container, &message, &host_ip, now, timings);
        write_status(&api, &pod, status).await?;
        return Ok(Action::requeue(CONFIG_RETRY));
    }
    let (status, wake) = {
        let mut runtimes = ctx.runtimes();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if runtimes.get(&key).is_none_or(|rt| rt.uid != uid) {
            if is_terminal(&pod) {
                // Finished before this kubelet knew it (lost with its node,
                // say): it stays as it is.
                return Ok(Action::await_change());
            }
            // Forget pods that were deleted without this kubelet seeing
            // their deletion (an owner's cascade), so their addresses free up.
            let mut gone = Vec::new();
            runtimes.retain(|(ns, name), rt| {
                let known = ctx.pods.get(&ObjectRef::new(name).within(ns));
                let kept =
                    known.is_some_and(|p| p.metadata.uid.as_deref() == Some(rt.uid.as_str()));
                if !kept {
                    gone.push(((ns.clone(), name.clone()), rt.uid.clone()));
                }
                kept
            });
            for (key, uid) in &gone {
                ctx.forget_output(key, uid);
                ctx.shared.engines.stop(key, uid);
            }
            let rt = match PodRuntime::adopt(&pod, now, timings) {
                Some(rt) => rt,
                None => {
                    // Addresses this kubelet runs, and those the API shows
                    // on the node (pods running since before a restart
                    // that this kubelet has not adopted yet).
                    let reported: Vec<String> = ctx
                        .pods
                        .state()
                        .iter()
                        .filter(|p| node_of(p) == Some(node_name) && !is_terminal(p))
                        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                        .collect();
                    let used: Vec<&str> = runtimes
                        .values()
                        .filter(|rt| rt.node == node_name)
                        .map(|rt| rt.pod_ip.as_str())
                        .chain(reported.iter().map(String::as_str))
                        .collect();
                    let cidr = node
                        .spec
                        .as_ref()
                        .and_then(|s| s.pod_cidr.clone())
                        .unwrap_or_default();
                    let ip = pick_pod_ip(&cidr, &used).unwrap_or_default();
                    let mut rt = PodRuntime::admit(&pod, ip, now, timings);
                    rt.real_init = ctx.shared.real_fetch.as_ref().and_then(|r| r.init_of(&pod));
                    rt
                }
            };
            runtimes.insert(key.clone(), rt);
        }
        let Some(rt) = runtimes.get_mut(&key) else {
            return Ok(Action::await_change());
        };
        let wake = rt.advance(&pod, now, timings);
        if let (Some(real), Stage::Init { index, since }) = (rt.real_init, &rt.stage)
            && real == *index
            && *since <= now
            && rt.real_outcome.is_none()
        {
            ctx.start_fetch(&pod, node_name, real, *since);
        }
        let (printed, next_line) = output::printed(&pod, rt, now, timings);
        ctx.write_output(&key, &rt.uid, printed);
        let wake = match (wake, next_line) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (status::render(&pod, rt, &host_ip, now), wake)
    };
    // The engine listens before its pod reports Ready, as vLLM's server
    // answers before its probe passes.
    ctx.sync_engine(&pod, &node).await;
    write_status(&api, &pod, status).await?;
    Ok(match wake {
        Some(at) => Action::requeue(until(now, at).max(Duration::from_millis(1))),
        None => Action::await_change(),
    })
}

impl Ctx {
    fn runtimes(&self) -> std::sync::MutexGuard<'_, HashMap<Key, PodRuntime>> {
        self.shared
            .runtimes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn written(&self) -> std::sync::MutexGuard<'_, Written> {
        self.shared
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the lines of `printed` the cluster's logs do not hold yet.
    fn write_output(&self, (namespace, name): &Key, uid: &str, printed: Vec<Printed>) {
        let logs = &self.shared.logs;
        let pod = (namespace.as_str(), name.as_str(), uid);
        let mut written = self.written();
        for p in printed {
            let entry = written
                .entry((uid.to_owned(), p.container.clone()))
                .or_insert((p.run, 0, false));
            if entry.0 != p.run {
                if !entry.2 {
                    logs.end(pod, &p.container);
                }
                *entry = (p.run, 0, false);
            }
            for (at, line) in p.lines.iter().skip(entry.1) {
                logs.write(pod, &p.container, *at, line);
            }
            entry.1 = entry.1.max(p.lines.len());
            if p.ended && !entry.2 {
                logs.end(pod, &p.container);
                entry.2 = true;
            }
        }
    }

    /// The pod with `uid` is gone: so are its lines.
    fn forget_output(&self, (namespace, name): &Key, uid: &str) {
        self.shared.logs.forget(namespace, name);
        self.written().retain(|(of, _), _| of != uid);
    }
}

/// Replaces the pod's status if it differs from what the API holds. The
/// write carries the pod's resourceVersion, so a status someone changed
/// meanwhile is not overwritten: the conflict retries with the new pod.
async fn write_status(api: &Api<Pod>, pod: &Pod, status: PodStatus) -> Result<(), KubeletError> {
    let current = serde_json::to_value(&pod.status).unwrap_or_default();
    if serde_json::to_value(Some(&status)).unwrap_or_default() == current {
        return Ok(());
    }
    let mut updated = pod.clone();
    updated.status = Some(status);
    match api
        .replace_status(name_of(pod), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(KubeletError::Status {
            pod: name_of(pod).to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
