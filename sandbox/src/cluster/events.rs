//! Events (`events.k8s.io/v1`) the simulated components publish, so that
//! `kubectl describe pod` tells the same story a real cluster would
//! (`FailedScheduling`, `Scheduled`, `NodeNotReady`). Publishing is best
//! effort, as in client-go's recorder: a lost event never fails the work
//! it describes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Resource};

use super::common::{hex_id, now};

/// Who reports: `reportingController` and `reportingInstance`.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    pub controller: &'static str,
    pub instance: &'static str,
}

pub const SCHEDULER: Reporter = Reporter {
    controller: "default-scheduler",
    instance: "default-scheduler-sandbox",
};

pub const KUBELET: Reporter = Reporter {
    controller: "kubelet",
    instance: "sandbox-kubelet",
};

pub const DEPLOYMENT_CONTROLLER: Reporter = Reporter {
    controller: "deployment-controller",
    instance: "deployment-controller-sandbox",
};

pub const LWS_CONTROLLER: Reporter = Reporter {
    controller: "lws-controller",
    instance: "lws-controller-sandbox",
};

/// One event about `pod`: `kind` is Normal or Warning.
pub fn pod_event(
    pod: &Pod,
    reporter: Reporter,
    kind: &str,
    reason: &str,
    action: &str,
    note: &str,
) -> Event {
    let regarding = ObjectReference {
        api_version: Some(Pod::api_version(&()).into_owned()),
        kind: Some(Pod::kind(&()).into_owned()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: None,
    };
    event_about(regarding, reporter, kind, reason, action, note)
}

/// One event about the object `regarding` names.
pub fn event_about(
    regarding: ObjectReference,
    reporter: Reporter,
    kind: &str,
    reason: &str,
    action: &str,
    note: &str,
) -> Event {
    let at = now();
    let object = regarding.name.clone().unwrap_or_default();
    let name = format!(
        "{object}.{}",
        hex_id(&format!("{object}/{reason}/{note}/{at}"), 16)
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        event_time: Some(MicroTime(at)),
        action: Some(action.to_owned()),
        reason: Some(reason.to_owned()),
        note: Some(note.to_owned()),
        type_: Some(kind.to_owned()),
        reporting_controller: Some(reporter.controller.to_owned()),
        reporting_instance: Some(reporter.instance.to_owned()),
        regarding: Some(regarding),
        ..Default::default()
    }
}

/// Publishes `event`; a failure is logged and otherwise ignored.
pub async fn publish(client: &Client, event: Event) {
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(error) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(%error, "event not published");
    }
}

/// Lets one event per key through every `interval`, as a recorder's spam
/// filter keeps a failing controller from flooding the API with events.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an event for `key` may go out now.
    pub fn allow(&self, key: &str) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match last.get(key) {
            Some(at) if now.duration_since(*at) < self.interval => false,
            _ => {
                last.insert(key.to_owned(), now);
                true
            }
        }
    }
}
