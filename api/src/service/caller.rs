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
    /// What a signed-in person must do before anything else, if anything:
    /// every other operation is refused until they have.
    pub pending: Option<Pending>,
}

/// What a person's session is held to until they do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Choose their own password (the first-start admin, or after an
    /// administrator reset it): they may only change it, look at their
    /// own account and sign out. Everything else answers
    /// [`Error::password_change_required`].
    PasswordChange,
    /// Enrol a second factor their role (or their tenant) requires: they
    /// may only enrol, look at their own account, change their password
    /// and sign out. Everything else answers
    /// [`Error::second_factor_required`].
    SecondFactor,
}

impl Pending {
    /// The refusal of everything else.
    pub fn refusal(self) -> Error {
        match self {
            Pending::PasswordChange => Error::password_change_required(),
            Pending::SecondFactor => Error::second_factor_required(),
        }
    }
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
        if let Some(pending) = self.pending {
            return Err(pending.refusal());
        }
        self.actor
            .check_role(permission)
            .map_err(|_| Error::forbidden())
    }
}
