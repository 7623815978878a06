//! Server notices (`/v1/send_server_notice`): a notice reaches a local user in a "Server
//! Notices" room of the tenant's system account (`@notices:<server>`), tagged
//! `m.server_notice`, kept for later notices while the user is in it; the `PUT` form sends once
//! per transaction id; Synapse's errors; and each tenant's notices are its own.

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::{get_event_raw, join, leave_raw, messages_raw, room_ids, send_raw, sync};

const SEND: &str = "/_synapse/admin/v1/send_server_notice";

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

/// The one room the user is invited to.
async fn invited_room(api: &Api<'_>) -> String {
    let synced = sync(api, None, None).await;
    let invited = room_ids(&synced, "invite");
    assert_eq!(invited.len(), 1, "{synced}");
    invited[0].clone()
}

#[tokio::test]
async fn notices_reach_the_user_in_a_room_of_their_own() {
    let (srv, admin, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_admin = srv.on("a.test").as_user(&admin);
    let as_alice = srv.on("a.test").as_user(&alice);

    let sent = as_admin
        .post(
            SEND,
            json!({"user_id": alice.user_id, "content": text("Welcome")}),
        )
        .await
        .ok();
    assert_eq!(sent.as_object().map(|o| o.len()), Some(1), "{sent}");
    let first = sent["event_id"].as_str().expect("an event id").to_owned();
    assert!(first.starts_with('$'), "{first}");

    // Alice is invited by the system account to a room named "Server Notices", tagged for
    // her.
    let synced = sync(&as_alice, None, None).await;
    let room_id = invited_room(&as_alice).await;
    let invite_state = synced["rooms"]["invite"][&room_id]["invite_state"]["events"]
        .as_array()
        .expect("invite state")
        .clone();
    let name = invite_state
        .iter()
        .find(|e| e["type"] == "m.room.name")
        .expect("a name");
    assert_eq!(name["content"]["name"], "Server Notices");
    assert_eq!(name["sender"], "@notices:a.test");
    let tags = as_alice
        .get(&format!(
            "{CS}/user/{}/rooms/{}/tags",
            enc(&alice.user_id),
            enc(&room_id)
        ))
        .await
        .ok();
    assert_eq!(tags, json!({"tags": {"m.server_notice": {}}}));

    // Once in, she reads the notice, and later notices come to the same room.
    join(&as_alice, &room_id).await;
    let event = get_event_raw(&as_alice, &room_id, &first).await.ok();
    assert_eq!(event["sender"], "@notices:a.test");
    assert_eq!(event["type"], "m.room.message");
    assert_eq!(event["content"], text("Welcome"));
    let second = as_admin
        .post(
            SEND,
            json!({"user_id": alice.user_id, "content": text("Again")}),
        )
        .await
        .ok()["event_id"]
        .as_str()
        .expect("an event id")
        .to_owned();
    let event = get_event_raw(&as_alice, &room_id, &second).await.ok();
    assert_eq!(event["room_id"], room_id);
    // Another type, and a state event.
    let custom = as_admin
        .post(
            SEND,
            json!({"user_id": alice.user_id, "type": "m.notice.custom", "content": {"x": 1}}),
        )
        .await
        .ok();
    let event = get_event_raw(&as_alice, &room_id, custom["event_id"].as_str().unwrap())
        .await
        .ok();
    assert_eq!(
        (event["type"].clone(), event["content"].clone()),
        (json!("m.notice.custom"), json!({"x": 1}))
    );
    let state = as_admin
        .post(
            SEND,
            json!({"user_id": alice.user_id, "type": "m.room.topic", "state_key": "", "content": {"topic": "Notices"}}),
        )
        .await
        .ok();
    let event = get_event_raw(&as_alice, &room_id, state["event_id"].as_str().unwrap())
        .await
        .ok();
    assert_eq!(event["state_key"], "");
    let messages = messages_raw(&as_alice, &room_id, "dir=b&limit=20")
        .await
        .ok();
    let bodies: Vec<&str> = messages["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["Again", "Welcome"]);

    // The room is the server's: Alice may not speak there.
    let resp = send_raw(&as_alice, &room_id, "m.room.message", text("hi")).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // And the system account logs in with nothing.
    for password in ["notices", "admin", "x"] {
        let login = srv
            .on("a.test")
            .login_raw(login_body("notices", password))
            .await;
        assert_eq!(login.status, 403, "{}", login.text);
    }
}

#[tokio::test]
async fn a_user_who_left_gets_a_new_room() {
    let (srv, admin, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_admin = srv.on("a.test").as_user(&admin);
    let as_alice = srv.on("a.test").as_user(&alice);
    let notice = json!({"user_id": alice.user_id, "content": text("one")});
    as_admin.post(SEND, notice.clone()).await.ok();
    let first = invited_room(&as_alice).await;
    // Still invited: the same room.
    as_admin.post(SEND, notice.clone()).await.ok();
    assert_eq!(invited_room(&as_alice).await, first);
    // Rejected: the next notice makes another room, as Synapse does.
    leave_raw(&as_alice, &first).await.ok();
    let sent = as_admin.post(SEND, notice).await.ok();
    let second = invited_room(&as_alice).await;
    assert_ne!(second, first);
    join(&as_alice, &second).await;
    let event = get_event_raw(&as_alice, &second, sent["event_id"].as_str().unwrap())
        .await
        .ok();
    assert_eq!(event["content"]["body"], "one");
}

#[tokio::test]
async fn the_put_form_sends_once_per_transaction() {
    let (srv, admin, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_admin = srv.on("a.test").as_user(&admin);
    let notice = json!({"user_id": alice.user_id, "content": text("once")});
    let first = as_admin
        .put(&format!("{SEND}/txn1"), notice.clone())
        .await
        .ok();
    let again = as_admin
        .put(&format!("{SEND}/txn1"), notice.clone())
        .await
        .ok();
    assert_eq!(first, again);
    let other = as_admin
        .put(&format!("{SEND}/txn2"), notice.clone())
        .await
        .ok();
    assert_ne!(other["event_id"], first["event_id"]);
    // Another admin's `txn1` is another transaction.
    srv.op()
        .post(
            &format!("{OP}/tenants/a.test/users"),
            json!({"localpart": "bob", "password": "pw-bob-1", "admin": true}),
        )
        .await
        .ok();
    let bob = srv.login("a.test", "bob", "pw-bob-1").await;
    let as_bob = srv.on("a.test").as_user(&bob);
    let bobs = as_bob.put(&format!("{SEND}/txn1"), notice).await.ok();
    assert_ne!(bobs["event_id"], first["event_id"]);

    let as_alice = srv.on("a.test").as_user(&alice);
    let room_id = invited_room(&as_alice).await;
    join(&as_alice, &room_id).await;
    let messages = messages_raw(&as_alice, &room_id, "dir=b&limit=20")
        .await
        .ok();
    let count = messages["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|e| e["content"]["body"] == "once")
        .count();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn bad_notices_are_refused_and_send_nothing() {
    let (srv, admin, admin_b) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_admin = srv.on("a.test").as_user(&admin);
    let content = text("x");

    let resp = as_admin.post(SEND, json!({})).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    assert_eq!(resp.body["error"], "Missing params: ['user_id', 'content']");
    let resp = as_admin.post(SEND, json!({"user_id": alice.user_id})).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    assert_eq!(resp.body["error"], "Missing params: ['content']");
    for body in [
        json!({"user_id": alice.user_id, "content": "x"}),
        json!({"user_id": alice.user_id, "content": content, "type": 5}),
        json!({"user_id": alice.user_id, "content": content, "state_key": 5}),
        json!([]),
    ] {
        assert_error(&as_admin.post(SEND, body).await, 400, "M_BAD_JSON");
    }
    let resp = as_admin
        .post(SEND, json!({"user_id": "alice", "content": content}))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let not_json = as_admin.builder(reqwest::Method::POST, SEND).body("{");
    assert_error(&TestServer::send(not_json).await, 400, "M_NOT_JSON");

    // Users of other servers (another tenant of this process too), and unknown users.
    for user_id in ["@alice:b.test", "@alice:elsewhere.example"] {
        let resp = as_admin
            .post(SEND, json!({"user_id": user_id, "content": content}))
            .await;
        assert_error(&resp, 400, "M_UNKNOWN");
        assert_eq!(
            resp.body["error"],
            "Server notices can only be sent to local users"
        );
    }
    let resp = as_admin
        .post(
            SEND,
            json!({"user_id": "@nobody:a.test", "content": content}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    // `b.test`'s admin can't reach `a.test`'s users.
    let as_admin_b = srv.on("b.test").as_user(&admin_b);
    let resp = as_admin_b
        .post(SEND, json!({"user_id": alice.user_id, "content": content}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");

    // Not admins, no token.
    let as_alice = srv.on("a.test").as_user(&alice);
    let notice = json!({"user_id": alice.user_id, "content": content});
    assert_error(
        &as_alice.post(SEND, notice.clone()).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &as_alice.put(&format!("{SEND}/t"), notice.clone()).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &srv.on("a.test").post(SEND, notice).await,
        401,
        "M_MISSING_TOKEN",
    );

    // Nothing reached Alice.
    let synced = sync(&as_alice, None, None).await;
    assert!(room_ids(&synced, "invite").is_empty(), "{synced}");
}

#[tokio::test]
async fn a_user_called_notices_is_not_the_system_account() {
    let (srv, admin, _) = tenants_with_admins().await;
    // On an open tenant, someone takes the localpart before the first notice.
    let squatter = srv.register("a.test", "notices", "pw-n-1").await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_admin = srv.on("a.test").as_user(&admin);
    let resp = as_admin
        .post(
            SEND,
            json!({"user_id": alice.user_id, "content": text("secret")}),
        )
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(
        resp.body["error"],
        "Server notices are not enabled on this server"
    );
    // The squatter was given no room, and Alice no invite.
    for session in [&squatter, &alice] {
        let synced = sync(&srv.on("a.test").as_user(session), None, None).await;
        assert!(room_ids(&synced, "join").is_empty(), "{synced}");
        assert!(room_ids(&synced, "invite").is_empty(), "{synced}");
    }
}
