//! Sending and reading events: `send/{type}/{txnId}` idempotency, `event/{eventId}`,
//! `state/{type}/{stateKey}` GET and PUT, `state`, `redact`, size limit and access checks.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;
use crate::room_support::*;

async fn two_in_a_room(srv: &TestServer) -> (Session, Session, String) {
    let alice = local_user(srv, "alice").await;
    let bob = local_user(srv, "bob").await;
    let room = create_room(
        &srv.on("localhost").as_user(&alice),
        json!({"preset": "public_chat", "name": "Events"}),
    )
    .await;
    join(&srv.on("localhost").as_user(&bob), &room).await;
    (alice, bob, room)
}

#[tokio::test]
async fn send_is_idempotent_per_device_and_txn() {
    let srv = TestServer::start().await;
    let (alice, _bob, room) = two_in_a_room(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let since = next_batch(&sync(&api, None, None).await);

    let content = json!({"msgtype": "m.text", "body": "once"});
    let first = event_id_of(send_txn(&api, &room, "m.room.message", "t1", content.clone()).await);
    let again = event_id_of(send_txn(&api, &room, "m.room.message", "t1", content.clone()).await);
    assert_eq!(first, again, "same transaction must give the same event");
    // Even with another body the transaction isn't sent twice.
    let third = event_id_of(
        send_txn(
            &api,
            &room,
            "m.room.message",
            "t1",
            json!({"msgtype": "m.text", "body": "changed"}),
        )
        .await,
    );
    assert_eq!(first, third);
    // Another transaction id is another event.
    let other = event_id_of(send_txn(&api, &room, "m.room.message", "t2", content.clone()).await);
    assert_ne!(first, other);
    // The same transaction id from another device of the same user is another event.
    let second_device = srv.login("localhost", "alice", "pw-alice-1").await;
    let api2 = srv.on("localhost").as_user(&second_device);
    let from_other_device =
        event_id_of(send_txn(&api2, &room, "m.room.message", "t1", content.clone()).await);
    assert_ne!(first, from_other_device);

    let s = sync(&api, Some(&since), None).await;
    let events = timeline(&s, &room);
    assert_eq!(
        ids(&events),
        vec![first.clone(), other.clone(), from_other_device.clone()],
        "{s}"
    );
    assert_eq!(bodies(&events), vec!["once", "once", "once"]);
    // The sending device sees its transaction id.
    assert_eq!(events[0]["unsigned"]["transaction_id"], "t1", "{s}");
    assert_eq!(events[1]["unsigned"]["transaction_id"], "t2", "{s}");
    assert!(
        events[2]["unsigned"].get("transaction_id").is_none(),
        "another device's transaction id leaked: {s}"
    );
}

#[tokio::test]
async fn get_event_and_unknown_event() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = two_in_a_room(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let before = now_ms();
    let id = send(
        &api,
        &room,
        "org.example.custom",
        json!({"answer": 42, "nested": {"list": [1, "two"]}}),
    )
    .await;
    let ev = get_event_raw(&bob_api, &room, &id).await.ok();
    assert_eq!(ev["event_id"], id.as_str(), "{ev}");
    assert_eq!(ev["room_id"], room.as_str(), "{ev}");
    assert_eq!(ev["type"], "org.example.custom", "{ev}");
    assert_eq!(ev["sender"], alice.user_id.as_str(), "{ev}");
    assert_eq!(
        ev["content"],
        json!({"answer": 42, "nested": {"list": [1, "two"]}})
    );
    let ts = ev["origin_server_ts"]
        .as_i64()
        .unwrap_or_else(|| panic!("{ev}"));
    assert!(ts >= before - 5000 && ts <= now_ms() + 5000, "{ev}");
    assert!(ev.get("state_key").is_none(), "{ev}");
    // A client event has no PDU internals.
    for key in [
        "auth_events",
        "prev_events",
        "hashes",
        "signatures",
        "depth",
    ] {
        assert!(ev.get(key).is_none(), "client event with {key}: {ev}");
    }

    let resp = get_event_raw(&bob_api, &room, "$doesnotexist").await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    // An event of another room isn't found through this one.
    let other = create_room(&api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &other).await;
    let resp = get_event_raw(&bob_api, &other, &id).await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    // Someone who was never in the room can't read it.
    let eve = local_user(&srv, "eve").await;
    let resp = get_event_raw(&srv.on("localhost").as_user(&eve), &room, &id).await;
    assert!(
        matches!(
            (resp.status, resp.errcode()),
            (404, "M_NOT_FOUND") | (403, "M_FORBIDDEN")
        ),
        "non-member read an event: {} {}",
        resp.status,
        resp.text
    );
    assert!(!resp.text.contains("answer"), "{}", resp.text);
}

#[tokio::test]
async fn state_get_put_and_full_state() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = two_in_a_room(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let topic_id = put_state(&api, &room, "m.room.topic", "", json!({"topic": "first"})).await;
    assert_eq!(
        state_content(&bob_api, &room, "m.room.topic", "").await["topic"],
        "first"
    );
    let second = put_state(&api, &room, "m.room.topic", "", json!({"topic": "second"})).await;
    assert_ne!(topic_id, second);
    assert_eq!(
        state_content(&bob_api, &room, "m.room.topic", "").await["topic"],
        "second"
    );
    // Custom state with a state key, and a trailing-slash-free empty key.
    put_state(&api, &room, "org.example.widget", "w1", json!({"url": "x"})).await;
    assert_eq!(
        state_content(&bob_api, &room, "org.example.widget", "w1").await,
        json!({"url": "x"})
    );
    let resp = get_state_raw(&bob_api, &room, "org.example.widget", "w2").await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = get_state_raw(&bob_api, &room, "m.room.avatar", "").await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    // `format=event` gives the whole event.
    let ev = bob_api
        .get(&format!(
            "{}?format=event",
            state_path(&room, "m.room.topic", "")
        ))
        .await
        .ok();
    assert_eq!(ev["event_id"], second.as_str(), "{ev}");
    assert_eq!(ev["content"]["topic"], "second", "{ev}");

    let state = full_state(&bob_api, &room).await;
    for (t, k) in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("org.example.widget", "w1"),
        ("m.room.member", alice.user_id.as_str()),
        ("m.room.member", bob.user_id.as_str()),
    ] {
        let ev = find(&state, t, Some(k)).unwrap_or_else(|| panic!("no {t}/{k} in {state:?}"));
        assert!(ev["event_id"].is_string(), "{ev}");
    }
    // Each (type, state_key) appears once: the current value.
    let topics: Vec<_> = state
        .iter()
        .filter(|e| e["type"] == "m.room.topic")
        .collect();
    assert_eq!(topics.len(), 1, "{topics:?}");
    assert_eq!(topics[0]["content"]["topic"], "second");
    let mut keys: Vec<(String, String)> = state
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["state_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "duplicate state entries");

    // Setting a member event for someone else directly is refused.
    let resp = put_state_raw(
        &bob_api,
        &room,
        "m.room.member",
        &alice.user_id,
        json!({"membership": "leave"}),
    )
    .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // A state key starting with another user's id is theirs only.
    let resp = put_state_raw(
        &bob_api,
        &room,
        "org.example.mine",
        &alice.user_id,
        json!({}),
    )
    .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}

#[tokio::test]
async fn oversized_events_are_refused() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = two_in_a_room(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let since = next_batch(&sync(&srv.on("localhost").as_user(&bob), None, None).await);

    let big = "x".repeat(70_000);
    let resp = send_raw(
        &api,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": big}),
    )
    .await;
    assert_error(&resp, 413, "M_TOO_LARGE");
    let resp = put_state_raw(&api, &room, "m.room.topic", "", json!({"topic": big})).await;
    assert_error(&resp, 413, "M_TOO_LARGE");
    // Just over the limit once wrapped in a PDU.
    let close = "y".repeat(65_400);
    let resp = send_raw(
        &api,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": close}),
    )
    .await;
    assert_error(&resp, 413, "M_TOO_LARGE");
    // A large but acceptable event goes through.
    let fine = "z".repeat(60_000);
    let id = send(
        &api,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": fine}),
    )
    .await;

    let bob_api = srv.on("localhost").as_user(&bob);
    let s = sync(&bob_api, Some(&since), None).await;
    assert_eq!(
        ids(&timeline(&s, &room)),
        vec![id],
        "only the accepted event"
    );
    // The room never got a topic.
    let resp = get_state_raw(&bob_api, &room, "m.room.topic", "").await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn non_members_cannot_send_or_read() {
    let srv = TestServer::start().await;
    let (alice, _bob, room) = two_in_a_room(&srv).await;
    let eve = local_user(&srv, "eve").await;
    let eve_api = srv.on("localhost").as_user(&eve);

    let resp = send_raw(
        &eve_api,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "intruder"}),
    )
    .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = put_state_raw(&eve_api, &room, "m.room.topic", "", json!({"topic": "x"})).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = get_state_raw(&eve_api, &room, "m.room.name", "").await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = eve_api
        .get(&format!("{CS}/rooms/{}/state", enc(&room)))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = messages_raw(&eve_api, &room, "dir=b").await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // A room that doesn't exist at all.
    let resp = send_raw(
        &eve_api,
        "!nowhere:localhost",
        "m.room.message",
        json!({"msgtype": "m.text", "body": "x"}),
    )
    .await;
    assert!(
        matches!(resp.status, 403 | 404),
        "send to unknown room: {} {}",
        resp.status,
        resp.text
    );
    // Alice's room didn't get anything from Eve.
    let api = srv.on("localhost").as_user(&alice);
    let history = paginate(&api, &room, "b", None, 50).await;
    assert!(
        history.iter().all(|e| e["sender"] != eve.user_id.as_str()),
        "{history:?}"
    );
}

#[tokio::test]
async fn bad_json_is_refused() {
    let srv = TestServer::start().await;
    let (alice, _bob, room) = two_in_a_room(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let path = format!("{CS}/rooms/{}/send/m.room.message/{}", enc(&room), txn_id());
    let resp = TestServer::send(
        api.builder(Method::PUT, &path)
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(&resp, 400, "M_NOT_JSON");
    let resp = api.put(&path, json!(["an", "array"])).await;
    assert_error(&resp, 400, "M_BAD_JSON");
    let resp = api
        .post(
            &format!("{CS}/createRoom"),
            json!({"invite": ["not a user id"]}),
        )
        .await;
    assert!(
        matches!(resp.errcode(), "M_BAD_JSON" | "M_INVALID_PARAM") && resp.status == 400,
        "{} {}",
        resp.status,
        resp.text
    );
}

#[tokio::test]
async fn redact_removes_content_and_keeps_the_event() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = two_in_a_room(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let alices = send_text(&api, &room, "regret this").await;
    let bobs = send_text(&bob_api, &room, "bob's own").await;
    let since = next_batch(&sync(&bob_api, None, None).await);

    // Bob (power 0) can't redact Alice's event, but can redact his own.
    let path = |id: &str| format!("{CS}/rooms/{}/redact/{}/{}", enc(&room), enc(id), txn_id());
    let resp = bob_api.put(&path(&alices), json!({})).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    event_id_of(bob_api.put(&path(&bobs), json!({})).await);

    // Alice (moderator) redacts hers with a reason.
    let redaction = event_id_of(api.put(&path(&alices), json!({"reason": "oops"})).await);
    let ev = get_event_raw(&bob_api, &room, &alices).await.ok();
    assert_eq!(ev["content"], json!({}), "{ev}");
    assert_eq!(ev["type"], "m.room.message", "{ev}");
    assert_eq!(
        ev["unsigned"]["redacted_because"]["event_id"],
        redaction.as_str(),
        "{ev}"
    );
    assert_eq!(
        ev["unsigned"]["redacted_because"]["content"]["reason"], "oops",
        "{ev}"
    );

    // The redaction reaches Bob by sync, pointing at the event (v11+: in content).
    let s = sync(&bob_api, Some(&since), None).await;
    let events = timeline(&s, &room);
    let reds: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "m.room.redaction")
        .collect();
    assert_eq!(reds.len(), 2, "Bob's and Alice's redactions: {s}");
    assert_eq!(reds[0]["content"]["redacts"], bobs.as_str(), "{s}");
    assert_eq!(reds[1]["event_id"], redaction.as_str(), "{s}");
    assert_eq!(reds[1]["content"]["redacts"], alices.as_str(), "{s}");
    // Both redacted events come with empty content, wherever they're seen from now on.
    let s = sync(&bob_api, None, Some(&timeline_limit(50))).await;
    for id in [&alices, &bobs] {
        let ev = timeline(&s, &room)
            .into_iter()
            .find(|e| e["event_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} gone from the timeline: {s}"));
        assert_eq!(ev["content"], json!({}), "{ev}");
        assert!(ev["unsigned"]["redacted_because"].is_object(), "{ev}");
    }

    // Redacting a state event empties the current state's content.
    let name_id = put_state(&api, &room, "m.room.name", "", json!({"name": "to go"})).await;
    event_id_of(api.put(&path(&name_id), json!({})).await);
    let resp = get_state_raw(&bob_api, &room, "m.room.name", "").await;
    // The current name event is redacted: its content is empty.
    assert!(
        resp.status == 404 || resp.body == json!({}),
        "redacted name still has content: {} {}",
        resp.status,
        resp.text
    );
}
