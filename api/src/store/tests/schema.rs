//! The two migration sets must stay in step: the same files, and after
//! applying them the same tables with the same columns and nullability.

use std::collections::BTreeMap;
use std::path::Path;

use crate::store::testing::{self, TEST_DATABASE_URL_ENV, TestDb};
use crate::store::{Backend, Store, on_conn};

/// table → column → nullable
type Schema = BTreeMap<String, BTreeMap<String, bool>>;

async fn schema_of(store: &Store) -> Schema {
    let mut reader = store.reader().await.unwrap();
    let rows: Vec<(String, String, bool)> = match store.backend() {
        Backend::Postgres => on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT table_name::text, column_name::text, is_nullable = 'YES' \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
        ).fetch_all(c).await),
        // In STRICT tables a PRIMARY KEY column is NOT NULL even when the
        // pragma does not say so.
        Backend::Sqlite => on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT m.name, p.name, p.\"notnull\" = 0 AND p.pk = 0 \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
        ).fetch_all(c).await),
    }
    .unwrap();
    let mut schema = Schema::new();
    for (table, column, nullable) in rows {
        schema.entry(table).or_default().insert(column, nullable);
    }
    schema
}

fn migration_files(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn both_backends_have_the_same_migration_files() {
    let postgres = migration_files("postgres");
    assert!(!postgres.is_empty());
    assert_eq!(postgres, migration_files("sqlite"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_have_the_same_tables_and_columns() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    testing::run(Backend::Sqlite, |db: TestDb| async move {
        tx.send(schema_of(&db.store).await).unwrap();
    })
    .await;
    let sqlite = rx.await.unwrap();
    assert!(sqlite.contains_key("deployments") && sqlite.contains_key("api_keys"));
    assert_eq!(sqlite["deployments"].get("deleted_at"), Some(&true));
    assert_eq!(sqlite["tenants"].get("id"), Some(&false));
    if std::env::var(TEST_DATABASE_URL_ENV).is_err() {
        eprintln!("compared SQLite only: {TEST_DATABASE_URL_ENV} is not set");
        return;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    testing::run(Backend::Postgres, |db: TestDb| async move {
        tx.send(schema_of(&db.store).await).unwrap();
    })
    .await;
    assert_eq!(rx.await.unwrap(), sqlite);
}
