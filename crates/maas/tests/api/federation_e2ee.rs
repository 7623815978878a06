//! End-to-end encryption keys across servers (spec: Server-Server API, "End-to-End
//! Encryption"): a client's `keys/query` and `keys/claim` for users of another server are
//! asked of that server (`user/keys/query`, `user/keys/claim`), here a co-hosted tenant
//! reached in-process with the same signature checks as over the network.

use serde_json::json;

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
