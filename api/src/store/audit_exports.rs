//! Audit exports, the platform's signing key, and pruning.
//!
//! An export (see `crate::audit`) writes a range of records to object
//! storage with a signed digest, then records a row here: which records,
//! where, and the digest's signature, which the next digest carries so the
//! digests form a chain of their own. Only records an export covers can be
//! pruned: pruning first leaves a checkpoint (the last removed record's
//! number and hash, and the export that holds it), which the database
//! triggers require before they let a record be deleted, and which
//! verification of the remaining chain starts from.
//!
//! The signing key is an Ed25519 key made on first use. Its private half is
//! sealed with the hub's keyring; its public half is stored in the clear so
//! anyone can verify exports without the keyring.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use modelfleet_core::audit::ChainHash;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{Conn, Store, StoreError, Tx, now, on_conn};
use crate::identity::{Actor, Permission};
use crate::ids::ExportId;
use crate::secret::{Keyring, Sealed, Secret};

/// The keyring context the signing key's private half is sealed under, so
/// the sealed bytes open nowhere else.
const SIGNING_KEY_CONTEXT: &str = "audit-signing-key";

/// The platform's Ed25519 key that signs export digests.
pub struct AuditSigningKey {
    /// The key's row id: digests name it as `publicKeyId`.
    pub id: Uuid,
    signing: SigningKey,
}

impl std::fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigningKey")
            .field("id", &self.id)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl AuditSigningKey {
    /// The private key, for signing. Only the export code signs.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Lowercase hex SHA-256 of the public key: what digests name it by.
    pub fn fingerprint(&self) -> String {
        crate::audit::key_fingerprint(&self.public_key())
    }
}

/// One export's row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditExport {
    pub id: ExportId,
    /// Where it was written (`file:///dir`, `s3://bucket/prefix`), never
    /// with credentials.
    pub location: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The object key of its signed digest.
    pub digest_key: String,
    /// The digest's signature, base64: the next digest carries it.
    pub digest_signature: String,
    pub created_at: DateTime<Utc>,
}

/// What pruning removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Records deleted.
    pub removed: u64,
    /// The newest record removed: the checkpoint's `through_seq`.
    pub through_seq: i64,
    /// Its hash: the next remaining record's `prevHash`.
    pub through_hash: ChainHash,
    /// The export that holds the newest removed record.
    pub export: ExportId,
}

/// Serializes writers that must see a stable audit trail (a new key, an
/// export row, a checkpoint) with each other and with record appends. On
/// SQLite every write transaction already holds the single write lock.
async fn lock_audit(tx: &mut Tx) -> Result<(), StoreError> {
    if let Conn::Postgres(c) = tx.conn() {
        sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// The oldest (in practice the only) key row: `(id, public key base64,
/// sealed private key)`. Ids are read as text: PostgreSQL keeps them as
/// `uuid`, SQLite as hyphenated text, and both render the same.
async fn key_row(mut conn: Conn<'_>) -> Result<Option<(Uuid, String, Vec<u8>)>, StoreError> {
    let row: Option<(String, String, Vec<u8>)> = on_conn!(conn.re(), c => sqlx::query_as(
        "SELECT CAST(id AS TEXT), public_key, private_key FROM audit_keys \
         ORDER BY created_at, id LIMIT 1",
    ).fetch_optional(c).await)?;
    row.map(|(id, public, private)| {
        let id = Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt("audit key id"))?;
        Ok((id, public, private))
    })
    .transpose()
}

fn decode_public(text: &str) -> Result<[u8; 32], StoreError> {
    BASE64
        .decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or(StoreError::Corrupt("audit public key"))
}

/// Opens a stored key and checks its halves belong together.
fn open_key(
    keyring: &Keyring,
    id: Uuid,
    public: &str,
    private: Vec<u8>,
) -> Result<AuditSigningKey, StoreError> {
    let secret = keyring.open(&Sealed::from_stored(private)?, SIGNING_KEY_CONTEXT)?;
    let seed = Zeroizing::new(
        BASE64
            .decode(secret.expose())
            .map_err(|_| StoreError::Corrupt("audit signing key"))?,
    );
    let seed: &[u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit signing key"))?;
    let signing = SigningKey::from_bytes(seed);
    if signing.verifying_key().to_bytes() != decode_public(public)? {
        return Err(StoreError::Corrupt("audit signing key"));
    }
    Ok(AuditSigningKey { id, signing })
}

impl Store {
    /// The platform's audit signing key, made and stored on first use (its
    /// creation is itself audited, as `system:audit`).
    pub async fn audit_signing_key(
        &self,
        keyring: &Keyring,
    ) -> Result<AuditSigningKey, StoreError> {
        {
            let mut reader = self.reader().await?;
            if let Some((id, public, private)) = key_row(reader.conn()).await? {
                return open_key(keyring, id, &public, private);
            }
        }
        let mut tx = self.begin(&Actor::system("audit")).await?;
        lock_audit(&mut tx).await?;
        // Another hub may have made it while this one waited for the lock.
        if let Some((id, public, private)) = key_row(tx.conn()).await? {
            tx.rollback().await?;
            return open_key(keyring, id, &public, private);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..]).map_err(|_| crate::secret::SecretError::Random)?;
        let signing = SigningKey::from_bytes(&seed);
        let sealed = keyring.seal(&Secret::new(BASE64.encode(&seed[..])), SIGNING_KEY_CONTEXT)?;
        let id = Uuid::new_v4();
        let public = BASE64.encode(signing.verifying_key().to_bytes());
        let created_at = now();
        let sql = "INSERT INTO audit_keys (id, public_key, private_key, created_at) \
                   VALUES ($1, $2, $3, $4)";
        match tx.conn() {
            Conn::Postgres(c) => {
                sqlx::query(sql)
                    .bind(id)
                    .bind(&public)
                    .bind(sealed.as_bytes())
                    .bind(created_at)
                    .execute(&mut *c)
                    .await?;
            }
            Conn::Sqlite(c) => {
                sqlx::query(sql)
                    .bind(id.hyphenated().to_string())
                    .bind(&public)
                    .bind(sealed.as_bytes())
                    .bind(created_at)
                    .execute(&mut *c)
                    .await?;
            }
        }
        tx.note("create", "audit/keys", None, id, "audit-signing-key");
        tx.commit().await?;
        Ok(AuditSigningKey { id, signing })
    }

    /// The signing key's id and public half, if one was made: what anyone
    /// verifying an export needs, without the keyring.
    pub async fn audit_public_key(&self) -> Result<Option<(String, [u8; 32])>, StoreError> {
        let mut reader = self.reader().await?;
        let Some((id, public, _)) = key_row(reader.conn()).await? else {
            return Ok(None);
        };
        let public = decode_public(&public)?;
        // A stored public key that is not a curve point is corrupt too.
        VerifyingKey::from_bytes(&public).map_err(|_| StoreError::Corrupt("audit public key"))?;
        Ok(Some((id.to_string(), public)))
    }

    /// The newest export: the next one continues after its `last_seq`.
    pub async fn last_audit_export(&self) -> Result<Option<AuditExport>, StoreError> {
        let mut reader = self.reader().await?;
        last_export(reader.conn()).await
    }

    /// Every export, oldest first.
    pub async fn audit_exports(&self) -> Result<Vec<AuditExport>, StoreError> {
        let mut reader = self.reader().await?;
        Ok(
            on_conn!(reader.conn(), c => sqlx::query_as::<_, AuditExport>(
            "SELECT id, location, first_seq, last_seq, digest_key, digest_signature, created_at \
             FROM audit_exports ORDER BY last_seq",
        ).fetch_all(c).await)?,
        )
    }

    /// Deletes the records recorded before `before` that an export already
    /// holds, leaving a checkpoint so the rest of the chain still verifies.
    /// Platform admins only: auditors read the trail and delete nothing.
    pub async fn prune_audit(
        &self,
        actor: &Actor,
        before: DateTime<Utc>,
    ) -> Result<PruneOutcome, StoreError> {
        actor
            .check_role(Permission::ManagePlatform)
            .map_err(|_| StoreError::Forbidden)?;
        let mut tx = self.begin(actor).await?;
        lock_audit(&mut tx).await?;
        let Some(last) = last_export(tx.conn()).await? else {
            return Err(StoreError::invalid(
                "prune",
                "no audit records were exported yet; export them first, then prune",
            ));
        };
        let checkpoint: Option<i64> = on_conn!(tx.conn(), c => sqlx::query_scalar(
            "SELECT MAX(through_seq) FROM audit_checkpoints").fetch_one(c).await)?;
        let checkpoint = checkpoint.unwrap_or(0);
        // The newest exported record recorded before `before`; everything
        // up to it goes, so what remains is still one unbroken chain.
        let through: Option<(i64, String)> = on_conn!(tx.conn(), c => sqlx::query_as(
            "SELECT seq, hash FROM audit_records WHERE seq <= $1 AND seq > $2 \
             AND recorded_at < $3 ORDER BY seq DESC LIMIT 1",
        ).bind(last.last_seq).bind(checkpoint).bind(before).fetch_optional(c).await)?;
        let Some((through_seq, hash)) = through else {
            return Err(StoreError::invalid(
                "prune",
                format!(
                    "no exported records recorded before {} remain (records through {} are \
                     exported, through {checkpoint} already pruned); export newer records first \
                     or choose a later time",
                    before.to_rfc3339(),
                    last.last_seq
                ),
            ));
        };
        let through_hash: ChainHash = hash
            .parse()
            .map_err(|_| StoreError::Corrupt("audit record hash"))?;
        let export: Option<ExportId> = on_conn!(tx.conn(), c => sqlx::query_scalar(
            "SELECT id FROM audit_exports WHERE first_seq <= $1 AND last_seq >= $1 \
             ORDER BY last_seq LIMIT 1",
        ).bind(through_seq).fetch_optional(c).await)?;
        let export = export.ok_or(StoreError::Corrupt("audit exports"))?;
        on_conn!(tx.conn(), c => sqlx::query(
            "INSERT INTO audit_checkpoints (through_seq, hash, export_id, created_at) \
             VALUES ($1, $2, $3, $4)",
        ).bind(through_seq).bind(&hash).bind(export).bind(now())
        .execute(c).await.map(|r| r.rows_affected()))?;
        let removed = on_conn!(tx.conn(), c => sqlx::query(
            "DELETE FROM audit_records WHERE seq <= $1",
        ).bind(through_seq).execute(c).await.map(|r| r.rows_affected()))?;
        tx.note(
            "delete",
            "audit/records",
            None,
            export.0,
            &format!("records {}-{through_seq}", checkpoint + 1),
        );
        tx.commit().await?;
        Ok(PruneOutcome {
            removed,
            through_seq,
            through_hash,
            export,
        })
    }
}

/// Who may export the audit trail: whoever reads every tenant's records
/// (platform admins, platform-wide auditors, the hub). Pruning stays with
/// platform admins.
pub fn may_export_audit(actor: &Actor) -> bool {
    actor.tenant.is_none() && actor.role.grants(Permission::ReadAudit)
}

impl Tx {
    /// Records an export whose objects are written. It must continue
    /// exactly after the newest export (an export that ran concurrently
    /// makes this a conflict; run the export again). Platform admins,
    /// platform-wide auditors and the hub itself.
    pub async fn record_audit_export(&mut self, export: &AuditExport) -> Result<(), StoreError> {
        if !may_export_audit(self.actor()) {
            return Err(StoreError::Forbidden);
        }
        lock_audit(self).await?;
        let previous = last_export(self.conn()).await?.map_or(0, |e| e.last_seq);
        if export.first_seq != previous + 1 {
            return Err(StoreError::Conflict {
                kind: "audit export",
                name: format!(
                    "records {}-{} (the previous export ends at record {previous}; another \
                     export ran at the same time, export again)",
                    export.first_seq, export.last_seq
                ),
            });
        }
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO audit_exports (id, location, first_seq, last_seq, digest_key, \
             digest_signature, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        ).bind(export.id).bind(&export.location).bind(export.first_seq).bind(export.last_seq)
        .bind(&export.digest_key).bind(&export.digest_signature).bind(export.created_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
        self.note(
            "create",
            "audit/exports",
            None,
            export.id.0,
            &format!(
                "records {}-{} to {}",
                export.first_seq, export.last_seq, export.location
            ),
        );
        Ok(())
    }
}

async fn last_export(mut conn: Conn<'_>) -> Result<Option<AuditExport>, StoreError> {
    Ok(on_conn!(conn.re(), c => sqlx::query_as::<_, AuditExport>(
        "SELECT id, location, first_seq, last_seq, digest_key, digest_signature, created_at \
         FROM audit_exports ORDER BY last_seq DESC LIMIT 1",
    ).fetch_optional(c).await)?)
}
