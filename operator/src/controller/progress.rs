//! The `progress` step: how far each pod still downloading its weights
//! has got, read from the last line its fetch container printed
//! (`pods/log`, which the operator's ClusterRole may read; tenant pods
//! gain no rights for it). One small read per downloading pod, at most
//! [`MAX_PODS`] per reconcile; a read that fails leaves that pod out.

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, LogParams};
use modelfleet_core::contract::fetch::{CONTAINER, WeightsOrigin, parse_progress, parse_summary};
use modelfleet_core::crd::{PodFetch, PodWeights, WeightsFrom};

/// Pods whose progress one reconcile reads.
pub const MAX_PODS: usize = 32;

/// Where the weights of `pods` came from, for those whose fetch container
/// finished and said so in its termination message (read from the pods'
/// status: no request). At most [`MAX_PODS`], by name.
pub fn weights(pods: &[Pod]) -> Vec<PodWeights> {
    let mut out: Vec<PodWeights> = pods
        .iter()
        .filter_map(|pod| {
            let status = pod
                .status
                .as_ref()?
                .init_container_statuses
                .as_ref()?
                .iter()
                .find(|s| s.name == CONTAINER)?;
            let ended = status.state.as_ref()?.terminated.as_ref()?;
            if ended.exit_code != 0 {
                return None;
            }
            let summary = parse_summary(ended.message.as_deref()?)?;
            Some(PodWeights {
                pod: pod.metadata.name.clone()?,
                from: match summary.origin {
                    WeightsOrigin::Downloaded => WeightsFrom::Download,
                    WeightsOrigin::NodeCache => WeightsFrom::NodeCache,
                    WeightsOrigin::AlreadyThere => WeightsFrom::PodVolume,
                },
                bytes: summary.bytes,
            })
        })
        .collect();
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    out.truncate(MAX_PODS);
    out
}

/// Whether `pod`'s fetch container is running now.
pub fn is_fetching(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .any(|s| {
            s.name == CONTAINER
                && s.state
                    .as_ref()
                    .is_some_and(|state| state.running.is_some())
        })
}

/// Progress of the pods of `pods` that are downloading, by pod name.
pub async fn read(client: &Client, namespace: &str, pods: &[Pod]) -> Vec<PodFetch> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut names: Vec<&str> = pods
        .iter()
        .filter(|p| is_fetching(p))
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    names.sort_unstable();
    names.truncate(MAX_PODS);
    let params = LogParams {
        container: Some(CONTAINER.to_owned()),
        tail_lines: Some(1),
        limit_bytes: Some(4096),
        ..LogParams::default()
    };
    let reads = names.iter().map(|name| {
        let (api, params) = (&api, &params);
        async move {
            match api.logs(name, params).await {
                Ok(text) => {
                    let progress = text.lines().last().and_then(parse_progress)?;
                    Some(PodFetch {
                        pod: (*name).to_owned(),
                        bytes_done: progress.done,
                        bytes_total: progress.total,
                    })
                }
                Err(error) => {
                    tracing::debug!(pod = name, %error, "cannot read the fetch's progress");
                    None
                }
            }
        }
    });
    join_all(reads).await.into_iter().flatten().collect()
}
