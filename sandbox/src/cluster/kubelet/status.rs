//! From the runtime's view of a pod to the `PodStatus` a kubelet reports,
//! and the two changes the node lifecycle controller makes to pods of a
//! node that stopped reporting. Pure.

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::jiff::Timestamp;

use super::runtime::{Exit, PodRuntime, Run, Stage};
use crate::cluster::common::{hex_id, name_of, namespace_of, time};
use crate::cluster::resources::container_requests;

/// The status a kubelet would report for `pod` at `now`. Conditions keep
/// their `lastTransitionTime` while their status does not change.
pub fn render(pod: &Pod, rt: &PodRuntime, host_ip: &str, now: Timestamp) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let id = |container: &str, run: u32| {
        format!(
            "containerd://{}",
            hex_id(&format!("{}/{container}/{run}", rt.uid), 64)
        )
    };
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut status = base_status(c, rt.init_restarts_for(i));
            if let Some(done) = rt.init_done.get(i) {
                status.ready = true;
                status.container_id = Some(id(&c.name, status.restart_count.max(0) as u32));
                status.state = Some(terminated(
                    &Exit {
                        code: 0,
                        reason: "Completed".into(),
                        started: done.started,
                        finished: done.finished,
                        message: done.message.clone(),
                    },
                    status.container_id.clone(),
                ));
            } else if let Stage::Init { index, since } = &rt.stage
                && *index == i
                && *since <= now
            {
                status.started = Some(true);
                status.container_id = Some(id(&c.name, rt.init_restarts));
                status.state = Some(running(*since));
                status.last_state = rt.init_last_exit.as_ref().map(|exit| {
                    terminated(exit, Some(id(&c.name, rt.init_restarts.saturating_sub(1))))
                });
            } else if let Stage::Init { index, since } = &rt.stage
                && *index == i
                && let Some(exit) = &rt.init_last_exit
            {
                let seconds = since.duration_since(exit.finished).as_secs().max(0);
                status.state = Some(waiting(
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {seconds}s restarting failed container={} pod={}_{}({})",
                        c.name,
                        name_of(pod),
                        namespace_of(pod),
                        rt.uid
                    )),
                ));
                status.last_state = Some(terminated(
                    exit,
                    Some(id(&c.name, rt.init_restarts.saturating_sub(1))),
                ));
            } else {
                status.state = Some(waiting("PodInitializing", None));
            }
            status
        })
        .collect();
    let (phase, app_statuses) = match &rt.stage {
        Stage::Init { .. } => (
            "Pending",
            spec.containers
                .iter()
                .map(|c| {
                    let mut s = base_status(c, 0);
                    s.state = Some(waiting("PodInitializing", None));
                    s
                })
                .collect::<Vec<_>>(),
        ),
        Stage::Running(runs) => {
            let statuses: Vec<ContainerStatus> = spec
                .containers
                .iter()
                .zip(runs)
                .map(|(c, run)| app_status(pod, c, run, now, &id))
                .collect();
            let any_started = runs.iter().any(|r| r.started <= now || r.restarts > 0);
            (if any_started { "Running" } else { "Pending" }, statuses)
        }
        Stage::Failed { containers, exit } => {
            let statuses = spec
                .containers
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut s = base_status(c, containers.get(i).map_or(0, |r| r.restarts as i32));
                    s.container_id = Some(id(&c.name, s.restart_count as u32));
                    s.state = Some(terminated(exit, s.container_id.clone()));
                    s
                })
                .collect();
            ("Failed", statuses)
        }
    };
    let not_ready: Vec<&str> = app_statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let incomplete: Vec<&str> = init_statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let mut conditions = vec![
        condition("PodReadyToStartContainers", true, None, None),
        if incomplete.is_empty() {
            condition("Initialized", true, None, None)
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: {}",
                    list(&incomplete)
                )),
            )
        },
    ];
    for type_ in ["Ready", "ContainersReady"] {
        conditions.push(if not_ready.is_empty() {
            condition(type_, true, None, None)
        } else {
            condition(
                type_,
                false,
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: {}",
                    list(&not_ready)
                )),
            )
        });
    }
    conditions.push(condition("PodScheduled", true, None, None));
    let previous = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    for c in &mut conditions {
        c.last_transition_time = Some(time(now));
        if let Some(old) = previous
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = old
                .last_transition_time
                .clone()
                .or(c.last_transition_time.take());
        }
    }
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_owned(),
        }]),
        pod_ip: Some(rt.pod_ip.clone()),
        pod_ips: Some(vec![PodIP {
            ip: rt.pod_ip.clone(),
        }]),
        start_time: Some(time(rt.started)),
        qos_class: Some(qos_class(&spec).to_owned()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(app_statuses),
        ..Default::default()
    }
}

impl PodRuntime {
    fn init_restarts_for(&self, index: usize) -> i32 {
        if let Some(done) = self.init_done.get(index) {
            return done.restarts as i32;
        }
        match self.stage {
            Stage::Init { index: current, .. } if current == index => self.init_restarts as i32,
            _ => 0,
        }
    }
}

fn app_status(
    pod: &Pod,
    c: &Container,
    run: &Run,
    now: Timestamp,
    id: &dyn Fn(&str, u32) -> String,
) -> ContainerStatus {
    let mut s = base_status(c, run.restarts as i32);
    s.last_state = run
        .last_exit
        .as_ref()
        .map(|exit| terminated(exit, Some(id(&c.name, run.restarts.saturating_sub(1)))));
    if let Some(until) = run.back_off_until {
        let seconds = until.duration_since(run.last_exit.as_ref().map_or(now, |e| e.finished));
        s.state = Some(waiting(
            "CrashLoopBackOff",
            Some(format!(
                "back-off {}s restarting failed container={} pod={}_{}({})",
                seconds.as_secs().max(0),
                c.name,
                name_of(pod),
                namespace_of(pod),
                pod.metadata.uid.as_deref().unwrap_or_default()
            )),
        ));
    } else if run.started > now {
        s.state = Some(waiting("ContainerCreating", None));
    } else {
        s.container_id = Some(id(&c.name, run.restarts));
        s.started = Some(true);
        s.ready = run.ready_at.is_some_and(|at| at <= now);
        s.state = Some(running(run.started));
    }
    s
}

fn base_status(c: &Container, restarts: i32) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    ContainerStatus {
        name: c.name.clone(),
        image_id: format!(
            "{}@sha256:{}",
            image.split(':').next().unwrap_or_default(),
            hex_id(&image, 64)
        ),
        image,
        ready: false,
        started: Some(false),
        restart_count: restarts,
        ..Default::default()
    }
}

fn running(since: Timestamp) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(time(since)),
        }),
        ..Default::default()
    }
}

pub(super) fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..Default::default()
    }
}

fn terminated(exit: &Exit, container_id: Option<String>) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: exit.code,
            reason: Some(exit.reason.clone()),
            started_at: Some(time(exit.started)),
            finished_at: Some(time(exit.finished)),
            container_id,
            message: exit.message.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.map(str::to_owned),
        message,
        ..Default::default()
    }
}

/// Guaranteed when every container's CPU and memory requests equal limits,
/// BestEffort when nothing is requested or limited, else Burstable.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let named = |c: &Container, limits: bool, r: &str| {
        let res = c.resources.as_ref();
        let list = if limits {
            res.and_then(|r| r.limits.as_ref())
        } else {
            res.and_then(|r| r.requests.as_ref())
        };
        list.and_then(|l| l.get(r)).is_some()
    };
    let any = containers.iter().any(|c| {
        ["cpu", "memory"]
            .iter()
            .any(|r| named(c, false, r) || named(c, true, r))
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let requests = container_requests(c);
        ["cpu", "memory"].iter().all(|r| {
            let limit = c
                .resources
                .as_ref()
                .and_then(|x| x.limits.as_ref())
                .and_then(|l| l.get(*r));
            limit.is_some_and(|l| requests.get(*r) == Some(&crate::cluster::resources::milli(l)))
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// What the node lifecycle controller does to pods of a NotReady node:
/// their Ready condition goes False, nothing else changes (nobody hears
/// from the kubelet).
pub fn mark_not_ready(pod: &Pod, now: Timestamp) -> PodStatus {
    let mut status = pod.status.clone().unwrap_or_default();
    for c in status.conditions.iter_mut().flatten() {
        if c.type_ == "Ready" && c.status != "False" {
            c.status = "False".into();
            c.last_transition_time = Some(time(now));
        }
    }
    status
}

/// After the grace period the pod is given up: Failed, reason `NodeLost`.
pub fn mark_node_lost(pod: &Pod, node: &str, now: Timestamp) -> PodStatus {
    let mut status = mark_not_ready(pod, now);
    status.phase = Some("Failed".into());
    status.reason = Some("NodeLost".into());
    status.message = Some(format!(
        "Node {node} which was running pod {} is unresponsive",
        name_of(pod)
    ));
    status
}
