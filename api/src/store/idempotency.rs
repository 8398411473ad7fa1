//! `Idempotency-Key` records: the first request with a key claims it, and
//! its response is kept so that a retry with the same key and the same
//! request gets the same answer without doing the work twice.
//!
//! Keys are scoped to the tenant (any key or user of one tenant shares one
//! key space, so two clients of a tenant cannot both create "the" thing),
//! or to the principal for platform staff, who have no tenant. The scope
//! comes from the transaction's actor, never from the caller.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Store, StoreError, Tx, now, on_conn};
use crate::identity::{Actor, Principal};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// No earlier request: run this one, then complete or release the key.
    Fresh,
    /// The same request finished before: answer with its response.
    Replay(StoredResponse),
    /// The same key is held by a request that is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Whose keys these are: one principal (a person or an API key) in one
/// role. Another principal's key — even a colleague's in the same tenant —
/// is never theirs to replay, and a principal whose role changed runs the
/// request again, so it is authorized again.
fn scope_of(actor: &Actor) -> String {
    let who = match &actor.principal {
        Principal::User { id, .. } => format!("user:{id}"),
        Principal::ApiKey { id, .. } => format!("apikey:{id}"),
        Principal::System { component } => format!("system:{component}"),
        Principal::Anonymous => "anonymous".to_owned(),
    };
    format!("{who}:{}", actor.role)
}

impl Tx {
    /// Claims `key` for a request whose digest is `request_hash`. A claim
    /// left unfinished for `stale_after` (its request died) is taken over.
    pub async fn claim_idempotency_key(
        &mut self,
        key: &str,
        request_hash: &[u8],
        ttl: TimeDelta,
        stale_after: TimeDelta,
    ) -> Result<IdempotencyClaim, StoreError> {
        let scope = scope_of(self.actor());
        let at = now();
        on_conn!(self.conn(), c => sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        let inserted = on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO idempotency_keys (scope, idem_key, request_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, idem_key) DO NOTHING",
        )
        .bind(&scope).bind(key).bind(request_hash).bind(at).bind(at + ttl)
        .execute(c).await.map(|r| r.rows_affected()))?;
        if inserted == 1 {
            return Ok(IdempotencyClaim::Fresh);
        }
        type Row = (
            Vec<u8>,
            Option<i64>,
            Option<String>,
            Option<Vec<u8>>,
            DateTime<Utc>,
        );
        let row: Option<Row> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT request_hash, status, content_type, body, created_at FROM idempotency_keys \
             WHERE scope = $1 AND idem_key = $2",
        ).bind(&scope).bind(key).fetch_optional(c).await)?;
        let Some((hash, status, content_type, body, created_at)) = row else {
            return Err(StoreError::Corrupt("idempotency key"));
        };
        if hash != request_hash {
            return Ok(IdempotencyClaim::Mismatch);
        }
        match status {
            Some(status) => Ok(IdempotencyClaim::Replay(StoredResponse {
                status: u16::try_from(status)
                    .map_err(|_| StoreError::Corrupt("idempotency key"))?,
                content_type,
                body: body.unwrap_or_default(),
            })),
            None if created_at + stale_after <= at => {
                on_conn!(self.conn(), c => sqlx::query(
                    "UPDATE idempotency_keys SET created_at = $3, expires_at = $4 \
                     WHERE scope = $1 AND idem_key = $2",
                ).bind(&scope).bind(key).bind(at).bind(at + ttl).execute(c).await.map(|r| r.rows_affected()))?;
                Ok(IdempotencyClaim::Fresh)
            }
            None => Ok(IdempotencyClaim::InProgress),
        }
    }

    /// Keeps the response of the request that claimed `key`.
    pub async fn complete_idempotency_key(
        &mut self,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let scope = scope_of(self.actor());
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 \
             WHERE scope = $1 AND idem_key = $2",
        )
        .bind(&scope).bind(key).bind(i64::from(response.status))
        .bind(&response.content_type).bind(&response.body)
        .execute(c).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Gives a key back, so that a retry runs the request again (after a
    /// failure that changed nothing).
    pub async fn release_idempotency_key(&mut self, key: &str) -> Result<(), StoreError> {
        let scope = scope_of(self.actor());
        on_conn!(self.conn(), c => sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND status IS NULL",
        ).bind(&scope).bind(key).execute(c).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}

impl Store {
    /// Claims `key` in a transaction of its own (see [`Tx::claim_idempotency_key`]).
    pub async fn claim_idempotency_key(
        &self,
        actor: &Actor,
        key: &str,
        request_hash: &[u8],
        ttl: TimeDelta,
        stale_after: TimeDelta,
    ) -> Result<IdempotencyClaim, StoreError> {
        let mut tx = self.begin(actor).await?;
        let claim = tx
            .claim_idempotency_key(key, request_hash, ttl, stale_after)
            .await?;
        tx.commit().await?;
        Ok(claim)
    }

    pub async fn complete_idempotency_key(
        &self,
        actor: &Actor,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin(actor).await?;
        tx.complete_idempotency_key(key, response).await?;
        tx.commit().await
    }

    pub async fn release_idempotency_key(
        &self,
        actor: &Actor,
        key: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin(actor).await?;
        tx.release_idempotency_key(key).await?;
        tx.commit().await
    }
}

#[cfg(any(test, feature = "testing"))]
impl Store {
    /// Every response body kept for replay, for tests that check what is
    /// stored (never a secret).
    pub async fn idempotency_bodies_for_tests(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut reader = self.reader().await?;
        let bodies: Vec<Option<Vec<u8>>> = on_conn!(reader.conn(), c => sqlx::query_scalar(
            "SELECT body FROM idempotency_keys",
        ).fetch_all(c).await)?;
        Ok(bodies.into_iter().flatten().collect())
    }
}
