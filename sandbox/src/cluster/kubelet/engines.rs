//! The kubelet's part in the simulated engines (see [`crate::engine`]): a
//! pod's serving container gets an engine once it is ready, listening
//! where the pod's address resolves to, and loses it when the container
//! stops — it crashes, the pod is deleted or fails, or its node goes
//! NotReady. Which container serves is read from its command line
//! (`vllm serve`): a Deployment's pod and a group's leader do, Ray workers
//! and every other pod do not. Readiness stays the runtime's: the engine
//! follows it, never the other way round.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{ObjectRef, Store};
use modelfleet_core::accelerator::{ACCELERATORS, Accelerator};
use modelfleet_core::contract::labels::ACCELERATOR_LABEL;
use modelfleet_core::contract::node_labels::{ASCEND_ACCELERATOR_TYPE, GPU_PRODUCT};

use super::runtime::{PodRuntime, Stage};
use super::{Ctx, real_fetch};
use crate::cluster::common::{is_terminal, label, name_of, namespace_of, now};
use crate::engine::{Engine, EngineAddresses, EngineSpec, args};

/// How often engines of pods that disappeared unseen are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// The serving container that should have an engine now, and its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub container: usize,
    pub run: u32,
}

/// The container of `pod` running `vllm serve`, if it runs and is ready
/// at `now` (vLLM answers only once its model is loaded).
pub fn wanted(pod: &Pod, rt: &PodRuntime, now: Timestamp) -> Option<Wanted> {
    let spec = pod.spec.as_ref()?;
    let container = spec
        .containers
        .iter()
        .position(|c| args::serve_words(c).is_some())?;
    let Stage::Running(runs) = &rt.stage else {
        return None;
    };
    let run = runs.get(container)?;
    let serving = run.back_off_until.is_none()
        && run.started <= now
        && run.ready_at.is_some_and(|at| at <= now);
    serving.then_some(Wanted {
        container,
        run: run.restarts,
    })
}

/// The catalog accelerator of a node: its `modelfleet.io/accelerator`
/// label, else its product label.
pub fn accelerator_of(node: &Node) -> Option<&'static Accelerator> {
    if let Some(id) = label(node, ACCELERATOR_LABEL) {
        return Accelerator::find(id);
    }
    let product = label(node, GPU_PRODUCT).or_else(|| label(node, ASCEND_ACCELERATOR_TYPE))?;
    ACCELERATORS.iter().find(|a| a.product_label == product)
}

impl Ctx {
    /// What the runtime of `pod` wants now, and the pod's address.
    fn serving(&self, key: &(String, String), pod: &Pod) -> Option<(Wanted, String)> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let runtimes = self.runtimes();
        let rt = runtimes.get(key).filter(|rt| rt.uid == uid)?;
        Some((wanted(pod, rt, now())?, rt.pod_ip.clone()))
    }

    /// Starts or stops the engine of `pod` so that it runs exactly while
    /// its serving container is ready.
    pub(super) async fn sync_engine(&self, pod: &Pod, node: &Node) {
        if !self.shared.simulate_engines {
            return;
        }
        let key = (namespace_of(pod).to_owned(), name_of(pod).to_owned());
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let engines = &self.shared.engines;
        let Some((want, pod_ip)) = self.serving(&key, pod) else {
            engines.stop(&key, uid);
            return;
        };
        if engines.runs(&key, uid, want.container, want.run) {
            return;
        }
        let Some(container) = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.get(want.container))
        else {
            return;
        };
        // The environment as it was when the container started: the
        // kubelet checked its Secrets then (`config`).
        let env = match real_fetch::environment(&self.client, &key.0, container).await {
            Ok(env) => env,
            Err(error) => {
                tracing::debug!(pod = %key.1, %error, "no engine: its environment is missing");
                return;
            }
        };
        let time_factor = self.shared.timings.time_factor;
        let accelerator = accelerator_of(node);
        let Some(spec) = EngineSpec::of_container(pod, container, accelerator, &env, time_factor)
        else {
            return;
        };
        // On a loopback pod network the engine answers at its pod's own
        // address, as a real pod does; otherwise on a loopback port that
        // `EngineAddresses::resolve` maps the pod's address to.
        let started = match pod_ip.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_loopback() => {
                let port = spec.port;
                Engine::start_on(spec, std::net::SocketAddr::new(ip, port)).await
            }
            _ => Engine::start(spec).await,
        };
        let engine = match started {
            Ok(engine) => engine,
            Err(error) => {
                tracing::warn!(pod = %key.1, %error, "cannot start a simulated engine");
                return;
            }
        };
        // The container may have crashed meanwhile (`fail_pod` stops
        // engines under the runtimes' lock, which this holds to insert):
        // only a run still wanted gets it.
        let runtimes = self.runtimes();
        let still = runtimes
            .get(&key)
            .filter(|rt| rt.uid == uid)
            .and_then(|rt| wanted(pod, rt, now()));
        if still == Some(want) {
            engines.insert(key, (uid, want.container, want.run), &pod_ip, engine);
        }
    }

    /// Stops the engine of `pod` (deleted, lost, or on a NotReady node).
    pub(super) fn stop_engine(&self, pod: &Pod) {
        let key = (namespace_of(pod).to_owned(), name_of(pod).to_owned());
        self.shared
            .engines
            .stop(&key, pod.metadata.uid.as_deref().unwrap_or_default());
    }
}

/// Stops, every [`SWEEP_EVERY`], the engines of pods that are gone or
/// finished without this kubelet reconciling them (removed with grace
/// period 0, say), as their containers would be gone.
pub async fn sweep(pods: Store<Pod>, engines: EngineAddresses) {
    if pods.wait_until_ready().await.is_err() {
        return;
    }
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        engines.retain(|(namespace, name), uid| {
            pods.get(&ObjectRef::new(name).within(namespace))
                .is_some_and(|p| p.metadata.uid.as_deref() == Some(uid) && !is_terminal(&p))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::kubelet::runtime::Timings;
    use serde_json::json;

    fn pod(command: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "m-0", "namespace": "t", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "engine", "image": "vllm/vllm-openai:v0.13.0",
                 "command": command, "args": ["/models/m"],
                 "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}},
                {"name": "sidecar", "image": "busybox"}
            ]}
        }))
        .unwrap()
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs as i64).unwrap()
    }

    #[test]
    fn the_ready_serving_container_wants_an_engine_until_it_stops() {
        let timings = Timings::default();
        let pod = pod(json!(["vllm", "serve"]));
        let mut rt = PodRuntime::admit(&pod, "10.0.0.2".into(), at(0), &timings);
        rt.advance(&pod, at(1), &timings);
        assert_eq!(wanted(&pod, &rt, at(1)), None, "not started yet");
        rt.advance(&pod, at(5), &timings);
        assert_eq!(wanted(&pod, &rt, at(5)), None, "loading the model");
        rt.advance(&pod, at(100), &timings);
        assert_eq!(
            wanted(&pod, &rt, at(100)),
            Some(Wanted {
                container: 0,
                run: 0
            })
        );
        rt.crash(at(101), &timings);
        assert_eq!(wanted(&pod, &rt, at(101)), None, "crashed");
        rt.advance(&pod, at(300), &timings);
        assert_eq!(wanted(&pod, &rt, at(300)).map(|w| w.run), Some(1));

        let worker = self::pod(json!(["/bin/sh", "-c", "exec ray start --block"]));
        let mut rt = PodRuntime::admit(&worker, "10.0.0.3".into(), at(0), &timings);
        rt.advance(&worker, at(100), &timings);
        assert_eq!(
            wanted(&worker, &rt, at(100)),
            None,
            "a worker serves nothing"
        );
    }

    #[test]
    fn a_node_names_its_accelerator() {
        let node = |labels: serde_json::Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}})).unwrap()
        };
        let by_label = node(json!({"modelfleet.io/accelerator": "h100"}));
        assert_eq!(accelerator_of(&by_label).map(|a| a.id), Some("h100-80gb"));
        let by_product = node(json!({"nvidia.com/gpu.product": "NVIDIA-L40S"}));
        assert_eq!(accelerator_of(&by_product).map(|a| a.id), Some("l40s"));
        assert_eq!(accelerator_of(&node(json!({}))), None);
    }
}
