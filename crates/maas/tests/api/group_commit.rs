//! Events are committed in batches after the tenant's write lock is released: concurrent sends
//! all land, in one order, retries of one transaction store one event, and an acknowledged
//! event survives the process being killed (kill -9) at any moment, in both durability modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::harness::*;
use crate::room_support::*;

/// `PUT /send` requests for `count` messages per sender, all in flight at once.
fn spawn_sends(
    srv: &TestServer,
    senders: &[Session],
    room_id: &str,
    count: usize,
    acks: &Arc<AtomicUsize>,
) -> JoinSet<Option<String>> {
    let mut tasks = JoinSet::new();
    for (s, sender) in senders.iter().enumerate() {
        for i in 0..count {
            let path = format!(
                "{CS}/rooms/{}/send/m.room.message/{}",
                enc(room_id),
                txn_id()
            );
            let request = srv
                .on("localhost")
                .as_user(sender)
                .builder(Method::PUT, &path)
                .json(&json!({"msgtype": "m.text", "body": format!("{s}/{i}")}));
            let acks = acks.clone();
            tasks.spawn(async move {
                let resp = request.send().await.ok()?;
                if !resp.status().is_success() {
                    return None;
                }
                let body: Value = resp.json().await.ok()?;
                let id = body["event_id"].as_str().map(str::to_owned);
                acks.fetch_add(1, Ordering::SeqCst);
                id
            });
        }
    }
    tasks
}

/// The event ids of the sends acknowledged with 200, and how many failed otherwise.
async fn outcomes(mut tasks: JoinSet<Option<String>>) -> (Vec<String>, usize) {
    let mut acked = Vec::new();
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("send task") {
            Some(id) => acked.push(id),
            None => failed += 1,
        }
    }
    (acked, failed)
}

async fn room_with_members(srv: &TestServer, count: usize) -> (String, Vec<Session>) {
    let mut users = Vec::new();
    for i in 0..count {
        users.push(local_user(srv, &format!("sender{i}")).await);
    }
    let owner = srv.on("localhost").as_user(&users[0]);
    let room_id = create_room(&owner, json!({"preset": "public_chat"})).await;
    for user in &users[1..] {
        join(&srv.on("localhost").as_user(user), &room_id).await;
    }
    (room_id, users)
}

fn message_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn concurrent_sends_are_all_stored_in_one_order() {
    let mut srv = TestServer::start().await;
    let (room_id, users) = room_with_members(&srv, 5).await;
    let (acked, failed) = outcomes(spawn_sends(&srv, &users, &room_id, 20, &Arc::default())).await;
    assert_eq!((acked.len(), failed), (100, 0));

    let api = srv.on("localhost").as_user(&users[0]);
    let forwards = message_ids(&paginate(&api, &room_id, "f", None, 30).await);
    let mut sorted = forwards.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 100, "each acknowledged event exactly once");
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(sorted, expected);
    let mut backwards = message_ids(&paginate(&api, &room_id, "b", None, 30).await);
    backwards.reverse();
    assert_eq!(forwards, backwards, "one order both ways");

    // The same after a restart: the order is the stored one, not an in-memory one.
    srv.restart().await;
    let api = srv.on("localhost").as_user(&users[0]);
    let after = message_ids(&paginate(&api, &room_id, "f", None, 30).await);
    assert_eq!(after, forwards);
}

#[tokio::test]
async fn concurrent_retries_of_one_transaction_store_one_event() {
    let srv = TestServer::start().await;
    let (room_id, users) = room_with_members(&srv, 1).await;
    let path = format!(
        "{CS}/rooms/{}/send/m.room.message/{}",
        enc(&room_id),
        txn_id()
    );
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let request = srv
            .on("localhost")
            .as_user(&users[0])
            .builder(Method::PUT, &path)
            .json(&json!({"msgtype": "m.text", "body": "once"}));
        tasks.spawn(async move {
            let body: Value = request
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            body["event_id"].as_str().map(str::to_owned)
        });
    }
    let mut ids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        ids.push(joined.expect("task").expect("event id in every answer"));
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "every retry answers with the one event: {ids:?}"
    );
    let api = srv.on("localhost").as_user(&users[0]);
    let stored = message_ids(&paginate(&api, &room_id, "f", None, 50).await);
    assert_eq!(stored, ids);
}

/// Sends from several users while the server is killed with SIGKILL part-way; every event
/// that was acknowledged must be there after the restart.
async fn acknowledged_events_survive_kill(options: Options) {
    let mut srv = TestServer::start_with(options).await;
    let (room_id, users) = room_with_members(&srv, 4).await;
    // Enough sends that the kill lands while batches are being committed.
    let acks = Arc::new(AtomicUsize::new(0));
    let sends = spawn_sends(&srv, &users, &room_id, 150, &acks);
    for _ in 0..3000 {
        if acks.load(Ordering::SeqCst) >= 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let status = srv.stop_with("-KILL").await;
    assert!(
        !status.success(),
        "SIGKILL should end the process abnormally"
    );
    let (acked, failed) = outcomes(sends).await;
    assert!(
        !acked.is_empty(),
        "no send was acknowledged before the kill"
    );
    assert!(
        failed > 0,
        "the kill came after every send: nothing was in flight"
    );

    srv.restart_after_stop().await;
    let api = srv.on("localhost").as_user(&users[0]);
    for event_id in &acked {
        let resp = get_event_raw(&api, &room_id, event_id).await;
        assert_eq!(
            resp.status, 200,
            "acknowledged {event_id} lost: {}",
            resp.text
        );
    }
    // The room still takes new events on top of what survived.
    send_text(&api, &room_id, "after the crash").await;
}

#[tokio::test]
async fn acknowledged_events_survive_kill_9() {
    acknowledged_events_survive_kill(Options::default()).await;
}

#[tokio::test]
async fn acknowledged_events_survive_kill_9_when_durable() {
    acknowledged_events_survive_kill(Options::default().env("MAAS_DATABASE__DURABLE", "true"))
        .await;
}

#[tokio::test]
async fn identical_rooms_created_at_once_are_distinct() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        // Same creator, same content: only the timestamp can tell the create events apart.
        let request = srv
            .on("localhost")
            .as_user(&alice)
            .builder(Method::POST, &format!("{CS}/createRoom"))
            .json(&json!({"preset": "private_chat", "name": "same"}));
        tasks.spawn(async move {
            let resp = request.send().await.expect("createRoom");
            assert!(resp.status().is_success(), "createRoom failed: {resp:?}");
            let body: Value = resp.json().await.expect("json");
            body["room_id"].as_str().map(str::to_owned)
        });
    }
    let mut ids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        ids.push(joined.expect("task").expect("room id"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "ten distinct rooms: {ids:?}");
    let joined = srv
        .on("localhost")
        .as_user(&alice)
        .get(&format!("{CS}/joined_rooms"))
        .await
        .ok();
    assert_eq!(joined["joined_rooms"].as_array().map(Vec::len), Some(10));
}
