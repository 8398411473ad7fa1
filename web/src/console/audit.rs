//! Console pages: the audit trail (search, chain status, exports, a CSV of
//! a search).
//!
//! Who sees what is the API's decision: every page calls
//! `modelfleet_api::http::v1::audit` with the viewer's
//! caller, so a tenant admin finds their tenant's records only, and the
//! chain status and exports (which span every tenant) are for platform
//! staff.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDateTime, Utc};
use modelfleet_api::AppState;
use modelfleet_api::service::Error as ApiError;
use modelfleet_api::service::audit::{CreateExport, SearchParams};
use modelfleet_api::store::{AuditExport, MAX_AUDIT_PAGE};
use modelfleet_core::audit::Record;
use serde::Deserialize;

use super::i18n::Table;
use super::page::{Chrome, PageError, Viewer};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(audit_page))
        .route("/audit/records.csv", get(records_csv))
        .route("/audit/exports", post(create_export))
}

/// Records per page on the audit page, unless the query says otherwise.
const PAGE_SIZE: u32 = 50;
/// At most this many records go into one CSV download.
const CSV_MAX_RECORDS: usize = 50_000;

/// A date and time from a form: RFC 3339, or what `<input
/// type="datetime-local">` sends (`2026-11-29T08:30`, read as UTC).
pub(crate) fn parse_time(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err(ApiError::invalid(
        field,
        format!("{text:?} is not a date and time: use 2026-11-29T08:30 (UTC) or RFC 3339"),
    ))
}

/// A form's text field, `None` when left empty.
fn filled(value: &str) -> Option<String> {
    Some(value.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The audit search form, as the page's query string carries it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Filters {
    from: String,
    to: String,
    actor: String,
    verb: String,
    resource: String,
    name: String,
    outcome: String,
    tenant: String,
    limit: String,
    cursor: String,
}

impl Filters {
    /// The API's search parameters, or what is wrong with the form.
    fn params(&self, limit: u32) -> Result<SearchParams, ApiError> {
        let tenant = filled(&self.tenant)
            .map(|t| {
                t.parse()
                    .map_err(|_| ApiError::invalid("tenant", format!("{t:?} is not a tenant id")))
            })
            .transpose()?;
        let limit = match filled(&self.limit) {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::invalid("limit", "must be a whole number"))?,
            None => limit,
        };
        Ok(SearchParams {
            from: parse_time("from", &self.from)?,
            to: parse_time("to", &self.to)?,
            actor: filled(&self.actor),
            verb: filled(&self.verb),
            resource: filled(&self.resource),
            name: filled(&self.name),
            outcome: filled(&self.outcome),
            tenant,
            limit: Some(limit),
            cursor: filled(&self.cursor),
        })
    }

    /// The filters as a query string (without the cursor), for links.
    fn query(&self) -> Vec<(&'static str, String)> {
        let fields = [
            ("from", &self.from),
            ("to", &self.to),
            ("actor", &self.actor),
            ("verb", &self.verb),
            ("resource", &self.resource),
            ("name", &self.name),
            ("outcome", &self.outcome),
            ("tenant", &self.tenant),
            ("limit", &self.limit),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| filled(v).map(|v| (k, v)))
            .collect()
    }

    fn link(&self, path: &str, cursor: Option<&str>) -> String {
        let mut pairs = self.query();
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_owned()));
        }
        let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    }
}

/// One row of the records table.
#[derive(Debug)]
struct Row {
    seq: i64,
    time: String,
    actor: String,
    verb: String,
    resource: String,
    name: String,
    outcome: &'static str,
    failed: bool,
    code: String,
    message: String,
    source_ip: String,
    tenant: String,
}

impl Row {
    fn of(r: &Record) -> Row {
        let e = &r.event;
        Row {
            seq: e.seq,
            time: e.stage_timestamp.clone(),
            actor: e.user.username.clone(),
            verb: e.verb.clone(),
            resource: e.object_ref.resource.clone(),
            name: e.object_ref.name.clone().unwrap_or_default(),
            outcome: e.response_status.status.as_str(),
            failed: e.response_status.status == modelfleet_core::audit::Outcome::Failure,
            code: e
                .response_status
                .code
                .map(|c| c.to_string())
                .unwrap_or_default(),
            message: e.response_status.message.clone().unwrap_or_default(),
            source_ip: e.source_ips.join(", "),
            tenant: e.object_ref.namespace.clone().unwrap_or_default(),
        }
    }
}

/// The chain's state as the page shows it.
#[derive(Debug)]
struct Chain {
    intact: bool,
    checked: u64,
    head: i64,
    broken: Option<String>,
}

#[derive(Debug)]
struct ExportRow {
    location: String,
    first_seq: i64,
    last_seq: i64,
    digest_key: String,
    created_at: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/audit/trail.html")]
struct AuditPage {
    c: Chrome,
    f: Filters,
    platform_wide: bool,
    rows: Vec<Row>,
    error: Option<String>,
    next: Option<String>,
    csv: String,
    /// `None`: this viewer may not verify the whole chain.
    chain: Option<Chain>,
    chain_error: Option<String>,
    /// `None`: this viewer may not see the exports.
    exports: Option<Vec<ExportRow>>,
}

async fn audit_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(f): Query<Filters>,
) -> Result<Response, PageError> {
    let mut page = AuditPage {
        c: viewer.chrome("audit", TEXT),
        platform_wide: viewer.user.tenant.is_none(),
        rows: Vec::new(),
        error: None,
        next: None,
        csv: f.link("/audit/records.csv", None),
        chain: None,
        chain_error: None,
        exports: None,
        f,
    };
    let mut status = StatusCode::OK;
    let found = match page.f.params(PAGE_SIZE) {
        Ok(params) => state.hub().audit_search(&viewer.caller, params).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(list) => {
            page.rows = list.records.iter().map(Row::of).collect();
            page.next = list
                .next
                .map(|c| page.f.link("/audit", Some(&c.to_string())));
        }
        Err(e)
            if matches!(
                e.status(),
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ) =>
        {
            status = e.status();
            page.error = Some(e.detail().to_owned());
        }
        Err(e) => return Err(viewer.fail(e)),
    }
    match state.hub().verify_audit(&viewer.caller).await {
        Ok(s) => {
            page.chain = Some(Chain {
                intact: s.intact(),
                checked: s.checked,
                head: s.head,
                broken: s.broken.map(|b| b.to_string()),
            });
        }
        Err(e) if e.status() == StatusCode::FORBIDDEN => {}
        Err(e) => page.chain_error = Some(e.detail().to_owned()),
    }
    if let Ok(list) = state.hub().audit_exports(&viewer.caller).await {
        page.exports = Some(list.into_iter().map(export_row).collect());
    }
    Ok((status, page).into_response())
}

fn export_row(e: AuditExport) -> ExportRow {
    ExportRow {
        location: e.location,
        first_seq: e.first_seq,
        last_seq: e.last_seq,
        digest_key: e.digest_key,
        created_at: e.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// Every record the search finds (following its pages), as CSV.
async fn records_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(mut f): Query<Filters>,
) -> Result<Response, PageError> {
    f.limit.clear();
    f.cursor.clear();
    let mut records = Vec::new();
    loop {
        let params = f.params(MAX_AUDIT_PAGE).map_err(|e| viewer.fail(e))?;
        let list = state
            .hub()
            .audit_search(&viewer.caller, params)
            .await
            .map_err(|e| viewer.fail(e))?;
        records.extend(list.records);
        match list.next {
            Some(next) if records.len() < CSV_MAX_RECORDS => f.cursor = next.to_string(),
            _ => break,
        }
    }
    let out = modelfleet_api::audit::csv_file(&records).map_err(|e| {
        PageError::new(
            viewer.lang,
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )
    })?;
    let name = format!(
        "attachment; filename=\"audit-{}.csv\"",
        Utc::now().format("%Y%m%d-%H%M%S")
    );
    let mut response = out.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct ExportForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

#[derive(Debug)]
struct FileRow {
    key: String,
    format: String,
    sha256: String,
    bytes: u64,
    records: u64,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/audit/export.html")]
struct ExportPage {
    c: Chrome,
    error: Option<String>,
    message: String,
    records: u64,
    location: Option<String>,
    files: Vec<FileRow>,
}

/// Exports the records no export holds yet to the hub's object store.
async fn create_export(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<ExportForm>,
) -> Result<Response, PageError> {
    let body = match (parse_time("from", &form.from), parse_time("to", &form.to)) {
        (Ok(from), Ok(to)) => Ok(CreateExport { from, to }),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let result = match body {
        Ok(body) => state.hub().export_audit(&viewer.caller, body).await,
        Err(e) => Err(e),
    };
    let mut page = ExportPage {
        c: viewer.chrome("audit", TEXT),
        error: None,
        message: String::new(),
        records: 0,
        location: None,
        files: Vec::new(),
    };
    match result {
        Ok(r) => {
            let status = if r.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            page.message = r.to_string();
            page.records = r.records;
            page.files = r
                .files
                .iter()
                .map(|f| FileRow {
                    key: f.object.key.clone(),
                    format: f.format.to_owned(),
                    sha256: f.object.sha256.clone(),
                    bytes: f.object.size,
                    records: f.records,
                })
                .collect();
            page.location = r.export.map(|e| e.location);
            Ok((status, page).into_response())
        }
        Err(e) if e.status() == StatusCode::FORBIDDEN => Err(viewer.fail(e)),
        Err(e) => {
            let status = e.status();
            page.error = Some(e.detail().to_owned());
            Ok((status, page).into_response())
        }
    }
}

pub(crate) const TEXT: Table = &[
    ("audit.title", "Audit trail", "审计日志"),
    ("audit.search", "Search", "搜索"),
    ("audit.filters", "Filters", "筛选条件"),
    ("audit.from", "From (UTC)", "开始时间（UTC）"),
    ("audit.to", "To (UTC)", "结束时间（UTC）"),
    (
        "audit.time_hint",
        "2026-11-29T08:30 or RFC 3339",
        "例如 2026-11-29T08:30 或 RFC 3339 格式",
    ),
    ("audit.actor", "Actor", "操作者"),
    ("audit.verb", "Verb", "操作"),
    ("audit.resource", "Resource", "资源类型"),
    ("audit.name", "Name", "对象名称"),
    ("audit.outcome", "Outcome", "结果"),
    ("audit.any", "Any", "全部"),
    ("audit.success", "Success", "成功"),
    ("audit.failure", "Failure", "失败"),
    ("audit.tenant", "Tenant id", "租户 ID"),
    ("audit.seq", "#", "序号"),
    ("audit.time", "Time", "时间"),
    ("audit.source_ip", "Source IP", "来源 IP"),
    ("audit.records", "Records", "审计记录"),
    (
        "audit.no_records",
        "No records match these filters.",
        "没有符合筛选条件的记录。",
    ),
    (
        "audit.csv",
        "Download these records as CSV",
        "将这些记录下载为 CSV",
    ),
    ("audit.chain", "Chain verification", "哈希链校验"),
    (
        "audit.chain_intact",
        "Intact: every record verifies against its hash and its predecessor.",
        "完整：每条记录的哈希及其与前一条记录的链接均校验通过。",
    ),
    ("audit.chain_broken", "Broken:", "已损坏："),
    ("audit.chain_checked", "Records checked", "已校验记录数"),
    ("audit.chain_head", "Newest record", "最新记录序号"),
    (
        "audit.chain_hidden",
        "The chain spans every tenant's records: only platform-wide auditors and platform admins verify it.",
        "哈希链涵盖所有租户的记录：仅平台级审计员和平台管理员可以校验。",
    ),
    ("audit.exports", "Exports", "导出"),
    (
        "audit.exports_none",
        "Nothing exported yet.",
        "尚未导出任何记录。",
    ),
    ("audit.export_location", "Location", "存储位置"),
    ("audit.export_range", "Records", "记录范围"),
    ("audit.export_digest", "Signed digest", "签名摘要"),
    ("audit.export_created", "Exported at", "导出时间"),
    (
        "audit.export_run",
        "Export new records now",
        "立即导出新记录",
    ),
    (
        "audit.export_hint",
        "Writes every record no export holds yet to the hub's object store, with a signed digest. Leave the times empty for everything up to now.",
        "将尚未导出的全部记录写入平台的对象存储，并附带签名摘要。时间留空则导出截至当前的全部记录。",
    ),
    ("audit.export_result", "Audit export", "审计导出"),
    ("audit.export_files", "Files written", "已写入的文件"),
    ("audit.export_key", "Object key", "对象键"),
    ("audit.export_format", "Format", "格式"),
    ("audit.export_bytes", "Bytes", "字节数"),
    (
        "audit.export_nothing",
        "Nothing new to export: no file was written.",
        "没有新的记录需要导出，未写入任何文件。",
    ),
    ("audit.back", "Back to the audit trail", "返回审计日志"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_read_as_utc() {
        let t = parse_time("from", "2026-11-29T08:30").unwrap().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T08:30:00+00:00");
        let t = parse_time("from", "2026-11-29T08:30:00+08:00")
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T00:30:00+00:00");
        assert!(parse_time("from", " ").unwrap().is_none());
        assert!(parse_time("from", "yesterday").is_err());
    }
}
