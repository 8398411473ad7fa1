//! Deploying a model the catalog does not know, named by its model hub
//! source (`hf://org/model`, `modelscope://org/model`): the hub reads its
//! config.json and safetensors headers (`Hub::inspect_model`), and the
//! page plans and deploys it as a catalog model's page does, the source
//! riding along in the forms. Its deploy form also offers the tenant's
//! source credentials (`credential`): the one chosen is fetched with, as
//! the source secret `modelfleet-source-<name>` the hub writes for it.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use modelfleet_api::AppState;
use modelfleet_core::model::ModelArch;

use super::deploy::{
    ModelPage, Options, TEXT, default_name, deploy_model, parse_options, plan_page,
};
use super::page::{PageError, Viewer};

/// The form's `source`, or what to do without one.
fn source_of(viewer: &Viewer, pairs: &[(String, String)]) -> Result<String, PageError> {
    pairs
        .iter()
        .find(|(name, _)| name == "source")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            PageError::new(
                viewer.lang,
                StatusCode::UNPROCESSABLE_ENTITY,
                viewer.lang.t(TEXT, "deploy.source_missing"),
            )
        })
}

/// The model at `source`, read with the source credential the form chose
/// (a gated or private model's token) when the tenant keeps it; a choice
/// it does not keep is read without, and the deploy form then says what
/// is wrong with the choice.
async fn read(
    state: &AppState,
    viewer: &Viewer,
    source: &str,
    options: &Options,
) -> Result<ModelArch, PageError> {
    let tenant = viewer
        .caller
        .actor
        .tenant
        .or_else(|| options.tenant.parse().ok());
    let credential = match (options.credential.as_str(), tenant) {
        ("", _) | (_, None) => None,
        (name, Some(tenant)) => {
            let kept = state
                .hub()
                .source_credentials(&viewer.caller, tenant)
                .await
                .is_ok_and(|kept| kept.iter().any(|c| c.name == name));
            kept.then_some((tenant, name))
        }
    };
    state
        .hub()
        .inspect_model(&viewer.caller, source, credential)
        .await
        .map(|m| m.architecture)
        .map_err(|e| viewer.fail(e))
}

/// `GET /deploy/source?source=…`: the model read from its source, its
/// plans and the deploy form.
pub(super) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<ModelPage, PageError> {
    let (options, pairs) = parse_options(query.as_deref().unwrap_or(""))
        .map_err(|message| PageError::new(viewer.lang, StatusCode::BAD_REQUEST, message))?;
    let source = source_of(&viewer, &pairs)?;
    let model = read(&state, &viewer, &source, &options).await?;
    let name = default_name(&model.id);
    Ok(plan_page(&state, &viewer, &model, Some(&source), options, name, None).await)
}

/// `POST /deploy/source`: deploys it, as a catalog model's form does.
pub(super) async fn deploy(
    State(state): State<AppState>,
    viewer: Viewer,
    body: axum::body::Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    let (options, pairs) = match parse_options(&text) {
        Ok(parsed) => parsed,
        Err(message) => {
            return PageError::new(viewer.lang, StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let source = match source_of(&viewer, &pairs) {
        Ok(source) => source,
        Err(e) => return e.into_response(),
    };
    let model = match read(&state, &viewer, &source, &options).await {
        Ok(model) => model,
        Err(e) => return e.into_response(),
    };
    deploy_model(state, viewer, &model, Some(&source), options, &pairs).await
}
