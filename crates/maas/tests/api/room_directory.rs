//! Room upgrades, aliases and the public room directory, the user directory, presence and
//! read markers.

use serde_json::json;

use crate::harness::*;
use crate::room_support::*;

#[tokio::test]
async fn upgrade_replaces_the_room_and_moves_the_alias() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let room = create_room(
        &api,
        json!({"room_version": "11", "preset": "public_chat", "name": "Old", "room_alias_name": "up"}),
    )
    .await;
    join(&bob_api, &room).await;

    // Bob has no power to upgrade; an unknown version is refused.
    let path = format!("{CS}/rooms/{}/upgrade", enc(&room));
    assert_error(
        &bob_api.post(&path, json!({"new_version": "12"})).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &api.post(&path, json!({"new_version": "999"})).await,
        400,
        "M_UNSUPPORTED_ROOM_VERSION",
    );

    let body = api.post(&path, json!({"new_version": "12"})).await.ok();
    let new_room = body["replacement_room"]
        .as_str()
        .expect("replacement_room")
        .to_owned();
    assert_ne!(new_room, room);

    let tombstone = state_content(&api, &room, "m.room.tombstone", "").await;
    assert_eq!(tombstone["replacement_room"], new_room);
    let create = state_content(&api, &new_room, "m.room.create", "").await;
    assert_eq!(create["room_version"], "12");
    assert_eq!(create["predecessor"]["room_id"], room);
    assert_eq!(
        state_content(&api, &new_room, "m.room.name", "").await["name"],
        "Old"
    );
    assert_eq!(
        state_content(&api, &new_room, "m.room.join_rules", "").await["join_rule"],
        "public"
    );
    let alias = api
        .get(&format!("{CS}/directory/room/{}", enc("#up:localhost")))
        .await
        .ok();
    assert_eq!(
        alias["room_id"], new_room,
        "the alias moved to the new room"
    );
    // The old room is locked down: ordinary members can no longer speak.
    assert_error(
        &send_raw(&bob_api, &room, "m.room.message", json!({"body": "hi"})).await,
        403,
        "M_FORBIDDEN",
    );
}

#[tokio::test]
async fn aliases_and_the_public_room_directory() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let public = create_room(
        &api,
        json!({"visibility": "public", "preset": "public_chat", "name": "Rust Fans", "topic": "crabs"}),
    )
    .await;
    let private = create_room(&api, json!({"name": "Secret"})).await;

    // Aliases: create, resolve, conflict, list, delete (by creator only).
    let alias_path = format!("{CS}/directory/room/{}", enc("#fans:localhost"));
    api.put(&alias_path, json!({"room_id": public})).await.ok();
    assert_error(
        &api.put(&alias_path, json!({"room_id": public})).await,
        409,
        "M_UNKNOWN",
    );
    assert_error(
        &api.put(
            &format!("{CS}/directory/room/{}", enc("#x:elsewhere.test")),
            json!({"room_id": public}),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    let resolved = bob_api.get(&alias_path).await.ok();
    assert_eq!(resolved["room_id"], public);
    assert_eq!(resolved["servers"], json!(["localhost"]));
    let aliases = api
        .get(&format!("{CS}/rooms/{}/aliases", enc(&public)))
        .await
        .ok();
    assert_eq!(aliases["aliases"], json!(["#fans:localhost"]));
    assert_error(&bob_api.delete(&alias_path).await, 403, "M_FORBIDDEN");
    api.delete(&alias_path).await.ok();
    assert_error(&bob_api.get(&alias_path).await, 404, "M_NOT_FOUND");

    // The directory lists published rooms only, searchable by name or topic.
    let rooms = bob_api.get(&format!("{CS}/publicRooms")).await.ok();
    let listed: Vec<&str> = rooms["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["room_id"].as_str())
        .collect();
    assert_eq!(listed, vec![public.as_str()], "{rooms}");
    assert_eq!(rooms["chunk"][0]["name"], "Rust Fans");
    assert_eq!(rooms["chunk"][0]["num_joined_members"], 1);
    let found = bob_api
        .post(
            &format!("{CS}/publicRooms"),
            json!({"filter": {"generic_search_term": "CRAB"}}),
        )
        .await
        .ok();
    assert_eq!(found["chunk"].as_array().map(Vec::len), Some(1), "{found}");
    let none = bob_api
        .post(
            &format!("{CS}/publicRooms"),
            json!({"filter": {"generic_search_term": "nothing-like-this"}}),
        )
        .await
        .ok();
    assert_eq!(none["chunk"], json!([]));

    // Visibility: only members with power may publish; then the room is listed.
    let list_path = format!("{CS}/directory/list/room/{}", enc(&private));
    assert_eq!(api.get(&list_path).await.ok()["visibility"], "private");
    assert_error(
        &bob_api
            .put(&list_path, json!({"visibility": "public"}))
            .await,
        403,
        "M_FORBIDDEN",
    );
    api.put(&list_path, json!({"visibility": "public"}))
        .await
        .ok();
    assert_eq!(api.get(&list_path).await.ok()["visibility"], "public");
    let rooms = bob_api.get(&format!("{CS}/publicRooms?limit=1")).await.ok();
    assert_eq!(rooms["chunk"].as_array().map(Vec::len), Some(1));
    assert_eq!(rooms["total_room_count_estimate"], 2);
    let next = rooms["next_batch"].as_str().expect("a second page");
    let page2 = bob_api
        .get(&format!("{CS}/publicRooms?limit=1&since={}", enc(next)))
        .await
        .ok();
    assert_eq!(page2["chunk"].as_array().map(Vec::len), Some(1));
    assert_ne!(page2["chunk"][0]["room_id"], rooms["chunk"][0]["room_id"]);
}

#[tokio::test]
async fn room_visibility_defaults_to_public() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let room = create_room(&api, json!({"visibility": "private"})).await;
    let list_path = format!("{CS}/directory/list/room/{}", enc(&room));
    assert_eq!(api.get(&list_path).await.ok()["visibility"], "private");
    // Spec v1.15: `visibility` is optional, "Defaults to `public`".
    assert_eq!(api.put(&list_path, json!({})).await.ok(), json!({}));
    assert_eq!(api.get(&list_path).await.ok()["visibility"], "public");
    api.put(&list_path, json!({"visibility": "private"}))
        .await
        .ok();
    assert_eq!(api.get(&list_path).await.ok()["visibility"], "private");
    // Neither known value nor absent: refused, and nothing changes.
    for body in [json!({"visibility": "hidden"}), json!({"visibility": 5})] {
        let resp = api.put(&list_path, body.clone()).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.text);
    }
    assert_eq!(api.get(&list_path).await.ok()["visibility"], "private");
}

#[tokio::test]
async fn user_directory_finds_users_of_the_tenant_only() {
    let srv = TestServer::start().await;
    srv.create_tenant("other.test", &["other.test"], "open")
        .await;
    let alice = local_user(&srv, "alice").await;
    let carol = local_user(&srv, "carol").await;
    srv.register("other.test", "carl", "pw-carl-1").await;
    let api = srv.on("localhost").as_user(&alice);
    srv.on("localhost")
        .as_user(&carol)
        .put(
            &format!("{CS}/profile/{}/displayname", enc(&carol.user_id)),
            json!({"displayname": "Carol Danvers"}),
        )
        .await
        .ok();

    let search = |term: &'static str| {
        let api = api.clone();
        async move {
            api.post(
                &format!("{CS}/user_directory/search"),
                json!({"search_term": term, "limit": 10}),
            )
            .await
            .ok()
        }
    };
    let by_name = search("danvers").await;
    assert_eq!(by_name["results"][0]["user_id"], carol.user_id, "{by_name}");
    assert_eq!(by_name["results"][0]["display_name"], "Carol Danvers");
    let by_prefix = search("car").await;
    let ids: Vec<&str> = by_prefix["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["user_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![carol.user_id.as_str()],
        "no user of another tenant: {by_prefix}"
    );
    assert_eq!(by_prefix["limited"], false);
    // Wildcards in the term are literal.
    assert_eq!(search("%").await["results"], json!([]));
}

#[tokio::test]
async fn presence_is_set_read_and_synced_to_room_partners() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let room = create_room(&api, json!({"invite": [bob.user_id]})).await;
    join(&bob_api, &room).await;
    let since = next_batch(&sync(&bob_api, None, None).await);

    let path = format!("{CS}/presence/{}/status", enc(&alice.user_id));
    api.put(
        &path,
        json!({"presence": "unavailable", "status_msg": "at lunch"}),
    )
    .await
    .ok();
    assert_error(
        &bob_api.put(&path, json!({"presence": "online"})).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &api.put(&path, json!({"presence": "dancing"})).await,
        400,
        "M_INVALID_PARAM",
    );
    let status = bob_api.get(&path).await.ok();
    assert_eq!(status["presence"], "unavailable");
    assert_eq!(status["status_msg"], "at lunch");
    assert_error(
        &bob_api
            .get(&format!(
                "{CS}/presence/{}/status",
                enc("@nobody:localhost")
            ))
            .await,
        404,
        "M_NOT_FOUND",
    );

    let s = sync(&bob_api, Some(&since), None).await;
    let events = s["presence"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let alice_event = events
        .iter()
        .find(|e| e["sender"] == alice.user_id.as_str());
    let alice_event = alice_event.unwrap_or_else(|| panic!("no presence of alice: {s}"));
    assert_eq!(alice_event["content"]["presence"], "unavailable");
    assert_eq!(alice_event["content"]["status_msg"], "at lunch");
}

#[tokio::test]
async fn read_markers_set_fully_read_and_receipts() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let bob_api = srv.on("localhost").as_user(&bob);
    let room = create_room(&api, json!({"invite": [bob.user_id]})).await;
    join(&bob_api, &room).await;
    let first = send_text(&api, &room, "one").await;
    let since = next_batch(&sync(&api, None, None).await);

    let path = format!("{CS}/rooms/{}/read_markers", enc(&room));
    bob_api
        .post(&path, json!({"m.fully_read": first, "m.read": first}))
        .await
        .ok();
    assert_error(
        &bob_api
            .post(&path, json!({"m.fully_read": "$unknown"}))
            .await,
        404,
        "M_NOT_FOUND",
    );
    let marker = bob_api
        .get(&format!(
            "{CS}/user/{}/rooms/{}/account_data/m.fully_read",
            enc(&bob.user_id),
            enc(&room)
        ))
        .await
        .ok();
    assert_eq!(marker["event_id"], first);
    // Alice sees Bob's public read receipt.
    let s = sync(&api, Some(&since), None).await;
    let receipts = room_part(&s, &room, "ephemeral");
    let receipt = receipts
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .unwrap_or_else(|| panic!("{s}"));
    assert!(
        receipt["content"][first.as_str()]["m.read"][bob.user_id.as_str()]["ts"].is_number(),
        "{receipt}"
    );
}
