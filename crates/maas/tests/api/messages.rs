//! History: `/messages` (dir, from, to, limit, filter with lazy_load_members),
//! `/context/{eventId}`, `v1/.../relations`, `v1/.../threads` with bundled aggregations, and
//! `v1/.../timestamp_to_event`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

const V1: &str = "/_matrix/client/v1";

struct Fixture {
    srv: TestServer,
    alice: Session,
    bob: Session,
    room: String,
}

/// Alice and Bob in a public room (Carol joins and leaves at the start).
async fn fixture() -> Fixture {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let carol = local_user(&srv, "carol").await;
    let room = create_room(
        &srv.on("localhost").as_user(&alice),
        json!({"preset": "public_chat"}),
    )
    .await;
    join(&srv.on("localhost").as_user(&bob), &room).await;
    join(&srv.on("localhost").as_user(&carol), &room).await;
    Fixture {
        srv,
        alice,
        bob,
        room,
    }
}

fn chunk(body: &Value) -> Vec<Value> {
    body["chunk"]
        .as_array()
        .unwrap_or_else(|| panic!("no chunk: {body}"))
        .clone()
}

#[tokio::test]
async fn messages_directions_tokens_and_limits() {
    let f = fixture().await;
    let api = f.srv.on("localhost").as_user(&f.alice);
    let bob_api = f.srv.on("localhost").as_user(&f.bob);
    let room = f.room.as_str();

    for i in 0..5 {
        send_text(&api, room, &format!("m{i}")).await;
    }
    let middle = next_batch(&sync(&api, None, None).await);
    for i in 5..10 {
        send_text(&bob_api, room, &format!("m{i}")).await;
    }
    let end = next_batch(&sync(&api, None, None).await);

    // Backwards from the end, three at a time.
    let page = messages_raw(&api, room, "dir=b&limit=3").await.ok();
    assert_eq!(bodies(&chunk(&page)), vec!["m9", "m8", "m7"], "{page}");
    let next = page["end"].as_str().unwrap_or_else(|| panic!("{page}"));
    let page = messages_raw(&api, room, &format!("dir=b&limit=3&from={}", enc(next)))
        .await
        .ok();
    assert_eq!(bodies(&chunk(&page)), vec!["m6", "m5", "m4"], "{page}");
    // Going forward again from that page's start returns what comes after it.
    let start = page["start"].as_str().unwrap();
    let fwd = messages_raw(&api, room, &format!("dir=f&limit=2&from={}", enc(start)))
        .await
        .ok();
    assert_eq!(bodies(&chunk(&fwd)), vec!["m7", "m8"], "{fwd}");

    // Forwards from a sync token.
    let page = messages_raw(&api, room, &format!("dir=f&limit=3&from={}", enc(&middle)))
        .await
        .ok();
    assert_eq!(bodies(&chunk(&page)), vec!["m5", "m6", "m7"], "{page}");

    // Between two tokens, both ways.
    let page = messages_raw(
        &api,
        room,
        &format!("dir=b&limit=50&from={}&to={}", enc(&end), enc(&middle)),
    )
    .await
    .ok();
    assert_eq!(
        bodies(&chunk(&page)),
        vec!["m9", "m8", "m7", "m6", "m5"],
        "{page}"
    );
    let page = messages_raw(
        &api,
        room,
        &format!("dir=f&limit=50&from={}&to={}", enc(&middle), enc(&end)),
    )
    .await
    .ok();
    assert_eq!(
        bodies(&chunk(&page)),
        vec!["m5", "m6", "m7", "m8", "m9"],
        "{page}"
    );
    // Forward from the end: nothing, and no further token.
    let page = messages_raw(&api, room, &format!("dir=f&from={}", enc(&end)))
        .await
        .ok();
    assert!(chunk(&page).is_empty(), "{page}");

    // A filter on senders and types.
    let filter = json!({"types": ["m.room.message"], "senders": [f.bob.user_id]});
    let page = messages_raw(
        &api,
        room,
        &format!("dir=b&limit=50&filter={}", enc(&filter.to_string())),
    )
    .await
    .ok();
    assert_eq!(
        bodies(&chunk(&page)),
        vec!["m9", "m8", "m7", "m6", "m5"],
        "{page}"
    );
    assert!(
        chunk(&page)
            .iter()
            .all(|e| e["sender"] == f.bob.user_id.as_str()),
        "{page}"
    );

    // Bad parameters.
    let resp = messages_raw(&api, room, "dir=sideways").await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    let resp = messages_raw(&api, room, "dir=b&from=not-a-token").await;
    assert_eq!(resp.status, 400, "{}", resp.text);
}

#[tokio::test]
async fn messages_lazy_loads_members_of_the_chunk() {
    let f = fixture().await;
    let api = f.srv.on("localhost").as_user(&f.alice);
    let bob_api = f.srv.on("localhost").as_user(&f.bob);
    let room = f.room.as_str();
    send_text(&api, room, "from alice").await;
    send_text(&bob_api, room, "from bob 1").await;
    send_text(&bob_api, room, "from bob 2").await;

    let filter = json!({"lazy_load_members": true, "types": ["m.room.message"]});
    let page = messages_raw(
        &api,
        room,
        &format!("dir=b&limit=2&filter={}", enc(&filter.to_string())),
    )
    .await
    .ok();
    assert_eq!(bodies(&chunk(&page)), vec!["from bob 2", "from bob 1"]);
    let state = page["state"]
        .as_array()
        .unwrap_or_else(|| panic!("no state with lazy_load_members: {page}"));
    let members: Vec<&str> = state
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert_eq!(members, vec![f.bob.user_id.as_str()], "{page}");
}

#[tokio::test]
async fn context_around_an_event() {
    let f = fixture().await;
    let api = f.srv.on("localhost").as_user(&f.alice);
    let room = f.room.as_str();
    let mut sent = Vec::new();
    for i in 0..9 {
        sent.push(send_text(&api, room, &format!("c{i}")).await);
    }
    let body = api
        .get(&format!(
            "{CS}/rooms/{}/context/{}?limit=4",
            enc(room),
            enc(&sent[4])
        ))
        .await
        .ok();
    assert_eq!(body["event"]["event_id"], sent[4].as_str(), "{body}");
    let before = ids(body["events_before"].as_array().unwrap());
    let after = ids(body["events_after"].as_array().unwrap());
    assert!(
        !before.is_empty() && !after.is_empty() && before.len() + after.len() <= 4,
        "{body}"
    );
    // Before: newest first, right before the event; after: oldest first, right after.
    let expect_before: Vec<String> = sent[..4].iter().rev().take(before.len()).cloned().collect();
    assert_eq!(before, expect_before, "{body}");
    assert_eq!(after, sent[5..5 + after.len()].to_vec(), "{body}");
    assert!(
        body["start"].is_string() && body["end"].is_string(),
        "{body}"
    );
    let state = body["state"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert!(find(state, "m.room.create", Some("")).is_some(), "{body}");

    // The tokens continue the pagination.
    let page = messages_raw(
        &api,
        room,
        &format!("dir=f&limit=1&from={}", enc(body["end"].as_str().unwrap())),
    )
    .await
    .ok();
    assert_eq!(
        ids(&chunk(&page)),
        vec![sent[5 + after.len()].clone()],
        "{page}"
    );

    let resp = api
        .get(&format!(
            "{CS}/rooms/{}/context/{}",
            enc(room),
            enc("$unknown")
        ))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn relations_threads_and_bundled_aggregations() {
    let f = fixture().await;
    let api = f.srv.on("localhost").as_user(&f.alice);
    let bob_api = f.srv.on("localhost").as_user(&f.bob);
    let room = f.room.as_str();

    let root = send_text(&api, room, "thread root").await;
    let rel = |rel_type: &str| json!({"rel_type": rel_type, "event_id": root});
    let t1 = send(
        &bob_api,
        room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "in thread 1", "m.relates_to": rel("m.thread")}),
    )
    .await;
    let t2 = send(
        &api,
        room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "in thread 2", "m.relates_to": rel("m.thread")}),
    )
    .await;
    let reaction = send(
        &bob_api,
        room,
        "m.reaction",
        json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}}),
    )
    .await;
    let edit = send(
        &api,
        room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "* root edited",
               "m.new_content": {"msgtype": "m.text", "body": "root edited"},
               "m.relates_to": rel("m.replace")}),
    )
    .await;
    send_text(&api, room, "unrelated").await;

    let all = bob_api
        .get(&format!(
            "{V1}/rooms/{}/relations/{}",
            enc(room),
            enc(&root)
        ))
        .await
        .ok();
    let mut got = ids(&chunk(&all));
    got.sort();
    let mut want = vec![t1.clone(), t2.clone(), reaction.clone(), edit.clone()];
    want.sort();
    assert_eq!(got, want, "{all}");

    let threads = bob_api
        .get(&format!(
            "{V1}/rooms/{}/relations/{}/m.thread",
            enc(room),
            enc(&root)
        ))
        .await
        .ok();
    assert_eq!(
        ids(&chunk(&threads)),
        vec![t2.clone(), t1.clone()],
        "{threads}"
    );
    let reactions = bob_api
        .get(&format!(
            "{V1}/rooms/{}/relations/{}/m.annotation/m.reaction",
            enc(room),
            enc(&root)
        ))
        .await
        .ok();
    assert_eq!(ids(&chunk(&reactions)), vec![reaction], "{reactions}");
    let page = bob_api
        .get(&format!(
            "{V1}/rooms/{}/relations/{}/m.thread?limit=1",
            enc(room),
            enc(&root)
        ))
        .await
        .ok();
    assert_eq!(ids(&chunk(&page)), vec![t2.clone()], "{page}");
    let next = page["next_batch"]
        .as_str()
        .unwrap_or_else(|| panic!("no next_batch with more to come: {page}"));
    let page = bob_api
        .get(&format!(
            "{V1}/rooms/{}/relations/{}/m.thread?limit=1&from={}",
            enc(room),
            enc(&root),
            enc(next)
        ))
        .await
        .ok();
    assert_eq!(ids(&chunk(&page)), vec![t1.clone()], "{page}");

    // The root's bundled aggregations.
    let ev = get_event_raw(&bob_api, room, &root).await.ok();
    let relations = &ev["unsigned"]["m.relations"];
    assert_eq!(relations["m.thread"]["count"], 2, "{ev}");
    assert_eq!(relations["m.replace"]["event_id"], edit.as_str(), "{ev}");
    // The original content is served, not the edit's.
    assert_eq!(ev["content"]["body"], "thread root", "{ev}");

    // The thread list, with the summary bundled.
    let list = bob_api
        .get(&format!("{V1}/rooms/{}/threads?include=all", enc(room)))
        .await
        .ok();
    let roots = chunk(&list);
    assert_eq!(ids(&roots), vec![root.clone()], "{list}");
    let summary = &roots[0]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["count"], 2, "{list}");
    assert_eq!(summary["latest_event"]["event_id"], t2.as_str(), "{list}");
    assert_eq!(summary["current_user_participated"], true, "{list}");
    // Only threads the user took part in.
    let carol = f.srv.login("localhost", "carol", "pw-carol-1").await;
    let carol_api = f.srv.on("localhost").as_user(&carol);
    let none = carol_api
        .get(&format!(
            "{V1}/rooms/{}/threads?include=participated",
            enc(room)
        ))
        .await
        .ok();
    assert!(chunk(&none).is_empty(), "{none}");
    // `include` is optional (default `all`).
    let list = carol_api
        .get(&format!("{V1}/rooms/{}/threads", enc(room)))
        .await
        .ok();
    assert_eq!(ids(&chunk(&list)), vec![root], "{list}");
}

#[tokio::test]
async fn timestamp_to_event_finds_the_closest_event() {
    let f = fixture().await;
    let api = f.srv.on("localhost").as_user(&f.alice);
    let room = f.room.as_str();
    let first = send_text(&api, room, "first").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let between = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = send_text(&api, room, "second").await;

    let path = |dir: &str, ts: i64| {
        format!(
            "{V1}/rooms/{}/timestamp_to_event?dir={dir}&ts={ts}",
            enc(room)
        )
    };
    let fwd = api.get(&path("f", between)).await.ok();
    assert_eq!(fwd["event_id"], second.as_str(), "{fwd}");
    assert!(
        fwd["origin_server_ts"].as_i64().unwrap() >= between,
        "{fwd}"
    );
    let back = api.get(&path("b", between)).await.ok();
    assert_eq!(back["event_id"], first.as_str(), "{back}");
    let resp = api.get(&path("f", now_ms() + 60_000)).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}
