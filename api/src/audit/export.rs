//! Exporting records: JSON Lines, CSV and a signed digest per export.
//!
//! Each export continues exactly after the previous one (by sequence
//! number), so exports tile the chain without gaps or overlaps and each
//! digest links to the one before. The time range therefore bounds only
//! the end: records are taken in sequence order up to, not including, the
//! first one recorded at or after `to`. `from` is recorded in the digest;
//! records older than it that no export holds yet are still included,
//! because skipping them would leave a hole no later export could fill.
//!
//! Records are read in batches of [`BATCH`] and streamed into the objects
//! as they are read, so memory stays bounded whatever the range. They are
//! checked against the hash chain on the way: an export never signs
//! records that do not verify. The export's row is written only once every
//! object is in place; if that fails, the digest is removed again, so the
//! digest chain in storage never holds an export the database does not.

use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use modelfleet_core::audit::{ChainBreak, ChainHash, ChainVerifier, Record};

use super::digest::{DIGEST_VERSION, Digest, DigestFile, SIGNATURE_ALGORITHM, digest_name};
use super::object::{ObjectWriter, WrittenObject};
use super::storage::StorageError;
use super::target::ExportTarget;
use crate::identity::Actor;
use crate::ids::ExportId;
use crate::secret::Keyring;
use crate::store::{AuditExport, Store, StoreError};

/// Records read per query.
pub const BATCH: i64 = 1000;

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 20] = [
    "seq",
    "auditID",
    "stageTimestamp",
    "requestReceivedTimestamp",
    "username",
    "groups",
    "sourceIPs",
    "userAgent",
    "verb",
    "resource",
    "namespace",
    "name",
    "uid",
    "code",
    "status",
    "message",
    "requestURI",
    "annotations",
    "prevHash",
    "hash",
];

/// Why an export failed. Messages name the object or record, never a
/// credential.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the time range is empty: from {from} is not before to {to}")]
    EmptyRange { from: String, to: String },
    #[error(
        "refusing to export: the audit chain in the database is broken at {0}; run `modelfleet audit verify`"
    )]
    Chain(ChainBreak),
    #[error("record {seq} has an unreadable stageTimestamp {value:?}")]
    Timestamp { seq: i64, value: String },
    #[error("cannot write CSV: {0}")]
    Csv(String),
}

/// One data file an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub object: WrittenObject,
    pub format: &'static str,
    pub records: u64,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The export's row; `None` when there was nothing new to export, in
    /// which case nothing was written.
    pub export: Option<AuditExport>,
    /// Records after this one were looked at.
    pub after_seq: i64,
    pub records: u64,
    pub files: Vec<ExportedFile>,
    pub digest_key: Option<String>,
}

impl ExportSummary {
    pub fn is_empty(&self) -> bool {
        self.export.is_none()
    }
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.export {
            None => write!(
                f,
                "nothing to export: no records after record {} in the time range; nothing was written",
                self.after_seq
            ),
            Some(e) => write!(
                f,
                "exported {} records ({}-{}) to {}; digest {}",
                self.records,
                e.first_seq,
                e.last_seq,
                e.location,
                self.digest_key.as_deref().unwrap_or("-")
            ),
        }
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Exports the records after the previous export that were recorded before
/// `to` (see the module documentation for `from`), acting as `actor`
/// (platform admins and the hub itself).
pub async fn export(
    store: &Store,
    keyring: &Keyring,
    target: &ExportTarget,
    actor: &Actor,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<ExportSummary, ExportError> {
    if let Some(from) = from
        && from >= to
    {
        return Err(ExportError::EmptyRange {
            from: timestamp(from),
            to: timestamp(to),
        });
    }
    // Auditors export the trail too (it is theirs to keep), but only those
    // who see every tenant's records.
    if !crate::store::may_export_audit(actor) {
        return Err(StoreError::Forbidden.into());
    }
    let key = store.audit_signing_key(keyring).await?;
    let previous = store.last_audit_export().await?;
    let after_seq = previous.as_ref().map_or(0, |e| e.last_seq);
    let id = ExportId::new();
    let created_at = crate::store::now();
    let day = format!(
        "audit/{:04}/{:02}/{:02}",
        created_at.year(),
        created_at.month(),
        created_at.day()
    );
    let jsonl_key = target.key(&format!("{day}/{id}.jsonl"));
    let csv_key = target.key(&format!("{day}/{id}.csv"));

    let mut files: Option<Files> = None;
    let streamed = stream(
        store, target, after_seq, to, &jsonl_key, &csv_key, &mut files,
    )
    .await;
    let (range, written) = match (streamed, files) {
        (Ok(None), None) => {
            return Ok(ExportSummary {
                export: None,
                after_seq,
                records: 0,
                files: Vec::new(),
                digest_key: None,
            });
        }
        (Ok(Some(range)), Some(files)) => match files.finish().await {
            Ok(written) => (range, written),
            Err(e) => return Err(e.into()),
        },
        (Err(e), files) => {
            if let Some(files) = files {
                files.abort().await;
            }
            return Err(e);
        }
        // Files exist exactly when a record was written.
        (Ok(_), files) => {
            if let Some(files) = files {
                files.abort().await;
            }
            return Err(StoreError::Corrupt("audit export state").into());
        }
    };

    let files: Vec<ExportedFile> = written
        .into_iter()
        .zip(["jsonl", "csv"])
        .map(|(object, format)| ExportedFile {
            object,
            format,
            records: range.records,
        })
        .collect();
    let digest = Digest {
        version: DIGEST_VERSION,
        export_id: id.to_string(),
        location: target.location().to_string(),
        created_at: timestamp(created_at),
        from: from.map(timestamp),
        to: timestamp(to),
        first_record_at: range.first_at.clone(),
        last_record_at: range.last_at.clone(),
        first_seq: range.first_seq,
        last_seq: range.last_seq,
        first_prev_hash: range.first_prev_hash,
        last_hash: range.last_hash,
        records: range.records,
        files: files
            .iter()
            .map(|f| DigestFile {
                key: f.object.key.clone(),
                format: f.format.to_owned(),
                sha256: f.object.sha256.clone(),
                size: f.object.size,
                records: f.records,
            })
            .collect(),
        previous_digest_key: previous.as_ref().map(|e| e.digest_key.clone()),
        previous_digest_signature: previous.as_ref().map(|e| e.digest_signature.clone()),
        signature_algorithm: SIGNATURE_ALGORITHM.to_owned(),
        public_key_id: key.id.to_string(),
        public_key_fingerprint: key.fingerprint(),
    };
    let signed = digest.sign(key.signing_key());
    let digest_key = target.key(&format!(
        "audit/digests/{}",
        digest_name(range.last_seq, &id.to_string())
    ));
    target.put(&digest_key, signed.to_bytes()).await?;

    let row = AuditExport {
        id,
        location: target.location().to_string(),
        first_seq: range.first_seq,
        last_seq: range.last_seq,
        digest_key: digest_key.clone(),
        digest_signature: signed.signature.clone(),
        created_at,
    };
    let recorded = async {
        let mut tx = store.begin(actor).await?;
        tx.record_audit_export(&row).await?;
        if actor.origin.audit_id.is_some() {
            // Asked through the API, which answers a new export with 201.
            tx.respond(201);
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = recorded {
        // The data files stay (no digest names them); the digest goes, so
        // the next export's digest links to the last recorded one.
        if let Err(d) = target.delete(&digest_key).await {
            tracing::warn!(error = %d, "could not remove the digest of an export that was not recorded");
        }
        return Err(e.into());
    }
    Ok(ExportSummary {
        export: Some(row),
        after_seq,
        records: range.records,
        files,
        digest_key: Some(digest_key),
    })
}

/// The range of records an export holds.
#[derive(Debug)]
struct Range {
    first_seq: i64,
    last_seq: i64,
    first_prev_hash: ChainHash,
    last_hash: ChainHash,
    first_at: String,
    last_at: String,
    records: u64,
}

/// The two data files being written.
struct Files {
    jsonl: ObjectWriter,
    csv: ObjectWriter,
}

/// A CSV writer into memory, for one batch of rows.
fn csv_buffer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new())
}

fn csv_bytes(rows: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ExportError> {
    rows.into_inner()
        .map_err(|e| ExportError::Csv(e.error().to_string()))
}

impl Files {
    async fn open(
        target: &ExportTarget,
        jsonl_key: &str,
        csv_key: &str,
    ) -> Result<Files, ExportError> {
        let jsonl = target.create(jsonl_key).await?;
        let csv = match target.create(csv_key).await {
            Ok(csv) => csv,
            Err(e) => {
                jsonl.abort().await;
                return Err(e.into());
            }
        };
        let mut files = Files { jsonl, csv };
        let mut header = csv_buffer();
        header
            .write_record(CSV_HEADER)
            .map_err(|e| ExportError::Csv(e.to_string()))?;
        let header = csv_bytes(header)?;
        files.csv.write(&header).await?;
        Ok(files)
    }

    /// Appends a batch's lines and rows.
    async fn write(&mut self, records: &[Record]) -> Result<(), ExportError> {
        let mut lines = Vec::with_capacity(records.len() * 700);
        let mut rows = csv_buffer();
        for record in records {
            // Plain structs and strings always serialize.
            serde_json::to_writer(&mut lines, record).unwrap_or_default();
            lines.push(b'\n');
            csv_row(&mut rows, record)?;
        }
        self.jsonl.write(&lines).await?;
        self.csv.write(&csv_bytes(rows)?).await?;
        Ok(())
    }

    async fn finish(self) -> Result<[WrittenObject; 2], StorageError> {
        let jsonl = match self.jsonl.finish().await {
            Ok(w) => w,
            Err(e) => {
                self.csv.abort().await;
                return Err(e);
            }
        };
        let csv = self.csv.finish().await?;
        Ok([jsonl, csv])
    }

    async fn abort(self) {
        self.jsonl.abort().await;
        self.csv.abort().await;
    }
}

/// Records as a CSV file in the export's columns ([`CSV_HEADER`]), with
/// the same protection against formulas: what the console downloads.
pub fn csv_file<'a>(records: impl IntoIterator<Item = &'a Record>) -> Result<Vec<u8>, ExportError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER)
        .map_err(|e| ExportError::Csv(e.to_string()))?;
    for record in records {
        csv_row(&mut out, record)?;
    }
    out.into_inner()
        .map_err(|e| ExportError::Csv(e.to_string()))
}

fn csv_row(out: &mut csv::Writer<Vec<u8>>, record: &Record) -> Result<(), ExportError> {
    let e = &record.event;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let row: [String; 20] = [
        e.seq.to_string(),
        e.audit_id.clone(),
        e.stage_timestamp.clone(),
        e.request_received_timestamp.clone(),
        e.user.username.clone(),
        e.user.groups.join(";"),
        e.source_ips.join(";"),
        opt(&e.user_agent),
        e.verb.clone(),
        e.object_ref.resource.clone(),
        opt(&e.object_ref.namespace),
        opt(&e.object_ref.name),
        opt(&e.object_ref.uid),
        e.response_status
            .code
            .map(|c| c.to_string())
            .unwrap_or_default(),
        e.response_status.status.as_str().to_owned(),
        opt(&e.response_status.message),
        opt(&e.request_uri),
        serde_json::to_string(&e.annotations).unwrap_or_default(),
        record.prev_hash.to_string(),
        record.hash.to_string(),
    ];
    out.write_record(row.iter().map(|cell| inert(cell)))
        .map_err(|e| ExportError::Csv(e.to_string()))
}

/// A cell a spreadsheet will show rather than evaluate: text that starts
/// like a formula (`=`, `+`, `-`, `@`, tab, carriage return) gets a
/// leading `'`, as OWASP advises against CSV injection. User agents, names
/// and messages come from callers; the JSON Lines file keeps them exact.
fn inert(cell: &str) -> String {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// Reads and writes the records after `after_seq` recorded before `to`.
/// Opens the files (into `files`) with the first record; returns the range
/// written, `None` if there was nothing.
async fn stream(
    store: &Store,
    target: &ExportTarget,
    after_seq: i64,
    to: DateTime<Utc>,
    jsonl_key: &str,
    csv_key: &str,
    files: &mut Option<Files>,
) -> Result<Option<Range>, ExportError> {
    let mut range: Option<Range> = None;
    let mut verifier: Option<ChainVerifier> = None;
    let mut cursor = after_seq;
    'batches: loop {
        let mut batch = store.audit_records_after(cursor, BATCH).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.event.seq;
        let full = batch.len() as i64 == BATCH;
        // Keep the records recorded before `to`, stopping at the first one
        // that is not, so the export is one unbroken run of the chain.
        let mut ended = false;
        if let Some(stop) = batch
            .iter()
            .position(|r| !recorded_before(r, to).unwrap_or(false))
        {
            // A timestamp that does not parse is reported, not skipped.
            let r = &batch[stop];
            recorded_before(r, to)?;
            batch.truncate(stop);
            ended = true;
        }
        for record in &batch {
            let v =
                verifier.get_or_insert_with(|| ChainVerifier::after(after_seq, record.prev_hash));
            v.push(record).map_err(ExportError::Chain)?;
            let at = record.event.stage_timestamp.clone();
            match &mut range {
                None => {
                    range = Some(Range {
                        first_seq: record.event.seq,
                        last_seq: record.event.seq,
                        first_prev_hash: record.prev_hash,
                        last_hash: record.hash,
                        first_at: at.clone(),
                        last_at: at,
                        records: 1,
                    });
                }
                Some(r) => {
                    r.last_seq = record.event.seq;
                    r.last_hash = record.hash;
                    r.last_at = at;
                    r.records += 1;
                }
            }
        }
        if !batch.is_empty() {
            if files.is_none() {
                *files = Some(Files::open(target, jsonl_key, csv_key).await?);
            }
            if let Some(f) = files.as_mut() {
                f.write(&batch).await?;
            }
        }
        if ended || !full {
            break 'batches;
        }
    }
    Ok(range)
}

fn recorded_before(record: &Record, to: DateTime<Utc>) -> Result<bool, ExportError> {
    let value = &record.event.stage_timestamp;
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc) < to)
        .map_err(|_| ExportError::Timestamp {
            seq: record.event.seq,
            value: value.chars().take(64).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn formula_like_cells_are_made_inert() {
        assert_eq!(
            inert("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(inert("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert("-1+1"), "'-1+1");
        assert_eq!(inert("curl/8.0"), "curl/8.0");
        assert_eq!(inert(""), "");
    }
}
