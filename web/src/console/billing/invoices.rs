//! One invoice with its lines, and its CSV and FOCUS downloads.

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

fn line_row(l: &InvoiceLineView) -> LineRow {
    let dash = || "—".to_owned();
    LineRow {
        category: l.category.clone(),
        deployment: l
            .deployment_name
            .clone()
            .unwrap_or_else(|| l.description.clone()),
        cloud: l.cloud.map_or_else(dash, |c| c.name().to_owned()),
        region: l.region.clone().unwrap_or_else(dash),
        accelerator: l.accelerator.clone().unwrap_or_else(dash),
        capacity: l.capacity.clone().unwrap_or_else(dash),
        device_hours: l.device_hours.clone().unwrap_or_else(dash),
        unit_price: l.unit_price.map_or_else(dash, |p| p.to_string()),
        discount: match l.discount_basis_points {
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
    tenant: TenantView,
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
    let invoice: InvoiceView = billing_api::show_invoice(
        State(state.clone()),
        viewer.caller.clone(),
        Path(id.clone()),
    )
    .await
    .map_err(|e| viewer.fail(e))?
    .0;
    let s = &invoice.summary;
    let tenant = tenant_view(&state, &viewer, s.tenant_id).await?;
    let tq = tenant_query(&viewer, s.tenant_id);
    Ok(InvoicePage {
        c: viewer.chrome("billing", TEXT),
        id: s.id.to_string(),
        back_href: with_query("/billing", &[&tq, &format!("month={}", s.period)]),
        tenant,
        period: s.period.clone(),
        issued: s.status == "final",
        currency: s.currency.clone(),
        list_total: s.list_total.to_string(),
        discount_total: s.discount_total.to_string(),
        total: s.total.to_string(),
        finalized_at: s
            .finalized_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        rounding: invoice.rounding,
        lines: invoice.lines.iter().map(line_row).collect(),
    }
    .into_response())
}

async fn export(state: AppState, viewer: Viewer, id: String, format: &str) -> PageResult {
    billing_api::export_invoice(
        State(state),
        viewer.caller.clone(),
        Path(id),
        ApiQuery(ExportParams {
            format: Some(format.to_owned()),
        }),
    )
    .await
    .map_err(|e| viewer.fail(e))
}

pub(super) async fn invoice_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    export(state, viewer, id, "csv").await
}

pub(super) async fn focus_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    export(state, viewer, id, "focus").await
}
