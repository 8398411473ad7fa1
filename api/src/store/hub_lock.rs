//! One hub per SQLite file. Hubs that share a PostgreSQL database each
//! serve requests and elect one holder per background loop
//! ([`super::lease`]); a SQLite file is one machine's, and a second hub on
//! it would run every background loop a second time (bill an interval
//! twice, fail a deployment over twice), so it refuses to start, saying
//! why.
//!
//! - SQLite: an exclusive lock on `<database>.hub-lock` beside the file,
//!   released by the kernel when the hub's process ends.
//! - PostgreSQL: nothing to hold here.
//! - An in-memory SQLite database is the process's own: nothing to hold.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

use super::Backend;

/// Why a hub may not use a database.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error(
        "another modelfleet hub is running on this SQLite database ({0}); a SQLite file serves \
         one hub (a second would run every background loop again): stop the other one, or put \
         the hubs on one PostgreSQL (--database-url postgres://…), where any number can run"
    )]
    Held(String),
    #[error("cannot tell whether another hub uses this database: {0}")]
    Check(String),
}

/// Held for as long as the hub runs; dropping it lets another hub start.
#[derive(Debug)]
pub enum HubLock {
    /// PostgreSQL: shared by every hub; each loop has its own holder.
    Shared,
    Sqlite(File),
    InMemory,
}

impl HubLock {
    /// Takes the database at `url` for this hub, or says who has it.
    pub async fn hold(url: &str) -> Result<HubLock, HoldError> {
        let backend = Backend::of_url(url).map_err(|e| HoldError::Check(e.to_string()))?;
        match backend {
            Backend::Postgres => Ok(HubLock::Shared),
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

    /// Lets another hub start (dropping does the same).
    pub async fn release(self) {
        drop(self);
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
