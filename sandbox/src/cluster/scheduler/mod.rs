//! The scheduler: binds pending pods to nodes, one at a time, as the
//! default kube-scheduler does, or marks them `PodScheduled=False` with the
//! real scheduler's reason and message. The decision is `filter::schedule`;
//! this loop only watches, binds and writes status.
//!
//! Like the real scheduler it keeps an "assumed" cache: a pod it has bound
//! counts against its node at once, before the watch reports the binding,
//! so two pods can never be given the same free devices. Every change to a
//! node or pod triggers a new pass, which is how unschedulable pods are
//! retried when capacity frees up.

pub mod filter;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, PodCondition};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use modelfleet_core::contract::condition::pod;
use serde_json::json;

use super::common::{Backoff, api_code, is_terminating, name_of, namespace_of, node_of, now, time};
use super::events::{self, SCHEDULER};
use filter::{Candidates, Scoring, Unschedulable, Usage, schedule};

const SCHEDULER_NAME: &str = "default-scheduler";

/// Runs until the task is aborted.
pub async fn run(client: Client, scoring: Scoring) {
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .map(|e| e.map(|_| ()));
    let node_events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .map(|e| e.map(|_| ()));
    let mut changes = futures::stream::select(pod_events.boxed(), node_events.boxed());
    let mut scheduler = Scheduler {
        client,
        scoring,
        assumed: BTreeMap::new(),
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
    };
    let mut retry: Option<Duration> = None;
    loop {
        let event = match retry {
            Some(delay) => tokio::time::timeout(delay, changes.next()).await.ok(),
            None => Some(changes.next().await),
        };
        if let Some(None) = event {
            return; // Both watch streams ended: nothing left to watch.
        }
        // Take every change already queued, so a burst of events costs
        // one pass.
        while let Some(Some(next)) = changes.next().now_or_never() {
            if let Err(error) = next {
                tracing::debug!(%error, "scheduler watch error; the watcher retries");
            }
        }
        if nodes.wait_until_ready().now_or_never().is_none()
            || pods.wait_until_ready().now_or_never().is_none()
        {
            continue;
        }
        retry = scheduler.pass(&pods, &nodes).await;
    }
}

struct Scheduler {
    client: Client,
    scoring: Scoring,
    /// Pod uid → node, for bindings the watch has not shown yet.
    assumed: BTreeMap<String, (String, Arc<Pod>)>,
    backoff: Backoff,
}

/// Pods this scheduler is responsible for and has not placed.
fn pending(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let mut pending: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| node_of(p).is_none() && !is_terminating(p))
        .filter(|p| {
            let name = p.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
            name.is_none_or(|n| n == SCHEDULER_NAME)
        })
        .cloned()
        .collect();
    // Higher priority first, then first come, first served.
    pending.sort_by_key(|p| {
        (
            std::cmp::Reverse(p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)),
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            namespace_of(p.as_ref()).to_owned(),
            name_of(p.as_ref()).to_owned(),
        )
    });
    pending
}

impl Scheduler {
    /// One scheduling pass over every pending pod. Returns when to try
    /// again if an API call failed.
    async fn pass(&mut self, pods: &Store<Pod>, nodes: &Store<Node>) -> Option<Duration> {
        let pods = pods.state();
        let nodes = nodes.state();
        let by_uid: BTreeMap<&str, &Arc<Pod>> = pods
            .iter()
            .filter_map(|p| Some((p.metadata.uid.as_deref()?, p)))
            .collect();
        // Forget assumptions the watch has caught up with (or that no
        // longer matter because the pod is gone).
        self.assumed.retain(|uid, _| {
            by_uid
                .get(uid.as_str())
                .is_some_and(|p| node_of(p).is_none())
        });
        let mut usage = Usage::from_pods(pods.iter().map(|p| p.as_ref()));
        for (node, pod) in self.assumed.values() {
            if let Some(spec) = &pod.spec {
                usage.add(node, spec);
            }
        }
        let candidates = Candidates::new(&nodes).scoring(self.scoring);
        let mut failed = false;
        for pod in pending(&pods) {
            let uid = pod.uid().unwrap_or_default();
            if self.assumed.contains_key(&uid) {
                continue;
            }
            let outcome = match schedule(&pod, &candidates, &usage) {
                Ok(node) => self.bind(&pod, &node).await.map(|bound| {
                    if bound {
                        if let Some(spec) = &pod.spec {
                            usage.add(&node, spec);
                        }
                        self.assumed.insert(uid, (node, pod.clone()));
                    }
                }),
                Err(unschedulable) => self.mark_unschedulable(&pod, &unschedulable).await,
            };
            if let Err(error) = outcome {
                tracing::warn!(pod = %name_of(pod.as_ref()), %error, "scheduler API call failed; will retry");
                failed = true;
            }
        }
        if failed {
            Some(self.backoff.next_delay())
        } else {
            self.backoff.reset();
            None
        }
    }

    /// Binds `pod` to `node`. `Ok(false)` when the pod went away or was
    /// bound by someone else meanwhile: nothing to do.
    async fn bind(&self, pod: &Pod, node: &str) -> Result<bool, kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(pod));
        let name = name_of(pod);
        let binding = Binding {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: pod.metadata.namespace.clone(),
                // A pod deleted and re-created under the same name (a
                // LeaderWorkerSet group) must not get the old one's node.
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_owned()),
                ..Default::default()
            },
        };
        match api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                name,
                &PostParams::default(),
                &binding,
            )
            .await
        {
            Ok(_) => {
                self.announce(pod, node).await;
                Ok(true)
            }
            // Gone, replaced, already bound or being deleted: nothing to do.
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn announce(&self, pod: &Pod, node: &str) {
        let note = format!(
            "Successfully assigned {}/{} to {node}",
            namespace_of(pod),
            name_of(pod)
        );
        let event = events::pod_event(pod, SCHEDULER, "Normal", "Scheduled", "Binding", &note);
        events::publish(&self.client, event).await;
    }

    /// Sets `PodScheduled=False/Unschedulable` unless the pod already says
    /// exactly that, so an unchanged verdict writes nothing.
    async fn mark_unschedulable(
        &self,
        pod: &Pod,
        verdict: &Unschedulable,
    ) -> Result<(), kube::Error> {
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == pod::SCHEDULED));
        if current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(pod::UNSCHEDULABLE)
                && c.message.as_deref() == Some(verdict.message.as_str())
        }) {
            return Ok(());
        }
        let condition = PodCondition {
            type_: pod::SCHEDULED.into(),
            status: "False".into(),
            reason: Some(pod::UNSCHEDULABLE.into()),
            message: Some(verdict.message.clone()),
            // The transition time stays put while the pod stays unschedulable.
            last_transition_time: Some(
                current
                    .filter(|c| c.status == "False")
                    .and_then(|c| c.last_transition_time.clone())
                    .unwrap_or_else(|| time(now())),
            ),
            ..Default::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(pod));
        let patch =
            json!({"status": {"phase": "Pending", "conditions": with_condition(pod, condition)}});
        match api
            .patch_status(name_of(pod), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // Gone meanwhile: nothing to report.
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(other) => return Err(other),
        }
        let event = events::pod_event(
            pod,
            SCHEDULER,
            "Warning",
            "FailedScheduling",
            "Scheduling",
            &verdict.message,
        );
        events::publish(&self.client, event).await;
        Ok(())
    }
}

/// The pod's conditions with `condition` replacing any of its type. A merge
/// patch replaces lists whole, so the others are carried along.
fn with_condition(pod: &Pod, condition: PodCondition) -> Vec<PodCondition> {
    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != condition.type_)
        .collect();
    conditions.push(condition);
    conditions
}
