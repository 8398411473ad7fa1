//! The PersistentVolume controller's binding, for volumes made for one
//! claim: a PersistentVolume whose `spec.claimRef` names a claim, and that
//! claim (asking for it by `spec.volumeName`, or for any volume), are
//! bound to each other when the claim's storage class, access modes and
//! size fit the volume — the claim's `status` becomes `Bound` with the
//! volume's capacity and modes, the volume's `claimRef` gains the claim's
//! uid and its `status.phase` becomes `Bound`. A volume whose claim is
//! gone becomes `Released` (the sandbox's volumes are `Retain`); one with
//! no `claimRef` is `Available`.
//!
//! Simpler than kube-controller-manager's: no dynamic provisioning, and a
//! claim that names no volume is matched only by a volume that names it;
//! the scheduler does not wait for claims (the kubelet does: a pod whose
//! claim is not bound cannot mount it).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::sync::Arc;

use super::resources::parse;

fn quantity_bytes(text: &str) -> i128 {
    parse(text).unwrap_or(0)
}

/// What binding a volume to its claim writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The volume's `status.phase`.
    pub volume_phase: &'static str,
    /// The volume's `spec.claimRef`, when it gains the claim's uid.
    pub claim_ref: Option<Value>,
    /// The claim's `status`, when it becomes bound.
    pub claim_status: Option<Value>,
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// How `volume` and the claim its `claimRef` names (`None`: it does not
/// exist) are to be bound.
pub fn bind(volume: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> Binding {
    let v = serde_json::to_value(volume).unwrap_or_default();
    let Some(reference) = v.pointer("/spec/claimRef") else {
        return Binding {
            volume_phase: "Available",
            claim_ref: None,
            claim_status: None,
        };
    };
    let Some(claim) = claim else {
        // Bound once (it has the uid) and the claim is gone: released.
        let phase = if reference.get("uid").is_some() {
            "Released"
        } else {
            "Available"
        };
        return Binding {
            volume_phase: phase,
            claim_ref: None,
            claim_status: None,
        };
    };
    let c = serde_json::to_value(claim).unwrap_or_default();
    let name = volume.name_any();
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    // Bound to an earlier claim of the same name: released, not rebound.
    if text(reference, "/uid").is_some_and(|u| u != uid) {
        return Binding {
            volume_phase: "Released",
            claim_ref: None,
            claim_status: None,
        };
    }
    let class = |x: &Value| {
        text(x, "/spec/storageClassName")
            .unwrap_or_default()
            .to_owned()
    };
    let modes = |x: &Value| {
        x.pointer("/spec/accessModes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let capacity = text(&v, "/spec/capacity/storage").unwrap_or_default();
    let request = text(&c, "/spec/resources/requests/storage").unwrap_or_default();
    let fits = text(&c, "/spec/volumeName").is_none_or(|n| n.is_empty() || n == name)
        && class(&v) == class(&c)
        && modes(&c).iter().all(|m| modes(&v).contains(m))
        && quantity_bytes(capacity) >= quantity_bytes(request);
    if !fits {
        return Binding {
            volume_phase: "Available",
            claim_ref: None,
            claim_status: None,
        };
    }
    let mut claim_ref = reference.clone();
    claim_ref["uid"] = json!(uid);
    Binding {
        volume_phase: "Bound",
        claim_ref: (text(reference, "/uid") != Some(uid.as_str())).then_some(claim_ref),
        claim_status: (text(&c, "/status/phase") != Some("Bound")).then(|| {
            json!({
                "phase": "Bound",
                "accessModes": modes(&v),
                "capacity": {"storage": capacity},
            })
        }),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("binding persistentvolume {volume}: {source}")]
pub struct BindError {
    volume: String,
    #[source]
    source: kube::Error,
}

/// Runs until the task is aborted.
pub async fn run(client: Client) {
    Controller::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
        |claim: PersistentVolumeClaim| {
            claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .filter(|n| !n.is_empty())
                .map(|n| ObjectRef::new(&n))
        },
    )
    .run(
        reconcile,
        |_, _, _| Action::requeue(Duration::from_millis(250)),
        Arc::new(client),
    )
    .for_each(|result| {
        if let Err(error) = result {
            tracing::debug!(%error, "persistentvolume controller");
        }
        std::future::ready(())
    })
    .await;
}

async fn reconcile(
    volume: Arc<PersistentVolume>,
    client: Arc<Client>,
) -> Result<Action, BindError> {
    let name = volume.name_any();
    let err = |source| BindError {
        volume: name.clone(),
        source,
    };
    let reference = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let claim = match reference {
        Some(r) => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(
                (*client).clone(),
                r.namespace.as_deref().unwrap_or("default"),
            );
            claims
                .get_opt(r.name.as_deref().unwrap_or_default())
                .await
                .map_err(err)?
        }
        None => None,
    };
    let binding = bind(&volume, claim.as_ref());
    let volumes: Api<PersistentVolume> = Api::all((*client).clone());
    if let Some(claim_ref) = &binding.claim_ref {
        volumes
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"claimRef": claim_ref}})),
            )
            .await
            .map_err(err)?;
    }
    let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some(binding.volume_phase) {
        volumes
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"phase": binding.volume_phase}})),
            )
            .await
            .map_err(err)?;
    }
    if let (Some(status), Some(claim)) = (&binding.claim_status, &claim) {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced((*client).clone(), &claim.namespace().unwrap_or_default());
        let claim_name = claim.name_any();
        if claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()) != Some(name.as_str()) {
            claims
                .patch(
                    &claim_name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"volumeName": name}})),
                )
                .await
                .map_err(err)?;
        }
        claims
            .patch_status(
                &claim_name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .map_err(err)?;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(claim_ref: Value) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "cache-team-a"},
            "spec": {"capacity": {"storage": "500Gi"}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": "modelfleet-model-cache",
                     "hostPath": {"path": "/var/lib/modelfleet/models/team-a"},
                     "claimRef": claim_ref}
        }))
        .unwrap()
    }

    fn claim(volume_name: &str, size: &str, class: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "cache", "namespace": "team-a", "uid": "u-1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                     "volumeName": volume_name, "resources": {"requests": {"storage": size}}}
        }))
        .unwrap()
    }

    #[test]
    fn a_volume_binds_the_claim_it_names_when_the_claim_fits() {
        let v = volume(json!({"namespace": "team-a", "name": "cache"}));
        let bound = bind(
            &v,
            Some(&claim("cache-team-a", "500Gi", "modelfleet-model-cache")),
        );
        assert_eq!(bound.volume_phase, "Bound");
        assert_eq!(bound.claim_ref.unwrap()["uid"], "u-1");
        let status = bound.claim_status.unwrap();
        assert_eq!(status["phase"], "Bound");
        assert_eq!(status["capacity"]["storage"], "500Gi");

        for (volume_name, size, class) in [
            ("another-volume", "500Gi", "modelfleet-model-cache"),
            ("cache-team-a", "600Gi", "modelfleet-model-cache"),
            ("cache-team-a", "500Gi", "standard"),
        ] {
            let refused = bind(&v, Some(&claim(volume_name, size, class)));
            assert_eq!(
                refused.volume_phase, "Available",
                "{volume_name} {size} {class}"
            );
            assert_eq!(refused.claim_status, None);
        }
    }

    #[test]
    fn a_volume_whose_claim_went_is_released_not_rebound() {
        let v = volume(json!({"namespace": "team-a", "name": "cache", "uid": "u-0"}));
        assert_eq!(bind(&v, None).volume_phase, "Released");
        // A new claim of the same name is not the one it was bound to.
        let again = bind(
            &v,
            Some(&claim("cache-team-a", "500Gi", "modelfleet-model-cache")),
        );
        assert_eq!(again.volume_phase, "Released");
        assert_eq!(again.claim_status, None);
        let free: PersistentVolume =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {}})).unwrap();
        assert_eq!(bind(&free, None).volume_phase, "Available");
    }
}
