//! The audit trail's records and the hash chain that makes them
//! tamper-evident.
//!
//! A record is a Kubernetes `audit.k8s.io/v1` Event (the field names people
//! who read Kubernetes audit logs already know) with a sequence number.
//! Its canonical form is its JSON serialization: fields in the order this
//! file declares them, annotations sorted, no insignificant whitespace. Each
//! record's hash is `SHA-256(previous hash ‖ canonical form)`, starting from
//! [`ChainHash::GENESIS`], so altering, removing or reordering any record
//! changes every hash after it; the newest hash is kept apart (the store's
//! chain head, and each export's signed digest), so cutting records off the
//! end shows too.
//!
//! [`ChainVerifier`] walks records in order and names the first one that
//! does not verify. It knows nothing of databases or files: the store, the
//! exports and `modelfleet audit verify` all feed it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const API_VERSION: &str = "audit.k8s.io/v1";
pub const KIND: &str = "Event";
/// Records carry the request's metadata, never its body (which may hold
/// secrets): Kubernetes' `Metadata` level.
pub const LEVEL: &str = "Metadata";
/// Every record is written once the outcome is known.
pub const STAGE: &str = "ResponseComplete";

/// A SHA-256 hash in the chain, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// What the first record's `prevHash` is.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// The hash of a record whose predecessor hashed to `prev`.
    pub fn next(prev: &ChainHash, canonical: &[u8]) -> ChainHash {
        let mut hasher = Sha256::new();
        hasher.update(prev.0);
        hasher.update(canonical);
        ChainHash(hasher.finalize().into())
    }
}

/// Lowercase hex of any bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a SHA-256 hash: expected 64 hex digits")]
pub struct BadHash(String);

impl FromStr for ChainHash {
    type Err = BadHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadHash(s.chars().take(80).collect());
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| {
                char::from(c)
                    .to_digit(16)
                    .filter(|_| !c.is_ascii_uppercase())
            };
            let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else {
                return Err(bad());
            };
            out[i] = u8::try_from(hi * 16 + lo).map_err(|_| bad())?;
        }
        Ok(ChainHash(out))
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who acted, as Kubernetes' `UserInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// `alice`, `apikey:mf_ab12cd34`, `system:sync`, `system:anonymous`.
    pub username: String,
    /// The user's or key's id, when there is one.
    pub uid: Option<String>,
    /// `role:<role>` and `tenant:<id>`.
    pub groups: Vec<String>,
}

/// What was acted on, as Kubernetes' `ObjectReference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `deployments`, `users`, `apikeys`, `sessions`, …
    pub resource: String,
    /// The tenant's id, for a tenant's objects.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
}

/// How it ended, as Kubernetes' `Status` (the parts an audit event keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseStatus {
    /// The HTTP status answered, if the change came through the API.
    pub code: Option<u16>,
    /// `Success` or `Failure`.
    pub status: Outcome,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "Success",
            Outcome::Failure => "Failure",
        }
    }

    /// The outcome an HTTP status means.
    pub fn of_code(code: u16) -> Outcome {
        if code >= 400 {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Success" => Ok(Outcome::Success),
            "Failure" => Ok(Outcome::Failure),
            other => Err(format!(
                "`{other}` is not an outcome: use Success or Failure"
            )),
        }
    }
}

/// One audit record: a Kubernetes audit Event plus its place in the chain.
///
/// Timestamps are RFC 3339 UTC strings with microseconds
/// (`2026-11-29T08:30:00.123456Z`): this crate has no clock, and a string
/// hashes the same wherever it is read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub api_version: String,
    pub kind: String,
    pub level: String,
    /// The position in the chain, from 1, without gaps.
    pub seq: i64,
    /// One id per request; every record a request causes carries it.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: String,
    /// `create`, `update`, `delete`, `revoke`, `login`, `login-failed`, …
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: Option<String>,
    pub user: UserInfo,
    #[serde(rename = "sourceIPs")]
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    pub object_ref: ObjectRef,
    pub response_status: ResponseStatus,
    pub request_received_timestamp: String,
    pub stage_timestamp: String,
    /// `modelfleet.io/request-id`, `modelfleet.io/changes`, …
    pub annotations: BTreeMap<String, String>,
}

impl Event {
    /// The bytes the chain hashes.
    pub fn canonical(&self) -> Vec<u8> {
        // Serializing plain structs, strings and a BTreeMap cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An event with its chain hashes: one line of an export, one row of the
/// store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(flatten)]
    pub event: Event,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

impl Record {
    /// Seals `event` onto a chain whose newest hash is `prev`.
    pub fn seal(event: Event, prev: ChainHash) -> Record {
        let hash = ChainHash::next(&prev, &event.canonical());
        Record {
            event,
            prev_hash: prev,
            hash,
        }
    }
}

/// Where a chain stops verifying, naming the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record {seq}: its contents do not match its hash (altered)")]
    Altered { seq: i64 },
    #[error(
        "record {seq}: its hash is {found} but {computed} was computed from its contents (hash altered)"
    )]
    HashAltered {
        seq: i64,
        found: ChainHash,
        computed: ChainHash,
    },
    #[error(
        "record {seq}: it does not follow record {prev_seq} (a record before it was altered, removed or moved)"
    )]
    Unlinked { seq: i64, prev_seq: i64 },
    #[error(
        "record {expected} is missing: the chain goes from record {prev_seq} to record {found}"
    )]
    Missing {
        expected: i64,
        prev_seq: i64,
        found: i64,
    },
    #[error("record {found} is out of order: expected record {expected}")]
    OutOfOrder { expected: i64, found: i64 },
    #[error(
        "the chain ends at record {last} but its head says record {head} (records removed from the end)"
    )]
    Truncated { last: i64, head: i64 },
    #[error("record {seq}: the chain's head says its hash is {head} but the record says {found}")]
    HeadMismatch {
        seq: i64,
        head: ChainHash,
        found: ChainHash,
    },
}

impl ChainBreak {
    /// The record the break is first seen at.
    pub fn seq(&self) -> i64 {
        match *self {
            ChainBreak::Altered { seq }
            | ChainBreak::HashAltered { seq, .. }
            | ChainBreak::Unlinked { seq, .. }
            | ChainBreak::HeadMismatch { seq, .. } => seq,
            ChainBreak::Missing { expected, .. } => expected,
            ChainBreak::OutOfOrder { found, .. } => found,
            ChainBreak::Truncated { last, .. } => last + 1,
        }
    }
}

/// Checks records one at a time, in sequence order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: i64,
    prev: ChainHash,
    checked: u64,
}

impl ChainVerifier {
    /// A verifier for a chain from its first record.
    pub fn new() -> ChainVerifier {
        ChainVerifier::after(0, ChainHash::GENESIS)
    }

    /// A verifier for the records after `seq`, whose hash was `hash` (a
    /// checkpoint left by pruning, or the end of the previous export).
    pub fn after(seq: i64, hash: ChainHash) -> ChainVerifier {
        ChainVerifier {
            next_seq: seq + 1,
            prev: hash,
            checked: 0,
        }
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &Record) -> Result<(), ChainBreak> {
        let seq = record.event.seq;
        if seq != self.next_seq {
            return Err(if seq > self.next_seq {
                ChainBreak::Missing {
                    expected: self.next_seq,
                    prev_seq: self.next_seq - 1,
                    found: seq,
                }
            } else {
                ChainBreak::OutOfOrder {
                    expected: self.next_seq,
                    found: seq,
                }
            });
        }
        let computed = ChainHash::next(&record.prev_hash, &record.event.canonical());
        if computed != record.hash {
            // Contents that still hash to what the next record links to
            // mean only the stored hash was changed.
            return Err(if record.prev_hash == self.prev {
                ChainBreak::Altered { seq }
            } else {
                ChainBreak::HashAltered {
                    seq,
                    found: record.hash,
                    computed,
                }
            });
        }
        if record.prev_hash != self.prev {
            return Err(ChainBreak::Unlinked {
                seq,
                prev_seq: seq - 1,
            });
        }
        self.prev = record.hash;
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// Checks that the chain ends where its head says.
    pub fn finish(&self, head_seq: i64, head_hash: ChainHash) -> Result<(), ChainBreak> {
        let last = self.next_seq - 1;
        if last < head_seq {
            return Err(ChainBreak::Truncated {
                last,
                head: head_seq,
            });
        }
        if last > head_seq {
            return Err(ChainBreak::OutOfOrder {
                expected: head_seq + 1,
                found: last,
            });
        }
        if self.prev != head_hash {
            return Err(ChainBreak::HeadMismatch {
                seq: last,
                head: head_hash,
                found: self.prev,
            });
        }
        Ok(())
    }

    /// The newest hash verified so far.
    pub fn last_hash(&self) -> ChainHash {
        self.prev
    }

    /// The sequence number of the newest record verified so far.
    pub fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }

    /// How many records verified.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, verb: &str) -> Event {
        Event {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            level: LEVEL.into(),
            seq,
            audit_id: format!("00000000-0000-4000-8000-{seq:012}"),
            stage: STAGE.into(),
            verb: verb.into(),
            request_uri: Some("/api/v1/deployments".into()),
            user: UserInfo {
                username: "ana".into(),
                uid: None,
                groups: vec!["role:developer".into()],
            },
            source_ips: vec!["127.0.0.1".into()],
            user_agent: None,
            object_ref: ObjectRef {
                resource: "deployments".into(),
                namespace: Some("t1".into()),
                name: Some("chat".into()),
                uid: None,
            },
            response_status: ResponseStatus {
                code: Some(202),
                status: Outcome::Success,
                message: None,
            },
            request_received_timestamp: "2026-11-29T08:30:00.000001Z".into(),
            stage_timestamp: "2026-11-29T08:30:00.000002Z".into(),
            annotations: BTreeMap::new(),
        }
    }

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = ChainHash::GENESIS;
        (1..=n)
            .map(|seq| {
                let r = Record::seal(event(seq, "create"), prev);
                prev = r.hash;
                r
            })
            .collect()
    }

    fn verify(records: &[Record], head: (i64, ChainHash)) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::new();
        for r in records {
            v.push(r)?;
        }
        v.finish(head.0, head.1)
    }

    #[test]
    fn hash_is_sha256_of_previous_hash_then_canonical_json() {
        let e = event(1, "create");
        let canonical = e.canonical();
        let text = String::from_utf8(canonical.clone()).unwrap();
        // Field order is the declared order, as Kubernetes writes events.
        assert!(text.starts_with(r#"{"apiVersion":"audit.k8s.io/v1","kind":"Event","level":"Metadata","seq":1,"auditID":"#));
        let mut bytes = vec![0u8; 32];
        bytes.extend_from_slice(&canonical);
        let expected: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(Record::seal(e, ChainHash::GENESIS).hash.0, expected);
    }

    #[test]
    fn an_intact_chain_verifies_to_its_head() {
        let records = chain(5);
        let head = (5, records[4].hash);
        assert_eq!(verify(&records, head), Ok(()));
    }

    #[test]
    fn each_kind_of_tampering_names_the_record() {
        let records = chain(6);
        let head = (6, records[5].hash);

        let mut altered = records.clone();
        altered[2].event.verb = "delete".into();
        assert_eq!(verify(&altered, head), Err(ChainBreak::Altered { seq: 3 }));

        let mut resealed = records.clone();
        resealed[2].event.verb = "delete".into();
        resealed[2] = Record::seal(resealed[2].event.clone(), resealed[2].prev_hash);
        assert_eq!(
            verify(&resealed, head),
            Err(ChainBreak::Unlinked {
                seq: 4,
                prev_seq: 3
            })
        );

        let mut removed = records.clone();
        removed.remove(3);
        assert_eq!(verify(&removed, head).unwrap_err().seq(), 4);

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        // Record 3 now comes where record 2 should.
        assert_eq!(
            verify(&swapped, head),
            Err(ChainBreak::Missing {
                expected: 2,
                prev_seq: 1,
                found: 3
            })
        );

        let cut = &records[..5];
        assert_eq!(
            verify(cut, head),
            Err(ChainBreak::Truncated { last: 5, head: 6 })
        );
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = chain(1)[0].hash;
        assert_eq!(h.to_string().parse::<ChainHash>(), Ok(h));
        assert!("xyz".parse::<ChainHash>().is_err());
        assert!(h.to_string().to_uppercase().parse::<ChainHash>().is_err());
    }

    #[test]
    fn records_round_trip_through_json_lines() {
        let r = &chain(2)[1];
        let line = serde_json::to_string(r).unwrap();
        assert!(line.contains(r#""prevHash":""#));
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, r);
    }
}
