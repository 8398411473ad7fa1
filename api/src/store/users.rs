//! Users: people who sign in with a password and, once they turn one on, a
//! second factor (TOTP).
//! Passwords are argon2id hashes made before the transaction opens; failed
//! sign-ins are counted and lock the account for a while after too many.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{Backend, Store, StoreError, Tx, now, on_conn};
use crate::identity::password::{self, PasswordHash};
use crate::identity::{Actor, Origin, Permission, Principal, Role, Scope};
use crate::ids::{TenantId, UserId};
use crate::secret::{Sealed, Secret};

/// What the API answers every refused sign-in with.
const UNAUTHORIZED: http::StatusCode = http::StatusCode::UNAUTHORIZED;

/// How sign-in failures are punished (MLPS 2.0 L3-CES1-02).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Failed attempts in a row that lock the account.
    pub max_failures: u32,
    pub lockout: TimeDelta,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            max_failures: 5,
            lockout: TimeDelta::minutes(15),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    /// `None` for platform staff.
    pub tenant: Option<TenantId>,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub failed_logins: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub password_changed_at: DateTime<Utc>,
    pub totp_enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Set while the account is disabled: it cannot sign in and its
    /// sessions stop working; enabling it again clears it.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The user must choose a new password before doing anything else (the
    /// first-start platform admin; anyone whose password an admin reset).
    pub must_change_password: bool,
    /// The user's tenant asks a second factor of their role
    /// (`PUT /tenants/{id}/second-factor`), whatever the platform asks.
    pub tenant_requires_second_factor: bool,
}

impl User {
    /// The actor a signed-in user's requests run as.
    pub fn actor(&self, origin: Origin) -> Actor {
        Actor {
            principal: Principal::User {
                id: self.id,
                username: self.username.clone(),
            },
            tenant: self.tenant,
            role: self.role,
            origin,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub tenant: Option<TenantId>,
    pub username: String,
    pub display_name: String,
    pub password: PasswordHash,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
    /// Must choose a new password at first sign-in.
    pub must_change_password: bool,
}

/// Why a sign-in failed. The API answers all of them with the same 401;
/// the distinction is for the audit trail and the console's wording.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name or password")]
    Invalid,
    #[error("the account is locked until {until}")]
    Locked { until: DateTime<Utc> },
    #[error("the account has expired")]
    Expired,
    #[error("the account is disabled")]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(sqlx::FromRow)]
struct Row {
    id: UserId,
    tenant_id: Option<TenantId>,
    username: String,
    display_name: String,
    role: String,
    failed_logins: i64,
    locked_until: Option<DateTime<Utc>>,
    last_login_at: Option<DateTime<Utc>>,
    password_changed_at: DateTime<Utc>,
    totp_enabled: bool,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    password_hash: String,
    disabled_at: Option<DateTime<Utc>>,
    must_change_password: bool,
    tenant_second_factor_roles: Option<String>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, tenant_id, username, display_name, role, failed_logins, locked_until, \
             last_login_at, password_changed_at, totp_enabled, expires_at, created_at, \
             password_hash, disabled_at, must_change_password, \
             (SELECT t.second_factor_roles FROM tenants t WHERE t.id = users.tenant_id) \
             AS tenant_second_factor_roles FROM users ",
            $tail
        )
    };
}

impl Row {
    fn into_user(self) -> Result<(User, PasswordHash), StoreError> {
        let role: Role = self.role.parse().map_err(|_| StoreError::Corrupt("role"))?;
        let tenant_roles = match self.tenant_second_factor_roles.as_deref() {
            Some(list) => super::tenants::parse_roles(list)?,
            None => Vec::new(),
        };
        let user = User {
            id: self.id,
            tenant: self.tenant_id,
            username: self.username,
            display_name: self.display_name,
            role,
            failed_logins: u32::try_from(self.failed_logins)
                .map_err(|_| StoreError::Corrupt("user"))?,
            locked_until: self.locked_until,
            last_login_at: self.last_login_at,
            password_changed_at: self.password_changed_at,
            totp_enabled: self.totp_enabled,
            expires_at: self.expires_at,
            created_at: self.created_at,
            disabled_at: self.disabled_at,
            must_change_password: self.must_change_password,
            tenant_requires_second_factor: tenant_roles.contains(&role),
        };
        Ok((user, PasswordHash::from_stored(self.password_hash)))
    }
}

fn valid_username(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b))
}

impl Tx {
    /// Creates a user. Platform admins create anyone; a tenant admin creates
    /// users of their own tenant with tenant roles.
    pub async fn create_user(&mut self, new: NewUser) -> Result<User, StoreError> {
        let NewUser {
            tenant,
            username,
            display_name,
            password,
            role,
            expires_at,
            must_change_password,
        } = new;
        match tenant {
            Some(t) => self.actor().check(t, Permission::ManageTenant),
            None => self.actor().check_role(Permission::ManagePlatform),
        }
        .map_err(|d| StoreError::denied(d, "tenant"))?;
        if role
            .needs_tenant()
            .is_some_and(|needs| needs != tenant.is_some())
        {
            return Err(StoreError::invalid(
                "role",
                format!(
                    "a {role} {} a tenant",
                    if tenant.is_some() {
                        "cannot have"
                    } else {
                        "needs"
                    }
                ),
            ));
        }
        if !valid_username(&username) {
            return Err(StoreError::invalid(
                "username",
                "3 to 64 lower-case letters, digits or . _ - @",
            ));
        }
        let at = now();
        let user = User {
            id: UserId::new(),
            tenant,
            username,
            display_name: display_name.trim().to_owned(),
            role,
            failed_logins: 0,
            locked_until: None,
            last_login_at: None,
            password_changed_at: at,
            totp_enabled: false,
            expires_at,
            created_at: at,
            disabled_at: None,
            must_change_password,
            tenant_requires_second_factor: false,
        };
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO users (id, tenant_id, username, display_name, password_hash, role, \
             password_changed_at, expires_at, created_at, must_change_password) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(user.id).bind(user.tenant).bind(&user.username).bind(&user.display_name)
        .bind(password.as_str()).bind(user.role.name()).bind(at).bind(user.expires_at).bind(at)
        .bind(must_change_password)
        .execute(c).await.map(|r| r.rows_affected()))
        .map_err(|e| match e {
            // The tenant row is missing: to this caller, it does not exist.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound("tenant")
            }
            e => StoreError::unique("user", &user.username)(e),
        })?;
        self.note("create", "users", user.tenant, user.id.0, &user.username);
        // As it reads back: with what its tenant asks of its role.
        let (user, _) = user_row(self, user.id).await?;
        Ok(user)
    }

    /// Stores a sealed TOTP seed (or clears it) and whether it is enforced.
    /// The user themself, or an administrator of their tenant or platform.
    pub async fn set_totp(
        &mut self,
        user: UserId,
        secret: Option<&Sealed>,
        enabled: bool,
    ) -> Result<(), StoreError> {
        let (target, _) = user_row(self, user).await?;
        let is_self = matches!(&self.actor().principal, Principal::User { id, .. } if *id == user);
        if !is_self {
            match target.tenant {
                Some(t) => self.actor().check(t, Permission::ManageTenant),
                None => self.actor().check_role(Permission::ManagePlatform),
            }
            .map_err(|d| StoreError::denied(d, "user"))?;
        }
        if enabled && secret.is_none() {
            return Err(StoreError::invalid(
                "totp",
                "cannot enable TOTP without a secret",
            ));
        }
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE users SET totp_secret = $2, totp_enabled = $3 WHERE id = $1",
        ).bind(user).bind(secret.map(Sealed::as_bytes)).bind(enabled).execute(c).await.map(|r| r.rows_affected()))?;
        self.note("update", "users", target.tenant, user.0, &target.username);
        Ok(())
    }
}

/// A user row inside a transaction, visible to the transaction's actor.
pub(super) async fn user_row(tx: &mut Tx, id: UserId) -> Result<(User, PasswordHash), StoreError> {
    let row: Option<Row> = match tx.backend() {
        Backend::Postgres => {
            on_conn!(tx.conn(), c => sqlx::query_as(select!("WHERE id = $1 FOR UPDATE"))
            .bind(id).fetch_optional(c).await)?
        }
        Backend::Sqlite => on_conn!(tx.conn(), c => sqlx::query_as(select!("WHERE id = $1"))
            .bind(id).fetch_optional(c).await)?,
    };
    let (user, hash) = row.ok_or(StoreError::NotFound("user"))?.into_user()?;
    if !user_visible(tx.actor().scope(), &user) {
        return Err(StoreError::NotFound("user"));
    }
    Ok((user, hash))
}

fn user_visible(scope: Scope, user: &User) -> bool {
    match (scope, user.tenant) {
        (Scope::All, _) => true,
        (Scope::Tenant(own), Some(t)) => own == t,
        (Scope::Tenant(_), None) => false,
    }
}

impl Store {
    pub async fn user(&self, scope: Scope, id: UserId) -> Result<User, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<Row> = on_conn!(reader.conn(), c => sqlx::query_as(select!("WHERE id = $1"))
            .bind(id).fetch_optional(c).await)?;
        let (user, _) = row.ok_or(StoreError::NotFound("user"))?.into_user()?;
        if user_visible(scope, &user) {
            Ok(user)
        } else {
            Err(StoreError::NotFound("user"))
        }
    }

    /// The users a scope can see (a tenant sees its own; platform staff
    /// are visible only to platform scope), by user name.
    pub async fn users(&self, scope: Scope) -> Result<Vec<User>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            select!("WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY username"))
            .bind(scope.tenant()).fetch_all(c).await)?;
        rows.into_iter()
            .map(|r| r.into_user().map(|(u, _)| u))
            .collect()
    }

    /// The sealed TOTP seed of a user, if one is set.
    pub async fn totp_secret(
        &self,
        scope: Scope,
        id: UserId,
    ) -> Result<Option<Sealed>, StoreError> {
        self.user(scope, id).await?;
        let mut reader = self.reader().await?;
        let bytes: Option<(Option<Vec<u8>>,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT totp_secret FROM users WHERE id = $1").bind(id).fetch_optional(c).await)?;
        bytes
            .and_then(|(b,)| b)
            .map(Sealed::from_stored)
            .transpose()
            .map_err(|_| StoreError::Corrupt("totp secret"))
    }

    /// Checks a user name and password. Unknown users cost the same time as
    /// wrong passwords; locked and expired accounts are refused before the
    /// password is checked; each failure is counted, and `max_failures` in
    /// a row lock the account for `lockout`. Every attempt commits a
    /// transaction (with its [`super::Change`]) so it can be audited.
    ///
    /// Every refusal is recorded as answered with 401, the one answer the
    /// API gives to all of them.
    pub async fn login(
        &self,
        origin: &Origin,
        username: &str,
        password: &Secret,
    ) -> Result<User, LoginError> {
        let (user, tx) = self.begin_login(origin, username, password).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// [`Store::login`], leaving the successful sign-in's transaction open
    /// (acting as the user) so the session it starts commits with it: one
    /// request, one transaction, one audit record.
    pub async fn begin_login(
        &self,
        origin: &Origin,
        username: &str,
        password: &Secret,
    ) -> Result<(User, Tx), LoginError> {
        let actor = Actor::system("login").with_origin(origin.clone());
        let mut reader = self.reader().await?;
        let row: Option<Row> =
            on_conn!(reader.conn(), c => sqlx::query_as(select!("WHERE username = $1"))
            .bind(username).fetch_optional(c).await)
            .map_err(StoreError::from)?;
        drop(reader);
        let Some(row) = row else {
            password::verify(None, password).await;
            let mut tx = self.begin(&actor).await?;
            tx.note("login-failed", "users", None, uuid::Uuid::nil(), username);
            tx.commit_with(UNAUTHORIZED).await?;
            return Err(LoginError::Invalid);
        };
        let (user, hash) = row.into_user()?;
        // From here the record names the account that tried to sign in.
        let actor = user.actor(origin.clone());
        let refused =
            |tx: &mut Tx, verb| tx.note(verb, "users", user.tenant, user.id.0, &user.username);
        let at = now();
        if let Some(until) = user.locked_until.filter(|&u| u > at) {
            let mut tx = self.begin(&actor).await?;
            refused(&mut tx, "login-refused");
            tx.commit_with(UNAUTHORIZED).await?;
            return Err(LoginError::Locked { until });
        }
        if user.expires_at.is_some_and(|e| e <= at) {
            let mut tx = self.begin(&actor).await?;
            refused(&mut tx, "login-refused");
            tx.commit_with(UNAUTHORIZED).await?;
            return Err(LoginError::Expired);
        }
        if user.disabled_at.is_some() {
            let mut tx = self.begin(&actor).await?;
            refused(&mut tx, "login-refused");
            tx.commit_with(UNAUTHORIZED).await?;
            return Err(LoginError::Disabled);
        }
        let ok = password::verify(Some(hash), password).await;
        let mut tx = self.begin(&actor).await?;
        // Re-read under the write lock: a concurrent failure may have locked
        // the account while the password was being checked.
        let (current, _) = user_row(&mut tx, user.id).await?;
        if let Some(until) = current.locked_until.filter(|&u| u > at) {
            refused(&mut tx, "login-refused");
            tx.commit_with(UNAUTHORIZED).await?;
            return Err(LoginError::Locked { until });
        }
        if ok {
            on_conn!(tx.conn(), c => sqlx::query(
                // With a second factor, the count starts again only once
                // its code was right too (`Tx::create_session`).
                "UPDATE users SET failed_logins = CASE WHEN totp_enabled THEN failed_logins ELSE 0 END, \
                 locked_until = NULL, last_login_at = $2 WHERE id = $1",
            ).bind(user.id).bind(at).execute(c).await.map(|r| r.rows_affected())).map_err(StoreError::from)?;
            refused(&mut tx, "login");
            let user = User {
                failed_logins: if current.totp_enabled {
                    current.failed_logins
                } else {
                    0
                },
                locked_until: None,
                last_login_at: Some(at),
                ..current
            };
            return Ok((user, tx));
        }
        tx.count_failed_login(&current, self.login_policy).await?;
        tx.commit_with(UNAUTHORIZED).await?;
        Err(LoginError::Invalid)
    }
}

impl Tx {
    /// Counts a failed sign-in of `user` (a wrong password, or a wrong or
    /// reused second-factor code) and locks the account once the policy's
    /// count is reached. Returns whether this failure locked it.
    pub async fn count_failed_login(
        &mut self,
        user: &User,
        policy: LoginPolicy,
    ) -> Result<bool, StoreError> {
        let (current, _) = user_row(self, user.id).await?;
        let failures = current.failed_logins.saturating_add(1);
        let at = now();
        let locks = failures >= policy.max_failures;
        if locks {
            // The lock is the state now; the count starts again after it.
            on_conn!(self.conn(), c => sqlx::query(
                "UPDATE users SET failed_logins = 0, locked_until = $2 WHERE id = $1",
            ).bind(user.id).bind(at + policy.lockout).execute(c).await.map(|r| r.rows_affected()))
            .map_err(StoreError::from)?;
        } else {
            on_conn!(self.conn(), c => sqlx::query(
                "UPDATE users SET failed_logins = $2 WHERE id = $1",
            ).bind(user.id).bind(i64::from(failures)).execute(c).await.map(|r| r.rows_affected()))
            .map_err(StoreError::from)?;
        }
        self.note(
            "login-failed",
            "users",
            user.tenant,
            user.id.0,
            &user.username,
        );
        if locks {
            self.note("lock", "users", user.tenant, user.id.0, &user.username);
        }
        Ok(locks)
    }
}
