//! Cross-signing over raw HTTP (spec v1.15, "Cross-signing"): `keys/device_signing/upload`
//! (the first upload without UIA as MSC3967 allows, replacement only with UIA),
//! `keys/signatures/upload`, which keys and signatures `keys/query` shows to whom, and bad
//! signatures refused without changing anything.

use reqwest::Method;
use serde_json::{Value, json};

use crate::e2ee_support::*;
use crate::harness::*;
use crate::room_support::*;

/// Asserts that `served` is `uploaded` plus possibly more signatures.
#[track_caller]
fn assert_same_key(served: &Value, uploaded: &Value, what: &str) {
    assert_eq!(
        unsigned_part(served),
        unsigned_part(uploaded),
        "{what}: served {served}, uploaded {uploaded}"
    );
    if let Some(sigs) = uploaded["signatures"].as_object() {
        for (signer, keys) in sigs {
            for (key_id, sig) in keys.as_object().unwrap() {
                assert_eq!(
                    &served["signatures"][signer][key_id], sig,
                    "{what}: signature {signer} {key_id} lost: {served}"
                );
            }
        }
    }
}

#[tokio::test]
async fn cross_signing_keys_and_signatures_are_served() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api) = (api.as_user(&alice), api.as_user(&bob));
    let (a, b) = (alice.user_id.as_str(), bob.user_id.as_str());
    let alice_dev = TestDevice::of(&alice);
    let bob_dev = TestDevice::of(&bob);
    upload_device_keys(&alice_api, &alice_dev).await;
    upload_device_keys(&bob_api, &bob_dev).await;
    let room_id = create_room(&alice_api, json!({"preset": "private_chat"})).await;
    invite(&alice_api, &room_id, b).await;
    join(&bob_api, &room_id).await;
    let tb = next_batch(&sync(&bob_api, None, None).await);

    // First uploads need no UIA.
    let alice_cs = CrossSigning::new(a);
    let bob_cs = CrossSigning::new(b);
    assert_eq!(
        device_signing_upload(&alice_api, alice_cs.upload_body())
            .await
            .ok(),
        json!({})
    );
    assert_eq!(
        device_signing_upload(&bob_api, bob_cs.upload_body())
            .await
            .ok(),
        json!({})
    );
    // Retrying exactly the same upload (a lost response) needs no UIA either.
    assert_eq!(
        device_signing_upload(&alice_api, alice_cs.upload_body())
            .await
            .ok(),
        json!({})
    );
    let s = sync(&bob_api, Some(&tb), None).await;
    assert!(
        device_lists(&s, "changed").contains(&alice.user_id),
        "Alice's new cross-signing keys must be announced to Bob: {s}"
    );
    let tb = next_batch(&s);

    // Alice sees all three of her keys; Bob sees her master and self-signing keys only.
    let q = keys_query(&alice_api, &[a]).await;
    assert_same_key(&q["master_keys"][a], &alice_cs.master_key(), "own master");
    assert_same_key(
        &q["self_signing_keys"][a],
        &alice_cs.self_signing_key(),
        "own self-signing",
    );
    assert_same_key(
        &q["user_signing_keys"][a],
        &alice_cs.user_signing_key(),
        "own user-signing",
    );
    let q = keys_query(&bob_api, &[a]).await;
    assert_same_key(
        &q["master_keys"][a],
        &alice_cs.master_key(),
        "Alice's master",
    );
    assert_same_key(
        &q["self_signing_keys"][a],
        &alice_cs.self_signing_key(),
        "Alice's self-signing",
    );
    assert!(
        q["user_signing_keys"][a].is_null(),
        "Alice's user-signing key shown to Bob: {q}"
    );

    // Alice signs her device with her self-signing key.
    let signed = alice_cs
        .self_signing
        .sign(&alice_dev.device_keys_unsigned());
    let body = signatures_upload(&alice_api, json!({a: {&alice.device_id: signed}}))
        .await
        .ok();
    assert!(
        body["failures"].is_null() || body["failures"] == json!({}),
        "{body}"
    );
    let q = keys_query(&bob_api, &[a]).await;
    let served = &q["device_keys"][a][&alice.device_id];
    assert_same_key(served, &alice_dev.device_keys(), "device after signing");
    assert_eq!(
        served["signatures"][a][alice_cs.self_signing.key_id()],
        signed["signatures"][a][alice_cs.self_signing.key_id()],
        "the self-signing signature isn't served: {served}"
    );
    let s = sync(&bob_api, Some(&tb), None).await;
    assert!(
        device_lists(&s, "changed").contains(&alice.user_id),
        "a new signature on Alice's device must be announced to Bob: {s}"
    );
    let tb = next_batch(&s);

    // Alice's device signs her master key.
    let signed_master = alice_dev.sign(&alice_cs.master_key());
    let body = signatures_upload(
        &alice_api,
        json!({a: {&alice_cs.master.public: signed_master}}),
    )
    .await
    .ok();
    assert!(
        body["failures"].is_null() || body["failures"] == json!({}),
        "{body}"
    );
    let q = keys_query(&bob_api, &[a]).await;
    assert_eq!(
        q["master_keys"][a]["signatures"][a][alice_dev.key_id()],
        signed_master["signatures"][a][alice_dev.key_id()],
        "{q}"
    );

    // Bob signs Alice's master key with his user-signing key: Bob sees the signature,
    // Alice doesn't.
    let bob_before = next_batch(&sync(&bob_api, Some(&tb), None).await);
    let alice_before = next_batch(&sync(&alice_api, None, None).await);
    let bob_sig = bob_cs.user_signing.sign(&alice_cs.master_key());
    let body = signatures_upload(&bob_api, json!({a: {&alice_cs.master.public: bob_sig}}))
        .await
        .ok();
    assert!(
        body["failures"].is_null() || body["failures"] == json!({}),
        "{body}"
    );
    let q = keys_query(&bob_api, &[a]).await;
    assert_eq!(
        q["master_keys"][a]["signatures"][b][bob_cs.user_signing.key_id()],
        bob_sig["signatures"][b][bob_cs.user_signing.key_id()],
        "Bob's signature of Alice's master key isn't shown to Bob: {q}"
    );
    assert_same_key(
        &q["master_keys"][a],
        &alice_cs.master_key(),
        "after Bob's signature",
    );
    // Bob's other devices learn of it: Alice's keys as Bob sees them changed (clients such
    // as matrix-sdk only re-query keys listed in device_lists.changed).
    let s = sync(&bob_api, Some(&bob_before), None).await;
    assert!(
        device_lists(&s, "changed").contains(&alice.user_id),
        "Bob's signature of Alice's master key isn't announced to Bob: {s}"
    );
    // Nobody else's view changed: Alice's sync names neither of them.
    let s = sync(&alice_api, Some(&alice_before), None).await;
    assert!(device_lists(&s, "changed").is_empty(), "{s}");
    for q in [
        keys_query(&alice_api, &[a]).await,
        keys_query(&alice_api, &[b, a]).await,
    ] {
        assert!(
            q["master_keys"][a]["signatures"][b].is_null(),
            "Bob's user-signing signature shown to Alice: {q}"
        );
        assert!(q["user_signing_keys"][b].is_null(), "{q}");
    }

    // Re-uploading the same keys (now carrying more signatures on the server) is still
    // "no new keys": no UIA.
    assert_eq!(
        device_signing_upload(&alice_api, alice_cs.upload_body())
            .await
            .ok(),
        json!({})
    );
    assert_eq!(
        device_signing_upload(&alice_api, json!({"master_key": alice_cs.master_key()}))
            .await
            .ok(),
        json!({})
    );

    // Replacing the keys needs UIA; with the password it works.
    let new_cs = CrossSigning::new(a);
    let resp = device_signing_upload(&alice_api, new_cs.upload_body()).await;
    assert_uia(&resp);
    assert!(
        uia_flows(&resp)
            .iter()
            .any(|f| f == &vec!["m.login.password".to_owned()]),
        "{}",
        resp.text
    );
    let q = keys_query(&bob_api, &[a]).await;
    assert_same_key(&q["master_keys"][a], &alice_cs.master_key(), "unchanged");
    let resp = alice_api
        .uia(
            Method::POST,
            &format!("{CS}/keys/device_signing/upload"),
            new_cs.upload_body(),
            &[password_stage("alice", "pw-alice-1")],
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
    let q = keys_query(&alice_api, &[a]).await;
    assert_same_key(
        &q["master_keys"][a],
        &new_cs.master_key(),
        "replaced master",
    );
    assert_same_key(
        &q["self_signing_keys"][a],
        &new_cs.self_signing_key(),
        "replaced self-signing",
    );
    assert_same_key(
        &q["user_signing_keys"][a],
        &new_cs.user_signing_key(),
        "replaced user-signing",
    );
    // The old self-signing key's signature doesn't make the device cross-signed by the new
    // identity, but the device keys are still there.
    assert_same_key(
        &q["device_keys"][a][&alice.device_id],
        &alice_dev.device_keys(),
        "device after replacement",
    );
}

#[tokio::test]
async fn bad_cross_signing_uploads_are_refused_and_change_nothing() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api) = (api.as_user(&alice), api.as_user(&bob));
    let (a, b) = (alice.user_id.as_str(), bob.user_id.as_str());
    let alice_dev = TestDevice::of(&alice);
    upload_device_keys(&alice_api, &alice_dev).await;
    let cs = CrossSigning::new(a);
    let no_keys = |q: &Value| {
        q["master_keys"][a].is_null()
            && q["self_signing_keys"][a].is_null()
            && q["user_signing_keys"][a].is_null()
    };

    // No master key at all.
    let resp = device_signing_upload(
        &alice_api,
        json!({"self_signing_key": cs.self_signing_key()}),
    )
    .await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    // A self-signing key the master key didn't sign.
    let forged = SigningKey::new(a).sign(&cs.self_signing.object("self_signing"));
    let resp = device_signing_upload(
        &alice_api,
        json!({
            "master_key": cs.master_key(),
            "self_signing_key": forged,
            "user_signing_key": cs.user_signing_key(),
        }),
    )
    .await;
    assert_error(&resp, 400, "M_INVALID_SIGNATURE");
    // A user-signing key without any signature.
    let resp = device_signing_upload(
        &alice_api,
        json!({
            "master_key": cs.master_key(),
            "self_signing_key": cs.self_signing_key(),
            "user_signing_key": cs.user_signing.object("user_signing"),
        }),
    )
    .await;
    assert_error(&resp, 400, "M_INVALID_SIGNATURE");
    // Keys of another user.
    let bobs = CrossSigning::new(b);
    let resp = device_signing_upload(&alice_api, bobs.upload_body()).await;
    assert!(
        resp.status == 400 || resp.status == 403,
        "Alice uploaded Bob's cross-signing keys: {} {}",
        resp.status,
        resp.text
    );
    // A master key with the wrong usage.
    let resp = device_signing_upload(
        &alice_api,
        json!({"master_key": cs.master.object("self_signing")}),
    )
    .await;
    assert!(
        resp.status == 400 && resp.errcode().starts_with("M_"),
        "master key with usage self_signing: {} {}",
        resp.status,
        resp.text
    );
    // Not a key object.
    let resp = device_signing_upload(&alice_api, json!({"master_key": "nope"})).await;
    assert!(
        resp.status == 400 && ["M_BAD_JSON", "M_INVALID_PARAM"].contains(&resp.errcode()),
        "{} {}",
        resp.status,
        resp.text
    );
    for q in [
        keys_query(&alice_api, &[a]).await,
        keys_query(&bob_api, &[a, b]).await,
    ] {
        assert!(no_keys(&q), "a refused upload stored keys: {q}");
        assert!(q["master_keys"][b].is_null(), "{q}");
    }

    // Valid keys, then bad signatures.
    assert_eq!(
        device_signing_upload(&alice_api, cs.upload_body())
            .await
            .ok(),
        json!({})
    );
    let bad_device_sig = SigningKey::new(a).sign(&alice_dev.device_keys_unsigned());
    let mut bad_device_sig = bad_device_sig;
    // Claim the self-signing key made it.
    let sig = bad_device_sig["signatures"][a]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    bad_device_sig["signatures"] = json!({a: {cs.self_signing.key_id(): sig}});
    let body = signatures_upload(&alice_api, json!({a: {&alice.device_id: bad_device_sig}}))
        .await
        .ok();
    assert_eq!(
        body["failures"][a][&alice.device_id]["errcode"], "M_INVALID_SIGNATURE",
        "{body}"
    );
    // A signature of a changed object (the device keys with another curve25519 key).
    let mut changed = alice_dev.device_keys_unsigned();
    changed["keys"][format!("curve25519:{}", alice.device_id)] = random_key().into();
    let changed = cs.self_signing.sign(&changed);
    let body = signatures_upload(&alice_api, json!({a: {&alice.device_id: changed}}))
        .await
        .ok();
    assert!(
        body["failures"][a][&alice.device_id]["errcode"].is_string(),
        "a signed object that doesn't match the stored keys must fail: {body}"
    );
    // A bad signature by the user-signing key of Bob's (missing) master key.
    let body = signatures_upload(
        &alice_api,
        json!({b: {"NOSUCHKEY": cs.user_signing.sign(&json!({"user_id": b, "usage": ["master"], "keys": {"ed25519:NOSUCHKEY": "NOSUCHKEY"}}))}}),
    )
    .await
    .ok();
    assert!(
        body["failures"][b]["NOSUCHKEY"]["errcode"].is_string(),
        "{body}"
    );

    // Nothing changed: the device carries only its own signature.
    let q = keys_query(&bob_api, &[a]).await;
    let served = &q["device_keys"][a][&alice.device_id];
    assert_eq!(
        unsigned_part(served),
        alice_dev.device_keys_unsigned(),
        "{served}"
    );
    assert_eq!(
        served["signatures"],
        alice_dev.device_keys()["signatures"],
        "a refused signature was stored: {served}"
    );
    assert_same_key(&q["master_keys"][a], &cs.master_key(), "master");
    assert!(q["master_keys"][a]["signatures"][b].is_null(), "{q}");

    // Replacing without UIA: 401 with flows, and nothing changes.
    let other = CrossSigning::new(a);
    let resp = device_signing_upload(&alice_api, other.upload_body()).await;
    assert_uia(&resp);
    let resp = device_signing_upload(
        &alice_api,
        json!({"self_signing_key": cs.master.sign(&SigningKey::new(a).object("self_signing"))}),
    )
    .await;
    assert_uia(&resp);
    // A wrong password doesn't do it either.
    let resp = alice_api
        .uia(
            Method::POST,
            &format!("{CS}/keys/device_signing/upload"),
            other.upload_body(),
            &[password_stage("alice", "wrong password")],
        )
        .await;
    assert_eq!(resp.status, 401, "{}", resp.text);
    assert_eq!(resp.errcode(), "M_FORBIDDEN", "{}", resp.text);
    let q = keys_query(&alice_api, &[a]).await;
    assert_same_key(&q["master_keys"][a], &cs.master_key(), "master kept");
    assert_same_key(
        &q["self_signing_keys"][a],
        &cs.self_signing_key(),
        "self-signing kept",
    );
    assert_same_key(
        &q["user_signing_keys"][a],
        &cs.user_signing_key(),
        "user-signing kept",
    );
}
