//! The audit trail beyond the database: exports to object storage with
//! signed digests, and their verification.
//!
//! An export ([`export`]) writes the records no earlier export holds as
//! JSON Lines (one [`modelfleet_core::audit::Record`] per line, the
//! authoritative copy), as CSV (for spreadsheets and SIEM imports), and a
//! digest ([`Digest`]) naming both files with their SHA-256, signed with
//! the platform's Ed25519 key and linked to the previous export's digest,
//! much like AWS CloudTrail's log-file integrity validation. Objects go
//! under the location given ([`ExportTarget`]):
//!
//! ```text
//! <prefix>/audit/<YYYY>/<MM>/<DD>/<exportId>.jsonl
//! <prefix>/audit/<YYYY>/<MM>/<DD>/<exportId>.csv
//! <prefix>/audit/digests/<lastSeq, 20 digits>-<exportId>.json
//! ```
//!
//! [`verify_export`] checks a location with only the public key
//! (`Store::audit_public_key`), and [`run_scheduled`] exports daily.
//! Pruning (`Store::prune_audit`) removes only exported records.

mod digest;
mod export;
mod object;
mod schedule;
mod storage;
mod target;
mod verify;

pub use digest::{
    DIGEST_VERSION, Digest, DigestFile, PublicKeyInfo, SIGNATURE_ALGORITHM, SignedDigest,
    digest_name, key_fingerprint,
};
pub use export::{BATCH, CSV_HEADER, ExportError, ExportSummary, ExportedFile, csv_file, export};
pub use object::WrittenObject;
pub use schedule::{
    DEFAULT_EXPORT_INTERVAL, MAX_EXPORT_INTERVAL, MIN_EXPORT_INTERVAL, run_scheduled,
};
pub use storage::StorageError;
pub use target::{
    DEFAULT_S3_OPERATION_TIMEOUT_SECONDS, DEFAULT_S3_READ_TIMEOUT_SECONDS, ExportTarget, Location,
    MIN_PART_SIZE, PART_SIZE, S3Settings, S3Timeouts, TargetError,
};
pub use verify::{ExportVerification, Failure, VerifyError, verify_export};
