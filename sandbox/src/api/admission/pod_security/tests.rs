use serde_json::{Value, json};

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

fn detail(level: Level, spec: Value) -> String {
    forbidden_detail(&evaluate(level, &json!({}), &spec))
}

#[test]
fn labels_give_enforce_and_warn_with_warn_defaulting_to_a_stricter_enforce() {
    let p = policy(&labels(&[(ENFORCE_LABEL, "baseline")]));
    assert_eq!(p.enforce.to_string(), "baseline:latest");
    assert_eq!(p.warn.to_string(), "baseline:latest");
    let p = policy(&labels(&[
        (ENFORCE_LABEL, "baseline"),
        ("pod-security.kubernetes.io/enforce-version", "v1.33"),
        (WARN_LABEL, "restricted"),
    ]));
    assert_eq!(p.enforce.to_string(), "baseline:v1.33");
    assert_eq!(p.warn.to_string(), "restricted:latest");
    let p = policy(&labels(&[]));
    assert_eq!(p.enforce.level, Level::Privileged);
    assert_eq!(p.warn.level, Level::Privileged);
}

#[test]
fn baseline_names_host_namespaces_and_host_path_volumes_as_the_real_checks() {
    let spec = json!({"hostNetwork": true, "hostPID": true,
        "volumes": [{"name": "ascend-driver", "hostPath": {"path": "/usr/local/Ascend"}}, {"name": "tmp", "emptyDir": {}}],
        "containers": [{"name": "c", "image": "x"}]});
    assert_eq!(
        detail(Level::Baseline, spec),
        "host namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volume \"ascend-driver\")"
    );
}

#[test]
fn baseline_container_checks() {
    let spec = json!({"containers": [
        {"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]},
            "procMount": "Unmasked", "seccompProfile": {"type": "Unconfined"}},
         "ports": [{"containerPort": 80, "hostPort": 8080}]},
        {"name": "b", "securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "root"},
            "appArmorProfile": {"type": "Unconfined"}}}],
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}]}});
    assert_eq!(
        detail(Level::Baseline, spec),
        "forbidden AppArmor profile (container \"b\" must not set AppArmor profile type to \"Unconfined\"), \
         non-default capabilities (container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), \
         hostPort (container \"a\" uses hostPort 8080), \
         privileged (container \"a\" must not set securityContext.privileged=true), \
         procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\"), \
         seLinuxOptions (container \"b\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set), \
         seccompProfile (container \"a\" must not set securityContext.seccompProfile.type to \"Unconfined\"), \
         forbidden sysctls (kernel.msgmax)"
    );
}

#[test]
fn restricted_adds_its_checks_and_replaces_the_overlapping_baseline_ones() {
    let spec = json!({"volumes": [{"name": "drv", "hostPath": {"path": "/d"}}],
        "containers": [{"name": "app", "image": "x", "securityContext": {"runAsUser": 0}}]});
    assert_eq!(
        detail(Level::Restricted, spec),
        "allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         restricted volumes (volume \"drv\" uses restricted volume type \"hostPath\"), \
         runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), \
         runAsUser=0 (container \"app\" must not set runAsUser=0), \
         seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
            .replace("restricted volumes (", "restricted volume types (")
    );
    let compliant = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
        "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]});
    assert_eq!(detail(Level::Restricted, compliant), "");
    assert!(evaluate(Level::Privileged, &json!({}), &json!({"hostNetwork": true})).is_empty());
}

#[test]
fn pods_are_refused_by_enforce_and_templates_only_warned() {
    let p = policy(&labels(&[
        (ENFORCE_LABEL, "baseline"),
        (WARN_LABEL, "restricted"),
    ]));
    let host = json!({"hostNetwork": true, "containers": [{"name": "c"}]});
    let refused = admit(&p, &json!({}), &host, false);
    assert_eq!(
        refused.forbidden.as_deref(),
        Some("violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)")
    );
    assert!(refused.warnings.is_empty());
    let template = admit(&p, &json!({}), &host, true);
    assert_eq!(template.forbidden, None);
    assert!(
        template.warnings[0]
            .starts_with("would violate PodSecurity \"restricted:latest\": host namespaces")
    );
    let plain = json!({"containers": [{"name": "c"}]});
    let warned = admit(&p, &json!({}), &plain, false);
    assert_eq!(warned.forbidden, None);
    assert!(warned.warnings[0].contains("allowPrivilegeEscalation != false"));
}
