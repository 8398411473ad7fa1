//! The LeaderWorkerSet CRD a simulated cluster installs when none is
//! present, as installing LWS in a real cluster would.
//!
//! It is the repository's minimal testing CRD
//! (`manifests/testing/leaderworkerset.crd.yaml`): upstream's names, scope
//! and subresources, with pod templates kept as unknown fields. One file
//! serves the sandbox and the tests, so the two cannot drift apart.
//! `SimulatedCluster::start` never overwrites a CRD that exists.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

const CRD_YAML: &str = include_str!("../../../../manifests/testing/leaderworkerset.crd.yaml");

pub fn leaderworkerset_crd() -> CustomResourceDefinition {
    serde_yaml::from_str(CRD_YAML)
        .expect("manifests/testing/leaderworkerset.crd.yaml is a CRD (checked by a test)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::lws::api_resource;

    #[test]
    fn the_crd_names_the_resource_the_controller_watches() {
        let crd = leaderworkerset_crd();
        let resource = api_resource();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{}.{}", resource.plural, resource.group).as_str())
        );
        assert_eq!(crd.spec.group, resource.group);
        assert_eq!(crd.spec.names.kind, resource.kind);
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == resource.version)
            .unwrap();
        assert!(version.served && version.storage);
        // The controller writes status through the subresource.
        assert!(version.subresources.as_ref().unwrap().status.is_some());
    }
}
