//! An account's life after it is created: an administrator changes its
//! name or role, disables, unlocks, deletes it, resets its password or its
//! second factor, or ends its sessions; a person changes their own
//! password. Each is one transaction with its audit record.
//!
//! Who may: platform admins for anyone, tenant admins for their own
//! tenant's users (another tenant's are "not found"). Nobody changes their
//! own role, disables or deletes themself, or resets their own password
//! or second factor this way — so an administrator can never lock the
//! last administrator out by mistake, and a stolen session cannot quietly
//! remove its victim's second factor.

use chrono::{DateTime, Utc};

use super::users::user_row;
use super::{Store, StoreError, Tx, User, now, on_conn};
use crate::identity::password::PasswordHash;
use crate::identity::{Permission, Principal, Role};
use crate::ids::{SessionId, UserId};

/// What an administrator changes of a user; `None` leaves it as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

impl UserChange {
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none() && self.role.is_none() && self.disabled.is_none()
    }
}

impl Tx {
    fn acts_as(&self, user: UserId) -> bool {
        matches!(&self.actor().principal, Principal::User { id, .. } if *id == user)
    }

    /// `id`'s row, locked for update, when the actor administers it: a
    /// tenant admin their tenant's users, a platform admin anyone.
    async fn administered_user(&mut self, id: UserId) -> Result<User, StoreError> {
        let (target, _) = user_row(self, id).await?;
        match target.tenant {
            Some(t) => self.actor().check(t, Permission::ManageTenant),
            None => self.actor().check_role(Permission::ManagePlatform),
        }
        .map_err(|d| StoreError::denied(d, "user"))?;
        Ok(target)
    }

    /// Refuses an administrator's operation on their own account.
    fn not_on_self(&self, id: UserId, what: &str) -> Result<(), StoreError> {
        if self.acts_as(id) {
            return Err(StoreError::invalid(
                "id",
                format!("you cannot {what} your own account: ask another administrator"),
            ));
        }
        Ok(())
    }

    /// Changes a user's display name, role or whether it is disabled.
    /// Disabling ends every session of the user at once.
    pub async fn update_user(
        &mut self,
        id: UserId,
        change: UserChange,
    ) -> Result<User, StoreError> {
        let target = self.administered_user(id).await?;
        if change.role.is_some_and(|r| r != target.role) {
            self.not_on_self(id, "change the role of")?;
        }
        if change.disabled == Some(true) {
            self.not_on_self(id, "disable")?;
        }
        let role = change.role.unwrap_or(target.role);
        if role
            .needs_tenant()
            .is_some_and(|needs| needs != target.tenant.is_some())
        {
            return Err(StoreError::invalid(
                "role",
                format!(
                    "a {role} {} a tenant, and this user {}",
                    if target.tenant.is_some() {
                        "cannot have"
                    } else {
                        "needs"
                    },
                    if target.tenant.is_some() {
                        "belongs to one"
                    } else {
                        "is platform staff"
                    }
                ),
            ));
        }
        let display_name = match change.display_name {
            Some(name) => {
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 200 {
                    return Err(StoreError::invalid(
                        "displayName",
                        "must be 1 to 200 characters",
                    ));
                }
                name
            }
            None => target.display_name.clone(),
        };
        let at = now();
        let disabled_at: Option<DateTime<Utc>> = match change.disabled {
            Some(true) => target.disabled_at.or(Some(at)),
            Some(false) => None,
            None => target.disabled_at,
        };
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE users SET display_name = $2, role = $3, disabled_at = $4 WHERE id = $1",
        ).bind(id).bind(&display_name).bind(role.name()).bind(disabled_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
        self.note("update", "users", target.tenant, id.0, &target.username);
        if disabled_at.is_some() && target.disabled_at.is_none() {
            self.end_sessions_of(&target, None).await?;
        }
        let (user, _) = user_row(self, id).await?;
        Ok(user)
    }

    /// Deletes a user and their sessions. What they did stays in the audit
    /// trail under their name.
    pub async fn delete_user(&mut self, id: UserId) -> Result<User, StoreError> {
        let target = self.administered_user(id).await?;
        self.not_on_self(id, "delete")?;
        on_conn!(self.conn(), c => sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        on_conn!(self.conn(), c => sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        self.note("delete", "users", target.tenant, id.0, &target.username);
        Ok(target)
    }

    /// Lifts a lockout after too many failed sign-ins, and starts the
    /// count again.
    pub async fn unlock_user(&mut self, id: UserId) -> Result<User, StoreError> {
        let target = self.administered_user(id).await?;
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1",
        ).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        self.note("unlock", "users", target.tenant, id.0, &target.username);
        let (user, _) = user_row(self, id).await?;
        Ok(user)
    }

    /// Sets a new password: the person's own choice (`reset: false`, acting
    /// as themself, every other session of theirs ended), or an
    /// administrator's temporary one (`reset: true`: every session ended,
    /// the lockout lifted, and the user must choose their own at next
    /// sign-in).
    pub async fn set_password(
        &mut self,
        id: UserId,
        hash: PasswordHash,
        reset: bool,
        keep_session: Option<SessionId>,
    ) -> Result<User, StoreError> {
        let target = if reset {
            let target = self.administered_user(id).await?;
            self.not_on_self(id, "reset the password of")?;
            target
        } else {
            if !self.acts_as(id) {
                return Err(StoreError::Forbidden);
            }
            user_row(self, id).await?.0
        };
        let at = now();
        if reset {
            on_conn!(self.conn(), c => sqlx::query(
                "UPDATE users SET password_hash = $2, password_changed_at = $3, \
                 must_change_password = TRUE, failed_logins = 0, locked_until = NULL WHERE id = $1",
            ).bind(id).bind(hash.as_str()).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        } else {
            on_conn!(self.conn(), c => sqlx::query(
                "UPDATE users SET password_hash = $2, password_changed_at = $3, \
                 must_change_password = FALSE WHERE id = $1",
            ).bind(id).bind(hash.as_str()).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        }
        let verb = if reset {
            "reset-password"
        } else {
            "change-password"
        };
        self.note(verb, "users", target.tenant, id.0, &target.username);
        self.end_sessions_of(&target, keep_session).await?;
        let (user, _) = user_row(self, id).await?;
        Ok(user)
    }

    /// Turns a user's second factor off and forgets its secret, and ends
    /// their sessions; they enrol again at their next sign-in (at once,
    /// when their role needs one). The caller has checked the acting
    /// administrator's own second factor in this transaction.
    pub async fn reset_totp(&mut self, id: UserId) -> Result<User, StoreError> {
        let target = self.administered_user(id).await?;
        self.not_on_self(id, "reset the second factor of")?;
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_enabled = FALSE, totp_last_step = NULL \
             WHERE id = $1",
        ).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        self.note("reset-totp", "users", target.tenant, id.0, &target.username);
        self.end_sessions_of(&target, None).await?;
        let (user, _) = user_row(self, id).await?;
        Ok(user)
    }

    /// Ends every live session of a user: their own, or one the actor
    /// administers. Returns how many ended.
    pub async fn end_user_sessions(&mut self, id: UserId) -> Result<u64, StoreError> {
        let target = if self.acts_as(id) {
            user_row(self, id).await?.0
        } else {
            self.administered_user(id).await?
        };
        self.end_sessions_of(&target, None).await
    }

    async fn end_sessions_of(
        &mut self,
        user: &User,
        keep: Option<SessionId>,
    ) -> Result<u64, StoreError> {
        let at = now();
        let ended = on_conn!(self.conn(), c => sqlx::query(
            "UPDATE sessions SET revoked_at = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             AND ($3 IS NULL OR id <> $3)",
        ).bind(user.id).bind(at).bind(keep).execute(c).await.map(|r| r.rows_affected()))?;
        if ended > 0 {
            self.note(
                "end-sessions",
                "users",
                user.tenant,
                user.id.0,
                &user.username,
            );
        }
        Ok(ended)
    }
}

impl Store {
    /// A user's stored password hash, to check a password against before a
    /// change (outside any transaction: argon2 takes a while).
    pub(crate) async fn password_hash(&self, id: UserId) -> Result<PasswordHash, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<(String,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT password_hash FROM users WHERE id = $1").bind(id).fetch_optional(c).await)?;
        row.map(|(h,)| PasswordHash::from_stored(h))
            .ok_or(StoreError::NotFound("user"))
    }

    /// Deletes sessions that ended (expired or signed out) before `before`:
    /// their tokens can never work again. Returns how many went.
    pub async fn purge_ended_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self
            .begin(&crate::identity::Actor::system("sessions"))
            .await?;
        let purged = on_conn!(tx.conn(), c => sqlx::query(
            "DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at <= $1",
        ).bind(before).execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(purged)
    }

    /// How many sessions the store holds, live or not (for the purge's
    /// tests and the operator's curiosity).
    pub async fn session_rows(&self) -> Result<u64, StoreError> {
        let mut reader = self.reader().await?;
        let (n,): (i64,) = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM sessions").fetch_one(c).await)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }
}
