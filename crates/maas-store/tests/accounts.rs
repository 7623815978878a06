//! A tenant's accounts, on both backends: server signing keys, users (paging, search, the
//! `max_users` quota), devices and access tokens, deactivation, user-interactive auth sessions
//! and registration tokens, including what concurrent requests must not break; and what the
//! admin API keeps of users (the filtered list, account states, third-party and external ids,
//! rate limit overrides, puppet tokens).

use std::sync::Arc;

use maas_store::{
    AccountStatesChange, DeviceRecord, ExternalIdRecord, PuppetTokenRecord,
    RateLimitOverrideRecord, SigningKeyRecord, StoreError, TenantStore, ThreepidRecord,
    UiaSessionRecord, UserListQuery, UserOrder, UserRecord,
};

mod support;
use support::{Connections, Fixture, TENANT, device, on_both_backends, reg_token, token, user};

on_both_backends!(signing_keys);
on_both_backends!(users);
on_both_backends!(users_are_ordered_by_bytes);
on_both_backends!(search_users);
on_both_backends!(max_users_quota);
on_both_backends!(max_users_quota_holds_under_concurrency, multi_thread);
on_both_backends!(
    max_users_quota_holds_with_one_connection_per_tenant,
    multi_thread
);
on_both_backends!(sessions_devices_and_tokens);
on_both_backends!(delete_devices_keeps_the_callers_order);
on_both_backends!(delete_devices_except);
on_both_backends!(deactivate_user);
on_both_backends!(uia_sessions);
on_both_backends!(corrupt_uia_stages_are_reported);
on_both_backends!(registration_tokens);
on_both_backends!(registration_token_uses_hold_under_concurrency, multi_thread);
on_both_backends!(users_page_filters_orders_and_counts);
on_both_backends!(account_states_and_reactivation);
on_both_backends!(threepids_and_external_ids);
on_both_backends!(ratelimit_overrides);
on_both_backends!(puppet_tokens_and_admin_devices);

fn uia(session_id: &str, registration_token: Option<&str>, created_ts: i64) -> UiaSessionRecord {
    UiaSessionRecord {
        session_id: session_id.to_owned(),
        purpose: "register".to_owned(),
        completed: Vec::new(),
        registration_token: registration_token.map(str::to_owned),
        created_ts,
    }
}

async fn signing_keys(store: &dyn TenantStore) {
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

async fn users(store: &dyn TenantStore) {
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

async fn users_are_ordered_by_bytes(store: &dyn TenantStore) {
    // Whatever the database's locale, paging follows byte order as on SQLite.
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

async fn search_users(store: &dyn TenantStore) {
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

async fn max_users_quota(store: &dyn TenantStore) {
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

async fn max_users_quota_holds_under_concurrency(store: Arc<dyn TenantStore>) {
    quota_holds_under_concurrency(store).await;
}

async fn max_users_quota_holds_with_one_connection_per_tenant(fixture: &Fixture) {
    // Nothing waits for a second connection of its own tenant while holding one.
    let backend = fixture
        .open_backend_with(Connections {
            total: 4,
            per_tenant: 1,
        })
        .await;
    quota_holds_under_concurrency(backend.open_tenant(TENANT).await.unwrap()).await;
    backend.close().await;
}

/// Concurrent registrations, each on a connection of its own as far as the pool allows, never
/// overshoot the quota.
async fn quota_holds_under_concurrency(store: Arc<dyn TenantStore>) {
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

async fn sessions_devices_and_tokens(store: &dyn TenantStore) {
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

async fn delete_devices_keeps_the_callers_order(store: &dyn TenantStore) {
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

async fn delete_devices_except(store: &dyn TenantStore) {
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

async fn deactivate_user(fixture: &Fixture) {
    let store = fixture.store().await;
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

    // Threepids can't be added through the traits yet: planted.
    let mut conn = fixture.raw().await;
    for (localpart, address) in [("alice", "alice@example.org"), ("bob", "bob@example.org")] {
        conn.execute(
            "INSERT INTO user_threepids (medium, address, localpart, validated_ts, added_ts) \
             VALUES ('email', $1, $2, 1, 2)",
            &[address.into(), localpart.into()],
        )
        .await;
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

async fn uia_sessions(store: &dyn TenantStore) {
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

async fn corrupt_uia_stages_are_reported(fixture: &Fixture) {
    let store = fixture.store().await;
    store.insert_uia_session(&uia("s1", None, 1)).await.unwrap();
    fixture
        .raw()
        .await
        .execute(
            "UPDATE uia_sessions SET completed = '[1' WHERE session_id = 's1'",
            &[],
        )
        .await;
    assert!(matches!(
        store.uia_session("s1").await,
        Err(StoreError::Corrupt(_))
    ));
}

async fn registration_tokens(store: &dyn TenantStore) {
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

async fn registration_token_uses_hold_under_concurrency(store: Arc<dyn TenantStore>) {
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

/// The admin's list with nothing filtered out but guests' and locked users' defaults.
fn list_query() -> UserListQuery {
    UserListQuery {
        from: 0,
        limit: 100,
        user_id: None,
        name: None,
        guests: true,
        deactivated: None,
        locked: true,
        admins: None,
        not_user_types: Vec::new(),
        order_by: UserOrder::Name,
        descending: false,
    }
}

async fn listed(store: &dyn TenantStore, query: UserListQuery) -> (Vec<String>, u64) {
    let (users, total) = store.users_page("example.org", &query).await.unwrap();
    (users.into_iter().map(|u| u.user.localpart).collect(), total)
}

async fn users_page_filters_orders_and_counts(store: &dyn TenantStore) {
    let users = [
        UserRecord {
            admin: true,
            displayname: None,
            ..user("ann")
        },
        UserRecord {
            guest: true,
            displayname: Some("Zed_%".into()),
            ..user("bea")
        },
        UserRecord {
            deactivated: true,
            user_type: Some("bot".into()),
            ..user("cal")
        },
        UserRecord {
            locked: true,
            user_type: Some("support".into()),
            created_ts: 1,
            ..user("dan")
        },
    ];
    for record in &users {
        assert!(store.insert_user(record, None).await.unwrap());
    }
    let mut seen = device("bea", "D", None);
    seen.last_seen_ts = Some(50);
    store
        .start_session(&seen, &token("t", "bea", "D"))
        .await
        .unwrap();
    store
        .touch_device("bea", "D", 70, "10.0.0.1")
        .await
        .unwrap();

    let (all, total) = listed(store, list_query()).await;
    assert_eq!(
        (all, total),
        (
            vec!["ann".into(), "bea".into(), "cal".into(), "dan".into()],
            4
        )
    );
    let (page, _) = store
        .users_page("example.org", &list_query())
        .await
        .unwrap();
    assert_eq!(page[1].last_seen_ts, Some(70));
    assert_eq!(page[0].last_seen_ts, None);
    assert_eq!(page[2].user.user_type.as_deref(), Some("bot"));

    // Pages by offset, with the total of all that match.
    let query = UserListQuery {
        from: 1,
        limit: 2,
        ..list_query()
    };
    assert_eq!(
        listed(store, query).await,
        (vec!["bea".into(), "cal".into()], 4)
    );
    let query = |change: fn(&mut UserListQuery)| {
        let mut query = list_query();
        change(&mut query);
        query
    };
    let cases: [(UserListQuery, &[&str]); 12] = [
        (query(|q| q.guests = false), &["ann", "cal", "dan"]),
        (query(|q| q.deactivated = Some(true)), &["cal"]),
        (
            query(|q| q.deactivated = Some(false)),
            &["ann", "bea", "dan"],
        ),
        (query(|q| q.locked = false), &["ann", "bea", "cal"]),
        (query(|q| q.admins = Some(true)), &["ann"]),
        (query(|q| q.admins = Some(false)), &["bea", "cal", "dan"]),
        // A display name or localpart, case-insensitively; LIKE wildcards are literal.
        (query(|q| q.name = Some("ZED_%".into())), &["bea"]),
        (query(|q| q.name = Some("_".into())), &["bea"]),
        (query(|q| q.user_id = Some("L:EXAMPLE".into())), &["cal"]),
        (
            query(|q| q.not_user_types = vec!["bot".into()]),
            &["ann", "bea", "dan"],
        ),
        (
            query(|q| q.not_user_types = vec!["".into()]),
            &["cal", "dan"],
        ),
        (
            query(|q| q.not_user_types = vec!["".into(), "bot".into()]),
            &["dan"],
        ),
    ];
    for (query, expected) in cases {
        let (names, total) = listed(store, query.clone()).await;
        assert_eq!(names, expected, "{query:?}");
        assert_eq!(total, expected.len() as u64, "{query:?}");
    }
    // Orders: NULLs last forwards and first backwards on both backends; ties by name.
    let ordered = |order_by, descending| UserListQuery {
        order_by,
        descending,
        ..list_query()
    };
    let orders: [(UserListQuery, &[&str]); 6] = [
        (
            ordered(UserOrder::Displayname, false),
            &["bea", "cal", "dan", "ann"],
        ),
        (
            ordered(UserOrder::Displayname, true),
            &["ann", "dan", "cal", "bea"],
        ),
        (
            ordered(UserOrder::UserType, false),
            &["cal", "dan", "ann", "bea"],
        ),
        (
            ordered(UserOrder::LastSeenTs, true),
            &["ann", "cal", "dan", "bea"],
        ),
        (
            ordered(UserOrder::CreationTs, false),
            &["dan", "ann", "bea", "cal"],
        ),
        (
            ordered(UserOrder::Admin, true),
            &["ann", "bea", "cal", "dan"],
        ),
    ];
    for (query, expected) in orders {
        assert_eq!(listed(store, query.clone()).await.0, expected, "{query:?}");
    }
}

async fn account_states_and_reactivation(store: &dyn TenantStore) {
    store.insert_user(&user("ann"), None).await.unwrap();
    let change = AccountStatesChange {
        locked: Some(true),
        suspended: Some(true),
        user_type: Some(Some("bot".into())),
        ..AccountStatesChange::default()
    };
    store.update_account_states("ann", &change).await.unwrap();
    let ann = store.user("ann").await.unwrap().unwrap();
    assert!(ann.locked && ann.suspended && !ann.shadow_banned && !ann.erased);
    assert_eq!(ann.user_type.as_deref(), Some("bot"));
    // `None` leaves a state as it is; `Some(None)` clears the type.
    let change = AccountStatesChange {
        shadow_banned: Some(true),
        locked: Some(false),
        user_type: Some(None),
        ..AccountStatesChange::default()
    };
    store.update_account_states("ann", &change).await.unwrap();
    let ann = store.user("ann").await.unwrap().unwrap();
    assert!(!ann.locked && ann.suspended && ann.shadow_banned);
    assert_eq!(ann.user_type, None);
    assert!(matches!(
        store
            .update_account_states("nobody", &AccountStatesChange::default())
            .await,
        Err(StoreError::NotFound(_))
    ));

    store.deactivate_user("ann").await.unwrap();
    let erase = AccountStatesChange {
        erased: Some(true),
        ..AccountStatesChange::default()
    };
    store.update_account_states("ann", &erase).await.unwrap();
    store.reactivate_user("ann").await.unwrap();
    let ann = store.user("ann").await.unwrap().unwrap();
    assert!(!ann.deactivated && !ann.erased);
    assert!(matches!(
        store.reactivate_user("nobody").await,
        Err(StoreError::NotFound(_))
    ));
}

fn threepid(medium: &str, address: &str, ts: i64) -> ThreepidRecord {
    ThreepidRecord {
        medium: medium.into(),
        address: address.into(),
        validated_ts: ts,
        added_ts: ts,
    }
}

fn external(provider: &str, id: &str) -> ExternalIdRecord {
    ExternalIdRecord {
        auth_provider: provider.into(),
        external_id: id.into(),
    }
}

async fn threepids_and_external_ids(store: &dyn TenantStore) {
    store.insert_user(&user("ann"), None).await.unwrap();
    store.insert_user(&user("bob"), None).await.unwrap();
    let ann_mail = threepid("email", "ann@example.org", 10);
    store
        .replace_threepids("ann", &[ann_mail.clone(), threepid("msisdn", "1", 10)])
        .await
        .unwrap();
    // One kept stays as it was; one dropped goes; another user's moves (as Synapse).
    store
        .replace_threepids("ann", &[threepid("email", "ann@example.org", 99)])
        .await
        .unwrap();
    assert_eq!(store.threepids("ann").await.unwrap(), vec![ann_mail]);
    store
        .replace_threepids("bob", &[threepid("email", "ann@example.org", 20)])
        .await
        .unwrap();
    assert!(store.threepids("ann").await.unwrap().is_empty());
    assert_eq!(
        store
            .user_by_threepid("email", "ann@example.org")
            .await
            .unwrap()
            .as_deref(),
        Some("bob")
    );
    assert_eq!(store.user_by_threepid("msisdn", "1").await.unwrap(), None);
    assert!(matches!(
        store
            .replace_threepids("nobody", &[threepid("msisdn", "2", 1)])
            .await,
        Err(StoreError::NotFound(_))
    ));

    store
        .replace_external_ids("ann", &[external("oidc", "a/1"), external("ldap", "ann")])
        .await
        .unwrap();
    assert_eq!(
        store.external_ids("ann").await.unwrap(),
        vec![external("ldap", "ann"), external("oidc", "a/1")]
    );
    // Another user's identity: a conflict, and nothing of the replacement is made.
    assert!(matches!(
        store
            .replace_external_ids("bob", &[external("ldap", "bob"), external("oidc", "a/1")])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.external_ids("bob").await.unwrap().is_empty());
    assert_eq!(
        store
            .user_by_external_id("oidc", "a/1")
            .await
            .unwrap()
            .as_deref(),
        Some("ann")
    );
    store.replace_external_ids("ann", &[]).await.unwrap();
    assert_eq!(
        store.user_by_external_id("oidc", "a/1").await.unwrap(),
        None
    );
    assert!(matches!(
        store
            .replace_external_ids("nobody", &[external("x", "y")])
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn ratelimit_overrides(store: &dyn TenantStore) {
    store.insert_user(&user("ann"), None).await.unwrap();
    assert_eq!(store.ratelimit_override("ann").await.unwrap(), None);
    let limit = RateLimitOverrideRecord {
        messages_per_second: 3,
        burst_count: 7,
    };
    store
        .set_ratelimit_override("ann", Some(&limit))
        .await
        .unwrap();
    let unlimited = RateLimitOverrideRecord {
        messages_per_second: 0,
        burst_count: 0,
    };
    store
        .set_ratelimit_override("ann", Some(&unlimited))
        .await
        .unwrap();
    assert_eq!(
        store.ratelimit_override("ann").await.unwrap(),
        Some(unlimited)
    );
    store.set_ratelimit_override("ann", None).await.unwrap();
    assert_eq!(store.ratelimit_override("ann").await.unwrap(), None);
    assert!(matches!(
        store.set_ratelimit_override("nobody", Some(&limit)).await,
        Err(StoreError::NotFound(_))
    ));
}

fn puppet(hash: &str, localpart: &str, device_id: &str, admin: &str) -> PuppetTokenRecord {
    PuppetTokenRecord {
        token_hash: hash.into(),
        localpart: localpart.into(),
        device_id: device_id.into(),
        admin: admin.into(),
        valid_until_ms: Some(9_000),
        created_ts: 5_000,
    }
}

async fn puppet_tokens_and_admin_devices(store: &dyn TenantStore) {
    for name in ["root", "ann", "bob"] {
        store.insert_user(&user(name), None).await.unwrap();
    }
    let ann = puppet("p1", "ann", "PD1", "root");
    store.insert_puppet_token(&ann).await.unwrap();
    store
        .insert_puppet_token(&puppet("p2", "ann", "PD2", "root"))
        .await
        .unwrap();
    store
        .insert_puppet_token(&puppet("p3", "bob", "PD3", "root"))
        .await
        .unwrap();
    assert_eq!(store.puppet_token("p1").await.unwrap(), Some(ann));
    // No device of hers, and no ordinary token.
    assert!(store.devices("ann").await.unwrap().is_empty());
    assert_eq!(store.access_token("p1").await.unwrap(), None);
    assert!(matches!(
        store
            .insert_puppet_token(&puppet("p1", "bob", "X", "root"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .insert_puppet_token(&puppet("p9", "nobody", "X", "root"))
            .await,
        Err(StoreError::NotFound(_))
    ));

    store.delete_puppet_session("ann", "PD1").await.unwrap();
    assert_eq!(store.puppet_token("p1").await.unwrap(), None);
    assert!(store.puppet_token("p2").await.unwrap().is_some());
    // Deactivating the user ends sessions taken as her; the admin's logout ends the rest.
    store.deactivate_user("ann").await.unwrap();
    assert_eq!(store.puppet_token("p2").await.unwrap(), None);
    assert!(store.puppet_token("p3").await.unwrap().is_some());
    store.delete_puppet_tokens_of_admin("root").await.unwrap();
    assert_eq!(store.puppet_token("p3").await.unwrap(), None);

    // A device an admin creates: once, and only for a user that exists.
    assert!(
        store
            .insert_device(&device("bob", "NEW", None))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_device(&device("bob", "NEW", Some("x")))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .device("bob", "NEW")
            .await
            .unwrap()
            .unwrap()
            .display_name,
        None
    );
    assert!(matches!(
        store.insert_device(&device("nobody", "NEW", None)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.last_seen_ts("bob").await.unwrap(), None);
    store
        .touch_device("bob", "NEW", 77, "10.0.0.2")
        .await
        .unwrap();
    assert_eq!(store.last_seen_ts("bob").await.unwrap(), Some(77));
}
