//! The quotas page: use against each limit.

use modelfleet_api::service::tenants::spend_of;
use modelfleet_core::quota::{Amount, Limit};

use super::*;

// ---------------------------------------------------------------- quotas

/// One limit: what is used, what is allowed, and a meter when both are
/// numbers of the same kind.
struct QuotaRow {
    name: String,
    used: String,
    /// `None`: no limit of this kind.
    limit: Option<String>,
    meter: Option<Meter>,
}

fn quota_meter(used: &Amount, allowed: &Amount) -> Option<Meter> {
    match (used, allowed) {
        (Amount::Count(u), Amount::Count(a)) => meter(i128::from(*u), i128::from(*a)),
        (Amount::Money(u), Amount::Money(a)) if u.currency() == a.currency() => {
            meter(i128::from(u.micros()), i128::from(a.micros()))
        }
        _ => None,
    }
}

fn limit_name(lang: Lang, limit: &Limit) -> String {
    match limit {
        Limit::TotalDevices => lang.t(TEXT, "quotas.total_devices").to_owned(),
        Limit::Deployments => lang.t(TEXT, "quotas.deployments").to_owned(),
        Limit::ModelSize => lang.t(TEXT, "quotas.model_size").to_owned(),
        Limit::SpendPerHour(currency) => {
            format!("{} ({currency})", lang.t(TEXT, "quotas.spend_per_hour"))
        }
        Limit::AcceleratorDevices(accelerator) => {
            format!("{} · {accelerator}", lang.t(TEXT, "quotas.devices_of"))
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/billing/quotas.html")]
struct QuotasPage {
    c: Chrome,
    tenant: Tenant,
    rows: Vec<QuotaRow>,
}

pub(super) async fn quotas_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let Some(tenant) = tenant_of(&viewer, query.tenant.as_deref())? else {
        return pick_tenant(&state, &viewer, "quotas", "/quotas").await;
    };
    let view = tenant_view(&state, &viewer, tenant).await?;
    let status = state
        .hub()
        .quota(&viewer.caller, Some(tenant))
        .await
        .map_err(|e| viewer.fail(e))?;
    let lang = viewer.lang;
    let mut rows: Vec<QuotaRow> = status
        .limits_in_use()
        .iter()
        .map(|u| QuotaRow {
            name: limit_name(lang, &u.limit),
            used: u.in_use.to_string(),
            limit: Some(u.allowed.to_string()),
            meter: quota_meter(&u.in_use, &u.allowed),
        })
        .collect();
    // Kinds without a limit still show what is used.
    let (limits, usage) = (&status.quota, &status.usage);
    for (accelerator, &devices) in &usage.devices_per_accelerator {
        if !limits.devices_per_accelerator.contains_key(accelerator) {
            rows.push(QuotaRow {
                name: format!("{} · {accelerator}", lang.t(TEXT, "quotas.devices_of")),
                used: devices.to_string(),
                limit: None,
                meter: None,
            });
        }
    }
    if limits.total_devices.is_none() {
        rows.push(QuotaRow {
            name: lang.t(TEXT, "quotas.total_devices").to_owned(),
            used: usage.total_devices().to_string(),
            limit: None,
            meter: None,
        });
    }
    if limits.deployments.is_none() {
        rows.push(QuotaRow {
            name: lang.t(TEXT, "quotas.deployments").to_owned(),
            used: usage.deployments.to_string(),
            limit: None,
            meter: None,
        });
    }
    if limits.max_model_params.is_none() {
        rows.push(QuotaRow {
            name: lang.t(TEXT, "quotas.model_size").to_owned(),
            used: "—".to_owned(),
            limit: None,
            meter: None,
        });
    }
    if limits.spend_per_hour.is_empty() {
        let spend: Vec<String> = usage
            .spend_micros_per_hour
            .keys()
            .map(|&c| spend_of(usage, c).to_string())
            .collect();
        rows.push(QuotaRow {
            name: lang.t(TEXT, "quotas.spend_per_hour").to_owned(),
            used: if spend.is_empty() {
                "—".to_owned()
            } else {
                spend.join(", ")
            },
            limit: None,
            meter: None,
        });
    }
    Ok(QuotasPage {
        c: viewer.chrome("quotas", TEXT),
        tenant: view,
        rows,
    }
    .into_response())
}
