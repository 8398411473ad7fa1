//! A pod identity the operator gives the fetch container itself. EKS, ACK
//! and TKE each run a webhook that gives pods of a service account bound
//! to a role a token and the variables naming it; Huawei Cloud CCE has
//! none, so for an `obs://` source without a source Secret, on a pool that
//! names its identity provider (`contract::pool_settings`), the fetch
//! container gets a service-account token projected for the provider's
//! audience and the `HUAWEICLOUD_SDK_*` variables `modelfleet fetch`
//! exchanges it with (`fetch/src/identity.rs`). The engine gets neither,
//! and the token's audience is not the API server's, so it opens nothing
//! in the cluster.

use k8s_openapi::api::core::v1::{
    EnvVar, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
use modelfleet_core::crd::SourceScheme;
use modelfleet_core::fleet::CceIdentity;

use super::pod::PodInputs;

pub(super) const CCE_TOKEN_VOLUME: &str = "cce-identity-token";
const CCE_TOKEN_DIR: &str = "/var/run/secrets/modelfleet/cce";
const CCE_TOKEN_FILE: &str = "token";
/// The kubelet renews the token at 80% of this; fetch reads it again at
/// each exchange.
const CCE_TOKEN_SECONDS: i64 = 3600;

/// The pool's CCE identity, when this pod's fetch uses it.
pub(super) fn cce_identity<'a>(inputs: &PodInputs<'a>) -> Option<&'a CceIdentity> {
    let identity = inputs.pool.settings.cce_identity.as_ref()?;
    (inputs.source.scheme == SourceScheme::Obs && inputs.source_secret.is_none())
        .then_some(identity)
}

pub(super) fn cce_env(identity: &CceIdentity, region: &str) -> Vec<EnvVar> {
    let var = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..EnvVar::default()
    };
    vec![
        var("HUAWEICLOUD_SDK_IDP_ID", identity.provider.clone()),
        var("HUAWEICLOUD_SDK_PROJECT_ID", identity.project_id.clone()),
        var(
            "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
            format!("{CCE_TOKEN_DIR}/{CCE_TOKEN_FILE}"),
        ),
        var("HUAWEICLOUD_SDK_REGION", region.to_owned()),
    ]
}

pub(super) fn cce_mount() -> VolumeMount {
    VolumeMount {
        name: CCE_TOKEN_VOLUME.to_owned(),
        mount_path: CCE_TOKEN_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

pub(super) fn cce_volume(identity: &CceIdentity) -> Volume {
    Volume {
        name: CCE_TOKEN_VOLUME.to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(identity.audience.clone()),
                    expiration_seconds: Some(CCE_TOKEN_SECONDS),
                    path: CCE_TOKEN_FILE.to_owned(),
                }),
                ..VolumeProjection::default()
            }]),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    }
}
