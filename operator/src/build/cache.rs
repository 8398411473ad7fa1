//! The node-local model cache's volume, for a pool whose nodes declare one
//! (`modelfleet.io/model-cache-path` and `-size`).
//!
//! Tenant namespaces enforce Pod Security `baseline`, which refuses
//! `hostPath` volumes in pods. So the cache reaches a pod as a claim: for
//! each namespace and pool, a PersistentVolume of type `hostPath` at
//! `<cache path>/<namespace>` (every node of the pool has one; the
//! volume's node affinity is the pool's), pre-bound by its `claimRef` to
//! one claim in that namespace, so no other namespace's claim can take
//! it; the pods mount the claim. Each namespace's models stay in their own
//! directory, and a pod reads only its own namespace's.
//!
//! The volume's reclaim policy is `Retain`: the cache outlives the
//! deployments, which is its point; deleting the namespace releases the
//! volume, and its directory stays on the nodes until a platform engineer
//! removes it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeNodeAffinity,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use modelfleet_core::contract::pool_settings::{
    MODEL_CACHE_STORAGE_CLASS, cache_claim_name, cache_volume_name,
};
use modelfleet_core::fleet::{ModelCache, NodePool};

use super::pod::pool_node_selector;

/// The volume and the claim for one namespace's cache on one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheVolume {
    pub volume: PersistentVolume,
    pub claim: PersistentVolumeClaim,
}

fn labels(namespace: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "modelfleet-operator".to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            "model-cache".to_owned(),
        ),
        ("modelfleet.io/namespace".to_owned(), namespace.to_owned()),
    ])
}

/// The cache's volume and claim for `namespace` on `pool`.
pub fn cache_volume(namespace: &str, pool: &NodePool, cache: &ModelCache) -> CacheVolume {
    let claim_name = cache_claim_name(&pool.name);
    let volume_name = cache_volume_name(namespace, &pool.name);
    let size = Quantity(cache.bytes.to_string());
    let modes = Some(vec!["ReadWriteOnce".to_owned()]);
    let volume = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name.clone()),
            labels: Some(labels(namespace)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_owned(), size.clone())])),
            access_modes: modes.clone(),
            persistent_volume_reclaim_policy: Some("Retain".to_owned()),
            storage_class_name: Some(MODEL_CACHE_STORAGE_CLASS.to_owned()),
            volume_mode: Some("Filesystem".to_owned()),
            host_path: Some(HostPathVolumeSource {
                path: format!("{}/{namespace}", cache.path),
                type_: Some("DirectoryOrCreate".to_owned()),
            }),
            // Only this claim may bind it.
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("PersistentVolumeClaim".to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(claim_name.clone()),
                ..ObjectReference::default()
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(pool_node_selector(pool)),
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim_name),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(namespace)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: modes,
            storage_class_name: Some(MODEL_CACHE_STORAGE_CLASS.to_owned()),
            volume_name: Some(volume_name),
            volume_mode: Some("Filesystem".to_owned()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), size)])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    };
    CacheVolume { volume, claim }
}
