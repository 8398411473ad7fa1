//! The restricted Pod Security Standards checks, which replace the
//! baseline capabilities, hostPath and seccomp checks.

use std::collections::BTreeSet;

use serde_json::Value;

use super::checks::{
    Violation, containers, containers_of, join_quote, name, pluralize, sc, seccomp,
    seccomp_explicit, strings, violation, volumes,
};

pub fn allow_privilege_escalation(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers_of(spec)
        .into_iter()
        .filter(|c| sc(c, "/allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "allowPrivilegeEscalation != false".to_owned(),
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                containers(&bad)
            ),
        )
    })
}

pub fn capabilities_restricted(_meta: &Value, spec: &Value) -> Option<Violation> {
    let (mut missing_drop, mut adding) = (Vec::new(), Vec::new());
    let mut forbidden = BTreeSet::new();
    for c in containers_of(spec) {
        let Some(caps) = sc(c, "/capabilities") else {
            missing_drop.push(name(c));
            continue;
        };
        if !strings(caps.get("drop")).iter().any(|d| d == "ALL") {
            missing_drop.push(name(c));
        }
        let extra: Vec<String> = strings(caps.get("add"))
            .into_iter()
            .filter(|a| a != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(name(c));
            forbidden.extend(extra);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&adding),
            join_quote(&forbidden)
        ));
    }
    (!details.is_empty()).then(|| ("unrestricted capabilities".to_owned(), details.join("; ")))
}

const ALLOWED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "image",
];

const RESTRICTED_VOLUME_TYPES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

pub fn restricted_volumes(_meta: &Value, spec: &Value) -> Option<Violation> {
    let set = |v: &Value, t: &str| v.get(t).is_some_and(|x| !x.is_null());
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in volumes(spec) {
        if ALLOWED_VOLUME_TYPES.iter().any(|t| set(v, t)) {
            continue;
        }
        bad.push(name(v));
        let t = RESTRICTED_VOLUME_TYPES.iter().find(|t| set(v, t)).copied();
        types.insert(t.unwrap_or("unknown").to_owned());
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

pub fn run_as_non_root(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut pod_non_root = false;
    match spec
        .pointer("/securityContext/runAsNonRoot")
        .and_then(Value::as_bool)
    {
        Some(false) => setters.push("pod".to_owned()),
        Some(true) => pod_non_root = true,
        None => {}
    }
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers_of(spec) {
        match sc(c, "/runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicit.push(name(c)),
            Some(true) => {}
            None if !pod_non_root => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers(&explicit));
    }
    let reason = "runAsNonRoot != true";
    if !setters.is_empty() {
        return violation(
            reason,
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    (!implicit.is_empty()).then(|| {
        (
            reason.to_owned(),
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers(&implicit)
            ),
        )
    })
}

pub fn run_as_user(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    if spec
        .pointer("/securityContext/runAsUser")
        .and_then(Value::as_i64)
        == Some(0)
    {
        setters.push("pod".to_owned());
    }
    let bad: Vec<String> = containers_of(spec)
        .into_iter()
        .filter(|c| sc(c, "/runAsUser").and_then(Value::as_i64) == Some(0))
        .map(name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    (!setters.is_empty()).then(|| {
        (
            "runAsUser=0".to_owned(),
            format!("{} must not set runAsUser=0", setters.join(" and ")),
        )
    })
}

pub fn seccomp_profile_restricted(_meta: &Value, spec: &Value) -> Option<Violation> {
    let (setters, values, implicit) = seccomp(spec);
    if !setters.is_empty() {
        return seccomp_explicit(&setters, &values);
    }
    (!implicit.is_empty()).then(|| {
        (
            "seccompProfile".to_owned(),
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers(&implicit)
            ),
        )
    })
}
