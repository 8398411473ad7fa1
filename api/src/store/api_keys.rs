//! API keys: per tenant, shown once, stored as a SHA-256 digest, found by
//! their public prefix, revocable, optionally expiring. See
//! `identity::api_key` for the format and why SHA-256 suffices.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{Backend, Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Actor, Origin, Permission, Principal, Role, Scope, api_key};
use crate::ids::{ApiKeyId, TenantId};
use crate::secret::Secret;

/// `last_used_at` is refreshed at most this often, so that authenticating
/// every request does not also write on every request.
const LAST_USED_RESOLUTION: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant: TenantId,
    pub name: String,
    /// Public: `mf_<prefix>` identifies the key in lists and audit records.
    pub prefix: String,
    pub role: Role,
    /// Calls the tenant's models through the gateway and nothing else.
    pub inference_only: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    /// Limits the key to inference; its role must allow inference.
    pub inference_only: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just created: `token` is the only time the secret exists outside
/// its holder's hands.
#[derive(Debug)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub token: Secret,
}

/// A key that authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedKey {
    pub id: ApiKeyId,
    pub tenant: TenantId,
    pub role: Role,
    pub name: String,
    pub prefix: String,
    pub inference_only: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

impl AuthenticatedKey {
    /// The actor requests made with this key run as.
    pub fn actor(&self, origin: Origin) -> Actor {
        Actor {
            principal: Principal::ApiKey {
                id: self.id,
                prefix: self.prefix.clone(),
                inference_only: self.inference_only,
            },
            tenant: Some(self.tenant),
            role: self.role,
            origin,
        }
    }
}

/// Why a key was refused. All of them are a 401 to the client, with the
/// same body; the variants are for the audit trail and metrics.
#[derive(Debug, thiserror::Error)]
pub enum KeyAuthError {
    #[error("unknown or malformed API key")]
    Unknown,
    #[error("the API key was revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyAuthError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            KeyAuthError::Unknown => "unknown",
            KeyAuthError::Revoked => "revoked",
            KeyAuthError::Expired => "expired",
            KeyAuthError::Store(e) => e.metric_label(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: ApiKeyId,
    tenant_id: TenantId,
    name: String,
    prefix: String,
    digest: Vec<u8>,
    role: String,
    inference_only: bool,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, tenant_id, name, prefix, digest, role, inference_only, created_at, expires_at, \
             revoked_at, last_used_at FROM api_keys ",
            $tail
        )
    };
}

impl Row {
    fn into_key(self) -> Result<(ApiKey, Vec<u8>), StoreError> {
        let key = ApiKey {
            id: self.id,
            tenant: self.tenant_id,
            name: self.name,
            prefix: self.prefix,
            role: self.role.parse().map_err(|_| StoreError::Corrupt("role"))?,
            inference_only: self.inference_only,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        };
        Ok((key, self.digest))
    }
}

impl Tx {
    /// Creates a key for `tenant`. Tenant admins and platform admins.
    pub async fn create_api_key(
        &mut self,
        tenant: TenantId,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, StoreError> {
        self.actor()
            .check(tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "tenant"))?;
        let NewApiKey {
            name,
            role,
            inference_only,
            expires_at,
        } = new;
        if inference_only && !role.grants(Permission::Infer) {
            return Err(StoreError::invalid(
                "inferenceOnly",
                format!(
                    "a key limited to inference needs a role that may call models \
                     (tenant-admin or developer), not {role}"
                ),
            ));
        }
        if role == Role::PlatformAdmin {
            return Err(StoreError::invalid(
                "role",
                "API keys belong to a tenant; platform-admin is not a tenant role",
            ));
        }
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
        }
        let at = now();
        if expires_at.is_some_and(|e| e <= at) {
            return Err(StoreError::invalid("expires_at", "must be in the future"));
        }
        let exists: Option<(TenantId,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT id FROM tenants WHERE id = $1").bind(tenant).fetch_optional(c).await)?;
        if exists.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        // Prefixes are 41 random bits; a clash is astronomically rare but
        // must not surface as an error (and a failed INSERT would abort a
        // PostgreSQL transaction), so look before inserting.
        let generated = loop {
            let g = api_key::generate().map_err(|_| StoreError::invalid("key", "no randomness"))?;
            let taken: Option<(ApiKeyId,)> = on_conn!(self.conn(), c => sqlx::query_as(
                "SELECT id FROM api_keys WHERE prefix = $1").bind(&g.prefix).fetch_optional(c).await)?;
            if taken.is_none() {
                break g;
            }
        };
        let key = ApiKey {
            id: ApiKeyId::new(),
            tenant,
            name,
            prefix: generated.prefix,
            role,
            inference_only,
            created_at: at,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, digest, role, created_at, expires_at, \
             inference_only) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key.id).bind(tenant).bind(&key.name).bind(&key.prefix)
        .bind(&generated.digest[..]).bind(role.name()).bind(at).bind(expires_at)
        .bind(inference_only)
        .execute(c).await.map(|r| r.rows_affected()))
        .map_err(StoreError::unique("API key", &key.name))?;
        self.note("create", "apikeys", Some(tenant), key.id.0, &key.prefix);
        Ok(CreatedApiKey {
            key,
            token: generated.token,
        })
    }

    /// Revokes a key; revoking a revoked key changes nothing.
    pub async fn revoke_api_key(&mut self, id: ApiKeyId) -> Result<ApiKey, StoreError> {
        let row: Option<Row> = match self.backend() {
            Backend::Postgres => {
                on_conn!(self.conn(), c => sqlx::query_as(select!("WHERE id = $1 FOR UPDATE"))
                .bind(id).fetch_optional(c).await)?
            }
            Backend::Sqlite => on_conn!(self.conn(), c => sqlx::query_as(select!("WHERE id = $1"))
                .bind(id).fetch_optional(c).await)?,
        };
        let (mut key, _) = row.ok_or(StoreError::NotFound("API key"))?.into_key()?;
        self.actor()
            .check(key.tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "API key"))?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let at = now();
        on_conn!(self.conn(), c => sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
            .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        key.revoked_at = Some(at);
        self.note("revoke", "apikeys", Some(key.tenant), key.id.0, &key.prefix);
        Ok(key)
    }
}

impl Store {
    pub async fn api_key(&self, scope: Scope, id: ApiKeyId) -> Result<ApiKey, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<Row> = on_conn!(reader.conn(), c => sqlx::query_as(select!("WHERE id = $1"))
            .bind(id).fetch_optional(c).await)?;
        let (key, _) = row.ok_or(StoreError::NotFound("API key"))?.into_key()?;
        visible(scope, key.tenant, "API key")?;
        Ok(key)
    }

    /// A tenant's keys, revoked ones included, newest first.
    pub async fn api_keys(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<Vec<ApiKey>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            select!("WHERE tenant_id = $1 ORDER BY created_at DESC, id"))
            .bind(tenant).fetch_all(c).await)?;
        rows.into_iter()
            .map(|r| r.into_key().map(|(k, _)| k))
            .collect()
    }

    /// Authenticates a presented token: found by prefix, compared by digest
    /// in constant time, refused if revoked or expired.
    pub async fn authenticate_api_key(
        &self,
        token: &str,
    ) -> Result<AuthenticatedKey, KeyAuthError> {
        let prefix = api_key::prefix_of(token).ok_or(KeyAuthError::Unknown)?;
        let mut reader = self.reader().await?;
        let row: Option<Row> =
            on_conn!(reader.conn(), c => sqlx::query_as(select!("WHERE prefix = $1"))
            .bind(prefix).fetch_optional(c).await)
            .map_err(StoreError::from)?;
        drop(reader);
        let Some(row) = row else {
            // Same work as for a known prefix, so timing does not tell.
            api_key::matches(&[0u8; 32], token);
            return Err(KeyAuthError::Unknown);
        };
        let (key, digest) = row.into_key()?;
        if !api_key::matches(&digest, token) {
            return Err(KeyAuthError::Unknown);
        }
        let at = now();
        if key.revoked_at.is_some() {
            return Err(KeyAuthError::Revoked);
        }
        if key.expires_at.is_some_and(|e| e <= at) {
            return Err(KeyAuthError::Expired);
        }
        if key
            .last_used_at
            .is_none_or(|used| at - used >= LAST_USED_RESOLUTION)
        {
            let mut tx = self.begin(&Actor::system("api-key")).await?;
            on_conn!(tx.conn(), c => sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(key.id).bind(at).execute(c).await.map(|r| r.rows_affected()))
                .map_err(StoreError::from)?;
            tx.commit().await?;
        }
        Ok(AuthenticatedKey {
            id: key.id,
            tenant: key.tenant,
            role: key.role,
            name: key.name,
            prefix: key.prefix,
            inference_only: key.inference_only,
            expires_at: key.expires_at,
        })
    }
}
