//! Admin pages: tenants and their quotas.

use modelfleet_api::service::tenants::{CreateTenant, QuotaLimits};

use super::*;

// ----------------------------------------------------------------- tenants

#[derive(Debug)]
struct TenantRow {
    id: String,
    name: String,
    display_name: String,
    created_at: String,
    total_devices: String,
    deployments: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct TenantForm {
    name: String,
    display_name: String,
    total_devices: String,
    deployments: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/admin/tenancy.html")]
struct TenantsPage {
    c: Chrome,
    tenants: Vec<TenantRow>,
    draft: TenantForm,
    error: Option<String>,
    /// The tenant whose quota form was refused.
    error_tenant: String,
}

async fn render_tenants(
    state: &AppState,
    viewer: &Viewer,
    draft: TenantForm,
    refused: Option<(Refusal, String)>,
) -> Result<Response, PageError> {
    let mut rows = Vec::new();
    for t in all_tenants(state, viewer).await? {
        let quota = state
            .hub()
            .quota(&viewer.caller, Some(t.id))
            .await
            .map_err(|e| viewer.fail(e))?
            .quota;
        let show = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        rows.push(TenantRow {
            id: t.id.to_string(),
            name: t.name,
            display_name: t.display_name,
            created_at: t.created_at.format("%Y-%m-%d %H:%M").to_string(),
            total_devices: show(quota.total_devices),
            deployments: show(quota.deployments),
        });
    }
    let (status, error, error_tenant) = match refused {
        Some((r, tenant)) => (r.status, Some(r.message), tenant),
        None => (StatusCode::OK, None, String::new()),
    };
    let page = TenantsPage {
        c: viewer.chrome("admin", TEXT),
        tenants: rows,
        draft,
        error,
        error_tenant,
    };
    Ok((status, page).into_response())
}

pub(super) async fn tenants_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    render_tenants(&state, &viewer, TenantForm::default(), None).await
}

pub(super) async fn create_tenant(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<TenantForm>,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let body = object(vec![
        ("name", Value::String(form.name.trim().to_owned())),
        ("displayName", text(&form.display_name)),
        (
            "quota",
            object(vec![
                ("totalDevices", number(&form.total_devices)),
                ("deployments", number(&form.deployments)),
            ]),
        ),
    ]);
    let result = match api_json::<CreateTenant>(body).await {
        Ok(body) => state
            .hub()
            .create_tenant(&viewer.caller, body)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(back_to("/admin/tenants")),
        Err(e) => {
            let r = refusal(&viewer, e)?;
            render_tenants(&state, &viewer, form, Some((r, String::new()))).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct QuotaForm {
    total_devices: String,
    deployments: String,
}

/// Sets a tenant's device and deployment limits, keeping its other limits.
pub(super) async fn set_quota(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<QuotaForm>,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let tenant: TenantId = parse_id(&id, "tenant").map_err(|e| viewer.fail(e))?;
    let current = state
        .hub()
        .quota(&viewer.caller, Some(tenant))
        .await
        .map_err(|e| viewer.fail(e))?;
    let current = QuotaLimits::from(current.quota);
    let mut limits = serde_json::to_value(&current).unwrap_or_else(|_| json!({}));
    if let Some(map) = limits.as_object_mut() {
        for (key, value) in [
            ("totalDevices", number(&form.total_devices)),
            ("deployments", number(&form.deployments)),
        ] {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.to_owned(), value);
            }
        }
        map.retain(|_, v| !v.is_null());
    }
    let result = match api_json(limits).await {
        Ok(body) => state
            .hub()
            .set_quota(&viewer.caller, tenant, body)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(back_to("/admin/tenants")),
        Err(e) => {
            let r = refusal(&viewer, e)?;
            render_tenants(&state, &viewer, TenantForm::default(), Some((r, id))).await
        }
    }
}
