//! Billing, the hub's part: invoices as a tenant sees them (final ones as
//! issued, the open month as a draft rated now), usage reports, the budget
//! check and its alerts, and billing exports to object storage.
//!
//! Every amount is decided by `modelfleet_core::billing` from what the
//! store holds: price catalog, replica intervals, discounts, adjustments,
//! and for a tenant on token pricing the token prices and metered tokens.
//! A month's invoices are issued ("finalized") once, [`finalize_after`]
//! after it ends — time for cluster sync to observe the month's last
//! releases — by the first request that asks for them or by the billing
//! loop, whichever comes first; after that they are read back exactly as
//! issued and never rated again.

mod alerts;
mod budget;
mod exports;
pub mod schedule;
mod usage;
pub mod webhook;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use modelfleet_core::billing::{
    Adjustment, BillingError, BillingPeriod, Invoice, InvoiceBuilder, InvoiceStatus,
    TokenPriceCatalog, TokenUsage, UnixSeconds,
};

use crate::identity::{Actor, Scope};
use crate::ids::{DeploymentId, InvoiceId, TenantId};
use crate::store::{
    PricingModel, Store, StoreError, TokenFilter, UsageFilter, finalize_after, now, period_times,
};

pub use alerts::{alert_body, dispatch_alerts};
pub use budget::{
    BudgetCheck, BudgetStatus, THRESHOLDS, budget_refusal, budget_status, check_budgets,
};
pub use exports::{BillingExport, BillingExportError, ExportedObject, export_period};
pub use usage::{
    GroupBy, MAX_RANGE_DAYS, TokenGroup, UsageGroup, UsageQuery, UsageReport, check_range,
    usage_report,
};

/// Who the hub's own billing work is recorded as.
pub fn actor() -> Actor {
    Actor::system("billing")
}

/// Why billing could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BillingServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The usage cannot be rated as it stands (a second without a price,
    /// amounts out of range): the message says what to fix.
    #[error(transparent)]
    Rating(#[from] BillingError),
}

/// A tenant's invoice with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInvoice {
    pub id: InvoiceId,
    pub tenant: TenantId,
    pub invoice: Invoice,
    /// When it was issued; `None` while it is a draft.
    pub finalized_at: Option<DateTime<Utc>>,
}

fn unix(at: DateTime<Utc>) -> UnixSeconds {
    UnixSeconds(at.timestamp())
}

/// Rates a tenant's month as of `at`, from what the store holds now.
async fn rate_month(
    store: &Store,
    tenant: TenantId,
    period: BillingPeriod,
    at: DateTime<Utc>,
) -> Result<Vec<Invoice>, BillingServiceError> {
    let (from, to) = period_times(period)?;
    let catalog = store.price_catalog().await?;
    let discounts = store.discount_set(Scope::All, tenant).await?;
    let filter = UsageFilter {
        tenant: Some(tenant),
        deployment: None,
        from,
        to,
    };
    let intervals = store.usage_intervals(Scope::All, &filter).await?;
    let adjustments: Vec<Adjustment> = store
        .adjustments(Scope::All, tenant, period)
        .await?
        .into_iter()
        .map(|a| a.adjustment)
        .collect();
    let on_tokens = store.pricing_model(Scope::All, tenant).await? == PricingModel::Tokens;
    let token_prices = if on_tokens {
        store.token_price_catalog().await?
    } else {
        TokenPriceCatalog::new()
    };
    let mut builder =
        InvoiceBuilder::new(&tenant.to_string(), period, &catalog, &discounts, unix(at));
    let mut tokens = Vec::new();
    if on_tokens {
        let models = store.deployment_models(Scope::All, tenant).await?;
        builder.bill_by_tokens(
            &token_prices,
            models.into_iter().map(|(d, m)| (d.to_string(), m)),
        );
        tokens = token_usage(store, Scope::All, tenant, from, to).await?;
    }
    for interval in &intervals {
        builder.add(interval)?;
    }
    for usage in &tokens {
        builder.add_tokens(usage)?;
    }
    for adjustment in adjustments {
        builder.adjust(adjustment)?;
    }
    Ok(builder.finish()?)
}

/// A tenant's metered tokens in `[from, to)`, by deployment, model and
/// hour (keys summed together), as billing rates them.
pub(crate) async fn token_usage(
    store: &Store,
    scope: Scope,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TokenUsage>, StoreError> {
    let totals = store
        .token_totals(
            scope,
            &TokenFilter {
                tenant: Some(tenant),
                from,
                to,
                deployment: None,
                api_key: None,
            },
        )
        .await?;
    let mut by_hour: BTreeMap<(DeploymentId, String, DateTime<Utc>), TokenUsage> = BTreeMap::new();
    for t in totals {
        let usage = by_hour
            .entry((t.deployment, t.model.clone(), t.hour))
            .or_insert_with(|| TokenUsage {
                deployment: t.deployment.to_string(),
                deployment_name: t.deployment_name.clone(),
                tenant: t.tenant.to_string(),
                model: t.model.clone(),
                hour: unix(t.hour),
                requests: 0,
                input_tokens: 0,
                output_tokens: 0,
            });
        let overflow = || StoreError::Corrupt("token totals");
        usage.requests = usage
            .requests
            .checked_add(t.requests)
            .ok_or_else(overflow)?;
        usage.input_tokens = usage
            .input_tokens
            .checked_add(t.input_tokens)
            .ok_or_else(overflow)?;
        usage.output_tokens = usage
            .output_tokens
            .checked_add(t.output_tokens)
            .ok_or_else(overflow)?;
    }
    Ok(by_hour.into_values().collect())
}

/// Whether `period`'s invoices are due to be issued at `at`.
fn due(period: BillingPeriod, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let (_, end) = period_times(period)?;
    Ok(at >= end + finalize_after())
}

/// A tenant's invoices for `period`: as issued when final; issued now if
/// they are due; otherwise drafts rated up to now (a month that ended less
/// than [`finalize_after`] ago is still a draft).
pub async fn invoices(
    store: &Store,
    scope: Scope,
    tenant: TenantId,
    period: BillingPeriod,
) -> Result<Vec<TenantInvoice>, BillingServiceError> {
    if !scope.allows(tenant) {
        return Err(StoreError::NotFound("tenant").into());
    }
    let at = now();
    if store.is_finalized(tenant, period).await? {
        return Ok(issued(
            store.final_invoices(Scope::All, tenant, period).await?,
        ));
    }
    if due(period, at)? {
        return finalize(store, tenant, period).await;
    }
    let drafts = rate_month(store, tenant, period, at).await?;
    Ok(drafts
        .into_iter()
        .map(|mut invoice| {
            invoice.status = InvoiceStatus::Draft;
            TenantInvoice {
                id: InvoiceId::of(tenant, period, invoice.currency),
                tenant,
                invoice,
                finalized_at: None,
            }
        })
        .collect())
}

fn issued(stored: Vec<crate::store::StoredInvoice>) -> Vec<TenantInvoice> {
    stored
        .into_iter()
        .map(|s| TenantInvoice {
            id: s.id,
            tenant: s.tenant,
            invoice: s.invoice,
            finalized_at: Some(s.finalized_at),
        })
        .collect()
}

/// Issues a tenant's invoices for an ended month (once; a second call
/// returns what the first issued).
pub async fn finalize(
    store: &Store,
    tenant: TenantId,
    period: BillingPeriod,
) -> Result<Vec<TenantInvoice>, BillingServiceError> {
    let at = now();
    let invoices = rate_month(store, tenant, period, at).await?;
    let mut tx = store.begin(&actor()).await?;
    let stored = tx.finalize_month(tenant, period, &invoices).await?;
    tx.commit().await?;
    Ok(issued(stored))
}

/// Issues every tenant's invoices for the months that are due and not yet
/// issued: the previous month, once [`finalize_after`] has passed. Returns
/// how many tenants' months were issued.
pub async fn finalize_due(store: &Store) -> Result<usize, BillingServiceError> {
    let at = now();
    let current = BillingPeriod::containing(unix(at));
    let mut issued = 0;
    for period in [previous(current), current] {
        if !due(period, at)? {
            continue;
        }
        for tenant in store.billed_tenants(period).await? {
            if !store.is_finalized(tenant, period).await? {
                finalize(store, tenant, period).await?;
                issued += 1;
            }
        }
    }
    Ok(issued)
}

/// The month before `period`.
pub fn previous(period: BillingPeriod) -> BillingPeriod {
    let (year, month) = if period.month() == 1 {
        (period.year() - 1, 12)
    } else {
        (period.year(), period.month() - 1)
    };
    BillingPeriod::new(year, month).unwrap_or(period)
}

/// One invoice by id: the final one, or the draft of an open month.
pub async fn invoice(
    store: &Store,
    scope: Scope,
    id: InvoiceId,
    tenants: &[TenantId],
) -> Result<Option<TenantInvoice>, BillingServiceError> {
    if let Some(stored) = store.final_invoice(scope, id).await? {
        return Ok(issued(vec![stored]).pop());
    }
    // Not issued: a draft's id is derived from tenant, month and currency;
    // look in the current and previous month of the tenants in scope.
    let current = BillingPeriod::containing(unix(now()));
    for &tenant in tenants.iter().filter(|t| scope.allows(**t)) {
        for period in [current, previous(current)] {
            let found = invoices(store, scope, tenant, period)
                .await?
                .into_iter()
                .find(|i| i.id == id);
            if found.is_some() {
                return Ok(found);
            }
        }
    }
    Ok(None)
}
