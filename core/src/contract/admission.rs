//! How the hub tells the operators whether a ModelDeployment may run: it
//! writes these annotations on every ModelDeployment of the clusters it
//! manages — `admitted` on those it places itself or admits against the
//! tenant's quota, `rejected` with a reason and message on the others. An
//! operator started with `require_admission` runs only admitted ones.

use super::condition::reason;

/// `admitted` or `rejected`; absent while the hub has not decided.
pub const ANNOTATION: &str = "modelfleet.io/admission";
/// Why it was rejected, one CamelCase word (`QuotaExceeded`, `NoTenant`).
pub const REASON_ANNOTATION: &str = "modelfleet.io/admission-reason";
/// The rejection in words, e.g. which quota limit and by how much.
pub const MESSAGE_ANNOTATION: &str = "modelfleet.io/admission-message";
pub const ADMITTED: &str = "admitted";
pub const REJECTED: &str = "rejected";
/// Over the tenant's quota.
pub const REASON_QUOTA_EXCEEDED: &str = "QuotaExceeded";
/// The tenant's budget refuses at its limit, and this month's spend has
/// reached it.
pub const REASON_BUDGET_EXHAUSTED: &str = "BudgetExhausted";
/// In a namespace no tenant is mapped to.
pub const REASON_NO_TENANT: &str = "NoTenant";
/// The tenant already has a deployment of that name elsewhere.
pub const REASON_NAME_TAKEN: &str = "NameTaken";
/// The spec cannot be planned whatever the cluster (as the operator says).
pub const REASON_INVALID_SPEC: &str = reason::INVALID_SPEC;
/// Cannot be planned on the cluster's pools (so not counted either).
pub const REASON_NO_FEASIBLE_PLAN: &str = reason::NO_FEASIBLE_PLAN;
