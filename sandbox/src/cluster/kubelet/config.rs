//! What a kubelet checks before it starts a container: every Secret and
//! ConfigMap its environment comes from (`envFrom`, `env[].valueFrom`)
//! exists and has the keys named, unless marked optional. A container
//! whose configuration is missing does not start: it waits with reason
//! `CreateContainerConfigError` and the kubelet's own message
//! (`secret "x" not found`, `couldn't find key k in Secret ns/x`), and the
//! kubelet tries again until it appears — as on a real node.
//!
//! Simplified: all of a pod's containers are checked before any starts,
//! where a real kubelet checks each one as it starts it.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::Api;

use super::runtime::{PodRuntime, Timings};
use super::status;
use crate::cluster::common::{namespace_of, time};

/// The first container whose configuration is missing, and the kubelet's
/// message for it.
pub async fn missing(client: &Client, pod: &Pod) -> Option<(String, String)> {
    let namespace = namespace_of(pod);
    let spec = pod.spec.as_ref()?;
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        if let Some(message) = missing_for(client, namespace, c).await {
            return Some((c.name.clone(), message));
        }
    }
    None
}

enum Source {
    Secret,
    ConfigMap,
}

async fn missing_for(client: &Client, namespace: &str, c: &Container) -> Option<String> {
    for from in c.env_from.iter().flatten() {
        if let Some(s) = &from.secret_ref
            && !s.optional.unwrap_or(false)
            && keys(client, namespace, Source::Secret, &s.name)
                .await
                .is_none()
        {
            return Some(format!("secret \"{}\" not found", s.name));
        }
        if let Some(m) = &from.config_map_ref
            && !m.optional.unwrap_or(false)
            && keys(client, namespace, Source::ConfigMap, &m.name)
                .await
                .is_none()
        {
            return Some(format!("configmap \"{}\" not found", m.name));
        }
    }
    for var in c.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        let wanted = [
            from.secret_key_ref
                .as_ref()
                .map(|s| (Source::Secret, &s.name, &s.key, s.optional)),
            from.config_map_key_ref
                .as_ref()
                .map(|m| (Source::ConfigMap, &m.name, &m.key, m.optional)),
        ];
        for (source, name, key, optional) in wanted.into_iter().flatten() {
            if optional.unwrap_or(false) {
                continue;
            }
            let (kind, text) = match source {
                Source::Secret => ("Secret", "secret"),
                Source::ConfigMap => ("ConfigMap", "configmap"),
            };
            match keys(client, namespace, source, name).await {
                None => return Some(format!("{text} \"{name}\" not found")),
                Some(found) if !found.iter().any(|k| k == key) => {
                    return Some(format!(
                        "couldn't find key {key} in {kind} {namespace}/{name}"
                    ));
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// The keys of a Secret or ConfigMap, or `None` when it does not exist
/// (or cannot be read, which a kubelet reports the same way).
async fn keys(client: &Client, namespace: &str, source: Source, name: &str) -> Option<Vec<String>> {
    match source {
        Source::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let s = api.get_opt(name).await.ok()??;
            Some(
                s.data
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                    .chain(s.string_data.into_iter().flatten().map(|(k, _)| k))
                    .collect(),
            )
        }
        Source::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let m = api.get_opt(name).await.ok()??;
            Some(
                m.data
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                    .chain(m.binary_data.into_iter().flatten().map(|(k, _)| k))
                    .collect(),
            )
        }
    }
}

/// The status of a pod none of whose containers has started because
/// `container`'s configuration is missing.
pub fn blocked(
    pod: &Pod,
    container: &str,
    message: &str,
    host_ip: &str,
    now: Timestamp,
    timings: &Timings,
) -> PodStatus {
    let rt = PodRuntime::admit(pod, String::new(), now, timings);
    let mut rendered = status::render(pod, &rt, host_ip, now);
    rendered.phase = Some("Pending".to_owned());
    rendered.pod_ip = None;
    rendered.pod_ips = None;
    rendered.start_time = rendered.start_time.or_else(|| Some(time(now)));
    let statuses = rendered
        .init_container_statuses
        .iter_mut()
        .flatten()
        .chain(rendered.container_statuses.iter_mut().flatten());
    for s in statuses {
        s.ready = false;
        s.started = Some(false);
        s.container_id = None;
        s.state = Some(if s.name == container {
            status::waiting("CreateContainerConfigError", Some(message.to_owned()))
        } else {
            status::waiting("PodInitializing", None)
        });
    }
    rendered
}
