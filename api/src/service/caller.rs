//! Who calls a service operation: the acting principal and, for a person
//! signed in, their session. Every operation takes one and checks the role
//! and the tenant scope itself, whoever the caller came through (the REST
//! API, the console, a background loop acting for the system).

use crate::identity::{Actor, Permission, Scope};
use crate::ids::{SessionId, TenantId};
use crate::service::Error;

#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub session: Option<SessionId>,
}

impl Caller {
    pub fn scope(&self) -> Scope {
        self.actor.scope()
    }

    /// The tenant an operation acts on: a tenant's own, or the one platform
    /// staff name. Another tenant's is "not found", as if it did not exist.
    pub fn tenant(&self, named: Option<TenantId>) -> Result<TenantId, Error> {
        match (self.actor.tenant, named) {
            (Some(own), None) => Ok(own),
            (Some(own), Some(named)) if named == own => Ok(own),
            (Some(_), Some(_)) => Err(Error::not_found("tenant")),
            (None, Some(named)) => Ok(named),
            (None, None) => Err(Error::invalid(
                "tenant",
                "platform staff act on a tenant they name: give its id",
            )),
        }
    }

    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        self.actor
            .check_role(permission)
            .map_err(|_| Error::forbidden())
    }
}
