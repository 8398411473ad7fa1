//! The principal behind a request, the tenant scope it is confined to, and
//! the check every store function makes before it touches a row.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::role::{Permission, Role};
use crate::ids::{ApiKeyId, AuditId, TenantId, UserId};

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Principal {
    User {
        id: UserId,
        username: String,
    },
    ApiKey {
        id: ApiKeyId,
        prefix: String,
        /// The key calls models and nothing else.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        inference_only: bool,
    },
    /// The hub itself: bootstrap, cluster sync, failover, sign-in.
    System {
        component: &'static str,
    },
    /// A request that did not authenticate (recorded when it is refused).
    Anonymous,
}

/// Where a request came from, for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The request's id in the audit trail, chosen by the hub (unlike
    /// `request_id`, which a client may set).
    pub audit_id: Option<AuditId>,
    pub received_at: Option<DateTime<Utc>>,
    /// The path and query, as `requestURI`.
    pub request_uri: Option<String>,
    /// A refusal of this request is counted in its source's window record
    /// (`service::throttle`) rather than recorded on its own.
    #[serde(skip)]
    pub refusal_counted: bool,
}

/// A principal with its tenant and role: what every store call runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub principal: Principal,
    /// `None` for platform staff and the hub itself.
    pub tenant: Option<TenantId>,
    pub role: Role,
    pub origin: Origin,
}

/// The rows a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant's rows: platform staff and the hub itself.
    All,
    Tenant(TenantId),
}

impl Scope {
    pub fn allows(self, tenant: TenantId) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(own) => own == tenant,
        }
    }

    /// The tenant to filter by, `None` for all.
    pub fn tenant(self) -> Option<TenantId> {
        match self {
            Scope::All => None,
            Scope::Tenant(t) => Some(t),
        }
    }
}

/// Why an actor may not act on a tenant's object. `NotFound` for another
/// tenant's objects, so their existence does not leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("not found")]
    NotFound,
    #[error("your role does not allow this")]
    Forbidden,
}

impl Actor {
    /// The hub acting on its own behalf (bootstrap, cluster sync).
    pub fn system(component: &'static str) -> Actor {
        Actor {
            principal: Principal::System { component },
            tenant: None,
            role: Role::PlatformAdmin,
            origin: Origin::default(),
        }
    }

    /// Whoever sent a request that did not authenticate.
    pub fn anonymous(origin: Origin) -> Actor {
        Actor {
            principal: Principal::Anonymous,
            tenant: None,
            role: Role::Viewer,
            origin,
        }
    }

    /// The hub finishing or undoing, on its own account, what a request
    /// started after the request's own transaction committed (recording
    /// what a cluster answered, putting a quota back when a cluster
    /// refused). Its records keep the request's id, source and agent but
    /// are not the request's record.
    pub fn follow_up(&self, component: &'static str) -> Actor {
        Actor::system(component).with_origin(Origin {
            audit_id: None,
            received_at: None,
            ..self.origin.clone()
        })
    }

    pub fn with_origin(mut self, origin: Origin) -> Actor {
        self.origin = origin;
        self
    }

    pub fn scope(&self) -> Scope {
        match self.tenant {
            None => Scope::All,
            Some(t) => Scope::Tenant(t),
        }
    }

    /// May this actor do `permission` on an object of `tenant`?
    pub fn check(&self, tenant: TenantId, permission: Permission) -> Result<(), Denied> {
        if !self.scope().allows(tenant) {
            return Err(Denied::NotFound);
        }
        self.check_role(permission)
    }

    /// May this actor do `permission` at all (platform-wide actions)?
    pub fn check_role(&self, permission: Permission) -> Result<(), Denied> {
        let limited = matches!(
            self.principal,
            Principal::ApiKey {
                inference_only: true,
                ..
            }
        );
        if limited && permission != Permission::Infer {
            return Err(Denied::Forbidden);
        }
        if self.role.grants(permission) {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(tenant: TenantId, role: Role) -> Actor {
        Actor {
            principal: Principal::User {
                id: UserId::new(),
                username: "ana".into(),
            },
            tenant: Some(tenant),
            role,
            origin: Origin::default(),
        }
    }

    #[test]
    fn another_tenant_is_not_found_own_tenant_is_role_checked() {
        let (a, b) = (TenantId::new(), TenantId::new());
        let dev = member(a, Role::Developer);
        assert_eq!(dev.check(b, Permission::Read), Err(Denied::NotFound));
        assert_eq!(dev.check(a, Permission::Deploy), Ok(()));
        assert_eq!(
            dev.check(a, Permission::ManageTenant),
            Err(Denied::Forbidden)
        );
        // Even a platform-wide permission does not let a tenant admin out.
        let admin = member(a, Role::TenantAdmin);
        assert_eq!(admin.check(b, Permission::Read), Err(Denied::NotFound));
        assert_eq!(Actor::system("test").check(b, Permission::Deploy), Ok(()));
    }
}
