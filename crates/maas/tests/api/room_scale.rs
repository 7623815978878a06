//! Scale: a room with 1,000 joined members, and a user in 500 rooms whose incremental sync
//! carries only what changed.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

/// Small syncs for big accounts: one timeline event, lazy-loaded members.
fn small_filter() -> Value {
    json!({"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": true}}})
}

#[tokio::test]
async fn message_reaches_members_of_a_1000_member_room() {
    const MEMBERS: usize = 1000;
    let srv = Arc::new(TestServer::start().await);
    let alice = local_user(&srv, "alice").await;
    let room = create_room(
        &srv.on("localhost").as_user(&alice),
        json!({"preset": "public_chat", "name": "Big room"}),
    )
    .await;

    let start = Instant::now();
    let jobs: Vec<_> = (0..MEMBERS)
        .map(|i| {
            let srv = srv.clone();
            let room = room.clone();
            async move {
                let s = local_user(&srv, &format!("member{i:04}")).await;
                join(&srv.on("localhost").as_user(&s), &room).await;
                s
            }
        })
        .collect();
    let members = concurrently(16, jobs).await;
    eprintln!(
        "{MEMBERS} users created and joined in {:?}",
        start.elapsed()
    );

    let api = srv.on("localhost").as_user(&alice);
    let body = api
        .get(&format!("{CS}/rooms/{}/joined_members", enc(&room)))
        .await
        .ok();
    assert_eq!(
        body["joined"].as_object().map(|m| m.len()),
        Some(MEMBERS + 1),
        "joined_members count"
    );

    // Twenty members spread over the join order take a sync token.
    let sample: Vec<Session> = members.iter().step_by(MEMBERS / 20).cloned().collect();
    assert_eq!(sample.len(), 20);
    let start = Instant::now();
    let mut tokens = Vec::new();
    for (i, s) in sample.iter().enumerate() {
        let initial = sync(&srv.on("localhost").as_user(s), None, Some(&small_filter())).await;
        assert_eq!(room_ids(&initial, "join"), vec![room.clone()]);
        if i == 0 {
            assert_eq!(
                joined(&initial, &room)["summary"]["m.joined_member_count"],
                MEMBERS + 1,
                "summary member count"
            );
        }
        tokens.push(next_batch(&initial));
    }
    eprintln!("20 initial syncs in {:?}", start.elapsed());

    let msg = send_text(&api, &room, "hello everyone").await;
    let start = Instant::now();
    let jobs: Vec<_> = sample
        .into_iter()
        .zip(tokens)
        .map(|(s, since)| {
            let srv = srv.clone();
            let room = room.clone();
            async move {
                let api = srv.on("localhost").as_user(&s);
                let body = sync(&api, Some(&since), Some(&small_filter())).await;
                (s.user_id, ids(&timeline(&body, &room)))
            }
        })
        .collect();
    for (user_id, got) in concurrently(4, jobs).await {
        assert_eq!(got, vec![msg.clone()], "{user_id}'s incremental sync");
    }
    eprintln!("20 incremental syncs in {:?}", start.elapsed());
}

#[tokio::test]
async fn user_in_500_rooms_gets_only_what_changed() {
    const ROOMS: usize = 500;
    let srv = Arc::new(TestServer::start().await);
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;

    let start = Instant::now();
    let jobs: Vec<_> = (0..ROOMS)
        .map(|i| {
            let srv = srv.clone();
            let alice = alice.clone();
            async move {
                create_room(
                    &srv.on("localhost").as_user(&alice),
                    json!({"preset": "public_chat", "name": format!("room {i}")}),
                )
                .await
            }
        })
        .collect();
    let rooms = concurrently(8, jobs).await;
    eprintln!("{ROOMS} rooms created in {:?}", start.elapsed());

    let api = srv.on("localhost").as_user(&alice);
    let start = Instant::now();
    let initial = sync(&api, None, Some(&small_filter())).await;
    eprintln!("initial sync over {ROOMS} rooms in {:?}", start.elapsed());
    let mut joined_ids = room_ids(&initial, "join");
    joined_ids.sort();
    let mut expected = rooms.clone();
    expected.sort();
    assert_eq!(joined_ids, expected, "initial sync has every room");
    let since = next_batch(&initial);

    // Bob joins one room and talks there.
    let target = rooms[ROOMS / 2].clone();
    let bob_api = srv.on("localhost").as_user(&bob);
    join(&bob_api, &target).await;
    let msg = send_text(&bob_api, &target, "only here").await;

    let start = Instant::now();
    let s = sync(
        &api,
        Some(&since),
        Some(&json!({"room": {"timeline": {"limit": 10}}})),
    )
    .await;
    eprintln!("incremental sync in {:?}", start.elapsed());
    assert_eq!(
        room_ids(&s, "join"),
        vec![target.clone()],
        "only the changed room"
    );
    let tl = timeline(&s, &target);
    let kinds: Vec<&str> = tl.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["m.room.member", "m.room.message"], "{s}");
    assert_eq!(tl[1]["event_id"], msg.as_str());
    assert!(room_ids(&s, "invite").is_empty() && room_ids(&s, "leave").is_empty());

    // Nothing more: nothing in rooms.
    let s = sync(&api, Some(&next_batch(&s)), None).await;
    assert!(room_ids(&s, "join").is_empty(), "{s}");
}
