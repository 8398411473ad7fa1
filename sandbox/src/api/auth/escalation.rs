//! Escalation prevention, as RBAC's storage does it: a user may only
//! write a role, or bind one, whose every permission they already hold.
//! Rules are broken down into single (group, resource, verb, name)
//! tuples; each must be covered by one of the user's rules, where a `*`
//! asked for is covered only by a `*` held.

use std::collections::{BTreeMap, BTreeSet};

use super::UserInfo;
use super::rbac::{PolicyRule, quote, quote_list};

/// One rule per (group, resource, verb, resourceName) and per
/// (nonResourceURL, verb), as the real `BreakdownRule`.
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: one(verb),
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: one(name),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: one(verb),
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| set.contains(w))
}

fn resource_covers_all(held: &[String], wanted: &[String]) -> bool {
    if held.iter().any(|r| r == "*") || has_all(held, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        held.contains(path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| held.contains(&format!("*/{sub}")))
    })
}

fn urls_cover_all(held: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| {
        held.iter()
            .any(|h| h == "*" || h == w || h.strip_suffix('*').is_some_and(|p| w.starts_with(p)))
    })
}

/// Whether `owner` covers the single rule `sub` (the real `ruleCovers`).
pub fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let star = |l: &[String]| l.iter().any(|v| v == "*");
    let verbs = star(&owner.verbs) || has_all(&owner.verbs, &sub.verbs);
    let groups = star(&owner.api_groups) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resource_covers_all(&owner.resources, &sub.resources);
    let urls = urls_cover_all(&owner.non_resource_urls, &sub.non_resource_urls);
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && urls && names
}

/// Whether `owned` covers every rule of `requested`, and what is missing.
pub fn covers(owned: &[PolicyRule], requested: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let missing: Vec<PolicyRule> = requested
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owned.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (missing.is_empty(), missing)
}

/// Merges the verbs of single-group, single-resource rules (the real
/// `CompactRules`).
pub fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut simple: BTreeMap<(String, String, Option<String>), PolicyRule> = BTreeMap::new();
    for rule in rules {
        let is_simple = rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1
            && rule.resource_names.len() <= 1;
        if !is_simple {
            out.push(rule);
            continue;
        }
        let key = (
            rule.api_groups[0].clone(),
            rule.resources[0].clone(),
            rule.resource_names.first().cloned(),
        );
        match simple.get_mut(&key) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => {
                simple.insert(key, rule);
            }
        }
    }
    out.extend(simple.into_values());
    out
}

/// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}`.
pub fn compact_string(rule: &PolicyRule) -> String {
    let parts: Vec<String> = [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ]
    .into_iter()
    .filter(|(_, list)| !list.is_empty())
    .map(|(name, list)| format!("{name}:{}", quote_list(list)))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The real `ConfirmNoEscalation`: Ok when `owned` covers `requested`,
/// otherwise the message the 403 carries.
pub fn confirm_no_escalation(
    user: &UserInfo,
    owned: &[PolicyRule],
    requested: &[PolicyRule],
    resolution_errors: &[String],
) -> Result<(), String> {
    let (covered, missing) = covers(owned, requested);
    if covered {
        return Ok(());
    }
    let descriptions: BTreeSet<String> = compact(missing).iter().map(compact_string).collect();
    let mut message = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        quote(&user.name),
        quote_list(&user.groups),
        descriptions.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !resolution_errors.is_empty() {
        // One aggregated error in a list, as Go prints `[]error{agg}`.
        message.push_str(&format!(
            "; resolution errors: [{}]",
            super::aggregate(resolution_errors)
        ));
    }
    Err(message)
}

#[cfg(test)]
#[path = "escalation_tests.rs"]
mod tests;
