//! The audit trail as callers read it: searching it, checking its chain,
//! exporting it to object storage with a signed digest, the key that
//! verifies the digests, and the MLPS 2.0 (等保2.0) level-3 report
//! evaluated against the live system.
//!
//! Auditors and platform admins see every tenant's records (an auditor
//! that belongs to a tenant sees that tenant's); tenant admins see their
//! own tenant's. Only what sees every tenant verifies or exports the
//! chain, which spans them all. Reading changes nothing.

use chrono::{DateTime, Utc};
use http::StatusCode;
use modelfleet_core::audit::Outcome;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{Caller, Error, Hub, Result};
use crate::audit::{self, ExportError, ExportSummary};
use crate::compliance::{self, ComplianceReport, ReportContext};
use crate::identity::Permission;
use crate::ids::TenantId;
use crate::store::{AuditExport, AuditPage, AuditQuery, ChainReport, MAX_AUDIT_PAGE};

/// Records per page when a search names no limit.
pub const DEFAULT_AUDIT_PAGE: u32 = 50;

/// What to search the audit trail for.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Records at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Records before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The user name as recorded: `alice`, `apikey:mf_…`, `system:sync`.
    pub actor: Option<String>,
    /// `create`, `update`, `delete`, `login`, `login-failed`, …
    pub verb: Option<String>,
    /// `deployments`, `users`, `apikeys`, `clusters/prices`, …
    pub resource: Option<String>,
    /// The object's name.
    pub name: Option<String>,
    /// `Success` or `Failure`.
    pub outcome: Option<String>,
    /// One tenant's records (platform-wide auditors and admins).
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
    /// Records per page, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// An export of the records no earlier export holds.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateExport {
    /// Only records at or after this time (RFC 3339); records before it
    /// that no export holds yet are exported too, so the chain of exports
    /// has no gaps.
    pub from: Option<DateTime<Utc>>,
    /// Records before this time (default: now).
    pub to: Option<DateTime<Utc>>,
}

/// The platform's audit public key, which verifies every export digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPublicKey {
    pub key_id: String,
    /// The raw 32-byte Ed25519 public key.
    pub key: [u8; 32],
}

impl Hub {
    /// Searches the audit trail, oldest first, a page at a time.
    pub async fn audit_search(&self, caller: &Caller, params: SearchParams) -> Result<AuditPage> {
        caller.require(Permission::ReadAudit)?;
        let limit = params.limit.unwrap_or(DEFAULT_AUDIT_PAGE);
        if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
            return Err(Error::bad_request(format!(
                "limit must be between 1 and {MAX_AUDIT_PAGE}"
            )));
        }
        if let (Some(from), Some(to)) = (params.from, params.to)
            && from >= to
        {
            return Err(Error::invalid("to", "must be later than `from`"));
        }
        let outcome = params
            .outcome
            .as_deref()
            .map(str::parse::<Outcome>)
            .transpose()
            .map_err(|reason| Error::invalid("outcome", reason))?;
        let after = params
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    Error::bad_request("cursor is not one this API returned; start without it")
                })
            })
            .transpose()?;
        let query = AuditQuery {
            from: params.from,
            to: params.to,
            actor: params.actor,
            verb: params.verb,
            resource: params.resource,
            name: params.name,
            outcome,
            tenant: params.tenant,
            after,
            limit,
        };
        Ok(self.store.audit_records(&caller.actor, &query).await?)
    }

    /// Verifies every record in the database against its hash and its
    /// predecessor, and the newest against the chain's head.
    pub async fn verify_audit(&self, caller: &Caller) -> Result<ChainReport> {
        platform_wide(caller)?;
        Ok(self.store.verify_audit().await?)
    }

    /// Every export so far, oldest first.
    pub async fn audit_exports(&self, caller: &Caller) -> Result<Vec<AuditExport>> {
        platform_wide(caller)?;
        Ok(self.store.audit_exports().await?)
    }

    /// Exports the records no earlier export holds to the hub's object
    /// store, with a signed digest. Platform admins and platform-wide
    /// auditors. Nothing new to export is not an error: the summary says
    /// so.
    pub async fn export_audit(
        &self,
        caller: &Caller,
        request: CreateExport,
    ) -> Result<ExportSummary> {
        platform_wide(caller)?;
        let Some(target) = self.audit_target() else {
            return Err(Error::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-export-target",
                "No Export Target",
                "this hub has no audit export location; start it with --audit-export",
            ));
        };
        let to = request.to.unwrap_or_else(Utc::now);
        if let Some(from) = request.from
            && from >= to
        {
            return Err(Error::invalid("to", "must be later than `from`"));
        }
        audit::export(
            &self.store,
            &self.keyring,
            target,
            &caller.actor,
            request.from,
            to,
        )
        .await
        .map_err(|e| match e {
            ExportError::Store(e) => Error::from(e),
            ExportError::Storage(e) => Error::unavailable(
                format!(
                    "the export location did not take the files: {e}; nothing was recorded, \
                     so retrying is safe"
                ),
                &e,
            ),
            other => Error::invalid("export", other.to_string()),
        })
    }

    /// The platform's audit public key; anyone signed in may fetch it. It
    /// is made by the first export.
    pub async fn audit_public_key(&self, _caller: &Caller) -> Result<AuditPublicKey> {
        let Some((key_id, key)) = self.store.audit_public_key().await? else {
            return Err(Error::not_found(
                "audit public key (made by the first export)",
            ));
        };
        Ok(AuditPublicKey { key_id, key })
    }

    /// Evaluates the MLPS 2.0 level-3 items against the live system.
    /// Auditors and platform admins.
    pub async fn compliance_report(&self, caller: &Caller) -> Result<ComplianceReport> {
        caller.require(Permission::ReadAudit)?;
        // The platform's clusters are platform-wide facts: a tenant's
        // auditor sees the report without them.
        let cluster_rights = if caller.actor.tenant.is_none() {
            let observed = self.observe_fleet().await?;
            observed
                .clusters
                .into_iter()
                .filter_map(|view| {
                    let rights = view.pools.ok()?.excess_rights;
                    Some((view.cluster.name, rights))
                })
                .collect()
        } else {
            Vec::new()
        };
        let context = ReportContext {
            settings: &self.settings,
            login_policy: self.store.login_policy(),
            export_location: self.settings.audit_export.as_deref(),
            cluster_rights: Some(cluster_rights),
        };
        Ok(compliance::evaluate(&self.store, &caller.actor, &context).await?)
    }
}

/// Only those who see every tenant's records export or verify all of them.
fn platform_wide(caller: &Caller) -> Result<()> {
    caller.require(Permission::ReadAudit)?;
    if caller.actor.tenant.is_some() {
        return Err(Error::forbidden());
    }
    Ok(())
}
