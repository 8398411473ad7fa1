//! The `fetch` step: the cluster's Nodes and Pods at one moment. In a
//! running operator they come from watch-fed caches, so a reconcile costs
//! no API calls for them however large the cluster; a bare context (the
//! API-conversation tests, one-off tools) lists them from the API server
//! instead.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;

/// Listing objects from the API server failed.
#[derive(Debug, thiserror::Error)]
#[error("listing the cluster's {what}: {source}")]
pub struct FetchError {
    pub what: &'static str,
    #[source]
    pub source: kube::Error,
}

impl FetchError {
    /// A bounded label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        "fetch"
    }
}

/// Where the fetch step reads the cluster's Nodes and Pods.
#[derive(Clone)]
pub enum ClusterView {
    /// List from the API server on every reconcile.
    Live,
    /// Read from caches kept current by watches.
    Cached {
        nodes: Store<Node>,
        pods: Store<Pod>,
    },
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClusterView::Live => "Live",
            ClusterView::Cached { .. } => "Cached",
        })
    }
}

/// The watch tasks behind a cached view; dropping them stops the watches.
#[derive(Debug)]
pub struct Caches {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Caches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ClusterView {
    /// Starts watches of all Nodes and Pods and waits for their first list.
    pub async fn cached(client: &Client) -> (ClusterView, Caches) {
        let (nodes, node_task) = cache::<Node>(Api::all(client.clone()));
        let (pods, pod_task) = cache::<Pod>(Api::all(client.clone()));
        // The writers live in the tasks, which only end when aborted.
        let _ = nodes.wait_until_ready().await;
        let _ = pods.wait_until_ready().await;
        (
            ClusterView::Cached { nodes, pods },
            Caches {
                tasks: vec![node_task, pod_task],
            },
        )
    }

    /// The cached objects are shared with the cache, never copied: every
    /// reconcile reads the whole cluster, and with many reconciles in
    /// flight copies of it would add up to many times the cluster's size.
    pub async fn nodes_and_pods(&self, client: &Client) -> Result<Snapshot, FetchError> {
        match self {
            ClusterView::Live => {
                let all = ListParams::default();
                let nodes = list(Api::<Node>::all(client.clone()), &all, "nodes").await?;
                let pods = list(Api::<Pod>::all(client.clone()), &all, "pods").await?;
                Ok((shared(nodes), shared(pods)))
            }
            ClusterView::Cached { nodes, pods } => Ok((nodes.state(), pods.state())),
        }
    }
}

/// The cluster's Nodes and Pods at one moment.
pub type Snapshot = (Vec<Arc<Node>>, Vec<Arc<Pod>>);

fn shared<K>(items: Vec<K>) -> Vec<Arc<K>> {
    items.into_iter().map(Arc::new).collect()
}

/// Lists `what` through `api`.
pub async fn list<K>(
    api: Api<K>,
    params: &ListParams,
    what: &'static str,
) -> Result<Vec<K>, FetchError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(params)
        .await
        .map(|l| l.items)
        .map_err(|source| FetchError { what, source })
}

fn cache<K>(api: Api<K>) -> (Store<K>, JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    )
    .applied_objects();
    let task = tokio::spawn(async move {
        // Errors are retried by the backoff; the stream only ends on abort.
        stream.for_each(|_| async {}).await;
    });
    (reader, task)
}

use reflector::reflector;

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::client::Body;
    use kube::runtime::watcher::Event;

    use super::*;

    fn named<K: kube::Resource>(name: &str, mut object: K) -> K {
        *object.meta_mut() = ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            ..ObjectMeta::default()
        };
        object
    }

    /// Every reconcile reads the whole cluster; a copy per reconcile is
    /// what once took a 1,000-node sandbox past 20 GiB.
    #[tokio::test]
    async fn a_cached_view_shares_the_cache_objects_instead_of_copying_them() {
        let (nodes, mut node_writer) = reflector::store::<Node>();
        let (pods, mut pod_writer) = reflector::store::<Pod>();
        for i in 0..3 {
            node_writer
                .apply_watcher_event(&Event::Apply(named(&format!("n{i}"), Node::default())));
            pod_writer.apply_watcher_event(&Event::Apply(named(&format!("p{i}"), Pod::default())));
        }
        // A cached view makes no API call: nothing answers this client.
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let view = ClusterView::Cached {
            nodes: nodes.clone(),
            pods: pods.clone(),
        };

        let (seen_nodes, seen_pods) = view.nodes_and_pods(&client).await.unwrap();

        assert_eq!((seen_nodes.len(), seen_pods.len()), (3, 3));
        for node in &seen_nodes {
            let cached = nodes
                .get(&reflector::ObjectRef::from_obj(node.as_ref()))
                .unwrap();
            assert!(
                Arc::ptr_eq(node, &cached),
                "node {:?} was copied",
                node.metadata.name
            );
        }
        for pod in &seen_pods {
            let cached = pods
                .get(&reflector::ObjectRef::from_obj(pod.as_ref()))
                .unwrap();
            assert!(
                Arc::ptr_eq(pod, &cached),
                "pod {:?} was copied",
                pod.metadata.name
            );
        }
    }
}
