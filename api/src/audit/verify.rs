//! Verifying what exports left in a location, with nothing but the
//! location and the platform's public key: no database, no keyring.
//!
//! Digests are checked in key order (chain order, see
//! [`super::digest::digest_name`]): each digest's signature; that it links
//! to the digest before it (the first links to none), so a removed,
//! replaced or reordered digest shows; then each data file's size and
//! SHA-256; then the JSON Lines records against the hash chain, continuing
//! from one export to the next. Every failure names the object, and the
//! record where there is one.

use std::fmt;

use ed25519_dalek::VerifyingKey;
use modelfleet_core::audit::{ChainHash, ChainVerifier, Record};
use sha2::{Digest as _, Sha256};

use super::digest::{
    DIGEST_VERSION, MAX_DIGEST_BYTES, SIGNATURE_ALGORITHM, SignedDigest, digest_name,
    key_fingerprint,
};
use super::storage::StorageError;
use super::target::ExportTarget;

/// What verification checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportVerification {
    pub digests: u64,
    /// Data files whose size and SHA-256 matched.
    pub files: u64,
    /// Records whose hashes chain.
    pub records: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub last_hash: ChainHash,
    /// The newest digest's key. Digests removed from the end leave a chain
    /// that still verifies, only shorter: compare this with the database's
    /// newest export (`Store::last_audit_export`) to notice that.
    pub last_digest: String,
}

impl fmt::Display for ExportVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verified {} digests, {} files and {} records ({}-{}, last hash {})",
            self.digests, self.files, self.records, self.first_seq, self.last_seq, self.last_hash
        )
    }
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The object could not be listed or read.
    Storage,
    /// No digest exists under the location.
    NoDigests,
    /// A digest does not parse, or does not match its own name.
    Malformed,
    /// A digest's signature does not verify.
    Signature,
    /// A digest does not link to the one before it.
    DigestChain,
    /// A data file's size or SHA-256 differs from its digest's.
    FileAltered,
    /// The records do not verify against the hash chain, or do not match
    /// the digest's range.
    RecordChain,
}

/// A failed verification, naming the object (and record) it failed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct VerifyError {
    pub failure: Failure,
    /// The object key.
    pub key: String,
    pub seq: Option<i64>,
    pub problem: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "{}: record {seq}: {}", self.key, self.problem),
            None => write!(f, "{}: {}", self.key, self.problem),
        }
    }
}

impl From<StorageError> for VerifyError {
    fn from(e: StorageError) -> Self {
        VerifyError {
            failure: Failure::Storage,
            key: e.key.clone(),
            seq: None,
            problem: format!("cannot {}: {}", e.action, e.detail),
        }
    }
}

fn fail(failure: Failure, key: &str, problem: impl Into<String>) -> VerifyError {
    VerifyError {
        failure,
        key: key.to_owned(),
        seq: None,
        problem: problem.into(),
    }
}

/// Verifies every export under `target` with the platform's public key.
pub async fn verify_export(
    target: &ExportTarget,
    public_key: &[u8; 32],
) -> Result<ExportVerification, VerifyError> {
    let folder = target.key("audit/digests");
    let verifying = VerifyingKey::from_bytes(public_key).map_err(|_| {
        fail(
            Failure::Malformed,
            &folder,
            "the public key given is not an Ed25519 key",
        )
    })?;
    let fingerprint = key_fingerprint(public_key);
    let keys: Vec<String> = target
        .list(&folder)
        .await?
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    if keys.is_empty() {
        return Err(fail(
            Failure::NoDigests,
            &folder,
            "no export digests found; nothing was exported here, or they were removed",
        ));
    }

    let mut chain: Option<ChainVerifier> = None;
    let mut previous: Option<(String, SignedDigest)> = None;
    let mut report = ExportVerification {
        digests: 0,
        files: 0,
        records: 0,
        first_seq: 0,
        last_seq: 0,
        last_hash: ChainHash::GENESIS,
        last_digest: String::new(),
    };
    for key in keys {
        let bytes = target.read_small(&key, MAX_DIGEST_BYTES).await?;
        let signed = SignedDigest::parse(&bytes).map_err(|p| fail(Failure::Malformed, &key, p))?;
        let d = &signed.digest;
        if d.version != DIGEST_VERSION || d.signature_algorithm != SIGNATURE_ALGORITHM {
            return Err(fail(
                Failure::Malformed,
                &key,
                format!(
                    "digest version {} with {} is not one this version reads (version {DIGEST_VERSION}, {SIGNATURE_ALGORITHM})",
                    d.version, d.signature_algorithm
                ),
            ));
        }
        if d.public_key_fingerprint != fingerprint {
            return Err(fail(
                Failure::Signature,
                &key,
                format!(
                    "signed with key {} (fingerprint {}), not the key given (fingerprint {fingerprint})",
                    d.public_key_id, d.public_key_fingerprint
                ),
            ));
        }
        signed
            .verify(&verifying)
            .map_err(|p| fail(Failure::Signature, &key, p))?;
        // Signed, so its contents are as exported; now check it is where
        // the export put it, and that it follows the digest before it.
        if !key.ends_with(&digest_name(d.last_seq, &d.export_id)) {
            return Err(fail(
                Failure::Malformed,
                &key,
                format!(
                    "the digest of records {}-{} (export {}) is stored under another name; it was moved or copied",
                    d.first_seq, d.last_seq, d.export_id
                ),
            ));
        }
        match &previous {
            None => {
                if let Some(prev) = &d.previous_digest_key {
                    return Err(fail(
                        Failure::DigestChain,
                        &key,
                        format!(
                            "it follows digest {prev}, which is not in this location (removed, or exported elsewhere)"
                        ),
                    ));
                }
            }
            Some((prev_key, prev)) => {
                let linked = d.previous_digest_signature.as_deref()
                    == Some(prev.signature.as_str())
                    && d.previous_digest_key.as_deref() == Some(prev_key.as_str());
                if !linked {
                    return Err(fail(
                        Failure::DigestChain,
                        &key,
                        format!(
                            "chain break: it follows digest {}, but the digest before it here is {prev_key} (a digest was removed, replaced or added)",
                            d.previous_digest_key.as_deref().unwrap_or("(none)")
                        ),
                    ));
                }
                if d.first_seq != prev.digest.last_seq + 1
                    || d.first_prev_hash != prev.digest.last_hash
                {
                    return Err(fail(
                        Failure::DigestChain,
                        &key,
                        format!(
                            "its records start at {} after hash {}, but the previous export ended at record {} with hash {}",
                            d.first_seq,
                            d.first_prev_hash,
                            prev.digest.last_seq,
                            prev.digest.last_hash
                        ),
                    ));
                }
            }
        }
        if d.last_seq < d.first_seq || d.records != (d.last_seq - d.first_seq + 1) as u64 {
            return Err(fail(
                Failure::Malformed,
                &key,
                format!(
                    "it claims {} records for records {}-{}",
                    d.records, d.first_seq, d.last_seq
                ),
            ));
        }
        if !d.files.iter().any(|f| f.format == "jsonl") {
            return Err(fail(
                Failure::Malformed,
                &key,
                "it names no JSON Lines file",
            ));
        }

        let verifier =
            chain.get_or_insert_with(|| ChainVerifier::after(d.first_seq - 1, d.first_prev_hash));
        for file in &d.files {
            check_file(
                target,
                file,
                file.records,
                (file.format == "jsonl").then_some(&mut *verifier),
            )
            .await?;
            report.files += 1;
        }
        if verifier.last_seq() != d.last_seq || verifier.last_hash() != d.last_hash {
            return Err(fail(
                Failure::RecordChain,
                &key,
                format!(
                    "it says the records end at {} with hash {}, but they end at {} with hash {}",
                    d.last_seq,
                    d.last_hash,
                    verifier.last_seq(),
                    verifier.last_hash()
                ),
            ));
        }

        if report.digests == 0 {
            report.first_seq = d.first_seq;
        }
        report.digests += 1;
        report.records += d.records;
        report.last_seq = d.last_seq;
        report.last_hash = d.last_hash;
        report.last_digest = key.clone();
        previous = Some((key, signed));
    }
    Ok(report)
}

/// Streams one data file, checking its size and SHA-256 and, for JSON
/// Lines, each record against the chain. The hash is checked first: an
/// altered file is reported as altered, with the first record that no
/// longer verifies if there is one.
async fn check_file(
    target: &ExportTarget,
    file: &super::digest::DigestFile,
    records: u64,
    mut chain: Option<&mut ChainVerifier>,
) -> Result<(), VerifyError> {
    let key = file.key.as_str();
    let mut reader = target.open_object(key).await?;
    let mut sha = Sha256::new();
    let mut size: u64 = 0;
    let mut line: Vec<u8> = Vec::new();
    let mut seen: u64 = 0;
    // The first record that fails, kept until the hash is known.
    let mut broken: Option<(Option<i64>, String)> = None;
    let mut check_line =
        |line: &[u8], chain: &mut ChainVerifier, broken: &mut Option<(Option<i64>, String)>| {
            if broken.is_some() {
                return;
            }
            seen += 1;
            match serde_json::from_slice::<Record>(line) {
                Ok(record) => {
                    if let Err(b) = chain.push(&record) {
                        *broken = Some((Some(b.seq()), b.to_string()));
                    }
                }
                Err(e) => {
                    *broken = Some((
                        Some(chain.last_seq() + 1),
                        format!("line {seen} is not an audit record: {e}"),
                    ));
                }
            }
        };
    while let Some(chunk) = reader.chunk().await? {
        sha.update(&chunk);
        size += chunk.len() as u64;
        let Some(chain) = chain.as_deref_mut() else {
            continue;
        };
        let mut rest: &[u8] = &chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&rest[..end]);
            check_line(&line, chain, &mut broken);
            line.clear();
            rest = &rest[end + 1..];
        }
        line.extend_from_slice(rest);
    }
    if let Some(chain) = chain.as_deref_mut()
        && !line.is_empty()
    {
        check_line(&line, chain, &mut broken);
    }
    let digest = modelfleet_core::audit::hex(&sha.finalize());
    let mut problem = None;
    if size != file.size {
        problem = Some(format!(
            "its size is {size} bytes but the digest says {} (altered or truncated)",
            file.size
        ));
    } else if digest != file.sha256 {
        problem = Some(format!(
            "its SHA-256 is {digest} but the digest says {} (altered)",
            file.sha256
        ));
    }
    if let Some(problem) = problem {
        let (seq, detail) = match broken {
            Some((seq, why)) => (
                seq,
                format!("{problem}; first record that does not verify: {why}"),
            ),
            None => (None, problem),
        };
        return Err(VerifyError {
            failure: Failure::FileAltered,
            key: key.to_owned(),
            seq,
            problem: detail,
        });
    }
    if let Some((seq, why)) = broken {
        return Err(VerifyError {
            failure: Failure::RecordChain,
            key: key.to_owned(),
            seq,
            problem: why,
        });
    }
    if chain.is_some() && seen != records {
        return Err(fail(
            Failure::RecordChain,
            key,
            format!("it holds {seen} records but the digest says {records}"),
        ));
    }
    Ok(())
}
