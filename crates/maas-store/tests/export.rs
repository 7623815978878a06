//! Export and import of tenant databases: a filled SQLite tenant round-trips row for row, also
//! through PostgreSQL and back; bad input is refused without writing anything and
//! `TENANT_TABLES` matches the migrated schema in foreign-key order, on each backend.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use maas_store::postgres::{PostgresBackend, PostgresOptions};
use maas_store::sqlite::SqliteBackend;
use maas_store::{
    AccessTokenRecord, Backend, ChunkSink, DeviceRecord, EXPORT_CHUNK_BYTES, EXPORT_CHUNK_ROWS,
    RegistrationTokenRecord, SigningKeyRecord, StoreError, TENANT_TABLES, TableRows, TenantStore,
    UserRecord,
};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, Row};

mod support;
use support::{Fixture, Raw, TestDb, on_both_backends, sqlite_connection};

on_both_backends!(bad_input_is_refused_and_nothing_is_written);
on_both_backends!(tenant_tables_match_the_schema_in_foreign_key_order);
on_both_backends!(exports_come_in_bounded_chunks_from_one_snapshot);
on_both_backends!(an_export_ends_when_its_reader_goes_away);

/// Every chunk an export hands out, merged table by table (each table's chunks are
/// contiguous).
async fn export_tables(store: &dyn TenantStore) -> maas_store::Result<Vec<TableRows>> {
    let mut chunks: Vec<TableRows> = Vec::new();
    store.export_tables(&mut chunks).await?;
    let mut tables: Vec<TableRows> = Vec::new();
    for chunk in chunks {
        match tables.last_mut() {
            Some(last) if last.table == chunk.table => {
                assert_eq!(
                    last.columns, chunk.columns,
                    "columns change in {}",
                    chunk.table
                );
                last.rows.extend(chunk.rows);
            }
            _ => tables.push(chunk),
        }
    }
    Ok(tables)
}

/// Imports `tables` in one transaction, in chunks of up to 1000 rows, as an archive would
/// bring them; aborted on the first refusal.
async fn import_tables(store: &dyn TenantStore, tables: &[TableRows]) -> maas_store::Result<()> {
    let mut import = store.begin_import().await?;
    for table in tables {
        let mut parts: Vec<&[Vec<Value>]> = table.rows.chunks(EXPORT_CHUNK_ROWS).collect();
        if parts.is_empty() {
            parts.push(&[]);
        }
        for rows in parts {
            let chunk = TableRows {
                table: table.table.clone(),
                columns: table.columns.clone(),
                rows: rows.to_vec(),
            };
            if let Err(e) = import.write(&chunk).await {
                import.abort().await;
                return Err(e);
            }
        }
    }
    import.commit().await
}

async fn open(dir: &Path, tenant_id: &str) -> (SqliteBackend, Arc<dyn TenantStore>) {
    let backend = SqliteBackend::open(dir).await.expect("open backend");
    let store = backend.open_tenant(tenant_id).await.expect("open tenant");
    (backend, store)
}

/// A user whose text fields need escaping somewhere along the way.
fn user(localpart: &str, admin: bool) -> UserRecord {
    UserRecord {
        password_hash: Some(format!("$argon2id$v=19$m=1024,t=1,p=1${localpart}")),
        admin,
        displayname: Some(format!("{localpart} «display»\nwith a newline")),
        avatar_url: None,
        ..support::user(localpart)
    }
}

/// Fills every kind of value: users, devices and tokens through the trait, and rows of the
/// room and E2EE tables (a state group chain, a redacted event, identity-like ids) directly.
async fn fill(dir: &Path, tenant_id: &str, store: &dyn TenantStore) {
    store
        .insert_signing_key(&SigningKeyRecord {
            key_id: "ed25519:a_AbCd".into(),
            pkcs8: (0..=255).collect(),
            created_ts: 1_000,
        })
        .await
        .expect("signing key");
    for (localpart, admin) in [("alice", true), ("bob", false)] {
        assert!(
            store
                .insert_user(&user(localpart, admin), None)
                .await
                .expect("user")
        );
        let device = DeviceRecord {
            localpart: localpart.into(),
            device_id: format!("{}DEVICE", localpart.to_uppercase()),
            display_name: None,
            last_seen_ts: Some(9_000),
            last_seen_ip: Some("127.0.0.1".into()),
            created_ts: 3_000,
        };
        let token = AccessTokenRecord {
            token_hash: format!("hash-of-{localpart}"),
            localpart: localpart.into(),
            device_id: device.device_id.clone(),
            created_ts: 4_000,
        };
        store.start_session(&device, &token).await.expect("session");
    }
    store
        .insert_registration_token(&RegistrationTokenRecord {
            token: "tok".into(),
            uses_allowed: Some(3),
            completed: 1,
            expiry_time: None,
            created_ts: 5_000,
        })
        .await
        .expect("registration token");
    // SQLite's SQL: the rows are planted on SQLite and reach PostgreSQL by import.
    let path = dir.join("tenants").join(tenant_id).join("homeserver.db");
    let mut conn = sqlite_connection(&path).await;
    conn.execute(
        r#"
        UPDATE counters SET stream_reserved = 2000, last_state_group = 3;
        INSERT INTO rooms VALUES ('!r:example.org', '12', '@alice:example.org', 6000, 1, 3);
        INSERT INTO state_groups VALUES (1, '!r:example.org', NULL, 0);
        INSERT INTO state_groups VALUES (2, '!r:example.org', 1, 1);
        INSERT INTO state_groups VALUES (3, '!r:example.org', 2, 2);
        INSERT INTO state_group_entries VALUES (1, 'm.room.create', '', '$create');
        INSERT INTO state_group_entries VALUES (3, 'm.room.member', '@bob:example.org', '$join');
        INSERT INTO events VALUES (1, '$create', '!r:example.org', 1, 'm.room.create', '',
            '@alice:example.org', 6000, '{"type":"m.room.create"}', 0, 1, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL);
        INSERT INTO events VALUES (5, '$msg', '!r:example.org', 2, 'm.room.message', NULL,
            '@alice:example.org', 6001, '{"content":{}}', 1, 1, '$redaction',
            'alice', 'ALICEDEVICE', 'txn1', NULL, NULL,
            '["send","!r:example.org","m.room.message"]');
        INSERT INTO events VALUES (7, '$edit', '!r:example.org', 3, 'm.room.message', NULL,
            '@alice:example.org', 6002, '{"content":{"body":"é ✓"}}', 1, 1, NULL,
            NULL, NULL, NULL, 'm.replace', '$msg', NULL);
        INSERT INTO forward_extremities VALUES ('!r:example.org', '$edit');
        INSERT INTO room_memberships VALUES ('!r:example.org', '@alice:example.org', 'join',
            '$create', 1, '@alice:example.org', NULL, 1);
        INSERT INTO account_data VALUES ('alice', '', 'm.direct', '{}', 8);
        INSERT INTO event_push_actions VALUES ('@bob:example.org', '!r:example.org', 5, '$msg',
            'main', 1, 1, 0);
        INSERT INTO room_push_actions VALUES ('!r:example.org', 7, '$edit', '@alice:example.org',
            'main');
        INSERT INTO federation_outbox VALUES ('remote.example', 5, '$msg');
        INSERT INTO federation_outbox VALUES ('remote.example', 7, '$edit');
        INSERT INTO federation_outbox VALUES ('other.example', 7, '$edit');
        INSERT INTO federation_inbox VALUES ('remote.example', 'txn1', '{"pdus":{}}', 6500);
        INSERT INTO device_keys VALUES ('alice', 'ALICEDEVICE', '{"keys":{}}');
        INSERT INTO one_time_keys VALUES (41, 'alice', 'ALICEDEVICE', 'signed_curve25519',
            'signed_curve25519:AAAA', '{"key":"k1"}');
        INSERT INTO one_time_keys VALUES (42, 'alice', 'ALICEDEVICE', 'signed_curve25519',
            'signed_curve25519:AAAB', '{"key":"k2"}');
        INSERT INTO fallback_keys VALUES ('alice', 'ALICEDEVICE', 'signed_curve25519',
            'signed_curve25519:F', '{"key":"f"}', 1);
        INSERT INTO cross_signing_keys VALUES ('alice', 'master', '{"usage":["master"]}',
            1700000600000);
        INSERT INTO device_list_changes VALUES (9, '@alice:example.org');
        INSERT INTO to_device_messages VALUES (3, 'bob', 'BOBDEVICE', 10, '@alice:example.org',
            'm.room.encrypted', '{}');
        INSERT INTO backup_versions VALUES ('alice', 1, 'm.megolm_backup.v1', '{}', 2, 1);
        INSERT INTO backup_versions VALUES ('alice', 2, 'm.megolm_backup.v1', '{}', 1, 0);
        INSERT INTO backup_keys VALUES ('alice', 2, '!r:example.org', 'session', 0, 1, 1, '{}');
        "#,
    )
    .await
    .expect("room and e2ee rows");
    conn.close().await.expect("close");
}

/// The tables as they travel in an archive: serialised to JSON and read back.
fn through_json(tables: &[TableRows]) -> Vec<TableRows> {
    let text = serde_json::to_string(tables).expect("serialise");
    serde_json::from_str(&text).expect("parse")
}

fn table<'a>(tables: &'a [TableRows], name: &str) -> &'a TableRows {
    tables
        .iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("no table {name}"))
}

fn column(table: &TableRows, name: &str) -> Vec<Value> {
    let i = table
        .columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {}", table.table));
    table.rows.iter().map(|r| r[i].clone()).collect()
}

#[tokio::test]
async fn a_filled_tenant_round_trips_row_for_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (backend, source) = open(dir.path(), "source").await;
    fill(dir.path(), "source", source.as_ref()).await;
    let exported = export_tables(source.as_ref()).await.expect("export");

    let names: Vec<&str> = exported.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, TENANT_TABLES);
    let keys = table(&exported, "signing_keys");
    assert_eq!(keys.rows.len(), 1);
    let pkcs8 = column(keys, "pkcs8");
    assert!(pkcs8[0]["$bytes"].is_string(), "{pkcs8:?}");
    // SQLite booleans are the integers they are stored as.
    assert_eq!(
        column(table(&exported, "users"), "admin"),
        [json!(1), json!(0)]
    );
    // Ordered by primary key, so a delta's base comes before the delta.
    assert_eq!(
        column(table(&exported, "state_groups"), "prev_group"),
        [json!(null), json!(1), json!(2)]
    );

    let target = backend.open_tenant("target").await.expect("open target");
    import_tables(target.as_ref(), &through_json(&exported))
        .await
        .expect("import");
    assert_eq!(
        export_tables(target.as_ref()).await.expect("re-export"),
        exported
    );

    // What the rest of the server reads comes back as it was.
    for localpart in ["alice", "bob"] {
        assert_eq!(
            target.user(localpart).await.expect("user"),
            source.user(localpart).await.expect("user")
        );
        let hash = format!("hash-of-{localpart}");
        assert!(target.access_token(&hash).await.expect("token").is_some());
    }
    assert_eq!(
        target.signing_keys().await.expect("keys"),
        source.signing_keys().await.expect("keys")
    );
    assert_eq!(target.stream_reserved().await.expect("stream"), 2000);
    assert_same_federation_queues(source.as_ref(), target.as_ref()).await;
    // The next state group continues after the imported ones.
    assert_eq!(target.next_state_group_id().await.expect("group id"), 4);
    source.close().await;
    target.close().await;
    backend.close().await;
}

/// A moved tenant still delivers what it queued (PDUs as stored, the redacted one redacted)
/// and still knows the transactions it answered.
async fn assert_same_federation_queues(source: &dyn TenantStore, target: &dyn TenantStore) {
    let destinations = target.outbound_destinations().await.expect("destinations");
    let mut sorted = destinations.clone();
    sorted.sort();
    assert_eq!(sorted, ["other.example", "remote.example"]);
    for destination in &destinations {
        let queued = target.queued_pdus(destination, 10).await.expect("queued");
        assert!(!queued.is_empty(), "{destination}");
        assert_eq!(
            queued,
            source.queued_pdus(destination, 10).await.expect("queued")
        );
    }
    assert_eq!(
        target
            .received_transaction("remote.example", "txn1")
            .await
            .expect("received")
            .as_deref(),
        Some(r#"{"pdus":{}}"#)
    );
}

/// Users of a tenant database.
async fn user_count(store: &dyn TenantStore) -> u64 {
    store.count_users().await.expect("count users")
}

/// Refused on either backend: the archive comes from a filled SQLite tenant, the target is the
/// backend under test.
async fn bad_input_is_refused_and_nothing_is_written(fixture: &Fixture) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sqlite, source) = open(dir.path(), "source").await;
    fill(dir.path(), "source", source.as_ref()).await;
    let exported = export_tables(source.as_ref()).await.expect("export");
    let target = fixture.store().await;
    let fresh = export_tables(target.as_ref()).await.expect("fresh export");

    let mut unknown_table = exported.clone();
    unknown_table[3].table = "sqlite_master".into();
    let mut unknown_column = exported.clone();
    unknown_column[1].columns[0] = "localpart\" TEXT); DROP TABLE users; --".into();
    // A text where backup_keys (written late) wants an integer: everything before it rolls back.
    let mut wrong_type = exported.clone();
    let last = wrong_type
        .iter()
        .position(|t| t.table == "backup_keys")
        .expect("backup_keys");
    let i = wrong_type[last]
        .columns
        .iter()
        .position(|c| c == "first_message_index")
        .expect("column");
    wrong_type[last].rows[0][i] = json!("not a number");
    let mut bad_value = exported.clone();
    bad_value[1].rows[0][0] = json!({"nested": ["object"]});
    // The users twice in a row: the database refuses the copy.
    let mut duplicate = exported.clone();
    duplicate.insert(2, exported[1].clone());
    // The users again after the last table: children would come before their parents.
    let mut unordered = exported.clone();
    unordered.push(exported[1].clone());

    for (what, tables) in [
        ("unknown table", unknown_table),
        ("unknown column", unknown_column),
        ("wrong type", wrong_type),
        ("bad value", bad_value),
        ("duplicate rows", duplicate),
        ("tables out of order", unordered),
    ] {
        let result = import_tables(target.as_ref(), &tables).await;
        assert!(
            matches!(result, Err(StoreError::Corrupt(_))),
            "{what}: {result:?}"
        );
        assert_eq!(user_count(target.as_ref()).await, 0, "{what}");
        assert_eq!(
            export_tables(target.as_ref()).await.expect("export"),
            fresh,
            "{what}"
        );
    }
    // Still importable after all the refusals.
    import_tables(target.as_ref(), &exported)
        .await
        .expect("import");
    assert_eq!(user_count(target.as_ref()).await, 2);
    source.close().await;
    sqlite.close().await;
}

/// Every table of a tenant's database, as its backend's catalog lists them.
async fn live_tables(conn: &mut Raw) -> HashSet<String> {
    let rows = match conn {
        Raw::Sqlite(conn) => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
        )
        .fetch_all(conn)
        .await
        .expect("tables"),
        Raw::Postgres(conn) => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name <> '_sqlx_migrations'",
        )
        .fetch_all(conn)
        .await
        .expect("tables"),
    };
    rows.into_iter().collect()
}

/// The tables `table`'s foreign keys reference.
async fn parents(conn: &mut Raw, table: &str) -> Vec<String> {
    match conn {
        Raw::Sqlite(conn) => sqlx::query("SELECT \"table\" FROM pragma_foreign_key_list(?)")
            .bind(table)
            .fetch_all(conn)
            .await
            .expect("foreign keys")
            .iter()
            .map(|row| row.get("table"))
            .collect(),
        Raw::Postgres(conn) => sqlx::query_scalar(
            "SELECT parent.relname::text FROM pg_constraint \
             JOIN pg_class parent ON parent.oid = pg_constraint.confrelid \
             WHERE pg_constraint.contype = 'f' AND pg_constraint.conrelid = to_regclass($1)",
        )
        .bind(table)
        .fetch_all(conn)
        .await
        .expect("foreign keys"),
    }
}

/// What export and import walk through is the whole schema, parents before children: a table
/// left out of `TENANT_TABLES` would be silently lost in a move.
async fn tenant_tables_match_the_schema_in_foreign_key_order(fixture: &Fixture) {
    fixture.store().await;
    let mut conn = fixture.raw().await;
    let live = live_tables(&mut conn).await;
    let listed: HashSet<String> = TENANT_TABLES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(live, listed, "TENANT_TABLES must list every tenant table");
    let mut references = 0;
    for (i, table) in TENANT_TABLES.iter().enumerate() {
        for parent in parents(&mut conn, table).await {
            references += 1;
            let at = TENANT_TABLES.iter().position(|t| *t == parent);
            assert!(
                at.is_some_and(|at| at <= i),
                "{table} references {parent}, which must come first"
            );
        }
    }
    // The catalog query found the foreign keys there are (devices reference users, ...).
    assert!(references > 0);
}

/// `value` with every boolean as the integer SQLite stores it as.
fn booleans_as_integers(value: &mut Value) {
    match value {
        Value::Bool(b) => *value = json!(i64::from(*b)),
        Value::Array(items) => items.iter_mut().for_each(booleans_as_integers),
        Value::Object(map) => map.values_mut().for_each(booleans_as_integers),
        _ => {}
    }
}

#[tokio::test]
async fn tenants_move_from_sqlite_to_postgres_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sqlite, source) = open(dir.path(), "source").await;
    fill(dir.path(), "source", source.as_ref()).await;
    let exported = export_tables(source.as_ref()).await.expect("export");

    let database = TestDb::create().await;
    let url = database.url();
    let postgres = PostgresBackend::open(&url, PostgresOptions::default())
        .await
        .expect("open PostgreSQL backend");
    let pg = postgres
        .open_tenant("tpg")
        .await
        .expect("PostgreSQL tenant");

    // Refused input writes nothing there either.
    let mut duplicate = exported.clone();
    duplicate.insert(2, exported[1].clone());
    let refused = import_tables(pg.as_ref(), &duplicate).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
    assert_eq!(user_count(pg.as_ref()).await, 0);

    import_tables(pg.as_ref(), &through_json(&exported))
        .await
        .expect("import into PostgreSQL");
    let from_pg = export_tables(pg.as_ref())
        .await
        .expect("export from PostgreSQL");
    // Booleans come back as booleans; everything else exactly as SQLite had it.
    assert_eq!(
        column(table(&from_pg, "users"), "admin"),
        [json!(true), json!(false)]
    );
    let mut normalized = serde_json::to_value(&from_pg).expect("json");
    booleans_as_integers(&mut normalized);
    assert_eq!(normalized, serde_json::to_value(&exported).expect("json"));
    assert_eq!(
        pg.signing_keys().await.expect("keys"),
        source.signing_keys().await.expect("keys")
    );
    assert!(
        pg.access_token("hash-of-bob")
            .await
            .expect("token")
            .is_some()
    );
    assert_eq!(pg.stream_reserved().await.expect("stream"), 2000);
    assert_same_federation_queues(source.as_ref(), pg.as_ref()).await;

    // Identity columns continue after the imported ids.
    let mut raw_pg = database.connect().await;
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO t_tpg.one_time_keys (localpart, device_id, algorithm, key_id, key_json) \
         VALUES ('alice', 'ALICEDEVICE', 'signed_curve25519', 'signed_curve25519:NEW', '{}') \
         RETURNING id",
    )
    .fetch_one(&mut raw_pg)
    .await
    .expect("a new one-time key");
    assert_eq!(next, 43);
    sqlx::query("DELETE FROM t_tpg.one_time_keys WHERE id = 43")
        .execute(&mut raw_pg)
        .await
        .expect("delete it again");
    raw_pg.close().await.expect("close");

    // PostgreSQL to PostgreSQL keeps the booleans, and back to SQLite gives the original.
    let pg_copy = postgres.open_tenant("tcopy").await.expect("second tenant");
    import_tables(pg_copy.as_ref(), &through_json(&from_pg))
        .await
        .expect("import PostgreSQL rows into PostgreSQL");
    assert_eq!(
        export_tables(pg_copy.as_ref()).await.expect("export"),
        from_pg
    );
    let back = sqlite.open_tenant("back").await.expect("SQLite tenant");
    import_tables(back.as_ref(), &through_json(&from_pg))
        .await
        .expect("import PostgreSQL rows into SQLite");
    assert_eq!(
        export_tables(back.as_ref()).await.expect("export"),
        exported
    );

    postgres.close().await;
    source.close().await;
    back.close().await;
    sqlite.close().await;
}

/// Records every chunk's table and size, and adds a user once the first chunk came, to see
/// that the export reads from the snapshot it started with.
struct Watching<'a> {
    store: &'a dyn TenantStore,
    chunks: Vec<(String, usize, usize)>,
}

#[async_trait::async_trait]
impl ChunkSink for Watching<'_> {
    async fn put(&mut self, chunk: TableRows) -> maas_store::Result<()> {
        if self.chunks.is_empty() {
            let late = support::user("late");
            assert!(
                self.store
                    .insert_user(&late, None)
                    .await
                    .expect("late user")
            );
        }
        let bytes = serde_json::to_string(&chunk.rows).expect("rows").len();
        self.chunks.push((chunk.table, chunk.rows.len(), bytes));
        Ok(())
    }
}

/// Tables come chunk by chunk, each at most `EXPORT_CHUNK_ROWS` rows and about
/// `EXPORT_CHUNK_BYTES` (a chunk ends at the row that passes the mark), all from the snapshot
/// taken when the export began.
async fn exports_come_in_bounded_chunks_from_one_snapshot(store: &dyn TenantStore) {
    insert_users(store, 2500).await;
    let big = "x".repeat(60_000);
    for i in 0..40 {
        store
            .set_account_data(&maas_store::AccountDataRecord {
                localpart: "u0000".into(),
                room_id: None,
                data_type: format!("org.example.big.{i}"),
                content: format!("{{\"pad\":\"{big}\"}}"),
                stream: i + 1,
            })
            .await
            .expect("account data");
    }
    let mut sink = Watching {
        store,
        chunks: Vec::new(),
    };
    store.export_tables(&mut sink).await.expect("export");

    let rows_of = |table: &str| -> Vec<usize> {
        sink.chunks
            .iter()
            .filter(|(t, _, _)| t == table)
            .map(|(_, rows, _)| *rows)
            .collect()
    };
    // The late user is not in the snapshot.
    assert_eq!(rows_of("users"), [1000, 1000, 500]);
    assert!(store.user("late").await.expect("user").is_some());
    // 40 rows of 60 KB: cut by size, well before 1000 rows.
    let account_data = rows_of("account_data");
    assert!(account_data.len() >= 2, "{account_data:?}");
    for (table, rows, bytes) in &sink.chunks {
        assert!(*rows <= EXPORT_CHUNK_ROWS, "{table}: {rows} rows");
        assert!(
            *bytes < EXPORT_CHUNK_BYTES + 70_000,
            "{table}: {bytes} bytes"
        );
    }
    // Every table once at least, in order, each table's chunks together.
    let mut order: Vec<&str> = sink.chunks.iter().map(|(t, _, _)| t.as_str()).collect();
    order.dedup();
    assert_eq!(order, TENANT_TABLES);
}

/// Users `u0000`, `u0001`, … up to `count`.
async fn insert_users(store: &dyn TenantStore, count: u32) {
    for i in 0..count {
        let user = support::user(&format!("u{i:04}"));
        assert!(store.insert_user(&user, None).await.expect("user"));
    }
}

/// A sink that refuses after `take` chunks.
struct Refusing(usize);

#[async_trait::async_trait]
impl ChunkSink for Refusing {
    async fn put(&mut self, _chunk: TableRows) -> maas_store::Result<()> {
        if self.0 == 0 {
            return Err(StoreError::NotFound("the reader".into()));
        }
        self.0 -= 1;
        Ok(())
    }
}

/// A reader that goes away ends the export with its error and releases the snapshot: the
/// store writes and exports as before.
async fn an_export_ends_when_its_reader_goes_away(store: &dyn TenantStore) {
    insert_users(store, 1500).await;
    for take in [0, 2] {
        let result = store.export_tables(&mut Refusing(take)).await;
        assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    }
    assert!(
        store
            .insert_user(&support::user("after"), None)
            .await
            .expect("user")
    );
    let users = export_tables(store).await.expect("export");
    assert_eq!(users[1].rows.len(), 1501);
}
