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

#[test]
fn held_rules_cover_requested_tuples_and_stars_only_by_stars() {
    let held = [rule(
        &["apps"],
        &["deployments", "*/scale"],
        &["get", "list"],
        &[],
    )];
    assert!(covers(&held, &[rule(&["apps"], &["deployments"], &["get"], &[])]).0);
    assert!(
        covers(
            &held,
            &[rule(&["apps"], &["deployments/scale"], &["list"], &[])]
        )
        .0
    );
    assert!(
        covers(
            &held,
            &[rule(&["apps"], &["deployments"], &["get"], &["web"])]
        )
        .0
    );
    let (ok, missing) = covers(
        &held,
        &[rule(&["apps"], &["deployments"], &["get", "delete"], &[])],
    );
    assert!(!ok);
    assert_eq!(
        missing,
        [rule(&["apps"], &["deployments"], &["delete"], &[])]
    );
    // A `*` asked for is covered only by a `*` held.
    assert!(!covers(&held, &[rule(&["apps"], &["*"], &["get"], &[])]).0);
    assert!(!covers(&held, &[rule(&["*"], &["deployments"], &["get"], &[])]).0);
    let admin = [rule(&["*"], &["*"], &["*"], &[])];
    assert!(covers(&admin, &[rule(&["*"], &["*"], &["*"], &[])]).0);
    // Held resourceNames cover only those names.
    let named = [rule(&[""], &["secrets"], &["get"], &["a"])];
    assert!(covers(&named, &[rule(&[""], &["secrets"], &["get"], &["a"])]).0);
    assert!(!covers(&named, &[rule(&[""], &["secrets"], &["get"], &[])]).0);
}

#[test]
fn the_refusal_lists_the_missing_rules_compacted() {
    let user = UserInfo::new("alice", &["dev", "system:authenticated"]);
    let held = [rule(&[""], &["configmaps"], &["*"], &[])];
    let asked = [rule(
        &[""],
        &["secrets", "configmaps"],
        &["get", "list"],
        &[],
    )];
    let message = confirm_no_escalation(&user, &held, &asked, &[]).unwrap_err();
    assert_eq!(
        message,
        "user \"alice\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n\
         {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}"
    );
    assert!(confirm_no_escalation(&user, &held, &held, &[]).is_ok());
}
