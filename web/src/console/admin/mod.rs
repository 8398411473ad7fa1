//! Console pages: platform administration — tenants and their quotas,
//! users, API keys, clusters and the price catalog (platform admins only:
//! anyone else is refused before any API call) — and `/team`, where a
//! tenant admin manages their own team's people and keys ([`team`]). Every form calls the API's
//! own handler, so it is checked, refused and audited exactly as the REST
//! call would be; a refused form shows the API's reason and changes
//! nothing, a form that worked goes back to its list (303).

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use modelfleet_api::http::extract::ApiJson;
use modelfleet_api::http::extract::parse_id;
use modelfleet_api::ids::TenantId;
use modelfleet_api::service::Error as ApiError;
use modelfleet_api::store::Tenant;
use modelfleet_api::{AppState, Role};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::Currency;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::audit::parse_time;

use super::page::{Chrome, PageError, Viewer};

mod fleet;
mod people;
mod team;
mod tenancy;
mod text;

pub(crate) use text::TEXT;

use fleet::{clusters_page, create_price, prices_page, register_cluster};
use people::{create_key, create_user, keys_page, revoke_key, users_page};
use team::{add_key, add_member, member_action, revoke_team_key, set_second_factor, team_page};
use tenancy::{create_tenant, set_quota, tenants_page};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(overview))
        .route("/admin/tenants", get(tenants_page).post(create_tenant))
        .route("/admin/tenants/{id}/quota", post(set_quota))
        .route("/admin/users", get(users_page).post(create_user))
        .route("/admin/keys", get(keys_page).post(create_key))
        .route("/admin/keys/{id}/revoke", post(revoke_key))
        .route("/admin/clusters", get(clusters_page).post(register_cluster))
        .route("/admin/prices", get(prices_page).post(create_price))
        .route("/team", get(team_page))
        .route("/team/users", post(add_member))
        .route("/team/users/{id}/{action}", post(member_action))
        .route("/team/keys", post(add_key))
        .route("/team/keys/{id}/revoke", post(revoke_team_key))
        .route("/team/second-factor", post(set_second_factor))
}

/// The most items a list page asks the API for.
const LIST_LIMIT: usize = 500;

/// Platform admins only: everyone else is refused here, before the API is
/// asked anything.
fn platform_admin(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.user.role == Role::PlatformAdmin {
        Ok(())
    } else {
        Err(PageError::new(
            viewer.lang,
            StatusCode::FORBIDDEN,
            viewer.lang.t(TEXT, "admin.only"),
        ))
    }
}

/// `body` read as the API reads a JSON request body: the same checks and
/// the same messages for a missing field, a wrong type or an unknown value.
pub(crate) async fn api_json<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    let request = Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .map_err(|e| ApiError::internal(&e))?;
    let ApiJson(parsed) = ApiJson::<T>::from_request(request, &()).await?;
    Ok(parsed)
}

/// A form's text as JSON: absent when empty.
fn text(value: &str) -> Value {
    let value = value.trim();
    if value.is_empty() {
        Value::Null
    } else {
        Value::String(value.to_owned())
    }
}

/// A form's whole number as JSON: absent when empty; text that is no
/// number goes to the API as text, which names the field in its refusal.
fn number(value: &str) -> Value {
    let value = value.trim();
    if value.is_empty() {
        Value::Null
    } else if let Ok(n) = value.parse::<u64>() {
        json!(n)
    } else {
        Value::String(value.to_owned())
    }
}

/// `pairs` as a JSON object, leaving out what is absent.
fn object(pairs: Vec<(&str, Value)>) -> Value {
    let map: Map<String, Value> = pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    Value::Object(map)
}

/// A refused form: the API's reason, with the status it answered.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

/// A client error is the form's fault and shown on it; anything else is an
/// error page.
fn refusal(viewer: &Viewer, e: ApiError) -> Result<Refusal, PageError> {
    if e.status().is_client_error() && e.status() != StatusCode::UNAUTHORIZED {
        Ok(Refusal {
            status: e.status(),
            message: e.detail().to_owned(),
        })
    } else {
        Err(viewer.fail(e))
    }
}

fn back_to(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Every tenant, by name.
async fn all_tenants(state: &AppState, viewer: &Viewer) -> Result<Vec<Tenant>, PageError> {
    state
        .hub()
        .tenants(&viewer.caller)
        .await
        .map_err(|e| viewer.fail(e))
}

// ---------------------------------------------------------------- overview

#[derive(Template, WebTemplate)]
#[template(path = "console/admin/overview.html")]
struct OverviewPage {
    c: Chrome,
}

async fn overview(viewer: Viewer) -> Result<OverviewPage, PageError> {
    platform_admin(&viewer)?;
    Ok(OverviewPage {
        c: viewer.chrome("admin", TEXT),
    })
}
