//! The SQLite backend against real database files in a temporary directory.

use std::path::Path;
use std::sync::Arc;

use maas_store::sqlite::SqliteBackend;
use maas_store::{
    AccessTokenRecord, Backend, DeviceRecord, RegistrationPolicy, RegistrationTokenRecord,
    SigningKeyRecord, StoreError, TenantInfo, TenantSettings, TenantStore, UiaSessionRecord,
    UserRecord,
};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

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

async fn backend(dir: &Path) -> SqliteBackend {
    SqliteBackend::open(dir).await.expect("open backend")
}

async fn tenant_store(dir: &Path) -> (SqliteBackend, Arc<dyn TenantStore>) {
    let backend = backend(dir).await;
    let store = backend.open_tenant("t1").await.expect("open tenant");
    (backend, store)
}

/// A raw connection, for what the traits can't do (planting threepids, damaging data).
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true),
    )
    .await
    .expect("raw connection")
}

#[tokio::test]
async fn tenants_crud() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(dir.path()).await;
    let control = backend.control();
    assert!(dir.path().join("control.db").is_file());

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

    assert_eq!(control.tenant("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(
        control.tenant_by_server_name("acme.example").await.unwrap(),
        Some(acme.clone())
    );
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
        vec![acme.clone(), other.clone()]
    );

    control.delete_tenant("other").await.unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(dir.path()).await;
    let control = backend.control();
    control
        .insert_tenant(&tenant("a", "a.example", &["a.example", "www.a.example"]))
        .await
        .unwrap();

    let same_id = tenant("a", "z.example", &[]);
    let same_name = tenant("b", "a.example", &["b.example"]);
    let same_host = tenant("c", "c.example", &["c.example", "www.a.example"]);
    for conflicting in [same_id, same_name, same_host] {
        let err = control.insert_tenant(&conflicting).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // Nothing of a refused tenant stays behind.
        if conflicting.tenant_id != "a" {
            assert_eq!(control.tenant(&conflicting.tenant_id).await.unwrap(), None);
        }
    }
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
}

#[tokio::test]
async fn update_tenant_replaces_hosts_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(dir.path()).await;
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
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(control.tenant("a").await.unwrap(), Some(a.clone()));

    let missing = tenant("zzz", "zzz.example", &[]);
    assert!(matches!(
        control.update_tenant(&missing).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn corrupt_settings_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(dir.path()).await;
    let control = backend.control();
    control
        .insert_tenant(&tenant("a", "a.example", &[]))
        .await
        .unwrap();

    let mut conn = raw(&dir.path().join("control.db")).await;
    sqlx::query("UPDATE tenants SET settings = '{not json' WHERE tenant_id = 'a'")
        .execute(&mut conn)
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
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
    let key = SigningKeyRecord {
        key_id: "ed25519:a".to_owned(),
        pkcs8: vec![1, 2, 3],
        created_ts: 1,
    };
    store.insert_signing_key(&key).await.unwrap();
    assert_eq!(store.signing_keys().await.unwrap(), vec![key.clone()]);
    assert!(matches!(
        store.insert_signing_key(&key).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn users() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
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
}

#[tokio::test]
async fn max_users_quota() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
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

#[tokio::test]
async fn max_users_quota_holds_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
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

#[tokio::test]
async fn sessions_devices_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
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

    // Sessions only exist for users that do.
    let err = store
        .start_session(&device("ghost", "D1", None), &token("h9", "ghost", "D1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

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
}

#[tokio::test]
async fn delete_devices_except() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
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
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
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

    let mut conn = raw(&dir.path().join("tenants/t1/homeserver.db")).await;
    for (localpart, address) in [("alice", "alice@example.org"), ("bob", "bob@example.org")] {
        sqlx::query(
            "INSERT INTO user_threepids (medium, address, localpart, validated_ts, added_ts) \
             VALUES ('email', ?, ?, 1, 2)",
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
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
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
async fn registration_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = tenant_store(dir.path()).await;
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

#[tokio::test]
async fn destroy_tenant_removes_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(dir.path()).await;
    let store = backend.open_tenant("gone").await.unwrap();
    store.insert_user(&user("alice"), None).await.unwrap();
    let tenant_dir = dir.path().join("tenants/gone");
    assert!(tenant_dir.join("homeserver.db").is_file());
    store.close().await;

    backend.destroy_tenant("gone").await.unwrap();
    assert!(!tenant_dir.exists());
    backend.destroy_tenant("gone").await.unwrap();

    // A tenant opened again under the same id starts empty.
    let store = backend.open_tenant("gone").await.unwrap();
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
}

#[tokio::test]
async fn tenants_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(dir.path()).await;
    let a = backend.open_tenant("a").await.unwrap();
    let b = backend.open_tenant("b").await.unwrap();
    a.insert_user(&user("alice"), None).await.unwrap();
    a.start_session(&device("alice", "D", None), &token("h", "alice", "D"))
        .await
        .unwrap();
    assert_eq!(b.user("alice").await.unwrap(), None);
    assert_eq!(b.access_token("h").await.unwrap(), None);
    b.insert_user(&user("alice"), None).await.unwrap();
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let acme = tenant("acme", "acme.example", &["acme.example", "m.acme.example"]);
    {
        let (backend, store) = tenant_store(dir.path()).await;
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
        let (backend, store) = tenant_store(dir.path()).await;
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
async fn migrations_are_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let (backend, store) = tenant_store(dir.path()).await;
        store.close().await;
        backend.close().await;
    }
    for (db, migrations) in [
        ("control.db", "control"),
        ("tenants/t1/homeserver.db", "tenant"),
    ] {
        let migrations = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/sqlite")
            .join(migrations);
        let files = std::fs::read_dir(migrations).unwrap().count();
        let mut conn = raw(&dir.path().join(db)).await;
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
