//! The monthly budget: settings and alerts.

use super::*;

// ---------------------------------------------------------------- budget

struct AlertRow {
    period: String,
    threshold: i32,
    spent: String,
    budget: String,
    raised_at: String,
    delivery: String,
}

/// What the budget form holds (as typed, to show again when refused).
#[derive(Debug, Default, Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    refuse_at_limit: Option<String>,
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    webhook_secret: String,
    #[serde(default)]
    remove_webhook: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/billing/budget.html")]
struct BudgetPage {
    c: Chrome,
    tenant: Tenant,
    tenant_field: String,
    billing_href: String,
    current: Option<BudgetBar>,
    refuse_now: bool,
    /// The current webhook, masked to scheme and host.
    webhook_now: Option<String>,
    can_edit: bool,
    error: Option<String>,
    amount: String,
    currency: String,
    refuse_at_limit: bool,
    webhook_url: String,
    alerts: Vec<AlertRow>,
}

async fn render_budget(
    state: &AppState,
    viewer: &Viewer,
    tenant: TenantId,
    form: Option<(&BudgetForm, String)>,
) -> PageResult {
    let view = tenant_view(state, viewer, tenant).await?;
    let current = match state.hub().budget(&viewer.caller, tenant).await {
        Ok(b) => Some(b),
        Err(e) if e.status() == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(viewer.fail(e)),
    };
    let alerts = state
        .hub()
        .budget_alerts(&viewer.caller, tenant)
        .await
        .map_err(|e| viewer.fail(e))?
        .into_iter()
        .take(20)
        .map(|a| {
            let money = |micros: i64| match a.currency.parse::<Currency>() {
                Ok(c) => Money::from_micros(micros, c).to_string(),
                Err(_) => format!("{micros} µ{}", a.currency),
            };
            AlertRow {
                period: a.period.clone(),
                threshold: a.threshold,
                spent: money(a.spent_micros),
                budget: money(a.budget_micros),
                raised_at: a.raised_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                delivery: a.delivery.clone(),
            }
        })
        .collect();
    let tq = tenant_query(viewer, tenant);
    let (error, amount, currency, refuse_at_limit, webhook_url) = match form {
        Some((f, message)) => (
            Some(message),
            f.amount.clone(),
            f.currency.clone(),
            f.refuse_at_limit.is_some(),
            f.webhook_url.clone(),
        ),
        // The URL is never filled in again: only its scheme and host are
        // shown, and leaving the fields empty keeps it.
        None => match &current {
            Some(b) => (
                None,
                b.budget.amount_string(),
                b.budget.currency().to_string(),
                b.refuse_at_limit,
                String::new(),
            ),
            None => (None, String::new(), "USD".to_owned(), false, String::new()),
        },
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = BudgetPage {
        c: viewer.chrome("billing", TEXT),
        tenant: view,
        tenant_field: if tq.is_empty() {
            String::new()
        } else {
            tenant.to_string()
        },
        billing_href: with_query("/billing", &[&tq]),
        refuse_now: current.as_ref().is_some_and(|b| b.refuse_at_limit),
        webhook_now: current.as_ref().and_then(|b| b.webhook.clone()),
        current: current.as_ref().map(budget_bar),
        can_edit: viewer.can(Permission::ManageTenant),
        error,
        amount,
        currency,
        refuse_at_limit,
        webhook_url,
        alerts,
    };
    Ok((status, page).into_response())
}

pub(super) async fn budget_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let Some(tenant) = tenant_of(&viewer, query.tenant.as_deref())? else {
        return pick_tenant(&state, &viewer, "billing", "/billing/budget").await;
    };
    render_budget(&state, &viewer, tenant, None).await
}

fn budget_redirect(viewer: &Viewer, tenant: TenantId) -> Response {
    Redirect::to(&with_query(
        "/billing/budget",
        &[&tenant_query(viewer, tenant)],
    ))
    .into_response()
}

pub(super) async fn save_budget(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<BudgetForm>,
) -> PageResult {
    let Some(tenant) = tenant_of(&viewer, form.tenant.as_deref())? else {
        return Err(viewer.fail(ApiError::invalid(
            "tenant",
            "platform staff act on a tenant they name: give its id",
        )));
    };
    let refuse = |message: String| render_budget(&state, &viewer, tenant, Some((&form, message)));
    let currency = match form.currency.trim().parse::<Currency>() {
        Ok(c) => c,
        Err(e) => return refuse(e.to_string()).await,
    };
    let amount = match Money::parse_amount(form.amount.trim(), currency) {
        Ok(m) => m,
        Err(e) => return refuse(e.to_string()).await,
    };
    let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let refuse_at_limit = form.refuse_at_limit.is_some();
    let (webhook_url, webhook_secret) =
        (optional(&form.webhook_url), optional(&form.webhook_secret));
    let keep_webhook =
        form.remove_webhook.is_none() && webhook_url.is_none() && webhook_secret.is_none();
    let saved = if keep_webhook {
        state
            .hub()
            .set_budget_keeping_webhook(&viewer.caller, tenant, amount, refuse_at_limit)
            .await
    } else {
        let body = SetBudget {
            amount,
            refuse_at_limit,
            webhook_url,
            webhook_secret,
        };
        state.hub().set_budget(&viewer.caller, tenant, body).await
    };
    match saved {
        Ok(_) => Ok(budget_redirect(&viewer, tenant)),
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            refuse(e.detail().to_owned()).await
        }
        Err(e) => Err(viewer.fail(e)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    tenant: Option<String>,
}

pub(super) async fn delete_budget(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<DeleteForm>,
) -> PageResult {
    let Some(tenant) = tenant_of(&viewer, form.tenant.as_deref())? else {
        return Err(viewer.fail(ApiError::invalid(
            "tenant",
            "platform staff act on a tenant they name: give its id",
        )));
    };
    state
        .hub()
        .delete_budget(&viewer.caller, tenant)
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(budget_redirect(&viewer, tenant))
}
