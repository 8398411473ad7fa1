//! Billing: `/api/v1/usage`, `/api/v1/invoices`, `/api/v1/billing/exports`.
//! A tenant's budget, discounts and adjustments are in `tenant_billing.rs`.
//!
//! Anyone who reads a tenant reads its usage and invoices; tenant admins
//! set their budget; platform admins set discounts, add credits and
//! corrections, and export to object storage. Every change is audited with
//! its transaction.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use modelfleet_core::billing::{
    BillingError, BillingPeriod, Invoice, InvoiceLine, UnixSeconds, focus_csv, focus_rows,
    invoice_csv, usage_csv, usage_rows,
};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::billing::{
    self, BillingExport, BillingExportError, BillingServiceError, GroupBy, TenantInvoice,
    UsageQuery, UsageReport,
};
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, parse_id};
use crate::http::{ApiError, AppState, Caller};
use crate::identity::{Permission, Scope};
use crate::ids::{DeploymentId, InvoiceId, TenantId};
use crate::store::{UsageFilter, period_times};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(usage_export))
        .routes(routes!(list_invoices))
        .routes(routes!(show_invoice))
        .routes(routes!(export_invoice))
        .routes(routes!(create_export))
}

pub(super) fn period_param(text: Option<&str>) -> Result<BillingPeriod, ApiError> {
    match text {
        Some(text) => text
            .parse()
            .map_err(|e: BillingError| ApiError::invalid("period", e.to_string())),
        None => Ok(BillingPeriod::containing(UnixSeconds(
            crate::store::now().timestamp(),
        ))),
    }
}

fn csv_download(name: &str, body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

// ---------------------------------------------------------------- usage

#[derive(Debug, Deserialize, utoipa::IntoParams)]
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
    /// `day` (default), `deployment`, `cloud` or `accelerator`.
    pub group_by: Option<String>,
    /// A tenant's usage (platform staff; everyone else sees their own).
    /// Platform staff who name none see every tenant's.
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// Device time and its cost over a time range, grouped. Each group is
/// summed exactly and rounded once, half up, to the cent or fen.
#[utoipa::path(get, path = "/usage", tag = "billing", security(("bearer" = [])),
    params(UsageParams),
    responses(
        (status = 200, body = Object),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
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
        .map_err(|reason: String| ApiError::invalid("groupBy", reason))?;
    if let Some(a) = &params.accelerator
        && modelfleet_core::accelerator::Accelerator::find(a).is_none()
    {
        return Err(ApiError::invalid(
            "accelerator",
            format!("{a:?} is not in the accelerator catalog; `modelfleet catalog` lists the ids"),
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
    Ok(Json(
        billing::usage_report(state.store(), caller.scope(), &query).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageExportParams {
    /// The month, like `2026-11`; default this month.
    pub period: Option<String>,
    /// The tenant (platform staff; everyone else gets their own).
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// A month's usage, one row per replica interval, as CSV: devices, when
/// they were held, and what is billed with the 60-second minimum.
#[utoipa::path(get, path = "/usage/export", tag = "billing", security(("bearer" = [])),
    params(UsageExportParams),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn usage_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<UsageExportParams>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = caller.tenant(params.tenant)?;
    let period = period_param(params.period.as_deref())?;
    let (from, to) = period_times(period)?;
    let filter = UsageFilter {
        tenant: Some(tenant),
        deployment: None,
        from,
        to,
    };
    let intervals = state
        .store()
        .usage_intervals(caller.scope(), &filter)
        .await?;
    let now = UnixSeconds(crate::store::now().timestamp());
    let rows = usage_rows(period, &intervals, now).map_err(BillingServiceError::from)?;
    Ok(csv_download(
        &format!("usage-{period}.csv"),
        usage_csv(&rows),
    ))
}

// ---------------------------------------------------------------- invoices

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceSummary {
    #[schema(value_type = uuid::Uuid)]
    pub id: InvoiceId,
    #[schema(value_type = uuid::Uuid)]
    pub tenant_id: TenantId,
    /// `2026-11`.
    pub period: String,
    #[schema(value_type = crate::http::schema::CurrencySchema)]
    pub currency: String,
    /// `draft` while the month is open (and for a short while after, until
    /// the month's last usage is observed), `final` once issued.
    pub status: String,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub list_total: Money,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub discount_total: Money,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub total: Money,
    pub finalized_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLineView {
    /// FOCUS's ChargeCategory: `Usage`, `Credit` or `Adjustment`.
    pub category: String,
    pub description: String,
    #[schema(value_type = Option<uuid::Uuid>)]
    pub deployment_id: Option<String>,
    pub deployment_name: Option<String>,
    #[schema(value_type = Option<crate::http::schema::CloudSchema>)]
    pub cloud: Option<Cloud>,
    pub region: Option<String>,
    pub accelerator: Option<String>,
    /// `on-demand` or `spot`.
    pub capacity: Option<String>,
    /// Devices × billed seconds: the exact quantity.
    pub device_seconds: Option<u64>,
    /// The same in hours, four decimals.
    pub device_hours: Option<String>,
    /// Per device-hour.
    #[schema(value_type = Option<crate::http::schema::MoneySchema>)]
    pub unit_price: Option<Money>,
    /// `admin` or `default` (a list price nobody confirmed).
    pub price_source: Option<String>,
    /// The discount, in basis points (1500 = 15 %).
    pub discount_basis_points: Option<u32>,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub list_amount: Money,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub discount_amount: Money,
    #[schema(value_type = crate::http::schema::MoneySchema)]
    pub amount: Money,
    pub charge_start: String,
    pub charge_end: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceView {
    #[serde(flatten)]
    pub summary: InvoiceSummary,
    pub lines: Vec<InvoiceLineView>,
    /// How amounts are computed and rounded.
    pub rounding: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceList {
    pub items: Vec<InvoiceSummary>,
}

const ROUNDING: &str = "per second, 60 seconds minimum per replica interval; each line's exact \
    amount rounded once, half up, to the cent (USD) or fen (CNY); discount rounded the same way \
    and subtracted; the total is the sum of the lines";

fn summary(i: &TenantInvoice) -> InvoiceSummary {
    let inv = &i.invoice;
    InvoiceSummary {
        id: i.id,
        tenant_id: i.tenant,
        period: inv.period.to_string(),
        currency: inv.currency.to_string(),
        status: if i.finalized_at.is_some() {
            "final"
        } else {
            "draft"
        }
        .to_owned(),
        list_total: inv.list_total,
        discount_total: inv.discount_total,
        total: inv.total,
        finalized_at: i.finalized_at,
    }
}

fn line_view(line: &InvoiceLine) -> InvoiceLineView {
    let u = line.usage.as_ref();
    InvoiceLineView {
        category: line.category.name().to_owned(),
        description: line.description.clone(),
        deployment_id: u.map(|u| u.deployment.clone()),
        deployment_name: u.map(|u| u.deployment_name.clone()),
        cloud: u.map(|u| u.cloud),
        region: u.map(|u| u.region.clone()),
        accelerator: u.map(|u| u.accelerator.clone()),
        capacity: u.map(|u| u.capacity.name().to_owned()),
        device_seconds: u.map(|u| u.device_seconds),
        device_hours: u.map(|u| u.device_hours()),
        unit_price: u.map(|u| u.unit_price),
        price_source: u.map(|u| u.price_source.name().to_owned()),
        discount_basis_points: u.map(|u| u.discount_basis_points),
        list_amount: line.list_amount,
        discount_amount: line.discount_amount,
        amount: line.amount,
        charge_start: line.charge_start.to_rfc3339(),
        charge_end: line.charge_end.to_rfc3339(),
    }
}

fn view(i: &TenantInvoice) -> InvoiceView {
    InvoiceView {
        summary: summary(i),
        lines: i.invoice.lines.iter().map(line_view).collect(),
        rounding: ROUNDING,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoiceParams {
    /// The month, like `2026-11`; default this month.
    pub period: Option<String>,
    /// The tenant (platform staff; everyone else gets their own).
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// A tenant's invoices for a month, one per currency: drafts while the
/// month is open, final once issued.
#[utoipa::path(get, path = "/invoices", tag = "billing", security(("bearer" = [])),
    params(InvoiceParams),
    responses(
        (status = 200, body = InvoiceList),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_invoices(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<InvoiceParams>,
) -> Result<Json<InvoiceList>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = caller.tenant(params.tenant)?;
    let period = period_param(params.period.as_deref())?;
    let invoices = billing::invoices(state.store(), caller.scope(), tenant, period).await?;
    Ok(Json(InvoiceList {
        items: invoices.iter().map(summary).collect(),
    }))
}

pub async fn find_invoice(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<TenantInvoice, ApiError> {
    caller.require(Permission::Read)?;
    let id: InvoiceId = parse_id(id, "invoice")?;
    let tenants = match caller.scope() {
        Scope::Tenant(t) => vec![t],
        Scope::All => {
            let current = BillingPeriod::containing(UnixSeconds(crate::store::now().timestamp()));
            let mut all = state.store().billed_tenants(current).await?;
            all.extend(
                state
                    .store()
                    .billed_tenants(billing::previous(current))
                    .await?,
            );
            all.sort();
            all.dedup();
            all
        }
    };
    billing::invoice(state.store(), caller.scope(), id, &tenants)
        .await?
        .ok_or_else(|| ApiError::not_found("invoice"))
}

/// One invoice with its lines.
#[utoipa::path(get, path = "/invoices/{id}", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The invoice's id")),
    responses(
        (status = 200, body = InvoiceView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_invoice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, ApiError> {
    let invoice = find_invoice(&state, &caller, &id).await?;
    Ok(Json(view(&invoice)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` (the invoice's lines) or `focus` (FinOps FOCUS columns).
    pub format: Option<String>,
}

/// An invoice as a CSV download: its lines, or FOCUS rows whose BilledCost
/// sums to the invoice total.
#[utoipa::path(get, path = "/invoices/{id}/export", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The invoice's id"), ExportParams),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export_invoice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let format = params.format.as_deref().unwrap_or("csv");
    if !matches!(format, "csv" | "focus") {
        return Err(ApiError::invalid("format", "use csv or focus"));
    }
    let found = find_invoice(&state, &caller, &id).await?;
    let invoice: &Invoice = &found.invoice;
    let stem = format!("{}-{}", invoice.period, invoice.currency);
    if format == "focus" {
        let name = state.store().tenant(Scope::All, found.tenant).await?.name;
        let body = focus_csv(&focus_rows(invoice, &name));
        return Ok(csv_download(&format!("focus-{stem}.csv"), body));
    }
    Ok(csv_download(
        &format!("invoice-{stem}.csv"),
        invoice_csv(invoice, &found.id.to_string()),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBillingExport {
    /// The month, like `2026-11`.
    pub period: String,
    /// One tenant; every tenant billed in the month when absent.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// Writes a month's invoices (CSV and FOCUS) and usage to the object store
/// audit exports go to, under `billing/<month>/<tenant id>/`. Platform admins.
#[utoipa::path(post, path = "/billing/exports", tag = "billing", security(("bearer" = [])),
    request_body = CreateBillingExport,
    responses(
        (status = 201, body = Object),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBillingExport>,
) -> Result<(StatusCode, Json<BillingExport>), ApiError> {
    caller.require(Permission::ManagePlatform)?;
    let period = period_param(Some(&body.period))?;
    if let Some(t) = body.tenant {
        state.store().tenant(caller.scope(), t).await?;
    }
    let Some(target) = state.audit_target() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-export-target",
            "No Export Target",
            "this hub has no object store configured; start it with --audit-export",
        ));
    };
    let export = billing::export_period(state.store(), target, period, body.tenant)
        .await
        .map_err(|e| match e {
            BillingExportError::Billing(e) => ApiError::from(e),
            BillingExportError::Storage(e) => {
                ApiError::unavailable("the object store refused the export; retry", &e)
            }
        })?;
    Ok((StatusCode::CREATED, Json(export)))
}
