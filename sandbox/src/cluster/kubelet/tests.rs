use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use modelfleet_core::contract::labels::MODEL_BYTES_ANNOTATION;

use super::runtime::{PodRuntime, Stage, Timings, pick_pod_ip};
use super::status::{mark_node_lost, mark_not_ready, qos_class, render};
use crate::cluster::common::later;
use crate::cluster::fixtures::{PodBuilder, pod};

fn t(seconds: u64) -> Timestamp {
    later(
        Timestamp::from_second(1_700_000_000).unwrap(),
        Duration::from_secs(seconds),
    )
}

fn engine() -> PodBuilder {
    pod("engine")
        .on("p5-h100-1")
        .requests("nvidia.com/gpu", "4")
        .init_container("fetch")
        .readiness_probe()
}

fn condition(status: &PodStatus, type_: &str) -> String {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| format!("{}/{}", c.status, c.reason.as_deref().unwrap_or("")))
        .unwrap_or_default()
}

/// Runs the runtime to `at` and renders the status a kubelet would write,
/// carrying the previous status as the API would.
fn step(pod: &mut Pod, rt: &mut PodRuntime, at: Timestamp, timings: &Timings) -> Option<Timestamp> {
    let wake = rt.advance(pod, at, timings);
    pod.status = Some(render(pod, rt, "172.16.0.11", at));
    wake
}

#[test]
fn load_time_grows_with_the_model_and_scales_with_the_factor() {
    let timings = Timings::default();
    let small = pod("s").requests("nvidia.com/gpu", "1").build();
    let large = pod("l").requests("nvidia.com/gpu", "8").build();
    assert_eq!(timings.load_duration(&small), Duration::from_secs(40));
    assert_eq!(timings.load_duration(&large), Duration::from_secs(110));
    let sized = pod("m")
        .annotation(MODEL_BYTES_ANNOTATION, "140000000000")
        .build();
    assert_eq!(timings.load_duration(&sized), Duration::from_secs(100));
    assert_eq!(timings.init_duration(&sized, 0), Duration::from_secs(143));
    assert_eq!(timings.init_duration(&sized, 1), Duration::from_secs(3));
    let fast = Timings {
        time_factor: 0.001,
        ..Timings::default()
    };
    assert_eq!(fast.load_duration(&large), Duration::from_millis(110));
}

#[test]
fn a_pod_initializes_runs_and_becomes_ready_after_loading() {
    let timings = Timings::default();
    let mut p = engine().build();
    let mut rt = PodRuntime::admit(&p, "10.0.1.2".into(), t(0), &timings);
    // Init container "fetch" runs for 3s.
    assert_eq!(step(&mut p, &mut rt, t(0), &timings), Some(t(3)));
    let s = p.status.clone().unwrap();
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(
        condition(&s, "Initialized"),
        "False/ContainersNotInitialized"
    );
    let init = &s.init_container_statuses.as_ref().unwrap()[0];
    assert!(init.state.as_ref().unwrap().running.is_some());
    let main = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        main.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("PodInitializing")
    );
    // After init: 2s container start, then 70s load (30s + 4 devices × 10s).
    assert_eq!(step(&mut p, &mut rt, t(3), &timings), Some(t(5)));
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(step(&mut p, &mut rt, t(5), &timings), Some(t(75)));
    let s = p.status.clone().unwrap();
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(condition(&s, "Initialized"), "True/");
    assert_eq!(condition(&s, "Ready"), "False/ContainersNotReady");
    let init = &s.init_container_statuses.as_ref().unwrap()[0];
    let done = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (done.exit_code, done.reason.as_deref()),
        (0, Some("Completed"))
    );
    let main = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!((main.started, main.ready), (Some(true), false));
    assert!(main.state.as_ref().unwrap().running.is_some());
    let ready_since = s
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Initialized")
        .unwrap()
        .last_transition_time
        .clone();
    // A late wake-up reports the same timeline.
    assert_eq!(step(&mut p, &mut rt, t(80), &timings), None);
    let s = p.status.clone().unwrap();
    assert_eq!(condition(&s, "Ready"), "True/");
    assert_eq!(condition(&s, "ContainersReady"), "True/");
    assert!(s.container_statuses.as_ref().unwrap()[0].ready);
    assert_eq!(
        (s.pod_ip.as_deref(), s.host_ip.as_deref()),
        (Some("10.0.1.2"), Some("172.16.0.11"))
    );
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    // Conditions that did not change keep their transition time.
    let initialized = s
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Initialized")
        .unwrap();
    assert_eq!(initialized.last_transition_time, ready_since);
}

#[test]
fn containers_without_probes_are_ready_when_they_start() {
    let timings = Timings::default();
    let mut p = pod("pause").on("n").build();
    let mut rt = PodRuntime::admit(&p, "10.0.0.2".into(), t(0), &timings);
    assert_eq!(step(&mut p, &mut rt, t(0), &timings), Some(t(2)));
    assert_eq!(step(&mut p, &mut rt, t(2), &timings), None);
    assert_eq!(condition(p.status.as_ref().unwrap(), "Ready"), "True/");
}

#[test]
fn a_crashed_container_backs_off_restarts_and_loads_again() {
    let timings = Timings::default();
    let mut p = engine().build();
    let mut rt = PodRuntime::admit(&p, "10.0.1.2".into(), t(0), &timings);
    step(&mut p, &mut rt, t(100), &timings);
    assert_eq!(condition(p.status.as_ref().unwrap(), "Ready"), "True/");
    rt.crash(t(100), &timings);
    assert_eq!(step(&mut p, &mut rt, t(101), &timings), Some(t(110)));
    let s = p.status.clone().unwrap();
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(condition(&s, "Ready"), "False/ContainersNotReady");
    let main = &s.container_statuses.as_ref().unwrap()[0];
    let waiting = main.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=main pod=engine_default(")
    );
    let last = main
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    // Restarted at 110, loaded 70s later.
    assert_eq!(step(&mut p, &mut rt, t(110), &timings), Some(t(180)));
    assert_eq!(
        p.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .restart_count,
        1
    );
    step(&mut p, &mut rt, t(180), &timings);
    assert_eq!(condition(p.status.as_ref().unwrap(), "Ready"), "True/");
    // The second crash waits twice as long.
    rt.crash(t(200), &timings);
    assert_eq!(step(&mut p, &mut rt, t(200), &timings), Some(t(220)));
}

#[test]
fn with_restart_policy_never_a_crash_fails_the_pod() {
    let timings = Timings::default();
    let mut p = engine().restart_policy("Never").build();
    let mut rt = PodRuntime::admit(&p, "10.0.1.2".into(), t(0), &timings);
    step(&mut p, &mut rt, t(100), &timings);
    rt.crash(t(100), &timings);
    assert_eq!(step(&mut p, &mut rt, t(101), &timings), None);
    assert!(matches!(rt.stage, Stage::Failed { .. }));
    let s = p.status.unwrap();
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    let main = &s.container_statuses.unwrap()[0];
    assert_eq!(
        main.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        1
    );
}

#[test]
fn pods_of_a_lost_node_go_not_ready_then_fail() {
    let timings = Timings::default();
    let mut p = engine().build();
    let mut rt = PodRuntime::admit(&p, "10.0.1.2".into(), t(0), &timings);
    step(&mut p, &mut rt, t(100), &timings);
    let not_ready = mark_not_ready(&p, t(101));
    assert_eq!(not_ready.phase.as_deref(), Some("Running"));
    assert_eq!(condition(&not_ready, "Ready"), "False/");
    // Containers are not touched: nobody hears from the kubelet.
    assert!(not_ready.container_statuses.as_ref().unwrap()[0].ready);
    let lost = mark_node_lost(&p, "p5-h100-1", t(400));
    assert_eq!(lost.phase.as_deref(), Some("Failed"));
    assert_eq!(lost.reason.as_deref(), Some("NodeLost"));
    assert_eq!(
        lost.message.as_deref(),
        Some("Node p5-h100-1 which was running pod engine is unresponsive")
    );
}

#[test]
fn a_restarted_kubelet_adopts_running_pods() {
    let timings = Timings::default();
    let mut p = engine().build();
    let mut rt = PodRuntime::admit(&p, "10.0.1.2".into(), t(0), &timings);
    step(&mut p, &mut rt, t(100), &timings);
    let adopted = PodRuntime::adopt(&p, t(500), &timings).unwrap();
    assert_eq!(adopted.pod_ip, "10.0.1.2");
    let before = p.status.clone();
    let mut again = adopted;
    assert_eq!(again.advance(&p, t(500), &timings), None);
    assert_eq!(
        render(&p, &again, "172.16.0.11", t(500)).container_statuses,
        before.unwrap().container_statuses
    );
    assert!(PodRuntime::adopt(&engine().build(), t(0), &timings).is_none());
}

#[test]
fn pod_addresses_come_from_the_node_cidr() {
    assert_eq!(pick_pod_ip("10.0.7.0/24", &[]), Some("10.0.7.2".into()));
    assert_eq!(
        pick_pod_ip("10.0.7.0/24", &["10.0.7.2", "10.0.7.3"]),
        Some("10.0.7.4".into())
    );
    assert_eq!(pick_pod_ip("bad", &[]), None);
}

#[test]
fn qos_classes_follow_requests_and_limits() {
    assert_eq!(
        qos_class(engine().build().spec.as_ref().unwrap()),
        "BestEffort"
    );
    let guaranteed = pod("g")
        .requests("cpu", "2")
        .requests("memory", "8Gi")
        .build();
    assert_eq!(qos_class(guaranteed.spec.as_ref().unwrap()), "Guaranteed");
    let mut burstable = pod("b").requests("cpu", "2").build();
    let resources = burstable.spec.as_mut().unwrap().containers[0]
        .resources
        .as_mut()
        .unwrap();
    resources.limits = None;
    assert_eq!(qos_class(burstable.spec.as_ref().unwrap()), "Burstable");
}
