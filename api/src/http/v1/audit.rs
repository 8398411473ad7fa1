//! `/api/v1/audit`: searching the audit trail and checking its chain.
//!
//! Auditors and platform admins see every tenant's records (an auditor
//! that belongs to a tenant sees that tenant's); tenant admins see their
//! own tenant's. Nothing here changes anything: an auditor can read the
//! trail and cannot touch it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use modelfleet_core::audit::Record;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit;
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::{ApiError, AppState, Caller};
use crate::ids::ExportId;
use crate::service::audit::AuditPublicKey;
pub use crate::service::audit::{CreateExport, SearchParams};
use crate::store::{AuditExport, ChainReport};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(verify))
        .routes(routes!(list_exports, create_export))
        .routes(routes!(public_key))
}

/// A page of audit records: Kubernetes `audit.k8s.io/v1` Events with their
/// sequence number and chain hashes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Record>,
    pub next_cursor: Option<String>,
}

/// Searches the audit trail, oldest first.
#[utoipa::path(get, path = "/audit", operation_id = "search_audit", tag = "audit", security(("bearer" = [])),
    params(SearchParams),
    responses(
        (status = 200, body = AuditList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<AuditList>, ApiError> {
    let page = state.hub().audit_search(&caller, params).await?;
    Ok(Json(AuditList {
        items: page.records,
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}

/// The chain's state: verifies every record in the database against its
/// hash and its predecessor, and the newest against the chain's head.
#[utoipa::path(get, path = "/audit/verify", operation_id = "verify_audit", tag = "audit", security(("bearer" = [])),
    responses(
        (status = 200, body = ChainStatus),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ChainStatus>, ApiError> {
    let report = state.hub().verify_audit(&caller).await?;
    Ok(Json(ChainStatus::from(report)))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainStatus {
    /// Whether every record verified.
    pub intact: bool,
    pub checked: u64,
    /// The newest record that verified.
    pub verified_through: i64,
    /// Records up to here were exported and pruned; verification starts
    /// after them.
    pub from_checkpoint: i64,
    /// The newest record's number, as the chain's head says.
    pub head: i64,
    /// The first record that does not verify, and why.
    pub broken: Option<String>,
}

impl From<ChainReport> for ChainStatus {
    fn from(r: ChainReport) -> Self {
        ChainStatus {
            intact: r.intact(),
            checked: r.checked,
            verified_through: r.verified_through,
            from_checkpoint: r.from_checkpoint,
            head: r.head,
            broken: r.broken.map(|b| b.to_string()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportView {
    #[schema(value_type = uuid::Uuid)]
    pub id: ExportId,
    /// `file:///…` or `s3://bucket/prefix`.
    pub location: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The object key of the signed digest.
    pub digest_key: String,
    /// The digest's Ed25519 signature (base64); the next digest carries it.
    pub digest_signature: String,
    pub created_at: DateTime<Utc>,
}

impl From<AuditExport> for ExportView {
    fn from(e: AuditExport) -> Self {
        ExportView {
            id: e.id,
            location: e.location,
            first_seq: e.first_seq,
            last_seq: e.last_seq,
            digest_key: e.digest_key,
            digest_signature: e.digest_signature,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportList {
    pub items: Vec<ExportView>,
}

/// Every export so far, oldest first.
#[utoipa::path(get, path = "/audit/exports", operation_id = "list_audit_exports", tag = "audit", security(("bearer" = [])),
    responses(
        (status = 200, body = ExportList),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_exports(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ExportList>, ApiError> {
    let items = state.hub().audit_exports(&caller).await?;
    Ok(Json(ExportList {
        items: items.into_iter().map(ExportView::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportResult {
    /// The export written; absent when there was nothing new.
    pub export: Option<ExportView>,
    pub records: u64,
    /// The data files written: object keys with their SHA-256.
    pub files: Vec<ExportedFileView>,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedFileView {
    pub key: String,
    pub format: String,
    pub sha256: String,
    pub bytes: u64,
    pub records: u64,
}

/// Exports the records no earlier export holds to the hub's configured
/// object store, with a signed digest. Platform admins and platform-wide
/// auditors.
#[utoipa::path(post, path = "/audit/exports", operation_id = "create_audit_export", tag = "audit", security(("bearer" = [])),
    request_body = CreateExport,
    responses(
        (status = 201, body = ExportResult, description = "Records were exported"),
        (status = 200, body = ExportResult, description = "Nothing new to export; nothing was written"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateExport>,
) -> Result<(StatusCode, Json<ExportResult>), ApiError> {
    let summary = state.hub().export_audit(&caller, body).await?;
    let status = if summary.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(ExportResult {
            message: summary.to_string(),
            records: summary.records,
            files: summary
                .files
                .iter()
                .map(|f| ExportedFileView {
                    key: f.object.key.clone(),
                    format: f.format.to_owned(),
                    sha256: f.object.sha256.clone(),
                    bytes: f.object.size,
                    records: f.records,
                })
                .collect(),
            export: summary.export.map(ExportView::from),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyView {
    pub algorithm: String,
    pub key_id: String,
    /// The raw 32-byte Ed25519 public key, base64.
    pub public_key: String,
    /// SHA-256 of the key, as digests name it.
    pub fingerprint: String,
}

/// The platform's audit public key, which verifies every export digest.
/// Anyone signed in may fetch it.
#[utoipa::path(get, path = "/audit/public-key", operation_id = "show_audit_public_key", tag = "audit", security(("bearer" = [])),
    responses(
        (status = 200, body = PublicKeyView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn public_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PublicKeyView>, ApiError> {
    let AuditPublicKey { key_id, key } = state.hub().audit_public_key(&caller).await?;
    Ok(Json(PublicKeyView {
        algorithm: "Ed25519".to_owned(),
        key_id,
        public_key: base64::engine::general_purpose::STANDARD.encode(key),
        fingerprint: audit::key_fingerprint(&key),
    }))
}
