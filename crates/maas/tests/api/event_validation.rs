//! What the server refuses to put into a room, and that a refused request changes nothing
//! (spec v1.15, "Size limits", appendices "User Identifiers", "Transaction identifiers"):
//! event types and state keys of at most 255 bytes, no empty event type, member events only for
//! valid user ids, transaction ids scoped to the request path, and a `createRoom` whose events
//! can't all be sent creates no room at all.

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

async fn joined_rooms(api: &Api<'_>) -> Vec<Value> {
    let body = api.get(&format!("{CS}/joined_rooms")).await.ok();
    body["joined_rooms"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn event_types_and_state_keys_are_capped_at_255_bytes() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let room = create_room(&api, json!({})).await;
    let before = full_state(&api, &room).await.len();

    let long_type = format!("m.{}", "x".repeat(254));
    assert_eq!(long_type.len(), 256);
    let resp = send_raw(&api, &room, &long_type, json!({"body": "x"})).await;
    assert_error(&resp, 413, "M_TOO_LARGE");
    // 255 bytes exactly are fine.
    send(&api, &room, &long_type[..255], json!({"body": "x"})).await;

    let long_key = "k".repeat(256);
    let resp = put_state_raw(&api, &room, "m.custom", &long_key, json!({})).await;
    assert_error(&resp, 413, "M_TOO_LARGE");
    let resp = put_state_raw(&api, &room, &long_type, "", json!({})).await;
    assert_error(&resp, 413, "M_TOO_LARGE");
    assert_eq!(
        full_state(&api, &room).await.len(),
        before,
        "no state changed"
    );
    put_state(&api, &room, "m.custom", &long_key[..255], json!({})).await;

    // An empty event type (`…/send//{txnId}`) is no event type.
    let resp = api
        .put(
            &format!("{CS}/rooms/{}/send//{}", enc(&room), txn_id()),
            json!({"body": "x"}),
        )
        .await;
    assert!(
        matches!(resp.status, 400 | 404),
        "an empty event type must be refused: {} {}",
        resp.status,
        resp.body
    );
    let messages = messages_raw(&api, &room, "dir=b&limit=50").await.ok();
    let empty_type = messages["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["type"] == "");
    assert!(!empty_type, "{messages}");
}

#[tokio::test]
async fn member_events_are_only_for_valid_user_ids() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let room = create_room(&api, json!({})).await;
    let before = full_state(&api, &room).await.len();
    for bad in ["@a b:a.test", "@:a.test"] {
        for action in ["ban", "invite", "kick", "unban"] {
            let resp = member_action(&api, &room, action, bad, None).await;
            assert_eq!(resp.status, 400, "{action} {bad:?}: {}", resp.body);
        }
        let resp = put_state_raw(
            &api,
            &room,
            "m.room.member",
            bad,
            json!({"membership": "ban"}),
        )
        .await;
        assert_eq!(resp.status, 400, "state {bad:?}: {}", resp.body);
    }
    assert_eq!(
        full_state(&api, &room).await.len(),
        before,
        "no member event"
    );
    // A historical (not fully conforming, still valid) user id is a user id.
    let body = member_action(&api, &room, "ban", "@Old.Style:a.test", None)
        .await
        .ok();
    assert_eq!(body, json!({}));
}

#[tokio::test]
async fn transaction_ids_are_scoped_to_the_request_path() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let (room_a, room_b) = (
        create_room(&api, json!({})).await,
        create_room(&api, json!({})).await,
    );
    let txn = txn_id();
    let sent = |room: &str, kind: &str| {
        let (api, room, kind, txn) = (api.clone(), room.to_owned(), kind.to_owned(), txn.clone());
        async move { event_id_of(send_txn(&api, &room, &kind, &txn, json!({"body": kind})).await) }
    };
    let first = sent(&room_a, "m.room.message").await;
    // The same path again is a retransmission: the same event, nothing new.
    assert_eq!(sent(&room_a, "m.room.message").await, first);
    // Another room or another event type is another request.
    let other_room = sent(&room_b, "m.room.message").await;
    let other_type = sent(&room_a, "m.custom").await;
    assert_ne!(other_room, first);
    assert_ne!(other_type, first);
    assert_ne!(other_type, other_room);
    let in_a = messages_raw(&api, &room_a, "dir=b&limit=50").await.ok();
    let count = |kind: &str| {
        in_a["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == kind)
            .count()
    };
    assert_eq!(
        (count("m.room.message"), count("m.custom")),
        (1, 1),
        "{in_a}"
    );

    // A redaction's path names the redacted event.
    let redact = |event: &str| {
        let (api, room, event, txn) = (api.clone(), room_a.clone(), event.to_owned(), txn.clone());
        async move {
            let path = format!(
                "{CS}/rooms/{}/redact/{}/{}",
                enc(&room),
                enc(&event),
                enc(&txn)
            );
            event_id_of(api.put(&path, json!({})).await)
        }
    };
    let redaction = redact(&first).await;
    assert_eq!(redact(&first).await, redaction);
    assert_ne!(redact(&other_type).await, redaction);
}

#[tokio::test]
async fn a_refused_create_room_creates_nothing() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let refused = [
        (
            json!({"power_level_content_override": {"x": 1.5}}),
            "M_BAD_JSON",
        ),
        (
            json!({"initial_state": [{"type": "m.custom", "state_key": "",
                "content": {"f": 0.5}}]}),
            "M_BAD_JSON",
        ),
        (
            json!({"power_level_content_override": {"users": "everyone"}}),
            "M_FORBIDDEN",
        ),
        (
            json!({"initial_state": [{"type": "m.room.member",
                "state_key": "@someone:localhost", "content": {"membership": "join"}}]}),
            "M_FORBIDDEN",
        ),
    ];
    for (body, errcode) in refused {
        let resp = create_room_raw(&api, body.clone()).await;
        assert_eq!(resp.errcode(), errcode, "{body}: {}", resp.body);
        assert_eq!(joined_rooms(&api).await, Vec::<Value>::new(), "{body}");
    }
    // Nothing of the refused rooms shows in sync either, and the next room is whole.
    let sync = sync(&api, None, None).await;
    assert!(room_ids(&sync, "join").is_empty(), "{sync}");
    let room = create_room(&api, json!({"name": "fine"})).await;
    assert_eq!(joined_rooms(&api).await, vec![json!(room)]);
    assert_eq!(
        state_content(&api, &room, "m.room.name", "").await["name"],
        "fine"
    );
}

#[tokio::test]
async fn to_device_transaction_ids_are_scoped_to_the_event_type() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let (alice_api, bob_api) = (api.as_user(&alice), api.as_user(&bob));
    let since = next_batch(&sync(&bob_api, None, None).await);
    let txn = txn_id();
    for kind in ["m.test.one", "m.test.one", "m.test.two"] {
        let path = format!("{CS}/sendToDevice/{kind}/{}", enc(&txn));
        let messages = json!({"messages": {bob.user_id.clone(): {"*": {"kind": kind}}}});
        assert_eq!(alice_api.put(&path, messages).await.ok(), json!({}));
    }
    let sync = sync(&bob_api, Some(&since), None).await;
    let kinds: Vec<&str> = sync["to_device"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds, ["m.test.one", "m.test.two"], "{sync}");
}
