//! A room of many members is joined from other tenants with partial state (spec: `send_join`
//! with `omit_members`): the join returns with the room's state but its members, the new
//! member talks at once with every server in the room, and the members arrive in the
//! background: the member list, the room summary and a sync without lazy loading show them all.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::federation_rooms::{joined_members, send, wait_for};
use crate::harness::*;

/// Members of a.test besides alice.
const MEMBERS: usize = 6;

/// Alice's named public room `#lobby:a.test` with `MEMBERS` more users of a.test in it.
async fn crowded_lobby(srv: &TestServer, alice: &Session) -> (String, Vec<String>) {
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
    let mut members = vec![alice.user_id.clone()];
    for i in 0..MEMBERS {
        let user = srv
            .register("a.test", &format!("member{i}"), "password-member")
            .await;
        join(srv, "a.test", &user).await;
        members.push(user.user_id);
    }
    (room_id, members)
}

async fn join(srv: &TestServer, host: &str, user: &Session) {
    srv.on(host)
        .as_user(user)
        .post(
            &format!("/_matrix/client/v3/join/{}", enc("#lobby:a.test")),
            json!({}),
        )
        .await
        .ok();
}

/// The members (state keys of joined member events) in the room's state of a sync response.
fn members_in_sync(sync: &Value, room_id: &str) -> BTreeSet<String> {
    let room = &sync["rooms"]["join"][room_id];
    room["state"]["events"]
        .as_array()
        .into_iter()
        .chain(room["timeline"]["events"].as_array())
        .flatten()
        .filter(|e| e["type"] == "m.room.member" && e["content"]["membership"] == "join")
        .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_crowded_room_is_joined_at_once_and_its_members_arrive_after() {
    let srv = TestServer::start().await;
    for tenant in ["a.test", "b.test", "c.test", "d.test"] {
        srv.create_tenant(tenant, &[tenant], "open").await;
    }
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    let carol = srv.register("c.test", "carol", "password-carol").await;
    let (room_id, mut everyone) = crowded_lobby(&srv, &alice).await;
    join(&srv, "c.test", &carol).await;
    everyone.push(carol.user_id.clone());

    join(&srv, "b.test", &bob).await;
    everyone.push(bob.user_id.clone());
    let everyone: BTreeSet<String> = everyone.into_iter().collect();
    // Bob's first sync, whether the members are known on b.test yet or not.
    let first = srv
        .on("b.test")
        .as_user(&bob)
        .get("/_matrix/client/v3/sync")
        .await
        .ok();

    // Bob talks at once, to the servers of every member, also c.test's.
    send(&srv, "b.test", &bob, &room_id, "hello from b").await;
    wait_for(&srv, "a.test", &alice, &room_id, "hello from b").await;
    wait_for(&srv, "c.test", &carol, &room_id, "hello from b").await;
    send(&srv, "c.test", &carol, &room_id, "hello from c").await;
    wait_for(&srv, "b.test", &bob, &room_id, "hello from c").await;

    // The member list waits for the members.
    let members = joined_members(&srv, "b.test", &bob, &room_id).await;
    let listed: BTreeSet<String> = members
        .as_object()
        .expect("joined")
        .keys()
        .cloned()
        .collect();
    assert_eq!(listed, everyone);

    // The members came in the background: b.test asked a.test for the room's state at its
    // join (the server's request log shows it), having joined without them.
    let asked = srv.stderr().lines().any(|line| {
        line.contains("tenant=a.test method=GET path=/_matrix/federation/v1/state/")
            && line.contains("status=200")
    });
    assert!(asked, "b.test never fetched the members it joined without");

    // A sync without lazy loading shows every member, in the first response or once the
    // members are known (the room is then sent whole again).
    let mut seen = members_in_sync(&first, &room_id);
    let mut since = first["next_batch"].as_str().expect("next_batch").to_owned();
    let mut summary = first["rooms"]["join"][&room_id]["summary"].clone();
    for _ in 0..20 {
        if seen.is_superset(&everyone) {
            break;
        }
        let next = srv
            .on("b.test")
            .as_user(&bob)
            .get(&format!(
                "/_matrix/client/v3/sync?since={since}&timeout=500"
            ))
            .await
            .ok();
        seen.extend(members_in_sync(&next, &room_id));
        if let Some(counted) = next["rooms"]["join"][&room_id]["summary"].as_object() {
            summary = Value::Object(counted.clone());
        }
        since = next["next_batch"].as_str().expect("next_batch").to_owned();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.is_superset(&everyone), "{seen:?}");
    assert_eq!(
        summary["m.joined_member_count"],
        everyone.len(),
        "{summary}"
    );

    // With its members known, b.test answers for the room: a user of d.test joins through it
    // alone, and the join reaches a.test through b.test.
    let dave = srv.register("d.test", "dave", "password-dave").await;
    srv.on("d.test")
        .as_user(&dave)
        .post(
            &format!(
                "/_matrix/client/v3/join/{}?server_name=b.test",
                enc(&room_id)
            ),
            json!({}),
        )
        .await
        .ok();
    for _ in 0..100 {
        let members = joined_members(&srv, "a.test", &alice, &room_id).await;
        if members["@dave:d.test"].is_object() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("dave's join never reached a.test");
}
