//! The audit trail in the database: appending a record on the transaction
//! whose change it records, searching records, and verifying the chain.
//!
//! [`Tx::commit`] appends one record before it commits whenever the
//! transaction changed something (or was told what request it answers), so a
//! change and its record commit together or not at all. Appends take the
//! one-row `audit_head` for update: they are serialized, each record's
//! `prev_hash` is the hash of the record before it, and the head always
//! names the newest record. The tables refuse UPDATE and DELETE by trigger
//! (migrations `0005_audit.sql`); pruning can only remove records a
//! checkpoint covers, and a checkpoint can only follow an export.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use modelfleet_core::audit::{
    self, ChainBreak, ChainHash, ChainVerifier, Event, ObjectRef, Outcome, Record, ResponseStatus,
    UserInfo,
};

use super::{Change, Conn, Store, StoreError, Tx, TxInner, now, on_conn};
use crate::identity::{Actor, Principal};
use crate::ids::{AuditId, TenantId};

/// Records verification reads per query.
const VERIFY_BATCH: i64 = 2000;

/// What one request or hub action did, when it is not simply the changes a
/// transaction noted: a refused request, a sign-in, an export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    pub verb: String,
    pub resource: String,
    /// The tenant the record belongs to.
    pub tenant: Option<TenantId>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub code: Option<u16>,
    pub message: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// What verifying the chain in the database found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Records checked.
    pub checked: u64,
    /// The newest record verified (0 when the trail is empty).
    pub verified_through: i64,
    /// Where verification started: after a pruning checkpoint, or 0.
    pub from_checkpoint: i64,
    /// The head: the newest record's number.
    pub head: i64,
    /// The first record that does not verify, if any.
    pub broken: Option<ChainBreak>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// The timestamp format records carry: RFC 3339, UTC, microseconds.
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn username(actor: &Actor) -> String {
    match &actor.principal {
        Principal::User { username, .. } => username.clone(),
        Principal::ApiKey { prefix, .. } => format!("apikey:{prefix}"),
        Principal::System { component } => format!("system:{component}"),
        Principal::Anonymous => "system:anonymous".to_owned(),
    }
}

fn user_info(actor: &Actor) -> UserInfo {
    let uid = match &actor.principal {
        Principal::User { id, .. } => Some(id.to_string()),
        Principal::ApiKey { id, .. } => Some(id.to_string()),
        Principal::System { .. } | Principal::Anonymous => None,
    };
    let mut groups = match actor.principal {
        Principal::Anonymous => vec!["system:unauthenticated".to_owned()],
        Principal::System { .. } => vec!["system:modelfleet".to_owned()],
        _ => vec![format!("role:{}", actor.role.name())],
    };
    if let Some(t) = actor.tenant {
        groups.push(format!("tenant:{t}"));
    }
    UserInfo {
        username: username(actor),
        uid,
        groups,
    }
}

/// The entry a transaction's noted changes make: the first change names
/// the action; when there are more, an annotation lists them all.
fn entry_of_changes(changes: &[Change]) -> AuditEntry {
    let first = &changes[0];
    let mut annotations = BTreeMap::new();
    if changes.len() > 1 {
        let all: Vec<String> = changes
            .iter()
            .map(|c| format!("{} {} {}", c.verb, c.resource, c.name))
            .collect();
        annotations.insert(
            "modelfleet.io/changes".to_owned(),
            serde_json::to_string(&all).unwrap_or_default(),
        );
    }
    AuditEntry {
        verb: first.verb.to_owned(),
        resource: first.resource.to_owned(),
        tenant: first.tenant,
        name: Some(first.name.clone()),
        uid: Some(first.id.to_string()),
        code: None,
        message: None,
        annotations,
    }
}

fn event(actor: &Actor, entry: AuditEntry, seq: i64, recorded_at: DateTime<Utc>) -> Event {
    let origin = &actor.origin;
    let mut annotations = entry.annotations;
    if let Some(id) = &origin.request_id {
        annotations.insert("modelfleet.io/request-id".to_owned(), id.clone());
    }
    let tenant = entry.tenant.or(actor.tenant);
    let status = match entry.code {
        Some(code) => Outcome::of_code(code),
        None => Outcome::Success,
    };
    Event {
        api_version: audit::API_VERSION.to_owned(),
        kind: audit::KIND.to_owned(),
        level: audit::LEVEL.to_owned(),
        seq,
        audit_id: origin.audit_id.unwrap_or_default().to_string(),
        stage: audit::STAGE.to_owned(),
        verb: entry.verb,
        request_uri: origin.request_uri.clone(),
        user: user_info(actor),
        source_ips: origin.source_ip.iter().map(ToString::to_string).collect(),
        user_agent: origin.user_agent.clone(),
        object_ref: ObjectRef {
            resource: entry.resource,
            namespace: tenant.map(|t| t.to_string()),
            name: entry.name,
            uid: entry.uid,
        },
        response_status: ResponseStatus {
            code: entry.code,
            status,
            message: entry.message,
        },
        request_received_timestamp: timestamp(origin.received_at.unwrap_or(recorded_at)),
        stage_timestamp: timestamp(recorded_at),
        annotations,
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    audit_id: AuditId,
    verb: String,
    request_uri: Option<String>,
    username: String,
    user_uid: Option<String>,
    user_groups: String,
    source_ip: Option<String>,
    user_agent: Option<String>,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    object_uid: Option<String>,
    code: Option<i32>,
    outcome: String,
    message: Option<String>,
    received_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    annotations: String,
    prev_hash: String,
    hash: String,
}

/// `SELECT` of every column a [`Row`] reads, followed by `$rest`.
macro_rules! select_records {
    ($rest:literal) => {
        concat!(
            "SELECT seq, audit_id, verb, request_uri, username, user_uid, user_groups, \
             source_ip, user_agent, resource, namespace, name, object_uid, code, outcome, \
             message, received_at, recorded_at, annotations, prev_hash, hash \
             FROM audit_records ",
            $rest
        )
    };
}

mod search;

pub use search::{AuditPage, AuditQuery, MAX_AUDIT_PAGE};

/// Rebuilds a record from its row. A value that cannot be read back is
/// reported as the record's own corruption, so verification can name it.
fn record_of(row: Row) -> Result<Record, i64> {
    let Row {
        seq,
        audit_id,
        verb,
        request_uri,
        username,
        user_uid,
        user_groups,
        source_ip,
        user_agent,
        resource,
        namespace,
        name,
        object_uid,
        code,
        outcome,
        message,
        received_at,
        recorded_at,
        annotations,
        prev_hash,
        hash,
    } = row;
    let parse = || -> Option<Record> {
        Some(Record {
            event: Event {
                api_version: audit::API_VERSION.to_owned(),
                kind: audit::KIND.to_owned(),
                level: audit::LEVEL.to_owned(),
                seq,
                audit_id: audit_id.to_string(),
                stage: audit::STAGE.to_owned(),
                verb,
                request_uri,
                user: UserInfo {
                    username,
                    uid: user_uid,
                    groups: serde_json::from_str(&user_groups).ok()?,
                },
                source_ips: source_ip.into_iter().collect(),
                user_agent,
                object_ref: ObjectRef {
                    resource,
                    namespace,
                    name,
                    uid: object_uid,
                },
                response_status: ResponseStatus {
                    code: match code {
                        Some(c) => Some(u16::try_from(c).ok()?),
                        None => None,
                    },
                    status: outcome.parse().ok()?,
                    message,
                },
                request_received_timestamp: timestamp(received_at),
                stage_timestamp: timestamp(recorded_at),
                annotations: serde_json::from_str(&annotations).ok()?,
            },
            prev_hash: prev_hash.parse().ok()?,
            hash: hash.parse().ok()?,
        })
    };
    parse().ok_or(seq)
}

impl Tx {
    /// Says what request this transaction answers: its record uses `entry`
    /// instead of the changes noted, and is written even if nothing
    /// changed (a refused request, a failed sign-in).
    pub fn audit_as(&mut self, entry: AuditEntry) {
        self.entry = Some(entry);
    }

    /// The HTTP status the request this transaction serves answers with.
    pub fn respond(&mut self, code: u16) {
        self.code = Some(code);
    }

    /// Whether this transaction only refuses a sign-in (401, with nothing
    /// noted but failed or refused sign-ins: a lock is more). Such a
    /// refusal, when its request says it is counted in its source's window
    /// record (`service::throttle`), is not recorded on its own; the
    /// failure count it updates still commits with the transaction.
    fn only_refused_sign_in(&self) -> bool {
        const REFUSALS: [&str; 2] = ["login-failed", "login-refused"];
        let code = self.entry.as_ref().and_then(|e| e.code).or(self.code);
        code == Some(401)
            && match &self.entry {
                Some(entry) => REFUSALS.contains(&entry.verb.as_str()),
                None => {
                    !self.changes.is_empty()
                        && self.changes.iter().all(|c| REFUSALS.contains(&c.verb))
                }
            }
    }

    /// Appends this transaction's audit record, if it has anything to
    /// record. Called by [`Tx::commit`] and nowhere else.
    pub(super) async fn append_audit(&mut self) -> Result<Option<Record>, StoreError> {
        if self.actor.origin.refusal_counted && self.only_refused_sign_in() {
            return Ok(None);
        }
        let mut entry = match self.entry.take() {
            Some(entry) => entry,
            None if self.changes.is_empty() => return Ok(None),
            None => entry_of_changes(&self.changes),
        };
        if entry.code.is_none() {
            entry.code = self.code;
        }
        let head: (i64, String) = match &mut self.inner {
            TxInner::Postgres(tx) => {
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
                    .fetch_one(&mut **tx)
                    .await?
            }
            // BEGIN IMMEDIATE already holds SQLite's one write lock.
            TxInner::Sqlite(tx) => {
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        let prev: ChainHash = head
            .1
            .parse()
            .map_err(|_| StoreError::Corrupt("audit chain head"))?;
        let recorded_at = now();
        let received_at = self.actor.origin.received_at.unwrap_or(recorded_at);
        let event = event(&self.actor, entry, head.0 + 1, recorded_at);
        let record = Record::seal(event, prev);
        insert(self.conn(), &record, received_at, recorded_at).await?;
        on_conn!(self.conn(), c => sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(record.event.seq).bind(record.hash.to_string())
            .execute(c).await.map(|r| r.rows_affected()))?;
        Ok(Some(record))
    }
}

async fn insert(
    mut conn: Conn<'_>,
    record: &Record,
    received_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let e = &record.event;
    let audit_id: AuditId = e
        .audit_id
        .parse()
        .map_err(|_| StoreError::Corrupt("audit id"))?;
    let groups = serde_json::to_string(&e.user.groups).unwrap_or_default();
    let annotations = serde_json::to_string(&e.annotations).unwrap_or_default();
    let source_ip = e.source_ips.first();
    let code = e.response_status.code.map(i32::from);
    on_conn!(conn.re(), c => sqlx::query(
        "INSERT INTO audit_records (seq, audit_id, verb, request_uri, username, user_uid, \
         user_groups, source_ip, user_agent, resource, namespace, name, object_uid, \
         code, outcome, message, received_at, recorded_at, annotations, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21)",
    )
    .bind(e.seq).bind(audit_id).bind(&e.verb).bind(&e.request_uri).bind(&e.user.username)
    .bind(&e.user.uid).bind(&groups).bind(source_ip).bind(&e.user_agent)
    .bind(&e.object_ref.resource).bind(&e.object_ref.namespace).bind(&e.object_ref.name)
    .bind(&e.object_ref.uid).bind(code).bind(e.response_status.status.as_str())
    .bind(&e.response_status.message).bind(received_at).bind(recorded_at).bind(&annotations)
    .bind(record.prev_hash.to_string()).bind(record.hash.to_string())
    .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Reads records `after < seq <= through`, oldest first, at most `limit`.
/// A row that cannot be read back is `Err(seq)`.
pub(crate) async fn records_after(
    mut conn: Conn<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<Result<Record, i64>>, StoreError> {
    let rows: Vec<Row> = on_conn!(conn.re(), c => sqlx::query_as(
        select_records!("WHERE seq > $1 ORDER BY seq LIMIT $2"))
        .bind(after).bind(limit).fetch_all(c).await)?;
    Ok(rows.into_iter().map(record_of).collect())
}

/// Verifies the whole chain on one connection: from the newest pruning
/// checkpoint (or the start) to the head.
pub(crate) async fn verify_chain(mut conn: Conn<'_>) -> Result<ChainReport, StoreError> {
    let checkpoint: Option<(i64, String)> = on_conn!(conn.re(), c => sqlx::query_as(
        "SELECT through_seq, hash FROM audit_checkpoints ORDER BY through_seq DESC LIMIT 1",
    ).fetch_optional(c).await)?;
    let (from, mut verifier) = match checkpoint {
        Some((seq, hash)) => {
            let hash = hash
                .parse()
                .map_err(|_| StoreError::Corrupt("audit checkpoint"))?;
            (seq, ChainVerifier::after(seq, hash))
        }
        None => (0, ChainVerifier::new()),
    };
    let (head_seq, head_hash): (i64, String) = on_conn!(conn.re(), c => sqlx::query_as(
        "SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(c).await)?;
    let mut report = ChainReport {
        checked: 0,
        verified_through: from,
        from_checkpoint: from,
        head: head_seq,
        broken: None,
    };
    let mut after = from;
    let outcome: Result<(), ChainBreak> = async {
        loop {
            let batch = records_after(conn.re(), after, VERIFY_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = match last {
                Ok(r) => r.event.seq,
                Err(seq) => *seq,
            };
            for record in batch {
                match record {
                    Ok(record) => {
                        if let Err(b) = verifier.push(&record) {
                            return Ok(Err(b));
                        }
                    }
                    Err(seq) => return Ok(Err(ChainBreak::Altered { seq })),
                }
            }
        }
        let head_hash = match head_hash.parse() {
            Ok(h) => h,
            Err(_) => {
                return Ok(Err(ChainBreak::HeadMismatch {
                    seq: head_seq,
                    head: ChainHash::GENESIS,
                    found: verifier.last_hash(),
                }));
            }
        };
        Ok::<_, StoreError>(verifier.finish(head_seq, head_hash))
    }
    .await?;
    report.checked = verifier.checked();
    report.verified_through = verifier.last_seq();
    report.broken = outcome.err();
    Ok(report)
}

impl Store {
    /// Verifies the audit chain kept in this database.
    pub async fn verify_audit(&self) -> Result<ChainReport, StoreError> {
        let mut reader = self.reader().await?;
        verify_chain(reader.conn()).await
    }

    /// Records after sequence number `after`, oldest first, at most `limit`:
    /// what exports stream. A row that cannot be read back is an error
    /// naming nothing secret (run `audit verify` to find it).
    pub async fn audit_records_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Record>, StoreError> {
        let mut reader = self.reader().await?;
        records_after(reader.conn(), after, limit)
            .await?
            .into_iter()
            .map(|r| r.map_err(|_| StoreError::Corrupt("audit record")))
            .collect()
    }

    /// Whether any record was written for the request with this audit id.
    pub async fn audit_recorded(&self, audit_id: AuditId) -> Result<bool, StoreError> {
        let mut reader = self.reader().await?;
        let found: Option<(i64,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT seq FROM audit_records WHERE audit_id = $1 LIMIT 1",
        ).bind(audit_id).fetch_optional(c).await)?;
        Ok(found.is_some())
    }

    /// Writes the record of a request that changed nothing (refused,
    /// failed, or a computation) in a transaction of its own.
    pub async fn record_request(&self, actor: &Actor, entry: AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin(actor).await?;
        tx.audit_as(entry);
        tx.commit().await
    }
}
