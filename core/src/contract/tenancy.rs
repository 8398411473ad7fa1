//! The boundary between tenants inside one cluster a hub manages: what a
//! tenant namespace carries besides its ModelDeployments, who writes it,
//! and who may write there.
//!
//! | object | written by | what it does |
//! | --- | --- | --- |
//! | the Namespace's [`pod_security_labels`] | hub | Pod Security admission enforces `baseline` on every pod, warns at `restricted` |
//! | RoleBinding [`OPERATOR_BINDING`] | hub | lets the operator write workloads there (ClusterRole [`OPERATOR_WORKLOADS_ROLE`]) and nowhere else |
//! | RoleBinding [`HUB_LOGS_BINDING`] | hub | lets the hub read its pods' logs there (ClusterRole [`HUB_LOGS_ROLE`]), for the console, and nowhere else |
//! | RoleBinding [`HUB_CREDENTIALS_BINDING`] | hub | lets the hub write the Secrets of the source credentials it keeps for the tenant there (ClusterRole [`HUB_CREDENTIALS_ROLE`]), and nowhere else |
//! | Secrets `modelfleet-source-<name>` ([`source_credential_secret`]) | hub | a source credential the hub keeps for the tenant, for the containers that fetch weights |
//! | NetworkPolicy [`NETWORK_POLICY`] | operator | engines answer only the gateway and their own group; no pod reaches the clouds' metadata services |
//! | Secret [`ENGINE_API_KEY_SECRET`] | operator | the API key every engine there requires (derived from the cluster's admission key) |
//!
//! The operator writes its two only when a hub manages the cluster (it has
//! an admission key): a standalone operator serves one team, with no
//! gateway to let through.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use super::admission::AdmissionKey;
use super::labels::DEPLOYMENT_LABEL;

/// The ClusterRole holding the operator's writes (workloads, their
/// Services and budgets, the NetworkPolicy and the API key Secret), bound
/// only in namespaces that hold ModelDeployments.
pub const OPERATOR_WORKLOADS_ROLE: &str = "modelfleet-operator-workloads";
/// The RoleBinding of [`OPERATOR_WORKLOADS_ROLE`] in a tenant namespace.
pub const OPERATOR_BINDING: &str = "modelfleet-operator";
/// The operator's ServiceAccount as `manifests/operator/` installs it.
pub const OPERATOR_SERVICE_ACCOUNT: (&str, &str) = ("modelfleet-system", "modelfleet-operator");

/// The ClusterRole that reads pods' logs, which the hub binds to itself in
/// each tenant namespace (and only there) to show replicas' last lines.
pub const HUB_LOGS_ROLE: &str = "modelfleet-hub-tenant-logs";
/// The RoleBinding of [`HUB_LOGS_ROLE`] in a tenant namespace.
pub const HUB_LOGS_BINDING: &str = "modelfleet-hub-logs";

/// The ClusterRole that writes Secrets, which the hub binds to itself in
/// each tenant namespace (and only there) to deliver the source
/// credentials it keeps for the tenant.
pub const HUB_CREDENTIALS_ROLE: &str = "modelfleet-hub-tenant-credentials";
/// The RoleBinding of [`HUB_CREDENTIALS_ROLE`] in a tenant namespace.
pub const HUB_CREDENTIALS_BINDING: &str = "modelfleet-hub-credentials";

/// The Secret of a source credential the hub keeps is this prefix and the
/// credential's name: a ModelDeployment whose `sourceSecret` is
/// `modelfleet-source-store` fetches with the tenant's credential `store`,
/// which the hub writes into each namespace it places the deployment in.
pub const SOURCE_CREDENTIAL_PREFIX: &str = "modelfleet-source-";
/// The longest name of a source credential.
pub const SOURCE_CREDENTIAL_NAME_MAX: usize = 40;
/// What a source credential may hold: the variables `modelfleet fetch`
/// reads its credentials from, and nothing else.
pub const SOURCE_CREDENTIAL_KEYS: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "HF_TOKEN",
    "MODELSCOPE_API_TOKEN",
];
/// Settings a source credential may carry beside its keys, for a store
/// the cloud's defaults do not reach (a MinIO, a private link, a model-hub
/// mirror): where fetch sends the keys. Not secret; shown as they are.
pub const SOURCE_CREDENTIAL_SETTINGS: [&str; 4] = [
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "HF_ENDPOINT",
    "MODELSCOPE_ENDPOINT",
];

/// Why a source credential's name is refused, if it is.
pub fn check_source_credential_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let label = !b.is_empty()
        && b.len() <= SOURCE_CREDENTIAL_NAME_MAX
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if label {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a credential name: 1 to {SOURCE_CREDENTIAL_NAME_MAX} lower-case \
             letters, digits and '-', starting with a letter and ending with a letter or digit"
        ))
    }
}

/// The hub-kept credential a `sourceSecret` names, if it names one.
pub fn source_credential_of(secret: &str) -> Option<&str> {
    secret.strip_prefix(SOURCE_CREDENTIAL_PREFIX)
}

/// The Secret a ModelDeployment names for the hub-kept credential `name`.
pub fn source_credential_secret_name(name: &str) -> String {
    format!("{SOURCE_CREDENTIAL_PREFIX}{name}")
}

/// The Secret holding the hub-kept source credential `name` in
/// `namespace`: one key per variable.
pub fn source_credential_secret(
    namespace: &str,
    name: &str,
    values: &BTreeMap<String, Vec<u8>>,
) -> Secret {
    Secret {
        metadata: meta(&source_credential_secret_name(name), namespace),
        type_: Some("Opaque".to_owned()),
        // `data`, as for the API key: what the API server stores.
        data: Some(
            values
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The Secret holding the engines' API key in a tenant namespace.
pub const ENGINE_API_KEY_SECRET: &str = "modelfleet-engine-api-key";
/// Its one key.
pub const ENGINE_API_KEY_FIELD: &str = "api-key";
/// The variable vLLM (and vllm-ascend) read their API key from; with it
/// set, every `/v1` route needs `Authorization: Bearer <key>` (`/health`
/// and `/metrics` stay open for probes and scraping).
pub const ENGINE_API_KEY_ENV: &str = "VLLM_API_KEY";

/// The default-deny NetworkPolicy of a tenant namespace.
pub const NETWORK_POLICY: &str = "modelfleet-tenant-isolation";
/// Where the gateway runs, and the label its pods carry.
pub const GATEWAY_NAMESPACE: &str = "modelfleet-system";
pub const GATEWAY_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "modelfleet-gateway");

/// Link-local addresses (the metadata services of AWS, Huawei Cloud and
/// Tencent Cloud, which hand out the node's cloud credentials) and
/// Alibaba Cloud's metadata address: no engine or fetcher needs them.
pub const METADATA_CIDRS_V4: [&str; 2] = ["169.254.0.0/16", "100.100.100.200/32"];
pub const METADATA_CIDRS_V6: [&str; 1] = ["fe80::/10"];

/// The Pod Security admission labels of a tenant namespace: `baseline`
/// enforced (no host namespaces, host paths, privileged containers or
/// added capabilities), `restricted` warned and audited.
pub fn pod_security_labels() -> [(&'static str, &'static str); 6] {
    [
        ("pod-security.kubernetes.io/enforce", "baseline"),
        ("pod-security.kubernetes.io/enforce-version", "latest"),
        ("pod-security.kubernetes.io/warn", "restricted"),
        ("pod-security.kubernetes.io/warn-version", "latest"),
        ("pod-security.kubernetes.io/audit", "restricted"),
        ("pod-security.kubernetes.io/audit-version", "latest"),
    ]
}

fn part_of() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "app.kubernetes.io/part-of".to_owned(),
        "modelfleet".to_owned(),
    )])
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(part_of()),
        ..ObjectMeta::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..LabelSelector::default()
    }
}

fn all_but(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: Some(except.iter().map(|c| (*c).to_owned()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// The NetworkPolicy of tenant namespace `namespace`: every pod there
/// takes connections only from the gateway's pods and from modelfleet's
/// pods of the same namespace (an LWS group's leader and workers: Ray's
/// port 6379, NCCL/HCCL); pods may connect anywhere (object stores and
/// model hubs are on the internet) except the cloud metadata services.
pub fn network_policy(namespace: &str) -> NetworkPolicy {
    let own_workloads = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: DEPLOYMENT_LABEL.to_owned(),
                operator: "Exists".to_owned(),
                values: None,
            }]),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let gateway = NetworkPolicyPeer {
        namespace_selector: Some(labels(&[(
            "kubernetes.io/metadata.name",
            GATEWAY_NAMESPACE,
        )])),
        pod_selector: Some(labels(&[GATEWAY_POD_LABEL])),
        ..NetworkPolicyPeer::default()
    };
    // Pods anywhere in the cluster (DNS, a group's peers): whether an
    // ipBlock covers pod addresses is up to the CNI, so they are named.
    let in_cluster = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    };
    NetworkPolicy {
        metadata: meta(NETWORK_POLICY, namespace),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![own_workloads, gateway]),
                ports: None,
            }]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![
                    in_cluster,
                    all_but("0.0.0.0/0", &METADATA_CIDRS_V4),
                    all_but("::/0", &METADATA_CIDRS_V6),
                ]),
                ports: None,
            }]),
        }),
    }
}

/// The Secret with the API key of the engines in `namespace`.
pub fn engine_api_key_secret(namespace: &str, key: &AdmissionKey) -> Secret {
    Secret {
        metadata: meta(ENGINE_API_KEY_SECRET, namespace),
        type_: Some("Opaque".to_owned()),
        // `data`, not `stringData`: the API server would turn the one into
        // the other, and server-side apply would then see a field it did
        // not write.
        data: Some(BTreeMap::from([(
            ENGINE_API_KEY_FIELD.to_owned(),
            ByteString(key.engine_api_key(namespace).into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// The RoleBinding that lets the operator (ServiceAccount
/// `operator.0/operator.1`) write in `namespace`.
/// Who an authenticated user is, as a binding's subject: a ServiceAccount
/// for `system:serviceaccount:<namespace>:<name>`, a User otherwise.
pub fn subject_of(username: &str) -> Subject {
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) => Subject {
            kind: "ServiceAccount".to_owned(),
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
            api_group: None,
        },
        None => Subject {
            kind: "User".to_owned(),
            name: username.to_owned(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
        },
    }
}

/// The RoleBinding that lets `hub` read pods' logs in `namespace`.
pub fn hub_logs_role_binding(namespace: &str, hub: Subject) -> RoleBinding {
    hub_role_binding(HUB_LOGS_BINDING, HUB_LOGS_ROLE, namespace, hub)
}

/// The RoleBinding that lets `hub` write source credentials' Secrets in
/// `namespace`.
pub fn hub_credentials_role_binding(namespace: &str, hub: Subject) -> RoleBinding {
    hub_role_binding(
        HUB_CREDENTIALS_BINDING,
        HUB_CREDENTIALS_ROLE,
        namespace,
        hub,
    )
}

fn hub_role_binding(binding: &str, role: &str, namespace: &str, hub: Subject) -> RoleBinding {
    RoleBinding {
        metadata: meta(binding, namespace),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![hub]),
    }
}

pub fn operator_role_binding(namespace: &str, operator: (&str, &str)) -> RoleBinding {
    RoleBinding {
        metadata: meta(OPERATOR_BINDING, namespace),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: OPERATOR_WORKLOADS_ROLE.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: operator.1.to_owned(),
            namespace: Some(operator.0.to_owned()),
            api_group: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_dns_labels_that_fit_a_secret_name() {
        for good in ["store", "s3-prod", "hf2"] {
            assert_eq!(check_source_credential_name(good), Ok(()), "{good}");
            let secret = source_credential_secret_name(good);
            assert_eq!(source_credential_of(&secret), Some(good));
        }
        let long = "a".repeat(SOURCE_CREDENTIAL_NAME_MAX + 1);
        for bad in [
            "", "Store", "-store", "store-", "2store", "st.ore", "st/ore", &long,
        ] {
            let refused = check_source_credential_name(bad).unwrap_err();
            assert!(refused.contains("lower-case"), "{bad}: {refused}");
        }
        assert_eq!(source_credential_of("model-store-keys"), None);
    }

    #[test]
    fn a_username_becomes_the_subject_rbac_matches_it_by() {
        let sa = subject_of("system:serviceaccount:modelfleet-system:modelfleet-hub");
        assert_eq!(sa.kind, "ServiceAccount");
        assert_eq!(
            (sa.namespace.as_deref(), sa.name.as_str()),
            (Some("modelfleet-system"), "modelfleet-hub")
        );
        let user = subject_of("kubernetes-admin");
        assert_eq!(
            (user.kind.as_str(), user.name.as_str()),
            ("User", "kubernetes-admin")
        );
        let binding = hub_logs_role_binding("mf-acme", sa);
        assert_eq!(binding.role_ref.name, HUB_LOGS_ROLE);
        assert_eq!(binding.metadata.namespace.as_deref(), Some("mf-acme"));
    }

    #[test]
    fn the_policy_denies_by_default_and_names_its_two_ways_in() {
        let policy = network_policy("mf-acme");
        let spec = policy.spec.unwrap();
        assert_eq!(spec.pod_selector, Some(LabelSelector::default()));
        let from = &spec.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(from.len(), 2);
        let gateway = &from[1];
        assert_eq!(
            gateway
                .namespace_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["kubernetes.io/metadata.name"],
            GATEWAY_NAMESPACE
        );
        let egress = &spec.egress.unwrap()[0].to.clone().unwrap();
        let v4 = egress[1].ip_block.as_ref().unwrap();
        assert!(
            v4.except
                .as_ref()
                .unwrap()
                .contains(&"169.254.0.0/16".to_owned())
        );
    }

    #[test]
    fn the_secret_holds_the_namespace_key() {
        let key = AdmissionKey::from_bytes([7; 32]);
        let secret = engine_api_key_secret("mf-acme", &key);
        assert_eq!(
            secret.data.unwrap()[ENGINE_API_KEY_FIELD].0,
            key.engine_api_key("mf-acme").into_bytes()
        );
    }
}
