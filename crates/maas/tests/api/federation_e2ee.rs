//! End-to-end encryption across servers (spec: Server-Server API, "End-to-End Encryption",
//! "Send-to-device messaging"): a client's `keys/query` and `keys/claim` for users of another
//! server are asked of that server (`user/keys/query`, `user/keys/claim`), and its to-device
//! messages for them travel as `m.direct_to_device` EDUs; here to a co-hosted tenant reached
//! in-process with the same signature checks as over the network.

use std::time::Duration;

use serde_json::{Value, json};

use crate::e2ee_support::*;
use crate::harness::*;

#[tokio::test]
async fn a_user_gets_the_keys_of_a_user_of_another_server() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    let (alice_api, bob_api) = (
        srv.on("a.test").as_user(&alice),
        srv.on("b.test").as_user(&bob),
    );
    let device = TestDevice::of(&bob);
    let one_time = device.one_time_key();
    upload_ok(
        &bob_api,
        json!({
            "device_keys": device.device_keys(),
            "one_time_keys": {format!("{SIGNED_CURVE25519}:AAAAAQ"): one_time},
        }),
    )
    .await;

    let q = keys_query(&alice_api, &[&bob.user_id]).await;
    assert_eq!(
        queried_devices(&q, &bob.user_id),
        vec![bob.device_id.clone()],
        "{q}"
    );
    let served = &q["device_keys"][&bob.user_id][&bob.device_id];
    assert_eq!(
        unsigned_part(served)["keys"],
        device.device_keys()["keys"],
        "{q}"
    );
    assert!(q["failures"].is_null() || q["failures"] == json!({}), "{q}");

    let (key_id, key) = claim_one(&alice_api, &bob.user_id, &bob.device_id)
        .await
        .expect("bob's one-time key");
    assert_eq!(key_id, format!("{SIGNED_CURVE25519}:AAAAAQ"));
    assert_eq!(key, one_time);
    // Claimed once: the next claim finds none left.
    assert!(
        claim_one(&alice_api, &bob.user_id, &bob.device_id)
            .await
            .is_none()
    );

    // A server that can't be reached is a failure of its own; the rest is answered.
    let q = keys_query(&alice_api, &[&bob.user_id, "@carol:127.0.0.1:1"]).await;
    assert_eq!(
        q["failures"]["127.0.0.1:1"]["errcode"], "M_UNAVAILABLE",
        "{q}"
    );
    assert_eq!(
        queried_devices(&q, &bob.user_id),
        vec![bob.device_id.clone()]
    );
}

/// The to-device events `user` has on `host`, waiting until there are `count` (EDUs between
/// tenants travel asynchronously).
async fn to_device_events(
    srv: &TestServer,
    host: &str,
    user: &Session,
    count: usize,
) -> Vec<Value> {
    let mut events = Vec::new();
    for _ in 0..100 {
        let sync = srv
            .on(host)
            .as_user(user)
            .get("/_matrix/client/v3/sync?timeout=0")
            .await
            .ok();
        events = sync["to_device"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{count} to-device events never reached {host}: {events:?}");
}

#[tokio::test]
async fn to_device_messages_reach_users_of_another_server() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    let bob_again = srv.login("b.test", "bob", "password-bob").await;

    // One device by id, every device of another user by `*`; bob's are on b.test, carol is
    // no one there.
    let body = json!({"messages": {
        bob.user_id.as_str(): {bob.device_id.as_str(): {"secret": "for one device"}},
        "@carol:b.test": {"*": {"secret": "for nobody"}},
    }});
    srv.on("a.test")
        .as_user(&alice)
        .put(
            "/_matrix/client/v3/sendToDevice/m.test.secret/t1",
            body.clone(),
        )
        .await
        .ok();
    // A retried transaction sends nothing twice.
    srv.on("a.test")
        .as_user(&alice)
        .put("/_matrix/client/v3/sendToDevice/m.test.secret/t1", body)
        .await
        .ok();
    let events = to_device_events(&srv, "b.test", &bob, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["sender"], alice.user_id.as_str());
    assert_eq!(events[0]["type"], "m.test.secret");
    assert_eq!(events[0]["content"]["secret"], "for one device");

    let body = json!({"messages": {bob.user_id.as_str(): {"*": {"secret": "for all"}}}});
    srv.on("a.test")
        .as_user(&alice)
        .put("/_matrix/client/v3/sendToDevice/m.test.secret/t2", body)
        .await
        .ok();
    let events = to_device_events(&srv, "b.test", &bob_again, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["content"]["secret"], "for all");
    // Bob's first device got both, in order.
    let events = to_device_events(&srv, "b.test", &bob, 2).await;
    let secrets: Vec<&Value> = events.iter().map(|e| &e["content"]["secret"]).collect();
    assert_eq!(secrets, [&json!("for one device"), &json!("for all")]);
}

#[tokio::test]
async fn to_device_messages_for_a_server_away_survive_a_restart() {
    let mut srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;

    // b.test is away (suspended: it answers 403) when alice's message is accepted, then the
    // platform restarts: the message was stored for b.test, not only held in memory.
    srv.patch_tenant("b.test", json!({"suspended": true})).await;
    let body = json!({"messages": {bob.user_id.as_str(): {"*": {"secret": "kept"}}}});
    srv.on("a.test")
        .as_user(&alice)
        .put("/_matrix/client/v3/sendToDevice/m.test.secret/t1", body)
        .await
        .ok();
    srv.restart().await;
    srv.patch_tenant("b.test", json!({"suspended": false}))
        .await;
    // Nobody uses a.test after the restart: it is loaded because its queue was not empty.
    let events = to_device_events(&srv, "b.test", &bob, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["content"]["secret"], "kept");
}

#[tokio::test]
async fn device_changes_reach_users_of_another_server() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    let (alice_api, bob_api) = (
        srv.on("a.test").as_user(&alice),
        srv.on("b.test").as_user(&bob),
    );
    alice_api
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "public_chat", "room_alias_name": "crypto"}),
        )
        .await
        .ok();
    bob_api
        .post(
            &format!("/_matrix/client/v3/join/{}", enc("#crypto:a.test")),
            json!({}),
        )
        .await
        .ok();
    let since = alice_api.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_owned();

    // Bob's new device keys: a.test hears of them (m.device_list_update) and tells alice.
    let device = TestDevice::of(&bob);
    upload_ok(&bob_api, json!({"device_keys": device.device_keys()})).await;
    let mut changed = Value::Null;
    for _ in 0..100 {
        let sync = alice_api
            .get(&format!("/_matrix/client/v3/sync?since={since}&timeout=0"))
            .await
            .ok();
        changed = sync["device_lists"]["changed"].clone();
        if changed
            .as_array()
            .is_some_and(|c| c.contains(&json!(bob.user_id)))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        changed
            .as_array()
            .is_some_and(|c| c.contains(&json!(bob.user_id))),
        "{changed}"
    );
}

#[tokio::test]
async fn another_server_lists_a_users_devices() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let device = TestDevice::of(&alice);
    upload_ok(
        &srv.on("a.test").as_user(&alice),
        json!({"device_keys": device.device_keys()}),
    )
    .await;
    let key = crate::federation_queries::signing_key(&srv, "b.test").await;
    let get = |path: String| {
        let auth =
            crate::federation_queries::x_matrix("GET", &path, None, "b.test", "a.test", &key);
        let builder = srv
            .on("a.test")
            .builder(reqwest::Method::GET, &path)
            .header("Authorization", auth);
        TestServer::send(builder)
    };
    let listed = get(format!(
        "/_matrix/federation/v1/user/devices/{}",
        enc(&alice.user_id)
    ))
    .await
    .ok();
    assert_eq!(listed["user_id"], alice.user_id.as_str());
    assert!(listed["stream_id"].is_u64(), "{listed}");
    let devices = listed["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1, "{listed}");
    assert_eq!(devices[0]["device_id"], alice.device_id.as_str());
    assert_eq!(devices[0]["keys"]["device_id"], alice.device_id.as_str());

    let resp = get(format!(
        "/_matrix/federation/v1/user/devices/{}",
        enc("@nobody:a.test")
    ))
    .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}
