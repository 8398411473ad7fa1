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

use std::collections::BTreeMap;

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
use modelfleet_api::secret::Secret;
use modelfleet_api::service::Error as ApiError;
use modelfleet_api::service::source_credentials::{CredentialView, Delivery};
use modelfleet_api::store::Tenant;
use serde::Deserialize;

use super::billing::{tenant_of, tenant_query, with_query};
use super::i18n::Lang;
use super::page::{Chrome, PageError, Viewer};

mod text;

pub(crate) use text::TEXT;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/credentials", get(credentials_page).post(save_credential))
        .route("/credentials/{name}/delete", post(remove_credential))
}

// ---------------------------------------------------------------- kinds

/// What a credential is for: each kind is a set of the variables `modelfleet
/// fetch` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ObjectStore,
    HuggingFace,
    ModelScope,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::ObjectStore, Kind::HuggingFace, Kind::ModelScope];

    /// The value of the form's `kind` select.
    fn code(self) -> &'static str {
        match self {
            Kind::ObjectStore => "object-store",
            Kind::HuggingFace => "hugging-face",
            Kind::ModelScope => "modelscope",
        }
    }

    fn from_code(code: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }

    fn label(self, lang: Lang) -> &'static str {
        match self {
            Kind::ObjectStore => lang.t(TEXT, "credentials.kind_object_store"),
            Kind::HuggingFace => lang.t(TEXT, "credentials.kind_hugging_face"),
            Kind::ModelScope => lang.t(TEXT, "credentials.kind_modelscope"),
        }
    }
}

/// One field of the form: a secret, or a setting (an endpoint, a region)
/// that is not.
struct Field {
    /// Its `name` in the form.
    form: &'static str,
    /// The variable it becomes.
    variable: &'static str,
    kind: Kind,
    required: bool,
}

const FIELDS: [Field; 9] = [
    Field {
        form: "access_key_id",
        variable: "AWS_ACCESS_KEY_ID",
        kind: Kind::ObjectStore,
        required: true,
    },
    Field {
        form: "secret_access_key",
        variable: "AWS_SECRET_ACCESS_KEY",
        kind: Kind::ObjectStore,
        required: true,
    },
    Field {
        form: "session_token",
        variable: "AWS_SESSION_TOKEN",
        kind: Kind::ObjectStore,
        required: false,
    },
    Field {
        form: "endpoint",
        variable: "AWS_ENDPOINT_URL",
        kind: Kind::ObjectStore,
        required: false,
    },
    Field {
        form: "region",
        variable: "AWS_REGION",
        kind: Kind::ObjectStore,
        required: false,
    },
    Field {
        form: "hf_token",
        variable: "HF_TOKEN",
        kind: Kind::HuggingFace,
        required: true,
    },
    Field {
        form: "hf_endpoint",
        variable: "HF_ENDPOINT",
        kind: Kind::HuggingFace,
        required: false,
    },
    Field {
        form: "modelscope_token",
        variable: "MODELSCOPE_API_TOKEN",
        kind: Kind::ModelScope,
        required: true,
    },
    Field {
        form: "modelscope_endpoint",
        variable: "MODELSCOPE_ENDPOINT",
        kind: Kind::ModelScope,
        required: false,
    },
];

impl Field {
    fn label(&self, lang: Lang) -> &'static str {
        match self.form {
            "access_key_id" => lang.t(TEXT, "credentials.access_key_id"),
            "secret_access_key" => lang.t(TEXT, "credentials.secret_access_key"),
            "session_token" => lang.t(TEXT, "credentials.session_token"),
            "hf_token" => lang.t(TEXT, "credentials.hf_token"),
            "endpoint" => lang.t(TEXT, "credentials.endpoint"),
            "region" => lang.t(TEXT, "credentials.region"),
            "hf_endpoint" => lang.t(TEXT, "credentials.hf_endpoint"),
            "modelscope_endpoint" => lang.t(TEXT, "credentials.modelscope_endpoint"),
            _ => lang.t(TEXT, "credentials.modelscope_token"),
        }
    }
}

// ---------------------------------------------------------------- the form

/// The add-or-replace form as sent. Its values are [`Secret`]s from the
/// moment they are read, and its `Debug` names no value.
struct CredentialForm {
    tenant: Option<String>,
    name: String,
    kind: String,
    /// The secret fields that were filled in, by form name, trimmed.
    values: BTreeMap<&'static str, Secret>,
}

impl std::fmt::Debug for CredentialForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialForm")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("filled", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CredentialForm {
    /// Reads a form body; fields it does not know are left alone.
    fn read(body: &[u8]) -> CredentialForm {
        let mut form = CredentialForm {
            tenant: None,
            name: String::new(),
            kind: String::new(),
            values: BTreeMap::new(),
        };
        for (field, value) in form_urlencoded_pairs(body) {
            match field.as_str() {
                "tenant" => form.tenant = Some(value),
                "name" => form.name = value.trim().to_owned(),
                "kind" => form.kind = value.trim().to_owned(),
                other => {
                    if let Some(known) = FIELDS.iter().find(|f| f.form == other) {
                        let value = Secret::new(value);
                        let trimmed = value.expose().trim();
                        if !trimmed.is_empty() {
                            form.values.insert(known.form, Secret::new(trimmed));
                        }
                    }
                }
            }
        }
        form
    }

    /// The credential's variables, or why the form cannot make them
    /// (in the viewer's language; it names fields, never a value).
    fn keys(&self, lang: Lang) -> Result<BTreeMap<String, Secret>, String> {
        let Some(kind) = Kind::from_code(&self.kind) else {
            return Err(lang.t(TEXT, "credentials.bad_kind").to_owned());
        };
        if self.name.is_empty() {
            return Err(lang.t(TEXT, "credentials.name_missing").to_owned());
        }
        let other: Vec<&str> = FIELDS
            .iter()
            .filter(|f| f.kind != kind && self.values.contains_key(f.form))
            .map(|f| f.label(lang))
            .collect();
        if !other.is_empty() {
            return Err(format!(
                "{} {}",
                lang.t(TEXT, "credentials.other_kind"),
                other.join(", ")
            ));
        }
        let missing: Vec<&str> = FIELDS
            .iter()
            .filter(|f| f.kind == kind && f.required && !self.values.contains_key(f.form))
            .map(|f| f.label(lang))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} — {} {}",
                kind.label(lang),
                lang.t(TEXT, "credentials.missing"),
                missing.join(", ")
            ));
        }
        Ok(FIELDS
            .iter()
            .filter(|f| f.kind == kind)
            .filter_map(|f| {
                self.values
                    .get(f.form)
                    .map(|v| (f.variable.to_owned(), Secret::new(v.expose())))
            })
            .collect())
    }
}

/// `a=1&b=2` as pairs, as a browser encodes a form. Never fails: what is
/// not valid UTF-8 becomes replacement characters, which the hub refuses
/// in a key without quoting it.
fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> CredentialForm {
        CredentialForm::read(body.as_bytes())
    }

    #[test]
    fn each_kind_gives_exactly_its_variables() {
        let keys = form(
            "name=store&kind=object-store&access_key_id=AKIA0000ABCD&\
             secret_access_key=%20wJalr%2Bsecret%0A&session_token=",
        )
        .keys(Lang::En)
        .unwrap();
        let shown: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(
            shown,
            [
                ("AWS_ACCESS_KEY_ID", "AKIA0000ABCD"),
                ("AWS_SECRET_ACCESS_KEY", "wJalr+secret"),
            ]
        );
        let keys = form("name=hub&kind=hugging-face&hf_token=hf_abcdefgh")
            .keys(Lang::En)
            .unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["HF_TOKEN"]);
        let keys = form("name=ms&kind=modelscope&modelscope_token=ms-abcdefgh")
            .keys(Lang::En)
            .unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["MODELSCOPE_API_TOKEN"]);
        // A private store's endpoint and region travel with its keys.
        let keys = form(
            "name=minio&kind=object-store&access_key_id=AKIA0000ABCD&\
             secret_access_key=wJalr%2Bsecret&endpoint=http%3A%2F%2F10.0.0.5%3A9000&region=us-east-1",
        )
        .keys(Lang::En)
        .unwrap();
        assert_eq!(
            keys.get("AWS_ENDPOINT_URL").map(Secret::expose),
            Some("http://10.0.0.5:9000")
        );
        assert_eq!(
            keys.get("AWS_REGION").map(Secret::expose),
            Some("us-east-1")
        );
        let keys = form("name=hub&kind=hugging-face&hf_token=hf_abcdefgh&hf_endpoint=https%3A%2F%2Fhf-mirror.com")
            .keys(Lang::En)
            .unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["HF_ENDPOINT", "HF_TOKEN"]);
    }

    #[test]
    fn a_form_that_cannot_make_a_credential_says_why_without_its_values() {
        let refused = |body: &str| form(body).keys(Lang::En).unwrap_err();
        assert!(refused("name=x&kind=ftp&hf_token=hf_abcdefgh").contains("Choose"));
        assert!(refused("name=&kind=hugging-face&hf_token=hf_abcdefgh").contains("name"));
        let missing = refused("name=x&kind=object-store&access_key_id=AKIA0000ABCD");
        assert!(missing.contains("Secret access key"), "{missing}");
        assert!(!missing.contains("AKIA0000ABCD"), "{missing}");
        let mixed = refused("name=x&kind=hugging-face&hf_token=hf_abcdefgh&access_key_id=AKIAXYZW");
        assert!(mixed.contains("Access key ID"), "{mixed}");
        assert!(!mixed.contains("AKIAXYZW") && !mixed.contains("hf_abcdefgh"));
        let debug = format!(
            "{:?}",
            form("name=x&kind=hugging-face&hf_token=hf_abcdefgh")
        );
        assert!(!debug.contains("hf_abcdefgh"), "{debug}");
        // In Chinese too.
        assert!(
            !form("name=x&kind=ftp")
                .keys(Lang::Zh)
                .unwrap_err()
                .contains("missing text")
        );
    }
}
