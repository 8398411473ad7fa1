//! The container runtime the simulated kubelet drives: for each pod, which
//! init container runs, when app containers started, when they become
//! ready, how often they restarted. A real kubelet learns this from
//! containerd; here it is a timeline computed from the pod and a clock.
//! Pure: `advance` moves a runtime to `now` and says when it next changes.
//!
//! Stage ends are computed from when the stage began, not from when the
//! kubelet happened to look, so a kubelet that wakes late reports the same
//! timeline as one that woke on time.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::jiff::Timestamp;
use modelfleet_core::contract::devices::DEVICE_RESOURCES;
use modelfleet_core::contract::labels::MODEL_BYTES_ANNOTATION;

use crate::cluster::common::{later, node_of, phase};
use crate::cluster::resources::{pod_requests, units};

/// How long things take on a simulated node, before `time_factor` scales
/// them. The defaults are what a vLLM replica takes on real hardware, in
/// round numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Timings {
    /// Multiplies every duration: 1.0 is real time, 0.001 makes a
    /// two-minute model load take a tenth of a second.
    pub time_factor: f64,
    /// Pulling (cached) images and starting a container.
    pub container_start: Duration,
    /// An init container that does no model download.
    pub init_container: Duration,
    /// Model download speed of the first init container (object store to
    /// local disk), when the model size is known.
    pub fetch_bytes_per_second: u64,
    /// Engine start-up before weights load (CUDA graphs, NCCL/HCCL init).
    pub load_base: Duration,
    /// Weight loading speed from local disk into device memory.
    pub load_bytes_per_second: u64,
    /// Load time per requested device when the model size is unknown.
    pub load_per_device: Duration,
    /// How long a node may be NotReady before its pods are declared lost
    /// (the default `tolerationSeconds` for `not-ready` taints).
    pub node_lost_grace: Duration,
    /// First crash-loop back-off; doubles per restart up to `crash_backoff_cap`.
    pub crash_backoff: Duration,
    pub crash_backoff_cap: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            time_factor: 1.0,
            container_start: Duration::from_secs(2),
            init_container: Duration::from_secs(3),
            fetch_bytes_per_second: 1_000_000_000,
            load_base: Duration::from_secs(30),
            load_bytes_per_second: 2_000_000_000,
            load_per_device: Duration::from_secs(10),
            node_lost_grace: Duration::from_secs(300),
            crash_backoff: Duration::from_secs(10),
            crash_backoff_cap: Duration::from_secs(300),
        }
    }
}

impl Timings {
    pub fn scaled(&self, real: Duration) -> Duration {
        real.mul_f64(self.time_factor.max(0.0))
    }

    /// The model's size, when the pod's annotation gives it.
    pub fn model_bytes(pod: &Pod) -> Option<u64> {
        pod.metadata
            .annotations
            .as_ref()?
            .get(MODEL_BYTES_ANNOTATION)?
            .parse()
            .ok()
    }

    /// How long init container `index` of `pod` runs; the first one fetches
    /// the model when its size is known.
    pub fn init_duration(&self, pod: &Pod, index: usize) -> Duration {
        let fetch = match (index, Self::model_bytes(pod)) {
            (0, Some(bytes)) => {
                Duration::from_secs_f64(bytes as f64 / self.fetch_bytes_per_second.max(1) as f64)
            }
            _ => Duration::ZERO,
        };
        self.scaled(self.init_container + fetch)
    }

    /// From container start to Ready, for a container with a readiness or
    /// startup probe (the engine answering `/health`).
    pub fn load_duration(&self, pod: &Pod) -> Duration {
        let real = match Self::model_bytes(pod) {
            Some(bytes) => {
                self.load_base
                    + Duration::from_secs_f64(
                        bytes as f64 / self.load_bytes_per_second.max(1) as f64,
                    )
            }
            None => {
                let requests = pod.spec.as_ref().map(pod_requests).unwrap_or_default();
                // Whatever name the devices go by.
                let devices: i128 = DEVICE_RESOURCES
                    .iter()
                    .filter_map(|(resource, _)| requests.get(*resource))
                    .map(|m| units(*m))
                    .sum();
                self.load_base + self.load_per_device * u32::try_from(devices).unwrap_or(u32::MAX)
            }
        };
        self.scaled(real)
    }

    /// Back-off before restart number `restarts + 1`.
    pub fn backoff(&self, restarts: u32) -> Duration {
        let real = self
            .crash_backoff
            .saturating_mul(2u32.saturating_pow(restarts.min(16)))
            .min(self.crash_backoff_cap);
        self.scaled(real)
    }
}

/// One run of a container that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub reason: String,
    pub started: Timestamp,
    pub finished: Timestamp,
    /// What the container said as it ended (`terminated.message`).
    pub message: Option<String>,
}

/// An app container's life so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// When the current run starts (or started).
    pub started: Timestamp,
    /// When it is (or became) ready; `None` until it starts again after a crash.
    pub ready_at: Option<Timestamp>,
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    /// Crashed and waiting in back-off until this time.
    pub back_off_until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Init container `index` has been running since `since`.
    Init { index: usize, since: Timestamp },
    /// App containers, in spec order.
    Running(Vec<Run>),
    /// The pod will not run again.
    Failed { containers: Vec<Run>, exit: Exit },
}

/// An init container that ran to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitDone {
    pub started: Timestamp,
    pub finished: Timestamp,
    /// How often it restarted before it completed.
    pub restarts: u32,
    /// What it wrote to its `terminationMessagePath`.
    pub message: Option<String>,
}

/// What the runtime knows of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRuntime {
    pub uid: String,
    pub node: String,
    pub pod_ip: String,
    /// When the kubelet admitted the pod (`status.startTime`).
    pub started: Timestamp,
    /// Finished init containers: (started, finished).
    pub init_done: Vec<InitDone>,
    /// Restarts of the current init container.
    pub init_restarts: u32,
    /// `restartPolicy: Never`: a crash fails the pod instead of restarting.
    pub never_restart: bool,
    pub stage: Stage,
    /// How the current init container's last run ended, while it waits
    /// to run again.
    pub init_last_exit: Option<Exit>,
    /// The init container (by index) that the kubelet really runs (the
    /// weights' download), whose end is not a duration but what its run
    /// reports in `real_outcome`.
    pub real_init: Option<usize>,
    /// How the real init container's current run ended: when it
    /// succeeded and the termination message it wrote, or how it failed;
    /// `None` while it runs.
    pub real_outcome: Option<Result<(Timestamp, Option<String>), Exit>>,
}

fn has_probe(spec: &PodSpec, container: usize) -> bool {
    let c = &spec.containers[container];
    c.readiness_probe.is_some() || c.startup_probe.is_some()
}

/// App containers starting at `at`; probed ones are ready after the load time.
fn start_containers(pod: &Pod, spec: &PodSpec, at: Timestamp, timings: &Timings) -> Vec<Run> {
    let load = timings.load_duration(pod);
    (0..spec.containers.len())
        .map(|i| Run {
            started: at,
            ready_at: Some(if has_probe(spec, i) {
                later(at, load)
            } else {
                at
            }),
            restarts: 0,
            last_exit: None,
            back_off_until: None,
        })
        .collect()
}

impl PodRuntime {
    /// A pod the kubelet admits now.
    pub fn admit(pod: &Pod, pod_ip: String, now: Timestamp, timings: &Timings) -> PodRuntime {
        let spec = pod.spec.clone().unwrap_or_default();
        let stage = if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty()) {
            Stage::Init {
                index: 0,
                since: now,
            }
        } else {
            Stage::Running(start_containers(
                pod,
                &spec,
                later(now, timings.scaled(timings.container_start)),
                timings,
            ))
        };
        PodRuntime {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: node_of(pod).unwrap_or_default().to_owned(),
            pod_ip,
            started: now,
            init_done: Vec::new(),
            init_restarts: 0,
            never_restart: spec.restart_policy.as_deref() == Some("Never"),
            stage,
            init_last_exit: None,
            real_init: None,
            real_outcome: None,
        }
    }

    /// A pod that was already running when this kubelet started (the
    /// sandbox restarted against the same API server): take its reported
    /// state as the truth, as a restarted kubelet takes containerd's.
    pub fn adopt(pod: &Pod, now: Timestamp, timings: &Timings) -> Option<PodRuntime> {
        let status = pod.status.as_ref()?;
        let spec = pod.spec.as_ref()?;
        if phase(pod) != "Running" {
            return None;
        }
        let statuses = status.container_statuses.as_deref().unwrap_or_default();
        let containers = spec
            .containers
            .iter()
            .map(|c| {
                let reported = statuses.iter().find(|s| s.name == c.name);
                let started = reported
                    .and_then(|s| s.state.as_ref()?.running.as_ref()?.started_at.as_ref())
                    .map_or(now, |t| t.0);
                let ready = reported.is_some_and(|s| s.ready);
                Run {
                    started,
                    ready_at: Some(if ready {
                        started
                    } else {
                        later(now, timings.load_duration(pod))
                    }),
                    restarts: reported.map_or(0, |s| s.restart_count.max(0) as u32),
                    last_exit: None,
                    back_off_until: None,
                }
            })
            .collect();
        Some(PodRuntime {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: node_of(pod).unwrap_or_default().to_owned(),
            pod_ip: status.pod_ip.clone().unwrap_or_default(),
            started: status.start_time.as_ref().map_or(now, |t| t.0),
            init_done: spec
                .init_containers
                .iter()
                .flatten()
                .map(|_| InitDone {
                    started: now,
                    finished: now,
                    restarts: 0,
                    message: None,
                })
                .collect(),
            init_restarts: 0,
            never_restart: spec.restart_policy.as_deref() == Some("Never"),
            stage: Stage::Running(containers),
            init_last_exit: None,
            real_init: None,
            real_outcome: None,
        })
    }

    /// Moves the runtime to `now`; returns when it next changes on its own.
    pub fn advance(&mut self, pod: &Pod, now: Timestamp, timings: &Timings) -> Option<Timestamp> {
        let spec = pod.spec.clone().unwrap_or_default();
        let inits = spec.init_containers.as_ref().map_or(0, Vec::len);
        loop {
            match &mut self.stage {
                Stage::Init { index, since } => {
                    let (ends, message) = if self.real_init == Some(*index) {
                        match self.real_outcome.take() {
                            // Still running: its run wakes the kubelet.
                            None => return (*since > now).then_some(*since),
                            Some(Ok(finished)) => finished,
                            Some(Err(exit)) => {
                                self.init_failed(exit, timings);
                                continue;
                            }
                        }
                    } else {
                        (later(*since, timings.init_duration(pod, *index)), None)
                    };
                    if now < ends {
                        if self.real_init == Some(*index) {
                            // Not yet, by this clock: kept for then.
                            self.real_outcome = Some(Ok((ends, message)));
                        }
                        return Some(ends);
                    }
                    self.init_last_exit = None;
                    self.init_done.push(InitDone {
                        started: *since,
                        finished: ends,
                        restarts: self.init_restarts,
                        message,
                    });
                    self.init_restarts = 0;
                    self.stage = if *index + 1 < inits {
                        Stage::Init {
                            index: *index + 1,
                            since: ends,
                        }
                    } else {
                        Stage::Running(start_containers(
                            pod,
                            &spec,
                            later(ends, timings.scaled(timings.container_start)),
                            timings,
                        ))
                    };
                }
                Stage::Running(runs) => {
                    let load = timings.load_duration(pod);
                    let mut next: Option<Timestamp> = None;
                    for (i, run) in runs.iter_mut().enumerate() {
                        if let Some(until) = run.back_off_until.filter(|u| *u <= now) {
                            run.back_off_until = None;
                            run.restarts += 1;
                            run.started = until;
                            run.ready_at = Some(if has_probe(&spec, i) {
                                later(until, load)
                            } else {
                                until
                            });
                        }
                        let pending = [run.back_off_until, Some(run.started), run.ready_at];
                        for at in pending.into_iter().flatten().filter(|at| *at > now) {
                            next = Some(next.map_or(at, |n| n.min(at)));
                        }
                    }
                    return next;
                }
                Stage::Failed { .. } => return None,
            }
        }
    }

    /// The current init container's run ended with `exit`: it runs again
    /// after a back-off, or the pod fails if it never restarts.
    pub fn init_failed(&mut self, exit: Exit, timings: &Timings) {
        if self.never_restart {
            self.stage = Stage::Failed {
                containers: Vec::new(),
                exit,
            };
            return;
        }
        if let Stage::Init { since, .. } = &mut self.stage {
            *since = later(exit.finished, timings.backoff(self.init_restarts));
            self.init_restarts += 1;
            self.init_last_exit = Some(exit);
        }
    }

    /// The main (first) container exits with code 1, as an engine that runs
    /// out of device memory would. Restarted after a back-off unless the
    /// pod's restart policy is `Never`, which fails the pod.
    pub fn crash(&mut self, now: Timestamp, timings: &Timings) {
        let never = self.never_restart;
        match &mut self.stage {
            Stage::Init { since, .. } => {
                let started = *since;
                if started > now {
                    return; // Waiting to run again: nothing to crash.
                }
                let exit = Exit {
                    code: 1,
                    reason: "Error".into(),
                    started,
                    finished: now,
                    message: None,
                };
                self.real_outcome = None;
                self.init_failed(exit, timings);
            }
            Stage::Running(runs) => {
                let Some(run) = runs.first_mut() else { return };
                if run.back_off_until.is_some() || run.started > now {
                    return; // Not running: nothing to crash.
                }
                let exit = Exit {
                    code: 1,
                    reason: "Error".into(),
                    started: run.started,
                    finished: now,
                    message: None,
                };
                if never {
                    let containers = std::mem::take(runs);
                    self.stage = Stage::Failed { containers, exit };
                } else {
                    run.back_off_until = Some(later(now, timings.backoff(run.restarts)));
                    run.ready_at = None;
                    run.last_exit = Some(exit);
                }
            }
            Stage::Failed { .. } => {}
        }
    }
}

/// The lowest free address in a node's `/24` pod CIDR (`.1` is the bridge).
pub fn pick_pod_ip(pod_cidr: &str, used: &[&str]) -> Option<String> {
    let network = pod_cidr.split('/').next()?;
    let prefix = network.rsplit_once('.')?.0;
    (2..255)
        .map(|host| format!("{prefix}.{host}"))
        .find(|ip| !used.contains(&ip.as_str()))
}
