//! Device keys over raw HTTP (spec v1.15, "End-to-End Encryption"): `keys/upload`,
//! `keys/query`, `keys/claim` (one-time keys, then the fallback key), `keys/changes`, the
//! sync fields `device_lists`, `device_one_time_keys_count` and
//! `device_unused_fallback_key_types`, and bad uploads that must be refused without changing
//! anything. Keys are really signed (ed25519, ruma-signatures).

use reqwest::Method;
use serde_json::{Value, json};

use crate::e2ee_support::*;
use crate::harness::*;
use crate::room_support::*;

/// An encrypted room of `creator` that `others` joined.
async fn shared_encrypted_room(creator: &Api<'_>, others: &[(&Api<'_>, &str)]) -> String {
    let room_id = create_room(
        creator,
        json!({
            "preset": "private_chat",
            "initial_state": [{
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }],
        }),
    )
    .await;
    for (api, user_id) in others {
        invite(creator, &room_id, user_id).await;
        join(api, &room_id).await;
    }
    room_id
}

#[tokio::test]
async fn uploaded_device_keys_are_served_by_query() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api) = (api.as_user(&alice), api.as_user(&bob));
    let dev = TestDevice::of(&alice);

    // Nothing before the upload: the user is known, the device has no keys.
    let q = keys_query(&bob_api, &[&alice.user_id]).await;
    assert!(queried_devices(&q, &alice.user_id).is_empty(), "{q}");

    let counts = upload_ok(&alice_api, json!({"device_keys": dev.device_keys()})).await;
    assert_eq!(otk_count(&counts), 0, "{counts}");
    // Uploading the same keys again is fine.
    upload_ok(&alice_api, json!({"device_keys": dev.device_keys()})).await;

    for q in [
        keys_query(&bob_api, &[&alice.user_id]).await,
        keys_query_raw(&bob_api, json!({&alice.user_id: [&alice.device_id]}))
            .await
            .ok(),
        keys_query(&alice_api, &[&alice.user_id]).await,
    ] {
        assert_eq!(
            queried_devices(&q, &alice.user_id),
            vec![alice.device_id.clone()],
            "{q}"
        );
        let served = &q["device_keys"][&alice.user_id][&alice.device_id];
        let mut without_unsigned = served.clone();
        without_unsigned.as_object_mut().unwrap().remove("unsigned");
        assert_eq!(
            without_unsigned,
            dev.device_keys(),
            "keys/query must serve the uploaded object"
        );
        if !served["unsigned"].is_null() {
            assert!(served["unsigned"].is_object(), "{served}");
        }
        assert!(q["failures"].is_null() || q["failures"] == json!({}), "{q}");
    }

    // Unknown devices and users are left out, not failures.
    let q = keys_query_raw(
        &bob_api,
        json!({&alice.user_id: ["NOSUCHDEVICE"], "@nobody:localhost": []}),
    )
    .await
    .ok();
    assert!(queried_devices(&q, &alice.user_id).is_empty(), "{q}");
    assert!(queried_devices(&q, "@nobody:localhost").is_empty(), "{q}");
    assert!(q["failures"].is_null() || q["failures"] == json!({}), "{q}");

    // A device without keys of the same user isn't listed.
    let alice2 = srv.login("localhost", "alice", "pw-alice-1").await;
    let q = keys_query(&bob_api, &[&alice.user_id]).await;
    assert_eq!(
        queried_devices(&q, &alice.user_id),
        vec![alice.device_id.clone()],
        "{q}"
    );
    let dev2 = TestDevice::of(&alice2);
    upload_device_keys(&api.as_user(&alice2), &dev2).await;
    let q = keys_query(&bob_api, &[&alice.user_id]).await;
    let mut both = vec![alice.device_id.clone(), alice2.device_id.clone()];
    both.sort();
    assert_eq!(queried_devices(&q, &alice.user_id), both, "{q}");

    // No token, no keys.
    assert_error(
        &keys_query_raw(&api, json!({&alice.user_id: []})).await,
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        &keys_upload(&api, json!({"device_keys": dev.device_keys()})).await,
        401,
        "M_MISSING_TOKEN",
    );
}

#[tokio::test]
async fn claims_return_one_time_keys_then_the_fallback_key() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api) = (api.as_user(&alice), api.as_user(&bob));
    let dev = TestDevice::of(&alice);
    let (user, device) = (alice.user_id.as_str(), alice.device_id.as_str());
    let otk = |id: &str| format!("{SIGNED_CURVE25519}:{id}");

    // Device keys, two one-time keys and a fallback key in one upload.
    let (k1, k2, fb) = (dev.one_time_key(), dev.one_time_key(), dev.fallback_key());
    let counts = upload_ok(
        &alice_api,
        json!({
            "device_keys": dev.device_keys(),
            "one_time_keys": {otk("AAAAAQ"): k1, otk("AAAAAg"): k2},
            "fallback_keys": {otk("AAAAFB"): fb},
        }),
    )
    .await;
    assert_eq!(
        otk_count(&counts),
        2,
        "fallback keys aren't counted: {counts}"
    );

    let s = sync(&alice_api, None, None).await;
    assert_eq!(otk_count(&s["device_one_time_keys_count"]), 2, "{s}");
    assert_eq!(
        s["device_unused_fallback_key_types"],
        json!([SIGNED_CURVE25519]),
        "{s}"
    );
    let since = next_batch(&s);

    // The two one-time keys, each exactly once.
    let first = claim_one(&bob_api, user, device)
        .await
        .expect("first claim");
    let second = claim_one(&bob_api, user, device)
        .await
        .expect("second claim");
    let mut claimed = vec![first.clone(), second.clone()];
    claimed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        claimed,
        vec![(otk("AAAAAQ"), k1.clone()), (otk("AAAAAg"), k2.clone())],
        "claims must hand out the uploaded one-time keys, each once"
    );
    assert_eq!(otk_count(&upload_ok(&alice_api, json!({})).await), 0);
    let s = sync(&alice_api, Some(&since), None).await;
    assert_eq!(otk_count(&s["device_one_time_keys_count"]), 0, "{s}");
    assert_eq!(
        s["device_unused_fallback_key_types"],
        json!([SIGNED_CURVE25519]),
        "the fallback key hasn't been used yet: {s}"
    );
    let since = next_batch(&s);

    // Then the fallback key, and again the fallback key.
    for i in 0..2 {
        let claimed = claim_one(&bob_api, user, device).await;
        assert_eq!(
            claimed,
            Some((otk("AAAAFB"), fb.clone())),
            "claim {} after the one-time keys ran out",
            i + 3
        );
    }
    let s = sync(&alice_api, Some(&since), None).await;
    assert_eq!(
        s["device_unused_fallback_key_types"],
        json!([]),
        "a used fallback key must leave device_unused_fallback_key_types: {s}"
    );
    assert_eq!(otk_count(&s["device_one_time_keys_count"]), 0, "{s}");
    let since = next_batch(&s);

    // A new fallback key replaces the used one.
    let fb2 = dev.fallback_key();
    upload_ok(&alice_api, json!({"fallback_keys": {otk("AAAFB2"): fb2}})).await;
    let s = sync(&alice_api, Some(&since), None).await;
    assert_eq!(
        s["device_unused_fallback_key_types"],
        json!([SIGNED_CURVE25519]),
        "{s}"
    );
    assert_eq!(
        claim_one(&bob_api, user, device).await,
        Some((otk("AAAFB2"), fb2.clone()))
    );

    // New one-time keys are preferred over the fallback key, in upload order across
    // uploads.
    let (k3, k4) = (dev.one_time_key(), dev.one_time_key());
    let counts = upload_ok(&alice_api, json!({"one_time_keys": {otk("AAAAAw"): k3}})).await;
    assert_eq!(otk_count(&counts), 1, "{counts}");
    let counts = upload_ok(&alice_api, json!({"one_time_keys": {otk("AAAABA"): k4}})).await;
    assert_eq!(otk_count(&counts), 2, "{counts}");
    assert_eq!(
        claim_one(&bob_api, user, device).await,
        Some((otk("AAAAAw"), k3))
    );
    assert_eq!(
        claim_one(&bob_api, user, device).await,
        Some((otk("AAAABA"), k4))
    );
    assert_eq!(
        claim_one(&bob_api, user, device).await,
        Some((otk("AAAFB2"), fb2))
    );

    // Unknown devices and users get nothing, without failures.
    let body = bob_api
        .post(
            &format!("{CS}/keys/claim"),
            json!({"one_time_keys": {
                user: {"NOSUCHDEVICE": SIGNED_CURVE25519},
                "@nobody:localhost": {"X": SIGNED_CURVE25519},
            }}),
        )
        .await
        .ok();
    assert!(
        body["one_time_keys"][user]["NOSUCHDEVICE"].is_null()
            && body["one_time_keys"]["@nobody:localhost"]["X"].is_null(),
        "{body}"
    );
    assert!(
        body["failures"].is_null() || body["failures"] == json!({}),
        "{body}"
    );
}

/// Asserts a 400 whose errcode is one of `codes`.
#[track_caller]
fn assert_bad(resp: &Resp, codes: &[&str], what: &str) {
    assert!(
        resp.status == 400 && codes.contains(&resp.errcode()),
        "{what}: expected 400 with one of {codes:?}, got {}: {}",
        resp.status,
        resp.text
    );
}

/// Asserts a 400 with some Matrix errcode (the spec names none for this case).
#[track_caller]
fn assert_400(resp: &Resp, what: &str) {
    assert!(
        resp.status == 400 && resp.errcode().starts_with("M_"),
        "{what}: expected 400 with an errcode, got {}: {}",
        resp.status,
        resp.text
    );
}

#[tokio::test]
async fn bad_key_uploads_are_refused_and_change_nothing() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api) = (api.as_user(&alice), api.as_user(&bob));
    let dev = TestDevice::of(&alice);
    let otk = |id: &str| format!("{SIGNED_CURVE25519}:{id}");
    const MALFORMED: &[&str] = &["M_BAD_JSON", "M_INVALID_PARAM"];

    // Each of these is refused, before and after valid keys are in place.
    let mut other_key = TestDevice::new(&alice.user_id, &alice.device_id).device_keys();
    other_key["keys"] = dev.device_keys()["keys"].clone(); // signed by another key
    let mut tampered = dev.device_keys();
    tampered["algorithms"] = json!(["m.megolm.v1.aes-sha2"]); // changed after signing
    let unsigned = dev.device_keys_unsigned();
    let bob_dev = TestDevice::new(&bob.user_id, &bob.device_id).device_keys();
    let mut for_bob = dev.device_keys_unsigned();
    for_bob["user_id"] = bob.user_id.as_str().into();
    let for_bob = dev.sign(&for_bob);
    let other_device = TestDevice::new(&alice.user_id, "OTHERDEVICE").device_keys();
    let mut no_keys = dev.device_keys_unsigned();
    no_keys.as_object_mut().unwrap().remove("keys");
    let no_keys = dev.sign(&no_keys);
    let mut keys_not_object = dev.device_keys_unsigned();
    keys_not_object["keys"] = json!(["ed25519", dev.ed25519]);
    let keys_not_object = dev.sign(&keys_not_object);

    let malformed: Vec<(&str, Value)> = vec![
        ("device_keys not an object", json!({"device_keys": "nope"})),
        ("device_keys without keys", json!({"device_keys": no_keys})),
        (
            "keys not an object",
            json!({"device_keys": keys_not_object}),
        ),
        (
            "one_time_keys not an object",
            json!({"one_time_keys": ["x"]}),
        ),
        (
            "one-time key id without algorithm",
            json!({"one_time_keys": {"AAAAAQ": dev.one_time_key()}}),
        ),
        (
            "one-time key not an object",
            json!({"one_time_keys": {otk("AAAAAQ"): 5}}),
        ),
        ("fallback_keys not an object", json!({"fallback_keys": "x"})),
    ];
    let unverifiable: Vec<(&str, Value)> = vec![
        (
            "device keys signed by another key",
            json!({"device_keys": other_key}),
        ),
        (
            "device keys changed after signing",
            json!({"device_keys": tampered}),
        ),
        ("unsigned device keys", json!({"device_keys": unsigned})),
        ("Bob's device keys", json!({"device_keys": bob_dev})),
        ("device keys naming Bob", json!({"device_keys": for_bob})),
        (
            "another device's keys",
            json!({"device_keys": other_device}),
        ),
    ];
    let check_all = |label: &'static str| {
        let malformed = malformed.clone();
        let unverifiable = unverifiable.clone();
        let alice_api = alice_api.clone();
        async move {
            for (what, body) in malformed {
                assert_bad(
                    &keys_upload(&alice_api, body).await,
                    MALFORMED,
                    &format!("{label}: {what}"),
                );
            }
            for (what, body) in unverifiable {
                assert_400(
                    &keys_upload(&alice_api, body).await,
                    &format!("{label}: {what}"),
                );
            }
        }
    };
    check_all("before any upload").await;
    let q = keys_query(&bob_api, &[&alice.user_id, &bob.user_id]).await;
    assert!(queried_devices(&q, &alice.user_id).is_empty(), "{q}");
    assert!(queried_devices(&q, &bob.user_id).is_empty(), "{q}");
    assert_eq!(otk_count(&upload_ok(&alice_api, json!({})).await), 0);

    // Valid keys and one one-time key.
    let k1 = dev.one_time_key();
    upload_ok(
        &alice_api,
        json!({"device_keys": dev.device_keys(), "one_time_keys": {otk("AAAAAQ"): k1}}),
    )
    .await;
    check_all("after a valid upload").await;

    // The same one-time key id with other content is refused; with the same content it is
    // a no-op.
    assert_400(
        &keys_upload(
            &alice_api,
            json!({"one_time_keys": {otk("AAAAAQ"): dev.one_time_key()}}),
        )
        .await,
        "one-time key id reused with different content",
    );
    let counts = upload_ok(&alice_api, json!({"one_time_keys": {otk("AAAAAQ"): k1}})).await;
    assert_eq!(otk_count(&counts), 1, "{counts}");

    // A refused upload stores nothing, not even its valid parts.
    assert_400(
        &keys_upload(
            &alice_api,
            json!({
                "device_keys": bob_dev,
                "one_time_keys": {otk("AAAAAZ"): dev.one_time_key()},
            }),
        )
        .await,
        "valid one-time key alongside bad device keys",
    );
    assert_eq!(otk_count(&upload_ok(&alice_api, json!({})).await), 1);

    // Nothing changed.
    let q = keys_query(&bob_api, &[&alice.user_id, &bob.user_id]).await;
    assert_eq!(
        queried_devices(&q, &alice.user_id),
        vec![alice.device_id.clone()],
        "{q}"
    );
    let mut served = q["device_keys"][&alice.user_id][&alice.device_id].clone();
    served.as_object_mut().unwrap().remove("unsigned");
    assert_eq!(served, dev.device_keys());
    assert!(queried_devices(&q, &bob.user_id).is_empty(), "{q}");
    assert_eq!(
        claim_one(&bob_api, &alice.user_id, &alice.device_id).await,
        Some((otk("AAAAAQ"), k1))
    );
    assert_eq!(
        claim_one(&bob_api, &alice.user_id, &alice.device_id).await,
        None
    );

    // Malformed queries and claims.
    // (A missing required field may also be called M_MISSING_PARAM.)
    let missing = ["M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM"];
    for (path, body, codes) in [
        ("query", json!({}), &missing[..]),
        ("query", json!({"device_keys": []}), MALFORMED),
        (
            "query",
            json!({"device_keys": {"@alice:localhost": "x"}}),
            MALFORMED,
        ),
        (
            "query",
            json!({"device_keys": {"not a user id": []}}),
            MALFORMED,
        ),
        ("claim", json!({}), &missing[..]),
        (
            "claim",
            json!({"one_time_keys": {"@alice:localhost": ["x"]}}),
            MALFORMED,
        ),
    ] {
        assert_bad(
            &bob_api
                .post(&format!("{CS}/keys/{path}"), body.clone())
                .await,
            codes,
            &format!("keys/{path} {body}"),
        );
    }
    let resp = TestServer::send(
        bob_api
            .builder(Method::POST, &format!("{CS}/keys/upload"))
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(&resp, 400, "M_NOT_JSON");
}

#[tokio::test]
async fn device_lists_follow_devices_and_shared_rooms() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let carol = local_user(&srv, "carol").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api, carol_api) =
        (api.as_user(&alice), api.as_user(&bob), api.as_user(&carol));
    upload_device_keys(&bob_api, &TestDevice::of(&bob)).await;
    let t0 = next_batch(&sync(&alice_api, None, None).await);
    let tc = next_batch(&sync(&carol_api, None, None).await);

    // A new device of a user Alice shares no room with is none of her business.
    let bob2 = srv.login("localhost", "bob", "pw-bob-1").await;
    upload_device_keys(&api.as_user(&bob2), &TestDevice::of(&bob2)).await;
    let s = sync(&alice_api, Some(&t0), None).await;
    assert!(
        !device_lists(&s, "changed").contains(&bob.user_id),
        "device change of a stranger announced: {s}"
    );
    let t1 = next_batch(&s);

    // Once they share an encrypted room, each sees the other in `changed`.
    let tb = next_batch(&sync(&bob_api, None, None).await);
    let room_id = shared_encrypted_room(&alice_api, &[(&bob_api, &bob.user_id)]).await;
    let s = sync(&alice_api, Some(&t1), None).await;
    assert!(
        device_lists(&s, "changed").contains(&bob.user_id),
        "Bob joined a shared encrypted room: {s}"
    );
    let t2 = next_batch(&s);
    let s = sync(&bob_api, Some(&tb), None).await;
    assert!(
        device_lists(&s, "changed").contains(&alice.user_id),
        "Bob joined a room with Alice: {s}"
    );

    let s = sync(&alice_api, Some(&t2), None).await;
    assert!(device_lists(&s, "changed").is_empty(), "nothing new: {s}");

    // A new device with keys, re-keyed device, a deleted device: each is announced.
    let bob3 = srv.login("localhost", "bob", "pw-bob-1").await;
    upload_device_keys(&api.as_user(&bob3), &TestDevice::of(&bob3)).await;
    let s = sync(&alice_api, Some(&t2), None).await;
    assert!(
        device_lists(&s, "changed").contains(&bob.user_id),
        "Bob added a device with keys: {s}"
    );
    let t3 = next_batch(&s);
    let s = sync(&alice_api, Some(&t3), None).await;
    assert!(device_lists(&s, "changed").is_empty(), "nothing new: {s}");
    let bob_api2 = api.as_user(&bob2);
    let rekeyed = TestDevice::of(&bob2);
    upload_device_keys(&bob_api2, &rekeyed).await;
    let s = sync(&alice_api, Some(&t3), None).await;
    assert!(
        device_lists(&s, "changed").contains(&bob.user_id),
        "Bob uploaded new keys for a device: {s}"
    );
    let t4 = next_batch(&s);
    let mut all = vec![
        bob.device_id.clone(),
        bob2.device_id.clone(),
        bob3.device_id.clone(),
    ];
    all.sort();
    assert_eq!(
        queried_devices(&keys_query(&alice_api, &[&bob.user_id]).await, &bob.user_id),
        all
    );
    let resp = bob_api
        .uia(
            Method::DELETE,
            &format!("{CS}/devices/{}", enc(&bob2.device_id)),
            json!({}),
            &[password_stage("bob", "pw-bob-1")],
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
    let s = sync(&alice_api, Some(&t4), None).await;
    assert!(
        device_lists(&s, "changed").contains(&bob.user_id),
        "Bob deleted a device: {s}"
    );
    let t5 = next_batch(&s);
    let mut left = vec![bob.device_id.clone(), bob3.device_id.clone()];
    left.sort();
    assert_eq!(
        queried_devices(&keys_query(&alice_api, &[&bob.user_id]).await, &bob.user_id),
        left
    );
    // POST /delete_devices too.
    let resp = bob_api
        .uia(
            Method::POST,
            &format!("{CS}/delete_devices"),
            json!({"devices": [bob3.device_id]}),
            &[password_stage("bob", "pw-bob-1")],
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
    let s = sync(&alice_api, Some(&t5), None).await;
    assert!(
        device_lists(&s, "changed").contains(&bob.user_id),
        "Bob deleted a device with /delete_devices: {s}"
    );
    let t6 = next_batch(&s);
    assert_eq!(
        queried_devices(&keys_query(&alice_api, &[&bob.user_id]).await, &bob.user_id),
        vec![bob.device_id.clone()]
    );

    // keys/changes covers the same ground.
    let changes = alice_api
        .get(&format!(
            "{CS}/keys/changes?from={}&to={}",
            enc(&t1),
            enc(&t6)
        ))
        .await
        .ok();
    assert!(
        changes["changed"]
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u == bob.user_id.as_str())),
        "{changes}"
    );

    // Carol saw none of it.
    let s = sync(&carol_api, Some(&tc), None).await;
    assert!(device_lists(&s, "changed").is_empty(), "{s}");

    // Bob leaves the only room they share: he is in Alice's `left`.
    leave_raw(&bob_api, &room_id).await.ok();
    let s = sync(&alice_api, Some(&t6), None).await;
    assert!(
        device_lists(&s, "left").contains(&bob.user_id),
        "Bob left the only shared room: {s}"
    );
}

#[tokio::test]
async fn device_lists_ignore_the_room_filter() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let carol = local_user(&srv, "carol").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api, carol_api) =
        (api.as_user(&alice), api.as_user(&bob), api.as_user(&carol));
    let room_id = shared_encrypted_room(&alice_api, &[(&bob_api, &bob.user_id)]).await;
    // Alice's client asks for no rooms at all; device lists still cover the rooms she is in.
    let no_rooms = json!({"room": {"rooms": []}});
    let t0 = next_batch(&sync(&alice_api, None, Some(&no_rooms)).await);

    // Carol joins a room Alice was already in: only Carol's membership changed.
    invite(&alice_api, &room_id, &carol.user_id).await;
    join(&carol_api, &room_id).await;
    let s = sync(&alice_api, Some(&t0), Some(&no_rooms)).await;
    assert!(
        s["rooms"]["join"].as_object().is_some_and(|j| j.is_empty()),
        "the filter lets no room through: {s}"
    );
    assert_eq!(device_lists(&s, "changed"), [carol.user_id.as_str()], "{s}");
    let t1 = next_batch(&s);

    let bob2 = srv.login("localhost", "bob", "pw-bob-1").await;
    upload_device_keys(&api.as_user(&bob2), &TestDevice::of(&bob2)).await;
    let s = sync(&alice_api, Some(&t1), Some(&no_rooms)).await;
    assert_eq!(device_lists(&s, "changed"), [bob.user_id.as_str()], "{s}");
    let t2 = next_batch(&s);

    leave_raw(&carol_api, &room_id).await.ok();
    let s = sync(&alice_api, Some(&t2), Some(&no_rooms)).await;
    assert_eq!(device_lists(&s, "left"), [carol.user_id.as_str()], "{s}");
}
