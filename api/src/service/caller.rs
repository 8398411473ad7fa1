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
    /// A person whose role needs a second factor and who has none yet:
    /// until they enrol, they may only enrol and sign out. Every other
    /// operation answers [`Error::second_factor_required`].
    pub enrolment_only: bool,
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
        if self.enrolment_only {
            return Err(Error::second_factor_required());
        }
        self.actor
            .check_role(permission)
            .map_err(|_| Error::forbidden())
    }
}
