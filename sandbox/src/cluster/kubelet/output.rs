//! What a simulated pod's containers print, as a function of the runtime's
//! timeline: the lines `kubectl logs` shows. Pure; the kubelet writes what
//! is new into the cluster's [`PodLogs`](crate::logs::PodLogs).
//!
//! A simulated container prints only what the sandbox knows of it, each
//! line saying it is simulated: that it started, that its readiness probe
//! passes, how it exited. The first init container of a pod whose model
//! size is known plays `modelfleet fetch`: it prints the same progress
//! lines ([`progress_line`]) every [`PROGRESS_EVERY`] of simulated time,
//! so whatever reads a real fetch's progress reads the simulated one too.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use modelfleet_core::contract::fetch::{FetchProgress, progress_line};

use super::runtime::{Exit, PodRuntime, Run, Stage, Timings};
use crate::cluster::common::later;

/// How often, in simulated time, a simulated download prints its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// However fast time is scaled, no more often than this in real time.
pub const PROGRESS_AT_MOST_EVERY: Duration = Duration::from_millis(250);

/// One run of one container and what it has printed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    pub container: String,
    /// Counts the container's restarts: a new run starts a new log.
    pub run: u32,
    pub lines: Vec<(Timestamp, String)>,
    /// The run has exited.
    pub ended: bool,
}

/// Everything the pod's containers have printed by `now`, and when the
/// next line will be printed (a download's next progress line) if that is
/// sooner than the runtime's own next change.
pub fn printed(
    pod: &Pod,
    rt: &PodRuntime,
    now: Timestamp,
    timings: &Timings,
) -> (Vec<Printed>, Option<Timestamp>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut next = None;
    for (i, c) in inits.iter().enumerate() {
        let span = match (rt.init_done.get(i), &rt.stage) {
            (Some(done), _) => Some((done.started, Some(done.finished), done.restarts)),
            (None, Stage::Init { index, since }) if *index == i && *since <= now => {
                Some((*since, None, rt.init_restarts))
            }
            _ => None,
        };
        let Some((started, finished, run)) = span else {
            continue;
        };
        if rt.real_init == Some(i) {
            continue; // It prints for itself.
        }
        let (lines, upcoming) = if i == 0 && Timings::model_bytes(pod).is_some() {
            download(pod, c, started, finished, now, timings)
        } else {
            let mut lines = vec![(started, started_line(c))];
            if let Some(at) = finished {
                lines.push((at, exit_line(c, 0, "Completed")));
            }
            (lines, None)
        };
        next = earliest(next, upcoming);
        out.push(Printed {
            container: c.name.clone(),
            run,
            lines,
            ended: finished.is_some(),
        });
    }
    let (runs, failed): (&[Run], Option<&Exit>) = match &rt.stage {
        Stage::Init { .. } => (&[], None),
        Stage::Running(runs) => (runs, None),
        Stage::Failed { containers, exit } => (containers, Some(exit)),
    };
    for (i, (c, run)) in spec.containers.iter().zip(runs).enumerate() {
        if run.started > now {
            continue;
        }
        let mut lines = vec![(run.started, started_line(c))];
        if let Some(ready) = run.ready_at.filter(|at| *at <= now && *at > run.started) {
            lines.push((
                ready,
                format!("sandbox: {} is ready (its probe passes)", c.name),
            ));
        }
        // A crashed run waits in back-off, or the pod failed with it.
        let exit = match (run.back_off_until, failed) {
            (Some(_), _) => run.last_exit.as_ref(),
            (None, Some(exit)) if i == 0 => Some(exit),
            _ => None,
        };
        if let Some(exit) = exit {
            lines.push((exit.finished, exit_line(c, exit.code, &exit.reason)));
        }
        out.push(Printed {
            container: c.name.clone(),
            run: run.restarts,
            lines,
            ended: exit.is_some() || failed.is_some(),
        });
    }
    (out, next)
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn started_line(c: &Container) -> String {
    format!(
        "sandbox: simulated container {} ({}) started; it runs nothing and prints only what the sandbox knows",
        c.name,
        c.image.as_deref().unwrap_or("no image")
    )
}

fn exit_line(c: &Container, code: i32, reason: &str) -> String {
    format!("sandbox: {} exited with code {code} ({reason})", c.name)
}

/// The value after `flag` in the container's command and arguments.
fn argument<'a>(c: &'a Container, flag: &str) -> Option<&'a str> {
    let words: Vec<&str> = c
        .command
        .iter()
        .chain(&c.args)
        .flatten()
        .map(String::as_str)
        .collect();
    let at = words.iter().position(|w| *w == flag)?;
    words.get(at + 1).copied()
}

/// A simulated download's lines: progress every [`PROGRESS_EVERY`] of
/// simulated time, at the rate that ends it when the init container ends.
fn download(
    pod: &Pod,
    c: &Container,
    started: Timestamp,
    finished: Option<Timestamp>,
    now: Timestamp,
    timings: &Timings,
) -> (Vec<(Timestamp, String)>, Option<Timestamp>) {
    let total = Timings::model_bytes(pod).unwrap_or(0);
    let source = argument(c, "--source").unwrap_or("the model");
    let ends = finished.unwrap_or_else(|| later(started, timings.init_duration(pod, 0)));
    let length = Duration::try_from(ends.duration_since(started)).unwrap_or(Duration::ZERO);
    let step = timings.scaled(PROGRESS_EVERY).max(PROGRESS_AT_MOST_EVERY);
    // The simulated rate, in bytes per simulated second.
    let rate = timings.fetch_bytes_per_second as f64;
    let upto = finished.map_or(now, |f| f.min(now));
    let mut lines = Vec::new();
    let mut at = later(started, step);
    while at < ends && at <= upto {
        let elapsed = Duration::try_from(at.duration_since(started)).unwrap_or(Duration::ZERO);
        let done = if length.is_zero() {
            total
        } else {
            (total as f64 * elapsed.as_secs_f64() / length.as_secs_f64()) as u64
        };
        let progress = FetchProgress {
            done: done.min(total),
            total,
        };
        lines.push((at, progress_line(source, progress, 1, rate)));
        at = later(at, step);
    }
    let upcoming = (finished.is_none() && at < ends).then_some(at);
    if let Some(finished) = finished {
        let progress = FetchProgress { done: total, total };
        lines.push((finished, progress_line(source, progress, 1, rate)));
        lines.push((
            finished,
            format!(
                "fetch: {:.2} GiB of {source} simulated by the sandbox (nothing was downloaded)",
                total as f64 / (1024.0 * 1024.0 * 1024.0)
            ),
        ));
    }
    lines.insert(0, (started, started_line(c)));
    (lines, upcoming)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::pod;
    use modelfleet_core::contract::fetch::parse_progress;
    use modelfleet_core::contract::labels::MODEL_BYTES_ANNOTATION;

    fn at(secs: f64) -> Timestamp {
        later(
            Timestamp::from_second(1_800_000_000).unwrap(),
            Duration::from_secs_f64(secs),
        )
    }

    fn texts(p: &Printed) -> Vec<&str> {
        p.lines.iter().map(|(_, t)| t.as_str()).collect()
    }

    #[test]
    fn a_simulated_download_prints_progress_the_operator_can_read() {
        // 10 GB at 1 GB/s, plus the init container's own 3 s: 13 s.
        let pod = pod("llama-0")
            .on("p5-h100-1")
            .init_container("fetch-weights")
            .readiness_probe()
            .annotation(MODEL_BYTES_ANNOTATION, "10000000000")
            .build();
        let timings = Timings::default();
        let rt = PodRuntime::admit(&pod, "10.0.0.2".into(), at(0.0), &timings);
        let (out, next) = printed(&pod, &rt, at(5.0), &timings);
        assert_eq!(out.len(), 1, "the engine has not started");
        let fetch = &out[0];
        assert!(!fetch.ended);
        // Started, then progress at 2 s and 4 s.
        assert_eq!(fetch.lines.len(), 3, "{:?}", texts(fetch));
        let last = parse_progress(&fetch.lines[2].1).expect("a progress line");
        assert_eq!(last.total, 10_000_000_000);
        assert_eq!(last.done, 10_000_000_000 * 4 / 13);
        assert_eq!(next, Some(at(6.0)), "the next progress line is due");

        let mut rt = rt;
        rt.advance(&pod, at(20.0), &timings);
        let (out, _) = printed(&pod, &rt, at(20.0), &timings);
        let fetch = out.iter().find(|p| p.container == "fetch-weights").unwrap();
        assert!(fetch.ended);
        let done: Vec<_> = fetch
            .lines
            .iter()
            .filter_map(|(_, t)| parse_progress(t))
            .collect();
        assert_eq!(done.len(), 7, "every 2 s up to 12 s, then the end");
        assert!(done.windows(2).all(|w| w[0].done <= w[1].done));
        assert_eq!(done.last().unwrap().done, 10_000_000_000);
        assert!(
            texts(fetch)
                .last()
                .unwrap()
                .contains("simulated by the sandbox")
        );
        let engine = out.iter().find(|p| p.container == "main").unwrap();
        assert!(texts(engine)[0].contains("simulated container main"));
    }

    #[test]
    fn a_crashed_engine_ends_its_run_and_the_restart_starts_another() {
        let pod = pod("llama-0").on("p5-h100-1").readiness_probe().build();
        let timings = Timings::default();
        let mut rt = PodRuntime::admit(&pod, "10.0.0.2".into(), at(0.0), &timings);
        rt.advance(&pod, at(100.0), &timings);
        let (out, _) = printed(&pod, &rt, at(100.0), &timings);
        assert_eq!(out[0].run, 0);
        assert!(texts(&out[0])[1].contains("is ready"));
        rt.crash(at(101.0), &timings);
        let (out, _) = printed(&pod, &rt, at(101.0), &timings);
        assert!(out[0].ended);
        assert!(
            texts(&out[0])
                .last()
                .unwrap()
                .contains("exited with code 1 (Error)")
        );
        rt.advance(&pod, at(200.0), &timings);
        let (out, _) = printed(&pod, &rt, at(200.0), &timings);
        assert_eq!(out[0].run, 1);
        assert!(!out[0].ended);
    }
}
