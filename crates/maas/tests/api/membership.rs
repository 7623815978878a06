//! Membership: join (by id and alias), invite-only rooms, kick, ban, unban, leave, forget,
//! knock; `joined_rooms`, `joined_members`, `members`.

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

async fn joined_rooms(api: &Api<'_>) -> Vec<String> {
    let body = api.get(&format!("{CS}/joined_rooms")).await.ok();
    let mut rooms: Vec<String> = body["joined_rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    rooms.sort();
    rooms
}

/// `(state_key, membership)` of every member event of `/members` with this query.
async fn members(api: &Api<'_>, room_id: &str, query: &str) -> Vec<(String, String)> {
    let body = api
        .get(&format!("{CS}/rooms/{}/members?{query}", enc(room_id)))
        .await
        .ok();
    let mut out: Vec<(String, String)> = body["chunk"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "m.room.member", "{e}");
            (
                e["state_key"].as_str().unwrap().to_owned(),
                e["content"]["membership"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn invite_only_room_refuses_uninvited_join_and_admits_invitee() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let room = create_room(&api, json!({"preset": "private_chat"})).await;
    assert_error(&join_raw(&bob_api, &room).await, 403, "M_FORBIDDEN");
    let resp = bob_api
        .post(&format!("{CS}/rooms/{}/join", enc(&room)), json!({}))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Not a member: can't read the state nor send.
    assert_error(
        &get_state_raw(&bob_api, &room, "m.room.create", "").await,
        403,
        "M_FORBIDDEN",
    );
    assert!(joined_rooms(&bob_api).await.is_empty());

    invite(&api, &room, &bob.user_id).await;
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "invite");
    let body = bob_api
        .post(&format!("{CS}/rooms/{}/join", enc(&room)), json!({}))
        .await
        .ok();
    assert_eq!(body["room_id"], room.as_str(), "{body}");
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "join");
    assert_eq!(joined_rooms(&bob_api).await, vec![room.clone()]);
    // A joined member can't be invited (auth rules).
    let resp = member_action(&api, &room, "invite", &bob.user_id, None).await;
    assert_error(&resp, 403, "M_FORBIDDEN");

    // A non-member can't invite.
    let carol = local_user(&srv, "carol").await;
    let carol_api = srv.on("localhost").as_user(&carol);
    let resp = member_action(&carol_api, &room, "invite", &carol.user_id, None).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}

#[tokio::test]
async fn public_room_joined_by_alias() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let room = create_room(
        &api,
        json!({"preset": "public_chat", "room_alias_name": "lobby"}),
    )
    .await;
    // `#` is percent-encoded in the path (it would start a fragment otherwise).
    let path = format!("{CS}/join/%23lobby%3Alocalhost");
    let body = bob_api.post(&path, json!({})).await.ok();
    assert_eq!(body["room_id"], room.as_str(), "{body}");
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "join");
    // Joining again is idempotent.
    assert_eq!(join(&bob_api, "#lobby:localhost").await, room);
    let body = api
        .get(&format!("{CS}/rooms/{}/joined_members", enc(&room)))
        .await
        .ok();
    let mut joined: Vec<&String> = body["joined"]
        .as_object()
        .unwrap_or_else(|| panic!("{body}"))
        .keys()
        .collect();
    joined.sort();
    assert_eq!(joined, vec![&alice.user_id, &bob.user_id], "{body}");

    // An unknown alias is 404.
    let resp = join_raw(&bob_api, "#nothing:localhost").await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn kick_removes_and_stops_events() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let room = create_room(&api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &room).await;
    send_text(&api, &room, "before the kick").await;
    let since = next_batch(&sync(&bob_api, None, None).await);

    member_action(&api, &room, "kick", &bob.user_id, Some("spam"))
        .await
        .ok();
    let member = state_content(&api, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member["membership"], "leave", "{member}");
    assert_eq!(member["reason"], "spam", "{member}");
    assert!(joined_rooms(&bob_api).await.is_empty());

    // Bob's sync moves the room to `leave`, with the kick in the timeline.
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(joined(&s, &room).is_null(), "{s}");
    let left = timeline_in(&s, "leave", &room);
    let kick = find(&left, "m.room.member", Some(&bob.user_id))
        .unwrap_or_else(|| panic!("no kick in rooms.leave: {s}"));
    assert_eq!(kick["sender"], alice.user_id.as_str(), "{kick}");
    assert_eq!(kick["content"]["membership"], "leave", "{kick}");
    let since = next_batch(&s);

    // Nothing new reaches him.
    send_text(&api, &room, "after the kick").await;
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(joined(&s, &room).is_null(), "{s}");
    assert!(
        !s.to_string().contains("after the kick"),
        "kicked user got a new event: {s}"
    );
    // He can't send or read new history.
    assert_error(
        &send_raw(
            &bob_api,
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "x"}),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    // A kick isn't a ban: he may join the public room again.
    join(&bob_api, &room).await;
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "join");
}

#[tokio::test]
async fn ban_prevents_rejoin_until_unban() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let carol = local_user(&srv, "carol").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let room = create_room(&api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &room).await;

    member_action(&api, &room, "ban", &bob.user_id, Some("troll"))
        .await
        .ok();
    let member = state_content(&api, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member["membership"], "ban", "{member}");
    assert_eq!(member["reason"], "troll", "{member}");
    assert_error(&join_raw(&bob_api, &room).await, 403, "M_FORBIDDEN");
    // Nor can he be invited back while banned.
    let resp = member_action(&api, &room, "invite", &bob.user_id, None).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "ban");

    // Someone never in the room can be banned pre-emptively.
    member_action(&api, &room, "ban", &carol.user_id, None)
        .await
        .ok();
    let carol_api = srv.on("localhost").as_user(&carol);
    assert_error(&join_raw(&carol_api, &room).await, 403, "M_FORBIDDEN");

    // A member without power can't unban.
    let dave = local_user(&srv, "dave").await;
    let dave_api = srv.on("localhost").as_user(&dave);
    join(&dave_api, &room).await;
    let resp = member_action(&dave_api, &room, "unban", &bob.user_id, None).await;
    assert_error(&resp, 403, "M_FORBIDDEN");

    member_action(&api, &room, "unban", &bob.user_id, None)
        .await
        .ok();
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "leave");
    join(&bob_api, &room).await;
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "join");
}

#[tokio::test]
async fn leaver_gets_no_new_events_and_can_forget() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let room = create_room(&api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &room).await;
    send_text(&api, &room, "while bob is here").await;
    let since = next_batch(&sync(&bob_api, None, None).await);

    // Forgetting a joined room is refused.
    let resp = bob_api
        .post(&format!("{CS}/rooms/{}/forget", enc(&room)), json!({}))
        .await;
    assert_eq!(resp.status, 400, "forget while joined: {}", resp.text);

    assert_eq!(leave_raw(&bob_api, &room).await.ok(), json!({}));
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "leave");
    assert!(joined_rooms(&bob_api).await.is_empty());
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(joined(&s, &room).is_null(), "{s}");
    let left = timeline_in(&s, "leave", &room);
    assert!(
        find(&left, "m.room.member", Some(&bob.user_id))
            .is_some_and(|e| e["content"]["membership"] == "leave"),
        "no leave event under rooms.leave: {s}"
    );
    let since = next_batch(&s);

    send_text(&api, &room, "after bob left").await;
    put_state(
        &api,
        &room,
        "m.room.topic",
        "",
        json!({"topic": "secret topic"}),
    )
    .await;
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(joined(&s, &room).is_null(), "{s}");
    let text = s.to_string();
    assert!(
        !text.contains("after bob left") && !text.contains("secret topic"),
        "leaver got new events: {s}"
    );
    // /messages shows him the history up to his leave, not beyond.
    let history = paginate(&bob_api, &room, "b", None, 10).await;
    let seen = bodies(&history);
    assert!(seen.contains(&"while bob is here".to_owned()), "{seen:?}");
    assert!(!seen.contains(&"after bob left".to_owned()), "{seen:?}");
    // Sending is refused.
    let resp = send_raw(
        &bob_api,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "x"}),
    )
    .await;
    assert_error(&resp, 403, "M_FORBIDDEN");

    // The room is still in his initial sync's `leave` section … (servers may omit left rooms
    // from an initial sync unless the filter asks for them)
    let include_leave = json!({"room": {"include_leave": true}});
    let s = sync(&bob_api, None, Some(&include_leave)).await;
    assert!(
        room_ids(&s, "leave").contains(&room),
        "left room missing with include_leave: {s}"
    );
    // … until he forgets it.
    let body = bob_api
        .post(&format!("{CS}/rooms/{}/forget", enc(&room)), json!({}))
        .await
        .ok();
    assert_eq!(body, json!({}));
    let s = sync(&bob_api, None, Some(&include_leave)).await;
    assert!(
        !room_ids(&s, "leave").contains(&room) && !room_ids(&s, "join").contains(&room),
        "forgotten room still in sync: {s}"
    );
    // Forgetting doesn't stop him from joining again.
    join(&bob_api, &room).await;
    assert_eq!(joined_rooms(&bob_api).await, vec![room]);
}

#[tokio::test]
async fn members_joined_members_and_filters() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let carol = local_user(&srv, "carol").await;
    let dave = local_user(&srv, "dave").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let carol_api = srv.on("localhost").as_user(&carol);

    srv.on("localhost")
        .as_user(&bob)
        .put(
            &format!("{CS}/profile/{}/displayname", enc(&bob.user_id)),
            json!({"displayname": "Bobby"}),
        )
        .await
        .ok();

    let room = create_room(&api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &room).await;
    join(&carol_api, &room).await;
    leave_raw(&carol_api, &room).await.ok();
    invite(&api, &room, &dave.user_id).await;

    let all = members(&api, &room, "").await;
    assert_eq!(
        all,
        pairs(&[
            (&alice.user_id, "join"),
            (&bob.user_id, "join"),
            (&carol.user_id, "leave"),
            (&dave.user_id, "invite"),
        ])
    );
    assert_eq!(
        members(&api, &room, "membership=join").await,
        pairs(&[(&alice.user_id, "join"), (&bob.user_id, "join")])
    );
    assert_eq!(
        members(&api, &room, "membership=invite").await,
        pairs(&[(&dave.user_id, "invite")])
    );
    assert_eq!(
        members(&api, &room, "not_membership=leave").await,
        pairs(&[
            (&alice.user_id, "join"),
            (&bob.user_id, "join"),
            (&dave.user_id, "invite"),
        ])
    );
    assert_eq!(
        members(&api, &room, "not_membership=join").await,
        pairs(&[(&carol.user_id, "leave"), (&dave.user_id, "invite")])
    );

    let body = bob_api
        .get(&format!("{CS}/rooms/{}/joined_members", enc(&room)))
        .await
        .ok();
    let joined_map = body["joined"]
        .as_object()
        .unwrap_or_else(|| panic!("{body}"));
    let mut keys: Vec<&String> = joined_map.keys().collect();
    keys.sort();
    assert_eq!(keys, vec![&alice.user_id, &bob.user_id], "{body}");
    assert_eq!(joined_map[&bob.user_id]["display_name"], "Bobby", "{body}");

    // The member list is for members (or former members) only.
    let eve = local_user(&srv, "eve").await;
    let eve_api = srv.on("localhost").as_user(&eve);
    let resp = eve_api
        .get(&format!("{CS}/rooms/{}/members", enc(&room)))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = eve_api
        .get(&format!("{CS}/rooms/{}/joined_members", enc(&room)))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");

    // `at` a token from before Bob's leave still lists him as joined: the `prev_batch` of a
    // one-event timeline whose event follows every membership change so far.
    send_text(&api, &room, "marker").await;
    let s = sync(&api, None, Some(&timeline_limit(1))).await;
    assert_eq!(bodies(&timeline(&s, &room)), vec!["marker"], "{s}");
    let at = joined(&s, &room)["timeline"]["prev_batch"]
        .as_str()
        .unwrap_or_else(|| panic!("no prev_batch: {s}"))
        .to_owned();
    leave_raw(&bob_api, &room).await.ok();
    assert_eq!(
        members(&api, &room, &format!("at={}&membership=join", enc(&at))).await,
        pairs(&[(&alice.user_id, "join"), (&bob.user_id, "join")])
    );
    assert_eq!(
        members(&api, &room, "membership=join").await,
        pairs(&[(&alice.user_id, "join")])
    );
    let rooms: Vec<String> = joined_rooms(&api).await;
    assert_eq!(rooms, vec![room.clone()]);
}

#[tokio::test]
async fn joined_rooms_lists_exactly_the_joined_rooms() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let r1 = create_room(&api, json!({"preset": "public_chat"})).await;
    let r2 = create_room(&api, json!({"preset": "public_chat"})).await;
    let r3 = create_room(&api, json!({"preset": "private_chat"})).await;
    join(&bob_api, &r1).await;
    join(&bob_api, &r2).await;
    invite(&api, &r3, &bob.user_id).await;
    let mut expected = vec![r1.clone(), r2.clone()];
    expected.sort();
    assert_eq!(
        joined_rooms(&bob_api).await,
        expected,
        "invites aren't joins"
    );
    leave_raw(&bob_api, &r1).await.ok();
    assert_eq!(joined_rooms(&bob_api).await, vec![r2.clone()]);
    // Rejecting an invite is a leave.
    leave_raw(&bob_api, &r3).await.ok();
    assert_eq!(membership_of(&api, &r3, &bob.user_id).await, "leave");
    let mut all = vec![r1, r2, r3];
    all.sort();
    assert_eq!(joined_rooms(&api).await, all);
}

#[tokio::test]
async fn knock_on_a_knock_room() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let room = create_room(
        &api,
        json!({
            "preset": "private_chat",
            "name": "Knock here",
            "room_alias_name": "door",
            "initial_state": [{"type": "m.room.join_rules", "state_key": "",
                               "content": {"join_rule": "knock"}}],
        }),
    )
    .await;
    let bob_since = next_batch(&sync(&bob_api, None, None).await);
    let alice_since = next_batch(&sync(&api, None, None).await);

    // A knock room isn't joinable without an invite.
    assert_error(&join_raw(&bob_api, &room).await, 403, "M_FORBIDDEN");

    let body = bob_api
        .post(
            &format!("{CS}/knock/{}", enc("#door:localhost")),
            json!({"reason": "let me in"}),
        )
        .await
        .ok();
    assert_eq!(body["room_id"], room.as_str(), "{body}");
    let member = state_content(&api, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member["membership"], "knock", "{member}");
    assert_eq!(member["reason"], "let me in", "{member}");
    assert_eq!(
        members(&api, &room, "membership=knock").await,
        pairs(&[(&bob.user_id, "knock")])
    );

    // Bob's sync has the room under `knock` with stripped state; Alice sees the knock.
    let s = sync(&bob_api, Some(&bob_since), None).await;
    let knock_state = s["rooms"]["knock"][&room]["knock_state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms.knock.{room}.knock_state: {s}"))
        .clone();
    assert!(
        find(&knock_state, "m.room.name", Some(""))
            .is_some_and(|e| e["content"]["name"] == "Knock here"),
        "{s}"
    );
    let bob_since = next_batch(&s);
    let s = sync(&api, Some(&alice_since), None).await;
    assert!(
        find(&timeline(&s, &room), "m.room.member", Some(&bob.user_id))
            .is_some_and(|e| e["content"]["membership"] == "knock"),
        "{s}"
    );

    // Alice accepts by inviting; Bob joins.
    invite(&api, &room, &bob.user_id).await;
    let s = sync(&bob_api, Some(&bob_since), None).await;
    assert!(room_ids(&s, "invite").contains(&room), "{s}");
    join(&bob_api, &room).await;
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "join");

    // Knocking on an invite-only room is refused.
    let closed = create_room(&api, json!({"preset": "private_chat"})).await;
    let carol = local_user(&srv, "carol").await;
    let resp = srv
        .on("localhost")
        .as_user(&carol)
        .post(&format!("{CS}/knock/{}", enc(&closed)), json!({}))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");

    // Knocking on a room version without knocking (6) is refused too.
    let old: Value = create_room_raw(&api, json!({"preset": "public_chat", "room_version": "6"}))
        .await
        .ok();
    let old = old["room_id"].as_str().unwrap().to_owned();
    let resp = srv
        .on("localhost")
        .as_user(&carol)
        .post(&format!("{CS}/knock/{}", enc(&old)), json!({}))
        .await;
    assert!(
        matches!(resp.status, 400 | 403),
        "knock on a v6 room: {} {}",
        resp.status,
        resp.text
    );
    let member = get_state_raw(&api, &old, "m.room.member", &carol.user_id).await;
    assert_eq!(
        member.status, 404,
        "carol has a membership: {}",
        member.text
    );
}
