//! One reconcile of a ModelDeployment that is not being deleted, step by
//! step: admission → fetch → discover → choose → build → apply → status.
//!
//! Each step is a function of its own module; this one only calls them in
//! order and turns their outcomes into what to write and when to look
//! again. Two steps can end the reconcile early: admission, when the hub has
//! not admitted the deployment, and choose, when nothing in the cluster can
//! run it.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use modelfleet_core::contract::condition;
use modelfleet_core::contract::pool_choice::{self, Chosen, Outcome};
use modelfleet_core::crd::{ModelDeployment, ModelDeploymentStatus, Phase};

use super::admission::{self, Admission, AdmissionError};
use super::status::{self, Observed};
use super::{Context, Error, apply, discover, progress, report, tenancy};
use crate::build::{self, Applied, Resources};

/// Runs the pipeline for `md` in `namespace`.
pub async fn reconcile_spec(
    md: &ModelDeployment,
    namespace: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    if let Some(key) = &ctx.settings.admission
        && let Some(wait) = admission_gate(md, namespace, ctx, key).await?
    {
        return Ok(wait);
    }
    let snapshot = ctx.view.nodes_and_pods(&ctx.client).await?;
    let seen = discover::discover(&ctx.settings.cluster, namespace, &md.name_any(), &snapshot);
    // The cluster's objects are shared with the caches; let go of them
    // before the writes.
    drop(snapshot);
    let chosen = match pool_choice::choose(md, &seen.fleet, ctx.lws_available) {
        Outcome::Planned(chosen) => chosen,
        Outcome::Unplannable { reason, message } => {
            report_unplannable(md, namespace, ctx, &seen.own_pods, reason, &message).await?;
            return Ok(Action::requeue(ctx.settings.unplannable_requeue));
        }
    };
    // A hub's gateway holds the engines' key; a standalone operator has
    // no gateway to let through.
    let options = build::BuildOptions {
        engine_api_key: ctx.settings.admission.is_some(),
        ..ctx.settings.build.clone()
    };
    let built = build::build(md, &chosen.plan, &chosen.pool, chosen.accelerator, &options)?;
    let written = async {
        if let Some(key) = &ctx.settings.admission {
            tenancy::ensure(
                &ctx.client,
                namespace,
                key,
                &ctx.tenancy,
                ctx.settings.steady_requeue,
            )
            .await?;
        }
        apply::apply(&ctx.client, namespace, built).await
    };
    let applied = match written.await {
        Ok(applied) => applied,
        Err(error) if error.is_forbidden() => {
            let message = format!(
                "the operator may not write here ({error}): bind ClusterRole {} to its ServiceAccount in namespace {namespace} (a hub does so in the tenant namespaces it creates; see manifests/README.md)",
                modelfleet_core::contract::tenancy::OPERATOR_WORKLOADS_ROLE
            );
            report_unplannable(
                md,
                namespace,
                ctx,
                &seen.own_pods,
                condition::reason::NOT_PERMITTED,
                &message,
            )
            .await?;
            return Ok(Action::requeue(ctx.settings.unplannable_requeue));
        }
        Err(error) => return Err(error.into()),
    };
    report_running(md, namespace, ctx, &chosen, &applied, &seen.own_pods).await
}

/// The admission step, with an admission key: `Some` action when the
/// deployment may not run (yet), after saying so in its status and
/// removing what a rejected one may have left running. A spec changed
/// since its admission is held: what runs keeps running as admitted,
/// nothing is created or changed.
async fn admission_gate(
    md: &ModelDeployment,
    namespace: &str,
    ctx: &Context,
    key: &modelfleet_core::contract::admission::AdmissionKey,
) -> Result<Option<Action>, AdmissionError> {
    let previous = md.status.as_ref();
    let generation = md.meta().generation;
    let next = match admission::of(md, key) {
        Admission::Admitted => return Ok(None),
        Admission::Awaiting => admission::awaiting(previous, generation, Timestamp::now()),
        Admission::Held { message } => {
            admission::held(&message, previous, generation, Timestamp::now())
        }
        Admission::Rejected { reason, message } => {
            apply::remove_workloads(&ctx.client, namespace, &md.name_any(), ctx.lws_available)
                .await
                .map_err(AdmissionError::Remove)?;
            if previous.and_then(|s| s.phase) != Some(Phase::Failed) {
                report::publish(&ctx.recorder, md, EventType::Warning, &reason, &message).await;
            }
            admission::rejected(&reason, &message, previous, generation, Timestamp::now())
        }
    };
    report::write_status(&ctx.client, md, namespace, previous, next).await?;
    // The hub's annotation is a change of the object: it wakes us.
    Ok(Some(Action::await_change()))
}

/// The status step when nothing can run `md`: `Planned=False` with the
/// reason, what ran before left as it is.
async fn report_unplannable(
    md: &ModelDeployment,
    namespace: &str,
    ctx: &Context,
    own_pods: &[Pod],
    reason: &'static str,
    message: &str,
) -> Result<(), Error> {
    let previous = md.status.as_ref();
    let generation = md.meta().generation;
    let now = Timestamp::now();
    let seen = Observed {
        generation,
        desired_replicas: md.spec.replicas,
        replicas: previous.and_then(|s| s.replicas).unwrap_or(0),
        ready_replicas: previous.and_then(|s| s.ready_replicas).unwrap_or(0),
        pods: own_pods,
        fetching: &[],
        previous,
        now,
    };
    let next = admitted(
        ctx,
        status::unplannable(reason, message, &seen),
        previous,
        generation,
        now,
    );
    if planned_was_true(previous) || previous.and_then(|s| s.phase) != Some(Phase::Failed) {
        let event = if reason == condition::reason::NOT_PERMITTED {
            "NotPermitted"
        } else {
            "PlanFailed"
        };
        report::publish(&ctx.recorder, md, EventType::Warning, event, message).await;
    }
    report::write_status(&ctx.client, md, namespace, previous, next).await?;
    Ok(())
}

/// The status step after apply: phase and conditions from what the API
/// server answered and the pods' state, Events for a new plan and for
/// becoming Ready, and when to look again.
async fn report_running(
    md: &ModelDeployment,
    namespace: &str,
    ctx: &Context,
    chosen: &Chosen,
    applied: &Resources<Applied>,
    own_pods: &[Pod],
) -> Result<Action, Error> {
    let previous = md.status.as_ref();
    let generation = md.meta().generation;
    let fetching = progress::read(&ctx.client, namespace, own_pods).await;
    let now = Timestamp::now();
    let seen = Observed {
        generation,
        desired_replicas: md.spec.replicas,
        replicas: applied.replicas(),
        ready_replicas: applied.ready_replicas(),
        pods: own_pods,
        fetching: &fetching,
        previous,
        now,
    };
    let next = status::running(
        &chosen.plan,
        &applied.endpoint,
        chosen.waiting_for_capacity.as_deref(),
        &seen,
    );
    let next = admitted(ctx, next, previous, generation, now);
    announce(md, ctx, previous, &next, chosen, &applied.endpoint).await;
    let requeue = if next.phase == Some(Phase::Ready) {
        ctx.settings.steady_requeue
    } else {
        ctx.settings.converging_requeue
    };
    report::write_status(&ctx.client, md, namespace, previous, next).await?;
    Ok(Action::requeue(requeue))
}

/// Events for what changed: a new plan, and becoming Ready.
async fn announce(
    md: &ModelDeployment,
    ctx: &Context,
    previous: Option<&ModelDeploymentStatus>,
    next: &ModelDeploymentStatus,
    chosen: &Chosen,
    endpoint: &str,
) {
    if previous.and_then(|s| s.plan.as_ref()) != next.plan.as_ref() {
        let plan = &chosen.plan;
        let note = format!(
            "{} × {} on {} ({}, tensor parallel {}, pipeline parallel {}, {} nodes per replica)",
            plan.devices_per_replica,
            plan.accelerator,
            plan.pool,
            plan.precision,
            plan.tensor_parallel,
            plan.pipeline_parallel,
            plan.nodes_per_replica
        );
        report::publish(&ctx.recorder, md, EventType::Normal, "PlanChosen", &note).await;
    }
    let became_ready =
        next.phase == Some(Phase::Ready) && previous.and_then(|s| s.phase) != Some(Phase::Ready);
    if became_ready {
        let note = format!("serving at {endpoint}");
        report::publish(&ctx.recorder, md, EventType::Normal, "WorkloadReady", &note).await;
    }
}

/// With an admission key, says in the status that the hub admitted it.
fn admitted(
    ctx: &Context,
    next: ModelDeploymentStatus,
    previous: Option<&ModelDeploymentStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> ModelDeploymentStatus {
    if ctx.settings.admission.is_some() {
        admission::admitted(next, previous, generation, now)
    } else {
        next
    }
}

fn planned_was_true(previous: Option<&ModelDeploymentStatus>) -> bool {
    previous.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == condition::PLANNED && c.status == "True")
    })
}
