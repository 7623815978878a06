//! The event pipeline on a real tenant (SQLite): events of different rooms are built at the
//! same time and each room's stay in order; a client transaction is stored once per request
//! path; the checks of received events (against their auth events, the state
//! before them, and the current state); and forgetting a room never races a join.

use std::sync::Arc;
use std::time::Duration;

use maas_core::accounts::AuthedUser;
use maas_core::filter::Filter;
use maas_core::rooms::pdu::{self, PduContext};
use maas_core::rooms::{
    CreateRoom, Direction, EventDraft, Page, Pdu, Preset, Transaction, TxnEndpoint, Verdict,
};
use maas_core::sync::{SyncRequest, parse_token};
use maas_core::{Error, Tenant};
use ruma::signatures::Ed25519KeyPair;
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, RoomId, ServerName,
    TransactionId, UserId,
};
use serde_json::{Value, json};

mod support;

struct Fixture {
    _platform: support::Platformed,
    tenant: Tenant,
    alice: AuthedUser,
    bob: AuthedUser,
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

async fn fixture_with(configure: impl FnOnce(&mut maas_core::config::Config)) -> Fixture {
    let platform = support::platform_with(configure).await;
    let tenant = platform.tenant.clone();
    let alice = support::authed(&tenant, "alice", None).await;
    let bob = support::authed(&tenant, "bob", None).await;
    Fixture {
        _platform: platform,
        tenant,
        alice,
        bob,
    }
}

impl Fixture {
    /// A public room Alice created and Bob joined.
    async fn room(&self) -> OwnedRoomId {
        let rooms = self.tenant.rooms();
        let create = CreateRoom {
            preset: Some(Preset::PublicChat),
            ..CreateRoom::default()
        };
        let room_id = rooms
            .create(&self.alice.user_id, create)
            .await
            .expect("room");
        rooms
            .join(&self.bob.user_id, &room_id, &[], None)
            .await
            .expect("join");
        room_id
    }

    async fn say(&self, user: &AuthedUser, room_id: &RoomId, body: &str) -> OwnedEventId {
        self.tenant
            .rooms()
            .send(&user.user_id, room_id, text(body), None)
            .await
            .expect("send")
    }

    /// The bodies of a room's messages, oldest first.
    async fn bodies(&self, room_id: &RoomId) -> Vec<String> {
        let page = Page {
            from: None,
            to: None,
            direction: Direction::Forward,
            limit: 1000,
        };
        let messages = self
            .tenant
            .rooms()
            .messages(&self.alice.user_id, room_id, page, &Default::default())
            .await
            .expect("messages");
        messages
            .chunk
            .iter()
            .filter(|e| e.kind() == "m.room.message")
            .filter_map(|e| e.content()["body"].as_str().map(str::to_owned))
            .collect()
    }
}

fn text(body: &str) -> EventDraft {
    EventDraft::message("m.room.message", json!({"msgtype": "m.text", "body": body}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_written_at_once_and_each_keeps_its_order() {
    rooms_written_at_once(fixture().await).await;
}

/// With one work turn for the tenant, its senders of every room take turns, and none waits
/// forever (a turn is never held while waiting for a room's lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_work_turn_still_serves_every_room() {
    rooms_written_at_once(fixture_with(|config| config.tenants.work_slots = 1).await).await;
}

async fn rooms_written_at_once(f: Fixture) {
    let f = Arc::new(f);
    let rooms = [f.room().await, f.room().await, f.room().await];
    let senders = rooms.iter().cloned().map(|room_id| {
        let f = f.clone();
        tokio::spawn(async move {
            for n in 0..30 {
                f.say(&f.alice, &room_id, &n.to_string()).await;
            }
        })
    });
    for sender in senders.collect::<Vec<_>>() {
        sender.await.expect("sender");
    }
    let expected: Vec<String> = (0..30).map(|n| n.to_string()).collect();
    for room_id in &rooms {
        assert_eq!(f.bodies(room_id).await, expected);
    }
}

/// A transaction id is scoped to its device and request path (spec: "Transaction
/// identifiers"): concurrent attempts on one path store one event; the same id in another room
/// is another request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_stored_once_per_request_path() {
    let f = Arc::new(fixture().await);
    let rooms = [f.room().await, f.room().await];
    let txn_id = TransactionId::new();
    let attempts = (0..6).map(|n| {
        let (f, room_id, txn_id) = (f.clone(), rooms[n % 2].clone(), txn_id.clone());
        tokio::spawn(async move {
            let txn = Transaction {
                device_id: &f.alice.device_id,
                txn_id: &txn_id,
                endpoint: TxnEndpoint::Send,
            };
            let sent = f
                .tenant
                .rooms()
                .send(&f.alice.user_id, &room_id, text("once"), Some(txn))
                .await;
            (n % 2, sent)
        })
    });
    let mut event_ids: [Vec<OwnedEventId>; 2] = Default::default();
    for attempt in attempts.collect::<Vec<_>>() {
        let (room, sent) = attempt.await.expect("attempt");
        event_ids[room].push(sent.expect("send"));
    }
    for (room_id, ids) in rooms.iter().zip(&mut event_ids) {
        ids.dedup();
        assert_eq!(
            ids.len(),
            1,
            "every attempt in a room answers with its one event"
        );
        assert_eq!(f.bodies(room_id).await, ["once"]);
    }
    assert_ne!(event_ids[0], event_ids[1]);

    // Another event type is another path too.
    let txn = Transaction {
        device_id: &f.alice.device_id,
        txn_id: &txn_id,
        endpoint: TxnEndpoint::Send,
    };
    let reaction = EventDraft::message("m.room.custom", json!({"body": "other type"}));
    let other = f
        .tenant
        .rooms()
        .send(&f.alice.user_id, &rooms[0], reaction, Some(txn))
        .await
        .expect("send");
    assert!(!event_ids[0].contains(&other));
}

/// A PDU as another server would send it: by `sender`, on `prev_events`, citing `auth_events`.
fn received(
    room_id: &RoomId,
    sender: &UserId,
    prev_events: &[Arc<Pdu>],
    auth_events: &[Arc<Pdu>],
    body: &str,
) -> Pdu {
    let key = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "k".into()).expect("key pair");
    let rules = ruma::RoomVersionId::V12.rules().expect("rules");
    let server: &ServerName = sender.server_name();
    let ctx = PduContext {
        rules: &rules,
        server_name: server,
        key: &key,
        room_id: Some(room_id),
        sender,
        prev_events,
        auth_events,
        origin_server_ts: MilliSecondsSinceUnixEpoch::now(),
    };
    pdu::build(&ctx, text(body)).expect("build").0
}

async fn pdus(f: &Fixture, ids: &[&EventId]) -> Vec<Arc<Pdu>> {
    let mut out = Vec::new();
    for id in ids {
        out.push(f.tenant.rooms().pdu(id).await.expect("pdu"));
    }
    out
}

/// The state event ids of the room Alice created and Bob joined, by type.
async fn state_ids(f: &Fixture, room_id: &RoomId) -> Value {
    let state = f
        .tenant
        .rooms()
        .state(&f.alice.user_id, room_id)
        .await
        .expect("state");
    let mut ids = serde_json::Map::new();
    for event in state {
        let key = format!("{}|{}", event.kind(), event.state_key().unwrap_or_default());
        ids.insert(key, json!(event.event_id()));
    }
    Value::Object(ids)
}

fn id(state: &Value, key: &str) -> OwnedEventId {
    EventId::parse(state[key].as_str().expect(key)).expect("event id")
}

#[tokio::test]
async fn received_events_are_checked_three_ways() {
    let f = fixture().await;
    let room_id = f.room().await;
    let last = f.say(&f.alice, &room_id, "hello").await;
    let state = state_ids(&f, &room_id).await;
    let create = id(&state, "m.room.create|");
    let power = id(&state, "m.room.power_levels|");
    let bob_joined = id(&state, &format!("m.room.member|{}", f.bob.user_id));
    let rooms = f.tenant.rooms();

    // Allowed by its auth events, the state before it and the current state.
    let auth = pdus(&f, &[&create, &power, &bob_joined]).await;
    let prev = pdus(&f, &[&last]).await;
    let fine = received(&room_id, &f.bob.user_id, &prev, &auth[1..], "fine");
    assert_eq!(
        rooms.check_received(&fine).await.expect("checked"),
        Verdict::Accepted
    );

    // Bob is joined in the state before it, but the event doesn't cite his join: its own auth
    // events don't allow it.
    let uncited = received(
        &room_id,
        &f.bob.user_id,
        &prev,
        &auth[1..2],
        "no join cited",
    );
    assert!(matches!(
        rooms.check_received(&uncited).await,
        Err(Error::Forbidden(_))
    ));

    // Someone who never joined: rejected by the auth rules.
    let eve = UserId::parse("@eve:remote.test").expect("user id");
    let stranger = received(&room_id, &eve, &prev, &auth[1..2], "let me in");
    assert!(matches!(
        rooms.check_received(&stranger).await,
        Err(Error::Forbidden(_))
    ));

    // Bob is banned now; a message of his built on the state before the ban passes its auth
    // events and that state, but not the current state: soft-failed.
    let ban = EventDraft::state(
        "m.room.member",
        f.bob.user_id.as_str(),
        json!({"membership": "ban"}),
    );
    rooms
        .send(&f.alice.user_id, &room_id, ban, None)
        .await
        .expect("ban");
    let late = received(
        &room_id,
        &f.bob.user_id,
        &prev,
        &auth[1..],
        "before the ban",
    );
    assert!(matches!(
        rooms.check_received(&late).await.expect("checked"),
        Verdict::SoftFailed(_)
    ));

    // Citing an auth event this server doesn't know: rejected.
    let mut unknown = late.clone();
    unknown
        .auth_events
        .push(EventId::parse("$unknown").expect("id"));
    assert!(rooms.check_received(&unknown).await.is_err());
    // Prev events this server doesn't know need fetching first: not accepted either.
    let mut orphan = late.clone();
    orphan.prev_events = vec![EventId::parse("$orphan").expect("id")];
    assert!(matches!(
        rooms.check_received(&orphan).await,
        Err(Error::Unknown(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_never_races_a_join() {
    let f = Arc::new(fixture().await);
    let room_id = f.room().await;
    let rooms = f.tenant.rooms();
    for round in 0..30 {
        rooms
            .leave(&f.bob.user_id, &room_id, None)
            .await
            .expect("leave");
        let join = {
            let (f, room_id) = (f.clone(), room_id.clone());
            tokio::spawn(async move {
                f.tenant
                    .rooms()
                    .join(&f.bob.user_id, &room_id, &[], None)
                    .await
            })
        };
        let forget = {
            let (f, room_id) = (f.clone(), room_id.clone());
            tokio::spawn(async move { f.tenant.rooms().forget(&f.bob.user_id, &room_id).await })
        };
        join.await.expect("join task").expect("join");
        match forget.await.expect("forget task") {
            Ok(()) | Err(Error::Unknown(_)) => {}
            Err(other) => panic!("round {round}: {other:?}"),
        }
        // Whatever the order, a forget recorded before the join is undone by it: the leave
        // that follows shows in Bob's sync.
        let since = next_batch(&f, None).await;
        rooms
            .leave(&f.bob.user_id, &room_id, None)
            .await
            .expect("leave");
        let response = sync(&f, Some(since)).await;
        assert!(
            response["rooms"]["leave"].get(room_id.as_str()).is_some(),
            "round {round}: the leave is hidden as if forgotten: {response}"
        );
        rooms
            .join(&f.bob.user_id, &room_id, &[], None)
            .await
            .expect("rejoin");
    }
    // Forgetting a room one is in is refused outright.
    assert!(matches!(
        rooms.forget(&f.bob.user_id, &room_id).await,
        Err(Error::Unknown(_))
    ));
}

async fn sync(f: &Fixture, since: Option<i64>) -> Value {
    let request = SyncRequest {
        since,
        set_presence: None,
        timeout: Duration::ZERO,
        full_state: false,
        filter: Filter::default(),
    };
    f.tenant.sync(&f.bob, request).await.expect("sync")
}

async fn next_batch(f: &Fixture, since: Option<i64>) -> i64 {
    let response = sync(f, since).await;
    parse_token(response["next_batch"].as_str().expect("next_batch")).expect("token")
}
