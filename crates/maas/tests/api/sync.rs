//! `/sync`: initial and incremental, long-polling, limited timelines, filters, invites and
//! leaves, ephemeral events (typing, receipts), account data and tags, notification counts.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2ee_support::{TestDevice, device_lists, upload_device_keys};
use crate::harness::*;
use crate::room_support::*;

async fn alice_bob_room(srv: &TestServer, body: Value) -> (Session, Session, String) {
    let alice = local_user(srv, "alice").await;
    let bob = local_user(srv, "bob").await;
    let room = create_room(&srv.on("localhost").as_user(&alice), body).await;
    join(&srv.on("localhost").as_user(&bob), &room).await;
    (alice, bob, room)
}

fn ephemeral_of_type(sync: &Value, room_id: &str, event_type: &str) -> Vec<Value> {
    room_part(sync, room_id, "ephemeral")
        .into_iter()
        .filter(|e| e["type"] == event_type)
        .collect()
}

#[tokio::test]
async fn initial_sync_has_joined_room_with_state_and_timeline() {
    let srv = TestServer::start().await;
    let (alice, bob, room) =
        alice_bob_room(&srv, json!({"preset": "public_chat", "name": "Sync room"})).await;
    let api = srv.on("localhost").as_user(&alice);
    let hello = send_text(&api, &room, "hello").await;

    let s = sync(&srv.on("localhost").as_user(&bob), None, None).await;
    assert_eq!(room_ids(&s, "join"), vec![room.clone()], "{s}");
    let tl = timeline(&s, &room);
    assert_eq!(
        tl.last().map(|e| e["event_id"].clone()),
        Some(json!(hello)),
        "latest event last in the timeline: {s}"
    );
    let state = room_part(&s, &room, "state");
    // Everything needed to render the room is in state or timeline, each event once.
    let mut all = state.clone();
    all.extend(tl.iter().cloned());
    for (t, k) in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.name", ""),
        ("m.room.member", alice.user_id.as_str()),
        ("m.room.member", bob.user_id.as_str()),
    ] {
        assert!(find(&all, t, Some(k)).is_some(), "no {t}/{k} in {s}");
    }
    let state_ids = ids(&state);
    for id in ids(&tl) {
        assert!(
            !state_ids.contains(&id),
            "{id} both in state and timeline: {s}"
        );
    }
    for ev in &all {
        for key in ["event_id", "sender", "type", "origin_server_ts", "content"] {
            assert!(ev.get(key).is_some(), "sync event without {key}: {ev}");
        }
    }
    let summary = &joined(&s, &room)["summary"];
    assert_eq!(summary["m.joined_member_count"], 2, "{s}");
    // Top-level sections are well-formed.
    assert!(
        s["rooms"]["invite"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "{s}"
    );
}

#[tokio::test]
async fn incremental_sync_returns_only_new_events() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = alice_bob_room(&srv, json!({"preset": "public_chat"})).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    send_text(&api, &room, "old").await;
    let since = next_batch(&sync(&bob_api, None, None).await);

    let m1 = send_text(&api, &room, "new 1").await;
    let m2 = send_text(&bob_api, &room, "new 2").await;
    let s = sync(&bob_api, Some(&since), None).await;
    assert_eq!(
        ids(&timeline(&s, &room)),
        vec![m1.clone(), m2.clone()],
        "{s}"
    );
    assert_eq!(
        joined(&s, &room)["timeline"]["limited"],
        json!(false),
        "{s}"
    );
    assert!(room_part(&s, &room, "state").is_empty(), "{s}");
    // The same token gives the same answer.
    let again = sync(&bob_api, Some(&since), None).await;
    assert_eq!(ids(&timeline(&again, &room)), vec![m1, m2]);

    // Nothing new: the room isn't in the response (or has an empty timeline).
    let next = next_batch(&s);
    let s = sync(&bob_api, Some(&next), None).await;
    assert!(timeline(&s, &room).is_empty(), "{s}");

    // An unknown token is refused, not treated as an initial sync.
    let resp = sync_raw(&bob_api, "timeout=0&since=garbage-token").await;
    assert!(
        (400..500).contains(&resp.status),
        "bogus since accepted: {} {}",
        resp.status,
        resp.text
    );
}

#[tokio::test]
async fn long_poll_wakes_when_another_user_sends() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = alice_bob_room(&srv, json!({"preset": "public_chat"})).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let since = next_batch(&sync(&bob_api, None, None).await);

    // Nothing happens: the server waits (about) the timeout and returns nothing new.
    let start = Instant::now();
    let s = sync_raw(&bob_api, &format!("timeout=1000&since={}", enc(&since)))
        .await
        .ok();
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "an idle long-poll returned after {:?}: {s}",
        start.elapsed()
    );
    assert!(timeline(&s, &room).is_empty(), "{s}");
    let since = next_batch(&s);

    // Alice sends while Bob waits; the poll returns with her message.
    let start = Instant::now();
    let poll = async {
        let mut since = since.clone();
        let mut seen = Vec::new();
        // A server may return early for unrelated reasons: poll again, a few times at most.
        for _ in 0..3 {
            let s = sync_raw(&bob_api, &format!("timeout=10000&since={}", enc(&since)))
                .await
                .ok();
            seen.extend(timeline(&s, &room));
            since = next_batch(&s);
            if !seen.is_empty() {
                break;
            }
        }
        seen
    };
    let sender = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        send_text(&api, &room, "wake up").await
    };
    let (seen, sent) = tokio::join!(poll, sender);
    assert_eq!(
        ids(&seen),
        vec![sent],
        "the long poll didn't return the event"
    );
    // Woken by the notifier, not by the 10 s timeout.
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "long poll took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn limited_timeline_has_prev_batch_and_state_delta() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = alice_bob_room(&srv, json!({"preset": "public_chat"})).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let filter = timeline_limit(3);
    let since = next_batch(&sync(&bob_api, None, Some(&filter)).await);

    put_state(
        &api,
        &room,
        "m.room.topic",
        "",
        json!({"topic": "in the gap"}),
    )
    .await;
    let mut sent = Vec::new();
    for i in 0..6 {
        sent.push(send_text(&api, &room, &format!("m{i}")).await);
    }
    let s = sync(&bob_api, Some(&since), Some(&filter)).await;
    let tl = joined(&s, &room)["timeline"].clone();
    assert_eq!(tl["limited"], json!(true), "{s}");
    assert_eq!(bodies(&timeline(&s, &room)), vec!["m3", "m4", "m5"], "{s}");
    assert_eq!(ids(&timeline(&s, &room)), sent[3..].to_vec());
    // The topic change fell in the gap: it comes as state.
    let state = room_part(&s, &room, "state");
    let topic = find(&state, "m.room.topic", Some(""))
        .unwrap_or_else(|| panic!("state change in the gap missing from state: {s}"));
    assert_eq!(topic["content"]["topic"], "in the gap");

    // prev_batch continues backwards right before the timeline.
    let prev = tl["prev_batch"]
        .as_str()
        .unwrap_or_else(|| panic!("no prev_batch: {s}"));
    let page = messages_raw(
        &bob_api,
        &room,
        &format!("dir=b&limit=3&from={}", enc(prev)),
    )
    .await
    .ok();
    let chunk = page["chunk"].as_array().unwrap().clone();
    assert_eq!(bodies(&chunk), vec!["m2", "m1", "m0"], "{page}");

    // Within the limit: not limited.
    let since = next_batch(&s);
    let m6 = send_text(&api, &room, "m6").await;
    let s = sync(&bob_api, Some(&since), Some(&filter)).await;
    assert_eq!(ids(&timeline(&s, &room)), vec![m6]);
    assert_eq!(
        joined(&s, &room)["timeline"]["limited"],
        json!(false),
        "{s}"
    );
}

#[tokio::test]
async fn stored_filter_is_used_by_id() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = alice_bob_room(&srv, json!({"preset": "public_chat"})).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let definition = json!({
        "room": {"timeline": {"limit": 2, "types": ["m.room.message"]}},
        "presence": {"not_types": ["*"]},
    });
    let body = bob_api
        .post(
            &format!("{CS}/user/{}/filter", enc(&bob.user_id)),
            definition.clone(),
        )
        .await
        .ok();
    let filter_id = body["filter_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    assert!(
        !filter_id.starts_with('{'),
        "filter ids can't start with {{"
    );
    let stored = bob_api
        .get(&format!(
            "{CS}/user/{}/filter/{}",
            enc(&bob.user_id),
            enc(&filter_id)
        ))
        .await
        .ok();
    assert_eq!(stored["room"]["timeline"]["limit"], 2, "{stored}");
    assert_eq!(
        stored["room"]["timeline"]["types"],
        json!(["m.room.message"]),
        "{stored}"
    );
    // Filters are private to their owner.
    let resp = api
        .get(&format!(
            "{CS}/user/{}/filter/{}",
            enc(&bob.user_id),
            enc(&filter_id)
        ))
        .await;
    assert_eq!(resp.status, 403, "{}", resp.text);
    let resp = api
        .post(
            &format!("{CS}/user/{}/filter", enc(&bob.user_id)),
            definition,
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = bob_api
        .get(&format!("{CS}/user/{}/filter/99999", enc(&bob.user_id)))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    let since = next_batch(&sync(&bob_api, None, None).await);
    let m1 = send_text(&api, &room, "one").await;
    put_state(
        &api,
        &room,
        "m.room.topic",
        "",
        json!({"topic": "not a message"}),
    )
    .await;
    let m2 = send_text(&api, &room, "two").await;
    let m3 = send_text(&api, &room, "three").await;
    let id_filter = Value::String(filter_id.clone());
    let s = sync(&bob_api, Some(&since), Some(&id_filter)).await;
    let tl = timeline(&s, &room);
    assert_eq!(ids(&tl), vec![m2.clone(), m3.clone()], "{s}");
    assert_eq!(joined(&s, &room)["timeline"]["limited"], json!(true), "{s}");
    // Without the filter all of them come.
    let s = sync(&bob_api, Some(&since), None).await;
    let all = ids(&timeline(&s, &room));
    assert_eq!(all.len(), 4, "{s}");
    assert_eq!(all[0], m1);

    // A room filter restricts the rooms.
    let other = create_room(&api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &other).await;
    let only_other = json!({"room": {"rooms": [other]}});
    let s = sync(&bob_api, None, Some(&only_other)).await;
    assert_eq!(room_ids(&s, "join"), vec![other.clone()], "{s}");
    let not_other = json!({"room": {"not_rooms": [other]}});
    let s = sync(&bob_api, None, Some(&not_other)).await;
    assert_eq!(room_ids(&s, "join"), vec![room.clone()], "{s}");
}

#[tokio::test]
async fn invite_and_leave_sections() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let since = next_batch(&sync(&bob_api, None, None).await);

    let room = create_room(
        &api,
        json!({"preset": "private_chat", "name": "Secret plans"}),
    )
    .await;
    invite(&api, &room, &bob.user_id).await;

    for s in [
        sync(&bob_api, Some(&since), None).await,
        sync(&bob_api, None, None).await,
    ] {
        assert_eq!(room_ids(&s, "invite"), vec![room.clone()], "{s}");
        assert!(room_ids(&s, "join").is_empty(), "{s}");
        let invite_state = s["rooms"]["invite"][&room]["invite_state"]["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no invite_state: {s}"))
            .clone();
        let me = find(&invite_state, "m.room.member", Some(&bob.user_id))
            .unwrap_or_else(|| panic!("no invite event in invite_state: {s}"));
        assert_eq!(me["content"]["membership"], "invite", "{me}");
        assert_eq!(me["sender"], alice.user_id.as_str(), "{me}");
        assert_eq!(
            find(&invite_state, "m.room.name", Some("")).map(|e| e["content"]["name"].clone()),
            Some(json!("Secret plans")),
            "{s}"
        );
        assert!(
            find(&invite_state, "m.room.create", Some("")).is_some(),
            "{s}"
        );
        for ev in &invite_state {
            assert!(
                ev["type"].is_string() && ev["state_key"].is_string() && ev["content"].is_object(),
                "bad stripped state event {ev}"
            );
        }
    }

    // Joining moves it to `join`; leaving to `leave`, with the timeline up to the leave.
    let since = next_batch(&sync(&bob_api, None, None).await);
    join(&bob_api, &room).await;
    send_text(&api, &room, "welcome").await;
    let s = sync(&bob_api, Some(&since), None).await;
    assert_eq!(room_ids(&s, "join"), vec![room.clone()], "{s}");
    assert!(room_ids(&s, "invite").is_empty(), "{s}");
    let since = next_batch(&s);
    send_text(&api, &room, "before the leave").await;
    leave_raw(&bob_api, &room).await.ok();
    send_text(&api, &room, "after the leave").await;
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(room_ids(&s, "join").is_empty(), "{s}");
    assert_eq!(room_ids(&s, "leave"), vec![room.clone()], "{s}");
    let tl = timeline_in(&s, "leave", &room);
    assert_eq!(bodies(&tl), vec!["before the leave"], "{s}");
    let last = tl.last().unwrap();
    assert_eq!(last["type"], "m.room.member", "{s}");
    assert_eq!(last["state_key"], bob.user_id.as_str(), "{s}");
    assert_eq!(last["content"]["membership"], "leave", "{s}");

    // A rejected invite shows under `leave` too.
    let room2 = create_room(&api, json!({"preset": "private_chat"})).await;
    let since = next_batch(&s);
    invite(&api, &room2, &bob.user_id).await;
    let s = sync(&bob_api, Some(&since), None).await;
    assert_eq!(room_ids(&s, "invite"), vec![room2.clone()], "{s}");
    let since = next_batch(&s);
    leave_raw(&bob_api, &room2).await.ok();
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(room_ids(&s, "invite").is_empty(), "{s}");
    assert_eq!(room_ids(&s, "leave"), vec![room2], "{s}");
}

#[tokio::test]
async fn typing_reaches_the_other_member() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = alice_bob_room(&srv, json!({"preset": "public_chat"})).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let since = next_batch(&sync(&bob_api, None, None).await);
    let typing_path = format!("{CS}/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id));

    assert_eq!(
        api.put(&typing_path, json!({"typing": true, "timeout": 30000}))
            .await
            .ok(),
        json!({})
    );
    let s = sync(&bob_api, Some(&since), None).await;
    let typing = ephemeral_of_type(&s, &room, "m.typing");
    assert_eq!(typing.len(), 1, "{s}");
    assert_eq!(
        typing[0]["content"]["user_ids"],
        json!([alice.user_id]),
        "{s}"
    );
    let since = next_batch(&s);

    api.put(&typing_path, json!({"typing": false})).await.ok();
    let s = sync(&bob_api, Some(&since), None).await;
    let typing = ephemeral_of_type(&s, &room, "m.typing");
    assert_eq!(typing.len(), 1, "stopping must be announced: {s}");
    assert_eq!(typing[0]["content"]["user_ids"], json!([]), "{s}");

    // Typing for someone else, or in a room one isn't in, is refused.
    let resp = bob_api
        .put(&typing_path, json!({"typing": true, "timeout": 1000}))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let eve = local_user(&srv, "eve").await;
    let resp = srv
        .on("localhost")
        .as_user(&eve)
        .put(
            &format!("{CS}/rooms/{}/typing/{}", enc(&room), enc(&eve.user_id)),
            json!({"typing": true, "timeout": 1000}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");

    // A typing notification expires by itself.
    let since = next_batch(&s);
    api.put(&typing_path, json!({"typing": true, "timeout": 500}))
        .await
        .ok();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = sync(&bob_api, Some(&since), None).await;
    let typing = ephemeral_of_type(&s, &room, "m.typing");
    assert!(
        typing
            .last()
            .is_none_or(|t| t["content"]["user_ids"] == json!([])),
        "expired typing still shown: {s}"
    );
}

#[tokio::test]
async fn receipts_reach_the_other_member() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = alice_bob_room(&srv, json!({"preset": "public_chat"})).await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let m1 = send_text(&bob_api, &room, "read me").await;
    let m2 = send_text(&bob_api, &room, "read me privately").await;
    let since = next_batch(&sync(&bob_api, None, None).await);
    let alice_since = next_batch(&sync(&api, None, None).await);
    let receipt =
        |kind: &str, id: &str| format!("{CS}/rooms/{}/receipt/{kind}/{}", enc(&room), enc(id));

    assert_eq!(
        api.post(&receipt("m.read", &m1), json!({})).await.ok(),
        json!({})
    );
    let s = sync(&bob_api, Some(&since), None).await;
    let receipts = ephemeral_of_type(&s, &room, "m.receipt");
    assert_eq!(receipts.len(), 1, "{s}");
    let r = &receipts[0]["content"][&m1]["m.read"][&alice.user_id];
    assert!(r["ts"].is_i64(), "no receipt of alice on {m1}: {s}");
    let since = next_batch(&s);

    // A private receipt is for its owner only.
    api.post(&receipt("m.read.private", &m2), json!({}))
        .await
        .ok();
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(
        !s.to_string().contains("m.read.private"),
        "bob sees alice's private receipt: {s}"
    );
    let a = sync(&api, Some(&alice_since), None).await;
    let mine = ephemeral_of_type(&a, &room, "m.receipt");
    assert!(
        mine.iter()
            .any(|r| r["content"][&m2]["m.read.private"][&alice.user_id]["ts"].is_i64()),
        "alice doesn't see her private receipt: {a}"
    );
    let since = next_batch(&s);

    // A threaded receipt carries its thread id.
    bob_api
        .post(&receipt("m.read", &m2), json!({"thread_id": "main"}))
        .await
        .ok();
    let s = sync(&api, Some(&next_batch(&a)), None).await;
    let receipts = ephemeral_of_type(&s, &room, "m.receipt");
    assert!(
        receipts
            .iter()
            .any(|r| r["content"][&m2]["m.read"][&bob.user_id]["thread_id"] == "main"),
        "{s}"
    );

    // Unknown receipt types and events are refused; non-members can't post receipts.
    let resp = api.post(&receipt("m.bogus", &m1), json!({})).await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    let eve = local_user(&srv, "eve").await;
    let resp = srv
        .on("localhost")
        .as_user(&eve)
        .post(&receipt("m.read", &m1), json!({}))
        .await;
    assert!(
        matches!(resp.status, 403 | 404),
        "non-member receipt: {} {}",
        resp.status,
        resp.text
    );
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(!s.to_string().contains(&eve.user_id), "{s}");

    // read_markers sets the fully-read marker (room account data) and a receipt.
    api.post(
        &format!("{CS}/rooms/{}/read_markers", enc(&room)),
        json!({"m.fully_read": m2, "m.read": m2}),
    )
    .await
    .ok();
    let s = sync(&api, None, None).await;
    let fully_read = room_part(&s, &room, "account_data")
        .into_iter()
        .find(|e| e["type"] == "m.fully_read")
        .unwrap_or_else(|| panic!("no m.fully_read: {s}"));
    assert_eq!(fully_read["content"]["event_id"], m2.as_str());
}

#[tokio::test]
async fn account_data_global_and_per_room_and_tags() {
    let srv = TestServer::start().await;
    let (alice, bob, room) = alice_bob_room(&srv, json!({"preset": "public_chat"})).await;
    let api = srv.on("localhost").as_user(&alice);
    let global = format!(
        "{CS}/user/{}/account_data/org.example.settings",
        enc(&alice.user_id)
    );
    let per_room = format!(
        "{CS}/user/{}/rooms/{}/account_data/org.example.room",
        enc(&alice.user_id),
        enc(&room)
    );
    let since = next_batch(&sync(&api, None, None).await);

    assert_eq!(
        api.put(&global, json!({"theme": "dark"})).await.ok(),
        json!({})
    );
    assert_eq!(api.get(&global).await.ok(), json!({"theme": "dark"}));
    assert_eq!(api.put(&per_room, json!({"x": 1})).await.ok(), json!({}));
    assert_eq!(api.get(&per_room).await.ok(), json!({"x": 1}));

    let s = sync(&api, Some(&since), None).await;
    let ad = s["account_data"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        ad.iter().any(
            |e| e["type"] == "org.example.settings" && e["content"] == json!({"theme": "dark"})
        ),
        "{s}"
    );
    let room_ad = room_part(&s, &room, "account_data");
    assert!(
        room_ad
            .iter()
            .any(|e| e["type"] == "org.example.room" && e["content"] == json!({"x": 1})),
        "{s}"
    );
    let since = next_batch(&s);

    // Only changes come incrementally, with the latest content.
    api.put(&global, json!({"theme": "light"})).await.ok();
    let s = sync(&api, Some(&since), None).await;
    let ad = s["account_data"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ad.len(), 1, "{s}");
    assert_eq!(ad[0]["content"], json!({"theme": "light"}), "{s}");
    assert!(room_part(&s, &room, "account_data").is_empty(), "{s}");
    let since = next_batch(&s);
    let s = sync(&api, Some(&since), None).await;
    assert!(
        s["account_data"]["events"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{s}"
    );
    // The initial sync has the current value.
    let s = sync(&api, None, None).await;
    let ad = s["account_data"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let settings: Vec<_> = ad
        .iter()
        .filter(|e| e["type"] == "org.example.settings")
        .collect();
    assert_eq!(settings.len(), 1, "{s}");
    assert_eq!(settings[0]["content"], json!({"theme": "light"}));

    // Account data is private.
    let bob_api = srv.on("localhost").as_user(&bob);
    assert_error(&bob_api.get(&global).await, 403, "M_FORBIDDEN");
    assert_error(
        &bob_api.put(&global, json!({"theme": "hacked"})).await,
        403,
        "M_FORBIDDEN",
    );
    let bob_sync = sync(&bob_api, None, None).await;
    assert!(
        !bob_sync.to_string().contains("org.example.settings"),
        "{bob_sync}"
    );
    let resp = api
        .get(&format!(
            "{CS}/user/{}/account_data/org.example.unset",
            enc(&alice.user_id)
        ))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    // Tags.
    let since = next_batch(&s);
    let tags_path = format!(
        "{CS}/user/{}/rooms/{}/tags",
        enc(&alice.user_id),
        enc(&room)
    );
    api.put(&format!("{tags_path}/u.work"), json!({"order": 0.5}))
        .await
        .ok();
    api.put(&format!("{tags_path}/m.favourite"), json!({}))
        .await
        .ok();
    let tags = api.get(&tags_path).await.ok();
    assert_eq!(
        tags,
        json!({"tags": {"u.work": {"order": 0.5}, "m.favourite": {}}})
    );
    let s = sync(&api, Some(&since), None).await;
    let tag_ev = room_part(&s, &room, "account_data")
        .into_iter()
        .find(|e| e["type"] == "m.tag")
        .unwrap_or_else(|| panic!("no m.tag: {s}"));
    assert_eq!(
        tag_ev["content"]["tags"],
        json!({"u.work": {"order": 0.5}, "m.favourite": {}})
    );
    let since = next_batch(&s);
    assert_eq!(
        api.delete(&format!("{tags_path}/u.work")).await.ok(),
        json!({})
    );
    assert_eq!(
        api.get(&tags_path).await.ok(),
        json!({"tags": {"m.favourite": {}}})
    );
    let s = sync(&api, Some(&since), None).await;
    let tag_ev = room_part(&s, &room, "account_data")
        .into_iter()
        .find(|e| e["type"] == "m.tag")
        .unwrap_or_else(|| panic!("tag removal not synced: {s}"));
    assert_eq!(tag_ev["content"]["tags"], json!({"m.favourite": {}}));
    assert_error(&bob_api.get(&tags_path).await, 403, "M_FORBIDDEN");
}

#[tokio::test]
async fn unread_notification_counts() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let room = create_room(
        &api,
        json!({"preset": "private_chat", "invite": [bob.user_id]}),
    )
    .await;
    join(&bob_api, &room).await;

    send_text(&api, &room, "one").await;
    send_text(&api, &room, "two").await;
    let last = send(
        &api,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "hey bob",
               "m.mentions": {"user_ids": [bob.user_id]}}),
    )
    .await;
    let s = sync(&bob_api, None, None).await;
    let counts = &joined(&s, &room)["unread_notifications"];
    assert_eq!(counts["notification_count"], 3, "{s}");
    assert_eq!(counts["highlight_count"], 1, "{s}");
    // Alice's own messages don't notify her.
    let a = sync(&api, None, None).await;
    assert_eq!(
        joined(&a, &room)["unread_notifications"]["notification_count"],
        0,
        "{a}"
    );

    let since = next_batch(&s);
    bob_api
        .post(
            &format!("{CS}/rooms/{}/receipt/m.read/{}", enc(&room), enc(&last)),
            json!({}),
        )
        .await
        .ok();
    let s = sync(&bob_api, Some(&since), None).await;
    let counts = &joined(&s, &room)["unread_notifications"];
    assert_eq!(counts["notification_count"], 0, "{s}");
    assert_eq!(counts["highlight_count"], 0, "{s}");
}

#[tokio::test]
async fn lazy_loaded_members_in_sync() {
    const MEMBERS: usize = 10;
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let room = create_room(&api, json!({"preset": "public_chat"})).await;
    let mut others = Vec::new();
    for i in 1..MEMBERS {
        let s = local_user(&srv, &format!("user{i}")).await;
        join(&srv.on("localhost").as_user(&s), &room).await;
        others.push(s);
    }
    let (bob, dave) = (&others[0], &others[8]);
    send_text(&api, &room, "from alice").await;
    send_text(&srv.on("localhost").as_user(bob), &room, "from bob").await;

    let filter = json!({"room": {"timeline": {"limit": 2},
                                 "state": {"lazy_load_members": true}}});
    let dave_api = srv.on("localhost").as_user(dave);
    let s = sync(&dave_api, None, Some(&filter)).await;
    assert_eq!(
        bodies(&timeline(&s, &room)),
        vec!["from alice", "from bob"],
        "{s}"
    );
    let members: Vec<String> = room_part(&s, &room, "state")
        .iter()
        .chain(timeline(&s, &room).iter())
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect();
    for sender in [&alice.user_id, &bob.user_id] {
        assert!(
            members.contains(sender),
            "no member event of sender {sender}: {s}"
        );
    }
    assert!(
        members.len() < MEMBERS,
        "lazy loading sent all {} member events: {s}",
        members.len()
    );
    let summary = &joined(&s, &room)["summary"];
    assert_eq!(summary["m.joined_member_count"], MEMBERS, "{s}");
    let heroes = summary["m.heroes"]
        .as_array()
        .unwrap_or_else(|| panic!("lazy-loading sync needs m.heroes: {s}"));
    assert!(!heroes.is_empty() && heroes.len() <= 5, "{s}");
    assert!(
        !heroes.contains(&json!(dave.user_id)),
        "heroes exclude the syncing user: {s}"
    );

    // A new sender's member event comes with their first message.
    let carol = &others[1];
    let since = next_batch(&s);
    send_text(&srv.on("localhost").as_user(carol), &room, "from carol").await;
    let s = sync(&dave_api, Some(&since), Some(&filter)).await;
    assert_eq!(bodies(&timeline(&s, &room)), vec!["from carol"], "{s}");
    let state = room_part(&s, &room, "state");
    assert!(
        find(&state, "m.room.member", Some(&carol.user_id)).is_some(),
        "no lazy-loaded member event of the new sender: {s}"
    );
}

/// Carol's long-poll from `since`, answered while `trigger` runs: first Dave sends in a room
/// of his own (which must not answer it), then the trigger. The poll must return the trigger's
/// change, and well before its timeout.
async fn long_poll_during(
    carol: &Api<'_>,
    since: &str,
    dave: (&Api<'_>, &str),
    trigger: impl std::future::Future<Output = ()>,
) -> Value {
    let start = Instant::now();
    let query = format!("timeout=10000&since={}", enc(since));
    let poll = sync_raw(carol, &query);
    let act = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        send_text(dave.0, dave.1, "nothing to do with Carol").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.await;
    };
    let (resp, ()) = tokio::join!(poll, act);
    let s = resp.ok();
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "the long-poll ended by its timeout, not by the change: {s}"
    );
    s
}

#[tokio::test]
async fn long_poll_wakes_for_each_kind_of_change_to_the_user() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let carol = local_user(&srv, "carol").await;
    let dave = local_user(&srv, "dave").await;
    let api = srv.on("localhost");
    let (alice_api, carol_api, dave_api) =
        (api.as_user(&alice), api.as_user(&carol), api.as_user(&dave));
    let carol2 = api.as_user(&srv.login("localhost", "carol", "pw-carol-1").await);
    let dave_room = create_room(&dave_api, json!({"preset": "private_chat"})).await;
    let room = create_room(&alice_api, json!({"preset": "private_chat"})).await;
    let noise = (&dave_api, dave_room.as_str());
    let since = next_batch(&sync(&carol_api, None, None).await);

    // An invite: Carol has no membership in the room yet.
    let s = long_poll_during(&carol_api, &since, noise, async {
        invite(&alice_api, &room, &carol.user_id).await;
    })
    .await;
    assert_eq!(room_ids(&s, "invite"), [room.as_str()], "{s}");
    join(&carol_api, &room).await;
    let since = next_batch(&sync(&carol_api, Some(&next_batch(&s)), None).await);

    // A message in her room.
    let mut sent = String::new();
    let s = long_poll_during(&carol_api, &since, noise, async {
        sent = send_text(&alice_api, &room, "hello Carol").await;
    })
    .await;
    assert_eq!(ids(&timeline(&s, &room)), [sent.as_str()], "{s}");

    // A receipt and typing in her room.
    let s = long_poll_during(&carol_api, &next_batch(&s), noise, async {
        let path = format!("{CS}/rooms/{}/receipt/m.read/{}", enc(&room), enc(&sent));
        alice_api.post(&path, json!({})).await.ok();
    })
    .await;
    assert_eq!(ephemeral_of_type(&s, &room, "m.receipt").len(), 1, "{s}");
    let s = long_poll_during(&carol_api, &next_batch(&s), noise, async {
        let path = format!("{CS}/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id));
        let body = json!({"typing": true, "timeout": 30000});
        alice_api.put(&path, body).await.ok();
    })
    .await;
    assert_eq!(ephemeral_of_type(&s, &room, "m.typing").len(), 1, "{s}");

    // Account data, global and of the room, set from her other device.
    let s = long_poll_during(&carol_api, &next_batch(&s), noise, async {
        let path = format!(
            "{CS}/user/{}/account_data/org.example.a",
            enc(&carol.user_id)
        );
        carol2.put(&path, json!({"n": 1})).await.ok();
    })
    .await;
    let global = s["account_data"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(global.iter().any(|e| e["type"] == "org.example.a"), "{s}");
    let s = long_poll_during(&carol_api, &next_batch(&s), noise, async {
        let path = format!(
            "{CS}/user/{}/rooms/{}/account_data/org.example.b",
            enc(&carol.user_id),
            enc(&room)
        );
        carol2.put(&path, json!({"n": 2})).await.ok();
    })
    .await;
    let in_room = room_part(&s, &room, "account_data");
    assert!(in_room.iter().any(|e| e["type"] == "org.example.b"), "{s}");

    // Presence and device keys of someone she shares a room with.
    let s = long_poll_during(&carol_api, &next_batch(&s), noise, async {
        let path = format!("{CS}/presence/{}/status", enc(&alice.user_id));
        let body = json!({"presence": "unavailable", "status_msg": "away"});
        alice_api.put(&path, body).await.ok();
    })
    .await;
    let presence = s["presence"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        presence
            .iter()
            .any(|e| e["sender"] == alice.user_id.as_str()),
        "{s}"
    );
    let s = long_poll_during(&carol_api, &next_batch(&s), noise, async {
        upload_device_keys(&alice_api, &TestDevice::of(&alice)).await;
    })
    .await;
    assert_eq!(device_lists(&s, "changed"), [alice.user_id.as_str()], "{s}");

    // Her removal from the room.
    let s = long_poll_during(&carol_api, &next_batch(&s), noise, async {
        let path = format!("{CS}/rooms/{}/kick", enc(&room));
        let body = json!({"user_id": carol.user_id});
        alice_api.post(&path, body).await.ok();
    })
    .await;
    assert_eq!(room_ids(&s, "leave"), [room.as_str()], "{s}");
}
