//! The admin API's server-wide endpoints: federation destinations (with the delivery state of
//! each, the rooms shared, and the reset of a failing one), background updates (none: maas
//! migrates at start-up), statistics (users' media, rooms by size), an event by id, the media
//! of a room, and `auth_metadata`, which a Synapse without OAuth doesn't serve. Each tenant's
//! answers are about itself only.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::media::upload;
use crate::room_support::{create_room, join, send, send_text};

const ADMIN: &str = "/_synapse/admin/v1";
const DESTINATIONS: &str = "/_synapse/admin/v1/federation/destinations";

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn names(body: &Value, key: &str, field: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        .iter()
        .map(|d| d[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Polls `path` until `done` holds for its body (10 s at most).
async fn wait_for(api: &Api<'_>, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = api.get(path).await.ok();
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first admin of a new tenant, logged in.
async fn admin_of(srv: &TestServer, name: &str) -> Session {
    let tenant = srv.create_tenant(name, &[name], "open").await;
    let password = tenant["admin"]["password"].as_str().expect("a password");
    srv.login(name, "admin", password).await
}

#[tokio::test]
async fn destinations_are_the_servers_a_tenant_federates_with() {
    let srv = TestServer::start().await;
    let admin = admin_of(&srv, "a.test").await;
    let admin_d = admin_of(&srv, "d.test").await;
    for name in ["b.test", "c.test"] {
        srv.create_tenant(name, &[name], "open").await;
    }
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let room_id = create_room(
        &as_alice,
        json!({"preset": "public_chat", "room_alias_name": "lobby"}),
    )
    .await;
    for name in ["b.test", "c.test"] {
        let user = srv.register(name, "user", "pw-user-1").await;
        join(&srv.on(name).as_user(&user), "#lobby:a.test").await;
    }
    send_text(&as_alice, &room_id, "hello servers").await;
    let api = srv.on("a.test").as_user(&admin);

    // Both servers, by name, once what was sent to them arrived.
    let list = wait_for(&api, DESTINATIONS, |body| {
        body["destinations"].as_array().is_some_and(|d| {
            d.iter()
                .all(|d| d["last_successful_stream_ordering"].is_i64())
        })
    })
    .await;
    assert_eq!(sorted_keys(&list), ["destinations", "total"], "{list}");
    assert_eq!(list["total"], 2);
    assert_eq!(
        names(&list, "destinations", "destination"),
        ["b.test", "c.test"]
    );
    let b = &list["destinations"][0];
    assert_eq!(
        sorted_keys(b),
        [
            "destination",
            "failure_ts",
            "last_successful_stream_ordering",
            "retry_interval",
            "retry_last_ts"
        ]
    );
    assert_eq!(
        (
            b["retry_last_ts"].clone(),
            b["retry_interval"].clone(),
            b["failure_ts"].clone()
        ),
        (json!(0), json!(0), Value::Null)
    );
    assert_eq!(&api.get(&format!("{DESTINATIONS}/b.test")).await.ok(), b);

    // Filtered without case, reversed, and in pages with a string `next_token`.
    let query = async |q: &str| api.get(&format!("{DESTINATIONS}?{q}")).await.ok();
    assert_eq!(
        names(
            &query("destination=B.TE").await,
            "destinations",
            "destination"
        ),
        ["b.test"]
    );
    assert_eq!(
        names(&query("dir=b").await, "destinations", "destination"),
        ["c.test", "b.test"]
    );
    let page = query("limit=1").await;
    assert_eq!(
        (page["total"].clone(), page["next_token"].clone()),
        (json!(2), json!("1"))
    );
    let page = query("from=1&limit=1&order_by=retry_last_ts").await;
    assert_eq!(names(&page, "destinations", "destination"), ["c.test"]);
    assert_eq!(page.get("next_token"), None, "{page}");
    for bad in ["order_by=size", "dir=up", "from=-1", "limit=x"] {
        assert_error(
            &api.get(&format!("{DESTINATIONS}?{bad}")).await,
            400,
            "M_INVALID_PARAM",
        );
    }

    // The rooms shared with one.
    let rooms = api.get(&format!("{DESTINATIONS}/b.test/rooms")).await.ok();
    assert_eq!(sorted_keys(&rooms), ["rooms", "total"]);
    assert_eq!(rooms["total"], 1);
    assert_eq!(rooms["rooms"][0]["room_id"], room_id);
    assert!(
        rooms["rooms"][0]["stream_ordering"]
            .as_i64()
            .is_some_and(|s| s > 0),
        "{rooms}"
    );

    // Unknown destinations, the tenant itself among them.
    for unknown in ["nope.test", "a.test"] {
        let path = format!("{DESTINATIONS}/{unknown}");
        assert_error(&api.get(&path).await, 404, "M_NOT_FOUND");
        assert_error(&api.get(&format!("{path}/rooms")).await, 404, "M_NOT_FOUND");
        assert_error(
            &api.post(&format!("{path}/reset_connection"), json!({}))
                .await,
            404,
            "M_NOT_FOUND",
        );
    }
    // A destination whose delivery works needs no reset.
    let resp = api
        .post(
            &format!("{DESTINATIONS}/b.test/reset_connection"),
            json!({}),
        )
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");

    // c.test goes away: what a.test sends it fails, and is retried.
    srv.op().delete(&format!("{OP}/tenants/c.test")).await.ok();
    send_text(&as_alice, &room_id, "anyone there?").await;
    let failing = wait_for(&api, &format!("{DESTINATIONS}/c.test"), |body| {
        body["retry_last_ts"].as_i64().is_some_and(|ts| ts > 0)
    })
    .await;
    let failure_ts = failing["failure_ts"].as_i64().expect("a failure time");
    assert!(
        failure_ts <= failing["retry_last_ts"].as_i64().unwrap(),
        "{failing}"
    );
    assert!(
        failing["retry_interval"].as_i64().is_some_and(|i| i > 0),
        "{failing}"
    );
    let failing_first = api
        .get(&format!("{DESTINATIONS}?order_by=retry_last_ts&dir=b"))
        .await
        .ok();
    assert_eq!(
        names(&failing_first, "destinations", "destination"),
        ["c.test", "b.test"]
    );
    let reset = api
        .post(
            &format!("{DESTINATIONS}/c.test/reset_connection"),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(reset, json!({}));

    // Admins only; and a tenant that federates with nobody has no destinations.
    let as_alice_admin_path = as_alice.get(DESTINATIONS).await;
    assert_error(&as_alice_admin_path, 403, "M_FORBIDDEN");
    assert_error(
        &srv.on("a.test").get(DESTINATIONS).await,
        401,
        "M_MISSING_TOKEN",
    );
    let alone = srv
        .on("d.test")
        .as_user(&admin_d)
        .get(DESTINATIONS)
        .await
        .ok();
    assert_eq!(alone, json!({"destinations": [], "total": 0}));
}

#[tokio::test]
async fn background_updates_are_none_and_the_switch_is_kept() {
    let (srv, admin, admin_b) = tenants_with_admins().await;
    let api = srv.on("a.test").as_user(&admin);
    let status = format!("{ADMIN}/background_updates/status");
    let enabled = format!("{ADMIN}/background_updates/enabled");
    let start_job = format!("{ADMIN}/background_updates/start_job");

    assert_eq!(
        api.get(&status).await.ok(),
        json!({"enabled": true, "current_updates": {}})
    );
    assert_eq!(api.get(&enabled).await.ok(), json!({"enabled": true}));
    assert_eq!(
        api.post(&enabled, json!({"enabled": false})).await.ok(),
        json!({"enabled": false})
    );
    assert_eq!(
        api.get(&status).await.ok(),
        json!({"enabled": false, "current_updates": {}})
    );
    assert_eq!(api.get(&enabled).await.ok(), json!({"enabled": false}));
    // Another tenant's switch is its own.
    let api_b = srv.on("b.test").as_user(&admin_b);
    assert_eq!(api_b.get(&enabled).await.ok(), json!({"enabled": true}));
    // `enabled` defaults to true; anything but a boolean is refused and changes nothing.
    assert_error(
        &api.post(&enabled, json!({"enabled": "yes"})).await,
        400,
        "M_UNKNOWN",
    );
    assert_eq!(api.get(&enabled).await.ok(), json!({"enabled": false}));
    assert_eq!(
        api.post(&enabled, json!({})).await.ok(),
        json!({"enabled": true})
    );

    for job in [
        json!({"job_name": "populate_stats_process_rooms"}),
        json!({"job_name": "regenerate_directory"}),
        json!({"job_name": "event_resign", "old_key": "ed25519:old", "before_ts": 5}),
    ] {
        assert_eq!(api.post(&start_job, job).await.ok(), json!({}));
    }
    for job in [
        json!({"job_name": "nope"}),
        json!({"job_name": 5}),
        json!({"job_name": "event_resign", "old_key": 5}),
        json!({"job_name": "event_resign", "before_ts": "x"}),
    ] {
        assert_error(&api.post(&start_job, job).await, 400, "M_UNKNOWN");
    }
    let resp = api.post(&start_job, json!({})).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    assert_eq!(resp.body["error"], "Missing params: ['job_name']");

    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    assert_error(&as_alice.get(&status).await, 403, "M_FORBIDDEN");
    assert_error(
        &as_alice.post(&enabled, json!({"enabled": false})).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &as_alice
            .post(&start_job, json!({"job_name": "regenerate_directory"}))
            .await,
        403,
        "M_FORBIDDEN",
    );
}

#[tokio::test]
async fn statistics_count_media_per_user_and_rooms_by_size() {
    let (srv, admin, admin_b) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let as_bob = srv.on("a.test").as_user(&bob);
    upload(&as_alice, b"12345".to_vec(), "text/plain", None)
        .await
        .resp
        .ok();
    upload(&as_alice, b"123".to_vec(), "text/plain", None)
        .await
        .resp
        .ok();
    as_alice
        .put(
            &format!("{CS}/profile/{}/displayname", enc(&alice.user_id)),
            json!({"displayname": "Wonder A"}),
        )
        .await
        .ok();
    let before_bob = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    upload(&as_bob, b"1234567890".to_vec(), "text/plain", None)
        .await
        .resp
        .ok();
    let api = srv.on("a.test").as_user(&admin);
    let stats = async |query: &str| {
        api.get(&format!("{ADMIN}/statistics/users/media{query}"))
            .await
            .ok()
    };

    let all = stats("").await;
    assert_eq!(sorted_keys(&all), ["total", "users"], "{all}");
    assert_eq!(
        all["users"],
        json!([
            {"user_id": "@alice:a.test", "displayname": "Wonder A", "media_count": 2, "media_length": 8},
            {"user_id": "@bob:a.test", "displayname": null, "media_count": 1, "media_length": 10},
        ])
    );
    assert_eq!(all["total"], 2);
    assert_eq!(
        names(
            &stats("?order_by=media_count&dir=b").await,
            "users",
            "user_id"
        ),
        ["@alice:a.test", "@bob:a.test"]
    );
    assert_eq!(
        names(
            &stats("?order_by=media_length&dir=b").await,
            "users",
            "user_id"
        ),
        ["@bob:a.test", "@alice:a.test"]
    );
    // A part of the localpart or of the display name.
    assert_eq!(
        names(&stats("?search_term=ali").await, "users", "user_id"),
        ["@alice:a.test"]
    );
    assert_eq!(
        names(&stats("?search_term=onder").await, "users", "user_id"),
        ["@alice:a.test"]
    );
    assert_eq!(
        names(&stats("?search_term=b").await, "users", "user_id"),
        ["@bob:a.test"]
    );
    assert_eq!(
        stats("?search_term=nobody").await,
        json!({"users": [], "total": 0})
    );
    let by_name = stats("?order_by=displayname").await;
    assert_eq!(
        names(&by_name, "users", "user_id"),
        ["@alice:a.test", "@bob:a.test"]
    );
    let since = stats(&format!("?from_ts={before_bob}")).await;
    assert_eq!(names(&since, "users", "user_id"), ["@bob:a.test"]);
    let until = stats(&format!("?until_ts={before_bob}")).await;
    assert_eq!(names(&until, "users", "user_id"), ["@alice:a.test"]);
    let page = stats("?limit=1").await;
    assert_eq!(
        (page["total"].clone(), page["next_token"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(
        names(&stats("?from=1").await, "users", "user_id"),
        ["@bob:a.test"]
    );
    for bad in [
        "?search_term=",
        "?from_ts=10&until_ts=10",
        "?order_by=size",
        "?dir=x",
        "?limit=-1",
        "?from_ts=x",
    ] {
        let resp = api
            .get(&format!("{ADMIN}/statistics/users/media{bad}"))
            .await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
    }

    // Rooms, largest first.
    let small = create_room(&as_alice, json!({})).await;
    let big = create_room(&as_bob, json!({})).await;
    for n in 0..20 {
        send_text(&as_bob, &big, &format!("message {n} {}", "x".repeat(200))).await;
    }
    let rooms = api
        .get(&format!("{ADMIN}/statistics/database/rooms"))
        .await
        .ok();
    assert_eq!(sorted_keys(&rooms), ["rooms"]);
    let listed = rooms["rooms"].as_array().expect("rooms");
    assert_eq!(
        names(&rooms, "rooms", "room_id"),
        [big.clone(), small.clone()]
    );
    assert_eq!(sorted_keys(&listed[0]), ["estimated_size", "room_id"]);
    let sizes: Vec<i64> = listed
        .iter()
        .map(|r| r["estimated_size"].as_i64().expect("a size"))
        .collect();
    assert!(sizes[0] > sizes[1] && sizes[1] > 0, "{rooms}");

    // `b.test` has neither users with media nor rooms.
    let api_b = srv.on("b.test").as_user(&admin_b);
    let other = api_b
        .get(&format!("{ADMIN}/statistics/users/media"))
        .await
        .ok();
    assert_eq!(other, json!({"users": [], "total": 0}));
    let other = api_b
        .get(&format!("{ADMIN}/statistics/database/rooms"))
        .await
        .ok();
    assert_eq!(other, json!({"rooms": []}));
    for path in ["statistics/users/media", "statistics/database/rooms"] {
        assert_error(
            &as_alice.get(&format!("{ADMIN}/{path}")).await,
            403,
            "M_FORBIDDEN",
        );
    }
}

#[tokio::test]
async fn events_and_room_media_are_read_whatever_the_room() {
    let (srv, admin, admin_b) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let room_id = create_room(&as_alice, json!({"preset": "private_chat"})).await;
    let said = send_text(&as_alice, &room_id, "private words").await;
    let image = send(
        &as_alice,
        &room_id,
        "m.room.message",
        json!({
            "msgtype": "m.image", "body": "cat.png", "url": "mxc://a.test/cat",
            "info": {"thumbnail_url": "mxc://elsewhere.example/thumb"},
        }),
    )
    .await;
    send(
        &as_alice,
        &room_id,
        "m.room.message",
        json!({"msgtype": "m.file", "body": "f", "url": "mxc://a.test/file"}),
    )
    .await;
    let api = srv.on("a.test").as_user(&admin);

    // The admin is in no room of Alice's, and reads her event all the same, as stored.
    let fetched = api
        .get(&format!("{ADMIN}/fetch_event/{}", enc(&said)))
        .await
        .ok();
    assert_eq!(sorted_keys(&fetched), ["event"]);
    let event = &fetched["event"];
    assert_eq!(event["event_id"], said);
    assert_eq!(event["room_id"], room_id);
    assert_eq!(event["sender"], alice.user_id);
    assert_eq!(event["content"]["body"], "private words");
    assert!(
        event["auth_events"].is_array() && event["signatures"]["a.test"].is_object(),
        "{event}"
    );
    assert!(event["unsigned"]["age_ts"].is_i64(), "{event}");
    let fetched = api
        .get(&format!("{ADMIN}/fetch_event/{}", enc(&image)))
        .await
        .ok();
    assert_eq!(fetched["event"]["content"]["url"], "mxc://a.test/cat");
    for unknown in ["$nope", "nope"] {
        let resp = api
            .get(&format!("{ADMIN}/fetch_event/{}", enc(unknown)))
            .await;
        assert_error(&resp, 404, "M_NOT_FOUND");
    }

    // The media the room's events name, newest first.
    let media = api
        .get(&format!("{ADMIN}/room/{}/media", enc(&room_id)))
        .await
        .ok();
    assert_eq!(
        media,
        json!({"local": ["mxc://a.test/file", "mxc://a.test/cat"], "remote": ["mxc://elsewhere.example/thumb"]})
    );
    for unknown in ["!nope:a.test", "nope"] {
        let resp = api
            .get(&format!("{ADMIN}/room/{}/media", enc(unknown)))
            .await
            .ok();
        assert_eq!(resp, json!({"local": [], "remote": []}));
    }

    // Another tenant's admin finds neither.
    let api_b = srv.on("b.test").as_user(&admin_b);
    let resp = api_b
        .get(&format!("{ADMIN}/fetch_event/{}", enc(&said)))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = api_b
        .get(&format!("{ADMIN}/room/{}/media", enc(&room_id)))
        .await
        .ok();
    assert_eq!(resp, json!({"local": [], "remote": []}));
    // Nor does a user who is no admin.
    let resp = as_alice
        .get(&format!("{ADMIN}/fetch_event/{}", enc(&said)))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = as_alice
        .get(&format!("{ADMIN}/room/{}/media", enc(&room_id)))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}

#[tokio::test]
async fn auth_metadata_is_not_served_without_oauth() {
    let (srv, admin, _) = tenants_with_admins().await;
    for path in [
        "/_matrix/client/v1/auth_metadata",
        "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
    ] {
        assert_error(&srv.on("a.test").get(path).await, 404, "M_UNRECOGNIZED");
        let resp = srv.on("a.test").as_user(&admin).get(path).await;
        assert_error(&resp, 404, "M_UNRECOGNIZED");
    }
}
