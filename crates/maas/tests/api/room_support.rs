//! Helpers shared by the room, membership, event and sync tests: thin wrappers over the
//! Client-Server API (spec v1.15) that assert success where the name says so, and accessors
//! for the parts of a `/sync` response the tests look at.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::harness::*;

static TXN: AtomicU64 = AtomicU64::new(0);

/// A fresh client transaction id.
pub fn txn_id() -> String {
    format!("txn-{}-{}", now_ms(), TXN.fetch_add(1, Ordering::Relaxed))
}

/// Creates `localpart` on the tenant through the operator API and logs it in.
pub async fn user(srv: &TestServer, server_name: &str, host: &str, localpart: &str) -> Session {
    let password = format!("pw-{localpart}-1");
    srv.create_user(server_name, localpart, &password).await;
    srv.login(host, localpart, &password).await
}

/// A user on the default tenant `localhost`.
pub async fn local_user(srv: &TestServer, localpart: &str) -> Session {
    user(srv, "localhost", "localhost", localpart).await
}

/// `POST /createRoom`.
pub async fn create_room_raw(api: &Api<'_>, body: Value) -> Resp {
    api.post(&format!("{CS}/createRoom"), body).await
}

/// `POST /createRoom`, asserting success; returns the room id.
pub async fn create_room(api: &Api<'_>, body: Value) -> String {
    let body = create_room_raw(api, body).await.ok();
    body["room_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no room_id in createRoom response: {body}"))
        .to_owned()
}

/// `PUT /rooms/{roomId}/send/{eventType}/{txnId}` with a fresh transaction id.
pub async fn send_raw(api: &Api<'_>, room_id: &str, event_type: &str, content: Value) -> Resp {
    send_txn(api, room_id, event_type, &txn_id(), content).await
}

/// `PUT /rooms/{roomId}/send/{eventType}/{txnId}`.
pub async fn send_txn(
    api: &Api<'_>,
    room_id: &str,
    event_type: &str,
    txn: &str,
    content: Value,
) -> Resp {
    api.put(
        &format!(
            "{CS}/rooms/{}/send/{}/{}",
            enc(room_id),
            enc(event_type),
            enc(txn)
        ),
        content,
    )
    .await
}

/// Sends a message event, asserting success; returns its event id.
pub async fn send(api: &Api<'_>, room_id: &str, event_type: &str, content: Value) -> String {
    event_id_of(send_raw(api, room_id, event_type, content).await)
}

/// Sends an `m.text` message, asserting success; returns its event id.
pub async fn send_text(api: &Api<'_>, room_id: &str, text: &str) -> String {
    send(
        api,
        room_id,
        "m.room.message",
        json!({"msgtype": "m.text", "body": text}),
    )
    .await
}

#[track_caller]
pub fn event_id_of(resp: Resp) -> String {
    let body = resp.ok();
    let id = body["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no event_id: {body}"))
        .to_owned();
    assert!(id.starts_with('$'), "bad event id {id}");
    id
}

pub fn state_path(room_id: &str, event_type: &str, state_key: &str) -> String {
    format!(
        "{CS}/rooms/{}/state/{}/{}",
        enc(room_id),
        enc(event_type),
        enc(state_key)
    )
}

/// `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`.
pub async fn put_state_raw(
    api: &Api<'_>,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    content: Value,
) -> Resp {
    api.put(&state_path(room_id, event_type, state_key), content)
        .await
}

/// Sends a state event, asserting success; returns its event id.
pub async fn put_state(
    api: &Api<'_>,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    content: Value,
) -> String {
    event_id_of(put_state_raw(api, room_id, event_type, state_key, content).await)
}

/// `GET /rooms/{roomId}/state/{eventType}/{stateKey}`.
pub async fn get_state_raw(
    api: &Api<'_>,
    room_id: &str,
    event_type: &str,
    state_key: &str,
) -> Resp {
    api.get(&state_path(room_id, event_type, state_key)).await
}

/// The content of a current state event, asserting it exists.
pub async fn state_content(
    api: &Api<'_>,
    room_id: &str,
    event_type: &str,
    state_key: &str,
) -> Value {
    get_state_raw(api, room_id, event_type, state_key)
        .await
        .ok()
}

/// `GET /rooms/{roomId}/state`, asserting success.
pub async fn full_state(api: &Api<'_>, room_id: &str) -> Vec<Value> {
    let resp = api.get(&format!("{CS}/rooms/{}/state", enc(room_id))).await;
    assert_eq!(resp.status, 200, "GET state: {}", resp.text);
    resp.body
        .as_array()
        .unwrap_or_else(|| panic!("state is not an array: {}", resp.text))
        .clone()
}

/// The `membership` of `user_id` in the current state, as another member sees it.
pub async fn membership_of(api: &Api<'_>, room_id: &str, user_id: &str) -> String {
    let content = state_content(api, room_id, "m.room.member", user_id).await;
    content["membership"]
        .as_str()
        .unwrap_or_else(|| panic!("no membership: {content}"))
        .to_owned()
}

/// `POST /join/{roomIdOrAlias}`.
pub async fn join_raw(api: &Api<'_>, room_id_or_alias: &str) -> Resp {
    api.post(&format!("{CS}/join/{}", enc(room_id_or_alias)), json!({}))
        .await
}

/// Joins, asserting success; returns the room id of the answer.
pub async fn join(api: &Api<'_>, room_id_or_alias: &str) -> String {
    let body = join_raw(api, room_id_or_alias).await.ok();
    body["room_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no room_id in join response: {body}"))
        .to_owned()
}

/// `POST /rooms/{roomId}/{action}` with a `user_id` (invite, kick, ban, unban).
pub async fn member_action(
    api: &Api<'_>,
    room_id: &str,
    action: &str,
    user_id: &str,
    reason: Option<&str>,
) -> Resp {
    let mut body = json!({"user_id": user_id});
    if let Some(reason) = reason {
        body["reason"] = reason.into();
    }
    api.post(&format!("{CS}/rooms/{}/{action}", enc(room_id)), body)
        .await
}

/// Invites, asserting success.
pub async fn invite(api: &Api<'_>, room_id: &str, user_id: &str) {
    let body = member_action(api, room_id, "invite", user_id, None)
        .await
        .ok();
    assert_eq!(body, json!({}), "invite response");
}

/// `POST /rooms/{roomId}/leave`.
pub async fn leave_raw(api: &Api<'_>, room_id: &str) -> Resp {
    api.post(&format!("{CS}/rooms/{}/leave", enc(room_id)), json!({}))
        .await
}

/// `GET /rooms/{roomId}/event/{eventId}`.
pub async fn get_event_raw(api: &Api<'_>, room_id: &str, event_id: &str) -> Resp {
    api.get(&format!(
        "{CS}/rooms/{}/event/{}",
        enc(room_id),
        enc(event_id)
    ))
    .await
}

// ----- sync -----

/// `GET /sync` with this raw query string (without `?`).
pub async fn sync_raw(api: &Api<'_>, query: &str) -> Resp {
    api.get(&format!("{CS}/sync?{query}")).await
}

/// The query string of a non-blocking sync.
pub fn sync_query(since: Option<&str>, filter: Option<&Value>) -> String {
    let mut q = String::from("timeout=0");
    if let Some(since) = since {
        q.push_str(&format!("&since={}", enc(since)));
    }
    if let Some(filter) = filter {
        let f = match filter {
            Value::String(id) => id.clone(),
            other => other.to_string(),
        };
        q.push_str(&format!("&filter={}", enc(&f)));
    }
    q
}

/// A non-blocking `/sync` (`timeout=0`), asserting success. `filter` is an inline filter, or
/// a string filter id.
pub async fn sync(api: &Api<'_>, since: Option<&str>, filter: Option<&Value>) -> Value {
    let resp = sync_raw(api, &sync_query(since, filter)).await;
    let body = resp.ok();
    assert!(
        body["next_batch"].is_string(),
        "sync without next_batch: {body}"
    );
    body
}

/// A filter whose room timeline holds up to `limit` events.
pub fn timeline_limit(limit: u32) -> Value {
    json!({"room": {"timeline": {"limit": limit}}})
}

#[track_caller]
pub fn next_batch(sync: &Value) -> String {
    sync["next_batch"]
        .as_str()
        .unwrap_or_else(|| panic!("no next_batch: {sync}"))
        .to_owned()
}

/// The room ids under `rooms.<section>` (`join`, `invite`, `leave`, `knock`).
pub fn room_ids(sync: &Value, section: &str) -> Vec<String> {
    sync["rooms"][section]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `rooms.join.<room_id>` (`Null` when absent).
pub fn joined<'a>(sync: &'a Value, room_id: &str) -> &'a Value {
    &sync["rooms"]["join"][room_id]
}

/// The events of `rooms.<section>.<room_id>.timeline` (empty when absent).
pub fn timeline_in(sync: &Value, section: &str, room_id: &str) -> Vec<Value> {
    sync["rooms"][section][room_id]["timeline"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The events of `rooms.join.<room_id>.timeline` (empty when absent).
pub fn timeline(sync: &Value, room_id: &str) -> Vec<Value> {
    timeline_in(sync, "join", room_id)
}

/// The events of `rooms.join.<room_id>.<part>.events` (`state`, `ephemeral`, `account_data`).
pub fn room_part(sync: &Value, room_id: &str, part: &str) -> Vec<Value> {
    joined(sync, room_id)[part]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["event_id"]
                .as_str()
                .unwrap_or_else(|| panic!("event without event_id: {e}"))
                .to_owned()
        })
        .collect()
}

/// The `body` of every `m.room.message` among `events`, in order.
pub fn bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The first event of this type (and state key, when given).
pub fn find<'a>(
    events: &'a [Value],
    event_type: &str,
    state_key: Option<&str>,
) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["type"] == event_type && state_key.is_none_or(|k| e["state_key"] == k))
}

// ----- /messages -----

/// `GET /rooms/{roomId}/messages` with this raw query string (without `?`).
pub async fn messages_raw(api: &Api<'_>, room_id: &str, query: &str) -> Resp {
    api.get(&format!("{CS}/rooms/{}/messages?{query}", enc(room_id)))
        .await
}

/// Paginates `/messages` in direction `dir` from `from` (or the room's end/start), `limit`
/// events a page, following `end` until it is absent. Returns every event in the order
/// received (newest first for `b`). Bounded in pages.
pub async fn paginate(
    api: &Api<'_>,
    room_id: &str,
    dir: &str,
    from: Option<&str>,
    limit: u32,
) -> Vec<Value> {
    let mut events = Vec::new();
    let mut from = from.map(str::to_owned);
    for _ in 0..1000 {
        let mut q = format!("dir={dir}&limit={limit}");
        if let Some(from) = &from {
            q.push_str(&format!("&from={}", enc(from)));
        }
        let body = messages_raw(api, room_id, &q).await.ok();
        let chunk = body["chunk"]
            .as_array()
            .unwrap_or_else(|| panic!("no chunk: {body}"));
        assert!(
            chunk.len() <= limit as usize,
            "more than limit={limit} events in a page: {body}"
        );
        assert!(body["start"].is_string(), "no start: {body}");
        events.extend(chunk.iter().cloned());
        match body["end"].as_str() {
            None => return events,
            Some(end) => {
                assert!(
                    !chunk.is_empty() || from.as_deref() != Some(end),
                    "pagination doesn't progress: {body}"
                );
                from = Some(end.to_owned());
            }
        }
    }
    panic!("pagination of {room_id} didn't end within 1000 pages");
}

// ----- concurrency -----

/// Runs the futures with at most `n` at a time; returns their results in order.
pub async fn concurrently<R, F>(n: usize, futures: Vec<F>) -> Vec<R>
where
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(n));
    let handles: Vec<_> = futures
        .into_iter()
        .map(|f| {
            let sem = sem.clone();
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore closed");
                f.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(r) => out.push(r),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("task failed: {e}"),
        }
    }
    out
}
