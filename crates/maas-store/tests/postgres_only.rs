//! What only the PostgreSQL backend can get wrong: each tenant is a schema of one shared
//! database (created, dropped, migrated and named safely), and several nodes open the same
//! database at once. Each test has a database of its own, dropped when it ends.

use std::path::Path;

use maas_store::postgres::{PostgresBackend, PostgresOptions};
use maas_store::{Backend, StoreError};
use sqlx::{AssertSqlSafe, Executor, PgConnection};

mod support;
use support::{TestDb, user};

async fn backend(db: &TestDb) -> PostgresBackend {
    PostgresBackend::open(&db.url(), PostgresOptions::default())
        .await
        .expect("open backend")
}

async fn schema_exists(conn: &mut PgConnection, schema: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn destroy_tenant_drops_its_schema() {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let mut conn = db.connect().await;
    assert!(schema_exists(&mut conn, "maas_control").await);
    let store = backend.open_tenant("gone").await.unwrap();
    store.insert_user(&user("alice"), None).await.unwrap();
    assert!(schema_exists(&mut conn, "t_gone").await);
    store.close().await;

    backend.destroy_tenant("gone").await.unwrap();
    assert!(!schema_exists(&mut conn, "t_gone").await);
    backend.destroy_tenant("gone").await.unwrap();
    assert!(schema_exists(&mut conn, "maas_control").await);

    // Opened again, the tenant gets its schema back.
    let store = backend.open_tenant("gone").await.unwrap();
    assert!(schema_exists(&mut conn, "t_gone").await);
    assert_eq!(store.count_users().await.unwrap(), 0);
}

#[tokio::test]
async fn tenant_ids_are_checked() {
    // Tenant ids are spliced into SQL as schema names: anything but a plain lower-case name
    // is refused before it gets there (path-like ids too, as on SQLite).
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let long = "a".repeat(51);
    for bad in [
        "",
        "A",
        "a-b",
        "a.b",
        ".",
        "..",
        "../x",
        "a/b",
        "a\\b",
        ".hidden",
        "a\"b",
        "a; DROP SCHEMA maas_control CASCADE",
        &long,
    ] {
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
    let mut conn = db.connect().await;
    assert!(schema_exists(&mut conn, "maas_control").await);
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(schemas, 0);
}

#[tokio::test]
async fn migrations_are_recorded_once_per_schema() {
    let db = TestDb::create().await;
    for _ in 0..3 {
        let backend = backend(&db).await;
        backend.open_tenant("t1").await.unwrap().close().await;
        backend.open_tenant("t2").await.unwrap().close().await;
        backend.close().await;
    }
    let mut conn = db.connect().await;
    for (schema, migrations) in [
        ("maas_control", "control"),
        ("t_t1", "tenant"),
        ("t_t2", "tenant"),
    ] {
        let migrations = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/postgres")
            .join(migrations);
        let files = std::fs::read_dir(migrations).unwrap().count();
        let applied: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{schema}\"._sqlx_migrations WHERE success"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(usize::try_from(applied).unwrap(), files, "{schema}");
    }
    // Nothing was created outside the schemas.
    let public: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(public, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_at_once() {
    // Several nodes opening the same fresh database and tenant at the same moment: the
    // migrations run once and every node ends up with a working store.
    let db = TestDb::create().await;
    let url = db.url();
    let nodes: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let backend = PostgresBackend::open(&url, PostgresOptions::default()).await?;
                let store = backend.open_tenant("shared").await?;
                store.insert_user(&user(&format!("node{i}")), None).await?;
                let count = store.count_users().await?;
                backend.close().await;
                Ok::<_, StoreError>(count)
            })
        })
        .collect();
    for node in nodes {
        let count = node.await.unwrap().unwrap();
        assert!((1..=4).contains(&count));
    }
    let backend = backend(&db).await;
    let store = backend.open_tenant("shared").await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_tenant_while_another_node_creates_its_schema() {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    // Another node has created the schema but not committed yet: our CREATE SCHEMA IF NOT
    // EXISTS waits for it and then finds the name taken.
    let mut other = db.connect().await;
    other.execute("BEGIN").await.unwrap();
    other.execute("CREATE SCHEMA t_race").await.unwrap();
    let opening = tokio::spawn(async move {
        let store = backend.open_tenant("race").await?;
        store.insert_user(&user("alice"), None).await?;
        store.count_users().await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    other.execute("COMMIT").await.unwrap();
    assert_eq!(opening.await.unwrap().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_migration_does_not_block_other_tenants() {
    let db = TestDb::create().await;
    let node1 = backend(&db).await;
    node1.open_tenant("broken").await.unwrap();
    // A migration file changed after it ran: sqlx refuses to go on.
    sqlx::query("UPDATE t_broken._sqlx_migrations SET checksum = '\\x00'::bytea")
        .execute(&mut db.connect().await)
        .await
        .unwrap();
    assert!(matches!(
        node1.open_tenant("broken").await,
        Err(StoreError::Migration(_))
    ));
    // The failed run's connection went back to node 1's pool (where it stays idle for a
    // minute); node 2 must still get the migration lock, for its control plane and a tenant.
    let opened = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let node2 = backend(&db).await;
        node2.open_tenant("fine").await
    })
    .await
    .expect("migration lock released");
    opened.unwrap();
    node1.close().await;
}

#[tokio::test]
async fn test_databases_do_not_sort_by_bytes() {
    // What makes the ordering assertions of every case meaningful on PostgreSQL: the test
    // databases' collation disagrees with byte order, so an ORDER BY without `COLLATE "C"`
    // (or its like) shows up as a wrong order.
    let db = TestDb::create().await;
    let natural: bool = sqlx::query_scalar("SELECT '!a:x' < '!B:x' AND '@b:x' < '@Zed:x'")
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap();
    assert!(natural);
}
