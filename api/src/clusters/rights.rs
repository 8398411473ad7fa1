//! What a registered kubeconfig may do in its cluster, against what the
//! hub needs there: the ClusterRole of `manifests/hub-member/`, read from
//! that very file so the two cannot drift. A kubeconfig that can do more
//! (cluster-admin is the usual one) works, but a stolen copy of it would be
//! worth a whole cluster; the hub says so on the cluster and in the
//! compliance report.
//!
//! The check is a SelfSubjectRulesReview in `kube-system`, a namespace no
//! tenant uses: what the identity may do there is what it may do
//! cluster-wide plus anything bound in `kube-system` itself.

use k8s_openapi::api::authorization::v1::{
    ResourceRule, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, PostParams};
use serde::Deserialize;

use super::{ClusterError, timed};

/// The hub's RBAC for a member cluster, as shipped.
const HUB_MEMBER_RBAC: &str = include_str!("../../../manifests/hub-member/00-rbac.yaml");
/// Its ClusterRole's name.
const HUB_ROLE: &str = "modelfleet-hub";
/// The namespace the review asks about.
const REVIEWED_NAMESPACE: &str = "kube-system";
/// At most this many excess rights are listed; the rest are counted.
const LISTED: usize = 20;

/// What a kubeconfig may do beyond the hub's role, one right per entry
/// (`create deployments.apps`, `get secrets`, `* *.*`), or why that could
/// not be told.
pub type Excess = Result<Vec<String>, String>;

/// The rules the hub needs: its ClusterRole, plus the self-reviews every
/// authenticated identity may create (`system:basic-user`).
pub fn needed() -> Vec<PolicyRule> {
    let mut rules: Vec<PolicyRule> = serde_yaml::Deserializer::from_str(HUB_MEMBER_RBAC)
        .filter_map(|doc| ClusterRole::deserialize(doc).ok())
        .find(|role| role.metadata.name.as_deref() == Some(HUB_ROLE))
        .and_then(|role| role.rules)
        .expect("manifests/hub-member/00-rbac.yaml holds the hub's ClusterRole");
    for (group, resources) in [
        (
            "authorization.k8s.io",
            vec!["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        ),
        ("authentication.k8s.io", vec!["selfsubjectreviews"]),
    ] {
        rules.push(PolicyRule {
            api_groups: Some(vec![group.to_owned()]),
            resources: Some(resources.into_iter().map(str::to_owned).collect()),
            verbs: vec!["create".to_owned()],
            ..PolicyRule::default()
        });
    }
    rules
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item || x == "*")
}

/// Whether `needed` grants `verb` on `group`/`resource`, for every object
/// (`name` None) or the one named. A `*` in what was granted is covered
/// only by a `*` in what is needed, as RBAC's own escalation check does.
fn covered(
    needed: &[PolicyRule],
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    needed.iter().any(|rule| {
        has(rule.api_groups.as_deref().unwrap_or_default(), group)
            && has(rule.resources.as_deref().unwrap_or_default(), resource)
            && has(&rule.verbs, verb)
            && match rule.resource_names.as_deref() {
                None | Some([]) => true,
                Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
            }
    })
}

/// Every right in `granted` that `needed` does not cover.
pub fn excess(granted: &[ResourceRule], needed: &[PolicyRule]) -> Vec<String> {
    let mut out = Vec::new();
    for rule in granted {
        let names: Vec<Option<&str>> = match rule.resource_names.as_deref() {
            None | Some([]) => vec![None],
            Some(names) => names.iter().map(|n| Some(n.as_str())).collect(),
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        if !covered(needed, group, resource, verb, *name) {
                            let what = if group.is_empty() {
                                resource.clone()
                            } else {
                                format!("{resource}.{group}")
                            };
                            out.push(match name {
                                Some(n) => format!("{verb} {what} {n:?}"),
                                None => format!("{verb} {what}"),
                            });
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    if out.len() > LISTED {
        let more = out.len() - LISTED;
        out.truncate(LISTED);
        out.push(format!("and {more} more"));
    }
    out
}

/// Asks the cluster what this kubeconfig may do, and lists the excess.
pub(super) async fn check(cluster: &str, client: &kube::Client) -> Excess {
    let reviews: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(REVIEWED_NAMESPACE.to_owned()),
        },
        ..SelfSubjectRulesReview::default()
    };
    let answer = timed(
        cluster,
        "reviewing the kubeconfig's rights",
        reviews.create(&PostParams::default(), &review),
    )
    .await;
    let status = match answer {
        Ok(review) => review.status.unwrap_or_default(),
        Err(e @ ClusterError::Kube { .. }) => {
            tracing::warn!(%cluster, error = ?e, "cannot review the kubeconfig's rights");
            return Err(format!(
                "the cluster did not answer a SelfSubjectRulesReview ({e}), so the kubeconfig's rights are unknown"
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut found = excess(&status.resource_rules, &needed());
    if status.incomplete {
        found.push(
            "and possibly more: the cluster's authorizer could not list every rule".to_owned(),
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> ResourceRule {
        let own = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        ResourceRule {
            api_groups: own(groups),
            resources: own(resources),
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            resource_names: (!names.is_empty()).then(|| own(names).unwrap()),
        }
    }

    #[test]
    fn the_shipped_role_is_exactly_enough() {
        let needed = needed();
        let own: Vec<ResourceRule> = needed
            .iter()
            .map(|r| ResourceRule {
                api_groups: r.api_groups.clone(),
                resources: r.resources.clone(),
                verbs: r.verbs.clone(),
                resource_names: r.resource_names.clone(),
            })
            .collect();
        assert_eq!(excess(&own, &needed), Vec::<String>::new());
    }

    #[test]
    fn cluster_admin_and_narrower_excess_are_named() {
        let needed = needed();
        assert_eq!(
            excess(&[rule(&["*"], &["*"], &["*"], &[])], &needed),
            ["* *.*"]
        );
        assert_eq!(
            excess(
                &[rule(&["apps"], &["deployments"], &["create", "list"], &[])],
                &needed
            ),
            ["create deployments.apps", "list deployments.apps"]
        );
        assert_eq!(
            excess(&[rule(&[""], &["secrets"], &["get"], &[])], &needed),
            ["get secrets"]
        );
        // Binding another role than the operator's is more than needed.
        assert_eq!(
            excess(
                &[rule(
                    &["rbac.authorization.k8s.io"],
                    &["clusterroles"],
                    &["bind"],
                    &["cluster-admin"]
                )],
                &needed
            ),
            ["bind clusterroles.rbac.authorization.k8s.io \"cluster-admin\""]
        );
        assert_eq!(
            excess(
                &[rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings"],
                    &["patch"],
                    &[]
                )],
                &needed
            ),
            ["patch rolebindings.rbac.authorization.k8s.io"],
            "patching every binding is more than patching the operator's"
        );
        assert!(
            excess(&[rule(&[""], &["nodes"], &["list"], &[])], &needed).is_empty(),
            "what the role grants is not excess"
        );
    }
}
