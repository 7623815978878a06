//! Users of two tenants of one process share rooms (spec: Server-Server API, "Joining Rooms",
//! "Inviting to a room", "Leaving Rooms", "Transactions", "Room State Resolution"): users join
//! rooms of the other tenant by alias or by id, invite, reject, leave and rejoin, over the
//! in-process transport with every check of the network; they talk, also at the same time on
//! both servers, and both resolve the room alike; refusals leave nothing behind.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

async fn setup() -> (TestServer, Session, Session) {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    (srv, alice, bob)
}

/// Alice's public room on a.test, with a name and the alias `#lobby:a.test`, and one message.
async fn lobby(srv: &TestServer, alice: &Session) -> String {
    let room = srv
        .on("a.test")
        .as_user(alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "public_chat", "name": "Lobby", "room_alias_name": "lobby"}),
        )
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id").to_owned();
    send(srv, "a.test", alice, &room_id, "before bob").await;
    room_id
}

/// Bob of b.test joins `#lobby:a.test` (over federation, or locally once b.test is in it).
async fn join_lobby(srv: &TestServer, bob: &Session) {
    srv.on("b.test")
        .as_user(bob)
        .post(
            &format!("/_matrix/client/v3/join/{}", enc("#lobby:a.test")),
            json!({}),
        )
        .await
        .ok();
}

pub(crate) async fn send(srv: &TestServer, host: &str, user: &Session, room_id: &str, body: &str) {
    srv.on(host)
        .as_user(user)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                enc(room_id),
                enc(body)
            ),
            json!({"msgtype": "m.text", "body": body}),
        )
        .await
        .ok();
}

/// The message bodies of the room as `user` reads them on `host`, oldest first.
pub(crate) async fn bodies(
    srv: &TestServer,
    host: &str,
    user: &Session,
    room_id: &str,
) -> Vec<String> {
    let page = srv
        .on(host)
        .as_user(user)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            enc(room_id)
        ))
        .await
        .ok();
    let mut bodies: Vec<String> = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    bodies.reverse();
    bodies
}

/// Waits until the room's messages on `host` end with `last` (delivery between tenants is
/// asynchronous).
pub(crate) async fn wait_for(
    srv: &TestServer,
    host: &str,
    user: &Session,
    room_id: &str,
    last: &str,
) {
    for _ in 0..100 {
        let seen = bodies(srv, host, user, room_id).await;
        if seen.last().map(String::as_str) == Some(last) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = bodies(srv, host, user, room_id).await;
    // What the servers said about refused events, to tell why.
    let log = srv.stderr();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused") || l.contains("left out") || l.contains("ERROR"))
        .collect();
    panic!(
        "{last:?} never reached {host}: {seen:?}\n{}",
        refusals.join("\n")
    );
}

pub(crate) async fn joined_members(
    srv: &TestServer,
    host: &str,
    user: &Session,
    room_id: &str,
) -> Value {
    srv.on(host)
        .as_user(user)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/joined_members",
            enc(room_id)
        ))
        .await
        .ok()["joined"]
        .clone()
}

#[tokio::test]
async fn a_user_joins_a_room_of_another_tenant_by_alias_and_they_talk() {
    let (srv, alice, bob) = setup().await;
    let room_id = lobby(&srv, &alice).await;

    let joined = srv
        .on("b.test")
        .as_user(&bob)
        .post(
            &format!("/_matrix/client/v3/join/{}", enc("#lobby:a.test")),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(joined["room_id"], room_id.as_str());

    // Both servers see both members; bob's server has the room's state from a.test.
    for (host, user) in [("a.test", &alice), ("b.test", &bob)] {
        let members = joined_members(&srv, host, user, &room_id).await;
        assert!(members["@alice:a.test"].is_object(), "{host}: {members}");
        assert!(members["@bob:b.test"].is_object(), "{host}: {members}");
    }
    let name = srv
        .on("b.test")
        .as_user(&bob)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.name/",
            enc(&room_id)
        ))
        .await
        .ok();
    assert_eq!(name["name"], "Lobby");
    let sync = srv
        .on("b.test")
        .as_user(&bob)
        .get("/_matrix/client/v3/sync")
        .await
        .ok();
    let room = &sync["rooms"]["join"][&room_id];
    let state = room["state"]["events"].as_array().expect("state events");
    assert!(
        state.iter().any(|e| e["type"] == "m.room.name"),
        "the room's state reaches bob's sync: {room}"
    );
    let timeline = room["timeline"]["events"].as_array().expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == "@bob:b.test"),
        "bob's join is in his timeline: {room}"
    );

    // They talk, each on their own server.
    send(&srv, "b.test", &bob, &room_id, "hello from b").await;
    wait_for(&srv, "a.test", &alice, &room_id, "hello from b").await;
    send(&srv, "a.test", &alice, &room_id, "hello from a").await;
    wait_for(&srv, "b.test", &bob, &room_id, "hello from a").await;
    send(&srv, "b.test", &bob, &room_id, "and again").await;
    wait_for(&srv, "a.test", &alice, &room_id, "and again").await;
    assert_eq!(
        bodies(&srv, "a.test", &alice, &room_id).await,
        ["before bob", "hello from b", "hello from a", "and again"]
    );
    // Bob's server has what happened since he joined, and fetches what came before from
    // a.test (backfill) when he pages back past his join; the room's history is shared.
    assert_eq!(
        bodies(&srv, "b.test", &bob, &room_id).await,
        ["before bob", "hello from b", "hello from a", "and again"]
    );
}

#[tokio::test]
async fn a_room_is_joined_by_id_through_the_servers_named() {
    let (srv, alice, bob) = setup().await;
    let room_id = lobby(&srv, &alice).await;
    let as_bob = srv.on("b.test").as_user(&bob);

    // A version 12 room id names no server: without `via` there is no one to ask.
    let resp = as_bob
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room_id)),
            json!({}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    let joined = as_bob
        .post(
            &format!("/_matrix/client/v3/join/{}?via=a.test", enc(&room_id)),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(joined["room_id"], room_id.as_str());
    let members = joined_members(&srv, "a.test", &alice, &room_id).await;
    assert!(members["@bob:b.test"].is_object(), "{members}");

    // Joining again changes nothing.
    as_bob
        .post(
            &format!("/_matrix/client/v3/join/{}?via=a.test", enc(&room_id)),
            json!({}),
        )
        .await
        .ok();
    let rooms = as_bob.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert_eq!(rooms["joined_rooms"], json!([room_id]));
}

#[tokio::test]
async fn a_refused_join_leaves_nothing_behind() {
    let (srv, alice, bob) = setup().await;
    let room = srv
        .on("a.test")
        .as_user(&alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "private_chat", "room_alias_name": "private"}),
        )
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id");
    let as_bob = srv.on("b.test").as_user(&bob);

    let resp = as_bob
        .post(
            &format!("/_matrix/client/v3/join/{}", enc("#private:a.test")),
            json!({}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = as_bob
        .post(
            &format!("/_matrix/client/v3/join/{}", enc("#nowhere:a.test")),
            json!({}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    // A server that isn't there.
    let resp = as_bob
        .post(
            &format!("/_matrix/client/v3/join/{}?via=c.test", enc(room_id)),
            json!({}),
        )
        .await;
    assert!(resp.status >= 400, "{}", resp.body);

    let rooms = as_bob.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert_eq!(rooms["joined_rooms"], json!([]));
    let resp = as_bob
        .get(&format!("/_matrix/client/v3/rooms/{}/state", enc(room_id)))
        .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    let members = joined_members(&srv, "a.test", &alice, room_id).await;
    assert!(members["@bob:b.test"].is_null(), "{members}");
}

/// The rooms of `section` (`invite`, `join`, `leave`) in a full sync of `user` on `host`.
async fn synced(srv: &TestServer, host: &str, user: &Session, section: &str) -> Value {
    srv.on(host)
        .as_user(user)
        .get("/_matrix/client/v3/sync")
        .await
        .ok()["rooms"][section]
        .clone()
}

#[tokio::test]
async fn a_user_of_another_tenant_is_invited_and_accepts() {
    let (srv, alice, bob) = setup().await;
    let room = srv
        .on("a.test")
        .as_user(&alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "private_chat", "name": "Secret"}),
        )
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id").to_owned();
    send(&srv, "a.test", &alice, &room_id, "before the invite").await;

    srv.on("a.test")
        .as_user(&alice)
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room_id)),
            json!({"user_id": "@bob:b.test", "reason": "join us"}),
        )
        .await
        .ok();
    // The invite is in the room, signed by both servers, and bob's server keeps it for him
    // with the room's stripped state.
    let member = srv
        .on("a.test")
        .as_user(&alice)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
            enc(&room_id),
            enc("@bob:b.test")
        ))
        .await
        .ok();
    assert_eq!(member["membership"], "invite");
    let invites = synced(&srv, "b.test", &bob, "invite").await;
    let stripped = invites[&room_id]["invite_state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("bob is invited: {invites}"));
    assert!(
        stripped
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Secret"),
        "{invites}"
    );
    assert!(
        stripped.iter().any(|e| e["type"] == "m.room.member"
            && e["state_key"] == "@bob:b.test"
            && e["content"]["membership"] == "invite"
            && e["sender"] == "@alice:a.test"),
        "{invites}"
    );

    // The room is invite-only and its id names no server: the invite says where to join.
    srv.on("b.test")
        .as_user(&bob)
        .post(
            &format!("/_matrix/client/v3/rooms/{}/join", enc(&room_id)),
            json!({}),
        )
        .await
        .ok();
    assert!(synced(&srv, "b.test", &bob, "join").await[&room_id].is_object());
    let members = joined_members(&srv, "a.test", &alice, &room_id).await;
    assert!(members["@bob:b.test"].is_object(), "{members}");
    send(&srv, "b.test", &bob, &room_id, "thanks").await;
    wait_for(&srv, "a.test", &alice, &room_id, "thanks").await;
}

#[tokio::test]
async fn invites_to_unknown_or_remote_users_are_checked() {
    let (srv, alice, _bob) = setup().await;
    let room = srv
        .on("a.test")
        .as_user(&alice)
        .post("/_matrix/client/v3/createRoom", json!({}))
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id");
    let as_alice = srv.on("a.test").as_user(&alice);
    let path = format!("/_matrix/client/v3/rooms/{}/invite", enc(room_id));

    // b.test has no such user: its server refuses, and the room doesn't change.
    let resp = as_alice
        .post(&path, json!({"user_id": "@nobody:b.test"}))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let member = as_alice
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
            enc(room_id),
            enc("@nobody:b.test")
        ))
        .await;
    assert_error(&member, 404, "M_NOT_FOUND");
}

/// Alice's invite-only room on a.test with bob invited.
async fn invited(srv: &TestServer, alice: &Session) -> String {
    let room = srv
        .on("a.test")
        .as_user(alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "private_chat", "invite": ["@bob:b.test"]}),
        )
        .await
        .ok();
    room["room_id"].as_str().expect("room id").to_owned()
}

async fn membership_of(srv: &TestServer, alice: &Session, room_id: &str, user: &str) -> Value {
    srv.on("a.test")
        .as_user(alice)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
            enc(room_id),
            enc(user)
        ))
        .await
        .ok()["membership"]
        .clone()
}

#[tokio::test]
async fn an_invite_is_rejected_through_the_inviting_server() {
    let (srv, alice, bob) = setup().await;
    let room_id = invited(&srv, &alice).await;
    assert_eq!(
        membership_of(&srv, &alice, &room_id, "@bob:b.test").await,
        "invite"
    );
    assert!(synced(&srv, "b.test", &bob, "invite").await[&room_id].is_object());

    srv.on("b.test")
        .as_user(&bob)
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room_id)),
            json!({"reason": "no thanks"}),
        )
        .await
        .ok();
    assert_eq!(
        membership_of(&srv, &alice, &room_id, "@bob:b.test").await,
        "leave"
    );
    assert!(synced(&srv, "b.test", &bob, "invite").await[&room_id].is_null());
    // Rejected once: a second leave has nothing to leave.
    let resp = srv
        .on("b.test")
        .as_user(&bob)
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room_id)),
            json!({}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}

#[tokio::test]
async fn an_invite_from_a_server_that_is_gone_is_rejected_here() {
    let (srv, alice, bob) = setup().await;
    let room_id = invited(&srv, &alice).await;
    srv.op().delete(&format!("{OP}/tenants/a.test")).await.ok();
    srv.on("b.test")
        .as_user(&bob)
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room_id)),
            json!({}),
        )
        .await
        .ok();
    assert!(synced(&srv, "b.test", &bob, "invite").await[&room_id].is_null());
    let rooms = srv
        .on("b.test")
        .as_user(&bob)
        .get("/_matrix/client/v3/joined_rooms")
        .await
        .ok();
    assert_eq!(rooms["joined_rooms"], json!([]));
}

#[tokio::test]
async fn a_remote_member_leaves_and_rejoins() {
    let (srv, alice, bob) = setup().await;
    let room_id = lobby(&srv, &alice).await;
    join_lobby(&srv, &bob).await;
    srv.on("b.test")
        .as_user(&bob)
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room_id)),
            json!({}),
        )
        .await
        .ok();
    for _ in 0..100 {
        if membership_of(&srv, &alice, &room_id, "@bob:b.test").await == "leave" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if membership_of(&srv, &alice, &room_id, "@bob:b.test").await != "leave" {
        let log = srv.stderr();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("state/m.room.member"))
            .collect();
        panic!("bob's leave never reached a.test\n{}", lines.join("\n"));
    }
    send(&srv, "a.test", &alice, &room_id, "while bob was away").await;

    // Back again: b.test is no longer in the room and joins it anew, with today's state.
    join_lobby(&srv, &bob).await;
    assert_eq!(
        membership_of(&srv, &alice, &room_id, "@bob:b.test").await,
        "join"
    );
    send(&srv, "b.test", &bob, &room_id, "back").await;
    wait_for(&srv, "a.test", &alice, &room_id, "back").await;
    send(&srv, "a.test", &alice, &room_id, "welcome back").await;
    wait_for(&srv, "b.test", &bob, &room_id, "welcome back").await;
    let members = joined_members(&srv, "b.test", &bob, &room_id).await;
    assert!(members["@alice:a.test"].is_object(), "{members}");
    // What was said while b.test was out of the room is in its timeline, in order.
    let seen = bodies(&srv, "b.test", &bob, &room_id).await;
    let away = seen.iter().position(|b| b == "while bob was away");
    let back = seen.iter().position(|b| b == "back");
    assert!(away.is_some() && away < back, "{seen:?}");
}

pub(crate) async fn state_of(
    srv: &TestServer,
    host: &str,
    user: &Session,
    room_id: &str,
    kind: &str,
) -> Value {
    srv.on(host)
        .as_user(user)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/{kind}/",
            enc(room_id)
        ))
        .await
        .ok()
}

#[tokio::test]
async fn concurrent_events_on_both_servers_fork_and_resolve_alike() {
    let (srv, alice, bob) = setup().await;
    let room_id = lobby(&srv, &alice).await;
    join_lobby(&srv, &bob).await;
    // Bob may change the room's state too.
    let mut levels = state_of(&srv, "a.test", &alice, &room_id, "m.room.power_levels").await;
    levels["users"]["@bob:b.test"] = json!(100);
    srv.on("a.test")
        .as_user(&alice)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
                enc(&room_id)
            ),
            levels,
        )
        .await
        .ok();
    send(&srv, "a.test", &alice, &room_id, "you may").await;
    wait_for(&srv, "b.test", &bob, &room_id, "you may").await;

    // Both name the room and talk at once: each event is built on the same head, so each
    // server receives the other's beside its own.
    let as_alice = srv.on("a.test").as_user(&alice);
    let as_bob = srv.on("b.test").as_user(&bob);
    let name_path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.name/",
        enc(&room_id)
    );
    let mut names = Vec::new();
    for round in 0..3 {
        let (from_a, from_b) = tokio::join!(
            as_alice.put(&name_path, json!({"name": format!("a{round}")})),
            as_bob.put(&name_path, json!({"name": format!("b{round}")})),
        );
        names.push(from_a.ok()["event_id"].clone());
        names.push(from_b.ok()["event_id"].clone());
        let (said_a, said_b) = (format!("a says {round}"), format!("b says {round}"));
        tokio::join!(
            send(&srv, "a.test", &alice, &room_id, &said_a),
            send(&srv, "b.test", &bob, &room_id, &said_b),
        );
    }
    // Once each server holds every name, before anything builds on them, both already agree
    // (a received name is resolved against the local one as it arrives).
    for (host, user) in [("a.test", &alice), ("b.test", &bob)] {
        for name in &names {
            let path = format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room_id),
                enc(name.as_str().expect("event id"))
            );
            let mut found = false;
            for _ in 0..100 {
                if srv.on(host).as_user(user).get(&path).await.status == 200 {
                    found = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(found, "{name} never reached {host}");
        }
    }
    let on_a = state_of(&srv, "a.test", &alice, &room_id, "m.room.name").await;
    let on_b = state_of(&srv, "b.test", &bob, &room_id, "m.room.name").await;
    assert_eq!(
        on_a, on_b,
        "the same name wins on both servers as they arrive"
    );
    // A last word from each side merges what forked.
    send(&srv, "a.test", &alice, &room_id, "a done").await;
    wait_for(&srv, "b.test", &bob, &room_id, "a done").await;
    send(&srv, "b.test", &bob, &room_id, "b done").await;
    wait_for(&srv, "a.test", &alice, &room_id, "b done").await;

    let mut a_bodies = bodies(&srv, "a.test", &alice, &room_id).await;
    let mut b_bodies = bodies(&srv, "b.test", &bob, &room_id).await;
    for round in 0..3 {
        for said in [format!("a says {round}"), format!("b says {round}")] {
            assert!(a_bodies.contains(&said), "{said} on a.test: {a_bodies:?}");
            assert!(b_bodies.contains(&said), "{said} on b.test: {b_bodies:?}");
        }
    }
    a_bodies.sort();
    b_bodies.sort();
    // b.test backfills what came before bob joined.
    assert_eq!(a_bodies, b_bodies, "both servers hold the same messages");
    let on_a = state_of(&srv, "a.test", &alice, &room_id, "m.room.name").await;
    let on_b = state_of(&srv, "b.test", &bob, &room_id, "m.room.name").await;
    assert_eq!(on_a, on_b, "the same name wins on both servers");
}

/// The ephemeral events of `room_id` in syncs of `user` on `host`, until one of `kind`
/// satisfies `found` (EDUs between tenants travel asynchronously).
pub(crate) async fn wait_for_ephemeral(
    srv: &TestServer,
    host: &str,
    user: &Session,
    room_id: &str,
    kind: &str,
    found: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let sync = srv
            .on(host)
            .as_user(user)
            .get("/_matrix/client/v3/sync?timeout=0")
            .await
            .ok();
        last = sync["rooms"]["join"][room_id]["ephemeral"]["events"].clone();
        let hit = last
            .as_array()
            .and_then(|events| events.iter().find(|e| e["type"] == kind && found(e)));
        if let Some(hit) = hit {
            return hit.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} on {host}: {last}");
}

#[tokio::test]
async fn typing_and_read_receipts_reach_the_other_server() {
    let (srv, alice, bob) = setup().await;
    let room_id = lobby(&srv, &alice).await;
    join_lobby(&srv, &bob).await;

    srv.on("b.test")
        .as_user(&bob)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/typing/{}",
                enc(&room_id),
                enc("@bob:b.test")
            ),
            json!({"typing": true, "timeout": 30000}),
        )
        .await
        .ok();
    wait_for_ephemeral(&srv, "a.test", &alice, &room_id, "m.typing", |e| {
        e["content"]["user_ids"] == json!(["@bob:b.test"])
    })
    .await;
    srv.on("b.test")
        .as_user(&bob)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/typing/{}",
                enc(&room_id),
                enc("@bob:b.test")
            ),
            json!({"typing": false}),
        )
        .await
        .ok();
    wait_for_ephemeral(&srv, "a.test", &alice, &room_id, "m.typing", |e| {
        e["content"]["user_ids"] == json!([])
    })
    .await;

    send(&srv, "a.test", &alice, &room_id, "read me").await;
    wait_for(&srv, "b.test", &bob, &room_id, "read me").await;
    let page = srv
        .on("a.test")
        .as_user(&alice)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1",
            enc(&room_id)
        ))
        .await
        .ok();
    let event_id = page["chunk"][0]["event_id"]
        .as_str()
        .expect("event id")
        .to_owned();
    srv.on("a.test")
        .as_user(&alice)
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room_id),
                enc(&event_id)
            ),
            json!({}),
        )
        .await
        .ok();
    let receipt = wait_for_ephemeral(&srv, "b.test", &bob, &room_id, "m.receipt", |e| {
        e["content"][event_id.as_str()]["m.read"]["@alice:a.test"].is_object()
    })
    .await;
    assert!(
        receipt["content"][&event_id]["m.read"]["@alice:a.test"]["ts"].is_i64(),
        "{receipt}"
    );
}

#[tokio::test]
async fn events_queued_for_a_server_away_are_delivered_after_a_restart() {
    let (mut srv, alice, bob) = setup().await;
    let room_id = lobby(&srv, &alice).await;
    join_lobby(&srv, &bob).await;

    // b.test is away (suspended: it answers 403) while alice talks, then the platform restarts.
    srv.patch_tenant("b.test", json!({"suspended": true})).await;
    send(&srv, "a.test", &alice, &room_id, "while b was away").await;
    srv.restart().await;
    srv.patch_tenant("b.test", json!({"suspended": false}))
        .await;
    // Nobody uses a.test after the restart: it is loaded because its queue was not empty.
    wait_for(&srv, "b.test", &bob, &room_id, "while b was away").await;
}

#[tokio::test]
async fn a_user_knocks_on_a_room_of_another_tenant_and_is_let_in() {
    let (srv, alice, bob) = setup().await;
    let room = srv
        .on("a.test")
        .as_user(&alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({
                "preset": "private_chat",
                "name": "Knock here",
                "room_alias_name": "door",
                "initial_state": [{
                    "type": "m.room.join_rules",
                    "state_key": "",
                    "content": {"join_rule": "knock"},
                }],
            }),
        )
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id").to_owned();
    let as_bob = srv.on("b.test").as_user(&bob);

    // A room that takes no knocks refuses, through its server.
    let closed = srv
        .on("a.test")
        .as_user(&alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "private_chat", "room_alias_name": "closed"}),
        )
        .await
        .ok();
    let resp = as_bob
        .post(
            &format!("/_matrix/client/v3/knock/{}", enc("#closed:a.test")),
            json!({}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    assert!(closed["room_id"].is_string());

    let knocked = as_bob
        .post(
            &format!("/_matrix/client/v3/knock/{}", enc("#door:a.test")),
            json!({"reason": "let me in"}),
        )
        .await
        .ok();
    assert_eq!(knocked["room_id"], room_id.as_str());
    assert_eq!(
        membership_of(&srv, &alice, &room_id, "@bob:b.test").await,
        "knock"
    );
    let knocks = synced(&srv, "b.test", &bob, "knock").await;
    let stripped = knocks[&room_id]["knock_state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("bob's knock: {knocks}"));
    assert!(
        stripped
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Knock here"),
        "{knocks}"
    );

    // Alice lets bob in: an invite, which bob accepts.
    srv.on("a.test")
        .as_user(&alice)
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room_id)),
            json!({"user_id": "@bob:b.test"}),
        )
        .await
        .ok();
    as_bob
        .post(
            &format!("/_matrix/client/v3/rooms/{}/join", enc(&room_id)),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(
        membership_of(&srv, &alice, &room_id, "@bob:b.test").await,
        "join"
    );
}

#[tokio::test]
async fn presence_reaches_users_of_another_server_sharing_a_room() {
    let (srv, alice, bob) = setup().await;
    let room_id = lobby(&srv, &alice).await;
    join_lobby(&srv, &bob).await;

    srv.on("b.test")
        .as_user(&bob)
        .put(
            &format!("/_matrix/client/v3/presence/{}/status", enc("@bob:b.test")),
            json!({"presence": "unavailable", "status_msg": "at lunch"}),
        )
        .await
        .ok();
    let path = format!("/_matrix/client/v3/presence/{}/status", enc("@bob:b.test"));
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = srv.on("a.test").as_user(&alice).get(&path).await.ok();
        if seen["presence"] == "unavailable" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen["presence"], "unavailable", "{seen}");
    assert_eq!(seen["status_msg"], "at lunch", "{seen}");
    let sync = srv
        .on("a.test")
        .as_user(&alice)
        .get("/_matrix/client/v3/sync")
        .await
        .ok();
    let events = sync["presence"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["sender"] == "@bob:b.test" && e["content"]["presence"] == "unavailable"),
        "{sync}"
    );
    assert!(sync["rooms"]["join"][&room_id].is_object());
}
