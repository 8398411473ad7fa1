//! `/api/v1/models/inspect`: a model the catalog does not know, sized from
//! its own files at an `hf://` or `modelscope://` source, or an object
//! store's read with a source credential the tenant keeps — its
//! config.json and safetensors headers, never the weights. The answer's
//! `architecture` is what `plans` and `deployments` take. Nothing changes.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
use crate::service::models::InspectedModel;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(inspect))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InspectRequest {
    /// `hf://org/model[@revision]`, `modelscope://org/model[@revision]`,
    /// or an object store's `s3://`, `oss://`, `obs://` or
    /// `cos://bucket/prefix` (with `sourceCredential`).
    #[schema(example = "hf://Qwen/Qwen3-8B")]
    pub source: String,
    /// A source credential the tenant keeps. Its `HF_TOKEN` or
    /// `MODELSCOPE_API_TOKEN` reads a gated or private model; an object
    /// store is read only with one, with its `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), at its
    /// `AWS_ENDPOINT_URL` or else the cloud's endpoint for its
    /// `AWS_REGION`, and only at public addresses unless the platform
    /// allows private ones.
    pub source_credential: Option<String>,
    /// The tenant whose credential it is (platform admins); tenants leave
    /// it out.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<crate::ids::TenantId>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InspectedModelView {
    /// The model as a catalog model is described; its id comes from the
    /// source's name.
    #[schema(value_type = Object)]
    pub architecture: modelfleet_core::model::ModelArch,
    /// Safetensors shards whose headers were read.
    pub shards: usize,
    /// Bytes read, of `listedBytes` under the source.
    pub read_bytes: u64,
    pub listed_bytes: u64,
}

impl From<InspectedModel> for InspectedModelView {
    fn from(m: InspectedModel) -> Self {
        InspectedModelView {
            architecture: m.architecture,
            shards: m.shards,
            read_bytes: m.read_bytes,
            listed_bytes: m.listed_bytes,
        }
    }
}

/// Reads and sizes the model at a model hub's or an object store's source.
#[utoipa::path(post, path = "/models/inspect", operation_id = "inspect_model", tag = "models", security(("bearer" = [])),
    request_body = InspectRequest,
    responses(
        (status = 200, body = InspectedModelView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json",
            description = "The source is not one the hub reads, cannot be reached or read, or its config cannot be sized"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn inspect(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<InspectRequest>,
) -> Result<Json<InspectedModelView>, ApiError> {
    let credential = match &body.source_credential {
        None => None,
        Some(name) => {
            let tenant = caller.actor.tenant.or(body.tenant).ok_or_else(|| {
                ApiError::invalid(
                    "tenant",
                    "name the tenant whose source credential reads the model",
                )
            })?;
            Some((tenant, name.as_str()))
        }
    };
    let inspected = state
        .hub()
        .inspect_model(&caller, &body.source, credential)
        .await?;
    Ok(Json(inspected.into()))
}
