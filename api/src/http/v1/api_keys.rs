//! `/api/v1/api-keys`: a tenant's API keys, managed by its tenant admins.
//! A new key's token is in the creation response and nowhere else, ever;
//! lists show the public prefix only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, parse_id};
use crate::http::page::{PageParams, paginate};
use crate::http::{ApiError, AppState, Caller};
use crate::identity::Role;
use crate::ids::{ApiKeyId, TenantId};
pub use crate::service::access::CreateApiKey;
use crate::store::ApiKey;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, revoke))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    #[schema(value_type = uuid::Uuid)]
    pub id: ApiKeyId,
    #[schema(value_type = uuid::Uuid)]
    pub tenant: TenantId,
    pub name: String,
    /// Public: the token starts with `mf_<prefix>_`.
    pub prefix: String,
    #[schema(value_type = crate::http::schema::RoleSchema)]
    pub role: Role,
    /// Calls the tenant's models (`/v1/…`) and nothing else.
    pub inference_only: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            tenant: k.tenant,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            inference_only: k.inference_only,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKeyView {
    pub key: ApiKeyView,
    /// The secret token. Shown this once; store it now.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The tenant; platform admins must name it.
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A tenant's keys, revoked ones included.
#[utoipa::path(get, path = "/api-keys", operation_id = "list_api_keys", tag = "api-keys", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, body = ApiKeyList),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let keys = state.hub().api_keys(&caller, params.tenant).await?;
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let (keys, next_cursor) = paginate(keys, |k| k.id.to_string(), &page)?;
    Ok(Json(ApiKeyList {
        items: keys.into_iter().map(ApiKeyView::from).collect(),
        next_cursor,
    }))
}

/// Creates a key; the response holds its token, shown this once.
#[utoipa::path(post, path = "/api-keys", operation_id = "create_api_key", tag = "api-keys", security(("bearer" = [])),
    request_body = CreateApiKey,
    responses(
        (status = 201, body = CreatedApiKeyView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let created = state.hub().create_api_key(&caller, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKeyView {
            key: created.key.into(),
            token: created.token.expose().to_owned(),
        }),
    ))
}

/// One key.
#[utoipa::path(get, path = "/api-keys/{id}", operation_id = "show_api_key", tag = "api-keys", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, body = ApiKeyView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let id: ApiKeyId = parse_id(&id, "API key")?;
    Ok(Json(state.hub().api_key(&caller, id).await?.into()))
}

/// Revokes a key: it stops working at once. Revoking twice is harmless.
#[utoipa::path(delete, path = "/api-keys/{id}", operation_id = "revoke_api_key", tag = "api-keys", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, body = ApiKeyView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let id: ApiKeyId = parse_id(&id, "API key")?;
    Ok(Json(state.hub().revoke_api_key(&caller, id).await?.into()))
}
