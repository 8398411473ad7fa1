//! One hub per database. Every hub runs every background loop (cluster
//! sync, interval closing, failover, invoicing, alerts, exports), so a
//! second hub on the same database would do each twice: bill an interval
//! twice, fail a deployment over twice. Until the loops elect one holder
//! each, a hub holds its database for as long as it runs and a second one
//! refuses to start, saying why.
//!
//! - PostgreSQL: a session-level advisory lock on a connection of its own,
//!   released by the server when that connection ends (a killed hub
//!   releases it too).
//! - SQLite: an exclusive lock on `<database>.hub-lock` beside the file,
//!   released by the kernel when the hub's process ends.
//! - An in-memory SQLite database is the process's own: nothing to hold.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row};

use super::Backend;

/// The advisory lock's key: "mfhub" in ASCII.
const ADVISORY_KEY: i64 = 0x6d_6668_7562;

/// Why a hub may not use a database.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error(
        "another modelfleet hub is running on this database ({0}); several hubs on one database \
         are not supported yet (each would run every background loop): stop the other one, or \
         run a single replica"
    )]
    Held(String),
    #[error("cannot tell whether another hub uses this database: {0}")]
    Check(String),
}

/// Held for as long as the hub runs; dropping it lets another hub start.
#[derive(Debug)]
pub enum HubLock {
    Postgres(Box<PgConnection>),
    Sqlite(File),
    InMemory,
}

impl HubLock {
    /// Takes the database at `url` for this hub, or says who has it.
    pub async fn hold(url: &str) -> Result<HubLock, HoldError> {
        let backend = Backend::of_url(url).map_err(|e| HoldError::Check(e.to_string()))?;
        match backend {
            Backend::Postgres => {
                let mut connection = PgConnection::connect(url)
                    .await
                    .map_err(|e| HoldError::Check(format!("cannot connect: {e}")))?;
                let row = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(ADVISORY_KEY)
                    .fetch_one(&mut connection)
                    .await
                    .map_err(|e| HoldError::Check(e.to_string()))?;
                let held: bool = row.get(0);
                if held {
                    Ok(HubLock::Postgres(Box::new(connection)))
                } else {
                    Err(HoldError::Held(format!(
                        "PostgreSQL advisory lock {ADVISORY_KEY} is held"
                    )))
                }
            }
            Backend::Sqlite => {
                let Some(path) = sqlite_file(url)? else {
                    return Ok(HubLock::InMemory);
                };
                let mut lock_path = path.into_os_string();
                lock_path.push(".hub-lock");
                let lock_path = PathBuf::from(lock_path);
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|e| {
                        HoldError::Check(format!("cannot open {}: {e}", lock_path.display()))
                    })?;
                match file.try_lock() {
                    Ok(()) => Ok(HubLock::Sqlite(file)),
                    Err(std::fs::TryLockError::WouldBlock) => Err(HoldError::Held(format!(
                        "{} is locked",
                        lock_path.display()
                    ))),
                    Err(std::fs::TryLockError::Error(e)) => Err(HoldError::Check(format!(
                        "cannot lock {}: {e}",
                        lock_path.display()
                    ))),
                }
            }
        }
    }

    /// Lets another hub start. (Dropping does the same; this also ends the
    /// PostgreSQL session politely.)
    pub async fn release(self) {
        if let HubLock::Postgres(connection) = self {
            let _ = connection.close().await;
        }
    }
}

/// The file behind a SQLite URL or path; `None` for an in-memory one.
fn sqlite_file(url: &str) -> Result<Option<PathBuf>, HoldError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    if !url.starts_with("sqlite:") {
        return Ok(Some(PathBuf::from(url)));
    }
    let options =
        SqliteConnectOptions::from_str(url).map_err(|e| HoldError::Check(e.to_string()))?;
    Ok(Some(options.get_filename().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_hub_on_one_sqlite_file_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
        let first = HubLock::hold(&url).await.unwrap();
        let second = HubLock::hold(&url).await.unwrap_err();
        assert!(
            matches!(&second, HoldError::Held(why) if why.contains("hub.db.hub-lock")),
            "{second}"
        );
        assert!(second.to_string().contains("another modelfleet hub"));
        // The same file by its plain path is the same database.
        let by_path = dir.path().join("hub.db").display().to_string();
        assert!(matches!(
            HubLock::hold(&by_path).await,
            Err(HoldError::Held(_))
        ));
        first.release().await;
        HubLock::hold(&url).await.expect("free again once released");
    }

    #[tokio::test]
    async fn in_memory_databases_are_never_shared() {
        assert!(matches!(
            HubLock::hold("sqlite::memory:").await,
            Ok(HubLock::InMemory)
        ));
    }
}
