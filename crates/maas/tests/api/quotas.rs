//! A tenant's quotas as the operator sets them and its users meet them: rooms, storage
//! (database and media together) and the message rate, each refused with the spec's error and
//! changing nothing, and the usage the operator API reports.

use serde_json::{Value, json};

use crate::harness::*;
use crate::media::upload;
use crate::room_support::{create_room, create_room_raw, send_raw, send_text};

const OP: &str = "/_maas/operator/v1";

/// A server with tenant `q.test` and a user of it.
async fn tenant_with_user() -> (TestServer, Session) {
    let srv = TestServer::start().await;
    srv.create_tenant("q.test", &["q.test"], "open").await;
    let alice = srv.register("q.test", "alice", "pw-alice-1").await;
    (srv, alice)
}

fn assert_resource_limit(resp: &Resp) {
    assert_error(resp, 403, "M_RESOURCE_LIMIT_EXCEEDED");
    let contact = resp.body["admin_contact"].as_str().unwrap_or_default();
    assert!(contact.starts_with("https://q.test"), "{}", resp.text);
}

#[tokio::test]
async fn quotas_and_usage_are_shown_and_checked() {
    let (srv, _alice) = tenant_with_user().await;
    let tenant = srv.get_tenant("q.test").await;
    assert_eq!(
        tenant["quotas"],
        json!({"max_rooms": null, "max_storage_bytes": null, "max_messages_per_second": null}),
        "{tenant}"
    );
    let usage = &tenant["usage"];
    // The first admin and alice.
    assert_eq!(usage["users"], 2, "{tenant}");
    assert_eq!(usage["rooms"], 0, "{tenant}");
    assert!(
        usage["database_bytes"].as_u64().unwrap_or(0) > 0,
        "{tenant}"
    );
    assert_eq!(usage["media_bytes"], 0, "{tenant}");
    assert_eq!(usage["storage_bytes"], usage["database_bytes"], "{tenant}");

    let patch = json!({"max_rooms": 3, "max_storage_bytes": 1 << 30, "max_messages_per_second": 5});
    let tenant = srv.patch_tenant("q.test", patch).await;
    assert_eq!(
        tenant["quotas"],
        json!({"max_rooms": 3, "max_storage_bytes": 1 << 30, "max_messages_per_second": 5}),
        "{tenant}"
    );

    // A message rate of 0 would stop the tenant without saying so: suspending does that.
    let resp = srv
        .op()
        .patch(
            &format!("{OP}/tenants/q.test"),
            json!({"max_messages_per_second": 0}),
        )
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    assert_eq!(
        srv.get_tenant("q.test").await["quotas"]["max_messages_per_second"],
        5
    );
    let resp = srv
        .op()
        .patch(&format!("{OP}/tenants/q.test"), json!({"max_rooms": -1}))
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text);
}

#[tokio::test]
async fn the_room_quota_refuses_new_rooms() {
    let (srv, alice) = tenant_with_user().await;
    let api = srv.on("q.test").as_user(&alice);
    srv.patch_tenant("q.test", json!({"max_rooms": 1})).await;
    create_room(&api, json!({"name": "first"})).await;

    assert_resource_limit(&create_room_raw(&api, json!({"name": "second"})).await);
    let tenant = srv.get_tenant("q.test").await;
    assert_eq!(tenant["usage"]["rooms"], 1, "{tenant}");
    let joined = api.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert_eq!(joined["joined_rooms"].as_array().map(Vec::len), Some(1));

    // Lifting the quota lets rooms through again.
    srv.patch_tenant("q.test", json!({"max_rooms": null})).await;
    create_room(&api, json!({"name": "second"})).await;
}

#[tokio::test]
async fn the_storage_quota_refuses_new_content() {
    let (srv, alice) = tenant_with_user().await;
    let api = srv.on("q.test").as_user(&alice);
    let room_id = create_room(&api, json!({})).await;
    // Any database is larger than one byte.
    srv.patch_tenant("q.test", json!({"max_storage_bytes": 1}))
        .await;

    let before = api
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b",
            enc(&room_id)
        ))
        .await
        .ok();
    let resp = send_raw(
        &api,
        &room_id,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "x"}),
    )
    .await;
    assert_resource_limit(&resp);
    assert_resource_limit(&create_room_raw(&api, json!({})).await);
    let uploaded = upload(&api, b"bytes".to_vec(), "text/plain", None).await;
    assert_resource_limit(&uploaded.resp);
    let after = api
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b",
            enc(&room_id)
        ))
        .await
        .ok();
    let ids = |page: &Value| {
        page["chunk"]
            .as_array()
            .map(|c| c.iter().map(|e| e["event_id"].clone()).collect::<Vec<_>>())
    };
    assert_eq!(ids(&before), ids(&after), "nothing was stored");
    assert_eq!(srv.get_tenant("q.test").await["usage"]["media_bytes"], 0);

    srv.patch_tenant("q.test", json!({"max_storage_bytes": null}))
        .await;
    send_text(&api, &room_id, "fits again").await;
}

#[tokio::test]
async fn the_message_rate_is_limited_for_the_tenant() {
    let (srv, alice) = tenant_with_user().await;
    let api = srv.on("q.test").as_user(&alice);
    let room_id = create_room(&api, json!({})).await;
    srv.patch_tenant("q.test", json!({"max_messages_per_second": 1}))
        .await;

    // One event a second: of several sent back to back, some are refused.
    let mut sent = Vec::new();
    let mut refused = None;
    for i in 0..6 {
        let content = json!({"msgtype": "m.text", "body": format!("m{i}")});
        let resp = send_raw(&api, &room_id, "m.room.message", content).await;
        match resp.status {
            200 => sent.push(
                resp.body["event_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            _ => refused = Some(resp),
        }
    }
    let refused = refused.expect("a refused send");
    assert_error(&refused, 429, "M_LIMIT_EXCEEDED");
    assert!(
        refused.body["retry_after_ms"].as_u64().is_some(),
        "{}",
        refused.text
    );

    // Only the accepted ones are in the room.
    let messages = api
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            enc(&room_id)
        ))
        .await
        .ok();
    let stored: Vec<&str> = messages["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(stored.len(), sent.len(), "{messages}");
}

#[tokio::test]
async fn the_user_quota_is_a_resource_limit() {
    let (srv, _alice) = tenant_with_user().await;
    srv.patch_tenant("q.test", json!({"max_users": 2})).await;
    let resp = srv
        .on("q.test")
        .register_raw(json!({"username": "bob", "password": "pw-bob-1"}))
        .await;
    assert_resource_limit(&resp);
    let tenant: Value = srv.get_tenant("q.test").await;
    assert_eq!(tenant["usage"]["users"], 2, "{tenant}");
}
