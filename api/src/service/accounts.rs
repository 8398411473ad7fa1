//! An account's life after it is created: a person's own account and
//! password, and what administrators do to others' — change a name or
//! role, disable, delete, unlock, give a temporary password, reset a lost
//! second factor (which takes the administrator's own), end sessions —
//! and the roles a tenant asks a second factor of. The store's half is
//! `store/accounts.rs`; creating users and keys and signing in are
//! [`super::access`]'s.

use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::access::{TotpCode, hash_password, no_more_than_own, person};
use super::{Caller, Error, Hub, Result};
use crate::identity::password;
use crate::identity::{Permission, Role};
use crate::ids::{TenantId, UserId};
use crate::secret::Secret;
use crate::store::{User, UserChange};

/// Changing one's own password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(format = Password)]
    pub current_password: String,
    /// At least 12 characters of three kinds, not a common password, not
    /// containing the user name, not the current one.
    #[schema(format = Password)]
    pub new_password: String,
}

/// An administrator's temporary password for someone else: they must
/// choose their own at their next sign-in.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetPassword {
    #[schema(format = Password)]
    pub new_password: String,
}

/// What an administrator changes of a user; what is left out stays.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUser {
    /// 1 to 200 characters.
    pub display_name: Option<String>,
    /// A role with no more rights than your own, that fits the user (a
    /// tenant's people cannot be platform admins, platform staff cannot
    /// have tenant roles). Not your own.
    #[schema(value_type = Option<crate::http::schema::RoleSchema>)]
    pub role: Option<Role>,
    /// `true` stops the account: it cannot sign in and its sessions end at
    /// once; `false` lets it sign in again. Not your own.
    pub disabled: Option<bool>,
}

/// The roles of a tenant's people who must sign in with a second factor,
/// on top of the platform's own setting.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecondFactorPolicy {
    /// Tenant roles: `tenant-admin`, `developer`, `auditor`, `viewer`;
    /// empty for none beyond the platform's.
    #[schema(value_type = Vec<crate::http::schema::RoleSchema>)]
    pub roles: Vec<Role>,
}

impl Hub {
    /// The signed-in person's own account.
    pub async fn me(&self, caller: &Caller) -> Result<User> {
        let id = person(caller)?;
        Ok(self.store.user(caller.scope(), id).await?)
    }

    /// Changes the signed-in person's password, given the current one. A
    /// wrong current password counts toward the account's lockout as a
    /// failed sign-in does (a stolen session cannot guess at it freely).
    /// Every other session of theirs ends.
    pub async fn change_password(&self, caller: &Caller, request: ChangePassword) -> Result<User> {
        let id = person(caller)?;
        let ChangePassword {
            current_password,
            new_password,
        } = request;
        let (current, new) = (Secret::new(current_password), Secret::new(new_password));
        let user = self.store.user(caller.scope(), id).await?;
        let stored = self.store.password_hash(id).await?;
        if !password::verify(Some(stored.clone()), &current).await {
            let mut tx = self.store.begin(&caller.actor).await?;
            tx.count_failed_login(&user, self.store.login_policy())
                .await?;
            tx.commit_with(StatusCode::UNPROCESSABLE_ENTITY).await?;
            return Err(Error::invalid(
                "currentPassword",
                "is not this account's password; after too many wrong ones the account locks",
            ));
        }
        if password::verify(Some(stored), &new).await {
            return Err(Error::invalid(
                "newPassword",
                "is the current password; choose a new one",
            ));
        }
        let hash = hash_password(&user.username, &new, "newPassword").await?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let user = tx.set_password(id, hash, false, caller.session).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(user)
    }

    /// Changes a user's display name, role or whether it is disabled.
    pub async fn update_user(
        &self,
        caller: &Caller,
        id: UserId,
        request: UpdateUser,
    ) -> Result<User> {
        caller.require(Permission::ManageTenant)?;
        let UpdateUser {
            display_name,
            role,
            disabled,
        } = request;
        let change = UserChange {
            display_name,
            role,
            disabled,
        };
        if change.is_empty() {
            return Err(Error::invalid(
                "body",
                "nothing to change: give displayName, role or disabled",
            ));
        }
        if let Some(role) = role {
            no_more_than_own(caller, role)?;
        }
        let mut tx = self.store.begin(&caller.actor).await?;
        let user = tx.update_user(id, change).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(user)
    }

    /// Deletes a user and their sessions.
    pub async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        caller.require(Permission::ManageTenant)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let user = tx.delete_user(id).await?;
        tx.commit_with(StatusCode::NO_CONTENT).await?;
        Ok(user)
    }

    /// Lifts a user's lockout after too many failed sign-ins.
    pub async fn unlock_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        caller.require(Permission::ManageTenant)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let user = tx.unlock_user(id).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(user)
    }

    /// Gives a user a temporary password: their sessions end, their
    /// lockout lifts, and they must choose their own at next sign-in.
    pub async fn reset_password(
        &self,
        caller: &Caller,
        id: UserId,
        request: ResetPassword,
    ) -> Result<User> {
        caller.require(Permission::ManageTenant)?;
        let target = self.store.user(caller.scope(), id).await?;
        let hash = hash_password(
            &target.username,
            &Secret::new(request.new_password),
            "newPassword",
        )
        .await?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let user = tx.set_password(id, hash, true, None).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(user)
    }

    /// Turns another person's second factor off (they lost their phone),
    /// which takes the acting administrator's own: a person with a
    /// second factor, whose `code` must be right. A wrong code counts
    /// toward the administrator's own lockout.
    pub async fn reset_totp(&self, caller: &Caller, id: UserId, code: &TotpCode) -> Result<User> {
        caller.require(Permission::ManageTenant)?;
        let own = person(caller).map_err(|_| {
            Error::invalid(
                "code",
                "resetting a second factor takes a person's own second factor: sign in with a \
                 password and your authenticator app, not an API key",
            )
        })?;
        let me = self.store.user(caller.scope(), own).await?;
        if !me.totp_enabled {
            return Err(Error::invalid(
                "code",
                "resetting someone's second factor takes your own, and you have none: turn \
                 yours on first (POST /api/v1/users/me/totp)",
            ));
        }
        let mut tx = self.store.begin(&caller.actor).await?;
        if !tx.check_totp(&self.keyring, own, &code.code, false).await? {
            tx.count_failed_login(&me, self.store.login_policy())
                .await?;
            tx.commit_with(StatusCode::UNPROCESSABLE_ENTITY).await?;
            return Err(Error::invalid(
                "code",
                "is not what your authenticator app shows now (or was used before); enter \
                 the code it shows now",
            ));
        }
        let user = tx.reset_totp(id).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(user)
    }

    /// Ends every session of a user (one's own, or one the caller
    /// administers); returns how many ended.
    pub async fn end_sessions(&self, caller: &Caller, id: UserId) -> Result<u64> {
        if person(caller).ok() != Some(id) {
            caller.require(Permission::ManageTenant)?;
        }
        let mut tx = self.store.begin(&caller.actor).await?;
        let ended = tx.end_user_sessions(id).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(ended)
    }

    /// The roles of a tenant's people who must sign in with a second
    /// factor because the tenant asks it.
    pub async fn second_factor_policy(
        &self,
        caller: &Caller,
        tenant: Option<TenantId>,
    ) -> Result<Vec<Role>> {
        caller.require(Permission::ManageTenant)?;
        let tenant = caller.tenant(tenant)?;
        Ok(self
            .store
            .second_factor_roles(caller.scope(), tenant)
            .await?)
    }

    /// Sets them. People of those roles without a second factor must
    /// enrol one before anything else, from their next request on.
    pub async fn set_second_factor_policy(
        &self,
        caller: &Caller,
        tenant: Option<TenantId>,
        policy: SecondFactorPolicy,
    ) -> Result<Vec<Role>> {
        caller.require(Permission::ManageTenant)?;
        let tenant = caller.tenant(tenant)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let roles = tx.set_second_factor_roles(tenant, &policy.roles).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(roles)
    }
}
