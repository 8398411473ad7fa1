//! Who may use the platform: a tenant's users and API keys (managed by its
//! tenant admins, and by platform admins, who also create platform staff),
//! signing in and out, and a person's second factor.
//!
//! Passwords are hashed with argon2id before the transaction opens and
//! never leave the hub; a key's token and a TOTP secret are returned once,
//! when they are made, and never again.

use chrono::{DateTime, TimeDelta, Utc};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::throttle::{MAX_USERNAME_BYTES, Source};
use super::{Caller, Error, Hub, Pending, Result};
use crate::identity::password::{PasswordError, PasswordHash};
use crate::identity::{Origin, Permission, Principal, Role};
use crate::ids::{ApiKeyId, TenantId, UserId};
use crate::secret::Secret;
use crate::store::{
    ApiKey, AuditEntry, CreatedApiKey, CreatedSession, LoginError, NewApiKey, NewUser,
    TotpEnrolment, User,
};

/// A request to create a user with a password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    /// 3 to 64 lower-case letters, digits or `. _ - @`; unique.
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    /// At least 12 characters of three kinds (lower, upper, digits, other),
    /// not containing the user name.
    pub password: String,
    #[schema(value_type = crate::http::schema::RoleSchema)]
    pub role: Role,
    /// The user's tenant. Tenant admins leave it out (their own); platform
    /// admins leave it out only for platform staff.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A request to create an API key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// 1 to 100 characters, unique among the tenant's live keys.
    pub name: String,
    /// tenant-admin, developer, auditor or viewer.
    #[schema(value_type = crate::http::schema::RoleSchema)]
    pub role: Role,
    /// Limits the key to calling the tenant's models (`/v1/…`): it can do
    /// nothing through `/api/v1`, whatever its role. The role must be one
    /// that may call models (tenant-admin or developer).
    #[serde(default)]
    pub inference_only: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's tenant; platform admins must name it.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// Signing in with a password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
    /// The six digits of the account's authenticator app, when it has a
    /// second factor.
    pub totp_code: Option<String>,
}

/// A code from a person's authenticator app.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TotpCode {
    /// The six digits the authenticator app shows now.
    pub code: String,
}

/// A session just opened, with its token (returned this once).
#[derive(Debug)]
pub struct SignedIn {
    pub session: CreatedSession,
    pub user: User,
}

impl Hub {
    /// The users the caller administers; only `tenant`'s
    /// when one is named.
    pub async fn users(&self, caller: &Caller, tenant: Option<TenantId>) -> Result<Vec<User>> {
        caller.require(Permission::ManageTenant)?;
        let mut users = self.store.users(caller.scope()).await?;
        if let Some(tenant) = tenant {
            let tenant = caller.tenant(Some(tenant))?;
            users.retain(|u| u.tenant == Some(tenant));
        }
        Ok(users)
    }

    /// One user.
    pub async fn user(&self, caller: &Caller, id: UserId) -> Result<User> {
        caller.require(Permission::ManageTenant)?;
        Ok(self.store.user(caller.scope(), id).await?)
    }

    /// Creates a user with a password.
    pub async fn create_user(&self, caller: &Caller, request: CreateUser) -> Result<User> {
        let CreateUser {
            username,
            display_name,
            password,
            role,
            tenant,
            expires_at,
        } = request;
        caller.require(Permission::ManageTenant)?;
        no_more_than_own(caller, role)?;
        let tenant = match caller.actor.tenant {
            Some(_) => Some(caller.tenant(tenant)?),
            None => tenant,
        };
        let hash = hash_password(&username, &Secret::new(password), "password").await?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let user = tx
            .create_user(NewUser {
                tenant,
                display_name: if display_name.trim().is_empty() {
                    username.clone()
                } else {
                    display_name
                },
                username,
                password: hash,
                role,
                expires_at,
                must_change_password: false,
            })
            .await?;
        tx.commit_with(StatusCode::CREATED).await?;
        Ok(user)
    }

    /// Starts enrolling a TOTP second factor for the signed-in person (a
    /// password session, not an API key); refused while one is on. The
    /// secret is returned this once.
    pub async fn begin_totp(&self, caller: &Caller) -> Result<TotpEnrolment> {
        if caller.pending == Some(Pending::PasswordChange) {
            return Err(Error::password_change_required());
        }
        let mut tx = self.store.begin(&caller.actor).await?;
        let enrolment = tx.begin_totp(&self.keyring).await?;
        tx.commit_with(StatusCode::CREATED).await?;
        Ok(enrolment)
    }

    /// Confirms enrolment with a code from the app: from now on signing in
    /// takes a code too.
    pub async fn confirm_totp(&self, caller: &Caller, code: &TotpCode) -> Result<()> {
        if caller.pending == Some(Pending::PasswordChange) {
            return Err(Error::password_change_required());
        }
        let Principal::User { id, .. } = caller.actor.principal else {
            return Err(Error::invalid(
                "user",
                "a second factor belongs to a person: sign in with a password, not an API key",
            ));
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        if !tx.check_totp(&self.keyring, id, &code.code, true).await? {
            tx.rollback().await?;
            return Err(Error::invalid(
                "code",
                "it does not match the secret; check the app's clock and enter the code it shows now",
            ));
        }
        tx.commit_with(StatusCode::OK).await?;
        Ok(())
    }

    /// A tenant's keys, revoked ones included.
    pub async fn api_keys(&self, caller: &Caller, tenant: Option<TenantId>) -> Result<Vec<ApiKey>> {
        caller.require(Permission::ManageTenant)?;
        let tenant = caller.tenant(tenant)?;
        Ok(self.store.api_keys(caller.scope(), tenant).await?)
    }

    /// One key.
    pub async fn api_key(&self, caller: &Caller, id: ApiKeyId) -> Result<ApiKey> {
        caller.require(Permission::ManageTenant)?;
        Ok(self.store.api_key(caller.scope(), id).await?)
    }

    /// Creates a key; its token is in what this returns and nowhere else.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        request: CreateApiKey,
    ) -> Result<CreatedApiKey> {
        let CreateApiKey {
            name,
            role,
            inference_only,
            expires_at,
            tenant,
        } = request;
        caller.require(Permission::ManageTenant)?;
        let tenant = caller.tenant(tenant)?;
        // A key never carries a right its creator lacks.
        no_more_than_own(caller, role)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let created = tx
            .create_api_key(
                tenant,
                NewApiKey {
                    name,
                    role,
                    inference_only,
                    expires_at,
                },
            )
            .await?;
        tx.commit_with(StatusCode::CREATED).await?;
        Ok(created)
    }

    /// Revokes a key: it stops working at once. Revoking twice is harmless.
    pub async fn revoke_api_key(&self, caller: &Caller, id: ApiKeyId) -> Result<ApiKey> {
        caller.require(Permission::ManageTenant)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        let key = tx.revoke_api_key(id).await?;
        tx.commit_with(StatusCode::OK).await?;
        self.store.api_key_revoked();
        Ok(key)
    }

    /// Signs in with a password (and the second factor's code, when the
    /// account has one). Every refusal is the same 401 — unknown user,
    /// wrong password, locked or expired account, missing or wrong code —
    /// and the store counts failures and locks the account after too many;
    /// a wrong code counts as a wrong password does.
    ///
    /// First, before any hashing, lookup or record of the name: a user name
    /// longer than [`MAX_USERNAME_BYTES`] is refused, and the sign-in
    /// limits of [`super::throttle`] answer 429 when spent.
    pub async fn sign_in(&self, origin: &Origin, login: Login) -> Result<SignedIn> {
        if login.username.len() > MAX_USERNAME_BYTES {
            tracing::debug!("sign-in refused: the user name is too long");
            return Err(Error::unauthorized());
        }
        let source = Source::of(origin.source_ip);
        self.throttle.admit_sign_in(source, &login.username)?;
        let origin = Origin {
            refusal_counted: !self.throttle.refusal_recorded_alone(source),
            ..origin.clone()
        };
        let username = login.username.clone();
        let signed_in = self.check_sign_in(&origin, login).await;
        match &signed_in {
            Ok(_) => self.throttle.signed_in(&username, source),
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
                self.throttle.sign_in_failed(&username);
            }
            Err(_) => {}
        }
        signed_in
    }

    async fn check_sign_in(&self, origin: &Origin, login: Login) -> Result<SignedIn> {
        let Login {
            username,
            password,
            totp_code,
        } = login;
        let password = Secret::new(password);
        let (user, mut tx) = match self.store.begin_login(origin, &username, &password).await {
            Ok(signed_in) => signed_in,
            Err(LoginError::Store(e)) => return Err(e.into()),
            Err(e) => {
                tracing::debug!(reason = %e, "sign-in refused");
                return Err(Error::unauthorized());
            }
        };
        if user.totp_enabled {
            let accepted = match totp_code.as_deref() {
                Some(code) => tx.check_totp(&self.keyring, user.id, code, false).await?,
                None => false,
            };
            if !accepted {
                tracing::debug!(user = %user.username, "sign-in refused: second factor missing or wrong");
                tx.audit_as(AuditEntry {
                    verb: "login-refused".to_owned(),
                    resource: "users".to_owned(),
                    tenant: user.tenant,
                    name: Some(user.username.clone()),
                    uid: Some(user.id.to_string()),
                    message: Some("the second factor was missing, wrong or used before".to_owned()),
                    ..AuditEntry::default()
                });
                // A wrong code counts toward the lockout as a wrong password
                // does; a missing one (the first step of a two-step form) not.
                if totp_code.is_some() {
                    tx.count_failed_login(&user, self.store.login_policy())
                        .await?;
                }
                tx.commit_with(StatusCode::UNAUTHORIZED).await?;
                return Err(Error::unauthorized());
            }
        }
        let ttl = TimeDelta::minutes(i64::from(self.settings.session_minutes));
        let session = tx.create_session(&user, ttl).await?;
        tx.commit_with(StatusCode::CREATED).await?;
        Ok(SignedIn { session, user })
    }

    /// Signs out: the caller's session token stops working.
    pub async fn sign_out(&self, caller: &Caller) -> Result<()> {
        let Some(session) = caller.session else {
            return Err(Error::not_found("session"));
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        tx.end_session(session).await?;
        tx.commit_with(StatusCode::NO_CONTENT).await?;
        Ok(())
    }

    /// Moves the end of the caller's session to `until` (the console's
    /// idle expiry: each page moves it a little further, never past the
    /// session's lifetime).
    pub async fn extend_session(
        &self,
        session: crate::ids::SessionId,
        until: DateTime<Utc>,
    ) -> Result<()> {
        Ok(self.store.touch_session(session, until).await?)
    }
}

/// The person a caller is: a signed-in user, not an API key.
pub(super) fn person(caller: &Caller) -> Result<UserId> {
    match caller.actor.principal {
        Principal::User { id, .. } => Ok(id),
        _ => Err(Error::invalid(
            "user",
            "this is about a person's own account: sign in with a password, not an API key",
        )),
    }
}

/// Refuses handing out `role` (to a user or a key) when it has a right
/// the caller's own role lacks.
pub(super) fn no_more_than_own(caller: &Caller, role: Role) -> Result<()> {
    match role.beyond(caller.actor.role) {
        None => Ok(()),
        Some(more) => Err(Error::invalid(
            "role",
            format!(
                "a {role} could do what you cannot ({more:?}); give a role with no more rights \
                 than your own ({})",
                caller.actor.role
            ),
        )),
    }
}

/// Checks a new password against the policy and hashes it; a refusal
/// names `field`.
pub(super) async fn hash_password(
    username: &str,
    password: &Secret,
    field: &str,
) -> Result<PasswordHash> {
    PasswordHash::new(username, password)
        .await
        .map_err(|e| match e {
            PasswordError::Hash => Error::internal(&e),
            e => Error::invalid(field, e.to_string()),
        })
}
