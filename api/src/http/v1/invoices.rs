//! `/api/v1/invoices`: a tenant's invoices, drafts while the month is open
//! and final once issued, and their CSV and FOCUS exports.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use modelfleet_core::billing::InvoiceLine;
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::csv_download;
use crate::billing::TenantInvoice;
use crate::http::error::Problem;
use crate::http::extract::{ApiQuery, parse_id};
use crate::http::{ApiError, AppState, Caller};
use crate::ids::{InvoiceId, TenantId};
use crate::service::billing::{InvoiceFormat, ROUNDING};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invoices))
        .routes(routes!(show_invoice))
        .routes(routes!(export_invoice))
}

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
    /// Per device-hour, or per million tokens on a token line.
    #[schema(value_type = Option<crate::http::schema::MoneySchema>)]
    pub unit_price: Option<Money>,
    /// A token line's catalog model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A token line's `input` or `output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_direction: Option<String>,
    /// A token line's tokens: the exact quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
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

pub fn summary(i: &TenantInvoice) -> InvoiceSummary {
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
    let t = line.tokens.as_ref();
    InvoiceLineView {
        category: line.category.name().to_owned(),
        description: line.description.clone(),
        deployment_id: u
            .map(|u| u.deployment.clone())
            .or_else(|| t.map(|t| t.deployment.clone())),
        deployment_name: u
            .map(|u| u.deployment_name.clone())
            .or_else(|| t.map(|t| t.deployment_name.clone())),
        cloud: u.map(|u| u.cloud),
        region: u.map(|u| u.region.clone()),
        accelerator: u.map(|u| u.accelerator.clone()),
        capacity: u.map(|u| u.capacity.name().to_owned()),
        device_seconds: u.map(|u| u.device_seconds),
        device_hours: u.map(|u| u.device_hours()),
        unit_price: u.map(|u| u.unit_price).or_else(|| t.map(|t| t.unit_price)),
        model: t.map(|t| t.model.clone()),
        token_direction: t.map(|t| t.direction.name().to_owned()),
        tokens: t.map(|t| t.tokens),
        price_source: u.map(|u| u.price_source.name().to_owned()),
        discount_basis_points: u
            .map(|u| u.discount_basis_points)
            .or_else(|| t.map(|t| t.discount_basis_points)),
        list_amount: line.list_amount,
        discount_amount: line.discount_amount,
        amount: line.amount,
        charge_start: line.charge_start.to_rfc3339(),
        charge_end: line.charge_end.to_rfc3339(),
    }
}

pub fn view(i: &TenantInvoice) -> InvoiceView {
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
    let invoices = state
        .hub()
        .invoices(&caller, params.tenant, params.period.as_deref())
        .await?;
    Ok(Json(InvoiceList {
        items: invoices.iter().map(summary).collect(),
    }))
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
    let id: InvoiceId = parse_id(&id, "invoice")?;
    Ok(Json(view(&state.hub().invoice(&caller, id).await?)))
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
    let format: InvoiceFormat = params.format.as_deref().unwrap_or("csv").parse()?;
    let id: InvoiceId = parse_id(&id, "invoice")?;
    Ok(csv_download(
        state.hub().invoice_csv(&caller, id, format).await?,
    ))
}
