//! What only the SQLite backend can get wrong: the data directory holds `control.db` and a
//! directory per tenant (created, removed, never escaped), and each database file records its
//! migrations once and runs in WAL mode.

use std::path::Path;

use maas_store::sqlite::SqliteBackend;
use maas_store::{Backend, StoreError};

mod support;
use support::{TENANT, sqlite_connection, user};

async fn backend(dir: &Path) -> SqliteBackend {
    SqliteBackend::open(dir).await.expect("open backend")
}

#[tokio::test]
async fn destroy_tenant_removes_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(dir.path()).await;
    assert!(dir.path().join("control.db").is_file());
    let store = backend.open_tenant("gone").await.unwrap();
    store.insert_user(&user("alice"), None).await.unwrap();
    let tenant_dir = dir.path().join("tenants/gone");
    assert!(tenant_dir.join("homeserver.db").is_file());
    store.close().await;

    backend.destroy_tenant("gone").await.unwrap();
    assert!(!tenant_dir.exists());
    backend.destroy_tenant("gone").await.unwrap();
    assert!(dir.path().join("control.db").is_file());

    // Opened again, the tenant gets its directory back.
    let store = backend.open_tenant("gone").await.unwrap();
    assert!(tenant_dir.join("homeserver.db").is_file());
    assert_eq!(store.count_users().await.unwrap(), 0);
}

#[tokio::test]
async fn tenant_ids_cannot_escape_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(dir.path()).await;
    for bad in ["", ".", "..", "../x", "a/b", "a\\b", ".hidden"] {
        assert!(
            matches!(backend.open_tenant(bad).await, Err(StoreError::NotFound(_))),
            "{bad:?}"
        );
        assert!(
            matches!(
                backend.destroy_tenant(bad).await,
                Err(StoreError::NotFound(_))
            ),
            "{bad:?}"
        );
    }
    assert!(dir.path().join("control.db").is_file());
    // Nothing was created for them: no tenant directory, nothing else in the data directory.
    let tenants = std::fs::read_dir(dir.path().join("tenants"))
        .unwrap()
        .count();
    assert_eq!(tenants, 0);
    let others: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with("control.db"))
        .collect();
    assert_eq!(others, ["tenants"]);
}

#[tokio::test]
async fn migrations_are_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let backend = backend(dir.path()).await;
        backend.open_tenant(TENANT).await.unwrap().close().await;
        backend.close().await;
    }
    let tenant_db = format!("tenants/{TENANT}/homeserver.db");
    for (db, migrations) in [("control.db", "control"), (tenant_db.as_str(), "tenant")] {
        let migrations = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/sqlite")
            .join(migrations);
        let files = std::fs::read_dir(migrations).unwrap().count();
        let mut conn = sqlite_connection(&dir.path().join(db)).await;
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(usize::try_from(applied).unwrap(), files, "{db}");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal", "{db}");
    }
}
