//! Server-side key backup over raw HTTP (spec v1.15, "Server-side key backups"): backup
//! versions, keys at all three levels, which session key replaces a stored one, `etag` and
//! `count`, and the errors for wrong and unknown versions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::e2ee_support::*;
use crate::harness::*;
use crate::room_support::*;

const BACKUP_ALGORITHM: &str = "m.megolm_backup.v1.curve25519-aes-sha2";

fn backup_info(device: &TestDevice) -> Value {
    json!({
        "algorithm": BACKUP_ALGORITHM,
        "auth_data": device.sign(&json!({"public_key": random_key()})),
    })
}

/// Key data with this metadata; `tag` goes into the (opaque) session data so that tests
/// can tell stored keys apart.
fn key_data(first_message_index: u64, forwarded_count: u64, is_verified: bool, tag: &str) -> Value {
    json!({
        "first_message_index": first_message_index,
        "forwarded_count": forwarded_count,
        "is_verified": is_verified,
        "session_data": {
            "ephemeral": random_key(),
            "ciphertext": format!("ciphertext-{tag}"),
            "mac": "bWFjbWFjbWFj",
        },
    })
}

fn q(version: &str) -> String {
    format!("version={}", enc(version))
}

async fn create_version(api: &Api<'_>, info: Value) -> String {
    let body = api
        .post(&format!("{CS}/room_keys/version"), info)
        .await
        .ok();
    body["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no version: {body}"))
        .to_owned()
}

/// `{etag, count}` of a keys update, asserting the shape.
#[track_caller]
fn update(resp: Resp) -> (String, u64) {
    let body = resp.ok();
    let etag = body["etag"]
        .as_str()
        .unwrap_or_else(|| panic!("no etag string: {body}"))
        .to_owned();
    let count = body["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no count: {body}"));
    (etag, count)
}

fn session_path(room_id: &str, session_id: &str, version: &str) -> String {
    format!(
        "{CS}/room_keys/keys/{}/{}?{}",
        enc(room_id),
        enc(session_id),
        q(version)
    )
}

fn room_path(room_id: &str, version: &str) -> String {
    format!("{CS}/room_keys/keys/{}?{}", enc(room_id), q(version))
}

fn all_path(version: &str) -> String {
    format!("{CS}/room_keys/keys?{}", q(version))
}

async fn current(api: &Api<'_>) -> Value {
    api.get(&format!("{CS}/room_keys/version")).await.ok()
}

#[tokio::test]
async fn backup_versions_keys_and_replacement_rules() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api) = (api.as_user(&alice), api.as_user(&bob));
    let dev = TestDevice::of(&alice);
    let room = "!room-one:localhost";
    let room2 = "!room-two:localhost";

    assert_error(
        &alice_api.get(&format!("{CS}/room_keys/version")).await,
        404,
        "M_NOT_FOUND",
    );
    let info = backup_info(&dev);
    let v1 = create_version(&alice_api, info.clone()).await;
    let cur = current(&alice_api).await;
    assert_eq!(cur["version"], v1.as_str(), "{cur}");
    assert_eq!(cur["algorithm"], BACKUP_ALGORITHM, "{cur}");
    assert_eq!(cur["auth_data"], info["auth_data"], "{cur}");
    assert_eq!(cur["count"], 0, "{cur}");
    let etag0 = cur["etag"]
        .as_str()
        .unwrap_or_else(|| panic!("no etag: {cur}"))
        .to_owned();
    let by_version = alice_api
        .get(&format!("{CS}/room_keys/version/{}", enc(&v1)))
        .await
        .ok();
    assert_eq!(by_version, cur);
    assert_error(
        &alice_api
            .get(&format!("{CS}/room_keys/version/no-such-version"))
            .await,
        404,
        "M_NOT_FOUND",
    );
    // Another user's backup is invisible.
    assert_error(
        &bob_api.get(&format!("{CS}/room_keys/version")).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &bob_api
            .get(&format!("{CS}/room_keys/version/{}", enc(&v1)))
            .await,
        404,
        "M_NOT_FOUND",
    );

    // One session: the replacement rules.
    let put = |key: Value| {
        let alice_api = alice_api.clone();
        let v1 = v1.clone();
        async move {
            update(
                alice_api
                    .put(&session_path(room, "session-1", &v1), key)
                    .await,
            )
        }
    };
    let get = || {
        let alice_api = alice_api.clone();
        let v1 = v1.clone();
        async move {
            alice_api
                .get(&session_path(room, "session-1", &v1))
                .await
                .ok()
        }
    };
    let k = key_data(5, 1, false, "a");
    let (etag1, count) = put(k.clone()).await;
    assert_eq!(count, 1);
    assert_ne!(etag1, etag0, "the etag must change when a key is added");
    assert_eq!(get().await, k);

    // (new key, whether it replaces the stored one)
    let steps = [
        (
            key_data(3, 2, false, "b"),
            true,
            "lower first_message_index wins",
        ),
        (
            key_data(10, 0, false, "c"),
            false,
            "higher first_message_index loses",
        ),
        (
            key_data(3, 1, false, "d"),
            true,
            "same index, lower forwarded_count wins",
        ),
        (key_data(3, 5, true, "f"), true, "verified beats unverified"),
        (
            key_data(0, 0, false, "g"),
            false,
            "unverified never beats verified",
        ),
        (
            key_data(1, 0, true, "h"),
            true,
            "both verified: lower index wins",
        ),
        (
            key_data(1, 3, true, "i"),
            false,
            "both verified, same index: higher count loses",
        ),
    ];
    let mut stored = k;
    let mut etag = etag1;
    for (key, replaces, what) in steps {
        let (new_etag, count) = put(key.clone()).await;
        assert_eq!(count, 1, "{what}");
        if replaces {
            stored = key;
            assert_ne!(new_etag, etag, "{what}: the etag must change");
        }
        etag = new_etag;
        assert_eq!(get().await, stored, "{what}");
        let cur = current(&alice_api).await;
        assert_eq!(cur["etag"], etag.as_str(), "{what}: {cur}");
        assert_eq!(cur["count"], 1, "{what}: {cur}");
    }

    // Room level and top level.
    let (s2, s3, s4) = (
        key_data(0, 0, false, "s2"),
        key_data(0, 0, false, "s3"),
        key_data(0, 0, false, "s4"),
    );
    let (_, count) = update(
        alice_api
            .put(
                &room_path(room, &v1),
                json!({"sessions": {"session-2": s2, "session-3": s3}}),
            )
            .await,
    );
    assert_eq!(count, 3);
    let (etag, count) = update(
        alice_api
            .put(
                &all_path(&v1),
                json!({"rooms": {room2: {"sessions": {"session-4": s4}}}}),
            )
            .await,
    );
    assert_eq!(count, 4);
    let all = json!({"rooms": {
        room: {"sessions": {"session-1": stored, "session-2": s2, "session-3": s3}},
        room2: {"sessions": {"session-4": s4}},
    }});
    assert_eq!(alice_api.get(&all_path(&v1)).await.ok(), all);
    assert_eq!(
        alice_api.get(&room_path(room, &v1)).await.ok(),
        all["rooms"][room]
    );
    assert_eq!(
        alice_api
            .get(&room_path("!unknown:localhost", &v1))
            .await
            .ok(),
        json!({"sessions": {}})
    );
    assert_error(
        &alice_api
            .get(&session_path(room, "no-such-session", &v1))
            .await,
        404,
        "M_NOT_FOUND",
    );
    let cur = current(&alice_api).await;
    assert_eq!(
        (cur["count"].clone(), cur["etag"].clone()),
        (json!(4), json!(etag))
    );

    // Malformed key data changes nothing.
    for bad in [
        json!({"first_message_index": 0}),
        json!({"first_message_index": "zero", "forwarded_count": 0, "is_verified": false, "session_data": {}}),
        json!("nope"),
    ] {
        let resp = alice_api
            .put(&session_path(room, "session-5", &v1), bad.clone())
            .await;
        assert!(
            resp.status == 400
                && ["M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM"].contains(&resp.errcode()),
            "{bad}: {} {}",
            resp.status,
            resp.text
        );
    }
    assert_eq!(alice_api.get(&all_path(&v1)).await.ok(), all);

    // Bob can't touch Alice's backup.
    let resp = bob_api
        .put(
            &session_path(room, "session-9", &v1),
            key_data(0, 0, true, "bob"),
        )
        .await;
    assert!(
        resp.status == 403 || resp.status == 404,
        "Bob wrote to Alice's backup: {} {}",
        resp.status,
        resp.text
    );
    assert_eq!(alice_api.get(&all_path(&v1)).await.ok(), all);

    // A new version becomes the current one; writes to the old one are refused.
    let v2 = create_version(&alice_api, backup_info(&dev)).await;
    assert_ne!(v2, v1);
    let cur = current(&alice_api).await;
    assert_eq!(cur["version"], v2.as_str(), "{cur}");
    assert_eq!(cur["count"], 0, "{cur}");
    for (method, path, body) in [
        (
            Method::PUT,
            session_path(room, "session-6", &v1),
            Some(key_data(0, 0, false, "old")),
        ),
        (
            Method::PUT,
            room_path(room, &v1),
            Some(json!({"sessions": {"session-6": key_data(0, 0, false, "old")}})),
        ),
        (Method::PUT, all_path(&v1), Some(json!({"rooms": {}}))),
    ] {
        let resp = alice_api.send(method, &path, body.as_ref()).await;
        assert_error(&resp, 403, "M_WRONG_ROOM_KEYS_VERSION");
        assert_eq!(resp.body["current_version"], v2.as_str(), "{}", resp.text);
    }
    assert_error(
        &alice_api.get(&all_path("no-such-version")).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &alice_api.get(&room_path(room, "no-such-version")).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &alice_api
            .get(&session_path(room, "session-1", "no-such-version"))
            .await,
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(
        alice_api.get(&all_path(&v2)).await.ok(),
        json!({"rooms": {}})
    );

    // Deleting keys at each level, on the current version.
    let (etag_a, count) = update(
        alice_api
            .put(
                &all_path(&v2),
                json!({"rooms": {
                    room: {"sessions": {"x1": key_data(0, 0, false, "x1"), "x2": key_data(0, 0, false, "x2")}},
                    room2: {"sessions": {"x3": key_data(0, 0, false, "x3")}},
                }}),
            )
            .await,
    );
    assert_eq!(count, 3);
    let (etag_b, count) = update(alice_api.delete(&session_path(room, "x1", &v2)).await);
    assert_eq!(count, 2);
    assert_ne!(etag_b, etag_a, "the etag must change when a key is deleted");
    assert_error(
        &alice_api.get(&session_path(room, "x1", &v2)).await,
        404,
        "M_NOT_FOUND",
    );
    let (_, count) = update(alice_api.delete(&room_path(room, &v2)).await);
    assert_eq!(count, 1);
    assert_eq!(
        alice_api.get(&room_path(room, &v2)).await.ok(),
        json!({"sessions": {}})
    );
    let (_, count) = update(alice_api.delete(&all_path(&v2)).await);
    assert_eq!(count, 0);
    assert_eq!(
        alice_api.get(&all_path(&v2)).await.ok(),
        json!({"rooms": {}})
    );

    // Updating the backup's auth_data.
    let new_info = backup_info(&dev);
    let mut body = new_info.clone();
    body["version"] = v2.as_str().into();
    assert_eq!(
        alice_api
            .put(
                &format!("{CS}/room_keys/version/{}", enc(&v2)),
                body.clone()
            )
            .await
            .ok(),
        json!({})
    );
    let cur = current(&alice_api).await;
    assert_eq!(cur["auth_data"], new_info["auth_data"], "{cur}");
    let mut mismatched = new_info.clone();
    mismatched["version"] = v1.as_str().into();
    assert_error(
        &alice_api
            .put(&format!("{CS}/room_keys/version/{}", enc(&v2)), mismatched)
            .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &alice_api
            .put(
                &format!("{CS}/room_keys/version/no-such-version"),
                new_info.clone(),
            )
            .await,
        404,
        "M_NOT_FOUND",
    );

    // Deleting versions.
    for v in [&v1, &v2] {
        assert_eq!(
            alice_api
                .delete(&format!("{CS}/room_keys/version/{}", enc(v)))
                .await
                .ok(),
            json!({})
        );
    }
    assert_error(
        &alice_api.get(&format!("{CS}/room_keys/version")).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &alice_api
            .get(&format!("{CS}/room_keys/version/{}", enc(&v2)))
            .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(&alice_api.get(&all_path(&v1)).await, 404, "M_NOT_FOUND");
    // Deleting again succeeds; an unknown version is 404.
    assert_eq!(
        alice_api
            .delete(&format!("{CS}/room_keys/version/{}", enc(&v2)))
            .await
            .ok(),
        json!({})
    );
    assert_error(
        &alice_api
            .delete(&format!("{CS}/room_keys/version/no-such-version"))
            .await,
        404,
        "M_NOT_FOUND",
    );
    // A version created after the deletions is the current one, and empty.
    let v3 = create_version(&alice_api, backup_info(&dev)).await;
    let cur = current(&alice_api).await;
    assert_eq!(cur["version"], v3.as_str(), "{cur}");
    assert_eq!(cur["count"], 0, "{cur}");
    assert_eq!(
        alice_api.get(&all_path(&v3)).await.ok(),
        json!({"rooms": {}})
    );
}

#[tokio::test]
async fn bad_backup_versions_are_refused() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    for body in [
        json!({"auth_data": {"public_key": "abc"}}),
        json!({"algorithm": BACKUP_ALGORITHM}),
        json!({"algorithm": BACKUP_ALGORITHM, "auth_data": "nope"}),
        json!({"algorithm": 5, "auth_data": {}}),
    ] {
        let resp = api
            .post(&format!("{CS}/room_keys/version"), body.clone())
            .await;
        assert!(
            resp.status == 400
                && ["M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM"].contains(&resp.errcode()),
            "{body}: {} {}",
            resp.status,
            resp.text
        );
    }
    // The spec knows one algorithm; any other is refused, not stored.
    for algorithm in ["bogus", "m.megolm_backup.v2", ""] {
        let resp = api
            .post(
                &format!("{CS}/room_keys/version"),
                json!({"algorithm": algorithm, "auth_data": {"public_key": "abc"}}),
            )
            .await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
    }
    assert_error(
        &api.get(&format!("{CS}/room_keys/version")).await,
        404,
        "M_NOT_FOUND",
    );
    // No backup at all: writing keys is refused.
    let resp = api
        .put(
            &session_path("!r:localhost", "s", "1"),
            key_data(0, 0, false, "x"),
        )
        .await;
    assert!(
        resp.status == 403 || resp.status == 404,
        "{} {}",
        resp.status,
        resp.text
    );
    assert_error(
        &srv.on("localhost")
            .get(&format!("{CS}/room_keys/version"))
            .await,
        401,
        "M_MISSING_TOKEN",
    );
}
