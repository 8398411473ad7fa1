//! A throwaway database per test, on each backend, so every store test is
//! written once and runs on SQLite always and on PostgreSQL whenever
//! `MODELFLEET_TEST_DATABASE_URL` names a server (CI sets it). Each
//! PostgreSQL test creates its own `mf_test_<random>` database and drops it
//! afterwards, also when the test panics.
//!
//! Compiled for this crate's unit tests, and otherwise only with the
//! `testing` feature, which test and bench targets turn on through their
//! dev-dependency on this crate: release builds carry none of it.
//!
//! ```ignore
//! async fn admits_within_quota(db: TestDb) { … db.store … }
//! modelfleet_api::store_tests!(admits_within_quota);
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use futures::FutureExt;
use sqlx::{Connection, PgConnection};
use tokio::sync::Semaphore;

use super::{Backend, Store};

/// A PostgreSQL server URL (any database on it) the tests may create and
/// drop databases on, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub const TEST_DATABASE_URL_ENV: &str = "MODELFLEET_TEST_DATABASE_URL";

/// At most this many PostgreSQL test databases at once, so parallel tests
/// stay well under the server's connection limit (each store pools 16).
static POSTGRES_SLOTS: Semaphore = Semaphore::const_new(4);

/// One test's database.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub store: Store,
    /// The URL the store was opened with, to open it again.
    pub url: String,
}

enum Cleanup {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

/// Runs `test` on a fresh database of `backend`, then removes the database
/// whatever the outcome, and re-raises the test's panic. A PostgreSQL run
/// without `MODELFLEET_TEST_DATABASE_URL` is skipped with a note.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let _slot;
    let (url, cleanup) = match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("mf-test-{}.db", uuid::Uuid::new_v4()));
            (path.display().to_string(), Cleanup::Sqlite(path))
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var(TEST_DATABASE_URL_ENV) else {
                eprintln!("skipped on PostgreSQL: {TEST_DATABASE_URL_ENV} is not set");
                return;
            };
            _slot = POSTGRES_SLOTS.acquire().await.expect("never closed");
            let name = format!("mf_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("{TEST_DATABASE_URL_ENV}: cannot connect: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("CREATE DATABASE");
            admin.close().await.ok();
            (
                with_database(&admin_url, &name),
                Cleanup::Postgres { admin_url, name },
            )
        }
    };
    let outcome = match Store::connect(&url).await {
        Ok(store) => {
            let db = TestDb {
                store: store.clone(),
                url,
            };
            // Run in place rather than spawned, so a test's future need not
            // be `Send` (the API tests hold borrows across awaits that the
            // compiler cannot prove `Send` for every lifetime).
            let outcome = AssertUnwindSafe(test(db)).catch_unwind().await;
            store.close().await;
            outcome
        }
        Err(e) => {
            remove(cleanup).await;
            panic!("cannot open the test database: {e:?}");
        }
    };
    remove(cleanup).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn remove(cleanup: Cleanup) {
    match cleanup {
        Cleanup::Sqlite(path) => {
            for suffix in ["", "-wal", "-shm", ".hub-lock"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                std::fs::remove_file(p).ok();
            }
        }
        Cleanup::Postgres { admin_url, name } => {
            if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(&mut admin)
                    .await
                {
                    eprintln!("could not drop test database {name}: {e}");
                }
                admin.close().await.ok();
            }
        }
    }
}

/// `admin_url` with its database replaced by `name`, query string kept.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs `test` to its end on a four-worker Tokio runtime whose thread has
/// a 16 MiB stack: a long API test is one large future, polled in place,
/// and in a debug build its frames outgrow a test thread's 2 MiB. A panic
/// in the test is the caller's panic.
pub fn on_large_stack<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::Builder::new()
        .name(std::thread::current().name().unwrap_or("test").to_owned())
        .stack_size(16 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .expect("a test runtime")
                .block_on(test());
        })
        .expect("a test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Declares, for each async fn `name(db: TestDb)`, a module `name` with
/// two tests: `sqlite` and `postgres`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    $crate::store::testing::on_large_stack(|| async {
                        $crate::store::testing::run($crate::store::Backend::Sqlite, super::$name).await;
                    });
                }

                #[test]
                fn postgres() {
                    $crate::store::testing::on_large_stack(|| async {
                        $crate::store::testing::run($crate::store::Backend::Postgres, super::$name).await;
                    });
                }
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "mf_test_1"),
            "postgres://postgres@127.0.0.1:5432/mf_test_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
