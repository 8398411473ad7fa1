//! `/credentials`: a tenant's source credentials — the keys `modelfleet
//! fetch` downloads model weights with (an object store's access key pair,
//! a Hugging Face or ModelScope token), kept sealed by the hub and written
//! by it, as the Secret `modelfleet-source-<name>`, into each cluster
//! namespace a deployment fetching with them is placed in.
//!
//! Everyone of the tenant sees which credentials there are: their names,
//! which keys each holds (identifiers and tokens by their last four
//! characters, secret keys only as "set"), the Secret a ModelDeployment
//! names, and the deployments fetching with them. Tenant admins, and
//! platform admins naming the tenant (`?tenant=<id>`, as on the budget
//! page), add, replace and remove them. Every operation is the hub's own
//! (`Hub::source_credentials`, `put_source_credential`,
//! `delete_source_credential`), checked and audited as the REST API's.
//!
//! A value typed into the form is read once, into a [`Secret`], and never
//! written back: not into the page, not into the form when it is refused
//! (only the name and the kind come back), not into a log or a message.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use modelfleet_api::AppState;
use modelfleet_api::identity::Permission;
use modelfleet_api::ids::TenantId;
use modelfleet_api::service::Error as ApiError;
use modelfleet_api::service::source_credentials::{CredentialView, Delivery};
use modelfleet_api::store::Tenant;
use serde::Deserialize;

use super::billing::{tenant_of, tenant_query, with_query};
use super::page::{Chrome, PageError, Viewer};
use form::{CredentialForm, Kind};

mod form;
mod text;

pub(crate) use text::TEXT;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/credentials", get(credentials_page).post(save_credential))
        .route("/credentials/{name}/delete", post(remove_credential))
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    tenant: Option<String>,
}

// ---------------------------------------------------------------- the page

/// One key of a credential as the list shows it.
struct KeyRow {
    variable: String,
    /// `…ABCD`; none for secret keys, shown as set.
    last4: Option<String>,
    /// A setting's whole value (an endpoint, a region).
    value: Option<String>,
}

struct CredentialRow {
    name: String,
    secret: String,
    keys: Vec<KeyRow>,
    used_by: Vec<String>,
    updated_at: String,
    /// Where its remove form posts.
    remove_action: String,
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

impl CredentialRow {
    fn of(view: CredentialView) -> CredentialRow {
        CredentialRow {
            remove_action: format!("/credentials/{}/delete", view.name),
            name: view.name,
            secret: view.secret,
            keys: view
                .keys
                .into_iter()
                .map(|k| KeyRow {
                    variable: k.name,
                    last4: k.last4,
                    value: k.value,
                })
                .collect(),
            used_by: view.used_by,
            updated_at: stamp(view.updated_at),
        }
    }
}

/// A cluster namespace where the hub could not write (or remove) the
/// credential's Secret.
struct Failed {
    place: String,
    error: String,
}

/// What a form that worked only in part says.
struct Outcome {
    /// `credentials.saved_partly` or `credentials.removed_partly`.
    saved: bool,
    name: String,
    failed: Vec<Failed>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/credentials/list.html")]
struct CredentialsPage {
    c: Chrome,
    tenant: Tenant,
    /// The tenant's id for the forms' hidden field (platform admins).
    tenant_field: String,
    credentials: Vec<CredentialRow>,
    can_edit: bool,
    /// What the add form shows again: never a value.
    name: String,
    kind: String,
    form_error: Option<String>,
    remove_error: Option<String>,
    outcome: Option<Outcome>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/credentials/pick.html")]
struct PickPage {
    c: Chrome,
    tenants: Vec<(String, String)>,
}

/// What a render shows beside the list.
#[derive(Default)]
struct Shown {
    name: String,
    kind: String,
    form_error: Option<String>,
    remove_error: Option<String>,
    outcome: Option<Outcome>,
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    tenant: TenantId,
    status: StatusCode,
    shown: Shown,
) -> Result<Response, PageError> {
    let hub = state.hub();
    let view = hub
        .tenant(&viewer.caller, tenant)
        .await
        .map_err(|e| viewer.fail(e))?;
    let credentials = hub
        .source_credentials(&viewer.caller, tenant)
        .await
        .map_err(|e| viewer.fail(e))?
        .into_iter()
        .map(CredentialRow::of)
        .collect();
    let tq = tenant_query(viewer, tenant);
    let page = CredentialsPage {
        c: viewer.chrome("credentials", TEXT),
        tenant: view,
        tenant_field: if tq.is_empty() {
            String::new()
        } else {
            tenant.to_string()
        },
        credentials,
        can_edit: viewer.can(Permission::ManageTenant),
        name: shown.name,
        // A kind the form does not offer comes back as the first one.
        kind: Kind::from_code(&shown.kind)
            .unwrap_or(Kind::ObjectStore)
            .code()
            .to_owned(),
        form_error: shown.form_error,
        remove_error: shown.remove_error,
        outcome: shown.outcome,
    };
    Ok((status, page).into_response())
}

/// `GET /credentials`: the list, and for those who may change it, the
/// forms. Platform staff pick the tenant first.
async fn credentials_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Response, PageError> {
    let Some(tenant) = tenant_of(&viewer, query.tenant.as_deref())? else {
        let tenants = state
            .hub()
            .tenants(&viewer.caller)
            .await
            .map_err(|e| viewer.fail(e))?;
        return Ok(PickPage {
            c: viewer.chrome("credentials", TEXT),
            tenants: tenants
                .into_iter()
                .map(|t| (format!("/credentials?tenant={}", t.id), t.display_name))
                .collect(),
        }
        .into_response());
    };
    render(&state, &viewer, tenant, StatusCode::OK, Shown::default()).await
}

/// The tenant a form acts on, and that the viewer may change its
/// credentials: another tenant is not found, a role without the right is
/// refused, before anything in the form is looked at.
fn editable_tenant(viewer: &Viewer, named: Option<&str>) -> Result<TenantId, PageError> {
    let Some(tenant) = tenant_of(viewer, named)? else {
        return Err(viewer.fail(ApiError::invalid(
            "tenant",
            "platform staff act on a tenant they name: give its id",
        )));
    };
    if !viewer.can(Permission::ManageTenant) {
        return Err(PageError::new(
            viewer.lang,
            StatusCode::FORBIDDEN,
            viewer.lang.t(TEXT, "credentials.admins_only"),
        ));
    }
    Ok(tenant)
}

fn back(viewer: &Viewer, tenant: TenantId) -> Response {
    Redirect::to(&with_query(
        "/credentials",
        &[&tenant_query(viewer, tenant)],
    ))
    .into_response()
}

fn failures(deliveries: Vec<Delivery>) -> Vec<Failed> {
    deliveries
        .into_iter()
        .filter_map(|d| {
            d.error.map(|error| Failed {
                place: format!("{}/{}", d.cluster, d.namespace),
                error,
            })
        })
        .collect()
}

/// `POST /credentials`: adds or replaces a credential. Refused input is
/// shown with the name and kind again, and nothing is stored.
async fn save_credential(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = CredentialForm::read(&body);
    drop(body);
    let tenant = editable_tenant(&viewer, form.tenant.as_deref())?;
    let refuse = |message: String| Shown {
        name: form.name.clone(),
        kind: form.kind.clone(),
        form_error: Some(message),
        ..Shown::default()
    };
    let keys = match form.keys(viewer.lang) {
        Ok(keys) => keys,
        Err(message) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return render(&state, &viewer, tenant, status, refuse(message)).await;
        }
    };
    match state
        .hub()
        .put_source_credential(&viewer.caller, tenant, &form.name, keys)
        .await
    {
        Ok(written) => {
            let failed = failures(written.clusters);
            if failed.is_empty() {
                return Ok(back(&viewer, tenant));
            }
            let shown = Shown {
                outcome: Some(Outcome {
                    saved: true,
                    name: written.credential.name,
                    failed,
                }),
                ..Shown::default()
            };
            render(&state, &viewer, tenant, StatusCode::OK, shown).await
        }
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let shown = refuse(e.detail().to_owned());
            render(&state, &viewer, tenant, e.status(), shown).await
        }
        Err(e) => Err(viewer.fail(e)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    tenant: Option<String>,
}

/// `POST /credentials/{name}/delete`: removes a credential; refused, with
/// the deployments named, while one fetches with it.
async fn remove_credential(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form: RemoveForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let tenant = editable_tenant(&viewer, form.tenant.as_deref())?;
    match state
        .hub()
        .delete_source_credential(&viewer.caller, tenant, &name)
        .await
    {
        Ok(deliveries) => {
            let failed = failures(deliveries);
            if failed.is_empty() {
                return Ok(back(&viewer, tenant));
            }
            let shown = Shown {
                outcome: Some(Outcome {
                    saved: false,
                    name,
                    failed,
                }),
                ..Shown::default()
            };
            render(&state, &viewer, tenant, StatusCode::OK, shown).await
        }
        Err(e) if e.status() == StatusCode::CONFLICT => {
            let shown = Shown {
                remove_error: Some(e.detail().to_owned()),
                ..Shown::default()
            };
            render(&state, &viewer, tenant, StatusCode::CONFLICT, shown).await
        }
        Err(e) => Err(viewer.fail(e)),
    }
}
