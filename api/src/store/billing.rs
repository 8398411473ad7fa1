//! Billing in the database: usage intervals as billing reads them, tenant
//! discounts, credits and corrections, and final invoices. Budgets and
//! their alerts are in `budgets.rs`.
//!
//! Amounts are decided in `modelfleet_core::billing`; this module only
//! stores and loads. Every discount, budget and adjustment change is noted
//! on its transaction, so it is audited with the change. A month is
//! finalized once (`finalized_months`), and its invoices are stored exactly
//! as issued and never changed (the tables refuse it).

use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_core::billing::{
    Adjustment, BillingPeriod, Capacity, Discount, DiscountScope, Discounts, Invoice, UnixSeconds,
    UsageInterval,
};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::{Currency, Money};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::{AdjustmentId, DeploymentId, InvoiceId, TenantId};

/// The longest adjustment description accepted.
const MAX_DESCRIPTION_LEN: usize = 200;

/// Which usage to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageFilter {
    /// One tenant, or every tenant (platform-wide readers only).
    pub tenant: Option<TenantId>,
    pub deployment: Option<DeploymentId>,
    /// Usage billed in `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct IntervalRow {
    deployment_id: DeploymentId,
    deployment_name: String,
    tenant_id: TenantId,
    cluster: String,
    pool: String,
    cloud: Option<String>,
    region: Option<String>,
    accelerator: String,
    capacity: Option<String>,
    devices: i64,
    allocated_at: DateTime<Utc>,
    released_at: Option<DateTime<Utc>>,
}

impl IntervalRow {
    fn into_usage(self) -> Result<UsageInterval, StoreError> {
        let cloud: Cloud = self
            .cloud
            .as_deref()
            .ok_or(StoreError::Corrupt("interval cloud (its cluster is gone)"))?
            .parse()
            .map_err(|_| StoreError::Corrupt("interval cloud"))?;
        let capacity: Capacity = self
            .capacity
            .as_deref()
            .unwrap_or("on-demand")
            .parse()
            .map_err(|_| StoreError::Corrupt("interval capacity"))?;
        Ok(UsageInterval {
            deployment: self.deployment_id.to_string(),
            deployment_name: self.deployment_name,
            tenant: self.tenant_id.to_string(),
            cluster: self.cluster,
            pool: self.pool,
            cloud,
            region: self
                .region
                .ok_or(StoreError::Corrupt("interval region (its cluster is gone)"))?,
            accelerator: self.accelerator,
            capacity,
            devices: u32::try_from(self.devices)
                .map_err(|_| StoreError::Corrupt("interval devices"))?,
            start: UnixSeconds(self.allocated_at.timestamp()),
            end: self.released_at.map(|t| UnixSeconds(t.timestamp())),
        })
    }
}

/// A stored credit or correction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAdjustment {
    pub id: AdjustmentId,
    pub tenant: TenantId,
    pub period: BillingPeriod,
    pub adjustment: Adjustment,
    pub created_at: DateTime<Utc>,
}

/// A final invoice as it was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvoice {
    pub id: InvoiceId,
    pub tenant: TenantId,
    pub invoice: Invoice,
    pub finalized_at: DateTime<Utc>,
}

impl InvoiceId {
    /// The one id a tenant's invoice for a month and currency has, the same
    /// while it is a draft and once final.
    pub fn of(tenant: TenantId, period: BillingPeriod, currency: Currency) -> InvoiceId {
        let digest = Sha256::digest(format!(
            "modelfleet invoice\0{tenant}\0{period}\0{currency}"
        ));
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        InvoiceId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn scope_name(scope: DiscountScope) -> &'static str {
    match scope {
        DiscountScope::All => "all",
        DiscountScope::Cloud(cloud) => cloud.name(),
    }
}

impl Store {
    /// The usage intervals billed in `[from, to)`, with their price keys,
    /// ordered by start. An interval shorter than the 60-second minimum
    /// that starts in the window is included even when it ended before
    /// `from` could matter, so its top-up is rated.
    pub async fn usage_intervals(
        &self,
        scope: Scope,
        filter: &UsageFilter,
    ) -> Result<Vec<UsageInterval>, StoreError> {
        if let Some(tenant) = filter.tenant {
            visible(scope, tenant, "tenant")?;
        } else if !matches!(scope, Scope::All) {
            return Err(StoreError::NotFound("tenant"));
        }
        let mut reader = self.reader().await?;
        let rows: Vec<IntervalRow> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT i.deployment_id, d.name AS deployment_name, i.tenant_id, i.cluster, i.pool, \
             COALESCE(i.cloud, c.cloud) AS cloud, COALESCE(i.region, c.region) AS region, \
             i.accelerator, i.capacity, i.devices, i.allocated_at, i.released_at \
             FROM replica_intervals i \
             JOIN deployments d ON d.id = i.deployment_id \
             LEFT JOIN clusters c ON c.name = i.cluster \
             WHERE ($1 IS NULL OR i.tenant_id = $1) AND ($2 IS NULL OR i.deployment_id = $2) \
             AND i.allocated_at < $4 \
             AND (i.released_at IS NULL OR i.released_at > $3 OR i.allocated_at >= $3) \
             ORDER BY i.allocated_at, i.pod_uid")
            .bind(filter.tenant).bind(filter.deployment).bind(filter.from).bind(filter.to)
            .fetch_all(c).await)?;
        rows.into_iter().map(IntervalRow::into_usage).collect()
    }

    /// The tenants with usage in `[from, to)`, and those with adjustments
    /// in `period`: who gets an invoice for it.
    pub async fn billed_tenants(&self, period: BillingPeriod) -> Result<Vec<TenantId>, StoreError> {
        let (from, to) = period_times(period)?;
        let mut reader = self.reader().await?;
        let rows: Vec<(TenantId,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT tenant_id FROM replica_intervals WHERE allocated_at < $2 \
             AND (released_at IS NULL OR released_at > $1 OR allocated_at >= $1) \
             UNION SELECT tenant_id FROM invoice_adjustments WHERE period = $3 \
             ORDER BY 1")
            .bind(from).bind(to).bind(period.to_string())
            .fetch_all(c).await)?;
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }

    /// A tenant's discounts, as set.
    pub async fn discounts(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<Vec<Discount>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let rows: Vec<(String, i64)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT scope, CAST(basis_points AS BIGINT) FROM tenant_discounts WHERE tenant_id = $1 ORDER BY scope")
            .bind(tenant).fetch_all(c).await)?;
        rows.into_iter()
            .map(|(scope, bp)| {
                let scope = match scope.as_str() {
                    "all" => DiscountScope::All,
                    cloud => DiscountScope::Cloud(
                        cloud
                            .parse()
                            .map_err(|_| StoreError::Corrupt("discount scope"))?,
                    ),
                };
                let percent_basis_points =
                    u32::try_from(bp).map_err(|_| StoreError::Corrupt("discount"))?;
                Ok(Discount {
                    scope,
                    percent_basis_points,
                })
            })
            .collect()
    }

    /// A tenant's discounts, ready for rating.
    pub async fn discount_set(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<Discounts, StoreError> {
        let list = self.discounts(scope, tenant).await?;
        Discounts::new(list).map_err(|_| StoreError::Corrupt("discounts"))
    }

    /// A month's adjustments for a tenant, oldest first.
    pub async fn adjustments(
        &self,
        scope: Scope,
        tenant: TenantId,
        period: BillingPeriod,
    ) -> Result<Vec<StoredAdjustment>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let rows: Vec<(AdjustmentId, String, i64, String, DateTime<Utc>)> = on_conn!(reader.conn(), c => sqlx::query_as(
                "SELECT id, currency, amount_micros, description, created_at \
                 FROM invoice_adjustments WHERE tenant_id = $1 AND period = $2 \
                 ORDER BY created_at, id")
                .bind(tenant).bind(period.to_string()).fetch_all(c).await)?;
        rows.into_iter()
            .map(|(id, currency, micros, description, created_at)| {
                let currency: Currency = currency
                    .parse()
                    .map_err(|_| StoreError::Corrupt("adjustment currency"))?;
                Ok(StoredAdjustment {
                    id,
                    tenant,
                    period,
                    adjustment: Adjustment {
                        description,
                        amount: Money::from_micros(micros, currency),
                    },
                    created_at,
                })
            })
            .collect()
    }

    /// Whether a tenant's month has been finalized.
    pub async fn is_finalized(
        &self,
        tenant: TenantId,
        period: BillingPeriod,
    ) -> Result<bool, StoreError> {
        let mut reader = self.reader().await?;
        let (n,): (i64,) = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM finalized_months WHERE tenant_id = $1 AND period = $2")
            .bind(tenant).bind(period.to_string()).fetch_one(c).await)?;
        Ok(n > 0)
    }

    /// A tenant's final invoices for a month (none if the month is not
    /// finalized, or had no charges), in currency order.
    pub async fn final_invoices(
        &self,
        scope: Scope,
        tenant: TenantId,
        period: BillingPeriod,
    ) -> Result<Vec<StoredInvoice>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let rows: Vec<(InvoiceId, String, DateTime<Utc>)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT id, body, finalized_at FROM invoices WHERE tenant_id = $1 AND period = $2 \
             ORDER BY currency")
            .bind(tenant).bind(period.to_string()).fetch_all(c).await)?;
        rows.into_iter()
            .map(|(id, body, finalized_at)| stored_invoice(id, tenant, &body, finalized_at))
            .collect()
    }

    /// One final invoice by id.
    pub async fn final_invoice(
        &self,
        scope: Scope,
        id: InvoiceId,
    ) -> Result<Option<StoredInvoice>, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<(TenantId, String, DateTime<Utc>)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT tenant_id, body, finalized_at FROM invoices WHERE id = $1")
            .bind(id).fetch_optional(c).await)?;
        let Some((tenant, body, finalized_at)) = row else {
            return Ok(None);
        };
        if visible(scope, tenant, "invoice").is_err() {
            return Ok(None);
        }
        stored_invoice(id, tenant, &body, finalized_at).map(Some)
    }
}

fn stored_invoice(
    id: InvoiceId,
    tenant: TenantId,
    body: &str,
    finalized_at: DateTime<Utc>,
) -> Result<StoredInvoice, StoreError> {
    let invoice: Invoice =
        serde_json::from_str(body).map_err(|_| StoreError::Corrupt("invoice body"))?;
    Ok(StoredInvoice {
        id,
        tenant,
        invoice,
        finalized_at,
    })
}

/// The first instant of `period` and of the month after it.
pub fn period_times(period: BillingPeriod) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
    let at = |s: UnixSeconds| {
        DateTime::from_timestamp(s.0, 0).ok_or_else(|| invalid("period", "out of range"))
    };
    Ok((at(period.start())?, at(period.end())?))
}

impl Tx {
    /// Replaces a tenant's discounts. Platform admins only: discounts are
    /// commercial terms, not a tenant's own setting.
    pub async fn set_discounts(
        &mut self,
        tenant: TenantId,
        discounts: &[Discount],
    ) -> Result<(), StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "discount"))?;
        Discounts::new(discounts.iter().copied())
            .map_err(|e| invalid("discounts", e.to_string()))?;
        let name = self.tenant_name(tenant).await?;
        let at = now();
        on_conn!(self.conn(), c => sqlx::query("DELETE FROM tenant_discounts WHERE tenant_id = $1")
            .bind(tenant).execute(c).await.map(|_| ()))?;
        for d in discounts {
            on_conn!(self.conn(), c => sqlx::query(
                "INSERT INTO tenant_discounts (tenant_id, scope, basis_points, updated_at) \
                 VALUES ($1, $2, $3, $4)")
                .bind(tenant).bind(scope_name(d.scope))
                .bind(i64::from(d.percent_basis_points)).bind(at)
                .execute(c).await.map(|_| ()))?;
        }
        self.note("update", "discounts", Some(tenant), tenant.0, &name);
        Ok(())
    }

    /// Adds a credit (negative) or a correction (positive) to a month that
    /// is still open. Platform admins only.
    pub async fn add_adjustment(
        &mut self,
        tenant: TenantId,
        period: BillingPeriod,
        adjustment: &Adjustment,
    ) -> Result<StoredAdjustment, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "adjustment"))?;
        adjustment
            .validate()
            .map_err(|e| invalid("amount", e.to_string()))?;
        if adjustment.description.trim().is_empty()
            || adjustment.description.chars().count() > MAX_DESCRIPTION_LEN
        {
            return Err(invalid(
                "description",
                format!("say what it corrects, in 1 to {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        let name = self.tenant_name(tenant).await?;
        let finalized: (i64,) = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM finalized_months WHERE tenant_id = $1 AND period = $2")
            .bind(tenant).bind(period.to_string()).fetch_one(c).await)?;
        let at = now();
        if finalized.0 > 0 || UnixSeconds(at.timestamp()) >= period.end() {
            return Err(invalid(
                "period",
                format!(
                    "{period} has ended and its invoice is final; add the correction to the \
                     current month ({})",
                    BillingPeriod::containing(UnixSeconds(at.timestamp()))
                ),
            ));
        }
        let id = AdjustmentId::new();
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO invoice_adjustments (id, tenant_id, period, currency, amount_micros, \
             description, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id).bind(tenant).bind(period.to_string())
            .bind(adjustment.amount.currency().to_string()).bind(adjustment.amount.micros())
            .bind(&adjustment.description).bind(at)
            .execute(c).await.map(|_| ()))?;
        self.note("create", "adjustments", Some(tenant), id.0, &name);
        Ok(StoredAdjustment {
            id,
            tenant,
            period,
            adjustment: adjustment.clone(),
            created_at: at,
        })
    }

    /// Issues a tenant's final invoices for a month that has ended, once:
    /// when the month was finalized before, nothing is written and the
    /// invoices issued then are returned. Platform admins (the hub's own
    /// billing actor) only.
    pub async fn finalize_month(
        &mut self,
        tenant: TenantId,
        period: BillingPeriod,
        invoices: &[Invoice],
    ) -> Result<Vec<StoredInvoice>, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "invoice"))?;
        let at = now();
        if UnixSeconds(at.timestamp()) < period.end() {
            return Err(invalid("period", format!("{period} has not ended yet")));
        }
        let added = on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO finalized_months (tenant_id, period, finalized_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, period) DO NOTHING")
            .bind(tenant).bind(period.to_string()).bind(at)
            .execute(c).await.map(|r| r.rows_affected()))?;
        if added == 1 {
            for invoice in invoices {
                if invoice.tenant != tenant.to_string() || invoice.period != period {
                    return Err(invalid("invoice", "belongs to another tenant or month"));
                }
                let id = InvoiceId::of(tenant, period, invoice.currency);
                let body = serde_json::to_string(invoice)
                    .map_err(|_| StoreError::Corrupt("invoice body"))?;
                on_conn!(self.conn(), c => sqlx::query(
                    "INSERT INTO invoices (id, tenant_id, period, currency, total_micros, body, \
                     finalized_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(id).bind(tenant).bind(period.to_string())
                    .bind(invoice.currency.to_string()).bind(invoice.total.micros())
                    .bind(&body).bind(at)
                    .execute(c).await.map(|_| ()))?;
                let name = format!("{period} {}", invoice.currency);
                self.note("create", "invoices", Some(tenant), id.0, &name);
            }
        }
        let rows: Vec<(InvoiceId, String, DateTime<Utc>)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT id, body, finalized_at FROM invoices WHERE tenant_id = $1 AND period = $2 \
             ORDER BY currency")
            .bind(tenant).bind(period.to_string()).fetch_all(c).await)?;
        rows.into_iter()
            .map(|(id, body, finalized_at)| stored_invoice(id, tenant, &body, finalized_at))
            .collect()
    }

    pub(super) async fn tenant_name(&mut self, tenant: TenantId) -> Result<String, StoreError> {
        let row: Option<(String,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT name FROM tenants WHERE id = $1")
            .bind(tenant).fetch_optional(c).await)?;
        row.map(|(n,)| n).ok_or(StoreError::NotFound("tenant"))
    }
}

/// How long after a month ends its invoices are issued: time for cluster
/// sync to observe the last releases of the month.
pub fn finalize_after() -> TimeDelta {
    TimeDelta::minutes(15)
}
