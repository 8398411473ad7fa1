//! The store's error. Messages name the object and the rule, never a value
//! that could be secret: the store only ever binds hashes and sealed bytes
//! for secrets, and database URLs (which may carry a password) are never
//! quoted.

use modelfleet_core::quota::QuotaExceeded;

use crate::identity::Denied;
use crate::secret::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Absent, or belongs to another tenant: the caller cannot tell which.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("your role does not allow this")]
    Forbidden,
    #[error("{kind} {name:?} already exists")]
    Conflict { kind: &'static str, name: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Refused while something still depends on it; the reason says what
    /// and what to do first.
    #[error("{kind} {name:?} is in use: {reason}")]
    InUse {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("unsupported database URL; use postgres://…, sqlite://… or a file path")]
    UnsupportedUrl,
    #[error("cannot open the database")]
    Connect(#[source] sqlx::Error),
    #[error("applying database migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A row holds a value the code does not know (edited by hand, or
    /// written by a newer version).
    #[error("the stored {0} is not valid")]
    Corrupt(&'static str),
}

impl StoreError {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "not_found",
            StoreError::Forbidden => "forbidden",
            StoreError::Conflict { .. } => "conflict",
            StoreError::InUse { .. } => "in_use",
            StoreError::Invalid { .. } => "invalid",
            StoreError::Quota(_) => "quota",
            StoreError::Secret(_) => "secret",
            StoreError::UnsupportedUrl => "unsupported_url",
            StoreError::Connect(_) => "connect",
            StoreError::Migrate(_) => "migrate",
            StoreError::Database(_) => "database",
            StoreError::Corrupt(_) => "corrupt",
        }
    }

    pub(crate) fn denied(denied: Denied, what: &'static str) -> StoreError {
        match denied {
            Denied::NotFound => StoreError::NotFound(what),
            Denied::Forbidden => StoreError::Forbidden,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Maps a unique-constraint violation to `Conflict`, anything else to
    /// `Database`.
    pub(crate) fn unique(kind: &'static str, name: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                kind,
                name: name.to_owned(),
            },
            _ => StoreError::Database(e),
        }
    }
}
