//! The `fetch` step's source of Nodes and Pods. In a running operator they
//! come from watch-fed caches, so a reconcile costs no API calls for them
//! however large the cluster; a bare context (the API-conversation tests,
//! one-off tools) lists them from the API server instead.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;

use super::Error;

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

    pub async fn nodes_and_pods(&self, client: &Client) -> Result<(Vec<Node>, Vec<Pod>), Error> {
        match self {
            ClusterView::Live => {
                let nodes = list(Api::<Node>::all(client.clone()), "nodes").await?;
                let pods = list(Api::<Pod>::all(client.clone()), "pods").await?;
                Ok((nodes, pods))
            }
            ClusterView::Cached { nodes, pods } => Ok((owned(nodes.state()), owned(pods.state()))),
        }
    }
}

fn owned<K: Clone>(items: Vec<Arc<K>>) -> Vec<K> {
    items.into_iter().map(|k| k.as_ref().clone()).collect()
}

async fn list<K>(api: Api<K>, what: &'static str) -> Result<Vec<K>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|source| Error::Fetch { what, source })
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
