//! `GET /devices`, `GET|PUT|DELETE /devices/{deviceId}`, `POST /delete_devices`.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn list_get_and_rename_devices() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    let api = srv.on("localhost");
    let mut body = login_body("alice", "pw-alice-1");
    body["initial_device_display_name"] = "phone".into();
    let a = api.session_from(api.login_raw(body).await);
    let b = api.login("alice", "pw-alice-1").await;
    let me = api.as_user(&a);

    assert_error(
        &api.get(&format!("{CS}/devices")).await,
        401,
        "M_MISSING_TOKEN",
    );
    let list = me.get(&format!("{CS}/devices")).await.ok();
    let devices = list["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(devices.len(), 2, "{list}");
    for id in [&a.device_id, &b.device_id] {
        assert!(
            devices.iter().any(|d| d["device_id"] == id.as_str()),
            "{id} missing: {list}"
        );
    }

    let dev = me
        .get(&format!("{CS}/devices/{}", enc(&a.device_id)))
        .await
        .ok();
    assert_eq!(dev["device_id"], a.device_id.as_str());
    assert_eq!(dev["display_name"], "phone", "{dev}");
    if let Some(ts) = dev.get("last_seen_ts").filter(|v| !v.is_null()) {
        assert!(ts.as_i64().unwrap() > 0, "{dev}");
    }
    assert_error(
        &me.get(&format!("{CS}/devices/NOSUCHDEVICE")).await,
        404,
        "M_NOT_FOUND",
    );

    let body = me
        .put(
            &format!("{CS}/devices/{}", enc(&b.device_id)),
            json!({"display_name": "laptop"}),
        )
        .await
        .ok();
    assert_eq!(body, json!({}));
    let dev = me
        .get(&format!("{CS}/devices/{}", enc(&b.device_id)))
        .await
        .ok();
    assert_eq!(dev["display_name"], "laptop", "{dev}");
    let resp = me
        .put(
            &format!("{CS}/devices/NOSUCHDEVICE"),
            json!({"display_name": "x"}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn devices_of_other_users_are_invisible() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let path = format!("{CS}/devices/{}", enc(&alice.device_id));
    assert_error(&api.as_user(&bob).get(&path).await, 404, "M_NOT_FOUND");
    assert_error(
        &api.as_user(&bob)
            .put(&path, json!({"display_name": "pwned"}))
            .await,
        404,
        "M_NOT_FOUND",
    );
    let list = api.as_user(&bob).get(&format!("{CS}/devices")).await.ok();
    assert_eq!(list["devices"].as_array().unwrap().len(), 1, "{list}");
    // Bob deleting alice's device id (with his own password) doesn't touch alice.
    let resp = api
        .as_user(&bob)
        .uia(
            Method::DELETE,
            &path,
            json!({}),
            &[password_stage("bob", "pw-bob-1")],
        )
        .await;
    assert!(
        resp.status == 200 || resp.status == 404,
        "{}: {}",
        resp.status,
        resp.text
    );
    api.as_user(&alice).whoami().await.ok();
    api.as_user(&bob).whoami().await.ok();
}

#[tokio::test]
async fn delete_device_requires_uia() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let b = api.login("alice", "pw-alice-1").await;
    let path = format!("{CS}/devices/{}", enc(&b.device_id));

    let first = api.as_user(&a).delete_json(&path, json!({})).await;
    assert_uia(&first);
    assert!(
        uia_flows(&first)
            .iter()
            .any(|f| f.contains(&"m.login.password".to_owned())),
        "{}",
        first.text
    );
    api.as_user(&b).whoami().await.ok(); // still there

    let resp = api
        .as_user(&a)
        .uia(
            Method::DELETE,
            &path,
            json!({}),
            &[password_stage("alice", "wrong-pw")],
        )
        .await;
    assert_eq!(
        (resp.status, resp.errcode()),
        (401, "M_FORBIDDEN"),
        "{}",
        resp.text
    );
    api.as_user(&b).whoami().await.ok();

    let resp = api
        .as_user(&a)
        .uia(
            Method::DELETE,
            &path,
            json!({}),
            &[password_stage("alice", "pw-alice-1")],
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
    assert_error(&api.as_user(&b).whoami().await, 401, "M_UNKNOWN_TOKEN");
    assert_error(&api.as_user(&a).get(&path).await, 404, "M_NOT_FOUND");
    api.as_user(&a).whoami().await.ok();
}

#[tokio::test]
async fn delete_devices_in_bulk_requires_uia() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let b = api.login("alice", "pw-alice-1").await;
    let c = api.login("alice", "pw-alice-1").await;
    let path = format!("{CS}/delete_devices");
    let body = json!({"devices": [b.device_id, c.device_id]});

    let first = api.as_user(&a).post(&path, body.clone()).await;
    assert_uia(&first);
    api.as_user(&b).whoami().await.ok();

    let resp = api
        .as_user(&a)
        .uia(
            Method::POST,
            &path,
            body,
            &[password_stage("alice", "pw-alice-1")],
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
    for s in [&b, &c] {
        assert_error(&api.as_user(s).whoami().await, 401, "M_UNKNOWN_TOKEN");
    }
    let list = api.as_user(&a).get(&format!("{CS}/devices")).await.ok();
    let ids: Vec<_> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(a.device_id)], "{list}");
}

#[tokio::test]
async fn unset_device_fields_are_omitted_not_null() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    // Registered without `initial_device_display_name`: the device has no name.
    let alice = api.register("alice", "pw-alice-1").await;
    let me = api.as_user(&alice);
    let list = me.get(&format!("{CS}/devices")).await.ok();
    let one = me
        .get(&format!("{CS}/devices/{}", enc(&alice.device_id)))
        .await
        .ok();
    let devices = list["devices"].as_array().cloned().unwrap_or_default();
    assert_eq!(devices.len(), 1, "{list}");
    for device in devices.iter().chain([&one]) {
        let fields = device.as_object().unwrap_or_else(|| panic!("{device}"));
        assert!(!fields.contains_key("display_name"), "{device}");
        assert!(fields.values().all(|v| !v.is_null()), "{device}");
        assert_eq!(device["device_id"], alice.device_id.as_str());
    }
}
