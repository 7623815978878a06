//! The admin API's rooms endpoints (`/_synapse/admin/v{1,2}/rooms…`, purge, block, join, the
//! scheduled tasks) with Synapse's shapes and errors: listing and reading rooms past their
//! history visibility, blocking, joining users and making room admins, deleting rooms (their
//! members moved out, the room blocked, no row of it left in the tenant's database), purging
//! history, the tasks surviving a restart, and rooms forgotten once their users all left.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::export::{export, line_json, lines};
use crate::harness::*;
use crate::room_support::*;

const ADMIN: &str = "/_synapse/admin/v1";
const ADMIN2: &str = "/_synapse/admin/v2";

fn room_path(room_id: &str) -> String {
    format!("{ADMIN}/rooms/{}", enc(room_id))
}

/// Polls a deletion's status until it ended; returns it.
async fn finished_deletion(api: &Api<'_>, delete_id: &str) -> Value {
    let path = format!("{ADMIN2}/rooms/delete_status/{}", enc(delete_id));
    for _ in 0..400 {
        let status = api.get(&path).await.ok();
        if status["status"] == "complete" || status["status"] == "failed" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deletion {delete_id} did not end");
}

/// Polls a history purge's status until it ended; returns it.
async fn finished_purge(api: &Api<'_>, purge_id: &str) -> Value {
    let path = format!("{ADMIN}/purge_history_status/{}", enc(purge_id));
    for _ in 0..400 {
        let status = api.get(&path).await.ok();
        if status["status"] != "active" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("purge {purge_id} did not end");
}

/// Every event id of the room, timeline and state, as an admin reads them.
async fn room_event_ids(admin: &Api<'_>, room_id: &str) -> Vec<String> {
    let page = admin
        .get(&format!("{}/messages?dir=b&limit=1000", room_path(room_id)))
        .await
        .ok();
    let state = admin
        .get(&format!("{}/state", room_path(room_id)))
        .await
        .ok();
    let chunk = page["chunk"].as_array().expect("chunk").iter();
    let state = state["state"].as_array().expect("state").iter();
    chunk
        .chain(state)
        .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
        .collect()
}

/// Per table of the tenant's database (read whole through the operator's export), how many
/// rows have a value naming one of `needles`.
async fn rows_naming(
    srv: &TestServer,
    server_name: &str,
    needles: &[String],
) -> BTreeMap<String, usize> {
    let archive = export(srv, server_name).await;
    let all = lines(&archive);
    let mut found = BTreeMap::new();
    for line in &all[1..all.len() - 1] {
        let chunk = line_json(line);
        if chunk.get("blob").is_some() {
            continue;
        }
        let table = chunk["table"].as_str().expect("table").to_owned();
        for row in chunk["rows"].as_array().expect("rows") {
            let names = row.as_array().expect("row").iter().any(|value| {
                value
                    .as_str()
                    .is_some_and(|text| needles.iter().any(|n| text.contains(n.as_str())))
            });
            if names {
                *found.entry(table.clone()).or_insert(0) += 1;
            }
        }
    }
    found
}

/// The room ids of `GET /_synapse/admin/v1/rooms` with this query.
async fn listed(admin: &Api<'_>, query: &str) -> Vec<String> {
    let body = admin.get(&format!("{ADMIN}/rooms?{query}")).await.ok();
    body["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms: {body}"))
        .iter()
        .map(|r| r["room_id"].as_str().expect("room_id").to_owned())
        .collect()
}

async fn joined_rooms(api: &Api<'_>) -> Vec<String> {
    let body = api.get(&format!("{CS}/joined_rooms")).await.ok();
    body["joined_rooms"]
        .as_array()
        .expect("joined_rooms")
        .iter()
        .map(|r| r.as_str().expect("room id").to_owned())
        .collect()
}

#[tokio::test]
async fn room_endpoints_want_an_admin_of_the_tenant() {
    let (srv, _, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let room = create_room(&srv.on("a.test").as_user(&alice), json!({})).await;
    let room = enc(&room);
    let gets = [
        format!("{ADMIN}/rooms"),
        format!("{ADMIN}/rooms/{room}"),
        format!("{ADMIN}/rooms/{room}/members"),
        format!("{ADMIN}/rooms/{room}/state"),
        format!("{ADMIN}/rooms/{room}/messages"),
        format!("{ADMIN}/rooms/{room}/block"),
        format!("{ADMIN}/rooms/{room}/forward_extremities"),
        format!("{ADMIN}/rooms/{room}/timestamp_to_event?ts=0"),
        format!("{ADMIN2}/rooms/{room}/delete_status"),
        format!("{ADMIN2}/rooms/delete_status/x"),
        format!("{ADMIN}/purge_history_status/x"),
        format!("{ADMIN}/scheduled_tasks"),
    ];
    for path in &gets {
        assert_error(&srv.on("a.test").get(path).await, 401, "M_MISSING_TOKEN");
        let as_alice = srv.on("a.test").as_user(&alice).get(path).await;
        assert_error(&as_alice, 403, "M_FORBIDDEN");
    }
    let api = srv.on("a.test").as_user(&alice);
    let changes = [
        (Method::DELETE, format!("{ADMIN}/rooms/{room}")),
        (Method::DELETE, format!("{ADMIN2}/rooms/{room}")),
        (Method::PUT, format!("{ADMIN}/rooms/{room}/block")),
        (
            Method::POST,
            format!("{ADMIN}/rooms/{room}/make_room_admin"),
        ),
        (Method::POST, format!("{ADMIN}/join/{room}")),
        (Method::POST, format!("{ADMIN}/purge_history/{room}")),
        (
            Method::DELETE,
            format!("{ADMIN}/rooms/{room}/forward_extremities"),
        ),
    ];
    for (method, path) in changes {
        let resp = api.send(method, &path, Some(&json!({"block": true}))).await;
        assert_error(&resp, 403, "M_FORBIDDEN");
    }
    // Nothing changed: alice is still in the room, which is not blocked.
    let body = srv
        .on("a.test")
        .as_user(&alice)
        .get(&format!("{CS}/joined_rooms"))
        .await
        .ok();
    assert_eq!(body["joined_rooms"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn rooms_are_listed_sorted_searched_and_paged_as_synapse_does() {
    let (srv, admin, b_admin) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let alice_api = srv.on("a.test").as_user(&alice);
    let alpha = create_room(
        &alice_api,
        json!({"name": "Alpha", "preset": "public_chat", "room_alias_name": "alpha",
               "visibility": "public"}),
    )
    .await;
    join(&srv.on("a.test").as_user(&bob), &alpha).await;
    let encryption = json!({"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}});
    let beta = create_room(
        &alice_api,
        json!({"name": "beta", "initial_state": [encryption]}),
    )
    .await;
    let space = create_room(&alice_api, json!({"creation_content": {"type": "m.space"}})).await;
    let api = srv.on("a.test").as_user(&admin);

    let body = api.get(&format!("{ADMIN}/rooms")).await.ok();
    assert_eq!(body["offset"], 0, "{body}");
    assert_eq!(body["total_rooms"], 3, "{body}");
    assert!(
        body.get("next_batch").is_none() && body.get("prev_batch").is_none(),
        "{body}"
    );
    // By name, a room without one last.
    assert_eq!(listed(&api, "").await, [alpha.as_str(), &beta, &space]);
    let entry = &body["rooms"][0];
    let keys: Vec<&str> = entry
        .as_object()
        .expect("room")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "canonical_alias",
        "creator",
        "encryption",
        "federatable",
        "guest_access",
        "history_visibility",
        "join_rules",
        "joined_local_members",
        "joined_members",
        "name",
        "public",
        "room_id",
        "room_type",
        "state_events",
        "version",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected, "{entry}");
    assert_eq!(entry["name"], "Alpha");
    assert_eq!(entry["canonical_alias"], "#alpha:a.test");
    assert_eq!(entry["joined_members"], 2);
    assert_eq!(entry["joined_local_members"], 2);
    assert_eq!(entry["creator"], alice.user_id.as_str());
    assert_eq!(entry["encryption"], Value::Null);
    assert_eq!(entry["federatable"], true);
    assert_eq!(entry["public"], true);
    assert_eq!(entry["join_rules"], "public");
    assert_eq!(entry["guest_access"], "forbidden");
    assert_eq!(entry["history_visibility"], "shared");
    assert_eq!(entry["room_type"], Value::Null);
    assert!(
        entry["version"].is_string() && entry["state_events"].as_u64() > Some(4),
        "{entry}"
    );
    let rooms = body["rooms"].as_array().expect("rooms");
    assert_eq!(rooms[1]["encryption"], "m.megolm.v1.aes-sha2");
    assert_eq!(rooms[1]["public"], false);
    assert_eq!(rooms[2]["room_type"], "m.space");
    assert_eq!(rooms[2]["name"], Value::Null);

    // Other orders, and `dir=b` reversing them.
    assert_eq!(listed(&api, "order_by=joined_members").await[0], alpha);
    assert_eq!(listed(&api, "order_by=size&dir=b").await[2], alpha);
    assert_eq!(
        listed(&api, "order_by=name&dir=b").await,
        [space.as_str(), &beta, &alpha]
    );
    assert_eq!(listed(&api, "order_by=encryption").await[0], beta);
    // Pages by offset, with Synapse's tokens around them.
    let page = api.get(&format!("{ADMIN}/rooms?from=1&limit=1")).await.ok();
    assert_eq!(page["rooms"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["rooms"][0]["room_id"], beta.as_str());
    assert_eq!(
        (&page["offset"], &page["total_rooms"]),
        (&json!(1), &json!(3))
    );
    assert_eq!(
        (&page["next_batch"], &page["prev_batch"]),
        (&json!(2), &json!(0))
    );
    let last = api.get(&format!("{ADMIN}/rooms?from=2&limit=1")).await.ok();
    assert!(last.get("next_batch").is_none(), "{last}");
    assert_eq!(last["prev_batch"], 1);
    // The search: in the name (any case), in the alias before its server, or the whole id.
    assert_eq!(listed(&api, "search_term=ALPH").await, [alpha.as_str()]);
    assert_eq!(listed(&api, "search_term=lph").await, [alpha.as_str()]);
    assert_eq!(
        listed(&api, &format!("search_term={}", enc(&space))).await,
        [space.as_str()]
    );
    assert!(listed(&api, "search_term=a.test").await.is_empty());
    // Filters.
    assert_eq!(listed(&api, "public_rooms=true").await, [alpha.as_str()]);
    assert_eq!(
        listed(&api, "public_rooms=false").await,
        [beta.as_str(), &space]
    );
    assert_eq!(listed(&api, "empty_rooms=true").await, Vec::<String>::new());

    for (query, errcode) in [
        ("search_term=", "M_INVALID_PARAM"),
        ("order_by=bogus", "M_INVALID_PARAM"),
        ("from=-1", "M_INVALID_PARAM"),
        ("limit=x", "M_INVALID_PARAM"),
        ("dir=x", "M_INVALID_PARAM"),
        ("public_rooms=maybe", "M_INVALID_PARAM"),
    ] {
        assert_error(
            &api.get(&format!("{ADMIN}/rooms?{query}")).await,
            400,
            errcode,
        );
    }
    // Another tenant's admin sees none of these rooms.
    let b_api = srv.on("b.test").as_user(&b_admin);
    assert!(listed(&b_api, "").await.is_empty());
    let other = b_api.get(&room_path(&alpha)).await;
    assert_error(&other, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_room_is_read_past_its_history_visibility() {
    let (srv, admin, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let alice_api = srv.on("a.test").as_user(&alice);
    let room = create_room(
        &alice_api,
        json!({"name": "Secret", "topic": "Nothing to see", "preset": "public_chat",
               "room_alias_name": "secret"}),
    )
    .await;
    put_state(
        &alice_api,
        &room,
        "m.room.avatar",
        "",
        json!({"url": "mxc://a.test/avatar"}),
    )
    .await;
    put_state(
        &alice_api,
        &room,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "joined"}),
    )
    .await;
    join(&srv.on("a.test").as_user(&bob), &room).await;
    let first = send_text(&alice_api, &room, "one").await;
    let second = send_text(&alice_api, &room, "two").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let between = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let third = send_text(&alice_api, &room, "three").await;
    let api = srv.on("a.test").as_user(&admin);
    // The admin is not in the room: the client API shows nothing.
    assert_error(
        &messages_raw(&api, &room, "dir=b").await,
        403,
        "M_FORBIDDEN",
    );

    let details = api.get(&room_path(&room)).await.ok();
    assert_eq!(details["room_id"], room.as_str());
    assert_eq!(details["name"], "Secret");
    assert_eq!(details["topic"], "Nothing to see");
    assert_eq!(details["avatar"], "mxc://a.test/avatar");
    assert_eq!(details["canonical_alias"], "#secret:a.test");
    assert_eq!(details["joined_members"], 2);
    assert_eq!(details["joined_local_devices"], 2);
    assert_eq!(details["history_visibility"], "joined");
    assert_eq!(details["forgotten"], false);
    assert_eq!(details["tombstoned"], false);
    assert_eq!(details["replacement_room"], Value::Null);
    for missing in ["!nowhere:a.test", "not-a-room"] {
        let resp = api.get(&room_path(missing)).await;
        assert_error(&resp, 404, "M_NOT_FOUND");
        assert_eq!(resp.body["error"], "Room not found");
    }

    let members = api.get(&format!("{}/members", room_path(&room))).await.ok();
    let mut expected = vec![alice.user_id.clone(), bob.user_id.clone()];
    expected.sort();
    assert_eq!(members, json!({"members": expected, "total": 2}));

    let state = api.get(&format!("{}/state", room_path(&room))).await.ok();
    let state = state["state"].as_array().expect("state");
    assert!(
        state
            .iter()
            .all(|e| e["event_id"].is_string() && e["state_key"].is_string())
    );
    assert!(state.iter().any(|e| e["type"] == "m.room.create"));
    let names = api
        .get(&format!("{}/state?type=m.room.name", room_path(&room)))
        .await
        .ok();
    assert_eq!(names["state"].as_array().map(Vec::len), Some(1), "{names}");
    assert_eq!(names["state"][0]["content"]["name"], "Secret");

    // The timeline, newest first, in pages; and filtered.
    let path = format!("{}/messages", room_path(&room));
    let page = api.get(&format!("{path}?dir=b&limit=2")).await.ok();
    assert_eq!(
        ids(page["chunk"].as_array().expect("chunk")),
        [third.as_str(), &second]
    );
    assert!(
        page["start"].is_string() && page["end"].is_string(),
        "{page}"
    );
    let end = page["end"].as_str().expect("end");
    let next = api
        .get(&format!("{path}?dir=b&limit=1&from={}", enc(end)))
        .await
        .ok();
    assert_eq!(
        ids(next["chunk"].as_array().expect("chunk")),
        [first.as_str()]
    );
    let filter = enc(&json!({"types": ["m.room.message"]}).to_string());
    let messages = api.get(&format!("{path}?filter={filter}")).await.ok();
    assert_eq!(
        bodies(messages["chunk"].as_array().expect("chunk")),
        ["one", "two", "three"]
    );
    assert_error(
        &api.get(&format!("{ADMIN}/rooms/!nowhere:a.test/messages"))
            .await,
        404,
        "M_NOT_FOUND",
    );

    let context = api
        .get(&format!(
            "{}/context/{}?limit=2",
            room_path(&room),
            enc(&second)
        ))
        .await
        .ok();
    assert_eq!(context["event"]["event_id"], second.as_str());
    assert_eq!(
        ids(context["events_before"].as_array().expect("before")),
        [first.as_str()]
    );
    assert_eq!(
        ids(context["events_after"].as_array().expect("after")),
        [third.as_str()]
    );
    assert!(
        context["state"].as_array().is_some_and(|s| !s.is_empty()),
        "{context}"
    );
    assert!(
        context["start"].is_string() && context["end"].is_string(),
        "{context}"
    );
    let unknown = api
        .get(&format!("{}/context/{}", room_path(&room), enc("$nope")))
        .await;
    assert_error(&unknown, 404, "M_NOT_FOUND");

    let at = async |query: String| {
        api.get(&format!("{}/timestamp_to_event?{query}", room_path(&room)))
            .await
    };
    let before = at(format!("ts={between}&dir=b")).await.ok();
    assert_eq!(before["event_id"], second.as_str());
    assert!(
        before["origin_server_ts"].as_i64() <= Some(between),
        "{before}"
    );
    let after = at(format!("ts={between}")).await.ok();
    assert_eq!(after["event_id"], third.as_str());
    assert_error(&at("dir=b".into()).await, 400, "M_MISSING_PARAM");
    assert_error(
        &at(format!("ts={}&dir=f", now_ms() + 60_000)).await,
        404,
        "M_NOT_FOUND",
    );

    let extremities = api
        .get(&format!(
            "{ADMIN}/rooms/{}/forward_extremities",
            enc("#secret:a.test")
        ))
        .await
        .ok();
    assert_eq!(extremities["count"], 1, "{extremities}");
    let extremity = &extremities["results"][0];
    assert_eq!(extremity["event_id"], third.as_str());
    assert!(extremity["state_group"].is_i64() && extremity["depth"].is_i64());
    assert!(extremity["received_ts"].is_i64());
    let deleted = api
        .delete(&format!("{}/forward_extremities", room_path(&room)))
        .await
        .ok();
    assert_eq!(deleted, json!({"deleted": 0}));
}

#[tokio::test]
async fn a_blocked_room_refuses_joins_and_invites() {
    let (srv, admin, b_admin) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let carol = srv.register("a.test", "carol", "pw-carol-1").await;
    let alice_api = srv.on("a.test").as_user(&alice);
    let bob_api = srv.on("a.test").as_user(&bob);
    let room = create_room(&alice_api, json!({"preset": "public_chat"})).await;
    let api = srv.on("a.test").as_user(&admin);
    let block = format!("{}/block", room_path(&room));

    assert_eq!(api.get(&block).await.ok(), json!({"block": false}));
    assert_eq!(
        api.put(&block, json!({"block": true})).await.ok(),
        json!({"block": true})
    );
    assert_eq!(
        api.get(&block).await.ok(),
        json!({"block": true, "user_id": admin.user_id})
    );
    let refused = join_raw(&bob_api, &room).await;
    assert_error(&refused, 403, "M_FORBIDDEN");
    assert_eq!(
        refused.body["error"],
        "This room has been blocked on this server"
    );
    let invite = member_action(&alice_api, &room, "invite", &carol.user_id, None).await;
    assert_error(&invite, 403, "M_FORBIDDEN");
    // Through the admin API too.
    let admin_join = api
        .post(
            &format!("{ADMIN}/join/{}", enc(&room)),
            json!({"user_id": bob.user_id}),
        )
        .await;
    assert_error(&admin_join, 403, "M_FORBIDDEN");
    // The block is the tenant's: another tenant blocking the same id changes nothing here.
    let b_api = srv.on("b.test").as_user(&b_admin);
    assert_eq!(
        b_api.get(&block).await.ok(),
        json!({"block": false}),
        "a.test's block is not b.test's"
    );

    assert_eq!(
        api.put(&block, json!({"block": false})).await.ok(),
        json!({"block": false})
    );
    assert_eq!(api.get(&block).await.ok(), json!({"block": false}));
    join(&bob_api, &room).await;

    // A room unknown here can be blocked before anyone joins it.
    let unknown = format!("{}/block", room_path("!future:elsewhere.test"));
    api.put(&unknown, json!({"block": true})).await.ok();
    assert_eq!(api.get(&unknown).await.body["block"], true);

    let raw = |body: &'static str| {
        api.builder(Method::PUT, &block)
            .header("content-type", "application/json")
            .body(body)
    };
    assert_error(&TestServer::send(raw("not json")).await, 400, "M_NOT_JSON");
    assert_error(&TestServer::send(raw("[]")).await, 400, "M_BAD_JSON");
    assert_error(&api.put(&block, json!({})).await, 400, "M_MISSING_PARAM");
    assert_error(
        &api.put(&block, json!({"block": "yes"})).await,
        400,
        "M_BAD_JSON",
    );
    let bad_id = format!("{}/block", room_path("not-a-room"));
    assert_error(&api.get(&bad_id).await, 400, "M_UNKNOWN");
    assert_error(
        &api.put(&bad_id, json!({"block": true})).await,
        400,
        "M_UNKNOWN",
    );
    // None of the bad requests blocked the room.
    assert_eq!(api.get(&block).await.ok(), json!({"block": false}));
}

#[tokio::test]
async fn admins_join_users_to_rooms_and_make_room_admins() {
    let (srv, admin, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let carol = srv.register("a.test", "carol", "pw-carol-1").await;
    let alice_api = srv.on("a.test").as_user(&alice);
    let api = srv.on("a.test").as_user(&admin);
    let join_path = |room: &str| format!("{ADMIN}/join/{}", enc(room));

    // A public room the admin is not in: bob is joined to it, by id; carol by its alias.
    let open = create_room(
        &alice_api,
        json!({"preset": "public_chat", "room_alias_name": "open"}),
    )
    .await;
    let joined = api
        .post(&join_path(&open), json!({"user_id": bob.user_id}))
        .await
        .ok();
    assert_eq!(joined, json!({"room_id": open}));
    assert!(
        joined_rooms(&srv.on("a.test").as_user(&bob))
            .await
            .contains(&open)
    );
    let by_alias = api
        .post(
            &join_path("#open:a.test"),
            json!({"user_id": carol.user_id}),
        )
        .await
        .ok();
    assert_eq!(by_alias, json!({"room_id": open}));

    // A private room needs an invite by the admin, who is not in it.
    let private = create_room(&alice_api, json!({"name": "Private"})).await;
    let refused = api
        .post(&join_path(&private), json!({"user_id": bob.user_id}))
        .await;
    assert_error(&refused, 403, "M_FORBIDDEN");
    for (body, status, errcode) in [
        (json!({}), 400, "M_MISSING_PARAM"),
        (json!({"user_id": "@bob:b.test"}), 400, "M_UNKNOWN"),
        (json!({"user_id": "@ghost:a.test"}), 404, "M_NOT_FOUND"),
        (json!({"user_id": "not a user"}), 400, "M_INVALID_PARAM"),
    ] {
        assert_error(&api.post(&join_path(&open), body).await, status, errcode);
    }
    assert_error(
        &api.post(&join_path("nonsense"), json!({"user_id": bob.user_id}))
            .await,
        400,
        "M_UNKNOWN",
    );

    // make_room_admin: the admin gets the power of the room's most powerful local member
    // (alice, its creator), and an invite to the private room.
    let make = format!("{}/make_room_admin", room_path(&private));
    assert_eq!(api.post(&make, json!({})).await.ok(), json!({}));
    join(&api, &private).await;
    let levels = state_content(&api, &private, "m.room.power_levels", "").await;
    assert_eq!(levels["users"][admin.user_id.as_str()], 100, "{levels}");
    // Another user, by the room's alias-less id; the body's user wins over the caller.
    let make_bob = api.post(&make, json!({"user_id": bob.user_id})).await.ok();
    assert_eq!(make_bob, json!({}));
    assert_eq!(membership_of(&api, &private, &bob.user_id).await, "invite");
    let levels = state_content(&api, &private, "m.room.power_levels", "").await;
    assert_eq!(levels["users"][bob.user_id.as_str()], 100, "{levels}");

    // A room without a joined local member with power, and rooms unknown here.
    let left = create_room(&alice_api, json!({})).await;
    leave_raw(&alice_api, &left).await.ok();
    let none = api
        .post(&format!("{}/make_room_admin", room_path(&left)), json!({}))
        .await;
    assert_error(&none, 400, "M_UNKNOWN");
    assert_eq!(none.body["error"], "No local admin user in room");
    let unknown = api
        .post(
            &format!("{}/make_room_admin", room_path("!nowhere:a.test")),
            json!({}),
        )
        .await;
    assert_error(&unknown, 400, "M_UNKNOWN");
    let no_alias = api
        .post(
            &format!("{ADMIN}/rooms/{}/make_room_admin", enc("#none:a.test")),
            json!({}),
        )
        .await;
    assert_error(&no_alias, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn deleting_a_room_moves_its_members_blocks_it_and_leaves_no_row_of_it() {
    let (srv, admin, b_admin) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let alice_api = srv.on("a.test").as_user(&alice);
    let bob_api = srv.on("a.test").as_user(&bob);
    let api = srv.on("a.test").as_user(&admin);
    let room = create_room(
        &alice_api,
        json!({"name": "Bad room", "preset": "public_chat", "room_alias_name": "bad",
               "visibility": "public"}),
    )
    .await;
    join(&bob_api, &room).await;
    send_text(&alice_api, &room, "hello").await;
    send_text(&bob_api, &room, "something bad").await;
    let mut needles = room_event_ids(&api, &room).await;
    needles.push(room.clone());
    let since = next_batch(&sync(&bob_api, None, None).await);

    // Another tenant's admin deleting the same room id deletes nothing here.
    let b_api = srv.on("b.test").as_user(&b_admin);
    let b_delete = b_api
        .delete_json(&format!("{ADMIN2}/rooms/{}", enc(&room)), json!({}))
        .await
        .ok();
    let b_id = b_delete["delete_id"]
        .as_str()
        .expect("delete_id")
        .to_owned();
    assert_eq!(finished_deletion(&b_api, &b_id).await["status"], "complete");
    assert_eq!(api.get(&room_path(&room)).await.ok()["joined_members"], 2);

    let v2 = format!("{ADMIN2}/rooms/{}", enc(&room));
    let delete = api.delete_json(
        &v2,
        json!({"new_room_user_id": admin.user_id, "room_name": "Closed", "message": "Gone.",
               "block": true}),
    );
    // Bob, syncing, sees the room change while it is shut down.
    let query = format!("timeout=10000&since={}", enc(&since));
    let waiting = sync_raw(&bob_api, &query);
    let (woken, started) = tokio::join!(waiting, delete);
    let started = started.ok();
    let delete_id = started["delete_id"].as_str().expect("delete_id").to_owned();
    assert_eq!(started, json!({"delete_id": delete_id}));
    let woken = woken.ok();
    let sections = ["join", "leave"].map(|s| room_ids(&woken, s).contains(&room));
    assert!(
        sections.contains(&true),
        "bob's sync doesn't show the room: {woken}"
    );

    let status = finished_deletion(&api, &delete_id).await;
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(status["delete_id"], delete_id.as_str());
    assert_eq!(status["room_id"], room.as_str());
    assert!(status.get("error").is_none(), "{status}");
    let shutdown = &status["shutdown_room"];
    let mut kicked = vec![alice.user_id.clone(), bob.user_id.clone()];
    kicked.sort();
    assert_eq!(shutdown["kicked_users"], json!(kicked), "{status}");
    assert_eq!(shutdown["failed_to_kick_users"], json!([]));
    assert_eq!(shutdown["local_aliases"], json!(["#bad:a.test"]));
    let new_room = shutdown["new_room_id"]
        .as_str()
        .expect("new room")
        .to_owned();

    // The members are out, and in the new room, where the admin's notice says why; their
    // syncs, from before or from scratch, carry on without the room.
    for member in [&alice_api, &bob_api] {
        let rooms = joined_rooms(member).await;
        assert!(
            !rooms.contains(&room) && rooms.contains(&new_room),
            "{rooms:?}"
        );
        for from in [None, Some(since.as_str())] {
            let synced = sync(member, from, None).await;
            assert!(!room_ids(&synced, "join").contains(&room), "{synced}");
        }
    }
    let notice = api
        .get(&format!("{}/messages?dir=b&limit=50", room_path(&new_room)))
        .await
        .ok();
    let chunk = notice["chunk"].as_array().expect("chunk");
    assert!(bodies(chunk).contains(&"Gone.".to_owned()), "{notice}");
    assert_eq!(api.get(&room_path(&new_room)).await.ok()["name"], "Closed");
    let alias = api
        .get(&format!("{CS}/directory/room/{}", enc("#bad:a.test")))
        .await
        .ok();
    assert_eq!(alias["room_id"], new_room.as_str());

    // The room is gone and blocked.
    assert_error(&api.get(&room_path(&room)).await, 404, "M_NOT_FOUND");
    assert!(!listed(&api, "").await.contains(&room));
    let refused = join_raw(&bob_api, &room).await;
    assert_error(&refused, 403, "M_FORBIDDEN");
    assert_eq!(
        api.get(&format!("{}/block", room_path(&room))).await.ok(),
        json!({"block": true, "user_id": admin.user_id})
    );
    let by_room = api
        .get(&format!("{ADMIN2}/rooms/{}/delete_status", enc(&room)))
        .await
        .ok();
    assert_eq!(by_room, json!({"results": [status]}));
    let tasks = api
        .get(&format!(
            "{ADMIN}/scheduled_tasks?action_name=shutdown_and_purge_room"
        ))
        .await
        .ok();
    let task = &tasks["scheduled_tasks"][0];
    assert_eq!(
        tasks["scheduled_tasks"].as_array().map(Vec::len),
        Some(1),
        "{tasks}"
    );
    assert_eq!(task["id"], delete_id.as_str());
    assert_eq!(task["status"], "complete");
    assert_eq!(task["resource_id"], room.as_str());
    assert_eq!(task["result"], *shutdown);
    assert_eq!(task["error"], Value::Null);
    assert!(task["timestamp_ms"].is_i64(), "{task}");

    // No row of the room is left in the tenant's database, but the admin's own records.
    let left = rows_naming(&srv, "a.test", &needles).await;
    let mut tables: Vec<&str> = left.keys().map(String::as_str).collect();
    tables.sort_unstable();
    assert_eq!(tables, ["admin_tasks", "blocked_rooms"], "{left:?}");
}

#[tokio::test]
async fn deleting_without_purge_keeps_the_room_and_bad_deletions_change_nothing() {
    let (srv, admin, _) = tenants_with_admins().await;
    // Rooms left by everyone are forgotten at once here, unless an admin's deletion decided.
    srv.patch_tenant("a.test", json!({"forget_empty_rooms_after_secs": 0}))
        .await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let alice_api = srv.on("a.test").as_user(&alice);
    let api = srv.on("a.test").as_user(&admin);
    let room = create_room(&alice_api, json!({"name": "Kept"})).await;
    invite(&alice_api, &room, &bob.user_id).await;
    let path = room_path(&room);
    let v2 = format!("{ADMIN2}/rooms/{}", enc(&room));

    let raw = |method: Method, path: &str, body: &'static str| {
        api.builder(method, path)
            .header("content-type", "application/json")
            .body(body)
    };
    for (target, method) in [(&path, Method::DELETE), (&v2, Method::DELETE)] {
        assert_error(
            &TestServer::send(raw(method.clone(), target, "")).await,
            400,
            "M_NOT_JSON",
        );
        assert_error(
            &TestServer::send(raw(method.clone(), target, "[1]")).await,
            400,
            "M_BAD_JSON",
        );
        for body in [
            json!({"block": "yes"}),
            json!({"purge": 1}),
            json!({"force_purge": null}),
            json!({"room_name": 5}),
        ] {
            assert_error(&api.delete_json(target, body).await, 400, "M_BAD_JSON");
        }
        let foreign = api
            .delete_json(target, json!({"new_room_user_id": "@x:b.test"}))
            .await;
        assert_error(&foreign, 400, "M_UNKNOWN");
        assert_eq!(foreign.body["error"], "User must be our own: @x:b.test");
    }
    for bad in [
        room_path("not-a-room"),
        format!("{ADMIN2}/rooms/not-a-room"),
    ] {
        assert_error(&api.delete_json(&bad, json!({})).await, 400, "M_UNKNOWN");
    }
    assert_error(
        &api.get(&format!("{ADMIN2}/rooms/delete_status/nope")).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &api.get(&format!("{ADMIN2}/rooms/{}/delete_status", enc(&room)))
            .await,
        404,
        "M_NOT_FOUND",
    );
    // Nothing of that changed the room.
    assert!(joined_rooms(&alice_api).await.contains(&room));
    assert!(listed(&api, "").await.contains(&room));

    // Version 1 answers once done: the members are out (bob's invite rejected), the room kept.
    let done = api.delete_json(&path, json!({"purge": false})).await.ok();
    // Invites are declined first, while a member is still joined.
    assert_eq!(
        done,
        json!({"kicked_users": [bob.user_id, alice.user_id], "failed_to_kick_users": [],
               "local_aliases": [], "new_room_id": null})
    );
    assert!(!joined_rooms(&alice_api).await.contains(&room));
    // Kept, although nobody of ours is in it: the admin decided.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let details = api.get(&path).await.ok();
    assert_eq!(details["joined_members"], 0, "{details}");
    let status = api
        .get(&format!("{ADMIN2}/rooms/{}/delete_status", enc(&room)))
        .await
        .ok();
    assert_eq!(status["results"][0]["status"], "complete", "{status}");

    // A room unknown here, with `block`: blocked, nothing else to do.
    let unknown = room_path("!unknown:a.test");
    let blocked = api.delete_json(&unknown, json!({"block": true})).await.ok();
    assert_eq!(
        blocked,
        json!({"kicked_users": [], "failed_to_kick_users": [], "local_aliases": [],
               "new_room_id": null})
    );
    assert_eq!(
        api.get(&format!("{unknown}/block")).await.ok()["block"],
        true
    );
}

#[tokio::test]
async fn purging_history_removes_old_messages_but_never_the_state() {
    let (srv, admin, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let alice_api = srv.on("a.test").as_user(&alice);
    let api = srv.on("a.test").as_user(&admin);
    let room = create_room(&alice_api, json!({"name": "History"})).await;
    let other = create_room(&alice_api, json!({})).await;
    let other_event = send_text(&alice_api, &other, "elsewhere").await;
    let first = send_text(&alice_api, &room, "m1").await;
    let second = send_text(&alice_api, &room, "m2").await;
    let third = send_text(&alice_api, &room, "m3").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let between = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let fourth = send_text(&alice_api, &room, "m4").await;
    let purge = format!("{ADMIN}/purge_history/{}", enc(&room));
    let texts = async || {
        let page = api
            .get(&format!("{}/messages?limit=100", room_path(&room)))
            .await
            .ok();
        bodies(page["chunk"].as_array().expect("chunk"))
    };
    let state_before = api.get(&format!("{}/state", room_path(&room))).await.ok();

    // Our users' events stay unless asked otherwise.
    let kept = api
        .post(&purge, json!({"purge_up_to_event_id": second}))
        .await
        .ok();
    let purge_id = kept["purge_id"].as_str().expect("purge_id").to_owned();
    assert_eq!(kept, json!({"purge_id": purge_id}));
    assert_eq!(
        finished_purge(&api, &purge_id).await,
        json!({"status": "complete"})
    );
    assert_eq!(texts().await, ["m1", "m2", "m3", "m4"]);

    // Up to a time: the last event before it stays, as in Synapse.
    let by_time = api
        .post(
            &purge,
            json!({"purge_up_to_ts": between, "delete_local_events": true}),
        )
        .await
        .ok();
    let id = by_time["purge_id"].as_str().expect("purge_id");
    assert_eq!(
        finished_purge(&api, id).await,
        json!({"status": "complete"})
    );
    assert_eq!(texts().await, ["m3", "m4"]);
    // Up to an event named in the path.
    let by_event = api
        .post(
            &format!("{purge}/{}", enc(&fourth)),
            json!({"delete_local_events": true}),
        )
        .await
        .ok();
    let id = by_event["purge_id"].as_str().expect("purge_id");
    assert_eq!(
        finished_purge(&api, id).await,
        json!({"status": "complete"})
    );
    assert_eq!(texts().await, ["m4"]);
    // Members see the same; the state is whole; the other room untouched.
    let page = messages_raw(&alice_api, &room, "dir=b&limit=100")
        .await
        .ok();
    assert!(bodies(page["chunk"].as_array().expect("chunk")) == ["m4"]);
    assert_error(
        &get_event_raw(&alice_api, &room, &first).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &get_event_raw(&alice_api, &room, &third).await,
        404,
        "M_NOT_FOUND",
    );
    let state_after = api.get(&format!("{}/state", room_path(&room))).await.ok();
    assert_eq!(
        state_after["state"].as_array().map(Vec::len),
        state_before["state"].as_array().map(Vec::len)
    );
    get_event_raw(&alice_api, &other, &other_event).await.ok();
    let tasks = api
        .get(&format!(
            "{ADMIN}/scheduled_tasks?action_name=purge_history&resource_id={}",
            enc(&room)
        ))
        .await
        .ok();
    assert_eq!(
        tasks["scheduled_tasks"].as_array().map(Vec::len),
        Some(3),
        "{tasks}"
    );
    let task = &tasks["scheduled_tasks"][0];
    let mut keys: Vec<&str> = task
        .as_object()
        .expect("task")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let expected = [
        "action",
        "error",
        "id",
        "resource_id",
        "result",
        "status",
        "timestamp_ms",
    ];
    assert_eq!(keys, expected, "{task}");
    assert_eq!(
        (&task["result"], &task["error"]),
        (&Value::Null, &Value::Null)
    );
    // The status filter, under its older name too; times; and what no task has.
    let listed_tasks = async |query: &str| {
        let body = api
            .get(&format!("{ADMIN}/scheduled_tasks?{query}"))
            .await
            .ok();
        body["scheduled_tasks"]
            .as_array()
            .expect("scheduled_tasks")
            .len()
    };
    assert_eq!(
        listed_tasks("action_name=purge_history&status=complete").await,
        3
    );
    assert_eq!(
        listed_tasks("action_name=purge_history&job_status=complete").await,
        3
    );
    assert_eq!(listed_tasks("status=active").await, 0);
    assert_eq!(listed_tasks("status=cancelled").await, 0);
    assert_eq!(listed_tasks("max_timestamp=1").await, 0);
    assert_eq!(
        listed_tasks(&format!("max_timestamp={}", now_ms())).await,
        3
    );
    let bad = api
        .get(&format!("{ADMIN}/scheduled_tasks?status=bogus"))
        .await;
    assert_error(&bad, 400, "M_INVALID_PARAM");

    for (body, status, errcode) in [
        (json!({}), 400, "M_BAD_JSON"),
        (json!({"purge_up_to_ts": "soon"}), 400, "M_BAD_JSON"),
        (json!({"purge_up_to_ts": 1.5}), 400, "M_BAD_JSON"),
        (json!({"purge_up_to_event_id": "$nope"}), 404, "M_NOT_FOUND"),
        (
            json!({"purge_up_to_event_id": other_event}),
            400,
            "M_UNKNOWN",
        ),
        (json!({"purge_up_to_ts": 1}), 404, "M_NOT_FOUND"),
    ] {
        assert_error(&api.post(&purge, body).await, status, errcode);
    }
    assert_error(
        &api.get(&format!("{ADMIN}/purge_history_status/nope")).await,
        404,
        "M_NOT_FOUND",
    );
    // A deletion's id is no purge's.
    let deletion = api
        .delete_json(&format!("{ADMIN2}/rooms/{}", enc(&other)), json!({}))
        .await
        .ok();
    let deletion = deletion["delete_id"].as_str().expect("delete_id");
    assert_error(
        &api.get(&format!("{ADMIN}/purge_history_status/{deletion}"))
            .await,
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(texts().await, ["m4"]);
}

#[tokio::test]
async fn rooms_their_users_all_left_are_forgotten() {
    let (srv, admin, _) = tenants_with_admins().await;
    let settings = srv.get_tenant("a.test").await;
    assert_eq!(
        settings["rooms"],
        json!({"forget_empty_rooms": true, "forget_empty_rooms_after_secs": 300})
    );
    srv.patch_tenant("a.test", json!({"forget_empty_rooms_after_secs": 0}))
        .await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let carol = srv.register("a.test", "carol", "pw-carol-1").await;
    let (alice_api, bob_api) = (
        srv.on("a.test").as_user(&alice),
        srv.on("a.test").as_user(&bob),
    );
    let api = srv.on("a.test").as_user(&admin);
    let gone = async |room: String| {
        for _ in 0..200 {
            if api.get(&room_path(&room)).await.status == 404 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };

    // Bob is kicked, alice leaves: nobody of ours is left, and the room goes.
    let room = create_room(&alice_api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &room).await;
    send_text(&bob_api, &room, "hi").await;
    let mut needles = room_event_ids(&api, &room).await;
    needles.push(room.clone());
    member_action(&alice_api, &room, "kick", &bob.user_id, None)
        .await
        .ok();
    assert!(api.get(&room_path(&room)).await.status == 200);
    leave_raw(&alice_api, &room).await.ok();
    assert!(gone(room.clone()).await, "the room was not forgotten");
    let tasks = api
        .get(&format!(
            "{ADMIN}/scheduled_tasks?action_name=purge_room&resource_id={}",
            enc(&room)
        ))
        .await
        .ok();
    assert_eq!(tasks["scheduled_tasks"][0]["status"], "complete", "{tasks}");
    let left = rows_naming(&srv, "a.test", &needles).await;
    assert_eq!(left.keys().collect::<Vec<_>>(), ["admin_tasks"], "{left:?}");
    // Joining it again finds no room: it is gone from this server.
    assert_error(&join_raw(&alice_api, &room).await, 404, "M_NOT_FOUND");

    // While one of ours is invited, the room stays; once they decline, it goes.
    let invited = create_room(&alice_api, json!({})).await;
    invite(&alice_api, &invited, &carol.user_id).await;
    leave_raw(&alice_api, &invited).await.ok();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.get(&room_path(&invited)).await.status, 200);
    leave_raw(&srv.on("a.test").as_user(&carol), &invited)
        .await
        .ok();
    assert!(gone(invited).await, "the declined room was not forgotten");

    // Turned off, rooms stay.
    let patched = srv
        .patch_tenant("a.test", json!({"forget_empty_rooms": false}))
        .await;
    assert_eq!(patched["rooms"]["forget_empty_rooms"], false);
    let kept = create_room(&alice_api, json!({})).await;
    leave_raw(&alice_api, &kept).await.ok();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.get(&room_path(&kept)).await.status, 200);
    let bad = srv
        .op()
        .patch(
            &format!("{OP}/tenants/a.test"),
            json!({"forget_empty_rooms": "no"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

/// Plants an admin task in a stopped server's tenant database, as a run interrupted by a
/// restart leaves it.
async fn plant_task(srv: &TestServer, tenant_id: &str, task: [&str; 4]) {
    let [task_id, action, resource_id, params] = task;
    let sql = "INSERT INTO admin_tasks (task_id, action, resource_id, status, params, \
               created_ts, updated_ts) VALUES ($1, $2, $3, 'active', $4, 1, 1)";
    match &srv.database {
        None => {
            let path = srv
                .data_dir
                .join("tenants")
                .join(tenant_id)
                .join("homeserver.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("tenant database");
            sqlx::query(sql)
                .bind(task_id)
                .bind(action)
                .bind(resource_id)
                .bind(params)
                .execute(&pool)
                .await
                .expect("plant task");
            pool.close().await;
        }
        Some(database) => {
            let pool = sqlx::PgPool::connect(&database.url)
                .await
                .expect("database");
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SET LOCAL search_path TO \"t_{tenant_id}\""
            )))
            .execute(&mut *tx)
            .await
            .expect("schema");
            sqlx::query(sql)
                .bind(task_id)
                .bind(action)
                .bind(resource_id)
                .bind(params)
                .execute(&mut *tx)
                .await
                .expect("plant task");
            tx.commit().await.expect("commit");
            pool.close().await;
        }
    }
}

#[tokio::test]
async fn a_deletion_a_restart_interrupted_is_run_again() {
    let mut srv = TestServer::start().await;
    let tenant = srv.create_tenant("a.test", &["a.test"], "open").await;
    let tenant_id = tenant["tenant_id"].as_str().expect("tenant_id").to_owned();
    let password = tenant["admin"]["password"]
        .as_str()
        .expect("password")
        .to_owned();
    let admin = srv.login("a.test", "admin", &password).await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let room = create_room(&srv.on("a.test").as_user(&alice), json!({})).await;

    srv.stop().await;
    let params = json!({"requester_user_id": admin.user_id, "block": true, "purge": true,
                        "force_purge": false, "new_room_user_id": null});
    plant_task(
        &srv,
        &tenant_id,
        [
            "interrupted",
            "shutdown_and_purge_room",
            &room,
            &params.to_string(),
        ],
    )
    .await;
    srv.restart_after_stop().await;

    let api = srv.on("a.test").as_user(&admin);
    let status = finished_deletion(&api, "interrupted").await;
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(
        status["shutdown_room"]["kicked_users"],
        json!([alice.user_id])
    );
    assert_error(&api.get(&room_path(&room)).await, 404, "M_NOT_FOUND");
    let alice_api = srv.on("a.test").as_user(&alice);
    assert!(joined_rooms(&alice_api).await.is_empty());
    assert_error(&join_raw(&alice_api, &room).await, 403, "M_FORBIDDEN");
}

/// Another server's invite into a room the tenant blocked is refused: the invitee never sees it.
#[tokio::test]
async fn a_blocked_room_refuses_invites_from_other_servers() {
    let (srv, admin, _b_admin) = tenants_with_admins().await;
    let carol = srv.register("a.test", "carol", "pw-carol-1").await;
    let dave = srv.register("b.test", "dave", "pw-dave-1").await;
    let dave_api = srv.on("b.test").as_user(&dave);
    let room = create_room(&dave_api, json!({})).await;
    let block = format!("{}/block", room_path(&room));
    let api = srv.on("a.test").as_user(&admin);
    api.put(&block, json!({"block": true})).await.ok();

    let invite = member_action(&dave_api, &room, "invite", &carol.user_id, None).await;
    assert_ne!(invite.status, 200, "{}", invite.text);
    let carol_sync = sync(&srv.on("a.test").as_user(&carol), None, None).await;
    assert!(
        !room_ids(&carol_sync, "invite").contains(&room),
        "{carol_sync}"
    );

    // Unblocked, the same invite goes through.
    api.put(&block, json!({"block": false})).await.ok();
    let invite = member_action(&dave_api, &room, "invite", &carol.user_id, None).await;
    assert_eq!(invite.status, 200, "{}", invite.text);
}
