//! Deploying a model the catalog does not know, named by its source: a
//! model hub's (`hf://org/model`, `modelscope://org/model`) or an object
//! store's (`s3://bucket/prefix`, `oss://`, `obs://`, `cos://`). The hub
//! reads its config.json and safetensors headers (`Hub::inspect_model`)
//! with the tenant's source credential the form chose (`credential`: a
//! gated or private model's token, an object store's keys — which an
//! object store cannot be read without), and the page plans and deploys
//! it as a catalog model's page does, the source and the credential
//! riding along in the forms. The one deployed with is fetched with, as
//! the source secret `modelfleet-source-<name>` the hub writes for it.
//! A source that cannot be read comes back to the catalog page's source
//! form, filled as it was sent, with the hub's reason.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use modelfleet_api::AppState;
use modelfleet_core::crd::{ModelSource, SourceScheme};
use modelfleet_core::model::ModelArch;

use super::deploy::{
    Options, TEXT, catalog_with, default_name, deploy_model, parse_options, plan_page,
};
use super::page::{PageError, Viewer};

/// The form's `source` (empty when there is none).
fn source_in(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .find(|(name, _)| name == "source")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default()
}

/// Whether `source` is an object store's, which the hub reads with a
/// tenant's kept keys only.
fn in_object_store(source: &str) -> bool {
    ModelSource::parse(source).is_ok_and(|s| {
        matches!(
            s.scheme,
            SourceScheme::S3 | SourceScheme::Oss | SourceScheme::Obs | SourceScheme::Cos
        )
    })
}

/// The model at `source`, read with the source credential the form chose
/// when the tenant keeps it. A model hub's source is read without a
/// choice the tenant does not keep (a public model reads so), and the
/// deploy form then says what is wrong with the choice; an object store,
/// which reads with nothing else, is read with the choice as it is, and
/// the hub says what is wrong with it.
async fn read(
    state: &AppState,
    viewer: &Viewer,
    source: &str,
    options: &Options,
) -> Result<ModelArch, PageError> {
    if source.is_empty() {
        return Err(PageError::new(
            viewer.lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            viewer.lang.t(TEXT, "deploy.source_missing"),
        ));
    }
    let tenant = viewer
        .caller
        .actor
        .tenant
        .or_else(|| options.tenant.parse().ok());
    let credential = match (options.credential.as_str(), tenant) {
        ("", _) | (_, None) => None,
        (name, Some(tenant)) => {
            let kept = in_object_store(source)
                || state
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

/// A source that could not be read: the catalog page's source form again,
/// as it was sent, saying why, with the hub's status. A refusal that is
/// not about the form (signed out, too many reads, the hub failing) is
/// answered as any page's.
async fn unread(
    state: &AppState,
    viewer: &Viewer,
    options: &Options,
    source: &str,
    error: PageError,
) -> Response {
    let status = error.status();
    if !status.is_client_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        return error.into_response();
    }
    let page = catalog_with(
        state,
        viewer,
        options,
        source,
        Some(error.message().to_owned()),
    )
    .await;
    (status, page).into_response()
}

/// A form's options, its fields, its source and the model read from it;
/// or the page that says why not.
async fn read_form(
    state: &AppState,
    viewer: &Viewer,
    form: &str,
) -> Result<(Options, Vec<(String, String)>, String, ModelArch), Response> {
    let (options, pairs) = parse_options(form).map_err(|message| {
        PageError::new(viewer.lang, StatusCode::BAD_REQUEST, message).into_response()
    })?;
    let source = source_in(&pairs);
    match read(state, viewer, &source, &options).await {
        Ok(model) => Ok((options, pairs, source, model)),
        Err(e) => Err(unread(state, viewer, &options, &source, e).await),
    }
}

/// `GET /deploy/source?source=…&credential=…`: the model read from its
/// source, its plans and the deploy form.
pub(super) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Response {
    let (options, _, source, model) =
        match read_form(&state, &viewer, query.as_deref().unwrap_or("")).await {
            Ok(read) => read,
            Err(page) => return page,
        };
    let name = default_name(&model.id);
    plan_page(&state, &viewer, &model, Some(&source), options, name, None)
        .await
        .into_response()
}

/// `POST /deploy/source`: deploys it, as a catalog model's form does.
pub(super) async fn deploy(
    State(state): State<AppState>,
    viewer: Viewer,
    body: axum::body::Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    let (options, pairs, source, model) = match read_form(&state, &viewer, &text).await {
        Ok(read) => read,
        Err(page) => return page,
    };
    deploy_model(state, viewer, &model, Some(&source), options, &pairs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_stores_are_told_from_model_hubs() {
        for source in ["s3://b/m", "oss://b/m", "obs://b/m", "cos://b/m"] {
            assert!(in_object_store(source), "{source}");
        }
        for source in [
            "hf://org/m",
            "modelscope://org/m",
            "pvc://claim/m",
            "nonsense",
            "",
        ] {
            assert!(!in_object_store(source), "{source}");
        }
    }
}
