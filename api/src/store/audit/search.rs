//! Searching the audit trail: the filters auditors and admins use, each
//! bound as NULL when absent so one statement serves every combination on
//! both backends, and confined to the reader's tenant.

use chrono::{DateTime, Utc};
use modelfleet_core::audit::{Outcome, Record};

use super::{Row, record_of};
use crate::identity::{Actor, Permission, Scope};
use crate::ids::TenantId;
use crate::store::{Store, StoreError, on_conn};

/// Most records one search returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// A search of the audit trail. Every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The username as recorded (`alice`, `apikey:mf_…`, `system:sync`).
    pub actor: Option<String>,
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub name: Option<String>,
    pub outcome: Option<Outcome>,
    pub tenant: Option<TenantId>,
    /// Records after this sequence number (the previous page's last).
    pub after: Option<i64>,
    pub limit: u32,
}

/// One page of records, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub records: Vec<Record>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<i64>,
}

impl Store {
    /// Searches the audit trail, oldest first. Platform staff and
    /// platform-wide auditors see every record; anyone else with the
    /// permission sees their own tenant's.
    pub async fn audit_records(
        &self,
        actor: &Actor,
        query: &AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        actor
            .check_role(Permission::ReadAudit)
            .map_err(|_| StoreError::Forbidden)?;
        let tenant = match (actor.scope(), query.tenant) {
            (Scope::All, t) => t,
            (Scope::Tenant(own), None) => Some(own),
            (Scope::Tenant(own), Some(t)) if t == own => Some(own),
            (Scope::Tenant(_), Some(_)) => return Err(StoreError::NotFound("tenant")),
        };
        let limit = query.limit.clamp(1, MAX_AUDIT_PAGE);
        // Filters are bound as NULL when absent: one statement for every
        // combination, with the same text on both backends.
        let sql = select_records!(
            "WHERE seq > $1 \
             AND ($2 IS NULL OR recorded_at >= $2) AND ($3 IS NULL OR recorded_at < $3) \
             AND ($4 IS NULL OR username = $4) AND ($5 IS NULL OR verb = $5) \
             AND ($6 IS NULL OR resource = $6) AND ($7 IS NULL OR name = $7) \
             AND ($8 IS NULL OR outcome = $8) AND ($9 IS NULL OR namespace = $9) \
             ORDER BY seq LIMIT $10"
        );
        let mut reader = self.reader().await?;
        let outcome = query.outcome.map(Outcome::as_str);
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(sql)
            .bind(query.after.unwrap_or(0)).bind(query.from).bind(query.to)
            .bind(&query.actor).bind(&query.verb).bind(&query.resource).bind(&query.name)
            .bind(outcome).bind(tenant.map(|t| t.to_string())).bind(i64::from(limit) + 1)
            .fetch_all(c).await)?;
        let more = rows.len() > limit as usize;
        let records = rows
            .into_iter()
            .take(limit as usize)
            .map(|row| record_of(row).map_err(|_| StoreError::Corrupt("audit record")))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if more {
            records.last().map(|r| r.event.seq)
        } else {
            None
        };
        Ok(AuditPage { records, next })
    }
}
