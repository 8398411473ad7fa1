//! What containers print, as a node's container runtime keeps it: the
//! kubelet writes each container's lines here and the API server reads
//! them for `pods/{name}/log` (`kubectl logs`), as the real API server
//! proxies that request to the node's kubelet.
//!
//! One [`PodLogs`] is shared by a cluster's kubelet
//! ([`ClusterOptions::pod_logs`](crate::cluster::ClusterOptions)) and its
//! API server ([`ApiServer::pod_logs`](crate::ApiServer::pod_logs)).
//! Each container keeps its last [`LINES_KEPT`] lines (a real kubelet
//! rotates at 10 MiB); a restarted container's run replaces the one
//! before (`previous` is not kept). Nothing here survives a restart of
//! the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

/// Lines kept per container; older ones are dropped.
pub const LINES_KEPT: usize = 5_000;

/// One line a container printed, numbered from its run's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub seq: u64,
    pub at: Timestamp,
    pub text: String,
}

#[derive(Debug, Default)]
struct ContainerLog {
    /// The sequence number of `lines[0]`.
    first: u64,
    lines: VecDeque<(Timestamp, String)>,
    /// The container has exited: a follower stops at its last line.
    ended: bool,
}

#[derive(Debug, Default)]
struct PodEntry {
    uid: String,
    containers: HashMap<String, ContainerLog>,
}

#[derive(Debug)]
struct Inner {
    pods: Mutex<HashMap<(String, String), PodEntry>>,
    /// Bumped on every change, so followers wake.
    changed: watch::Sender<u64>,
}

/// The containers' output of one cluster. Clones share it.
#[derive(Debug, Clone)]
pub struct PodLogs {
    inner: Arc<Inner>,
}

impl Default for PodLogs {
    fn default() -> Self {
        PodLogs {
            inner: Arc::new(Inner {
                pods: Mutex::new(HashMap::new()),
                changed: watch::Sender::new(0),
            }),
        }
    }
}

/// A container's lines at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub lines: Vec<Line>,
    /// The container has exited.
    pub ended: bool,
}

impl PodLogs {
    pub fn new() -> Self {
        Self::default()
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PodEntry>> {
        self.inner
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Appends `text` (one line per `\n`-separated part) to `container` of
    /// pod `namespace/name` with `uid`. A pod of another uid (deleted and
    /// created again under its name) starts with no lines; a container
    /// that had ended starts a new run.
    pub fn write(
        &self,
        (namespace, name, uid): (&str, &str, &str),
        container: &str,
        at: Timestamp,
        text: &str,
    ) {
        {
            let mut pods = self.pods();
            let entry = pods
                .entry((namespace.to_owned(), name.to_owned()))
                .or_default();
            if entry.uid != uid {
                *entry = PodEntry {
                    uid: uid.to_owned(),
                    containers: HashMap::new(),
                };
            }
            let log = entry.containers.entry(container.to_owned()).or_default();
            if log.ended {
                *log = ContainerLog {
                    first: log.first + log.lines.len() as u64,
                    ..ContainerLog::default()
                };
            }
            for line in text.lines() {
                log.lines.push_back((at, line.to_owned()));
                if log.lines.len() > LINES_KEPT {
                    log.lines.pop_front();
                    log.first += 1;
                }
            }
        }
        self.notify();
    }

    /// `container` of the pod has exited: followers stop at its last line.
    pub fn end(&self, (namespace, name, uid): (&str, &str, &str), container: &str) {
        {
            let mut pods = self.pods();
            let Some(entry) = pods.get_mut(&(namespace.to_owned(), name.to_owned())) else {
                return;
            };
            if entry.uid != uid {
                return;
            }
            if let Some(log) = entry.containers.get_mut(container) {
                log.ended = true;
            }
        }
        self.notify();
    }

    /// The pod is gone: its lines go with it.
    pub fn forget(&self, namespace: &str, name: &str) {
        let removed = self
            .pods()
            .remove(&(namespace.to_owned(), name.to_owned()))
            .is_some();
        if removed {
            self.notify();
        }
    }

    /// The lines of `container` of the pod with `uid` numbered `from` or
    /// later; `None` when that container has printed nothing.
    pub fn read(
        &self,
        (namespace, name, uid): (&str, &str, &str),
        container: &str,
        from: u64,
    ) -> Option<Snapshot> {
        let pods = self.pods();
        let entry = pods.get(&(namespace.to_owned(), name.to_owned()))?;
        if entry.uid != uid {
            return None;
        }
        let log = entry.containers.get(container)?;
        let skip = from.saturating_sub(log.first);
        let lines = log
            .lines
            .iter()
            .enumerate()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .map(|(i, (at, text))| Line {
                seq: log.first + i as u64,
                at: *at,
                text: text.clone(),
            })
            .collect();
        Some(Snapshot {
            lines,
            ended: log.ended,
        })
    }

    /// Wakes on every change after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: (&str, &str, &str) = ("team-a", "llama-0", "uid-1");

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn texts(logs: &PodLogs, pod: (&str, &str, &str), container: &str) -> Vec<String> {
        logs.read(pod, container, 0)
            .map(|s| s.lines.into_iter().map(|l| l.text).collect())
            .unwrap_or_default()
    }

    #[test]
    fn lines_are_kept_per_container_and_pod_uid() {
        let logs = PodLogs::new();
        logs.write(POD, "fetch", at(0), "one\ntwo");
        logs.write(POD, "engine", at(1), "up");
        assert_eq!(texts(&logs, POD, "fetch"), ["one", "two"]);
        assert_eq!(texts(&logs, POD, "engine"), ["up"]);
        assert!(logs.read(POD, "other", 0).is_none());
        // The same name, another pod: nothing of the old one shows.
        let again = ("team-a", "llama-0", "uid-2");
        assert!(logs.read(again, "fetch", 0).is_none());
        logs.write(again, "fetch", at(2), "fresh");
        assert_eq!(texts(&logs, again, "fetch"), ["fresh"]);
        assert!(logs.read(POD, "fetch", 0).is_none());
        logs.forget("team-a", "llama-0");
        assert!(logs.read(again, "fetch", 0).is_none());
    }

    #[test]
    fn only_the_last_lines_are_kept_and_numbers_go_on() {
        let logs = PodLogs::new();
        for i in 0..LINES_KEPT + 10 {
            logs.write(POD, "engine", at(0), &format!("line {i}"));
        }
        let all = logs.read(POD, "engine", 0).unwrap();
        assert_eq!(all.lines.len(), LINES_KEPT);
        assert_eq!(all.lines[0].seq, 10);
        assert_eq!(all.lines[0].text, "line 10");
        let tail = logs.read(POD, "engine", (LINES_KEPT + 8) as u64).unwrap();
        assert_eq!(
            tail.lines
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>(),
            [
                format!("line {}", LINES_KEPT + 8),
                format!("line {}", LINES_KEPT + 9)
            ]
        );
    }

    #[test]
    fn an_ended_container_that_writes_again_is_a_new_run() {
        let logs = PodLogs::new();
        logs.write(POD, "engine", at(0), "first run");
        logs.end(POD, "engine");
        assert!(logs.read(POD, "engine", 0).unwrap().ended);
        logs.write(POD, "engine", at(5), "second run");
        let now = logs.read(POD, "engine", 0).unwrap();
        assert!(!now.ended);
        assert_eq!(now.lines.len(), 1);
        assert_eq!(now.lines[0].text, "second run");
        assert_eq!(now.lines[0].seq, 1, "numbers go on across runs");
    }

    #[tokio::test]
    async fn followers_wake_on_writes() {
        let logs = PodLogs::new();
        let mut changes = logs.subscribe();
        logs.write(POD, "engine", at(0), "hello");
        tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
            .await
            .expect("woken")
            .expect("sender alive");
    }
}
