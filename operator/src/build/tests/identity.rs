//! A CCE pool naming its identity provider: the fetch container of an
//! `obs://` deployment without keys gets a projected token and the
//! variables naming the provider; nothing else does.

use modelfleet_core::fleet::CceIdentity;

use super::*;

/// The fixture fleet with a CCE identity on the Ascend pool.
fn cce_fleet() -> Fleet {
    let mut fleet = Fleet::from_yaml(FLEET).unwrap();
    for pool in fleet.pools.iter_mut().filter(|p| p.name == "snt9b-910b") {
        pool.settings.cce_identity = Some(CceIdentity {
            provider: "cce-prod".into(),
            project_id: "0a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
            audience: "ClientId-modelfleet".into(),
        });
    }
    fleet
}

fn on_ascend(source: &str) -> ModelDeployment {
    ModelDeployment::test("cce")
        .model("llama-3.1-8b")
        .on("ascend-910b")
        .source(source)
}

fn env_of(c: &Container) -> BTreeMap<String, String> {
    c.env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

#[test]
fn an_obs_fetch_without_keys_on_a_cce_pool_gets_the_pools_identity() {
    let (_, built) = plan_and_build_on(&on_ascend("obs://models/llama"), &cce_fleet());
    let spec = pod_spec(deployment(&built));
    let fetcher = &spec.init_containers.as_ref().unwrap()[0];
    let env = env_of(fetcher);
    assert_eq!(env["HUAWEICLOUD_SDK_IDP_ID"], "cce-prod");
    assert_eq!(
        env["HUAWEICLOUD_SDK_PROJECT_ID"],
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    );
    assert_eq!(env["HUAWEICLOUD_SDK_REGION"], "cn-southwest-2");
    let token_file = &env["HUAWEICLOUD_SDK_ID_TOKEN_FILE"];
    let mount = fetcher
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| token_file.starts_with(&format!("{}/", m.mount_path)))
        .expect("the token file is on a mount");
    assert_eq!(mount.read_only, Some(true));
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let projection = volume.projected.as_ref().unwrap().sources.as_ref().unwrap();
    let token = projection[0].service_account_token.as_ref().unwrap();
    assert_eq!(token.audience.as_deref(), Some("ClientId-modelfleet"));
    assert!(token_file.ends_with(&format!("/{}", token.path)));
    // The engine gets neither the token nor the variables.
    let engine = engine(spec);
    assert!(env_of(engine).keys().all(|k| !k.starts_with("HUAWEICLOUD")));
    assert!(
        engine
            .volume_mounts
            .iter()
            .flatten()
            .all(|m| m.name != mount.name)
    );
    assert_eq!(spec.automount_service_account_token, Some(false));
}

#[test]
fn keys_another_store_or_another_pool_need_no_identity() {
    let mut keyed = on_ascend("obs://models/llama");
    keyed.spec.source_secret = Some("obs-keys".to_owned());
    let mut cases = vec![
        ("a source Secret", keyed),
        ("an oss:// source", on_ascend("oss://models/llama")),
    ];
    cases.push((
        "a pool without one",
        ModelDeployment::test("plain")
            .on("l40s")
            .source("obs://models/llama"),
    ));
    for (what, md) in cases {
        let (_, built) = plan_and_build_on(&md, &cce_fleet());
        let spec = pod_spec(deployment(&built));
        let fetcher = &spec.init_containers.as_ref().unwrap()[0];
        assert!(
            env_of(fetcher)
                .keys()
                .all(|k| !k.starts_with("HUAWEICLOUD")),
            "{what}"
        );
        assert!(
            spec.volumes.iter().flatten().all(|v| v.projected.is_none()),
            "{what}"
        );
    }
}
