//! Who is asking and what they may do: bearer-token authentication
//! (`authn`), the RBAC authorizer over the Roles, ClusterRoles and their
//! bindings in the store (`rbac` holds the pure rule matching), the
//! escalation checks RBAC's own storage makes (`escalation`), the access
//! reviews (`reviews`), and the bootstrap policy (`bootstrap`).

pub mod authn;
pub mod bootstrap;
pub mod escalation;
pub mod impersonation;
pub mod rbac;
pub mod reviews;

use serde_json::Value;

use self::rbac::{Attributes, PolicyRule, applies_to, describe_subject, rule_allows};
use super::ops::State;
use super::registry::GroupResource;

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The group the real server allows everything, without consulting RBAC.
pub const MASTERS: &str = "system:masters";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn new(name: &str, groups: &[&str]) -> Self {
        UserInfo {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    pub fn anonymous() -> Self {
        Self::new("system:anonymous", &[UNAUTHENTICATED])
    }

    /// The loopback identity the server's own clients use.
    pub fn loopback() -> Self {
        Self::new("system:apiserver", &[MASTERS, AUTHENTICATED])
    }

    /// Members of `system:masters` are allowed everything, and exempt
    /// from RBAC's escalation checks.
    pub fn is_privileged(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn rbac(resource: &str) -> GroupResource {
    GroupResource::new(RBAC_GROUP, resource)
}

/// The rules a binding's `roleRef` grants, or the lister's NotFound text.
pub fn role_ref_rules(
    state: &State,
    role_ref: &Value,
    namespace: &str,
) -> Result<Vec<PolicyRule>, String> {
    let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
    let (resource, singular, key) = match role_ref.get("kind").and_then(Value::as_str) {
        Some("Role") => ("roles", "role", (namespace.to_owned(), name.to_owned())),
        Some("ClusterRole") => (
            "clusterroles",
            "clusterrole",
            (String::new(), name.to_owned()),
        ),
        other => {
            return Err(format!(
                "unsupported role reference kind: {:?}",
                other.unwrap_or("")
            ));
        }
    };
    state
        .store
        .get(&rbac(resource), &key)
        .map(PolicyRule::rules_of)
        .ok_or_else(|| format!("{singular}.{RBAC_GROUP} {} not found", rbac::quote(name)))
}

/// Visits every rule that applies to `user` in `namespace` (ClusterRole
/// bindings first, then the namespace's RoleBindings), as the real
/// `VisitRulesFor`: the visitor gets a description of where the rule
/// comes from and returns false to stop. Returns the resolution errors.
pub fn visit_rules(
    state: &State,
    user: &UserInfo,
    namespace: &str,
    visitor: &mut dyn FnMut(&str, &PolicyRule) -> bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut sources: Vec<(&Value, String)> = Vec::new();
    for binding in state.store.list(&rbac("clusterrolebindings"), None) {
        if let Some(subject) = subjects(binding).find(|s| applies_to(user, s, "")) {
            let source = format!(
                "ClusterRoleBinding {} of {} to {}",
                rbac::quote(field(binding, "/metadata/name")),
                role_description(binding),
                describe_subject(subject, "")
            );
            sources.push((binding, source));
        }
    }
    if !namespace.is_empty() {
        for binding in state.store.list(&rbac("rolebindings"), Some(namespace)) {
            if let Some(subject) = subjects(binding).find(|s| applies_to(user, s, namespace)) {
                let source = format!(
                    "RoleBinding {} of {} to {}",
                    rbac::quote(&format!("{}/{namespace}", field(binding, "/metadata/name"))),
                    role_description(binding),
                    describe_subject(subject, namespace)
                );
                sources.push((binding, source));
            }
        }
    }
    for (binding, source) in sources {
        let binding_ns = field(binding, "/metadata/namespace");
        let role_ref = binding.get("roleRef").cloned().unwrap_or(Value::Null);
        match role_ref_rules(state, &role_ref, binding_ns) {
            Ok(rules) => {
                for rule in &rules {
                    if !visitor(&source, rule) {
                        return errors;
                    }
                }
            }
            Err(error) => errors.push(error),
        }
    }
    errors
}

fn field<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn role_description(binding: &Value) -> String {
    format!(
        "{} {}",
        field(binding, "/roleRef/kind"),
        rbac::quote(field(binding, "/roleRef/name"))
    )
}

fn subjects(binding: &Value) -> impl Iterator<Item = &Value> {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Every rule `user` holds in `namespace`, and the resolution errors.
pub fn rules_for(
    state: &State,
    user: &UserInfo,
    namespace: &str,
) -> (Vec<PolicyRule>, Vec<String>) {
    let mut rules = Vec::new();
    let errors = visit_rules(state, user, namespace, &mut |_, rule| {
        rules.push(rule.clone());
        true
    });
    (rules, errors)
}

/// The authorizer chain of this server: `system:masters`, then RBAC.
pub fn authorize(state: &State, user: &UserInfo, attrs: &Attributes) -> Decision {
    if user.is_privileged() {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut allowed_by = None;
    let errors = visit_rules(state, user, attrs.namespace(), &mut |source, rule| {
        if rule_allows(attrs, rule) {
            allowed_by = Some(format!("RBAC: allowed by {source}"));
            false
        } else {
            true
        }
    });
    match allowed_by {
        Some(reason) => Decision {
            allowed: true,
            reason,
        },
        None => Decision {
            allowed: false,
            reason: if errors.is_empty() {
                String::new()
            } else {
                format!("RBAC: {}", aggregate(&errors))
            },
        },
    }
}

/// How Go's `utilerrors.NewAggregate` prints a list of errors.
pub fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}
