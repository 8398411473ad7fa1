//! Sign-in sessions: what a user gets for a correct password, a bearer
//! token that expires. The token is `mfs_` and 43 characters of base64url
//! (256 random bits); only its SHA-256 is stored. With that much entropy a
//! fast hash is enough, and a lookup by digest reveals nothing through
//! timing that a guess could use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, Tx, User, now, on_conn};
use crate::identity::{Actor, Principal, Scope};
use crate::ids::{SessionId, UserId};
use crate::secret::Secret;

pub const SESSION_TOKEN_PREFIX: &str = "mfs_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A session just created: `token` exists nowhere else.
#[derive(Debug)]
pub struct CreatedSession {
    pub session: Session,
    pub token: Secret,
}

/// Why a session token was refused. All are the same 401 to the client.
#[derive(Debug, thiserror::Error)]
pub enum SessionAuthError {
    #[error("unknown or malformed session token")]
    Unknown,
    #[error("the session has expired or was ended")]
    Ended,
    #[error("the account is locked, expired or disabled")]
    AccountUnusable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SessionAuthError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            SessionAuthError::Unknown => "unknown",
            SessionAuthError::Ended => "ended",
            SessionAuthError::AccountUnusable => "account",
            SessionAuthError::Store(e) => e.metric_label(),
        }
    }
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Tx {
    /// Opens a session for `user`, who has just proven their password. Only
    /// the user themself (or the hub) may open one.
    pub async fn create_session(
        &mut self,
        user: &User,
        ttl: TimeDelta,
    ) -> Result<CreatedSession, StoreError> {
        let allowed = match &self.actor().principal {
            Principal::User { id, .. } => *id == user.id,
            Principal::System { .. } => true,
            Principal::ApiKey { .. } | Principal::Anonymous => false,
        };
        if !allowed {
            return Err(StoreError::Forbidden);
        }
        if ttl <= TimeDelta::zero() {
            return Err(StoreError::invalid("ttl", "must be positive"));
        }
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|_| StoreError::invalid("token", "no randomness"))?;
        let token = Secret::new(format!(
            "{SESSION_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random)
        ));
        let at = now();
        let session = Session {
            id: SessionId::new(),
            user: user.id,
            created_at: at,
            expires_at: at + ttl,
        };
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO sessions (id, user_id, digest, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.id).bind(user.id).bind(digest(token.expose())).bind(at).bind(session.expires_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
        // Every factor passed: failed sign-ins start counting again.
        on_conn!(self.conn(), c => sqlx::query("UPDATE users SET failed_logins = 0 WHERE id = $1")
            .bind(user.id).execute(c).await.map(|r| r.rows_affected()))?;
        self.note(
            "create",
            "sessions",
            user.tenant,
            session.id.0,
            &user.username,
        );
        Ok(CreatedSession { session, token })
    }

    /// Ends a session of the acting user; ending an ended one changes nothing.
    pub async fn end_session(&mut self, id: SessionId) -> Result<(), StoreError> {
        let found: Option<(UserId,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT user_id FROM sessions WHERE id = $1").bind(id).fetch_optional(c).await)?;
        let (user,) = found.ok_or(StoreError::NotFound("session"))?;
        let own = matches!(&self.actor().principal, Principal::User { id, .. } if *id == user);
        if !own {
            return Err(StoreError::NotFound("session"));
        }
        let ended = on_conn!(self.conn(), c => sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        ).bind(id).bind(now()).execute(c).await.map(|r| r.rows_affected()))?;
        if ended > 0 {
            let tenant = self.actor().tenant;
            self.note("delete", "sessions", tenant, id.0, "session");
        }
        Ok(())
    }
}

impl Store {
    /// Moves a live session's expiry to `expires_at` (idle expiry: the
    /// console pushes it forward on every page, never past the session's
    /// lifetime). Ended sessions stay ended.
    pub async fn touch_session(
        &self,
        id: SessionId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin(&Actor::system("session")).await?;
        on_conn!(tx.conn(), c => sqlx::query(
            "UPDATE sessions SET expires_at = $2 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $3",
        ).bind(id).bind(expires_at).bind(now()).execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await
    }

    /// The session and user behind a presented token, if the session is
    /// live and the account still usable (not locked, not expired).
    pub async fn authenticate_session(
        &self,
        token: &str,
    ) -> Result<(Session, User), SessionAuthError> {
        let well_formed = token
            .strip_prefix(SESSION_TOKEN_PREFIX)
            .is_some_and(|rest| rest.len() == 43 && URL_SAFE_NO_PAD.decode(rest).is_ok());
        if !well_formed {
            return Err(SessionAuthError::Unknown);
        }
        type Row = (
            SessionId,
            UserId,
            DateTime<Utc>,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
        );
        let mut reader = self.reader().await?;
        let row: Option<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT id, user_id, created_at, expires_at, revoked_at FROM sessions WHERE digest = $1",
        ).bind(digest(token)).fetch_optional(c).await)
        .map_err(StoreError::from)?;
        drop(reader);
        let (id, user, created_at, expires_at, revoked_at) =
            row.ok_or(SessionAuthError::Unknown)?;
        let at = now();
        if revoked_at.is_some() || expires_at <= at {
            return Err(SessionAuthError::Ended);
        }
        let user = self.user(Scope::All, user).await?;
        let locked = user.locked_until.is_some_and(|u| u > at);
        let expired = user.expires_at.is_some_and(|e| e <= at);
        if locked || expired || user.disabled_at.is_some() {
            return Err(SessionAuthError::AccountUnusable);
        }
        let session = Session {
            id,
            user: user.id,
            created_at,
            expires_at,
        };
        Ok((session, user))
    }
}
