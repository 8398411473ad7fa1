//! `/team`: a tenant admin's page for their own team — its people (add
//! one; change a role; disable, enable, unlock, delete; give a temporary
//! password; reset a lost second factor, which takes the admin's own
//! code; end someone's sessions), its API keys, and which of its roles
//! must sign in with a second factor. Platform admins see every user here
//! too. Every form is the API's own operation with the viewer as caller,
//! refused and audited exactly as the REST call would be.

use modelfleet_api::identity::Permission;
use modelfleet_api::ids::UserId;
use modelfleet_api::service::access::{CreateApiKey, CreateUser, TotpCode};
use modelfleet_api::service::accounts::{ResetPassword, SecondFactorPolicy, UpdateUser};
use modelfleet_api::store::User;

use super::*;

#[derive(Debug)]
struct Member {
    id: String,
    username: String,
    display_name: String,
    role: &'static str,
    last_login: String,
    locked: bool,
    disabled: bool,
    totp: bool,
    must_change_password: bool,
    /// The viewer's own row: no actions on it here.
    is_self: bool,
}

#[derive(Debug)]
struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    role: &'static str,
    last_used: String,
    revoked: bool,
}

#[derive(Debug)]
struct RoleChoice {
    name: &'static str,
    required: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/admin/team.html")]
struct TeamPage {
    c: Chrome,
    members: Vec<Member>,
    /// Roles the viewer may give.
    roles: Vec<&'static str>,
    /// The tenant's keys and second-factor roles: absent for platform
    /// staff, who have no tenant of their own.
    keys: Option<Vec<KeyRow>>,
    second_factor: Option<Vec<RoleChoice>>,
    /// A key just made: its token, shown this once.
    new_key: Option<(String, String)>,
    error: Option<String>,
}

/// The roles a person of `holder`'s role may give on this page.
fn roles_for(holder: Role, has_tenant: bool) -> Vec<&'static str> {
    Role::ALL
        .into_iter()
        .filter(|r| r.beyond(holder).is_none())
        .filter(|r| r.needs_tenant().is_none_or(|needs| needs == has_tenant))
        .map(Role::name)
        .collect()
}

fn stamp(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn member(u: User, viewer: &Viewer, now: chrono::DateTime<chrono::Utc>) -> Member {
    Member {
        is_self: u.id == viewer.user.id,
        id: u.id.to_string(),
        username: u.username,
        display_name: u.display_name,
        role: u.role.name(),
        last_login: stamp(u.last_login_at),
        locked: u.locked_until.is_some_and(|t| t > now),
        disabled: u.disabled_at.is_some(),
        totp: u.totp_enabled,
        must_change_password: u.must_change_password,
    }
}

/// Tenant admins and platform admins; anyone else is refused before the
/// API is asked anything.
fn team_admin(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.can(Permission::ManageTenant) {
        Ok(())
    } else {
        Err(PageError::new(
            viewer.lang,
            StatusCode::FORBIDDEN,
            viewer.lang.t(TEXT, "team.only"),
        ))
    }
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    new_key: Option<(String, String)>,
    refused: Option<Refusal>,
) -> Result<Response, PageError> {
    let hub = state.hub();
    let now = chrono::Utc::now();
    let mut users = hub
        .users(&viewer.caller, None)
        .await
        .map_err(|e| viewer.fail(e))?;
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let members = users
        .into_iter()
        .take(LIST_LIMIT)
        .map(|u| member(u, viewer, now))
        .collect();
    let (keys, second_factor) = match viewer.user.tenant {
        Some(tenant) => {
            let mut keys = hub
                .api_keys(&viewer.caller, Some(tenant))
                .await
                .map_err(|e| viewer.fail(e))?;
            keys.sort_by(|a, b| a.name.cmp(&b.name));
            let keys = keys
                .into_iter()
                .take(LIST_LIMIT)
                .map(|k| KeyRow {
                    id: k.id.to_string(),
                    name: k.name,
                    prefix: k.prefix,
                    role: k.role.name(),
                    last_used: stamp(k.last_used_at),
                    revoked: k.revoked_at.is_some(),
                })
                .collect();
            let required = hub
                .second_factor_policy(&viewer.caller, Some(tenant))
                .await
                .map_err(|e| viewer.fail(e))?;
            let choices = Role::ALL
                .into_iter()
                .filter(|r| r.needs_tenant() != Some(false))
                .map(|r| RoleChoice {
                    name: r.name(),
                    required: required.contains(&r),
                })
                .collect();
            (Some(keys), Some(choices))
        }
        None => (None, None),
    };
    let (status, error) = match refused {
        Some(r) => (r.status, Some(r.message)),
        None if new_key.is_some() => (StatusCode::CREATED, None),
        None => (StatusCode::OK, None),
    };
    let page = TeamPage {
        c: viewer.chrome("team", TEXT),
        members,
        roles: roles_for(viewer.user.role, viewer.user.tenant.is_some()),
        keys,
        second_factor,
        new_key,
        error,
    };
    Ok((status, page).into_response())
}

pub(super) async fn team_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    team_admin(&viewer)?;
    render(&state, &viewer, None, None).await
}

/// After a form: back to the page when it worked, the page with the API's
/// reason when it was refused.
async fn done(
    state: &AppState,
    viewer: &Viewer,
    result: Result<(), ApiError>,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => Ok(back_to("/team")),
        Err(e) => {
            let r = refusal(viewer, e)?;
            render(state, viewer, None, Some(r)).await
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct MemberForm {
    username: String,
    display_name: String,
    role: String,
    password: String,
}

pub(super) async fn add_member(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<MemberForm>,
) -> Result<Response, PageError> {
    team_admin(&viewer)?;
    let body = object(vec![
        ("username", Value::String(form.username.trim().to_owned())),
        ("displayName", text(&form.display_name)),
        ("password", Value::String(form.password)),
        ("role", Value::String(form.role.trim().to_owned())),
    ]);
    let result = match api_json::<CreateUser>(body).await {
        Ok(body) => state
            .hub()
            .create_user(&viewer.caller, body)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    done(&state, &viewer, result).await
}

/// What one of a member's buttons asks for; each form sends only the
/// fields its action reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct ActionForm {
    role: String,
    new_password: String,
    code: String,
}

pub(super) async fn member_action(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    team_admin(&viewer)?;
    let id: UserId = match parse_id(&id, "user") {
        Ok(id) => id,
        Err(e) => return done(&state, &viewer, Err(e)).await,
    };
    let hub = state.hub();
    let caller = &viewer.caller;
    let update = |change: UpdateUser| hub.update_user(caller, id, change);
    let result = match action.as_str() {
        "role" => match api_json::<UpdateUser>(json!({"role": form.role.trim()})).await {
            Ok(change) => update(change).await.map(|_| ()),
            Err(e) => Err(e),
        },
        "disable" | "enable" => update(UpdateUser {
            disabled: Some(action == "disable"),
            ..UpdateUser::default()
        })
        .await
        .map(|_| ()),
        "unlock" => hub.unlock_user(caller, id).await.map(|_| ()),
        "end-sessions" => hub.end_sessions(caller, id).await.map(|_| ()),
        "delete" => hub.delete_user(caller, id).await.map(|_| ()),
        "password" => {
            let reset = ResetPassword {
                new_password: form.new_password,
            };
            hub.reset_password(caller, id, reset).await.map(|_| ())
        }
        "reset-totp" => {
            let code = TotpCode {
                code: form.code.trim().to_owned(),
            };
            hub.reset_totp(caller, id, &code).await.map(|_| ())
        }
        _ => {
            return Err(PageError::new(
                viewer.lang,
                StatusCode::NOT_FOUND,
                viewer.lang.t(TEXT, "team.no_action"),
            ));
        }
    };
    done(&state, &viewer, result).await
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct NewKeyForm {
    name: String,
    role: String,
}

pub(super) async fn add_key(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<NewKeyForm>,
) -> Result<Response, PageError> {
    team_admin(&viewer)?;
    let body = object(vec![
        ("name", Value::String(form.name.trim().to_owned())),
        ("role", Value::String(form.role.trim().to_owned())),
    ]);
    let result = match api_json::<CreateApiKey>(body).await {
        Ok(body) => state.hub().create_api_key(&viewer.caller, body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => {
            let shown = (created.key.name, created.token.expose().to_owned());
            render(&state, &viewer, Some(shown), None).await
        }
        Err(e) => {
            let r = refusal(&viewer, e)?;
            render(&state, &viewer, None, Some(r)).await
        }
    }
}

pub(super) async fn revoke_team_key(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    team_admin(&viewer)?;
    let result = match parse_id(&id, "API key") {
        Ok(id) => state
            .hub()
            .revoke_api_key(&viewer.caller, id)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    done(&state, &viewer, result).await
}

/// The ticked roles of the second-factor form: `roles=tenant-admin&roles=…`.
pub(super) async fn set_second_factor(
    State(state): State<AppState>,
    viewer: Viewer,
    body: String,
) -> Result<Response, PageError> {
    team_admin(&viewer)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let roles: Vec<Value> = pairs
        .into_iter()
        .filter(|(k, _)| k == "roles")
        .map(|(_, v)| Value::String(v))
        .collect();
    let result = match api_json::<SecondFactorPolicy>(json!({ "roles": roles })).await {
        Ok(policy) => state
            .hub()
            .set_second_factor_policy(&viewer.caller, None, policy)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    done(&state, &viewer, result).await
}
