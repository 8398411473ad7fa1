//! What the compliance report reads from the database: accounts and their
//! factors, sealed secrets, and the audit trail's protections and exports.

use chrono::{DateTime, Utc};

use super::{Backend, Store, StoreError, on_conn};
use crate::identity::{Actor, Permission, Role};

/// One account, as far as the report cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFacts {
    pub username: String,
    pub role: Role,
    pub totp_enabled: bool,
    /// Cannot sign in any more: expired, or disabled by an administrator.
    pub expired: bool,
    /// Still on the password it was created with.
    pub initial_password: bool,
}

/// Everything the MLPS report evaluates that lives in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceFacts {
    pub accounts: Vec<AccountFacts>,
    /// Clusters reached with a kubeconfig, each stored sealed.
    pub sealed_kubeconfigs: i64,
    pub audit_records: i64,
    pub first_record_at: Option<DateTime<Utc>>,
    pub last_record_at: Option<DateTime<Utc>>,
    /// Enabled triggers that keep `audit_records` append-only.
    pub audit_triggers: Vec<String>,
    pub exports: i64,
    /// The newest export: when, where, through which record.
    pub last_export: Option<(DateTime<Utc>, String, i64)>,
    pub signing_key: bool,
}

/// User name, role, TOTP, expiry, password changed, created.
type UserRow = (
    String,
    String,
    bool,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

impl Store {
    /// Reads the facts the compliance report is made of. Auditors and
    /// platform admins only.
    pub async fn compliance_facts(&self, actor: &Actor) -> Result<ComplianceFacts, StoreError> {
        actor
            .check_role(Permission::ReadAudit)
            .map_err(|_| StoreError::Forbidden)?;
        if actor.tenant.is_some() {
            return Err(StoreError::Forbidden);
        }
        let mut reader = self.reader().await?;
        let at = super::now();
        let users: Vec<UserRow> = on_conn!(reader.conn(), c => sqlx::query_as(
                "SELECT username, role, totp_enabled, expires_at, password_changed_at, created_at, \
                 disabled_at FROM users ORDER BY username").fetch_all(c).await)?;
        let mut accounts = Vec::with_capacity(users.len());
        for (username, role, totp_enabled, expires_at, changed, created, disabled_at) in users {
            accounts.push(AccountFacts {
                username,
                role: role.parse().map_err(|_| StoreError::Corrupt("user role"))?,
                totp_enabled,
                expired: expires_at.is_some_and(|e| e <= at) || disabled_at.is_some(),
                initial_password: changed <= created,
            });
        }
        let (sealed_kubeconfigs,): (i64,) = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM clusters WHERE kubeconfig IS NOT NULL").fetch_one(c).await)?;
        let (audit_records, first_record_at, last_record_at): (
            i64,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        ) = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT COUNT(*), MIN(recorded_at), MAX(recorded_at) FROM audit_records")
            .fetch_one(c).await)?;
        let audit_triggers: Vec<(String,)> = match self.backend() {
            Backend::Postgres => on_conn!(reader.conn(), c => sqlx::query_as(
                "SELECT tgname::TEXT FROM pg_trigger WHERE tgrelid = 'audit_records'::regclass \
                 AND NOT tgisinternal AND tgenabled <> 'D' ORDER BY tgname").fetch_all(c).await)?,
            Backend::Sqlite => on_conn!(reader.conn(), c => sqlx::query_as(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' \
                 AND tbl_name = 'audit_records' ORDER BY name").fetch_all(c).await)?,
        };
        let (exports,): (i64,) = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM audit_exports").fetch_one(c).await)?;
        let last_export: Option<(DateTime<Utc>, String, i64)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT created_at, location, last_seq FROM audit_exports ORDER BY last_seq DESC LIMIT 1")
            .fetch_optional(c).await)?;
        let (keys,): (i64,) = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM audit_keys").fetch_one(c).await)?;
        Ok(ComplianceFacts {
            accounts,
            sealed_kubeconfigs,
            audit_records,
            first_record_at,
            last_record_at,
            audit_triggers: audit_triggers.into_iter().map(|(n,)| n).collect(),
            exports,
            last_export,
            signing_key: keys > 0,
        })
    }
}
