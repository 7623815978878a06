//! Reports: users report events they can see, rooms and users (Client-Server API, "Reporting
//! content"), and the tenant's admins list, read and delete them with Synapse's admin API
//! (`/v1/event_reports`, `/v1/user_reports`), its shapes and its errors. The other moderation
//! endpoints have files of their own (`admin_tokens`, `admin_notices`, `admin_register`).

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::{create_room, join, send_text};

const ADMIN: &str = "/_synapse/admin/v1";

/// Every field of an event report in Synapse's listing.
const EVENT_REPORT_FIELDS: [&str; 10] = [
    "canonical_alias",
    "event_id",
    "id",
    "name",
    "reason",
    "received_ts",
    "room_id",
    "score",
    "sender",
    "user_id",
];

fn report_event_path(room_id: &str, event_id: &str) -> String {
    format!("{CS}/rooms/{}/report/{}", enc(room_id), enc(event_id))
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn report_ids(body: &Value, key: &str) -> Vec<i64> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        .iter()
        .map(|r| r["id"].as_i64().unwrap_or_else(|| panic!("no id in {r}")))
        .collect()
}

/// Alice's public room "Lobby" (`#lobby:a.test`) on `a.test`, joined by Bob, and a message of
/// each of them in it.
struct Lobby {
    alice: Session,
    bob: Session,
    room_id: String,
    alice_said: String,
    bob_said: String,
}

async fn lobby(srv: &TestServer) -> Lobby {
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let as_bob = srv.on("a.test").as_user(&bob);
    let room_id = create_room(
        &as_alice,
        json!({"preset": "public_chat", "name": "Lobby", "room_alias_name": "lobby"}),
    )
    .await;
    join(&as_bob, &room_id).await;
    let alice_said = send_text(&as_alice, &room_id, "hello").await;
    let bob_said = send_text(&as_bob, &room_id, "something rude").await;
    Lobby {
        alice,
        bob,
        room_id,
        alice_said,
        bob_said,
    }
}

#[tokio::test]
async fn event_reports_are_filed_listed_read_and_deleted() {
    let (srv, admin, _) = tenants_with_admins().await;
    let lobby = lobby(&srv).await;
    let as_alice = srv.on("a.test").as_user(&lobby.alice);
    let as_bob = srv.on("a.test").as_user(&lobby.bob);
    let as_admin = srv.on("a.test").as_user(&admin);

    let before = now_ms();
    let body = as_alice
        .post(
            &report_event_path(&lobby.room_id, &lobby.bob_said),
            json!({"reason": "rude", "score": -100}),
        )
        .await
        .ok();
    assert_eq!(body, json!({}));
    // Without reason and score, on the older `r0` path.
    let r0 = format!(
        "/_matrix/client/r0/rooms/{}/report/{}",
        enc(&lobby.room_id),
        enc(&lobby.alice_said)
    );
    as_bob.post(&r0, json!({})).await.ok();

    let list = as_admin.get(&format!("{ADMIN}/event_reports")).await.ok();
    assert_eq!(keys(&list), ["event_reports", "total"], "{list}");
    assert_eq!(list["total"], 2);
    // Newest first by default.
    let reports = list["event_reports"].as_array().expect("reports");
    let (bobs, alices) = (&reports[0], &reports[1]);
    assert_eq!(keys(alices), EVENT_REPORT_FIELDS, "{alices}");
    assert_eq!(alices["user_id"], lobby.alice.user_id);
    assert_eq!(alices["event_id"], lobby.bob_said);
    assert_eq!(alices["sender"], lobby.bob.user_id);
    assert_eq!(alices["room_id"], lobby.room_id);
    assert_eq!(alices["reason"], "rude");
    assert_eq!(alices["score"], -100);
    assert_eq!(alices["name"], "Lobby");
    assert_eq!(alices["canonical_alias"], "#lobby:a.test");
    let received = alices["received_ts"].as_i64().expect("received_ts");
    assert!(received >= before && received <= now_ms(), "{alices}");
    assert_eq!(bobs["reason"], Value::Null);
    assert_eq!(bobs["score"], Value::Null);
    assert_eq!(bobs["sender"], lobby.alice.user_id);
    let (alice_report, bob_report) = (alices["id"].clone(), bobs["id"].clone());
    assert!(alice_report.as_i64() < bob_report.as_i64(), "{list}");

    // One report with the event as stored.
    let path = format!("{ADMIN}/event_reports/{alice_report}");
    let details = as_admin.get(&path).await.ok();
    let mut fields = EVENT_REPORT_FIELDS.to_vec();
    fields.push("event_json");
    fields.sort_unstable();
    assert_eq!(keys(&details), fields, "{details}");
    let mut without_event = details.clone();
    without_event
        .as_object_mut()
        .expect("an object")
        .remove("event_json");
    assert_eq!(&without_event, alices);
    let event = &details["event_json"];
    assert_eq!(event["type"], "m.room.message");
    assert_eq!(event["sender"], lobby.bob.user_id);
    assert_eq!(event["content"]["body"], "something rude");
    assert!(event["signatures"]["a.test"].is_object(), "{event}");

    let oldest_first = as_admin
        .get(&format!("{ADMIN}/event_reports?dir=f"))
        .await
        .ok();
    assert_eq!(
        report_ids(&oldest_first, "event_reports"),
        [alice_report.as_i64().unwrap(), bob_report.as_i64().unwrap()]
    );

    // Deleted once; then it is gone, and the other stays.
    assert_eq!(as_admin.delete(&path).await.ok(), json!({}));
    assert_error(&as_admin.get(&path).await, 404, "M_NOT_FOUND");
    assert_error(&as_admin.delete(&path).await, 404, "M_NOT_FOUND");
    let list = as_admin.get(&format!("{ADMIN}/event_reports")).await.ok();
    assert_eq!(list["total"], 1);
    assert_eq!(list["event_reports"][0]["id"], bob_report);
}

#[tokio::test]
async fn event_reports_are_filtered_and_paged() {
    let (srv, admin, _) = tenants_with_admins().await;
    let lobby = lobby(&srv).await;
    let as_alice = srv.on("a.test").as_user(&lobby.alice);
    let as_bob = srv.on("a.test").as_user(&lobby.bob);
    let as_admin = srv.on("a.test").as_user(&admin);
    let other_room = create_room(&as_alice, json!({"preset": "private_chat"})).await;
    let in_other = send_text(&as_alice, &other_room, "elsewhere").await;

    let mut filed = Vec::new();
    for (api, room, event) in [
        (&as_alice, &lobby.room_id, &lobby.bob_said),
        (&as_bob, &lobby.room_id, &lobby.alice_said),
        (&as_alice, &other_room, &in_other),
        (&as_alice, &lobby.room_id, &lobby.alice_said),
    ] {
        api.post(&report_event_path(room, event), json!({"reason": "r"}))
            .await
            .ok();
    }
    let oldest_first = as_admin
        .get(&format!("{ADMIN}/event_reports?dir=f"))
        .await
        .ok();
    filed.extend(report_ids(&oldest_first, "event_reports"));
    assert_eq!(filed.len(), 4);
    let listed = async |query: &str| {
        let body = as_admin
            .get(&format!("{ADMIN}/event_reports?dir=f&{query}"))
            .await
            .ok();
        (report_ids(&body, "event_reports"), body)
    };

    // A page: `next_token` (an integer) while the window ends before the selection does.
    let (ids, body) = listed("limit=2").await;
    assert_eq!(ids, filed[..2]);
    assert_eq!(
        (body["total"].clone(), body["next_token"].clone()),
        (json!(4), json!(2))
    );
    let (ids, body) = listed("from=2&limit=2").await;
    assert_eq!(ids, filed[2..]);
    assert_eq!(body.get("next_token"), None, "{body}");
    let (ids, body) = listed("from=3&limit=5").await;
    assert_eq!(ids, filed[3..]);
    assert_eq!(body.get("next_token"), None, "{body}");

    // Filters: a part of the reporter's ID, a part of the room ID, the sender exactly.
    let (ids, body) = listed(&format!("user_id={}", enc("bob"))).await;
    assert_eq!((ids, body["total"].clone()), (vec![filed[1]], json!(1)));
    let (ids, _) = listed(&format!("room_id={}", enc(&other_room))).await;
    assert_eq!(ids, [filed[2]]);
    let sender = enc(&lobby.alice.user_id);
    let (ids, body) = listed(&format!("event_sender_user_id={sender}")).await;
    assert_eq!(
        (ids, body["total"].clone()),
        (vec![filed[1], filed[2], filed[3]], json!(3))
    );
    let (ids, _) = listed(&format!("event_sender_user_id={sender}&user_id=alice")).await;
    assert_eq!(ids, [filed[2], filed[3]]);
    let (ids, body) = listed("event_sender_user_id=alice").await;
    assert_eq!((ids, body["total"].clone()), (vec![], json!(0)));

    // Bad parameters, with Synapse's errcodes.
    for query in ["from=-1", "limit=-1", "from=x", "limit=1.5", "dir=x"] {
        let resp = as_admin
            .get(&format!("{ADMIN}/event_reports?{query}"))
            .await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
    }
}

#[tokio::test]
async fn an_event_is_reported_only_when_the_reporter_can_see_it() {
    let (srv, admin, _) = tenants_with_admins().await;
    let lobby = lobby(&srv).await;
    let carol = srv.register("a.test", "carol", "pw-carol-1").await;
    let as_alice = srv.on("a.test").as_user(&lobby.alice);
    let as_carol = srv.on("a.test").as_user(&carol);
    let as_admin = srv.on("a.test").as_user(&admin);
    let path = report_event_path(&lobby.room_id, &lobby.bob_said);

    // Not in the room, no such event, an event of another room, a redacted event: all 404.
    assert_error(&as_carol.post(&path, json!({})).await, 404, "M_NOT_FOUND");
    let unknown = report_event_path(&lobby.room_id, "$nope");
    assert_error(
        &as_alice.post(&unknown, json!({})).await,
        404,
        "M_NOT_FOUND",
    );
    let private = create_room(&as_alice, json!({"preset": "private_chat"})).await;
    let wrong_room = report_event_path(&private, &lobby.bob_said);
    assert_error(
        &as_alice.post(&wrong_room, json!({})).await,
        404,
        "M_NOT_FOUND",
    );
    let redact = format!(
        "{CS}/rooms/{}/redact/{}/t1",
        enc(&lobby.room_id),
        enc(&lobby.alice_said)
    );
    as_alice.put(&redact, json!({})).await.ok();
    let redacted = report_event_path(&lobby.room_id, &lobby.alice_said);
    assert_error(
        &as_alice.post(&redacted, json!({})).await,
        404,
        "M_NOT_FOUND",
    );

    // Bodies Synapse refuses.
    for body in [
        json!({"reason": 3}),
        json!({"reason": null}),
        json!({"score": "bad"}),
        json!({"score": 1.5}),
        json!({"score": true}),
        json!({"score": null}),
        json!([]),
    ] {
        assert_error(&as_alice.post(&path, body).await, 400, "M_BAD_JSON");
    }
    let not_json = as_alice.builder(reqwest::Method::POST, &path).body("{nope");
    assert_error(&TestServer::send(not_json).await, 400, "M_NOT_JSON");
    assert_error(
        &srv.on("a.test").post(&path, json!({})).await,
        401,
        "M_MISSING_TOKEN",
    );
    // A room ID or event ID that doesn't parse.
    let bad = format!("{CS}/rooms/nope/report/{}", enc(&lobby.bob_said));
    assert_error(
        &as_alice.post(&bad, json!({})).await,
        400,
        "M_INVALID_PARAM",
    );

    // None of that filed anything.
    let list = as_admin.get(&format!("{ADMIN}/event_reports")).await.ok();
    assert_eq!(list, json!({"event_reports": [], "total": 0}));
}

#[tokio::test]
async fn rooms_and_users_are_reported() {
    let (srv, admin, _) = tenants_with_admins().await;
    let lobby = lobby(&srv).await;
    let carol = srv.register("a.test", "carol", "pw-carol-1").await;
    let as_carol = srv.on("a.test").as_user(&carol);
    let as_admin = srv.on("a.test").as_user(&admin);

    // A room the reporter is not in, as long as the server knows it.
    let room_path = format!("{CS}/rooms/{}/report", enc(&lobby.room_id));
    let body = as_carol
        .post(&room_path, json!({"reason": "spam room"}))
        .await
        .ok();
    assert_eq!(body, json!({}));
    let unknown_room = format!("{CS}/rooms/{}/report", enc("!nope:a.test"));
    assert_error(
        &as_carol.post(&unknown_room, json!({"reason": "x"})).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &as_carol.post(&room_path, json!({})).await,
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        &as_carol.post(&room_path, json!({"reason": 1})).await,
        400,
        "M_BAD_JSON",
    );

    // A user of the tenant is reported; an unknown or remote one is accepted and not kept.
    let user_path = |user_id: &str| format!("{CS}/users/{}/report", enc(user_id));
    let bob = lobby.bob.user_id.clone();
    as_carol
        .post(&user_path(&bob), json!({"reason": "harassment"}))
        .await
        .ok();
    for nobody in ["@nobody:a.test", "@bob:b.test", "@bob:elsewhere.example"] {
        let resp = as_carol
            .post(&user_path(nobody), json!({"reason": "x"}))
            .await;
        assert_eq!(resp.ok(), json!({}));
    }
    let long = "x".repeat(1001);
    let resp = as_carol
        .post(&user_path(&bob), json!({"reason": long}))
        .await;
    assert_error(&resp, 400, "M_BAD_JSON");
    assert_error(
        &as_carol.post(&user_path(&bob), json!({})).await,
        400,
        "M_MISSING_PARAM",
    );

    let list = as_admin.get(&format!("{ADMIN}/user_reports")).await.ok();
    assert_eq!(keys(&list), ["total", "user_reports"], "{list}");
    assert_eq!(list["total"], 1, "{list}");
    let report = &list["user_reports"][0];
    assert_eq!(
        keys(report),
        ["id", "reason", "received_ts", "target_user_id", "user_id"]
    );
    assert_eq!(report["target_user_id"], bob);
    assert_eq!(report["user_id"], carol.user_id);
    assert_eq!(report["reason"], "harassment");
    let path = format!("{ADMIN}/user_reports/{}", report["id"]);
    assert_eq!(&as_admin.get(&path).await.ok(), report);
    let filtered = as_admin
        .get(&format!("{ADMIN}/user_reports?target_user_id=alice"))
        .await
        .ok();
    assert_eq!(filtered, json!({"user_reports": [], "total": 0}));
    let filtered = as_admin
        .get(&format!(
            "{ADMIN}/user_reports?user_id=carol&target_user_id=bob"
        ))
        .await
        .ok();
    assert_eq!(filtered["total"], 1);

    // A user report is no event report, and the other way round.
    let as_event = format!("{ADMIN}/event_reports/{}", report["id"]);
    assert_error(&as_admin.get(&as_event).await, 404, "M_NOT_FOUND");
    assert_eq!(as_admin.delete(&path).await.ok(), json!({}));
    assert_error(&as_admin.get(&path).await, 404, "M_NOT_FOUND");
    assert_error(&as_admin.delete(&path).await, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn report_ids_are_checked_as_synapse_does() {
    let (srv, admin, _) = tenants_with_admins().await;
    let as_admin = srv.on("a.test").as_user(&admin);
    for kind in ["event_reports", "user_reports"] {
        for bad in ["abc", "-1", "1.5"] {
            let path = format!("{ADMIN}/{kind}/{bad}");
            assert_error(&as_admin.get(&path).await, 400, "M_INVALID_PARAM");
            assert_error(&as_admin.delete(&path).await, 400, "M_INVALID_PARAM");
        }
        for unknown in ["0", "12345", "99999999999999999999999"] {
            let path = format!("{ADMIN}/{kind}/{unknown}");
            assert_error(&as_admin.get(&path).await, 404, "M_NOT_FOUND");
            assert_error(&as_admin.delete(&path).await, 404, "M_NOT_FOUND");
        }
    }
}

#[tokio::test]
async fn reports_are_for_the_tenants_own_admins() {
    let (srv, admin_a, admin_b) = tenants_with_admins().await;
    let lobby = lobby(&srv).await;
    let as_alice = srv.on("a.test").as_user(&lobby.alice);
    as_alice
        .post(
            &report_event_path(&lobby.room_id, &lobby.bob_said),
            json!({}),
        )
        .await
        .ok();
    as_alice
        .post(
            &format!("{CS}/users/{}/report", enc(&lobby.bob.user_id)),
            json!({"reason": "x"}),
        )
        .await
        .ok();
    let as_admin_a = srv.on("a.test").as_user(&admin_a);
    let event_report =
        as_admin_a.get(&format!("{ADMIN}/event_reports")).await.ok()["event_reports"][0]["id"]
            .clone();
    let user_report = as_admin_a.get(&format!("{ADMIN}/user_reports")).await.ok()["user_reports"]
        [0]["id"]
        .clone();
    let paths = [
        format!("{ADMIN}/event_reports"),
        format!("{ADMIN}/event_reports/{event_report}"),
        format!("{ADMIN}/user_reports"),
        format!("{ADMIN}/user_reports/{user_report}"),
    ];

    // Users who are no admins, and requests without a token.
    let as_bob = srv.on("a.test").as_user(&lobby.bob);
    for path in &paths {
        assert_error(&as_bob.get(path).await, 403, "M_FORBIDDEN");
        assert_error(&srv.on("a.test").get(path).await, 401, "M_MISSING_TOKEN");
    }
    for path in &paths[1..2] {
        assert_error(&as_bob.delete(path).await, 403, "M_FORBIDDEN");
    }

    // `b.test`'s admin sees none of `a.test`'s reports, and can't delete them.
    let as_admin_b = srv.on("b.test").as_user(&admin_b);
    let list = as_admin_b.get(&paths[0]).await.ok();
    assert_eq!(list, json!({"event_reports": [], "total": 0}));
    let list = as_admin_b.get(&paths[2]).await.ok();
    assert_eq!(list, json!({"user_reports": [], "total": 0}));
    for path in [&paths[1], &paths[3]] {
        assert_error(&as_admin_b.get(path).await, 404, "M_NOT_FOUND");
        assert_error(&as_admin_b.delete(path).await, 404, "M_NOT_FOUND");
        // `a.test`'s token is unknown on `b.test`.
        let cross = srv.on("b.test").as_user(&admin_a).get(path).await;
        assert_error(&cross, 401, "M_UNKNOWN_TOKEN");
    }
    // Still there on `a.test`.
    for path in [&paths[1], &paths[3]] {
        as_admin_a.get(path).await.ok();
    }
}
