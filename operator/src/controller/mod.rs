//! The ModelDeployment controller. Each reconcile is a pipeline of named
//! steps, each a function of its own module:
//!
//! | step | what | I/O | error |
//! | --- | --- | --- | --- |
//! | admission | with an admission key, run only what the hub admitted and sealed ([`admission`]) | writes status | [`admission::AdmissionError`] |
//! | fetch | the cluster's Nodes and Pods, from watch caches ([`fetch`]) | reads | [`fetch::FetchError`] |
//! | discover | Nodes and Pods → the pools, and the deployment's own pods ([`discover`]) | none | — |
//! | choose | the pool and plan ([`modelfleet_core::contract::pool_choice`], shared with the hub) | none | — (unplannable is an outcome) |
//! | build | the objects that run it ([`crate::build`]) | none | [`BuildError`] |
//! | tenancy | with an admission key, the namespace's NetworkPolicy and engine API key Secret ([`tenancy`]) | writes (once per namespace and period) | [`apply::ApplyError`] |
//! | apply | server-side apply, one field manager ([`apply`]) | writes | [`apply::ApplyError`] |
//! | progress | downloading pods' bytes done, from their fetch container's last log line ([`progress`]) | reads | — (a failed read leaves the pod out) |
//! | status | phase and conditions ([`status`]), written with Events ([`report`]) | writes | [`report::StatusError`] |
//!
//! [`pipeline`] calls them in order; [`Error`] wraps whichever failed. A
//! finalizer makes sure the owned objects and their pods are gone before
//! the ModelDeployment is ([`cleanup`]); the same code runs against a
//! production cluster and the sandbox, through a `kube::Client`.

pub mod admission;
pub mod apply;
pub mod cleanup;
pub mod discover;
pub mod fetch;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod status;
pub mod tenancy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use modelfleet_core::contract::labels::{DEPLOYMENT_LABEL, FINALIZER};
use modelfleet_core::crd::lws::LeaderWorkerSet;
use modelfleet_core::crd::{ModelDeployment, Phase};
use tracing::{info, warn};

use crate::build::{BuildError, BuildOptions};
use crate::metrics::Metrics;

/// Errors of one reconcile, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the ModelDeployment has no namespace")]
    NotNamespaced,
    #[error(transparent)]
    Admission(#[from] admission::AdmissionError),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error("building the workload: {0}")]
    Build(#[from] BuildError),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error(transparent)]
    Status(#[from] report::StatusError),
    #[error(transparent)]
    Cleanup(#[from] cleanup::CleanupError),
    #[error(transparent)]
    Finalizer(Box<finalizer::Error<Error>>),
}

impl Error {
    /// A bounded label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NotNamespaced => "not_namespaced",
            Error::Admission(e) => e.metric_label(),
            Error::Fetch(e) => e.metric_label(),
            Error::Build(e) => e.metric_label(),
            Error::Apply(e) => e.metric_label(),
            Error::Status(e) => e.metric_label(),
            Error::Cleanup(e) => e.metric_label(),
            Error::Finalizer(e) => match e.as_ref() {
                finalizer::Error::ApplyFailed(inner) | finalizer::Error::CleanupFailed(inner) => {
                    inner.metric_label()
                }
                finalizer::Error::AddFinalizer(_) | finalizer::Error::RemoveFinalizer(_) => {
                    "finalizer"
                }
                _ => "finalizer_other",
            },
        }
    }
}

/// Reconciles in flight at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: u16 = 16;

/// How the controller behaves; the defaults suit a production cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Cluster name in the pools' `cluster/pool` references.
    pub cluster: String,
    pub build: BuildOptions,
    /// Requeue while a deployment is converging (pods loading, waiting).
    pub converging_requeue: Duration,
    /// Requeue of a Ready deployment, to notice drift nothing else signals.
    pub steady_requeue: Duration,
    /// Back-off after a spec that cannot be planned: it will not plan
    /// differently until the spec or the cluster changes.
    pub unplannable_requeue: Duration,
    /// Reporter name on Events.
    pub reporter: String,
    /// With a key, run a ModelDeployment only as the hub admitted it: a
    /// spec sealed with this cluster's admission key (see [`admission`]),
    /// for clusters a hub manages, so that nothing runs outside a tenant's
    /// quota or beyond what was admitted. `None` by default: a standalone
    /// operator runs what it is given.
    pub admission: Option<modelfleet_core::contract::admission::AdmissionKey>,
    /// Reconciles run at once, at least one (never two of one deployment). Each reads
    /// the whole cluster and makes several API calls, so an unbounded
    /// number (kube-runtime's default) lets thousands of due deployments
    /// pile up at once: more memory and API load, and no sooner done.
    pub concurrency: u16,
}

impl Settings {
    pub fn new(cluster: impl Into<String>) -> Self {
        Settings {
            cluster: cluster.into(),
            build: BuildOptions::default(),
            converging_requeue: Duration::from_secs(10),
            steady_requeue: Duration::from_secs(300),
            unplannable_requeue: Duration::from_secs(120),
            reporter: "modelfleet-operator".to_owned(),
            admission: None,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// Whether the LeaderWorkerSet API is installed, so multi-node replicas
    /// can run.
    pub lws_available: bool,
    /// Where the fetch step reads Nodes and Pods.
    pub view: fetch::ClusterView,
    /// Namespaces whose tenancy objects are in place, and since when.
    pub tenancy: Arc<tenancy::Applied>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("lws_available", &self.lws_available)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Metrics, lws_available: bool) -> Self {
        let reporter = Reporter {
            controller: settings.reporter.clone(),
            instance: None,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            lws_available,
            view: fetch::ClusterView::Live,
            tenancy: Arc::default(),
        }
    }

    /// Reads Nodes and Pods from `view` instead of listing them.
    pub fn with_view(mut self, view: fetch::ClusterView) -> Self {
        self.view = view;
        self
    }
}

/// Whether the cluster serves `leaderworkerset.x-k8s.io/v1`.
pub async fn lws_installed(client: &Client) -> bool {
    let api: Api<LeaderWorkerSet> = Api::all(client.clone());
    api.list(&ListParams::default().limit(1)).await.is_ok()
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(DEPLOYMENT_LABEL);
    let mut controller = Controller::new(
        Api::<ModelDeployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Deployment>::all(client.clone()), owned.clone())
    .owns(Api::<Service>::all(client.clone()), owned.clone());
    if ctx.lws_available {
        controller = controller.owns(Api::<LeaderWorkerSet>::all(client.clone()), owned);
    }
    info!(cluster = %ctx.settings.cluster, lws = ctx.lws_available, "ModelDeployment controller starting");
    // Deployments by phase, from the controller's own cache.
    let store = controller.store();
    let metrics = ctx.metrics.clone();
    let phases = tokio::spawn(async move {
        let all = Phase::ALL.map(Phase::as_str);
        loop {
            let mds = store.state();
            metrics.set_phases(&all, &phase_counts(mds.iter().map(|md| md.as_ref())));
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    controller
        .with_config(ControllerConfig::default().concurrency(ctx.settings.concurrency.max(1)))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "reconcile failed");
            }
        })
        .await;
    phases.abort();
}

/// One reconcile of one ModelDeployment.
pub async fn reconcile(md: Arc<ModelDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = async {
        let namespace = md.namespace().ok_or(Error::NotNamespaced)?;
        let api: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
        finalizer(&api, FINALIZER, md, |event| async {
            match event {
                finalizer::Event::Apply(md) => {
                    pipeline::reconcile_spec(&md, &namespace, &ctx).await
                }
                finalizer::Event::Cleanup(md) => Ok(cleanup::cleanup(&md, &namespace, &ctx).await?),
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    }
    .await;
    ctx.metrics.reconciled(
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

/// Retry with a back-off rather than spinning on an error.
pub fn error_policy(_md: Arc<ModelDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(error = %error, "reconcile error; retrying");
    Action::requeue(ctx.settings.converging_requeue)
}

/// Counts deployments by phase for the `deployments` metric.
pub fn phase_counts<'a>(
    mds: impl IntoIterator<Item = &'a ModelDeployment>,
) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for md in mds {
        let phase = md
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(Phase::Pending);
        *counts.entry(phase.as_str()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests;
