//! One invoice with its lines, and its CSV and FOCUS downloads.

use modelfleet_api::http::extract::parse_id;
use modelfleet_api::ids::InvoiceId;
use modelfleet_core::billing::InvoiceLine;

use super::*;

// ---------------------------------------------------------------- invoices

struct LineRow {
    category: String,
    deployment: String,
    cloud: String,
    region: String,
    accelerator: String,
    capacity: String,
    device_hours: String,
    unit_price: String,
    discount: String,
    amount: String,
}

fn percent(basis_points: u32) -> String {
    format!("{}.{:02} %", basis_points / 100, basis_points % 100)
}

fn line_row(l: &InvoiceLine) -> LineRow {
    let dash = || "—".to_owned();
    let u = l.usage.as_ref();
    LineRow {
        category: l.category.name().to_owned(),
        deployment: u.map_or_else(|| l.description.clone(), |u| u.deployment_name.clone()),
        cloud: u.map_or_else(dash, |u| u.cloud.name().to_owned()),
        region: u.map_or_else(dash, |u| u.region.clone()),
        accelerator: u.map_or_else(dash, |u| u.accelerator.clone()),
        capacity: u.map_or_else(dash, |u| u.capacity.name().to_owned()),
        device_hours: u.map_or_else(dash, |u| u.device_hours()),
        unit_price: u.map_or_else(dash, |u| u.unit_price.to_string()),
        discount: match u.map(|u| u.discount_basis_points) {
            Some(bp) if bp > 0 => format!("{} ({})", l.discount_amount, percent(bp)),
            _ => l.discount_amount.to_string(),
        },
        amount: l.amount.to_string(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/billing/invoices.html")]
struct InvoicePage {
    c: Chrome,
    id: String,
    tenant: Tenant,
    period: String,
    issued: bool,
    currency: String,
    list_total: String,
    discount_total: String,
    total: String,
    finalized_at: Option<String>,
    rounding: &'static str,
    lines: Vec<LineRow>,
    back_href: String,
}

pub(super) async fn invoice_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let id: InvoiceId = parse_id(&id, "invoice").map_err(|e| viewer.fail(e))?;
    let found = state
        .hub()
        .invoice(&viewer.caller, id)
        .await
        .map_err(|e| viewer.fail(e))?;
    let invoice = &found.invoice;
    let tenant = tenant_view(&state, &viewer, found.tenant).await?;
    let tq = tenant_query(&viewer, found.tenant);
    Ok(InvoicePage {
        c: viewer.chrome("billing", TEXT),
        id: found.id.to_string(),
        back_href: with_query("/billing", &[&tq, &format!("month={}", invoice.period)]),
        tenant,
        period: invoice.period.to_string(),
        issued: found.finalized_at.is_some(),
        currency: invoice.currency.to_string(),
        list_total: invoice.list_total.to_string(),
        discount_total: invoice.discount_total.to_string(),
        total: invoice.total.to_string(),
        finalized_at: found
            .finalized_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        rounding: ROUNDING,
        lines: invoice.lines.iter().map(line_row).collect(),
    }
    .into_response())
}

async fn export(state: AppState, viewer: Viewer, id: String, format: InvoiceFormat) -> PageResult {
    let id: InvoiceId = parse_id(&id, "invoice").map_err(|e| viewer.fail(e))?;
    state
        .hub()
        .invoice_csv(&viewer.caller, id, format)
        .await
        .map(IntoResponse::into_response)
        .map_err(|e| viewer.fail(e))
}

pub(super) async fn invoice_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    export(state, viewer, id, InvoiceFormat::Csv).await
}

pub(super) async fn focus_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    export(state, viewer, id, InvoiceFormat::Focus).await
}
