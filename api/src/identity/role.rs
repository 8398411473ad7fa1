//! Roles and what each grants. One role per account keeps the separation of
//! duties MLPS 2.0 asks for (system, security and audit administrators are
//! different people): an auditor can read the audit trail and change
//! nothing; a platform admin runs the platform.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Platform staff: tenants, quotas, clusters, prices. Has no tenant.
    PlatformAdmin,
    /// Manages one tenant's users, keys and deployments.
    TenantAdmin,
    /// Deploys and changes models in one tenant.
    Developer,
    /// Reads the audit trail and compliance reports; changes nothing.
    Auditor,
    /// Reads one tenant's deployments and usage.
    Viewer,
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Create tenants, set quotas, register clusters, set prices.
    ManagePlatform,
    /// Create users and API keys, revoke keys, within a tenant.
    ManageTenant,
    /// Admit, resize and release deployments.
    Deploy,
    /// Read a tenant's objects.
    Read,
    /// Read audit records and compliance reports.
    ReadAudit,
    /// Call the tenant's models through the inference gateway (which
    /// spends its money, so not a reader's right).
    Infer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Developer,
        Role::Auditor,
        Role::Viewer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform-admin",
            Role::TenantAdmin => "tenant-admin",
            Role::Developer => "developer",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }

    pub fn grants(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::PlatformAdmin => true,
            Role::TenantAdmin => {
                matches!(permission, ManageTenant | Deploy | Read | ReadAudit | Infer)
            }
            Role::Developer => matches!(permission, Deploy | Read | Infer),
            Role::Auditor => matches!(permission, Read | ReadAudit),
            Role::Viewer => matches!(permission, Read),
        }
    }

    /// Whether an account with this role must belong to a tenant (`Some`),
    /// must not (`Some(false)`), or may either (`None`: auditors can audit
    /// the whole platform or one tenant).
    pub fn needs_tenant(self) -> Option<bool> {
        match self {
            Role::PlatformAdmin => Some(false),
            Role::TenantAdmin | Role::Developer | Role::Viewer => Some(true),
            Role::Auditor => None,
        }
    }

    /// The first right this role grants that `holder`'s does not: why
    /// someone with `holder`'s role may not hand this role out (to a key or
    /// a user) — nobody gives more than they have.
    pub fn beyond(self, holder: Role) -> Option<Permission> {
        use Permission::*;
        [ManagePlatform, ManageTenant, Deploy, Read, ReadAudit, Infer]
            .into_iter()
            .find(|&p| self.grants(p) && !holder.grants(p))
    }

    /// Roles that must sign in with a second factor (MLPS L3-CES1-04).
    pub fn needs_second_factor(self) -> bool {
        matches!(
            self,
            Role::PlatformAdmin | Role::TenantAdmin | Role::Auditor
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; use platform-admin, tenant-admin, developer, auditor or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditor_and_viewer_change_nothing() {
        for role in [Role::Auditor, Role::Viewer] {
            for p in [
                Permission::ManagePlatform,
                Permission::ManageTenant,
                Permission::Deploy,
            ] {
                assert!(!role.grants(p), "{role} must not have {p:?}");
            }
            assert!(role.grants(Permission::Read));
        }
        assert!(Role::Auditor.grants(Permission::ReadAudit));
        assert!(!Role::Developer.grants(Permission::ReadAudit));
        assert!(!Role::TenantAdmin.grants(Permission::ManagePlatform));
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
