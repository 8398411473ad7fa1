//! Billing exports to object storage: for each tenant billed in a month,
//! its invoices as CSV and as FOCUS, and its usage listing, written to the
//! same target as audit exports under `billing/<month>/<tenant id>/`.
//! A month that is final exports what was issued; an open month exports its
//! drafts as of now (and says so in every row's status).

use modelfleet_core::billing::{
    BillingPeriod, UnixSeconds, focus_csv, focus_rows, invoice_csv, usage_csv, usage_rows,
};
use serde::Serialize;

use super::{BillingServiceError, invoices};
use crate::audit::{ExportTarget, StorageError};
use crate::identity::Scope;
use crate::ids::TenantId;
use crate::store::{Store, UsageFilter, now, period_times};

/// One object written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedObject {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

/// What one export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingExport {
    pub period: String,
    pub location: String,
    pub objects: Vec<ExportedObject>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingExportError {
    #[error(transparent)]
    Billing(#[from] BillingServiceError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

async fn put(
    target: &ExportTarget,
    name: &str,
    text: &str,
) -> Result<ExportedObject, StorageError> {
    let key = target.key(name);
    let mut writer = target.create(&key).await?;
    if let Err(e) = writer.write(text.as_bytes()).await {
        writer.abort().await;
        return Err(e);
    }
    let written = writer.finish().await?;
    Ok(ExportedObject {
        key: written.key,
        size: written.size,
        sha256: written.sha256,
    })
}

/// Exports `period` for `tenant`, or for every tenant billed in it.
pub async fn export_period(
    store: &Store,
    target: &ExportTarget,
    period: BillingPeriod,
    tenant: Option<TenantId>,
) -> Result<BillingExport, BillingExportError> {
    let tenants = match tenant {
        Some(t) => vec![t],
        None => store
            .billed_tenants(period)
            .await
            .map_err(BillingServiceError::from)?,
    };
    let (from, to) = period_times(period).map_err(BillingServiceError::from)?;
    let mut objects = Vec::new();
    for tenant in tenants {
        let name = store
            .tenant(Scope::All, tenant)
            .await
            .map_err(BillingServiceError::from)?
            .name;
        let dir = format!("billing/{period}/{tenant}");
        for issued in invoices(store, Scope::All, tenant, period).await? {
            let currency = issued.invoice.currency;
            let csv = invoice_csv(&issued.invoice, &issued.id.to_string());
            objects.push(put(target, &format!("{dir}/invoice-{currency}.csv"), &csv).await?);
            let focus = focus_csv(&focus_rows(&issued.invoice, &name));
            objects.push(put(target, &format!("{dir}/focus-{currency}.csv"), &focus).await?);
        }
        let filter = UsageFilter {
            tenant: Some(tenant),
            deployment: None,
            from,
            to,
        };
        let intervals = store
            .usage_intervals(Scope::All, &filter)
            .await
            .map_err(BillingServiceError::from)?;
        let rows = usage_rows(period, &intervals, UnixSeconds(now().timestamp()))
            .map_err(BillingServiceError::from)?;
        objects.push(put(target, &format!("{dir}/usage.csv"), &usage_csv(&rows)).await?);
    }
    Ok(BillingExport {
        period: period.to_string(),
        location: target.location().to_string(),
        objects,
    })
}
