//! The PostgreSQL backend's control plane and `TenantStore` body, against a database of its own
//! per test (created on the local server, dropped when the test ends); the same cases as the
//! SQLite tests, plus what only a shared server can get wrong (schemas, concurrent nodes).

use std::path::Path;
use std::sync::Arc;

use maas_store::postgres::{PostgresBackend, PostgresOptions};
use maas_store::{
    AccessTokenRecord, Backend, DeviceRecord, RegistrationPolicy, RegistrationTokenRecord,
    SigningKeyRecord, StoreError, TenantInfo, TenantSettings, TenantStore, UiaSessionRecord,
    UserRecord,
};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// The server the tests create their databases on (`.ci/run` starts it).
const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of one test, dropped (with whatever still connects to it) when the test ends,
/// passed or failed.
struct TestDb {
    name: String,
}

impl TestDb {
    async fn create() -> Self {
        use std::hash::BuildHasher;
        // Random per process and per call, so parallel tests and runs never share a database.
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        let name = format!("maas_test_{random:016x}");
        let mut server = PgConnection::connect(SERVER_URL)
            .await
            .expect("connect to PostgreSQL on 127.0.0.1:5432");
        server
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("create test database");
        server.close().await.expect("close");
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// A raw connection, for what the traits can't do (planting rows, damaging data,
    /// looking at the catalog).
    async fn raw(&self) -> PgConnection {
        PgConnection::connect(&self.url())
            .await
            .expect("raw connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // The test's runtime can't block on a future from within: a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut server = PgConnection::connect(SERVER_URL).await?;
                server
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .await?;
                server.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

fn tenant(id: &str, server_name: &str, hosts: &[&str]) -> TenantInfo {
    TenantInfo {
        tenant_id: id.to_owned(),
        server_name: server_name.to_owned(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        settings: TenantSettings::default(),
        created_ts: 1_000,
    }
}

fn user(localpart: &str) -> UserRecord {
    UserRecord {
        localpart: localpart.to_owned(),
        password_hash: Some("$argon2id$hash".to_owned()),
        admin: false,
        guest: false,
        deactivated: false,
        displayname: Some(format!("{localpart} display")),
        avatar_url: Some("mxc://example.org/avatar".to_owned()),
        created_ts: 2_000,
    }
}

fn device(localpart: &str, device_id: &str, name: Option<&str>) -> DeviceRecord {
    DeviceRecord {
        localpart: localpart.to_owned(),
        device_id: device_id.to_owned(),
        display_name: name.map(str::to_owned),
        last_seen_ts: None,
        last_seen_ip: None,
        created_ts: 3_000,
    }
}

fn token(hash: &str, localpart: &str, device_id: &str) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash: hash.to_owned(),
        localpart: localpart.to_owned(),
        device_id: device_id.to_owned(),
        created_ts: 4_000,
    }
}

fn uia(session_id: &str, registration_token: Option<&str>, created_ts: i64) -> UiaSessionRecord {
    UiaSessionRecord {
        session_id: session_id.to_owned(),
        purpose: "register".to_owned(),
        completed: Vec::new(),
        registration_token: registration_token.map(str::to_owned),
        created_ts,
    }
}

fn reg_token(
    token: &str,
    uses_allowed: Option<u64>,
    expiry_time: Option<i64>,
) -> RegistrationTokenRecord {
    RegistrationTokenRecord {
        token: token.to_owned(),
        uses_allowed,
        completed: 0,
        expiry_time,
        created_ts: 5_000,
    }
}

async fn backend(db: &TestDb) -> PostgresBackend {
    PostgresBackend::open(&db.url(), PostgresOptions::default())
        .await
        .expect("open backend")
}

/// A fresh database with the tenant `t1` opened in it.
async fn tenant_store() -> (TestDb, PostgresBackend, Arc<dyn TenantStore>) {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let store = backend.open_tenant("t1").await.expect("open tenant");
    (db, backend, store)
}

async fn schema_exists(conn: &mut PgConnection, schema: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn tenants_crud() {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let control = backend.control();
    assert!(schema_exists(&mut db.raw().await, "maas_control").await);

    let mut acme = tenant(
        "acme",
        "acme.example",
        &["matrix.acme.example", "acme.example"],
    );
    acme.settings.registration = RegistrationPolicy::Token;
    acme.settings.max_users = Some(10);
    control.insert_tenant(&acme).await.unwrap();
    let other = tenant("other", "other.example", &["other.example"]);
    control.insert_tenant(&other).await.unwrap();
    let bare = tenant("bare", "bare.example", &[]);
    control.insert_tenant(&bare).await.unwrap();

    assert_eq!(control.tenant("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(
        control.tenant_by_server_name("acme.example").await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(control.tenant("bare").await.unwrap(), Some(bare.clone()));
    assert_eq!(control.tenant("nobody").await.unwrap(), None);
    assert_eq!(
        control
            .tenant_by_server_name("nobody.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        control.tenants().await.unwrap(),
        vec![acme.clone(), bare.clone(), other.clone()]
    );

    control.delete_tenant("other").await.unwrap();
    control.delete_tenant("bare").await.unwrap();
    assert_eq!(control.tenants().await.unwrap(), vec![acme.clone()]);
    assert!(matches!(
        control.delete_tenant("other").await,
        Err(StoreError::NotFound(_))
    ));

    // The hosts of a deleted tenant are free again.
    control
        .insert_tenant(&tenant("again", "again.example", &["other.example"]))
        .await
        .unwrap();
    backend.close().await;
}

#[tokio::test]
async fn tenant_conflicts() {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let control = backend.control();
    control
        .insert_tenant(&tenant("a", "a.example", &["a.example", "www.a.example"]))
        .await
        .unwrap();

    let same_id = tenant("a", "z.example", &[]);
    let same_name = tenant("b", "a.example", &["b.example"]);
    let same_host = tenant("c", "c.example", &["c.example", "www.a.example"]);
    let host_twice = tenant("d", "d.example", &["d.example", "d.example"]);
    for conflicting in [same_id, same_name, same_host, host_twice] {
        let err = control.insert_tenant(&conflicting).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // Nothing of a refused tenant stays behind.
        if conflicting.tenant_id != "a" {
            assert_eq!(control.tenant(&conflicting.tenant_id).await.unwrap(), None);
        }
    }
    let err = control
        .insert_tenant(&tenant("a", "z.example", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("tenant a")),
        "{err:?}"
    );
    let err = control
        .insert_tenant(&tenant("b", "a.example", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("server name")),
        "{err:?}"
    );
    let err = control
        .insert_tenant(&tenant("c", "c.example", &["a.example"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("host")),
        "{err:?}"
    );
    assert_eq!(control.tenants().await.unwrap().len(), 1);
    // The refused hosts were rolled back with their tenants: they are free.
    control
        .insert_tenant(&tenant("c", "c.example", &["c.example", "d.example"]))
        .await
        .unwrap();
}

#[tokio::test]
async fn update_tenant_replaces_hosts_and_settings() {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let control = backend.control();
    let mut a = tenant("a", "a.example", &["a.example", "old.a.example"]);
    control.insert_tenant(&a).await.unwrap();
    control
        .insert_tenant(&tenant("b", "b.example", &["b.example"]))
        .await
        .unwrap();

    a.hosts = vec!["new.a.example".to_owned(), "a.example".to_owned()];
    a.settings.suspended = true;
    a.settings.client_base_url = Some("https://a.example".to_owned());
    control.update_tenant(&a).await.unwrap();
    let stored = control.tenant("a").await.unwrap().unwrap();
    assert_eq!(stored, a);
    assert_eq!(
        stored.hosts[0], "new.a.example",
        "the first host stays first"
    );

    // The host dropped by the update is free for another tenant.
    control
        .insert_tenant(&tenant("c", "c.example", &["old.a.example"]))
        .await
        .unwrap();

    // A host of another tenant is refused and the update leaves nothing half done.
    let mut taken = a.clone();
    taken.hosts.push("b.example".to_owned());
    taken.settings.suspended = false;
    let err = control.update_tenant(&taken).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("host")),
        "{err:?}"
    );
    assert_eq!(control.tenant("a").await.unwrap(), Some(a.clone()));

    let missing = tenant("zzz", "zzz.example", &[]);
    assert!(matches!(
        control.update_tenant(&missing).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn corrupt_settings_are_reported() {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let control = backend.control();
    control
        .insert_tenant(&tenant("a", "a.example", &[]))
        .await
        .unwrap();

    sqlx::query("UPDATE maas_control.tenants SET settings = '{not json' WHERE tenant_id = 'a'")
        .execute(&mut db.raw().await)
        .await
        .unwrap();
    assert!(matches!(
        control.tenant("a").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        control.tenants().await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn signing_keys() {
    let (_db, _backend, store) = tenant_store().await;
    let key = SigningKeyRecord {
        key_id: "ed25519:a".to_owned(),
        pkcs8: vec![0, 1, 2, 255],
        created_ts: 1,
    };
    let older = SigningKeyRecord {
        key_id: "ed25519:z".to_owned(),
        pkcs8: vec![9; 48],
        created_ts: 0,
    };
    store.insert_signing_key(&key).await.unwrap();
    store.insert_signing_key(&older).await.unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap(),
        vec![older.clone(), key.clone()]
    );
    assert!(matches!(
        store.insert_signing_key(&key).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn users() {
    let (_db, _backend, store) = tenant_store().await;
    for name in ["carol", "alice", "bob"] {
        assert!(store.insert_user(&user(name), None).await.unwrap());
    }
    let err = store.insert_user(&user("alice"), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    assert_eq!(store.user("alice").await.unwrap(), Some(user("alice")));
    assert_eq!(store.user("nobody").await.unwrap(), None);
    assert_eq!(store.count_users().await.unwrap(), 3);

    let names = |users: Vec<UserRecord>| users.into_iter().map(|u| u.localpart).collect::<Vec<_>>();
    assert_eq!(
        names(store.users(None, 10).await.unwrap()),
        ["alice", "bob", "carol"]
    );
    assert_eq!(names(store.users(None, 2).await.unwrap()), ["alice", "bob"]);
    assert_eq!(
        names(store.users(Some("alice"), 10).await.unwrap()),
        ["bob", "carol"]
    );
    assert_eq!(names(store.users(Some("b"), 1).await.unwrap()), ["bob"]);
    assert!(store.users(Some("carol"), 10).await.unwrap().is_empty());

    store.set_password_hash("bob", None).await.unwrap();
    store.set_admin("bob", true).await.unwrap();
    store.set_displayname("bob", Some("Bobby")).await.unwrap();
    store.set_avatar_url("bob", None).await.unwrap();
    let bob = store.user("bob").await.unwrap().unwrap();
    assert_eq!(
        bob,
        UserRecord {
            password_hash: None,
            admin: true,
            displayname: Some("Bobby".to_owned()),
            avatar_url: None,
            ..user("bob")
        }
    );
    assert!(matches!(
        store.set_admin("nobody", true).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_displayname("nobody", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_password_hash("nobody", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_avatar_url("nobody", None).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn users_are_ordered_by_bytes() {
    // Whatever the database's locale, paging follows byte order as on SQLite.
    let (_db, _backend, store) = tenant_store().await;
    for name in ["b", "_x", "a.b", "ab", "A", "z9", "z10"] {
        assert!(store.insert_user(&user(name), None).await.unwrap());
    }
    let mut page = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let users = store.users(from.as_deref(), 2).await.unwrap();
        let Some(last) = users.last() else { break };
        from = Some(last.localpart.clone());
        page.extend(users.into_iter().map(|u| u.localpart));
    }
    assert_eq!(page, ["A", "_x", "a.b", "ab", "b", "z10", "z9"]);
}

#[tokio::test]
async fn search_users() {
    let (_db, _backend, store) = tenant_store().await;
    let names = |users: Vec<UserRecord>| users.into_iter().map(|u| u.localpart).collect::<Vec<_>>();
    for name in ["alice", "malice", "bob", "al_x", "al%y", "back\\slash"] {
        store.insert_user(&user(name), None).await.unwrap();
    }
    store
        .set_displayname("bob", Some("Alice's friend Bób"))
        .await
        .unwrap();
    let guest = UserRecord {
        guest: true,
        ..user("alice_guest")
    };
    store.insert_user(&guest, None).await.unwrap();
    store.insert_user(&user("alice_gone"), None).await.unwrap();
    store.deactivate_user("alice_gone").await.unwrap();

    // Localpart or display name, case-insensitively; no guests, no deactivated users.
    assert_eq!(
        names(store.search_users("ALIC", 10).await.unwrap()),
        ["alice", "bob", "malice"]
    );
    assert_eq!(
        names(store.search_users("alic", 2).await.unwrap()),
        ["alice", "bob"]
    );
    // Wildcards and the escape character are matched literally.
    assert_eq!(names(store.search_users("l_", 10).await.unwrap()), ["al_x"]);
    assert_eq!(names(store.search_users("l%", 10).await.unwrap()), ["al%y"]);
    assert_eq!(
        names(store.search_users("k\\s", 10).await.unwrap()),
        ["back\\slash"]
    );
    assert_eq!(names(store.search_users("%", 10).await.unwrap()), ["al%y"]);
    assert!(store.search_users("nobody", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn max_users_quota() {
    let (_db, _backend, store) = tenant_store().await;
    assert!(store.insert_user(&user("a"), Some(2)).await.unwrap());
    assert!(store.insert_user(&user("b"), Some(2)).await.unwrap());
    assert!(!store.insert_user(&user("c"), Some(2)).await.unwrap());
    assert_eq!(store.user("c").await.unwrap(), None);
    // A taken name is reported as such even when the tenant is full.
    let err = store.insert_user(&user("a"), Some(2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!store.insert_user(&user("c"), Some(0)).await.unwrap());
    assert!(store.insert_user(&user("c"), Some(u64::MAX)).await.unwrap());
    assert!(store.insert_user(&user("d"), None).await.unwrap());
    assert_eq!(store.count_users().await.unwrap(), 4);
}

/// Concurrent registrations, each on a connection of its own, never overshoot the quota.
async fn quota_holds_under_concurrency(options: PostgresOptions) {
    let db = TestDb::create().await;
    let backend = PostgresBackend::open(&db.url(), options).await.unwrap();
    let store = backend.open_tenant("t1").await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_user(&user(&format!("u{i}")), Some(7)).await })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 7);
    assert_eq!(store.count_users().await.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_users_quota_holds_under_concurrency() {
    quota_holds_under_concurrency(PostgresOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_users_quota_holds_with_one_connection_per_tenant() {
    // Nothing waits for a second connection of its own tenant while holding one.
    quota_holds_under_concurrency(PostgresOptions {
        max_connections: 4,
        per_tenant_connections: 1,
    })
    .await;
}

#[tokio::test]
async fn sessions_devices_and_tokens() {
    let (_db, _backend, store) = tenant_store().await;
    store.insert_user(&user("alice"), None).await.unwrap();

    store
        .start_session(&device("alice", "D1", None), &token("h1", "alice", "D1"))
        .await
        .unwrap();
    assert_eq!(
        store.access_token("h1").await.unwrap(),
        Some(token("h1", "alice", "D1"))
    );
    assert_eq!(
        store.device("alice", "D1").await.unwrap(),
        Some(device("alice", "D1", None))
    );

    // Logging in again on the same device replaces its token; a missing name is filled in.
    store
        .start_session(
            &device("alice", "D1", Some("Phone")),
            &token("h2", "alice", "D1"),
        )
        .await
        .unwrap();
    assert_eq!(store.access_token("h1").await.unwrap(), None);
    assert_eq!(
        store.access_token("h2").await.unwrap(),
        Some(token("h2", "alice", "D1"))
    );
    let d1 = store.device("alice", "D1").await.unwrap().unwrap();
    assert_eq!(d1.display_name.as_deref(), Some("Phone"));

    // An existing name is kept.
    store
        .start_session(
            &device("alice", "D1", Some("Other")),
            &token("h3", "alice", "D1"),
        )
        .await
        .unwrap();
    let d1 = store.device("alice", "D1").await.unwrap().unwrap();
    assert_eq!(d1.display_name.as_deref(), Some("Phone"));

    // A token hash already in use by another device is a conflict and changes nothing.
    store
        .start_session(&device("alice", "D2", None), &token("h4", "alice", "D2"))
        .await
        .unwrap();
    let err = store
        .start_session(&device("alice", "D3", None), &token("h3", "alice", "D3"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.device("alice", "D3").await.unwrap(), None);
    assert_eq!(
        store.access_token("h3").await.unwrap(),
        Some(token("h3", "alice", "D1"))
    );

    // Sessions only exist for users that do.
    let err = store
        .start_session(&device("ghost", "D1", None), &token("h9", "ghost", "D1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    // A token for another device than the one created is refused too.
    let err = store
        .start_session(&device("alice", "D5", None), &token("h8", "alice", "D6"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.device("alice", "D5").await.unwrap(), None);

    assert!(
        store
            .set_device_display_name("alice", "D2", Some("Laptop"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_device_display_name("alice", "nope", Some("x"))
            .await
            .unwrap()
    );
    store
        .touch_device("alice", "D2", 9_000, "192.0.2.1")
        .await
        .unwrap();
    store
        .touch_device("alice", "nope", 9_000, "192.0.2.1")
        .await
        .unwrap();
    let d2 = store.device("alice", "D2").await.unwrap().unwrap();
    assert_eq!(d2.display_name.as_deref(), Some("Laptop"));
    assert_eq!(d2.last_seen_ts, Some(9_000));
    assert_eq!(d2.last_seen_ip.as_deref(), Some("192.0.2.1"));

    let ids =
        |devices: Vec<DeviceRecord>| devices.into_iter().map(|d| d.device_id).collect::<Vec<_>>();
    assert_eq!(ids(store.devices("alice").await.unwrap()), ["D1", "D2"]);
    assert!(store.devices("bob").await.unwrap().is_empty());

    let deleted = store
        .delete_devices(
            "alice",
            &["D2".to_owned(), "nope".to_owned(), "D2".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(deleted, ["D2"]);
    assert_eq!(store.access_token("h4").await.unwrap(), None);
    assert_eq!(ids(store.devices("alice").await.unwrap()), ["D1"]);
    assert!(store.delete_devices("alice", &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_devices_keeps_the_callers_order() {
    let (_db, _backend, store) = tenant_store().await;
    store.insert_user(&user("alice"), None).await.unwrap();
    for (i, d) in ["A", "B", "C", "D"].into_iter().enumerate() {
        store
            .start_session(
                &device("alice", d, None),
                &token(&format!("t{i}"), "alice", d),
            )
            .await
            .unwrap();
    }
    let asked = ["D", "x", "B", "A", "D"].map(str::to_owned);
    assert_eq!(
        store.delete_devices("alice", &asked).await.unwrap(),
        ["D", "B", "A"]
    );
    assert_eq!(store.devices("alice").await.unwrap().len(), 1);
}

#[tokio::test]
async fn delete_devices_except() {
    let (_db, _backend, store) = tenant_store().await;
    store.insert_user(&user("alice"), None).await.unwrap();
    store.insert_user(&user("bob"), None).await.unwrap();
    for (i, d) in ["A", "B", "C"].into_iter().enumerate() {
        store
            .start_session(
                &device("alice", d, None),
                &token(&format!("a{i}"), "alice", d),
            )
            .await
            .unwrap();
    }
    store
        .start_session(&device("bob", "A", None), &token("b0", "bob", "A"))
        .await
        .unwrap();

    store
        .delete_devices_except("alice", Some("B"))
        .await
        .unwrap();
    let alice: Vec<_> = store
        .devices("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert_eq!(alice, ["B"]);
    assert_eq!(store.access_token("a0").await.unwrap(), None);
    assert!(store.access_token("a1").await.unwrap().is_some());

    store.delete_devices_except("alice", None).await.unwrap();
    assert!(store.devices("alice").await.unwrap().is_empty());
    assert_eq!(store.access_token("a1").await.unwrap(), None);
    // Other users are untouched.
    assert!(store.access_token("b0").await.unwrap().is_some());
    assert_eq!(store.devices("bob").await.unwrap().len(), 1);
}

#[tokio::test]
async fn deactivate_user() {
    let (db, _backend, store) = tenant_store().await;
    store.insert_user(&user("alice"), None).await.unwrap();
    store.insert_user(&user("bob"), None).await.unwrap();
    store
        .start_session(&device("alice", "D1", None), &token("h1", "alice", "D1"))
        .await
        .unwrap();
    store
        .start_session(&device("bob", "D1", None), &token("h2", "bob", "D1"))
        .await
        .unwrap();

    let mut conn = db.raw().await;
    for (localpart, address) in [("alice", "alice@example.org"), ("bob", "bob@example.org")] {
        sqlx::query(
            "INSERT INTO t_t1.user_threepids (medium, address, localpart, validated_ts, \
                                              added_ts) \
             VALUES ('email', $1, $2, 1, 2)",
        )
        .bind(address)
        .bind(localpart)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    assert_eq!(store.threepids("alice").await.unwrap().len(), 1);

    store.deactivate_user("alice").await.unwrap();
    let alice = store.user("alice").await.unwrap().unwrap();
    assert!(alice.deactivated);
    assert_eq!(
        (alice.password_hash, alice.displayname, alice.avatar_url),
        (None, None, None)
    );
    assert!(store.devices("alice").await.unwrap().is_empty());
    assert_eq!(store.access_token("h1").await.unwrap(), None);
    assert!(store.threepids("alice").await.unwrap().is_empty());
    // The account stays, so its name can't be taken again.
    assert!(matches!(
        store.insert_user(&user("alice"), None).await,
        Err(StoreError::Conflict(_))
    ));

    assert!(store.access_token("h2").await.unwrap().is_some());
    assert_eq!(store.threepids("bob").await.unwrap().len(), 1);
    assert!(matches!(
        store.deactivate_user("nobody").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn uia_sessions() {
    let (_db, _backend, store) = tenant_store().await;
    let mut s1 = uia("s1", None, 100);
    store.insert_uia_session(&s1).await.unwrap();
    assert!(matches!(
        store.insert_uia_session(&s1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.uia_session("s1").await.unwrap(), Some(s1.clone()));
    assert_eq!(store.uia_session("nope").await.unwrap(), None);

    s1.completed = vec![
        "m.login.dummy".to_owned(),
        "m.login.registration_token".to_owned(),
    ];
    s1.registration_token = Some("tok".to_owned());
    store.update_uia_session(&s1).await.unwrap();
    assert_eq!(store.uia_session("s1").await.unwrap(), Some(s1.clone()));
    assert!(matches!(
        store.update_uia_session(&uia("nope", None, 1)).await,
        Err(StoreError::NotFound(_))
    ));

    store
        .insert_uia_session(&uia("s2", None, 200))
        .await
        .unwrap();
    store
        .insert_uia_session(&uia("s3", None, 300))
        .await
        .unwrap();
    store.delete_uia_sessions_before(200).await.unwrap();
    assert_eq!(store.uia_session("s1").await.unwrap(), None);
    assert!(store.uia_session("s2").await.unwrap().is_some());
    store.delete_uia_session("s2").await.unwrap();
    store.delete_uia_session("s2").await.unwrap();
    assert_eq!(store.uia_session("s2").await.unwrap(), None);
    assert!(store.uia_session("s3").await.unwrap().is_some());
}

#[tokio::test]
async fn corrupt_uia_stages_are_reported() {
    let (db, _backend, store) = tenant_store().await;
    store.insert_uia_session(&uia("s1", None, 1)).await.unwrap();
    sqlx::query("UPDATE t_t1.uia_sessions SET completed = '[1' WHERE session_id = 's1'")
        .execute(&mut db.raw().await)
        .await
        .unwrap();
    assert!(matches!(
        store.uia_session("s1").await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn registration_tokens() {
    let (_db, _backend, store) = tenant_store().await;
    let twice = reg_token("twice", Some(2), None);
    store.insert_registration_token(&twice).await.unwrap();
    store
        .insert_registration_token(&reg_token("forever", None, None))
        .await
        .unwrap();
    store
        .insert_registration_token(&reg_token("expiring", None, Some(1_000)))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_registration_token(&twice).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.registration_token("twice").await.unwrap(),
        Some(twice.clone())
    );
    assert_eq!(store.registration_token("nope").await.unwrap(), None);
    let all: Vec<_> = store
        .registration_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token)
        .collect();
    assert_eq!(all, ["expiring", "forever", "twice"]);

    assert!(
        store
            .complete_registration_token_use("twice", 0)
            .await
            .unwrap()
    );
    assert!(
        store
            .complete_registration_token_use("twice", 0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_registration_token_use("twice", 0)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .registration_token("twice")
            .await
            .unwrap()
            .unwrap()
            .completed,
        2
    );

    for _ in 0..3 {
        assert!(
            store
                .complete_registration_token_use("forever", 0)
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .complete_registration_token_use("expiring", 999)
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_registration_token_use("expiring", 1_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_registration_token_use("nope", 0)
            .await
            .unwrap()
    );

    store
        .insert_uia_session(&uia("old", Some("forever"), 100))
        .await
        .unwrap();
    store
        .insert_uia_session(&uia("new", Some("forever"), 500))
        .await
        .unwrap();
    store
        .insert_uia_session(&uia("newer", Some("forever"), 600))
        .await
        .unwrap();
    store
        .insert_uia_session(&uia("other", Some("twice"), 600))
        .await
        .unwrap();
    store
        .insert_uia_session(&uia("none", None, 600))
        .await
        .unwrap();
    assert_eq!(
        store
            .pending_registration_token_uses("forever", 500)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .pending_registration_token_uses("forever", 0)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .pending_registration_token_uses("nope", 0)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_token_uses_hold_under_concurrency() {
    let (_db, _backend, store) = tenant_store().await;
    store
        .insert_registration_token(&reg_token("three", Some(3), None))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.complete_registration_token_use("three", 0).await })
        })
        .collect();
    let mut completed = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            completed += 1;
        }
    }
    assert_eq!(completed, 3);
    let stored = store.registration_token("three").await.unwrap().unwrap();
    assert_eq!(stored.completed, 3);
}

#[tokio::test]
async fn destroy_tenant_drops_its_schema() {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let store = backend.open_tenant("gone").await.unwrap();
    store.insert_user(&user("alice"), None).await.unwrap();
    let mut conn = db.raw().await;
    assert!(schema_exists(&mut conn, "t_gone").await);
    store.close().await;

    backend.destroy_tenant("gone").await.unwrap();
    assert!(!schema_exists(&mut conn, "t_gone").await);
    backend.destroy_tenant("gone").await.unwrap();
    assert!(schema_exists(&mut conn, "maas_control").await);

    // A tenant opened again under the same id starts empty.
    let store = backend.open_tenant("gone").await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    store.insert_user(&user("alice"), None).await.unwrap();
}

#[tokio::test]
async fn tenant_ids_are_checked() {
    let db = TestDb::create().await;
    let backend = backend(&db).await;
    let long = "a".repeat(51);
    for bad in [
        "",
        "A",
        "a-b",
        "a.b",
        "../x",
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
    let mut conn = db.raw().await;
    assert!(schema_exists(&mut conn, "maas_control").await);
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(schemas, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_are_isolated() {
    let db = TestDb::create().await;
    // Few connections, so that both tenants keep getting the same pooled ones.
    let backend = PostgresBackend::open(
        &db.url(),
        PostgresOptions {
            max_connections: 2,
            per_tenant_connections: 2,
        },
    )
    .await
    .unwrap();
    let a = backend.open_tenant("a").await.unwrap();
    let b = backend.open_tenant("b").await.unwrap();
    a.insert_user(&user("alice"), None).await.unwrap();
    a.start_session(&device("alice", "D", None), &token("h", "alice", "D"))
        .await
        .unwrap();
    assert_eq!(b.user("alice").await.unwrap(), None);
    assert_eq!(b.access_token("h").await.unwrap(), None);
    b.insert_user(&user("alice"), None).await.unwrap();
    assert_eq!(b.access_token("h").await.unwrap(), None);

    // Interleaved on shared connections, each tenant still sees only its own rows.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (mine, theirs, name) = if i % 2 == 0 {
                (a.clone(), b.clone(), format!("a{i}"))
            } else {
                (b.clone(), a.clone(), format!("b{i}"))
            };
            tokio::spawn(async move {
                mine.insert_user(&user(&name), None).await.unwrap();
                assert!(mine.user(&name).await.unwrap().is_some());
                assert!(theirs.user(&name).await.unwrap().is_none());
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(a.count_users().await.unwrap(), 21);
    assert_eq!(b.count_users().await.unwrap(), 21);
    let users = a.users(None, 100).await.unwrap();
    assert!(users.iter().all(|u| u.localpart.starts_with('a')));
}

#[tokio::test]
async fn data_survives_reopening() {
    let db = TestDb::create().await;
    let acme = tenant("acme", "acme.example", &["acme.example", "m.acme.example"]);
    {
        let backend = backend(&db).await;
        let store = backend.open_tenant("t1").await.unwrap();
        backend.control().insert_tenant(&acme).await.unwrap();
        store.insert_user(&user("alice"), None).await.unwrap();
        store
            .start_session(
                &device("alice", "D", Some("Phone")),
                &token("h", "alice", "D"),
            )
            .await
            .unwrap();
        store
            .insert_registration_token(&reg_token("tok", Some(1), None))
            .await
            .unwrap();
        store.close().await;
        backend.close().await;
    }
    // Reopening runs the migrations again, which must find nothing to do.
    for _ in 0..2 {
        let backend = backend(&db).await;
        let store = backend.open_tenant("t1").await.unwrap();
        assert_eq!(
            backend.control().tenant("acme").await.unwrap(),
            Some(acme.clone())
        );
        assert_eq!(store.user("alice").await.unwrap(), Some(user("alice")));
        assert_eq!(
            store.access_token("h").await.unwrap(),
            Some(token("h", "alice", "D"))
        );
        assert!(store.registration_token("tok").await.unwrap().is_some());
        store.close().await;
        backend.close().await;
    }
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
    let mut conn = db.raw().await;
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
    let mut other = db.raw().await;
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
        .execute(&mut db.raw().await)
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
