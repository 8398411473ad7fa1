//! The hub's store: the only place in modelfleet that runs SQL.
//!
//! PostgreSQL is the production store, SQLite the embedded default; the
//! database URL picks one. `sqlx::Any` cannot carry UUIDs or timestamps, so
//! the store holds an enum of the two pool types and each query is written
//! once and compiled for both through [`on_conn!`]: `$n` placeholders,
//! typed ids (see `ids.rs`) and `chrono` times mean the same text works on
//! both. Where the dialects differ (row locks, how a write transaction
//! starts) the code matches on the backend explicitly — and so does the one
//! statement with thousands of parameters, the gateway's batch of metered
//! tokens, which takes positional `?`s on SQLite (`tokens.rs` says why).
//!
//! Reads go through [`Store`] and take the caller's [`Scope`], so a row of
//! another tenant is `NotFound`. Every change goes through a [`Tx`]: it is
//! opened for an [`Actor`], checks that actor's tenant and role, and notes
//! each change it makes ([`Change`]) so the audit trail can be written on
//! the same transaction before it commits.
//!
//! SQLite allows one writer at a time. Rather than let concurrent writers
//! discover that through `SQLITE_BUSY`, the store keeps a separate pool of
//! exactly one writer connection (waiters queue fairly in the pool) and
//! starts every write transaction with `BEGIN IMMEDIATE`, so a second process
//! on the same file waits on the busy timeout instead of failing mid-way.

mod accounts;
mod api_keys;
mod audit;
mod audit_exports;
mod billing;
mod budgets;
mod clusters;
mod compliance;
mod deployments;
mod error;
mod events;
mod hub_lock;
mod idempotency;
mod input_screen;
mod intervals;
pub mod lease;
mod prices;
mod quotas;
mod reachability;
mod sessions;
mod source_credentials;
mod tenants;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod token_prices;
mod tokens;
mod totp;
mod users;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};
use uuid::Uuid;

pub use accounts::UserChange;
pub use api_keys::{ApiKey, AuthenticatedKey, CreatedApiKey, KeyAuthError, NewApiKey};
pub use audit::{AuditEntry, AuditPage, AuditQuery, ChainReport, MAX_AUDIT_PAGE};
pub use audit_exports::{AuditExport, AuditSigningKey, PruneOutcome, may_export_audit};
pub use billing::{StoredAdjustment, StoredInvoice, UsageFilter, finalize_after, period_times};
pub use budgets::{AlertOutcome, Budget, BudgetAlert, NewBudget, check_webhook_url};
pub use clusters::{
    Cluster, ClusterKind, MAX_CLUSTER_NAME_LEN, MAX_KUBECONFIG_BYTES, NewCluster, PoolPrice,
};
pub use compliance::{AccountFacts, ComplianceFacts};
pub use deployments::{
    Deployment, DeploymentRequest, DeploymentStatus, LiveCondition, Relocation, Source,
};
pub use error::StoreError;
pub use events::{DeploymentEvent, EventKind, NewEvent};
pub use hub_lock::{HoldError, HubLock};
pub use idempotency::{IdempotencyClaim, StoredResponse};
pub use input_screen::{
    InputScreen, MAX_DENY_PATTERNS, MAX_PATTERN_CHARS, MAX_PROMPT_BYTES_LIMIT, NewInputScreen,
    deny_set,
};
pub use intervals::{NewInterval, PoolLocation, ReplicaInterval};
pub use lease::{Elector, StartupLock};
pub use prices::{NewPrice, StoredPrice};
pub use reachability::LostCluster;
pub use sessions::{CreatedSession, SESSION_TOKEN_PREFIX, Session, SessionAuthError};
pub use source_credentials::{CredentialPlace, KeyHint, SourceCredential};
pub use tenants::{NewTenant, Tenant};
pub use token_prices::{NewTokenPrice, PricingModel, StoredTokenPrice, next_whole_hour};
pub use tokens::{
    MAX_TOKEN_BATCH, Percentiles, TRAFFIC_SAMPLE, TokenFilter, TokenRecord, TokenTotal, Traffic,
    hour_of,
};
pub use totp::TotpEnrolment;
pub use users::{LoginError, LoginPolicy, NewUser, User};

use crate::identity::{Actor, Scope};
use crate::ids::TenantId;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a writer waits for another process's write lock on SQLite.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
const POSTGRES_CONNECTIONS: u32 = 16;
const SQLITE_READERS: u32 = 8;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The backend a database URL names: `postgres://…`/`postgresql://…`,
    /// `sqlite:…`, or a plain file path (SQLite).
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") || !url.contains("://") {
            Ok(Backend::Sqlite)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// The hub's database. Cheap to clone: it holds connection pools.
#[derive(Debug, Clone)]
pub struct Store {
    pools: Pools,
    login_policy: LoginPolicy,
    /// Counts API key revocations committed through this process (clones
    /// share it): what caches of authenticated keys check to drop theirs.
    key_revocations: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Clone)]
enum Pools {
    Postgres(PgPool),
    Sqlite { read: SqlitePool, write: SqlitePool },
}

/// Opens the database at `url`, applies pending migrations and closes it:
/// what `modelfleet migrate` runs.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    let store = Store::connect(url).await?;
    store.close().await;
    Ok(())
}

/// Where a database's schema stands against this build's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// The newest migration applied to it; `None` when none ever was (an
    /// empty database, or not a hub's).
    pub applied: Option<i64>,
    /// The newest migration this build knows.
    pub expected: i64,
}

impl Schema {
    /// Every migration this build needs is applied (a newer hub may have
    /// applied more: they only add, so an older reader still works).
    pub fn is_current(&self) -> bool {
        self.applied.is_some_and(|applied| applied >= self.expected)
    }
}

impl Store {
    /// Opens the database at `url` and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let store = Store::open_unmigrated(url).await?;
        match &store.pools {
            Pools::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
            Pools::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await,
        }
        .map_err(StoreError::Migrate)?;
        Ok(store)
    }

    /// Opens the database at `url` as it is, never changing its schema:
    /// what `modelfleet gateway` does, which leaves migrating to the hub
    /// and checks [`Store::schema`] before it serves.
    pub async fn open_unmigrated(url: &str) -> Result<Store, StoreError> {
        let pools = match Backend::of_url(url)? {
            Backend::Postgres => Pools::Postgres(
                PgPoolOptions::new()
                    .max_connections(POSTGRES_CONNECTIONS)
                    .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await
                    .map_err(StoreError::Connect)?,
            ),
            Backend::Sqlite => sqlite_pools(url).await?,
        };
        Ok(Store {
            pools,
            login_policy: LoginPolicy::default(),
            key_revocations: std::sync::Arc::default(),
        })
    }

    /// The newest migration applied to this database, and the newest this
    /// build knows.
    pub async fn schema(&self) -> Result<Schema, StoreError> {
        const APPLIED: &str = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";
        let applied = match &self.pools {
            Pools::Postgres(pool) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                        .fetch_one(pool)
                        .await?;
                if exists {
                    sqlx::query_scalar(APPLIED).fetch_one(pool).await?
                } else {
                    None
                }
            }
            Pools::Sqlite { read, .. } => {
                let exists: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sqlite_master \
                     WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(read)
                .await?;
                if exists > 0 {
                    sqlx::query_scalar(APPLIED).fetch_one(read).await?
                } else {
                    None
                }
            }
        };
        let migrator = match self.backend() {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        };
        let expected = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        Ok(Schema { applied, expected })
    }

    pub fn with_login_policy(mut self, policy: LoginPolicy) -> Store {
        self.login_policy = policy;
        self
    }

    /// How many API key revocations this process has committed; a cache
    /// of authenticated keys made before the latest one is stale.
    pub fn key_revocations(&self) -> u64 {
        self.key_revocations
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Tells this process's caches of authenticated keys that a key was
    /// revoked (called once the revocation has committed).
    pub fn api_key_revoked(&self) {
        self.key_revocations
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// How sign-in failures are handled.
    pub fn login_policy(&self) -> LoginPolicy {
        self.login_policy
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Postgres(_) => Backend::Postgres,
            Pools::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// Waits for open connections to be returned, then closes them.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Postgres(pool) => pool.close().await,
            Pools::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
        }
    }

    /// Runs a trivial query: the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut reader = self.reader().await?;
        let _: (i64,) = on_conn!(reader.conn(), c => sqlx::query_as("SELECT CAST(1 AS BIGINT)")
            .fetch_one(c).await)?;
        Ok(())
    }

    /// Opens a write transaction acting as `actor`. Dropping it without
    /// [`Tx::commit`] rolls everything back.
    pub async fn begin(&self, actor: &Actor) -> Result<Tx, StoreError> {
        let inner = match &self.pools {
            Pools::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
            Pools::Sqlite { write, .. } => {
                TxInner::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?)
            }
        };
        Ok(Tx {
            inner,
            actor: actor.clone(),
            changes: Vec::new(),
            entry: None,
            code: None,
        })
    }

    pub(crate) async fn reader(&self) -> Result<Reader, StoreError> {
        Ok(match &self.pools {
            Pools::Postgres(pool) => Reader::Postgres(pool.acquire().await?),
            Pools::Sqlite { read, .. } => Reader::Sqlite(read.acquire().await?),
        })
    }
}

async fn sqlite_pools(url: &str) -> Result<Pools, StoreError> {
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(StoreError::Connect)?
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    let options = options.foreign_keys(true).busy_timeout(SQLITE_BUSY_TIMEOUT);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if in_memory {
        // Every connection to `:memory:` is its own database: keep exactly
        // one, forever, and use it for reads and writes alike.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
            .connect_with(options.create_if_missing(true))
            .await
            .map_err(StoreError::Connect)?;
        return Ok(Pools::Sqlite {
            read: pool.clone(),
            write: pool,
        });
    }
    // The writer creates the file and switches it to WAL (a setting that
    // stays with the file), so readers never block the writer; readers open
    // read-only, so no query on them can write by mistake.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect_with(
            options
                .clone()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal),
        )
        .await
        .map_err(StoreError::Connect)?;
    let read = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect_with(options.read_only(true))
        .await
        .map_err(StoreError::Connect)?;
    Ok(Pools::Sqlite { read, write })
}

/// A connection of either backend, borrowed for one or more queries.
pub(crate) enum Conn<'a> {
    Postgres(&'a mut PgConnection),
    Sqlite(&'a mut SqliteConnection),
}

/// Runs `$body` with `$c` bound to the backend's connection. The body is
/// compiled once per backend, so one query text serves both.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::Conn::Postgres($c) => $body,
            $crate::store::Conn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_conn;

impl Conn<'_> {
    /// Reborrows, so one connection can run several queries in turn.
    pub(crate) fn re(&mut self) -> Conn<'_> {
        match self {
            Conn::Postgres(c) => Conn::Postgres(c),
            Conn::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

pub(crate) enum Reader {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl Reader {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Reader::Postgres(c) => Conn::Postgres(c),
            Reader::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

/// A write transaction, acting for one [`Actor`].
///
/// Every mutating store function is a method on `Tx`: it checks the actor's
/// tenant and role, makes its change, and appends a [`Change`].
/// [`Tx::commit`] writes the audit record of those changes on the same
/// connection before it commits: if the record cannot be written, nothing
/// commits.
#[derive(Debug)]
pub struct Tx {
    inner: TxInner,
    actor: Actor,
    changes: Vec<Change>,
    /// What to record instead of the changes (see [`Tx::audit_as`]).
    entry: Option<AuditEntry>,
    /// The HTTP status the request answers with (see [`Tx::respond`]).
    code: Option<u16>,
}

#[derive(Debug)]
enum TxInner {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// One change a transaction made, in the terms of a Kubernetes audit event:
/// a verb on an object of a kind, in a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `create`, `update`, `delete`, `revoke`, `login`, `login-failed`, …
    pub verb: &'static str,
    /// `tenants`, `users`, `apikeys`, `quotas`, `deployments`, `clusters`,
    /// `prices`, `sessions`.
    pub resource: &'static str,
    pub tenant: Option<TenantId>,
    pub id: Uuid,
    pub name: String,
}

impl Tx {
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Postgres(_) => Backend::Postgres,
            TxInner::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// What this transaction has changed so far, in order.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Writes the audit record of what this transaction did, then commits
    /// both together.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.append_audit().await?;
        match self.inner {
            TxInner::Postgres(tx) => tx.commit().await?,
            TxInner::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Answers `code` (see [`Tx::respond`]) and commits.
    pub async fn commit_with(mut self, code: http::StatusCode) -> Result<(), StoreError> {
        self.respond(code.as_u16());
        self.commit().await
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Postgres(tx) => tx.rollback().await?,
            TxInner::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// The transaction's connection, for store modules that join it.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Postgres(tx) => Conn::Postgres(tx),
            TxInner::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }

    pub(crate) fn note(
        &mut self,
        verb: &'static str,
        resource: &'static str,
        tenant: Option<TenantId>,
        id: Uuid,
        name: &str,
    ) {
        self.changes.push(Change {
            verb,
            resource,
            tenant,
            id,
            name: name.to_owned(),
        });
    }
}

/// The current time (`modelfleet_clock`'s: the wall clock, or a test's
/// simulated one), to the microsecond: what PostgreSQL keeps, so a value
/// reads back equal on both backends.
pub(crate) fn now() -> DateTime<Utc> {
    let t = DateTime::<Utc>::from(modelfleet_clock::now());
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// Checks a scope against a row's tenant: another tenant's row is simply
/// not there.
pub(crate) fn visible(
    scope: Scope,
    tenant: TenantId,
    what: &'static str,
) -> Result<(), StoreError> {
    if scope.allows(tenant) {
        Ok(())
    } else {
        Err(StoreError::NotFound(what))
    }
}
