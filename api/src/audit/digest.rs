//! The signed digest each export ends with, in the manner of AWS
//! CloudTrail's log-file integrity digests: it names every data file of the
//! export with its SHA-256, size and record count, the records' range and
//! chain hashes, and the previous digest's key and signature, and is signed
//! with the platform's Ed25519 key.
//!
//! The file is `{"digest":{…},"signature":"<base64>"}`, written compactly.
//! The signature covers the bytes of the `digest` value exactly as they
//! appear in the file, which are `serde_json::to_vec` of [`Digest`]: fields
//! in the order declared below, absent values as `null`, no whitespace.
//! Verification here parses the digest (refusing unknown fields) and
//! re-serializes it to get those bytes back, so a digest that verifies is
//! exactly what was signed; another tool can instead take the raw `digest`
//! value from the file.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use modelfleet_core::audit::{ChainHash, hex};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The digest format's version.
pub const DIGEST_VERSION: u32 = 1;
pub const SIGNATURE_ALGORITHM: &str = "Ed25519";
/// Digests are a few kilobytes; anything much larger is not one.
pub(crate) const MAX_DIGEST_BYTES: usize = 1024 * 1024;

/// Lowercase hex SHA-256 of a 32-byte Ed25519 public key: how digests and
/// `GET /api/v1/audit/public-key` name the key.
pub fn key_fingerprint(public_key: &[u8; 32]) -> String {
    hex(&Sha256::digest(public_key))
}

/// The platform's public key as `GET /api/v1/audit/public-key` and
/// `modelfleet audit public-key` show it; what `verify_export` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyInfo {
    pub key_id: String,
    pub algorithm: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    pub fingerprint: String,
}

impl PublicKeyInfo {
    pub fn new(key_id: String, public_key: &[u8; 32]) -> PublicKeyInfo {
        PublicKeyInfo {
            key_id,
            algorithm: SIGNATURE_ALGORITHM.to_owned(),
            public_key: BASE64.encode(public_key),
            fingerprint: key_fingerprint(public_key),
        }
    }

    /// The key's bytes, from base64 as shown (e.g. given to
    /// `modelfleet audit verify-export --public-key`).
    pub fn decode(base64: &str) -> Result<[u8; 32], String> {
        BASE64
            .decode(base64.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .filter(|b| VerifyingKey::from_bytes(b).is_ok())
            .ok_or_else(|| {
                "the public key must be base64 of a 32-byte Ed25519 public key".to_owned()
            })
    }
}

/// What one export wrote. Field order is part of the format (see the
/// module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Digest {
    pub version: u32,
    pub export_id: String,
    /// Where the export was written (`s3://bucket/prefix`, `file:///dir`).
    pub location: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The time range asked for: `from` (if given) and `to` (exclusive).
    /// Records are exported in sequence order after the previous export,
    /// up to the first one recorded at or after `to`; see
    /// `crate::audit::export`.
    pub from: Option<String>,
    pub to: String,
    /// The first and last record's `stageTimestamp`.
    pub first_record_at: String,
    pub last_record_at: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The `prevHash` of the first record: the previous export's `lastHash`
    /// (all zeros for the first record ever).
    pub first_prev_hash: ChainHash,
    /// The `hash` of the last record.
    pub last_hash: ChainHash,
    pub records: u64,
    pub files: Vec<DigestFile>,
    /// The previous export's digest, `null` for the first export.
    pub previous_digest_key: Option<String>,
    pub previous_digest_signature: Option<String>,
    pub signature_algorithm: String,
    pub public_key_id: String,
    /// Lowercase hex SHA-256 of the 32-byte public key.
    pub public_key_fingerprint: String,
}

/// One data file of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DigestFile {
    /// The object key (full, including the location's prefix).
    pub key: String,
    /// `jsonl` (one record per line, the authoritative copy) or `csv`.
    pub format: String,
    /// Lowercase hex SHA-256 of the object's bytes.
    pub sha256: String,
    pub size: u64,
    pub records: u64,
}

/// The digest file: the digest and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDigest {
    pub digest: Digest,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
}

impl Digest {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        // Plain structs and strings always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Signs the digest.
    pub fn sign(self, key: &SigningKey) -> SignedDigest {
        let signature = key.sign(&self.signed_bytes());
        SignedDigest {
            digest: self,
            signature: BASE64.encode(signature.to_bytes()),
        }
    }
}

impl SignedDigest {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<SignedDigest, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a valid digest file: {e}"))
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), String> {
        let bytes: [u8; 64] = BASE64
            .decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not base64 of 64 bytes")?;
        key.verify_strict(&self.digest.signed_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| {
                "the signature does not verify with the platform's public key (the digest was \
                 altered, or signed with another key)"
                    .to_owned()
            })
    }
}

/// The digest's object name: the last record's number, zero-padded, first,
/// so listing the folder lists digests in chain order.
pub fn digest_name(last_seq: i64, export_id: &str) -> String {
    format!("{last_seq:020}-{export_id}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest {
            version: DIGEST_VERSION,
            export_id: "e1".into(),
            location: "s3://b/p".into(),
            created_at: "2026-11-29T08:30:00.000000Z".into(),
            from: None,
            to: "2026-11-29T08:30:00.000000Z".into(),
            first_record_at: "2026-11-29T08:00:00.000000Z".into(),
            last_record_at: "2026-11-29T08:10:00.000000Z".into(),
            first_seq: 1,
            last_seq: 2,
            first_prev_hash: ChainHash::GENESIS,
            last_hash: ChainHash([7; 32]),
            records: 2,
            files: vec![DigestFile {
                key: "p/audit/2026/11/29/e1.jsonl".into(),
                format: "jsonl".into(),
                sha256: "00".repeat(32),
                size: 10,
                records: 2,
            }],
            previous_digest_key: None,
            previous_digest_signature: None,
            signature_algorithm: SIGNATURE_ALGORITHM.into(),
            public_key_id: "k".into(),
            public_key_fingerprint: "f".into(),
        }
    }

    #[test]
    fn signature_covers_the_digest_as_written() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let signed = digest().sign(&key);
        let bytes = signed.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        // The signed bytes appear verbatim in the file.
        let inner = String::from_utf8(signed.digest.signed_bytes()).unwrap();
        assert!(text.starts_with(&format!("{{\"digest\":{inner},\"signature\":\"")));
        let parsed = SignedDigest::parse(&bytes).unwrap();
        parsed.verify(&key.verifying_key()).unwrap();
        // Any change to the digest's values breaks the signature.
        let mut altered = parsed.clone();
        altered.digest.records = 3;
        assert!(altered.verify(&key.verifying_key()).is_err());
        let other = SigningKey::from_bytes(&[4; 32]);
        assert!(parsed.verify(&other.verifying_key()).is_err());
        // Unknown fields are refused rather than ignored.
        let extra = text.replacen("{\"version\"", "{\"extra\":1,\"version\"", 1);
        assert!(SignedDigest::parse(extra.as_bytes()).is_err());
    }

    #[test]
    fn public_keys_round_trip_through_base64() {
        let public = SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes();
        let info = PublicKeyInfo::new("k1".into(), &public);
        assert_eq!(PublicKeyInfo::decode(&info.public_key).unwrap(), public);
        assert_eq!(info.fingerprint.len(), 64);
        assert!(PublicKeyInfo::decode("c2hvcnQ=").is_err());
    }

    #[test]
    fn digest_names_sort_in_chain_order() {
        assert!(digest_name(9, "b") < digest_name(10, "a"));
        assert_eq!(digest_name(42, "x"), "00000000000000000042-x.json");
    }
}
