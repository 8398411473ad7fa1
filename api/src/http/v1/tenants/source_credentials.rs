//! `/api/v1/tenants/{id}/source-credentials`: the keys a tenant's
//! deployments fetch their weights with (object stores' access keys,
//! Hugging Face and ModelScope tokens), kept sealed by the hub and written
//! by it into the clusters that need them. Listed by anyone of the tenant
//! without their values; added, replaced and removed by its tenant admins
//! and platform admins.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenant_id;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
use crate::secret::Secret;
use crate::service::source_credentials::{CredentialView, CredentialWritten, Delivery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_source_credentials))
        .routes(routes!(put_source_credential, delete_source_credential))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialList {
    pub items: Vec<CredentialView>,
}

/// A credential's keys. Each value is read as text and sealed at once; it
/// is never shown again, in an answer, an error or a log.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutCredential {
    /// `AWS_ACCESS_KEY_ID` with `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN` for temporary keys) for `s3://`, `oss://`,
    /// `obs://` and `cos://` sources; `HF_TOKEN` for Hugging Face;
    /// `MODELSCOPE_API_TOKEN` for ModelScope. Beside them, for a store
    /// the cloud's defaults do not reach: `AWS_ENDPOINT_URL` (a MinIO, a
    /// private link), `AWS_REGION`, `HF_ENDPOINT`, `MODELSCOPE_ENDPOINT`
    /// (mirrors), shown later as they are. Replacing a credential replaces
    /// all its keys.
    #[schema(value_type = BTreeMap<String, String>, example = json!({"AWS_ACCESS_KEY_ID": "AKIA…", "AWS_SECRET_ACCESS_KEY": "…"}))]
    pub keys: BTreeMap<String, serde_json::Value>,
}

impl std::fmt::Debug for PutCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutCredential")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialDeleted {
    /// Each cluster namespace its Secret was removed from.
    pub clusters: Vec<Delivery>,
}

/// A tenant's source credentials, without their values.
#[utoipa::path(get, path = "/tenants/{id}/source-credentials", tag = "deployments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = CredentialList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_source_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CredentialList>, ApiError> {
    let tenant = tenant_id(&id)?;
    let items = state.hub().source_credentials(&caller, tenant).await?;
    Ok(Json(CredentialList { items }))
}

/// Adds or replaces a source credential, and writes it again into every
/// cluster where a live deployment fetches with it. Tenant admins and
/// platform admins.
#[utoipa::path(put, path = "/tenants/{id}/source-credentials/{name}", tag = "deployments", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("name" = String, Path, description = "The credential's name: lower-case letters, digits and '-'"),
    ),
    request_body = PutCredential,
    responses(
        (status = 201, body = CredentialWritten),
        (status = 200, body = CredentialWritten),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json",
            description = "Too many changes of credentials in use (each is written to its clusters)",
            headers(("Retry-After" = u64, description = "Whole seconds to wait before trying again"))),
    ))]
pub async fn put_source_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<PutCredential>,
) -> Result<(StatusCode, Json<CredentialWritten>), ApiError> {
    let tenant = tenant_id(&id)?;
    let mut values = BTreeMap::new();
    for (key, value) in body.keys {
        // The value is never echoed: not even its type's serde message.
        let serde_json::Value::String(text) = value else {
            return Err(ApiError::invalid("keys", format!("{key} must be a string")));
        };
        values.insert(key, Secret::new(text));
    }
    let written = state
        .hub()
        .put_source_credential(&caller, tenant, &name, values)
        .await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(written)))
}

/// Removes a source credential — refused (409) while a live deployment
/// fetches with it — and its Secret from every cluster the hub wrote it
/// into. Tenant admins and platform admins.
#[utoipa::path(delete, path = "/tenants/{id}/source-credentials/{name}", tag = "deployments", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("name" = String, Path, description = "The credential's name"),
    ),
    responses(
        (status = 200, body = CredentialDeleted),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json",
            description = "Too many changes of credentials that were written to clusters",
            headers(("Retry-After" = u64, description = "Whole seconds to wait before trying again"))),
    ))]
pub async fn delete_source_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<CredentialDeleted>, ApiError> {
    let tenant = tenant_id(&id)?;
    let clusters = state
        .hub()
        .delete_source_credential(&caller, tenant, &name)
        .await?;
    Ok(Json(CredentialDeleted { clusters }))
}
