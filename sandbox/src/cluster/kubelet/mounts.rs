//! Where a container's volume mount is on its node, for the one container
//! the kubelet really runs (`real_fetch`): a `hostPath` volume's path, or
//! that of the volume a claim is bound to, as the kubelet mounts them.

use k8s_openapi::api::core::v1::{Container, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Client;
use kube::api::Api;

/// The host path behind the volume `container` mounts at `path`: a
/// `hostPath` volume's, or that of the volume a claim is bound to. Fails as
/// the kubelet's mount would, naming what is missing.
pub async fn host_path_of(
    client: &Client,
    pod: &Pod,
    container: &Container,
    path: &str,
) -> Result<String, String> {
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path.trim_end_matches('/') == path.trim_end_matches('/'))
        .ok_or_else(|| {
            format!(
                "--cache {path} is not a volume mount of container {}",
                container.name
            )
        })?;
    let volume = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v.iter().find(|v| v.name == mount.name))
        .ok_or_else(|| format!("volume {:?} is not in the pod", mount.name))?;
    if let Some(host) = &volume.host_path {
        return Ok(host.path.clone());
    }
    let Some(claim) = &volume.persistent_volume_claim else {
        return Err(format!(
            "volume {:?} is neither a hostPath nor a claim: the sandbox cannot keep a cache there",
            mount.name
        ));
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let found = claims
        .get_opt(&claim.claim_name)
        .await
        .map_err(|e| {
            format!(
                "cannot read persistentvolumeclaim {:?}: {e}",
                claim.claim_name
            )
        })?
        .ok_or_else(|| format!("persistentvolumeclaim {:?} not found", claim.claim_name))?;
    let bound = found.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume_name = found
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|_| bound)
        .ok_or_else(|| {
            format!(
                "MountVolume: persistentvolumeclaim {:?} is not bound to a volume yet",
                claim.claim_name
            )
        })?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes
        .get_opt(&volume_name)
        .await
        .map_err(|e| format!("cannot read persistentvolume {volume_name:?}: {e}"))?
        .ok_or_else(|| format!("persistentvolume {volume_name:?} not found"))?;
    pv.spec
        .and_then(|s| s.host_path)
        .map(|h| h.path)
        .ok_or_else(|| {
            format!("persistentvolume {volume_name:?} is not a hostPath volume: the sandbox keeps only those on its nodes")
        })
}
