//! The acceptance scenario with matrix-sdk as the client: Alice creates a room and invites
//! Bob, Bob sees the invite by sync and joins, they exchange 100 messages that both see in
//! order, Bob paginates the whole history, Alice edits and redacts and changes the topic, and
//! all of it holds after a restart of the server, old sync tokens included.
//!
//! The SDK drives the conversation; exact checks are made over raw HTTP with the SDK's own
//! access tokens.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoomRequest, RoomPreset,
};
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, UInt, UserId};
use matrix_sdk::{Client, Room, RoomState};
use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

const MESSAGES: usize = 100;

pub(crate) async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}

pub(crate) async fn sdk_login(port: u16, user: &str, password: &str) -> Client {
    let client = bounded(
        "building client",
        Client::builder()
            .homeserver_url(format!("http://localhost:{port}"))
            .build(),
    )
    .await
    .expect("building client");
    bounded(
        "login",
        client
            .matrix_auth()
            .login_username(user, password)
            .initial_device_display_name("sdk rooms test")
            .send(),
    )
    .await
    .unwrap_or_else(|e| panic!("login of {user}: {e}"));
    client
}

/// Non-blocking SDK sync settings with a timeline large enough to never be limited here.
fn settings() -> SyncSettings {
    let mut def = FilterDefinition::default();
    def.room.timeline.limit = Some(UInt::from(300u32));
    SyncSettings::default()
        .timeout(Duration::ZERO)
        .filter(Filter::FilterDefinition(def))
}

/// One SDK sync; returns the raw JSON of the room's timeline events, asserting the timeline
/// wasn't limited.
async fn sdk_sync(client: &Client, room_id: &OwnedRoomId) -> Vec<Value> {
    let resp = bounded("sdk sync", client.sync_once(settings()))
        .await
        .expect("sdk sync_once");
    let Some(update) = resp.rooms.joined.get(room_id) else {
        return Vec::new();
    };
    assert!(
        !update.timeline.limited,
        "unexpectedly limited SDK timeline"
    );
    update
        .timeline
        .events
        .iter()
        .map(|e| serde_json::from_str::<Value>(e.raw().json().get()).expect("timeline event JSON"))
        .collect()
}

fn message_ids(events: &[Value]) -> Vec<String> {
    ids(&events
        .iter()
        .filter(|e| e["type"] == "m.room.message" && e["content"]["m.relates_to"].is_null())
        .cloned()
        .collect::<Vec<_>>())
}

fn session_of(client: &Client) -> Session {
    Session {
        user_id: client.user_id().expect("logged in").to_string(),
        access_token: client.access_token().expect("access token"),
        device_id: client.device_id().expect("device id").to_string(),
    }
}

/// The edit, redaction and topic change of the scenario, as Bob must see them.
struct Changes {
    room_id: String,
    edited: String,
    edit: String,
    redacted: String,
    redaction: String,
}

impl Changes {
    async fn check(&self, bob_api: &Api<'_>, label: &str) {
        let red = get_event_raw(bob_api, &self.room_id, &self.redacted)
            .await
            .ok();
        assert_eq!(red["content"], json!({}), "{label}: {red}");
        assert_eq!(
            red["unsigned"]["redacted_because"]["event_id"],
            self.redaction.as_str(),
            "{label}: {red}"
        );
        let orig = get_event_raw(bob_api, &self.room_id, &self.edited)
            .await
            .ok();
        assert_eq!(
            orig["unsigned"]["m.relations"]["m.replace"]["event_id"],
            self.edit.as_str(),
            "{label}: edit not bundled with the original: {orig}"
        );
        assert_eq!(
            orig["content"]["body"], "message 010 from alice",
            "{label}: the original keeps its content"
        );
        assert_eq!(
            state_content(bob_api, &self.room_id, "m.room.topic", "").await["topic"],
            "the new topic",
            "{label}"
        );
    }
}

async fn send_sdk(room: &Room, body: &str) -> OwnedEventId {
    bounded(
        "sdk send",
        room.send(RoomMessageEventContent::text_plain(body))
            .into_future(),
    )
    .await
    .unwrap_or_else(|e| panic!("sdk send of {body:?}: {e}"))
    .response
    .event_id
}

#[tokio::test]
async fn matrix_sdk_conversation_survives_restart() {
    let mut srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    srv.create_user("localhost", "bob", "pw-bob-1").await;
    let alice = sdk_login(srv.port, "alice", "pw-alice-1").await;
    let bob = sdk_login(srv.port, "bob", "pw-bob-1").await;
    let alice_s = session_of(&alice);
    let bob_s = session_of(&bob);
    let bob_id = UserId::parse(&bob_s.user_id).unwrap();
    bounded("alice initial sync", alice.sync_once(settings()))
        .await
        .expect("alice initial sync");
    bounded("bob initial sync", bob.sync_once(settings()))
        .await
        .expect("bob initial sync");

    // Alice creates a room and invites Bob.
    let mut req = CreateRoomRequest::new();
    req.name = Some("SDK room".to_owned());
    req.preset = Some(RoomPreset::PrivateChat);
    let alice_room = bounded("create room", alice.create_room(req))
        .await
        .expect("create_room");
    let room_id = alice_room.room_id().to_owned();
    bounded("invite", alice_room.invite_user_by_id(&bob_id))
        .await
        .expect("invite");

    // Bob sees the invite through sync and joins.
    let resp = bounded("bob sync", bob.sync_once(settings()))
        .await
        .expect("bob sync");
    assert!(
        resp.rooms.invited.contains_key(&room_id),
        "invite not in Bob's sync: {:?}",
        resp.rooms.invited.keys().collect::<Vec<_>>()
    );
    let invited = bob.get_room(&room_id).expect("bob knows the room");
    assert_eq!(invited.state(), RoomState::Invited);
    assert!(
        bob.invited_rooms().iter().any(|r| r.room_id() == room_id),
        "not among invited_rooms"
    );
    let details = bounded("invite details", invited.invite_details())
        .await
        .expect("invite details");
    assert_eq!(
        details.inviter_id.as_str(),
        alice_s.user_id,
        "the SDK can't tell who invited"
    );
    bounded("join", invited.join()).await.expect("join");
    let bob_room = bob.get_room(&room_id).unwrap();
    assert_eq!(bob_room.state(), RoomState::Joined);

    let bob_api = srv.on("localhost").as_user(&bob_s);
    let alice_api = srv.on("localhost").as_user(&alice_s);
    assert_eq!(
        membership_of(&alice_api, room_id.as_str(), &bob_s.user_id).await,
        "join"
    );
    // Raw sync tokens from before the conversation, kept for after the restart.
    let bob_t0 = next_batch(&sync(&bob_api, None, Some(&timeline_limit(1))).await);
    let alice_t0 = next_batch(&sync(&alice_api, None, Some(&timeline_limit(1))).await);
    // The SDK clients catch up to here.
    sdk_sync(&alice, &room_id).await;
    sdk_sync(&bob, &room_id).await;

    // 100 messages, alternating, both syncing along the way.
    let mut sent = Vec::new();
    let mut alice_seen = Vec::new();
    let mut bob_seen = Vec::new();
    for i in 0..MESSAGES {
        let (room, who) = if i % 2 == 0 {
            (&alice_room, "alice")
        } else {
            (&bob_room, "bob")
        };
        sent.push(
            send_sdk(room, &format!("message {i:03} from {who}"))
                .await
                .to_string(),
        );
        if i % 15 == 14 {
            alice_seen.extend(message_ids(&sdk_sync(&alice, &room_id).await));
            bob_seen.extend(message_ids(&sdk_sync(&bob, &room_id).await));
        }
    }
    alice_seen.extend(message_ids(&sdk_sync(&alice, &room_id).await));
    bob_seen.extend(message_ids(&sdk_sync(&bob, &room_id).await));
    assert_eq!(alice_seen, sent, "Alice's SDK timeline");
    assert_eq!(bob_seen, sent, "Bob's SDK timeline");

    // The same, exactly, over raw HTTP from the tokens before the conversation.
    let expected_bodies: Vec<String> = (0..MESSAGES)
        .map(|i| {
            format!(
                "message {i:03} from {}",
                if i % 2 == 0 { "alice" } else { "bob" }
            )
        })
        .collect();
    for (api, since) in [(&bob_api, &bob_t0), (&alice_api, &alice_t0)] {
        let s = sync(api, Some(since), Some(&timeline_limit(300))).await;
        let tl = timeline(&s, room_id.as_str());
        assert_eq!(ids(&tl), sent, "raw sync timeline");
        assert_eq!(bodies(&tl), expected_bodies);
        assert_eq!(
            joined(&s, room_id.as_str())["timeline"]["limited"],
            json!(false)
        );
    }

    // Bob paginates back through the whole history.
    let history_check = |history: &[Value]| {
        let mut ids_seen = ids(history);
        assert_eq!(
            history.last().map(|e| e["type"].clone()),
            Some(json!("m.room.create")),
            "the oldest event is the room's creation"
        );
        let mut oldest_first = message_ids(history);
        oldest_first.reverse();
        assert_eq!(oldest_first, sent, "/messages history");
        let n = ids_seen.len();
        ids_seen.sort();
        ids_seen.dedup();
        assert_eq!(ids_seen.len(), n, "duplicates in /messages");
    };
    let history = paginate(&bob_api, room_id.as_str(), "b", None, 17).await;
    history_check(&history);
    // And forwards from the start gives the same, oldest first.
    let mut forward = paginate(&bob_api, room_id.as_str(), "f", None, 23).await;
    forward.reverse();
    assert_eq!(ids(&forward), ids(&history), "dir=f vs dir=b");

    // Alice edits one of her messages, redacts another, changes the topic.
    let edited = sent[10].clone();
    let redacted = sent[20].clone();
    let edit = send(
        &alice_api,
        room_id.as_str(),
        "m.room.message",
        json!({
            "msgtype": "m.text",
            "body": "* message 010, edited",
            "m.new_content": {"msgtype": "m.text", "body": "message 010, edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": edited},
        }),
    )
    .await;
    let redacted_id = OwnedEventId::try_from(redacted.as_str()).unwrap();
    let redaction = bounded(
        "redact",
        alice_room.redact(&redacted_id, Some("cleanup"), None),
    )
    .await
    .expect("redact")
    .event_id
    .to_string();
    bounded("topic", alice_room.set_room_topic("the new topic"))
        .await
        .expect("set topic");

    // Bob's SDK sync carries all three, in order.
    let events = sdk_sync(&bob, &room_id).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec!["m.room.message", "m.room.redaction", "m.room.topic"],
        "{events:?}"
    );
    assert_eq!(events[0]["event_id"], edit.as_str());
    assert_eq!(
        events[0]["content"]["m.relates_to"]["event_id"],
        edited.as_str()
    );
    assert_eq!(
        events[0]["content"]["m.new_content"]["body"],
        "message 010, edited"
    );
    assert_eq!(events[1]["event_id"], redaction.as_str());
    assert_eq!(events[1]["content"]["redacts"], redacted.as_str());
    assert_eq!(events[2]["content"]["topic"], "the new topic");
    assert_eq!(bob_room.topic().as_deref(), Some("the new topic"));

    let check_edit_and_redaction = |history: &[Value]| {
        let red = history
            .iter()
            .find(|e| e["event_id"] == redacted.as_str())
            .expect("redacted event still in the timeline");
        assert_eq!(red["content"], json!({}), "{red}");
        assert_eq!(
            red["unsigned"]["redacted_because"]["event_id"],
            redaction.as_str(),
            "{red}"
        );
        let ed = history
            .iter()
            .find(|e| e["event_id"] == edit.as_str())
            .expect("edit in the timeline");
        assert_eq!(ed["content"]["m.relates_to"]["rel_type"], "m.replace");
    };
    let changed = Changes {
        room_id: room_id.to_string(),
        edited: edited.clone(),
        edit: edit.clone(),
        redacted: redacted.clone(),
        redaction: redaction.clone(),
    };
    changed.check(&bob_api, "before restart").await;
    let history = paginate(&bob_api, room_id.as_str(), "b", None, 17).await;
    history_check(&history);
    check_edit_and_redaction(&history);
    let timeline_before: Vec<String> = ids(&timeline(
        &sync(&bob_api, Some(&bob_t0), Some(&timeline_limit(300))).await,
        room_id.as_str(),
    ));
    assert_eq!(timeline_before.len(), MESSAGES + 3);
    let bob_t1 = next_batch(&sync(&bob_api, None, Some(&timeline_limit(1))).await);

    // ----- restart -----
    srv.restart_on_same_port().await;
    let bob_api = srv.on("localhost").as_user(&bob_s);
    let alice_api = srv.on("localhost").as_user(&alice_s);

    // Old sync tokens still work: the same timeline from before the conversation …
    let s = sync(&bob_api, Some(&bob_t0), Some(&timeline_limit(300))).await;
    let tl = timeline(&s, room_id.as_str());
    assert_eq!(
        ids(&tl),
        timeline_before,
        "timeline from an old token after restart"
    );
    check_edit_and_redaction(&tl);
    // … and nothing new from the latest one, until something happens.
    let s = sync(&bob_api, Some(&bob_t1), None).await;
    assert!(timeline(&s, room_id.as_str()).is_empty(), "{s}");
    let after = send_text(&alice_api, room_id.as_str(), "after the restart").await;
    let s = sync(&bob_api, Some(&bob_t1), None).await;
    assert_eq!(
        ids(&timeline(&s, room_id.as_str())),
        vec![after.clone()],
        "{s}"
    );

    changed.check(&bob_api, "after restart").await;
    let history = paginate(&bob_api, room_id.as_str(), "b", None, 17).await;
    assert_eq!(history[0]["event_id"], after.as_str());
    history_check(&history[1..]);
    check_edit_and_redaction(&history);

    // The SDK clients carry on with their stored sync tokens.
    let events = sdk_sync(&bob, &room_id).await;
    assert_eq!(ids(&events), vec![after.clone()]);
    let reply = send_sdk(&bob_room, "bob after the restart")
        .await
        .to_string();
    let events = sdk_sync(&alice, &room_id).await;
    assert_eq!(
        message_ids(&events),
        vec![after, reply],
        "Alice's SDK after restart"
    );
    assert_eq!(
        alice.get_room(&room_id).unwrap().topic().as_deref(),
        Some("the new topic")
    );
}
