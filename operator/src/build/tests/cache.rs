//! A pool with a node-local model cache: the volume and claim the build
//! adds, and what the pods do with them.

use modelfleet_core::fleet::ModelCache;

use super::*;

/// The fixture fleet with a cache of `bytes` on the L40S pool.
fn cached_fleet(bytes: u64) -> Fleet {
    let mut fleet = Fleet::from_yaml(FLEET).unwrap();
    for pool in fleet.pools.iter_mut().filter(|p| p.name == "g6e-l40s") {
        pool.settings.model_cache = Some(ModelCache {
            path: "/var/lib/modelfleet/models".into(),
            bytes,
        });
    }
    fleet
}

fn engine_requests(spec: &PodSpec) -> &BTreeMap<String, Quantity> {
    engine(spec)
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .expect("the engine requests resources")
}

fn small() -> ModelDeployment {
    ModelDeployment::test("small")
        .model("llama-3.1-8b")
        .on("l40s")
}

#[test]
fn a_pool_with_a_cache_gets_a_namespaces_volume_and_pods_that_link_into_it() {
    let (_, built) = plan_and_build_on(&small(), &cached_fleet(500 << 30));
    let cache = built
        .model_cache
        .as_ref()
        .expect("a cache volume and claim");

    // The volume: this namespace's directory, on the pool's nodes, for one claim.
    let volume = cache.volume.spec.as_ref().unwrap();
    assert_eq!(
        volume.host_path.as_ref().unwrap().path,
        format!("/var/lib/modelfleet/models/{TEST_NAMESPACE}")
    );
    let claim_ref = volume.claim_ref.as_ref().unwrap();
    assert_eq!(claim_ref.namespace.as_deref(), Some(TEST_NAMESPACE));
    assert_eq!(claim_ref.name, cache.claim.metadata.name);
    assert_eq!(
        volume.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    let terms = &volume
        .node_affinity
        .as_ref()
        .unwrap()
        .required
        .as_ref()
        .unwrap()
        .node_selector_terms;
    let requirement = &terms[0].match_expressions.as_ref().unwrap()[0];
    assert_eq!(requirement.key, "eks.amazonaws.com/nodegroup");
    assert_eq!(
        requirement.values.as_deref(),
        Some(&["g6e-l40s".to_owned()][..])
    );
    let claim = cache.claim.spec.as_ref().unwrap();
    assert_eq!(claim.volume_name, cache.volume.metadata.name);
    assert_eq!(claim.storage_class_name, volume.storage_class_name);

    // The pod: the fetch writes the cache and links the weights to it; the
    // engine reads them through the link and asks for no disk for them.
    let spec = pod_spec(deployment(&built));
    let fetch = &spec.init_containers.as_ref().unwrap()[0];
    let command = fetch.command.as_ref().unwrap().join(" ");
    assert!(
        command.contains("--cache /var/cache/modelfleet --cache-size 536870912000"),
        "{command}"
    );
    let claim_volume = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find_map(|v| v.persistent_volume_claim.as_ref())
        .unwrap();
    assert_eq!(
        Some(&claim_volume.claim_name),
        cache.claim.metadata.name.as_ref()
    );
    let mount_of = |c: &Container| {
        c.volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "model-cache")
            .map(|m| (m.mount_path.clone(), m.read_only.unwrap_or(false)))
    };
    assert_eq!(
        mount_of(fetch),
        Some(("/var/cache/modelfleet".into(), false))
    );
    assert_eq!(
        mount_of(engine(spec)),
        Some(("/var/cache/modelfleet".into(), true))
    );
    let security = fetch.security_context.as_ref().unwrap();
    assert_eq!(
        security.run_as_user,
        Some(0),
        "the kubelet's hostPath directory is root's"
    );
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    let requests = engine_requests(spec);
    assert!(!requests.contains_key("ephemeral-storage"), "{requests:?}");
    let weights = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "model-weights")
        .unwrap();
    assert_eq!(
        weights.empty_dir.as_ref().unwrap().size_limit,
        Some(Quantity("1Gi".into())),
        "the pod's own volume holds a link"
    );
    let yaml = built.to_yaml();
    assert!(
        yaml.starts_with("apiVersion: v1\nkind: PersistentVolume\n"),
        "{yaml}"
    );
}

#[test]
fn a_model_larger_than_the_cache_or_mounted_from_a_claim_does_not_use_it() {
    let (_, too_big) = plan_and_build_on(&small(), &cached_fleet(1 << 30));
    assert!(too_big.model_cache.is_none());
    let spec = pod_spec(deployment(&too_big));
    let command = spec.init_containers.as_ref().unwrap()[0]
        .command
        .as_ref()
        .unwrap()
        .join(" ");
    assert!(!command.contains("--cache"), "{command}");
    let requests = engine_requests(spec);
    assert!(requests.contains_key("ephemeral-storage"));

    let mounted = small().source("pvc://weights/llama");
    let (_, built) = plan_and_build_on(&mounted, &cached_fleet(500 << 30));
    assert!(built.model_cache.is_none());
    assert!(pod_spec(deployment(&built)).init_containers.is_none());
}
