//! The admission gate, for an operator whose cluster is managed by a hub
//! (`Settings::admission`, the cluster's admission key): a ModelDeployment
//! runs only once the hub has admitted it and sealed the spec it admitted
//! (`modelfleet_core::contract::admission`); a `rejected` one runs nothing
//! and says why in its `Admitted` condition. An `admitted` annotation
//! without the hub's seal — written by whoever can write the object —
//! admits nothing, and a spec changed since its admission (`kubectl
//! scale`, another image) is held until the hub seals the change. Pure: no
//! client required (the pipeline writes what this decides).
//!
//! Without a key (standalone `modelfleet operator` and `modelfleet
//! sandbox`) the annotations are ignored and nothing changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use modelfleet_core::contract::admission::{
    self as contract, ANNOTATION, AdmissionKey, MESSAGE_ANNOTATION, REASON_ANNOTATION,
    REASON_CHANGED, REJECTED, Sealed,
};
use modelfleet_core::contract::condition::{self, reason as condition_reason};
use modelfleet_core::crd::{ModelDeployment, ModelDeploymentStatus, Phase};

use super::apply::ApplyError;
use super::report::StatusError;

/// The gate's writes failed: removing a rejected deployment's workload, or
/// saying in its status why it does not run.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("removing the workload of a rejected ModelDeployment: {0}")]
    Remove(#[source] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl AdmissionError {
    /// A bounded label for the error metric: the failed write's.
    pub fn metric_label(&self) -> &'static str {
        match self {
            AdmissionError::Remove(e) => e.metric_label(),
            AdmissionError::Status(e) => e.metric_label(),
        }
    }
}

/// What the hub decided about a ModelDeployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admitted, and this is the spec the hub sealed.
    Admitted,
    /// No decision yet (or one this operator does not know, or an
    /// `admitted` the hub did not seal).
    Awaiting,
    /// Admitted once, but the spec has changed since: held as it runs.
    Held {
        message: String,
    },
    Rejected {
        reason: String,
        message: String,
    },
}

/// Reads the hub's annotations, believing an admission only under the
/// hub's seal (`key`). A rejection needs none: it only stops things.
pub fn of(md: &ModelDeployment, key: &AdmissionKey) -> Admission {
    let annotations = md.annotations();
    match annotations.get(ANNOTATION).map(String::as_str) {
        Some(REJECTED) => Admission::Rejected {
            reason: annotations
                .get(REASON_ANNOTATION)
                .filter(|r| is_reason(r))
                .cloned()
                .unwrap_or_else(|| "Rejected".to_owned()),
            message: annotations
                .get(MESSAGE_ANNOTATION)
                .cloned()
                .unwrap_or_else(|| "the hub did not admit this ModelDeployment".to_owned()),
        },
        _ => match contract::check(md, key) {
            Sealed::Current => Admission::Admitted,
            Sealed::Unsealed => Admission::Awaiting,
            Sealed::Changed { admitted } => {
                let changed = contract::changed_fields(&admitted, &md.spec).join(", ");
                // The hub's word on the change, once it has looked at it.
                let message = match (
                    annotations.get(REASON_ANNOTATION),
                    annotations.get(MESSAGE_ANNOTATION),
                ) {
                    (Some(_), Some(hub)) => format!("{changed} changed since admission: {hub}"),
                    _ => format!(
                        "{changed} changed since the hub admitted this ModelDeployment; it runs \
                         as admitted, and nothing new is created until the hub admits the change"
                    ),
                };
                Admission::Held { message }
            }
        },
    }
}

/// A condition reason must be CamelCase letters (Kubernetes validates it).
fn is_reason(reason: &str) -> bool {
    !reason.is_empty() && reason.len() <= 1024 && reason.chars().all(|c| c.is_ascii_alphabetic())
}

/// The `Admitted` condition, keeping its transition time while its status
/// is unchanged.
pub fn condition(
    previous: Option<&ModelDeploymentStatus>,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let since = previous
        .into_iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == condition::ADMITTED && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: condition::ADMITTED.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// Adds `Admitted=True` to the status of an admitted deployment.
pub fn admitted(
    mut next: ModelDeploymentStatus,
    previous: Option<&ModelDeploymentStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> ModelDeploymentStatus {
    next.conditions.retain(|c| c.type_ != condition::ADMITTED);
    next.conditions.push(condition(
        previous,
        "True",
        condition_reason::ADMITTED,
        "admitted by the hub",
        generation,
        now,
    ));
    next
}

/// Status while the hub has not decided: Pending, nothing created.
pub fn awaiting(
    previous: Option<&ModelDeploymentStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> ModelDeploymentStatus {
    ModelDeploymentStatus {
        phase: Some(Phase::Pending),
        observed_generation: generation,
        conditions: vec![condition(
            previous,
            "Unknown",
            condition_reason::AWAITING_ADMISSION,
            "waiting for the hub to admit this ModelDeployment against its tenant's quota",
            generation,
            now,
        )],
        ..ModelDeploymentStatus::default()
    }
}

/// Status of a deployment held at what was admitted: everything as it
/// was, but `Admitted=False`, reason `ChangedSinceAdmission`.
pub fn held(
    message: &str,
    previous: Option<&ModelDeploymentStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> ModelDeploymentStatus {
    let mut next = previous.cloned().unwrap_or_else(|| ModelDeploymentStatus {
        phase: Some(Phase::Pending),
        ..ModelDeploymentStatus::default()
    });
    next.conditions.retain(|c| c.type_ != condition::ADMITTED);
    next.conditions.push(condition(
        previous,
        "False",
        REASON_CHANGED,
        message,
        generation,
        now,
    ));
    next
}

/// Status of a rejected deployment: Failed, `Admitted=False` with the
/// hub's reason, and no workload.
pub fn rejected(
    reason: &str,
    message: &str,
    previous: Option<&ModelDeploymentStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> ModelDeploymentStatus {
    ModelDeploymentStatus {
        phase: Some(Phase::Failed),
        observed_generation: generation,
        conditions: vec![
            condition(previous, "False", reason, message, generation, now),
            Condition {
                type_: condition::READY.to_owned(),
                status: "False".to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: previous
                    .into_iter()
                    .flat_map(|s| s.conditions.iter())
                    .find(|c| c.type_ == condition::READY && c.status == "False")
                    .map(|c| c.last_transition_time.clone())
                    .unwrap_or(Time(now)),
                observed_generation: generation,
            },
        ],
        replicas: Some(0),
        ready_replicas: Some(0),
        ..ModelDeploymentStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn annotated(pairs: &[(&str, &str)]) -> ModelDeployment {
        let mut md = ModelDeployment::test("m").model("llama-3.1-8b");
        md.metadata.annotations = Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        md
    }

    #[test]
    fn reads_the_hubs_decision_and_believes_only_its_seal() {
        let key = AdmissionKey::from_bytes([3; 32]);
        let of = |md: &ModelDeployment| of(md, &key);
        assert_eq!(of(&annotated(&[])), Admission::Awaiting);
        assert_eq!(
            of(&annotated(&[(ANNOTATION, "maybe")])),
            Admission::Awaiting
        );
        // `admitted` written by anyone but the hub admits nothing.
        assert_eq!(
            of(&annotated(&[(ANNOTATION, contract::ADMITTED)])),
            Admission::Awaiting
        );
        let mut sealed = annotated(&[]);
        sealed.metadata.namespace = Some("mf-acme".into());
        contract::seal_in_place(&mut sealed, &key);
        assert_eq!(of(&sealed), Admission::Admitted);
        // Scaled after admission: held, saying what changed.
        let mut scaled = sealed.clone();
        scaled.spec.replicas = 20;
        let Admission::Held { message } = of(&scaled) else {
            panic!("held");
        };
        assert!(message.starts_with("replicas changed"), "{message}");
        // Once the hub has refused the change, its reason is shown.
        scaled.metadata.annotations.as_mut().unwrap().extend([
            (REASON_ANNOTATION.to_owned(), "QuotaExceeded".to_owned()),
            (
                MESSAGE_ANNOTATION.to_owned(),
                "total devices: 8 in use, limit 8".to_owned(),
            ),
        ]);
        let Admission::Held { message } = of(&scaled) else {
            panic!("held");
        };
        assert!(message.ends_with("limit 8"), "{message}");
        assert_eq!(
            of(&annotated(&[
                (ANNOTATION, REJECTED),
                (REASON_ANNOTATION, "QuotaExceeded"),
                (
                    MESSAGE_ANNOTATION,
                    "total devices: 8 in use, limit 8, needs 8"
                ),
            ])),
            Admission::Rejected {
                reason: "QuotaExceeded".into(),
                message: "total devices: 8 in use, limit 8, needs 8".into()
            }
        );
        // A reason Kubernetes would refuse on a condition is replaced.
        let Admission::Rejected { reason, .. } = of(&annotated(&[
            (ANNOTATION, REJECTED),
            (REASON_ANNOTATION, "no way!"),
        ])) else {
            panic!("rejected")
        };
        assert_eq!(reason, "Rejected");
    }

    #[test]
    fn a_rejection_is_failed_with_the_reason_and_keeps_its_time() {
        let now = Timestamp::now();
        let first = rejected("QuotaExceeded", "over", None, Some(1), now);
        assert_eq!(first.phase, Some(Phase::Failed));
        let admitted = first
            .conditions
            .iter()
            .find(|c| c.type_ == condition::ADMITTED)
            .unwrap();
        assert_eq!(
            (admitted.status.as_str(), admitted.reason.as_str()),
            ("False", "QuotaExceeded")
        );
        let later = now + std::time::Duration::from_secs(60);
        let again = rejected("QuotaExceeded", "over", Some(&first), Some(1), later);
        assert_eq!(again, first, "unchanged, so nothing is written again");
    }
}
