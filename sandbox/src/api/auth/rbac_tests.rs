use serde_json::json;

use super::*;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
    PolicyRule {
        verbs: v(verbs),
        api_groups: v(groups),
        resources: v(resources),
        resource_names: v(names),
        non_resource_urls: Vec::new(),
    }
}

fn request(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
    Attributes::Resource(ResourceAttributes {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: "team-a".into(),
        name: name.into(),
    })
}

#[test]
fn rules_match_verbs_groups_resources_subresources_and_names() {
    let deployments = rule(&["apps"], &["deployments"], &["get", "create"], &[]);
    assert!(rule_allows(
        &request("create", "apps", "deployments", "", ""),
        &deployments
    ));
    assert!(!rule_allows(
        &request("delete", "apps", "deployments", "", "x"),
        &deployments
    ));
    assert!(!rule_allows(
        &request("get", "", "deployments", "", "x"),
        &deployments
    ));
    // A subresource needs its own rule, or `*/sub`, or `*`.
    assert!(!rule_allows(
        &request("get", "apps", "deployments", "scale", "x"),
        &deployments
    ));
    let scale = rule(&["apps"], &["*/scale"], &["update"], &[]);
    assert!(rule_allows(
        &request("update", "apps", "deployments", "scale", "x"),
        &scale
    ));
    assert!(!rule_allows(
        &request("update", "apps", "deployments", "", "x"),
        &scale
    ));
    let all = rule(&["*"], &["*"], &["*"], &[]);
    assert!(rule_allows(
        &request("patch", "modelfleet.io", "modeldeployments", "status", "m"),
        &all
    ));
    // resourceNames: only the named objects, never a list or a create.
    let named = rule(&[""], &["configmaps"], &["get", "list"], &["cfg"]);
    assert!(rule_allows(
        &request("get", "", "configmaps", "", "cfg"),
        &named
    ));
    assert!(!rule_allows(
        &request("get", "", "configmaps", "", "other"),
        &named
    ));
    assert!(!rule_allows(
        &request("list", "", "configmaps", "", ""),
        &named
    ));
}

#[test]
fn non_resource_urls_match_exactly_or_by_trailing_star() {
    let discovery = PolicyRule {
        verbs: vec!["get".into()],
        non_resource_urls: vec!["/api".into(), "/apis/*".into()],
        ..PolicyRule::default()
    };
    let get = |path: &str| Attributes::NonResource {
        verb: "get".into(),
        path: path.into(),
    };
    assert!(rule_allows(&get("/api"), &discovery));
    assert!(rule_allows(&get("/apis/apps/v1"), &discovery));
    assert!(!rule_allows(&get("/api/v1"), &discovery));
    assert!(!rule_allows(
        &request("get", "", "pods", "", ""),
        &discovery
    ));
}

#[test]
fn subjects_match_users_groups_and_service_accounts() {
    let sa = UserInfo::new(
        "system:serviceaccount:team-a:bot",
        &["system:serviceaccounts", "system:authenticated"],
    );
    assert!(applies_to(
        &sa,
        &json!({"kind": "ServiceAccount", "name": "bot"}),
        "team-a"
    ));
    assert!(!applies_to(
        &sa,
        &json!({"kind": "ServiceAccount", "name": "bot"}),
        ""
    ));
    assert!(applies_to(
        &sa,
        &json!({"kind": "ServiceAccount", "name": "bot", "namespace": "team-a"}),
        "kube-system"
    ));
    assert!(applies_to(
        &sa,
        &json!({"kind": "Group", "name": "system:authenticated"}),
        ""
    ));
    assert!(!applies_to(
        &sa,
        &json!({"kind": "User", "name": "bot"}),
        ""
    ));
    assert_eq!(
        describe_subject(&json!({"kind": "ServiceAccount", "name": "bot"}), "team-a"),
        "ServiceAccount \"bot/team-a\""
    );
}

#[test]
fn denials_are_worded_as_the_real_server_words_them() {
    let user = "system:serviceaccount:modelfleet-system:modelfleet-operator";
    let mut attrs = request("patch", "apps", "deployments", "", "x");
    if let Attributes::Resource(r) = &mut attrs {
        r.namespace = "kube-system".into();
    }
    let error = denied(user, &attrs, "");
    assert_eq!(
        error.message,
        "deployments.apps \"x\" is forbidden: User \"system:serviceaccount:modelfleet-system:modelfleet-operator\" \
         cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"kube-system\""
    );
    assert_eq!(error.code, 403);
    assert_eq!(
        error.to_status()["details"],
        json!({"name": "x", "group": "apps", "kind": "deployments"})
    );
    let pods = Attributes::Resource(ResourceAttributes {
        verb: "list".into(),
        resource: "pods".into(),
        ..ResourceAttributes::default()
    });
    assert_eq!(
        denied("u", &pods, "").message,
        "pods is forbidden: User \"u\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
    let scale = request("update", "apps", "deployments", "scale", "");
    assert!(
        denied("u", &scale, "")
            .message
            .contains("cannot update resource \"deployments/scale\"")
    );
    let path = Attributes::NonResource {
        verb: "get".into(),
        path: "/apis".into(),
    };
    let error = denied("system:anonymous", &path, "");
    assert_eq!(
        error.message,
        "forbidden: User \"system:anonymous\" cannot get path \"/apis\""
    );
    assert_eq!(error.to_status()["details"], json!({}));
}
