//! Billing as callers use it: usage reports and their CSV, a tenant's
//! invoices and their exports, budgets and their alerts, discounts,
//! credits and corrections, and the month's export to object storage.
//!
//! Anyone who reads a tenant reads its usage and invoices; tenant admins
//! set their budget; platform admins set discounts, add credits and
//! corrections, and export. Every change is audited with its transaction.
//! The amounts themselves are `crate::billing`'s (and core's) to decide.

use chrono::{DateTime, Utc};
use http::StatusCode;
use modelfleet_core::billing::{
    Adjustment, BillingError, BillingPeriod, Discount, UnixSeconds, focus_csv, focus_rows,
    invoice_csv, usage_csv, usage_rows,
};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Money;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{Caller, Error, Hub, Result};
use crate::billing::webhook::{self, WebhookError};
use crate::billing::{
    self, BillingExport, BillingExportError, BudgetStatus, GroupBy, TenantInvoice, UsageQuery,
    UsageReport,
};
use crate::identity::{Permission, Scope};
use crate::ids::{DeploymentId, InvoiceId, TenantId};
use crate::secret::Secret;
use crate::store::{
    BudgetAlert, NewBudget, PricingModel, StoredAdjustment, UsageFilter, period_times,
};

/// What a usage report covers and how it is grouped.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Start of the range (RFC 3339); default the start of this month.
    pub from: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339, exclusive); default now. At most 366 days after `from`.
    pub to: Option<DateTime<Utc>>,
    /// One deployment's usage.
    #[param(value_type = Option<uuid::Uuid>)]
    pub deployment: Option<DeploymentId>,
    #[param(value_type = Option<crate::http::schema::CloudSchema>)]
    pub cloud: Option<Cloud>,
    /// An accelerator id, e.g. `h100-80gb`.
    pub accelerator: Option<String>,
    /// `day` (default), `deployment`, `model`, `key` (API key: tokens
    /// only), `cloud` or `accelerator` (device time only).
    pub group_by: Option<String>,
    /// A tenant's usage (platform staff; everyone else sees their own).
    /// Platform staff who name none see every tenant's.
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// A tenant's monthly budget as callers set it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetBudget {
    /// Per calendar month (UTC), e.g. `"5000.00 USD"`.
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub amount: Money,
    /// Refuse new deployments once the month's spend reaches the budget.
    #[serde(default)]
    pub refuse_at_limit: bool,
    /// Where alerts at 80 % and 100 % are posted (JSON, signed).
    pub webhook_url: Option<String>,
    /// Signs each delivery: `Modelfleet-Signature: t=<unix>,v1=<hex
    /// HMAC-SHA256(secret, "<t>.<body>")>`. At least 16 characters;
    /// required with a webhook URL. Never shown again.
    pub webhook_secret: Option<String>,
}

/// A credit or correction to a month that is still open.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAdjustment {
    /// The open month it applies to, like `2026-11`; default this month.
    pub period: Option<String>,
    /// `credit` (taken off the invoice) or `charge` (added to it).
    pub kind: String,
    /// How much, in whole cents or fen: `"25.00 USD"`.
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub amount: Money,
    /// What it corrects: shown on the invoice line.
    pub description: String,
}

/// A month's billing export to object storage.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBillingExport {
    /// The month, like `2026-11`.
    pub period: String,
    /// One tenant; every tenant billed in the month when absent.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// How an invoice is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceFormat {
    /// The invoice's own lines.
    Csv,
    /// FinOps FOCUS rows whose BilledCost sums to the invoice total.
    Focus,
}

impl std::str::FromStr for InvoiceFormat {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "csv" => Ok(InvoiceFormat::Csv),
            "focus" => Ok(InvoiceFormat::Focus),
            _ => Err(Error::invalid("format", "use csv or focus")),
        }
    }
}

/// How an invoice's amounts are computed and rounded, in words.
pub const ROUNDING: &str = "per second, 60 seconds minimum per replica interval; tokens at the \
    price per million in force in their hour; each line's exact amount rounded once, half up, to \
    the cent (USD) or fen (CNY); discount rounded the same way and subtracted; the total is the \
    sum of the lines";

/// A CSV file to download: its name and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFile {
    pub name: String,
    pub body: String,
}

/// The billing period `text` names (`2026-11`), or this month's.
pub fn period(text: Option<&str>) -> Result<BillingPeriod> {
    match text {
        Some(text) => text
            .parse()
            .map_err(|e: BillingError| Error::invalid("period", e.to_string())),
        None => Ok(BillingPeriod::containing(UnixSeconds(
            crate::store::now().timestamp(),
        ))),
    }
}

impl Hub {
    /// Device time and tokens, and their cost, over a time range,
    /// grouped. Each group is summed exactly and rounded once, half up, to
    /// the cent or fen.
    pub async fn usage(&self, caller: &Caller, params: UsageParams) -> Result<UsageReport> {
        caller.require(Permission::Read)?;
        let tenant = match (caller.actor.tenant, params.tenant) {
            (None, None) => None,
            (own, named) => Some(caller.tenant(named.or(own))?),
        };
        let now = crate::store::now();
        let from = match params.from {
            Some(from) => from,
            None => period_times(BillingPeriod::containing(UnixSeconds(now.timestamp())))?.0,
        };
        let to = params.to.unwrap_or(now);
        let group_by: GroupBy = params
            .group_by
            .as_deref()
            .unwrap_or("day")
            .parse()
            .map_err(|reason: String| Error::invalid("groupBy", reason))?;
        if let Some(a) = &params.accelerator
            && modelfleet_core::accelerator::Accelerator::find(a).is_none()
        {
            return Err(Error::invalid(
                "accelerator",
                format!(
                    "{a:?} is not in the accelerator catalog; `modelfleet catalog` lists the ids"
                ),
            ));
        }
        let query = UsageQuery {
            tenant,
            from,
            to,
            deployment: params.deployment,
            cloud: params.cloud,
            accelerator: params.accelerator,
            group_by,
        };
        Ok(billing::usage_report(&self.store, caller.scope(), &query).await?)
    }

    /// A month's usage, one row per replica interval, as CSV: devices,
    /// when they were held, and what is billed with the 60-second minimum.
    pub async fn usage_csv(
        &self,
        caller: &Caller,
        tenant: Option<TenantId>,
        month: Option<&str>,
    ) -> Result<CsvFile> {
        caller.require(Permission::Read)?;
        let tenant = caller.tenant(tenant)?;
        let period = period(month)?;
        let (from, to) = period_times(period)?;
        let filter = UsageFilter {
            tenant: Some(tenant),
            deployment: None,
            from,
            to,
        };
        let intervals = self.store.usage_intervals(caller.scope(), &filter).await?;
        let now = UnixSeconds(crate::store::now().timestamp());
        let rows =
            usage_rows(period, &intervals, now).map_err(billing::BillingServiceError::from)?;
        Ok(CsvFile {
            name: format!("usage-{period}.csv"),
            body: usage_csv(&rows),
        })
    }

    /// A tenant's invoices for a month, one per currency: drafts while the
    /// month is open, final once issued.
    pub async fn invoices(
        &self,
        caller: &Caller,
        tenant: Option<TenantId>,
        month: Option<&str>,
    ) -> Result<Vec<TenantInvoice>> {
        caller.require(Permission::Read)?;
        let tenant = caller.tenant(tenant)?;
        let period = period(month)?;
        Ok(billing::invoices(&self.store, caller.scope(), tenant, period).await?)
    }

    /// One invoice with its lines.
    pub async fn invoice(&self, caller: &Caller, id: InvoiceId) -> Result<TenantInvoice> {
        caller.require(Permission::Read)?;
        let tenants = match caller.scope() {
            Scope::Tenant(t) => vec![t],
            Scope::All => {
                let current =
                    BillingPeriod::containing(UnixSeconds(crate::store::now().timestamp()));
                let mut all = self.store.billed_tenants(current).await?;
                all.extend(
                    self.store
                        .billed_tenants(billing::previous(current))
                        .await?,
                );
                all.sort();
                all.dedup();
                all
            }
        };
        billing::invoice(&self.store, caller.scope(), id, &tenants)
            .await?
            .ok_or_else(|| Error::not_found("invoice"))
    }

    /// An invoice as a CSV file: its lines, or FOCUS rows.
    pub async fn invoice_csv(
        &self,
        caller: &Caller,
        id: InvoiceId,
        format: InvoiceFormat,
    ) -> Result<CsvFile> {
        let found = self.invoice(caller, id).await?;
        let invoice = &found.invoice;
        let stem = format!("{}-{}", invoice.period, invoice.currency);
        Ok(match format {
            InvoiceFormat::Focus => {
                let name = self.store.tenant(Scope::All, found.tenant).await?.name;
                CsvFile {
                    name: format!("focus-{stem}.csv"),
                    body: focus_csv(&focus_rows(invoice, &name)),
                }
            }
            InvoiceFormat::Csv => CsvFile {
                name: format!("invoice-{stem}.csv"),
                body: invoice_csv(invoice, &found.id.to_string()),
            },
        })
    }

    /// Writes a month's invoices (CSV and FOCUS) and usage to the object
    /// store audit exports go to, under `billing/<month>/<tenant id>/`.
    /// Platform admins.
    pub async fn export_billing(
        &self,
        caller: &Caller,
        request: CreateBillingExport,
    ) -> Result<BillingExport> {
        caller.require(Permission::ManagePlatform)?;
        let period = period(Some(&request.period))?;
        if let Some(t) = request.tenant {
            self.store.tenant(caller.scope(), t).await?;
        }
        let Some(target) = self.audit_target() else {
            return Err(Error::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-export-target",
                "No Export Target",
                "this hub has no object store configured; start it with --audit-export",
            ));
        };
        billing::export_period(&self.store, target, period, request.tenant)
            .await
            .map_err(|e| match e {
                BillingExportError::Billing(e) => Error::from(e),
                BillingExportError::Storage(e) => {
                    Error::unavailable("the object store refused the export; retry", &e)
                }
            })
    }

    /// A tenant's budget and this month's spend against it.
    /// Its webhook (masked) only for those who may manage the tenant.
    pub async fn budget(&self, caller: &Caller, tenant: TenantId) -> Result<BudgetStatus> {
        caller.require(Permission::Read)?;
        let status = billing::budget_status(&self.store, caller.scope(), tenant)
            .await?
            .ok_or_else(|| Error::not_found("budget"))?;
        Ok(
            if caller.actor.check(tenant, Permission::ManageTenant).is_ok() {
                status
            } else {
                status.for_viewer()
            },
        )
    }

    /// Sets a tenant's monthly budget. Tenant admins and platform admins.
    pub async fn set_budget(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: SetBudget,
    ) -> Result<BudgetStatus> {
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManageTenant)?;
        let webhook = match (request.webhook_url, request.webhook_secret) {
            (Some(url), Some(secret)) => {
                webhook::check_receiver(&url, self.settings.webhook_allow_private_addresses)
                    .map_err(|e| match e {
                        WebhookError::InvalidUrl(reason) => {
                            Error::invalid("webhookUrl", format!("the webhook URL {reason}"))
                        }
                        e => Error::internal(&e),
                    })?;
                Some((url, Secret::new(secret)))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    "webhookSecret",
                    "a webhook needs a secret to sign its deliveries with",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "webhookUrl",
                    "a secret without a webhook URL signs nothing; give both or neither",
                ));
            }
        };
        let new = NewBudget {
            per_month: request.amount,
            refuse_at_limit: request.refuse_at_limit,
            webhook,
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        tx.set_budget(&self.keyring, tenant, &new).await?;
        tx.commit_with(StatusCode::OK).await?;
        self.budget(caller, tenant).await
    }

    /// Sets a tenant's monthly budget and leaves its webhook as it is: the
    /// console's form, which shows the webhook only masked and its secret
    /// never. Tenant admins and platform admins.
    pub async fn set_budget_keeping_webhook(
        &self,
        caller: &Caller,
        tenant: TenantId,
        amount: Money,
        refuse_at_limit: bool,
    ) -> Result<BudgetStatus> {
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManageTenant)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        tx.set_budget_keeping_webhook(tenant, amount, refuse_at_limit)
            .await?;
        tx.commit_with(StatusCode::OK).await?;
        self.budget(caller, tenant).await
    }

    /// Removes a tenant's budget: no more alerts or refusals.
    pub async fn delete_budget(&self, caller: &Caller, tenant: TenantId) -> Result<()> {
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManageTenant)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        if !tx.delete_budget(tenant).await? {
            tx.rollback().await?;
            return Err(Error::not_found("budget"));
        }
        tx.commit_with(StatusCode::NO_CONTENT).await?;
        Ok(())
    }

    /// The budget alerts raised for a tenant, newest first, with their
    /// webhook delivery state.
    pub async fn budget_alerts(
        &self,
        caller: &Caller,
        tenant: TenantId,
    ) -> Result<Vec<BudgetAlert>> {
        caller.require(Permission::Read)?;
        Ok(self.store.budget_alerts(caller.scope(), tenant).await?)
    }

    /// A tenant's discounts.
    pub async fn discounts(&self, caller: &Caller, tenant: TenantId) -> Result<Vec<Discount>> {
        caller.require(Permission::Read)?;
        Ok(self.store.discounts(caller.scope(), tenant).await?)
    }

    /// Replaces a tenant's discounts; they apply to every month not yet
    /// final. Platform admins.
    pub async fn set_discounts(
        &self,
        caller: &Caller,
        tenant: TenantId,
        discounts: &[Discount],
    ) -> Result<()> {
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManagePlatform)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        tx.set_discounts(tenant, discounts).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(())
    }

    /// How a tenant is billed: `time` (device-hours) or `tokens`.
    pub async fn pricing_model(&self, caller: &Caller, tenant: TenantId) -> Result<PricingModel> {
        caller.require(Permission::Read)?;
        Ok(self.store.pricing_model(caller.scope(), tenant).await?)
    }

    /// Sets how a tenant is billed; it applies to every month not yet
    /// final, as discounts do. Platform admins.
    pub async fn set_pricing_model(
        &self,
        caller: &Caller,
        tenant: TenantId,
        model: PricingModel,
    ) -> Result<()> {
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManagePlatform)?;
        let mut tx = self.store.begin(&caller.actor).await?;
        tx.set_pricing_model(tenant, model).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(())
    }

    /// A tenant's credits and corrections for a month.
    pub async fn adjustments(
        &self,
        caller: &Caller,
        tenant: TenantId,
        month: Option<&str>,
    ) -> Result<Vec<StoredAdjustment>> {
        caller.require(Permission::Read)?;
        let period = period(month)?;
        Ok(self
            .store
            .adjustments(caller.scope(), tenant, period)
            .await?)
    }

    /// Adds a credit or correction to a month that is still open; it
    /// becomes a line of that month's invoice. Platform admins.
    pub async fn add_adjustment(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: CreateAdjustment,
    ) -> Result<StoredAdjustment> {
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManagePlatform)?;
        let period = period(request.period.as_deref())?;
        let amount = match request.kind.as_str() {
            "credit" => Money::from_micros(-request.amount.micros(), request.amount.currency()),
            "charge" => request.amount,
            other => {
                return Err(Error::invalid(
                    "kind",
                    format!("{other:?} is neither `credit` nor `charge`"),
                ));
            }
        };
        let adjustment = Adjustment {
            description: request.description,
            amount,
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        let stored = tx.add_adjustment(tenant, period, &adjustment).await?;
        tx.commit_with(StatusCode::CREATED).await?;
        Ok(stored)
    }
}
