//! The ModelDeployment controller. Each reconcile is a named pipeline:
//!
//! fetch (the cluster's Nodes and Pods → its node pools, by
//! `modelfleet_core::contract::discovery`) → plan (pure:
//! `modelfleet_core::contract::pool_choice`) → build (pure: [`crate::build`]) → apply (server-side apply,
//! one field manager: [`apply`]) → status (pure arithmetic in [`status`],
//! written through the status subresource).
//!
//! A finalizer makes sure the owned objects and their pods are gone before
//! the ModelDeployment is; the same code runs against a production cluster
//! and the sandbox, through a `kube::Client`.

pub mod admission;
pub mod apply;
pub mod fetch;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use modelfleet_core::contract::discovery;
use modelfleet_core::contract::labels::{DEPLOYMENT_LABEL, FINALIZER};
use modelfleet_core::contract::pool_choice::{self, Outcome};
use modelfleet_core::crd::lws::LeaderWorkerSet;
use modelfleet_core::crd::{ModelDeployment, ModelDeploymentStatus, Phase};
use serde_json::json;
use tracing::{info, warn};

use crate::build::{self, BuildError, BuildOptions, GROUP_SUFFIX, Workload};
use crate::metrics::Metrics;

/// Errors of one reconcile, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the ModelDeployment has no namespace")]
    NotNamespaced,
    #[error("listing the cluster's {what}: {source}")]
    Fetch {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("building the workload: {0}")]
    Build(#[from] BuildError),
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status: {0}")]
    Status(#[source] kube::Error),
    #[error("deleting {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("waiting for {0} to be deleted")]
    StillDeleting(String),
    #[error(transparent)]
    Finalizer(Box<finalizer::Error<Error>>),
}

impl Error {
    /// A bounded label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NotNamespaced => "not_namespaced",
            Error::Fetch { .. } => "fetch",
            Error::Build(e) => e.metric_label(),
            Error::Apply { .. } => "apply",
            Error::Status(_) => "status",
            Error::Delete { .. } => "delete",
            Error::StillDeleting(_) => "still_deleting",
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
    /// Run a ModelDeployment only once the hub has admitted it (the
    /// `modelfleet.io/admission` annotation, see [`admission`]): for
    /// clusters a hub manages, so that nothing runs outside a tenant's
    /// quota. Off by default: a standalone operator runs what it is given.
    pub require_admission: bool,
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
            require_admission: false,
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
                finalizer::Event::Apply(md) => apply_step(&md, &ctx).await,
                finalizer::Event::Cleanup(md) => cleanup(&md, &ctx).await,
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

async fn apply_step(md: &ModelDeployment, ctx: &Context) -> Result<Action, Error> {
    let namespace = md.namespace().ok_or(Error::NotNamespaced)?;
    let name = md.name_any();

    // admission (only when a hub manages this cluster)
    if ctx.settings.require_admission {
        let previous = md.status.as_ref();
        let generation = md.meta().generation;
        match admission::of(md) {
            admission::Admission::Admitted => {}
            admission::Admission::Awaiting => {
                let next = admission::awaiting(previous, generation, Timestamp::now());
                write_status(ctx, md, &namespace, previous, next).await?;
                // The hub's annotation is a change of the object: it wakes us.
                return Ok(Action::await_change());
            }
            admission::Admission::Rejected { reason, message } => {
                remove_workloads(md, ctx).await?;
                let next =
                    admission::rejected(&reason, &message, previous, generation, Timestamp::now());
                if previous.and_then(|s| s.phase) != Some(Phase::Failed) {
                    publish(ctx, md, EventType::Warning, &reason, &message).await;
                }
                write_status(ctx, md, &namespace, previous, next).await?;
                return Ok(Action::await_change());
            }
        }
    }

    // fetch
    let (nodes, pods) = ctx.view.nodes_and_pods(&ctx.client).await?;
    let (own_pods, others): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) = pods.into_iter().partition(|p| {
        p.namespace().as_deref() == Some(namespace.as_str())
            && p.labels().get(DEPLOYMENT_LABEL) == Some(&name)
    });
    // Only this deployment's own few pods are copied, for the status step.
    let own_pods: Vec<Pod> = own_pods.iter().map(|p| Pod::clone(p)).collect();
    let fleet = discovery::discover(&ctx.settings.cluster, &nodes, &others).fleet;

    // plan
    let outcome = pool_choice::choose(md, &fleet, ctx.lws_available);
    let previous = md.status.as_ref();
    let generation = md.meta().generation;
    let now = Timestamp::now();
    let chosen = match outcome {
        Outcome::Unplannable { reason, message } => {
            let seen = status::Observed {
                generation,
                desired_replicas: md.spec.replicas,
                replicas: previous.and_then(|s| s.replicas).unwrap_or(0),
                ready_replicas: previous.and_then(|s| s.ready_replicas).unwrap_or(0),
                pods: &own_pods,
                previous,
                now,
            };
            let next = admitted(
                ctx,
                status::unplannable(reason, &message, &seen),
                previous,
                generation,
                now,
            );
            if planned_was_true(previous) || previous.and_then(|s| s.phase) != Some(Phase::Failed) {
                publish(ctx, md, EventType::Warning, "PlanFailed", &message).await;
            }
            write_status(ctx, md, &namespace, previous, next).await?;
            return Ok(Action::requeue(ctx.settings.unplannable_requeue));
        }
        Outcome::Planned(chosen) => chosen,
    };

    // build
    let built = build::build(
        md,
        &chosen.plan,
        &chosen.pool,
        chosen.accelerator,
        &ctx.settings.build,
    )?;
    let endpoint = built.endpoint.clone();

    // apply
    let applied = apply::apply(&ctx.client, &namespace, built).await?;

    // status
    let desired = md.spec.replicas;
    let replicas = match &applied.workload {
        Workload::Deployment(d) => d.status.as_ref().and_then(|s| s.replicas),
        Workload::LeaderWorkerSet(l) => l.status.as_ref().and_then(|s| s.replicas),
    }
    .and_then(|n| u32::try_from(n).ok())
    .unwrap_or(0);
    let seen = status::Observed {
        generation,
        desired_replicas: desired,
        replicas,
        ready_replicas: applied.ready_replicas(),
        pods: &own_pods,
        previous,
        now,
    };
    let next = status::running(
        &chosen.plan,
        &endpoint,
        chosen.waiting_for_capacity.as_deref(),
        &seen,
    );
    let next = admitted(ctx, next, previous, generation, now);
    let plan_changed = previous.and_then(|s| s.plan.as_ref()) != next.plan.as_ref();
    if plan_changed {
        let plan = &chosen.plan;
        publish(
            ctx,
            md,
            EventType::Normal,
            "PlanChosen",
            &format!(
                "{} × {} on {} ({}, tensor parallel {}, pipeline parallel {}, {} nodes per replica)",
                plan.devices_per_replica,
                plan.accelerator,
                plan.pool,
                plan.precision,
                plan.tensor_parallel,
                plan.pipeline_parallel,
                plan.nodes_per_replica
            ),
        )
        .await;
    }
    let became_ready =
        next.phase == Some(Phase::Ready) && previous.and_then(|s| s.phase) != Some(Phase::Ready);
    if became_ready {
        publish(
            ctx,
            md,
            EventType::Normal,
            "WorkloadReady",
            &format!("serving at {endpoint}"),
        )
        .await;
    }
    let requeue = if next.phase == Some(Phase::Ready) {
        ctx.settings.steady_requeue
    } else {
        ctx.settings.converging_requeue
    };
    write_status(ctx, md, &namespace, previous, next).await?;
    Ok(Action::requeue(requeue))
}

/// With `require_admission`, says in the status that the hub admitted it.
fn admitted(
    ctx: &Context,
    next: ModelDeploymentStatus,
    previous: Option<&ModelDeploymentStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> ModelDeploymentStatus {
    if ctx.settings.require_admission {
        admission::admitted(next, previous, generation, now)
    } else {
        next
    }
}

/// Deletes the workload objects of a deployment (not waiting for pods).
async fn remove_workloads(md: &ModelDeployment, ctx: &Context) -> Result<(), Error> {
    let namespace = md.namespace().ok_or(Error::NotNamespaced)?;
    let name = md.name_any();
    let client = &ctx.client;
    apply::delete_if_present::<Deployment>(client, &namespace, &name).await?;
    if ctx.lws_available {
        apply::delete_if_present::<LeaderWorkerSet>(
            client,
            &namespace,
            &format!("{name}{GROUP_SUFFIX}"),
        )
        .await?;
    }
    apply::delete_if_present::<Service>(client, &namespace, &name).await?;
    apply::delete_if_present::<PodDisruptionBudget>(client, &namespace, &name).await?;
    Ok(())
}

/// Deletes what the deployment owns and waits until its pods are gone, so
/// that its devices are free (and no longer billed) when it disappears.
async fn cleanup(md: &ModelDeployment, ctx: &Context) -> Result<Action, Error> {
    let namespace = md.namespace().ok_or(Error::NotNamespaced)?;
    let name = md.name_any();
    if md.status.as_ref().and_then(|s| s.phase) != Some(Phase::Terminating) {
        let mut next = md.status.clone().unwrap_or_default();
        next.phase = Some(Phase::Terminating);
        // Best effort: the object is going away either way.
        if let Err(e) = write_status(ctx, md, &namespace, md.status.as_ref(), next).await {
            warn!(error = %e, "could not mark {name} Terminating");
        }
    }
    remove_workloads(md, ctx).await?;
    let client = &ctx.client;
    let pods = list::<Pod>(
        Api::namespaced(client.clone(), &namespace),
        ListParams::default().labels(&format!("{DEPLOYMENT_LABEL}={name}")),
        "pods",
    )
    .await?;
    if !pods.is_empty() {
        return Err(Error::StillDeleting(format!(
            "{} pod(s) of {name}",
            pods.len()
        )));
    }
    info!(%namespace, %name, "cleaned up");
    Ok(Action::await_change())
}

async fn list<K>(api: Api<K>, params: ListParams, what: &'static str) -> Result<Vec<K>, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&params)
        .await
        .map(|list| list.items)
        .map_err(|source| Error::Fetch { what, source })
}

fn planned_was_true(previous: Option<&ModelDeploymentStatus>) -> bool {
    previous.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == modelfleet_core::contract::condition::PLANNED && c.status == "True")
    })
}

/// Writes the status when it changed, with server-side apply on the status
/// subresource.
async fn write_status(
    ctx: &Context,
    md: &ModelDeployment,
    namespace: &str,
    previous: Option<&ModelDeploymentStatus>,
    next: ModelDeploymentStatus,
) -> Result<(), Error> {
    if previous == Some(&next) {
        return Ok(());
    }
    let api: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": ModelDeployment::api_version(&()),
        "kind": ModelDeployment::kind(&()),
        "status": next,
    });
    api.patch_status(
        &md.name_any(),
        &PatchParams::apply(apply::MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

/// Publishes an Event on the ModelDeployment. Events are advisory: a failure
/// to publish is logged, never fails the reconcile.
async fn publish(ctx: &Context, md: &ModelDeployment, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1024).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &md.object_ref(&())).await {
        warn!(error = %e, reason, "could not publish event");
    }
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
