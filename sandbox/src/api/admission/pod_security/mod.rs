//! Pod Security admission, the built-in plugin: a namespace's
//! `pod-security.kubernetes.io/enforce` level refuses pods that violate
//! it; its `warn` level (which defaults to a stricter enforce level) adds
//! a `Warning` to pod and Deployment writes that would.

pub mod baseline;
pub mod checks;
pub mod restricted;

use serde_json::{Map, Value};

use self::checks::Violation;

pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a policy version (`latest` or `v1.N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl std::fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// A namespace's enforce and warn levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub warn: LevelVersion,
}

fn version_of(labels: &Map<String, Value>, mode: &str) -> Option<String> {
    labels
        .get(&format!("pod-security.kubernetes.io/{mode}-version"))
        .and_then(Value::as_str)
        .filter(|v| *v == "latest" || v.starts_with('v'))
        .map(str::to_owned)
}

/// The policy the labels ask for (the real `PolicyToEvaluate`); absent or
/// unreadable levels are `privileged`.
pub fn policy(labels: &Map<String, Value>) -> Policy {
    let level = |label: &str| {
        labels
            .get(label)
            .and_then(Value::as_str)
            .and_then(Level::parse)
    };
    let latest = || "latest".to_owned();
    let enforce_level = level(ENFORCE_LABEL);
    let enforce = LevelVersion {
        level: enforce_level.unwrap_or(Level::Privileged),
        version: version_of(labels, "enforce").unwrap_or_else(latest),
    };
    let warn_version = version_of(labels, "warn");
    let mut warn = LevelVersion {
        level: level(WARN_LABEL).unwrap_or(Level::Privileged),
        version: warn_version.clone().unwrap_or_else(latest),
    };
    // Warn defaults to an explicitly set, more restrictive enforce level.
    if !labels.contains_key(WARN_LABEL) && enforce_level.is_some() && enforce.level > warn.level {
        warn.level = enforce.level;
        if warn_version.is_none() {
            warn.version = enforce.version.clone();
        }
    }
    Policy { enforce, warn }
}

type Check = fn(&Value, &Value) -> Option<Violation>;

/// Baseline checks then restricted ones, each group in check-ID order,
/// as the real registry orders them.
const BASELINE: &[(&str, Check)] = &[
    ("appArmorProfile", baseline::app_armor_profile),
    ("capabilities_baseline", baseline::capabilities_baseline),
    ("hostNamespaces", baseline::host_namespaces),
    ("hostPathVolumes", baseline::host_path_volumes),
    ("hostPorts", baseline::host_ports),
    ("privileged", baseline::privileged),
    ("procMount", baseline::proc_mount),
    ("seLinuxOptions", baseline::se_linux_options),
    (
        "seccompProfile_baseline",
        baseline::seccomp_profile_baseline,
    ),
    ("sysctls", baseline::sysctls),
];

const RESTRICTED: &[(&str, Check)] = &[
    (
        "allowPrivilegeEscalation",
        restricted::allow_privilege_escalation,
    ),
    (
        "capabilities_restricted",
        restricted::capabilities_restricted,
    ),
    ("restrictedVolumes", restricted::restricted_volumes),
    ("runAsNonRoot", restricted::run_as_non_root),
    ("runAsUser", restricted::run_as_user),
    (
        "seccompProfile_restricted",
        restricted::seccomp_profile_restricted,
    ),
];

/// Baseline checks a restricted check replaces.
const OVERRIDDEN: &[&str] = &[
    "capabilities_baseline",
    "hostPathVolumes",
    "seccompProfile_baseline",
];

/// Every violation of `level` by a pod's metadata and spec, in order.
pub fn evaluate(level: Level, metadata: &Value, spec: &Value) -> Vec<Violation> {
    let checks: Vec<Check> = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => BASELINE.iter().map(|(_, c)| *c).collect(),
        Level::Restricted => BASELINE
            .iter()
            .filter(|(id, _)| !OVERRIDDEN.contains(id))
            .chain(RESTRICTED)
            .map(|(_, c)| *c)
            .collect(),
    };
    checks.iter().filter_map(|c| c(metadata, spec)).collect()
}

/// `reason (detail), reason (detail)`, the real `ForbiddenDetail`.
pub fn forbidden_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|(reason, detail)| {
            if detail.is_empty() {
                reason.clone()
            } else {
                format!("{reason} ({detail})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the plugin decides for one pod (or pod template).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `violates PodSecurity "baseline:latest": …`, for a refused pod.
    pub forbidden: Option<String>,
    pub warnings: Vec<String>,
}

/// A pod: enforce refuses, and only an accepted pod gets warnings. A pod
/// template (`controller`): enforce is not applied, warn is.
pub fn admit(policy: &Policy, metadata: &Value, spec: &Value, controller: bool) -> Outcome {
    let mut outcome = Outcome::default();
    if !controller {
        let violations = evaluate(policy.enforce.level, metadata, spec);
        if !violations.is_empty() {
            outcome.forbidden = Some(format!(
                "violates PodSecurity \"{}\": {}",
                policy.enforce,
                forbidden_detail(&violations)
            ));
            return outcome;
        }
    }
    let violations = evaluate(policy.warn.level, metadata, spec);
    if !violations.is_empty() {
        outcome.warnings.push(format!(
            "would violate PodSecurity \"{}\": {}",
            policy.warn,
            forbidden_detail(&violations)
        ));
    }
    outcome
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
