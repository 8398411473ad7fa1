//! The kubelet's part in running modelfleet's fetch for real (see
//! [`real_fetch`](super::real_fetch)): starting a pod's fetch as a task,
//! stopping it, turning its end into the init container's exit, and
//! removing a deleted pod's volumes.

use std::sync::PoisonError;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

use super::runtime::{Exit, Stage};
use super::{Ctx, Shared, real_fetch};
use crate::cluster::common::{name_of, namespace_of, now};
use crate::logs::PodLogs;

/// A failed container's termination message under
/// `FallbackToLogsOnError`: its last 80 lines, at most 2,048 bytes, as
/// the kubelet takes them.
fn last_lines(logs: &PodLogs, pod: (&str, &str, &str), container: &str) -> Option<String> {
    let snapshot = logs.read(pod, container, 0)?;
    let start = snapshot.lines.len().saturating_sub(80);
    let text: String = snapshot.lines[start..]
        .iter()
        .map(|l| format!("{}\n", l.text))
        .collect();
    let mut cut = text.len().saturating_sub(2048);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    Some(text[cut..].to_owned()).filter(|t| !t.is_empty())
}

impl Shared {
    /// Stops the real fetch of pod `uid`, if one runs; the name of the
    /// container it ran as.
    pub(super) fn abort_fetch(&self, uid: &str) -> Option<String> {
        let (task, container) = self
            .fetches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid)?;
        task.abort();
        Some(container)
    }
}

impl Ctx {
    /// Starts the real fetch of init container `index` of `pod`, unless
    /// one is running: its end sets the runtime's outcome and wakes the
    /// pod's reconcile.
    pub(super) fn start_fetch(&self, pod: &Pod, node: &str, index: usize, since: Timestamp) {
        let Some(real) = &self.shared.real_fetch else {
            return;
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut fetches = self
            .shared
            .fetches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if fetches.get(&uid).is_some_and(|(t, _)| !t.is_finished()) {
            return;
        }
        let Some(container) = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .and_then(|i| i.get(index))
            .cloned()
        else {
            return;
        };
        let namespace = namespace_of(pod).to_owned();
        let name = name_of(pod).to_owned();
        let container_name = container.name.clone();
        let pod_dir = real.pod_dir(node, &uid);
        let (real, node, pod) = (real.clone(), node.to_owned(), pod.clone());
        let (client, shared) = (self.client.clone(), self.shared.clone());
        let task_uid = uid.clone();
        let task = tokio::spawn(async move {
            let uid = task_uid;
            let key = (namespace.as_str(), name.as_str(), uid.as_str());
            // What fails before the fetch starts is printed here; the
            // fetch prints its own failure.
            let printed = |message: String| {
                shared.logs.write(key, &container.name, now(), &message);
                message
            };
            let result = async {
                let command = real_fetch::command(&container).map_err(printed)?;
                let vars = real_fetch::environment(&client, &namespace, &container)
                    .await
                    .map_err(printed)?;
                let env = real_fetch::fetch_env(&vars);
                let cache = match &command.cache {
                    Some((path, _)) => {
                        let host = super::mounts::host_path_of(&client, &pod, &container, path)
                            .await
                            .map_err(printed)?;
                        // A hostPath volume of type DirectoryOrCreate.
                        let dir = real.host_dir(&node, &host);
                        tokio::fs::create_dir_all(&dir).await.map_err(|e| {
                            printed(format!("cannot create {}: {e}", dir.display()))
                        })?;
                        Some(dir)
                    }
                    None => None,
                };
                let dirs = real_fetch::Dirs {
                    pod: pod_dir,
                    cache,
                    termination_log: container
                        .termination_message_path
                        .clone()
                        .unwrap_or_else(|| "/dev/termination-log".to_owned()),
                };
                real_fetch::run(command, env, &dirs, &shared.logs, (key, &container.name)).await
            }
            .await;
            shared.logs.end(key, &container.name);
            let fallback =
                container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
            let outcome = result.map(|message| (now(), message)).map_err(|_| Exit {
                code: 1,
                reason: "Error".into(),
                started: since,
                finished: now(),
                message: fallback
                    .then(|| last_lines(&shared.logs, key, &container.name))
                    .flatten(),
            });
            {
                let mut runtimes = shared
                    .runtimes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some(rt) = runtimes.get_mut(&(namespace.clone(), name.clone()))
                    && rt.uid == uid
                    && matches!(rt.stage, Stage::Init { index: i, since: s } if i == index && s == since)
                {
                    rt.real_outcome = Some(outcome);
                }
            }
            shared
                .fetches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&uid);
            let _ = shared
                .wake
                .unbounded_send(ObjectRef::new(&name).within(&namespace));
        });
        fetches.insert(uid, (task, container_name));
    }

    /// The pod's volumes on its node go with it, as its emptyDirs do.
    pub(super) async fn remove_volumes(&self, node: &str, uid: &str) {
        let Some(real) = &self.shared.real_fetch else {
            return;
        };
        self.shared.abort_fetch(uid);
        let dir = real.pod_dir(node, uid);
        if let Err(error) = tokio::fs::remove_dir_all(&dir).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), %error, "cannot remove a deleted pod's volumes");
        }
    }
}
