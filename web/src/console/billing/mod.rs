//! Console pages: quotas and billing — what a tenant may use and what it
//! has used, the month's cost as charts and exact tables, invoices with
//! their lines and downloads, and the monthly budget.
//!
//! Every number comes from the hub's service layer, called with the
//! viewer's caller (`Hub::quota`, `usage`, `invoices`, `invoice`,
//! `invoice_csv`, `budget`…), the operations the REST API calls too, so a
//! page shows exactly what the API answers and refuses what it refuses.
//! Amounts stay [`Money`]; `f64` is used for chart geometry only.
//!
//! Every page takes `?tenant=<id>`: platform staff name the tenant they
//! look at; a tenant's own people may name only their own (another is
//! "not found", as the API says).

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use modelfleet_api::AppState;
use modelfleet_api::billing::TenantInvoice;
use modelfleet_api::billing::{BudgetStatus, UsageGroup, UsageReport};
use modelfleet_api::identity::Permission;
use modelfleet_api::ids::TenantId;
use modelfleet_api::service::Error as ApiError;
use modelfleet_api::service::billing::{InvoiceFormat, ROUNDING, SetBudget, UsageParams};
use modelfleet_api::store::Tenant;
use modelfleet_core::billing::{BillingPeriod, UnixSeconds};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::{Currency, Money};
use serde::Deserialize;

use super::chart::{self, Bar, Chart, Series};
use super::i18n::Lang;
use super::page::{Chrome, PageError, Viewer};

mod budget;
mod invoices;
mod quotas;
mod text;
mod usage;

pub(crate) use text::TEXT;

use budget::{budget_page, delete_budget, save_budget};
use invoices::{focus_csv, invoice_csv, invoice_page};
use quotas::quotas_page;
use usage::{billing_page, usage_csv};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/quotas", get(quotas_page))
        .route("/billing", get(billing_page))
        .route("/billing/usage.csv", get(usage_csv))
        .route("/billing/invoices/{id}", get(invoice_page))
        .route("/billing/invoices/{id}/invoice.csv", get(invoice_csv))
        .route("/billing/invoices/{id}/focus.csv", get(focus_csv))
        .route("/billing/budget", get(budget_page).post(save_budget))
        .route("/billing/budget/delete", post(delete_budget))
}

// ---------------------------------------------------------------- shared

/// The query every page takes.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    tenant: Option<String>,
    month: Option<String>,
}

type PageResult = Result<Response, PageError>;

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(modelfleet_clock::now())
}

fn at(seconds: UnixSeconds) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds.0, 0).unwrap_or_default()
}

/// The tenant a page is about: the viewer's own, or the one named (404
/// for a tenant's people naming another). `None` for platform staff who
/// named none yet: they pick one first. The source credentials page
/// (`super::credentials`) takes its tenant the same way.
pub(crate) fn tenant_of(
    viewer: &Viewer,
    named: Option<&str>,
) -> Result<Option<TenantId>, PageError> {
    let named = match named.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Some(
            text.parse::<TenantId>()
                .map_err(|_| viewer.fail(ApiError::not_found("tenant")))?,
        ),
        None => None,
    };
    if viewer.caller.actor.tenant.is_none() && named.is_none() {
        return Ok(None);
    }
    viewer
        .caller
        .tenant(named)
        .map(Some)
        .map_err(|e| viewer.fail(e))
}

/// `?tenant=<id>` for links when platform staff look at a tenant; nothing
/// for a tenant's own people.
pub(crate) fn tenant_query(viewer: &Viewer, tenant: TenantId) -> String {
    if viewer.caller.actor.tenant.is_some() {
        String::new()
    } else {
        format!("tenant={tenant}")
    }
}

pub(crate) fn with_query(path: &str, parts: &[&str]) -> String {
    let parts: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

async fn tenant_view(
    state: &AppState,
    viewer: &Viewer,
    tenant: TenantId,
) -> Result<Tenant, PageError> {
    state
        .hub()
        .tenant(&viewer.caller, tenant)
        .await
        .map_err(|e| viewer.fail(e))
}

#[derive(Template, WebTemplate)]
#[template(path = "console/billing/pick.html")]
struct PickPage {
    c: Chrome,
    title: &'static str,
    tenants: Vec<(String, String)>,
}

/// Platform staff choose the tenant first.
async fn pick_tenant(
    state: &AppState,
    viewer: &Viewer,
    nav: &'static str,
    path: &str,
) -> PageResult {
    let list = state
        .hub()
        .tenants(&viewer.caller)
        .await
        .map_err(|e| viewer.fail(e))?;
    let title = if nav == "quotas" {
        viewer.lang.t(TEXT, "quotas.title")
    } else {
        viewer.lang.t(TEXT, "billing.title")
    };
    Ok(PickPage {
        c: viewer.chrome(nav, TEXT),
        title,
        tenants: list
            .into_iter()
            .map(|t| (format!("{path}?tenant={}", t.id), t.display_name))
            .collect(),
    }
    .into_response())
}

/// A `<meter>`'s integer attributes (counts or micro-units: exact).
struct Meter {
    value: String,
    max: String,
    high: String,
}

fn meter(used: i128, max: i128) -> Option<Meter> {
    (max > 0).then(|| Meter {
        value: used.clamp(0, max).to_string(),
        max: max.to_string(),
        high: (max * 8 / 10).to_string(),
    })
}

struct BudgetBar {
    period: String,
    spent: String,
    budget: String,
    percent: i64,
    meter: Option<Meter>,
}

fn budget_bar(b: &BudgetStatus) -> BudgetBar {
    BudgetBar {
        period: b.period.clone(),
        spent: b.spent.to_string(),
        budget: b.budget.to_string(),
        percent: b.percent_used,
        meter: meter(i128::from(b.spent.micros()), i128::from(b.budget.micros())),
    }
}
