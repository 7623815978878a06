//! The admin API's remaining user and room tools: redacting a user's events in bulk and
//! polling that task, a space's hierarchy as an admin reads it, the cross-signing key
//! replacement window, and account validity (which maas does not have) — per tenant.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

const V1: &str = "/_synapse/admin/v1";

fn redact_path(user_id: &str) -> String {
    format!("{V1}/user/{}/redact", enc(user_id))
}

fn status_path(redact_id: &str) -> String {
    format!("{V1}/user/redact_status/{}", enc(redact_id))
}

/// Polls a redaction's status until it is no longer running; returns the last answer.
async fn finished_redaction(api: &Api<'_>, redact_id: &str) -> Value {
    for _ in 0..200 {
        let status = api.get(&status_path(redact_id)).await.ok();
        if !matches!(status["status"].as_str(), Some("active" | "scheduled")) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redaction {redact_id} did not finish");
}

/// The event as `api`'s user reads it.
async fn event(api: &Api<'_>, room: &str, event_id: &str) -> Value {
    get_event_raw(api, room, event_id).await.ok()
}

/// The event id of `user_id`'s membership in the room.
async fn member_event_id(api: &Api<'_>, room: &str, user_id: &str) -> String {
    let state = full_state(api, room).await;
    let member = state
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == user_id)
        .unwrap_or_else(|| panic!("no membership of {user_id}"));
    member["event_id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn redacting_a_users_events_redacts_them_as_the_user() {
    let (srv, admin, b_admin) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let alice_api = api.as_user(&alice);
    let bob_api = api.as_user(&bob);
    let room = create_room(&alice_api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &room).await;
    let spam = [
        send_text(&bob_api, &room, "spam 1").await,
        send_text(&bob_api, &room, "spam 2").await,
    ];
    let kept = send_text(&alice_api, &room, "a reply").await;
    let bob_join = member_event_id(&alice_api, &room, &bob.user_id).await;
    let admin_api = api.as_user(&admin);

    // `rooms: []`: every room bob is in.
    let body = json!({"rooms": [], "reason": "spam"});
    let started = admin_api.post(&redact_path(&bob.user_id), body).await.ok();
    let id = started["redact_id"]
        .as_str()
        .expect("a redact id")
        .to_owned();
    assert_eq!(started, json!({ "redact_id": id }));
    let status = finished_redaction(&admin_api, &id).await;
    assert_eq!(
        status,
        json!({"status": "complete", "failed_redactions": {}})
    );

    for event_id in spam.iter().chain([&bob_join]) {
        let redacted = event(&alice_api, &room, event_id).await;
        let because = &redacted["unsigned"]["redacted_because"];
        assert_eq!(because["sender"], bob.user_id.as_str(), "{redacted}");
        assert_eq!(because["content"]["reason"], "spam", "{redacted}");
        assert!(redacted["content"].get("body").is_none(), "{redacted}");
    }
    let untouched = event(&alice_api, &room, &kept).await;
    assert_eq!(untouched["content"]["body"], "a reply");
    assert!(untouched["unsigned"].get("redacted_because").is_none());
    // Bob still reads the room: his join was redacted, not undone.
    assert_eq!(membership_of(&alice_api, &room, &bob.user_id).await, "join");

    // Another tenant's admin does not know the task.
    let resp = srv
        .on("b.test")
        .as_user(&b_admin)
        .get(&status_path(&id))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn redactions_the_room_does_not_allow_are_reported_as_failed() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let alice_api = api.as_user(&alice);
    let bob_api = api.as_user(&bob);
    let room = create_room(&alice_api, json!({"preset": "public_chat"})).await;
    let other = create_room(&alice_api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &room).await;
    join(&bob_api, &other).await;
    let first = send_text(&bob_api, &room, "first").await;
    let second = send_text(&bob_api, &room, "second").await;
    let elsewhere = send_text(&bob_api, &other, "elsewhere").await;
    // Bob is gone, and the admin is in no room: nobody may redact for them.
    assert_eq!(leave_raw(&bob_api, &room).await.status, 200);
    let admin_api = api.as_user(&admin);

    // Only the room asked for, and only the newest two of bob's events (`limit`): his leave,
    // which is not redacted (only joins are), and his second message.
    let body = json!({"rooms": [room], "limit": 2, "reason": null});
    let started = admin_api.post(&redact_path(&bob.user_id), body).await.ok();
    let id = started["redact_id"]
        .as_str()
        .expect("a redact id")
        .to_owned();
    let status = finished_redaction(&admin_api, &id).await;
    assert_eq!(status["status"], "complete", "{status}");
    let failed = status["failed_redactions"]
        .as_object()
        .unwrap_or_else(|| panic!("no failed_redactions: {status}"));
    assert_eq!(failed.keys().collect::<Vec<_>>(), vec![&second], "{status}");
    assert!(failed[&second].is_string(), "{status}");
    for event_id in [&first, &second] {
        let kept = event(&alice_api, &room, event_id).await;
        assert!(kept["content"]["body"].is_string(), "{kept}");
    }
    let kept = event(&alice_api, &other, &elsewhere).await;
    assert_eq!(kept["content"]["body"], "elsewhere");

    // `use_admin` with an admin who is the room's moderator: the admin redacts.
    let admin_room = create_room(&admin_api, json!({"preset": "public_chat"})).await;
    join(&bob_api, &admin_room).await;
    let spam = send_text(&bob_api, &admin_room, "spam").await;
    let body = json!({"rooms": [admin_room], "use_admin": true});
    let started = admin_api.post(&redact_path(&bob.user_id), body).await.ok();
    let id = started["redact_id"]
        .as_str()
        .expect("a redact id")
        .to_owned();
    let status = finished_redaction(&admin_api, &id).await;
    assert_eq!(
        status,
        json!({"status": "complete", "failed_redactions": {}})
    );
    let redacted = event(&bob_api, &admin_room, &spam).await;
    let because = &redacted["unsigned"]["redacted_because"];
    assert_eq!(because["sender"], admin.user_id.as_str(), "{redacted}");
}

#[tokio::test]
async fn redact_refuses_bad_requests() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let bob = api.register("bob", "pw-bob-1").await;
    let admin_api = api.as_user(&admin);
    let path = redact_path(&bob.user_id);

    let resp = api.as_user(&bob).post(&path, json!({"rooms": []})).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = api.as_user(&bob).get(&status_path("anything")).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = api.post(&path, json!({"rooms": []})).await;
    assert_eq!(resp.status, 401, "{}", resp.text);

    let resp = admin_api.post(&path, json!({})).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    assert_eq!(resp.body["error"], "rooms: Field required");
    let resp = admin_api.post(&path, json!({"rooms": "!r:a.test"})).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = admin_api.post(&path, json!({"rooms": [1]})).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = admin_api
        .post(&path, json!({"rooms": [], "limit": "10"}))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = admin_api
        .post(&path, json!({"rooms": [], "use_admin": "yes"}))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = admin_api
        .post(&path, json!({"rooms": [], "limit": -1}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(
        resp.body["error"],
        "If limit is provided it must be a non-negative integer greater than 0."
    );
    // None of them started a task.
    let tasks = admin_api
        .get(&format!(
            "{V1}/scheduled_tasks?action_name=redact_all_events"
        ))
        .await
        .ok();
    assert_eq!(tasks, json!({"scheduled_tasks": []}));

    let resp = admin_api.get(&status_path("nosuchid")).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    assert_eq!(resp.body["error"], "redact id 'nosuchid' not found");
}

/// A space of `api`'s user with a public and an invite-only child; returns their ids.
async fn space_with_children(api: &Api<'_>, server: &str) -> (String, String, String) {
    let space = create_room(
        api,
        json!({"preset": "public_chat", "name": "space room",
               "creation_content": {"type": "m.space"}}),
    )
    .await;
    let public = create_room(api, json!({"preset": "public_chat", "name": "open"})).await;
    let private = create_room(api, json!({"preset": "private_chat", "name": "nefarious"})).await;
    for child in [&public, &private] {
        put_state(
            api,
            &space,
            "m.space.child",
            child,
            json!({"via": [server]}),
        )
        .await;
    }
    (space, public, private)
}

fn hierarchy_path(room_id: &str, query: &str) -> String {
    format!("{V1}/rooms/{}/hierarchy{query}", enc(room_id))
}

fn room_ids_of(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms: {page}"))
        .iter()
        .map(|r| r["room_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn an_admin_reads_a_spaces_hierarchy_without_being_in_it() {
    let (srv, admin, b_admin) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let alice_api = api.as_user(&alice);
    let (space, public, private) = space_with_children(&alice_api, "a.test").await;
    let admin_api = api.as_user(&admin);

    // The client API hides the invite-only room from a non-member; the admin API doesn't.
    let page = admin_api.get(&hierarchy_path(&space, "")).await.ok();
    let mut ids = room_ids_of(&page);
    assert_eq!(ids.remove(0), space, "{page}");
    ids.sort();
    let mut children = vec![public.clone(), private.clone()];
    children.sort();
    assert_eq!(ids, children, "{page}");
    assert!(page.get("next_batch").is_none(), "{page}");
    let root = &page["rooms"][0];
    assert_eq!(root["room_type"], "m.space");
    assert_eq!(root["name"], "space room");
    assert_eq!(root["join_rule"], "public");
    assert_eq!(root["num_joined_members"], 1);
    assert_eq!(root["world_readable"], false);
    assert_eq!(root["guest_can_join"], false);
    let child_state = root["children_state"].as_array().expect("children_state");
    assert_eq!(child_state.len(), 2, "{page}");
    assert_eq!(child_state[0]["type"], "m.space.child");
    assert_eq!(child_state[0]["content"]["via"], json!(["a.test"]));
    assert!(child_state[0]["origin_server_ts"].is_i64(), "{page}");
    let nefarious = page["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["room_id"] == private.as_str()))
        .expect("the invite-only room");
    assert_eq!(nefarious["join_rule"], "invite");
    assert_eq!(nefarious["children_state"], json!([]));
    let client = admin_api
        .get(&format!(
            "/_matrix/client/v1/rooms/{}/hierarchy",
            enc(&space)
        ))
        .await
        .ok();
    assert!(!room_ids_of(&client).contains(&private), "{client}");

    // A page at a time; `max_depth=0` is the root alone.
    let first = admin_api
        .get(&hierarchy_path(&space, "?limit=1"))
        .await
        .ok();
    assert_eq!(room_ids_of(&first), vec![space.clone()]);
    let token = first["next_batch"].as_str().expect("a next_batch");
    let rest = admin_api
        .get(&hierarchy_path(
            &space,
            &format!("?limit=5&from={}", enc(token)),
        ))
        .await
        .ok();
    assert_eq!(room_ids_of(&rest).len(), 2, "{rest}");
    let root_only = admin_api
        .get(&hierarchy_path(&space, "?max_depth=0"))
        .await
        .ok();
    assert_eq!(room_ids_of(&root_only), vec![space.clone()]);

    // Errors, and another tenant's admin finds nothing of a.test's.
    let resp = admin_api.get(&hierarchy_path(&space, "?limit=0")).await;
    assert_error(&resp, 400, "M_BAD_JSON");
    let resp = admin_api
        .get(&hierarchy_path(&space, "?max_depth=-1"))
        .await;
    assert_error(&resp, 400, "M_BAD_JSON");
    let resp = admin_api.get(&hierarchy_path(&space, "?limit=x")).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = alice_api.get(&hierarchy_path(&space, "")).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let b_api = srv.on("b.test").as_user(&b_admin);
    let page = b_api.get(&hierarchy_path(&space, "")).await.ok();
    assert_eq!(page, json!({"rooms": []}));
}

#[tokio::test]
async fn account_validity_is_refused_as_maas_has_no_expiry() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let bob = api.register("bob", "pw-bob-1").await;
    let admin_api = api.as_user(&admin);
    let path = format!("{V1}/account_validity/validity");

    let resp = api
        .as_user(&bob)
        .post(&path, json!({"user_id": bob.user_id}))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = admin_api.post(&path, json!({})).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(
        resp.body["error"],
        "Missing property 'user_id' in the request body"
    );
    // No validity to renew: refused, whatever the body says.
    for body in [
        json!({"user_id": bob.user_id}),
        json!({"user_id": bob.user_id, "expiration_ts": 1_000, "enable_renewal_emails": false}),
    ] {
        let resp = admin_api.post(&path, body).await;
        assert_error(&resp, 400, "M_UNKNOWN");
        let error = resp.body["error"].as_str().unwrap_or_default();
        assert!(error.contains("not enabled"), "{}", resp.text);
    }
    // Nothing expires: bob still works.
    let whoami = api
        .as_user(&bob)
        .get("/_matrix/client/v3/account/whoami")
        .await
        .ok();
    assert_eq!(whoami["user_id"], bob.user_id.as_str());
}

fn replacement_path(user_id: &str) -> String {
    format!(
        "{V1}/users/{}/_allow_cross_signing_replacement_without_uia",
        enc(user_id)
    )
}

const SIGNING_UPLOAD: &str = "/_matrix/client/v3/keys/device_signing/upload";

#[tokio::test]
async fn an_admin_lets_a_user_replace_their_master_key_without_uia_once() {
    let (srv, admin, b_admin) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let alice_api = api.as_user(&alice);
    let admin_api = api.as_user(&admin);

    // No master key yet: nothing to allow.
    let resp = admin_api
        .post(&replacement_path(&alice.user_id), json!({}))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    assert_eq!(resp.body["error"], "User has no master cross-signing key");
    let first = crate::e2ee_support::CrossSigning::new(&alice.user_id);
    assert_eq!(
        alice_api
            .post(SIGNING_UPLOAD, first.upload_body())
            .await
            .ok(),
        json!({})
    );
    // Replacing needs user-interactive auth.
    let second = crate::e2ee_support::CrossSigning::new(&alice.user_id);
    let resp = alice_api.post(SIGNING_UPLOAD, second.upload_body()).await;
    assert_eq!(resp.status, 401, "{}", resp.text);

    let resp = api
        .as_user(&bob)
        .post(&replacement_path(&alice.user_id), json!({}))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Another tenant's admin, and a user of another server: no key of theirs here.
    let resp = srv
        .on("b.test")
        .as_user(&b_admin)
        .post(&replacement_path(&alice.user_id), json!({}))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = srv
        .on("b.test")
        .as_user(&b_admin)
        .post(&replacement_path("@alice:b.test"), json!({}))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = admin_api
        .post(&replacement_path(&bob.user_id), json!({}))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    let before = now_ms();
    let allowed = admin_api
        .post(&replacement_path(&alice.user_id), json!({}))
        .await
        .ok();
    let until = allowed["updatable_without_uia_before_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("no deadline: {allowed}"));
    assert_eq!(allowed, json!({"updatable_without_uia_before_ms": until}));
    let ten_minutes = 10 * 60 * 1000;
    assert!(until >= before + ten_minutes && until <= now_ms() + ten_minutes);

    // Within the window, no auth; the new key ends the window.
    assert_eq!(
        alice_api
            .post(SIGNING_UPLOAD, second.upload_body())
            .await
            .ok(),
        json!({})
    );
    let third = crate::e2ee_support::CrossSigning::new(&alice.user_id);
    let resp = alice_api.post(SIGNING_UPLOAD, third.upload_body()).await;
    assert_eq!(resp.status, 401, "{}", resp.text);
}
