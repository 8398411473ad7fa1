//! Admin pages: users and API keys.

use modelfleet_api::service::access::{CreateApiKey, CreateUser};

use super::*;

// ------------------------------------------------------------------- users

#[derive(Debug)]
struct UserRow {
    username: String,
    display_name: String,
    role: &'static str,
    tenant: String,
    locked: bool,
    last_login: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct UserForm {
    tenant: String,
    username: String,
    display_name: String,
    role: String,
    password: String,
}

#[derive(Debug, Clone)]
struct TenantOption {
    id: String,
    name: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/admin/people/users.html")]
struct UsersPage {
    c: Chrome,
    users: Vec<UserRow>,
    tenants: Vec<TenantOption>,
    roles: Vec<&'static str>,
    draft: UserForm,
    error: Option<String>,
}

const ALL_ROLES: [Role; 5] = [
    Role::PlatformAdmin,
    Role::TenantAdmin,
    Role::Developer,
    Role::Auditor,
    Role::Viewer,
];

fn tenant_options(list: &[Tenant]) -> Vec<TenantOption> {
    list.iter()
        .map(|t| TenantOption {
            id: t.id.to_string(),
            name: t.name.clone(),
        })
        .collect()
}

async fn render_users(
    state: &AppState,
    viewer: &Viewer,
    draft: UserForm,
    refused: Option<Refusal>,
) -> Result<Response, PageError> {
    let tenant_list = all_tenants(state, viewer).await?;
    let names: BTreeMap<TenantId, String> =
        tenant_list.iter().map(|t| (t.id, t.name.clone())).collect();
    let mut list = state
        .hub()
        .users(&viewer.caller, None)
        .await
        .map_err(|e| viewer.fail(e))?;
    list.sort_by(|a, b| a.username.cmp(&b.username));
    let now = chrono::Utc::now();
    let rows = list
        .into_iter()
        .take(LIST_LIMIT)
        .map(|u| UserRow {
            tenant: u
                .tenant
                .map(|t| names.get(&t).cloned().unwrap_or_else(|| t.to_string()))
                .unwrap_or_default(),
            username: u.username,
            display_name: u.display_name,
            role: u.role.name(),
            locked: u.locked_until.is_some_and(|t| t > now),
            last_login: u
                .last_login_at
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
        })
        .collect();
    let (status, error) = match refused {
        Some(r) => (r.status, Some(r.message)),
        None => (StatusCode::OK, None),
    };
    let page = UsersPage {
        c: viewer.chrome("admin", TEXT),
        users: rows,
        tenants: tenant_options(&tenant_list),
        roles: ALL_ROLES.iter().map(|r| r.name()).collect(),
        draft: UserForm {
            password: String::new(),
            ..draft
        },
        error,
    };
    Ok((status, page).into_response())
}

pub(super) async fn users_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let draft = UserForm {
        role: Role::Developer.name().to_owned(),
        ..UserForm::default()
    };
    render_users(&state, &viewer, draft, None).await
}

pub(super) async fn create_user(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<UserForm>,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let body = object(vec![
        ("username", Value::String(form.username.trim().to_owned())),
        ("displayName", text(&form.display_name)),
        ("password", Value::String(form.password.clone())),
        ("role", Value::String(form.role.trim().to_owned())),
        ("tenant", text(&form.tenant)),
    ]);
    let result = match api_json::<CreateUser>(body).await {
        Ok(body) => state
            .hub()
            .create_user(&viewer.caller, body)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(back_to("/admin/users")),
        Err(e) => {
            let r = refusal(&viewer, e)?;
            render_users(&state, &viewer, form, Some(r)).await
        }
    }
}

// -------------------------------------------------------------------- keys

#[derive(Debug)]
struct KeyRow {
    id: String,
    tenant: String,
    name: String,
    prefix: String,
    role: &'static str,
    created_at: String,
    last_used: String,
    revoked: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct KeyForm {
    tenant: String,
    name: String,
    role: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/admin/people/keys.html")]
struct KeysPage {
    c: Chrome,
    keys: Vec<KeyRow>,
    tenants: Vec<TenantOption>,
    roles: Vec<&'static str>,
    draft: KeyForm,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/admin/people/key_created.html")]
struct KeyCreatedPage {
    c: Chrome,
    name: String,
    tenant: String,
    prefix: String,
    role: &'static str,
    token: String,
}

/// The roles an API key may have.
const KEY_ROLES: [Role; 4] = [
    Role::TenantAdmin,
    Role::Developer,
    Role::Auditor,
    Role::Viewer,
];

async fn render_keys(
    state: &AppState,
    viewer: &Viewer,
    draft: KeyForm,
    refused: Option<Refusal>,
) -> Result<Response, PageError> {
    let tenant_list = all_tenants(state, viewer).await?;
    let mut rows = Vec::new();
    for t in &tenant_list {
        let mut list = state
            .hub()
            .api_keys(&viewer.caller, Some(t.id))
            .await
            .map_err(|e| viewer.fail(e))?;
        list.sort_by_key(|k| k.id.to_string());
        rows.extend(list.into_iter().take(LIST_LIMIT).map(|k| {
            KeyRow {
                id: k.id.to_string(),
                tenant: t.name.clone(),
                name: k.name,
                prefix: k.prefix,
                role: k.role.name(),
                created_at: k.created_at.format("%Y-%m-%d %H:%M").to_string(),
                last_used: k
                    .last_used_at
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
                revoked: k.revoked_at.is_some(),
            }
        }));
    }
    let (status, error) = match refused {
        Some(r) => (r.status, Some(r.message)),
        None => (StatusCode::OK, None),
    };
    let page = KeysPage {
        c: viewer.chrome("admin", TEXT),
        keys: rows,
        tenants: tenant_options(&tenant_list),
        roles: KEY_ROLES.iter().map(|r| r.name()).collect(),
        draft,
        error,
    };
    Ok((status, page).into_response())
}

pub(super) async fn keys_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let draft = KeyForm {
        role: Role::Developer.name().to_owned(),
        ..KeyForm::default()
    };
    render_keys(&state, &viewer, draft, None).await
}

/// Creates a key and shows its token this once; the list never shows it.
pub(super) async fn create_key(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<KeyForm>,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let body = object(vec![
        ("name", Value::String(form.name.trim().to_owned())),
        ("role", Value::String(form.role.trim().to_owned())),
        ("tenant", text(&form.tenant)),
    ]);
    let result = match api_json::<CreateApiKey>(body).await {
        Ok(body) => state.hub().create_api_key(&viewer.caller, body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => {
            let tenant = all_tenants(&state, &viewer)
                .await?
                .into_iter()
                .find(|t| t.id == created.key.tenant)
                .map_or_else(|| created.key.tenant.to_string(), |t| t.name);
            let page = KeyCreatedPage {
                c: viewer.chrome("admin", TEXT),
                name: created.key.name,
                tenant,
                prefix: created.key.prefix,
                role: created.key.role.name(),
                token: created.token.expose().to_owned(),
            };
            Ok((StatusCode::CREATED, page).into_response())
        }
        Err(e) => {
            let r = refusal(&viewer, e)?;
            render_keys(&state, &viewer, form, Some(r)).await
        }
    }
}

pub(super) async fn revoke_key(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let revoked = match parse_id(&id, "API key") {
        Ok(id) => state.hub().revoke_api_key(&viewer.caller, id).await,
        Err(e) => Err(e),
    };
    match revoked {
        Ok(_) => Ok(back_to("/admin/keys")),
        Err(e) => {
            let r = refusal(&viewer, e)?;
            render_keys(&state, &viewer, KeyForm::default(), Some(r)).await
        }
    }
}
