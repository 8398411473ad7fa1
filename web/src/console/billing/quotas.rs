//! The quotas page: use against each limit.

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

fn quota_meter(used: &str, allowed: &str) -> Option<Meter> {
    if let (Ok(u), Ok(a)) = (used.parse::<u64>(), allowed.parse::<u64>()) {
        return meter(i128::from(u), i128::from(a));
    }
    if let (Ok(u), Ok(a)) = (used.parse::<Money>(), allowed.parse::<Money>())
        && u.currency() == a.currency()
    {
        return meter(i128::from(u.micros()), i128::from(a.micros()));
    }
    None
}

fn limit_name(lang: Lang, limit: &str) -> String {
    match limit {
        "total devices" => lang.t(TEXT, "quotas.total_devices").to_owned(),
        "concurrent deployments" => lang.t(TEXT, "quotas.deployments").to_owned(),
        "model size" => lang.t(TEXT, "quotas.model_size").to_owned(),
        other => {
            if let Some(currency) = other.strip_prefix("hourly spend in ") {
                format!("{} ({currency})", lang.t(TEXT, "quotas.spend_per_hour"))
            } else if let Some(accelerator) = other.strip_suffix(" devices") {
                format!("{} · {accelerator}", lang.t(TEXT, "quotas.devices_of"))
            } else {
                other.to_owned()
            }
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/billing/quotas.html")]
struct QuotasPage {
    c: Chrome,
    tenant: TenantView,
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
    let status = quota::show(
        State(state.clone()),
        viewer.caller.clone(),
        ApiQuery(QuotaParams {
            tenant: Some(tenant),
        }),
    )
    .await
    .map_err(|e| viewer.fail(e))?
    .0;
    let lang = viewer.lang;
    let mut rows: Vec<QuotaRow> = status
        .usage
        .iter()
        .map(|u| QuotaRow {
            name: limit_name(lang, &u.limit),
            used: u.in_use.clone(),
            limit: Some(u.allowed.clone()),
            meter: quota_meter(&u.in_use, &u.allowed),
        })
        .collect();
    // Kinds without a limit still show what is used: the API's quota view
    // lists set limits only, so the rest comes from the store's read of
    // what the tenant's live deployments hold.
    let limits = &status.limits;
    let usage = state
        .store()
        .usage(viewer.caller.scope(), tenant)
        .await
        .map_err(|e| viewer.fail(e.into()))?;
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
            .iter()
            .map(|(&c, &m)| Money::from_micros(i64::try_from(m).unwrap_or(i64::MAX), c).to_string())
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
