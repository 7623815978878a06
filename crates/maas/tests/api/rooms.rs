//! `POST /createRoom` (presets, name, topic, alias, invite, initial_state,
//! power_level_content_override, creation_content, room_version), room versions and power
//! levels.

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

/// Every stable room version of the spec (and of ruma 0.16).
const STABLE_VERSIONS: [&str; 12] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
];

async fn alias_target(api: &Api<'_>, alias: &str) -> Resp {
    api.get(&format!("{CS}/directory/room/{}", enc(alias)))
        .await
}

async fn joined_rooms(api: &Api<'_>) -> Vec<String> {
    let body = api.get(&format!("{CS}/joined_rooms")).await.ok();
    body["joined_rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn public_chat_preset_with_name_topic_and_alias() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);

    let room = create_room(
        &api,
        json!({
            "preset": "public_chat",
            "name": "The Public Room",
            "topic": "What it is about",
            "room_alias_name": "pub",
        }),
    )
    .await;
    assert!(room.starts_with('!'), "{room}");

    assert_eq!(
        state_content(&api, &room, "m.room.join_rules", "").await["join_rule"],
        "public"
    );
    assert_eq!(
        state_content(&api, &room, "m.room.history_visibility", "").await["history_visibility"],
        "shared"
    );
    // `forbidden` is also what no guest_access event means.
    let guest = get_state_raw(&api, &room, "m.room.guest_access", "").await;
    assert!(
        guest.status == 404 || guest.body["guest_access"] == "forbidden",
        "public_chat guest access: {} {}",
        guest.status,
        guest.text
    );
    assert_eq!(
        state_content(&api, &room, "m.room.name", "").await["name"],
        "The Public Room"
    );
    assert_eq!(
        state_content(&api, &room, "m.room.topic", "").await["topic"],
        "What it is about"
    );
    assert_eq!(
        state_content(&api, &room, "m.room.canonical_alias", "").await["alias"],
        "#pub:localhost"
    );
    assert_eq!(
        membership_of(&api, &room, &alice.user_id).await,
        "join",
        "the creator is joined"
    );

    // The alias resolves to the room, for anyone (even without a token).
    let body = alias_target(&srv.on("localhost"), "#pub:localhost")
        .await
        .ok();
    assert_eq!(body["room_id"], room.as_str(), "{body}");
    assert!(
        body["servers"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "localhost")),
        "{body}"
    );
    assert_eq!(joined_rooms(&api).await, vec![room.clone()]);
}

#[tokio::test]
async fn private_and_default_presets() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);

    let private = create_room(&api, json!({"preset": "private_chat"})).await;
    assert_eq!(
        state_content(&api, &private, "m.room.join_rules", "").await["join_rule"],
        "invite"
    );
    assert_eq!(
        state_content(&api, &private, "m.room.history_visibility", "").await["history_visibility"],
        "shared"
    );
    assert_eq!(
        state_content(&api, &private, "m.room.guest_access", "").await["guest_access"],
        "can_join"
    );

    // No preset: private visibility means private_chat …
    let default = create_room(&api, json!({})).await;
    assert_eq!(
        state_content(&api, &default, "m.room.join_rules", "").await["join_rule"],
        "invite"
    );
    // … and public visibility means public_chat, listed in the room directory.
    let listed = create_room(&api, json!({"visibility": "public", "name": "Listed"})).await;
    assert_eq!(
        state_content(&api, &listed, "m.room.join_rules", "").await["join_rule"],
        "public"
    );
    let vis = srv
        .on("localhost")
        .get(&format!("{CS}/directory/list/room/{}", enc(&listed)))
        .await
        .ok();
    assert_eq!(vis["visibility"], "public", "{vis}");
    let vis = srv
        .on("localhost")
        .get(&format!("{CS}/directory/list/room/{}", enc(&private)))
        .await
        .ok();
    assert_eq!(vis["visibility"], "private", "{vis}");
    let public = api.get(&format!("{CS}/publicRooms")).await.ok();
    let listed_ids: Vec<&str> = public["chunk"]
        .as_array()
        .unwrap_or_else(|| panic!("{public}"))
        .iter()
        .filter_map(|r| r["room_id"].as_str())
        .collect();
    assert_eq!(listed_ids, vec![listed.as_str()], "{public}");
    assert_eq!(public["chunk"][0]["name"], "Listed", "{public}");
    assert_eq!(public["chunk"][0]["num_joined_members"], 1, "{public}");

    // A public room in a private preset stays invite-only; the preset wins over visibility.
    let mixed = create_room(
        &api,
        json!({"visibility": "public", "preset": "private_chat"}),
    )
    .await;
    assert_eq!(
        state_content(&api, &mixed, "m.room.join_rules", "").await["join_rule"],
        "invite"
    );
}

#[tokio::test]
async fn trusted_private_chat_gives_invitees_creator_power() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);

    // Room version 11: power is in `users` for everyone, the creator included.
    let room = create_room(
        &api,
        json!({
            "preset": "trusted_private_chat",
            "room_version": "11",
            "invite": [bob.user_id],
        }),
    )
    .await;
    assert_eq!(
        state_content(&api, &room, "m.room.join_rules", "").await["join_rule"],
        "invite"
    );
    let pl = state_content(&api, &room, "m.room.power_levels", "").await;
    assert_eq!(pl["users"][&alice.user_id], 100, "{pl}");
    assert_eq!(pl["users"][&bob.user_id], 100, "{pl}");
    assert_eq!(membership_of(&api, &room, &bob.user_id).await, "invite");
}

#[tokio::test]
async fn invite_list_initial_state_overrides_and_creation_content() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let room = create_room(
        &api,
        json!({
            "preset": "public_chat",
            "name": "Configured",
            "invite": [bob.user_id],
            "is_direct": true,
            "creation_content": {"m.federate": false},
            "initial_state": [
                {"type": "m.room.history_visibility", "state_key": "",
                 "content": {"history_visibility": "joined"}},
                {"type": "com.example.config", "state_key": "k", "content": {"x": 1}},
            ],
            "power_level_content_override": {
                "state_default": 60,
                "users_default": 5,
                "events": {"m.room.name": 75},
            },
        }),
    )
    .await;

    // Newest stable room version by default: 12, whose room id is the create event's
    // reference hash.
    let create_content = state_content(&api, &room, "m.room.create", "").await;
    assert_eq!(create_content["room_version"], "12", "{create_content}");
    assert_eq!(create_content["m.federate"], false, "{create_content}");
    assert!(
        !room.contains(':'),
        "v12 room ids have no server name: {room}"
    );
    let state = full_state(&api, &room).await;
    let create = find(&state, "m.room.create", Some("")).expect("create event in state");
    assert_eq!(
        create["event_id"].as_str().unwrap()[1..],
        room[1..],
        "v12 room id must be the create event id: {create}"
    );
    assert_eq!(create["sender"], alice.user_id.as_str());

    // The invite carries is_direct.
    let member = state_content(&api, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member["membership"], "invite", "{member}");
    assert_eq!(member["is_direct"], true, "{member}");

    // initial_state overrides the preset, and custom state is set.
    assert_eq!(
        state_content(&api, &room, "m.room.history_visibility", "").await["history_visibility"],
        "joined"
    );
    assert_eq!(
        state_content(&api, &room, "com.example.config", "k").await,
        json!({"x": 1})
    );
    assert_eq!(
        state_content(&api, &room, "m.room.join_rules", "").await["join_rule"],
        "public"
    );

    // power_level_content_override is merged over the defaults.
    let pl = state_content(&api, &room, "m.room.power_levels", "").await;
    assert_eq!(pl["state_default"], 60, "{pl}");
    assert_eq!(pl["users_default"], 5, "{pl}");
    assert_eq!(pl["events"]["m.room.name"], 75, "{pl}");
    // In v12 the creator's power is implied and they must not be listed.
    assert!(
        pl["users"].get(&alice.user_id).is_none(),
        "v12 creator listed in power levels: {pl}"
    );

    // Bob joins, can talk (events_default 0 <= 5) but not change the topic (60 > 5).
    join(&bob_api, &room).await;
    send_text(&bob_api, &room, "hello").await;
    let resp = put_state_raw(
        &bob_api,
        &room,
        "m.room.topic",
        "",
        json!({"topic": "mine"}),
    )
    .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Alice, the creator, can set the name although it needs 75.
    put_state(&api, &room, "m.room.name", "", json!({"name": "Renamed"})).await;
    assert_eq!(
        state_content(&bob_api, &room, "m.room.name", "").await["name"],
        "Renamed"
    );
}

#[tokio::test]
async fn every_stable_room_version_can_be_created_and_used() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let caps = api.get(&format!("{CS}/capabilities")).await.ok();
    let versions = &caps["capabilities"]["m.room_versions"];
    assert_eq!(versions["default"], "12", "{caps}");
    for v in STABLE_VERSIONS {
        assert_eq!(versions["available"][v], "stable", "version {v}: {caps}");
    }

    for v in STABLE_VERSIONS {
        let room = create_room(
            &api,
            json!({"room_version": v, "preset": "public_chat", "name": format!("v{v}")}),
        )
        .await;
        let create = state_content(&api, &room, "m.room.create", "").await;
        assert_eq!(create["room_version"], v, "{create}");
        if v == "12" {
            assert!(!room.contains(':'), "{room}");
        } else {
            assert!(room.ends_with(":localhost"), "v{v} room id {room}");
        }
        join(&bob_api, &room).await;
        let event_id = send_text(&bob_api, &room, &format!("hello v{v}")).await;
        // Event ids: v1/v2 `$x:server`, v3+ a hash without server name.
        if matches!(v, "1" | "2") {
            assert!(event_id.ends_with(":localhost"), "v{v} event id {event_id}");
        } else {
            assert!(!event_id.contains(':'), "v{v} event id {event_id}");
        }
        let ev = get_event_raw(&api, &room, &event_id).await.ok();
        assert_eq!(ev["content"]["body"], format!("hello v{v}"), "{ev}");
        assert_eq!(ev["room_id"], room.as_str(), "{ev}");
        put_state(&api, &room, "m.room.topic", "", json!({"topic": v})).await;
        assert_eq!(
            state_content(&bob_api, &room, "m.room.topic", "").await["topic"],
            v
        );
    }
}

#[tokio::test]
async fn unsupported_room_version_and_taken_alias_are_refused() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);

    for v in ["999", "13", "org.example.unknown"] {
        let resp = create_room_raw(&api, json!({"room_version": v})).await;
        assert_error(&resp, 400, "M_UNSUPPORTED_ROOM_VERSION");
    }
    assert!(joined_rooms(&api).await.is_empty());

    let first = create_room(&api, json!({"room_alias_name": "dup"})).await;
    let resp = create_room_raw(&api, json!({"room_alias_name": "dup", "name": "second"})).await;
    assert_error(&resp, 400, "M_ROOM_IN_USE");
    // Nothing was created by the refused request, and the alias still points to the first.
    assert_eq!(joined_rooms(&api).await, vec![first.clone()]);
    assert_eq!(
        alias_target(&api, "#dup:localhost").await.ok()["room_id"],
        first.as_str()
    );
    // An alias taken by another user too.
    let bob = local_user(&srv, "bob").await;
    let resp = create_room_raw(
        &srv.on("localhost").as_user(&bob),
        json!({"room_alias_name": "dup"}),
    )
    .await;
    assert_error(&resp, 400, "M_ROOM_IN_USE");
}

#[tokio::test]
async fn state_change_without_power_is_forbidden_until_raised() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let carol = local_user(&srv, "carol").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let carol_api = srv.on("localhost").as_user(&carol);

    let room = create_room(&api, json!({"preset": "public_chat", "name": "Before"})).await;
    join(&bob_api, &room).await;
    join(&carol_api, &room).await;

    // Bob has power 0: no state changes, no kicks, no power level changes.
    let resp = put_state_raw(&bob_api, &room, "m.room.name", "", json!({"name": "Bob's"})).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = member_action(&bob_api, &room, "kick", &carol.user_id, None).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let mut pl = state_content(&api, &room, "m.room.power_levels", "").await;
    let mut self_raise = pl.clone();
    self_raise["users"][&bob.user_id] = json!(100);
    let resp = put_state_raw(&bob_api, &room, "m.room.power_levels", "", self_raise).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Nothing changed.
    assert_eq!(
        state_content(&bob_api, &room, "m.room.name", "").await["name"],
        "Before"
    );
    assert_eq!(membership_of(&api, &room, &carol.user_id).await, "join");

    // Alice raises Bob to 50: now he can rename the room and kick Carol (kick needs 50) …
    pl["users"][&bob.user_id] = json!(50);
    put_state(&api, &room, "m.room.power_levels", "", pl.clone()).await;
    assert_eq!(
        state_content(&bob_api, &room, "m.room.power_levels", "").await["users"][&bob.user_id],
        50
    );
    put_state(&bob_api, &room, "m.room.name", "", json!({"name": "Bob's"})).await;
    assert_eq!(
        state_content(&api, &room, "m.room.name", "").await["name"],
        "Bob's"
    );
    member_action(&bob_api, &room, "kick", &carol.user_id, None)
        .await
        .ok();
    assert_eq!(membership_of(&api, &room, &carol.user_id).await, "leave");

    // … but not raise himself above his own level, nor kick the creator.
    let mut above = pl.clone();
    above["users"][&bob.user_id] = json!(51);
    let resp = put_state_raw(&bob_api, &room, "m.room.power_levels", "", above).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = member_action(&bob_api, &room, "kick", &alice.user_id, None).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    assert_eq!(membership_of(&api, &room, &alice.user_id).await, "join");

    // Alice lowers him again: forbidden again.
    pl["users"]
        .as_object_mut()
        .unwrap()
        .remove(bob.user_id.as_str());
    put_state(&api, &room, "m.room.power_levels", "", pl).await;
    let resp = put_state_raw(&bob_api, &room, "m.room.name", "", json!({"name": "again"})).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}

/// Power levels in a v11 room, where the creator is an ordinary user with power 100.
#[tokio::test]
async fn power_levels_in_room_version_11() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);

    let room = create_room(&api, json!({"preset": "public_chat", "room_version": "11"})).await;
    join(&bob_api, &room).await;
    let pl: Value = state_content(&api, &room, "m.room.power_levels", "").await;
    assert_eq!(pl["users"][&alice.user_id], 100, "{pl}");
    let resp = put_state_raw(&bob_api, &room, "m.room.topic", "", json!({"topic": "x"})).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let mut raised = pl.clone();
    raised["users"][&bob.user_id] = json!(100);
    put_state(&api, &room, "m.room.power_levels", "", raised).await;
    put_state(&bob_api, &room, "m.room.topic", "", json!({"topic": "x"})).await;
    // Equal power: Bob can't demote Alice.
    let mut demote = state_content(&api, &room, "m.room.power_levels", "").await;
    demote["users"][&alice.user_id] = json!(0);
    let resp = put_state_raw(&bob_api, &room, "m.room.power_levels", "", demote).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}
