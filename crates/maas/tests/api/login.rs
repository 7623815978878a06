//! `GET|POST /login`, `whoami`, `logout`, `logout/all`.

use serde_json::{Value, json};

use crate::harness::*;

async fn server_with_alice() -> TestServer {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    srv
}

async fn device_ids(api: &Api<'_>, s: &Session) -> Vec<String> {
    let body = api.as_user(s).get(&format!("{CS}/devices")).await.ok();
    body["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn login_flows_offer_password() {
    let srv = TestServer::start().await;
    let body = srv.on("localhost").get(&format!("{CS}/login")).await.ok();
    let flows = body["flows"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert!(
        flows.iter().any(|f| f["type"] == "m.login.password"),
        "{body}"
    );
}

#[tokio::test]
async fn login_with_localpart_full_id_and_legacy_user() {
    let srv = server_with_alice().await;
    let api = srv.on("localhost");

    let a = api.login("alice", "pw-alice-1").await;
    assert_eq!(a.user_id, "@alice:localhost");
    let b = api.login("@alice:localhost", "pw-alice-1").await;
    assert_eq!(b.user_id, "@alice:localhost");
    let c = api.session_from(
        api.login_raw(
            json!({"type": "m.login.password", "user": "alice", "password": "pw-alice-1"}),
        )
        .await,
    );
    assert_eq!(c.user_id, "@alice:localhost");

    // Each login is a new device with its own token.
    let mut devs = [&a, &b, &c].map(|s| s.device_id.clone()).to_vec();
    devs.sort();
    devs.dedup();
    assert_eq!(devs.len(), 3);
    let tokens: std::collections::HashSet<_> = [&a, &b, &c]
        .iter()
        .map(|s| s.access_token.clone())
        .collect();
    assert_eq!(tokens.len(), 3);
    for s in [&a, &b, &c] {
        let me = api.as_user(s).whoami().await.ok();
        assert_eq!(me["user_id"], "@alice:localhost");
        assert_eq!(me["device_id"], s.device_id.as_str());
    }
    let mut listed = device_ids(&api, &a).await;
    listed.sort();
    assert_eq!(listed, devs);
}

#[tokio::test]
async fn login_failures_are_403_forbidden() {
    let srv = server_with_alice().await;
    let api = srv.on("localhost");
    assert_error(
        &api.login_raw(login_body("alice", "wrong")).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &api.login_raw(login_body("nobody", "pw-alice-1")).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &api.login_raw(login_body("@alice:localhost", "")).await,
        403,
        "M_FORBIDDEN",
    );
    // A user id of another server is not alice.
    let resp = api
        .login_raw(login_body("@alice:elsewhere.test", "pw-alice-1"))
        .await;
    assert!(
        resp.status == 403 || resp.status == 400,
        "{}: {}",
        resp.status,
        resp.text
    );
    // Unknown login type.
    let resp = api
        .login_raw(json!({"type": "m.login.bogus", "user": "alice"}))
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    // No device was created by any of the failures.
    let s = api.login("alice", "pw-alice-1").await;
    assert_eq!(device_ids(&api, &s).await, vec![s.device_id.clone()]);
}

#[tokio::test]
async fn login_keeps_device_id_and_display_name() {
    let srv = server_with_alice().await;
    let api = srv.on("localhost");
    let mut body = login_body("alice", "pw-alice-1");
    body["device_id"] = "LAPTOP01".into();
    body["initial_device_display_name"] = "Alice's laptop".into();
    let s = api.session_from(api.login_raw(body.clone()).await);
    assert_eq!(s.device_id, "LAPTOP01");
    let me = api.as_user(&s).whoami().await.ok();
    assert_eq!(me["device_id"], "LAPTOP01");

    let devices = api.as_user(&s).get(&format!("{CS}/devices")).await.ok();
    let list = devices["devices"].as_array().unwrap();
    let d = list
        .iter()
        .find(|d| d["device_id"] == "LAPTOP01")
        .unwrap_or_else(|| panic!("{devices}"));
    assert_eq!(d["display_name"], "Alice's laptop", "{devices}");

    // Logging in again with the same device id reuses the device.
    let s2 = api.session_from(api.login_raw(body).await);
    assert_eq!(s2.device_id, "LAPTOP01");
    let ids = device_ids(&api, &s2).await;
    assert_eq!(ids, vec!["LAPTOP01".to_owned()]);
}

#[tokio::test]
async fn whoami_reports_user_and_device() {
    let srv = server_with_alice().await;
    let api = srv.on("localhost");
    let s = api.login("alice", "pw-alice-1").await;
    let me = api.as_user(&s).whoami().await.ok();
    assert_eq!(me["user_id"], "@alice:localhost");
    assert_eq!(me["device_id"], s.device_id.as_str());
    assert!(
        me.get("is_guest").is_none_or(|g| g == &Value::Bool(false)),
        "{me}"
    );
}

#[tokio::test]
async fn logout_invalidates_token_and_removes_device() {
    let srv = server_with_alice().await;
    let api = srv.on("localhost");
    let a = api.login("alice", "pw-alice-1").await;
    let b = api.login("alice", "pw-alice-1").await;

    let body = api
        .as_user(&a)
        .post(&format!("{CS}/logout"), json!({}))
        .await
        .ok();
    assert_eq!(body, json!({}));
    assert_error(&api.as_user(&a).whoami().await, 401, "M_UNKNOWN_TOKEN");
    assert_error(
        &api.as_user(&a)
            .post(&format!("{CS}/logout"), json!({}))
            .await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    // The other device is untouched; the logged-out one is gone.
    api.as_user(&b).whoami().await.ok();
    assert_eq!(device_ids(&api, &b).await, vec![b.device_id.clone()]);
    let resp = api
        .as_user(&b)
        .get(&format!("{CS}/devices/{}", enc(&a.device_id)))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn logout_all_invalidates_every_token() {
    let srv = server_with_alice().await;
    srv.create_user("localhost", "bob", "pw-bob-1").await;
    let api = srv.on("localhost");
    let sessions = [
        api.login("alice", "pw-alice-1").await,
        api.login("alice", "pw-alice-1").await,
        api.login("alice", "pw-alice-1").await,
    ];
    let bob = api.login("bob", "pw-bob-1").await;

    let body = api
        .as_user(&sessions[1])
        .post(&format!("{CS}/logout/all"), json!({}))
        .await
        .ok();
    assert_eq!(body, json!({}));
    for s in &sessions {
        assert_error(&api.as_user(s).whoami().await, 401, "M_UNKNOWN_TOKEN");
    }
    // Other users are untouched.
    api.as_user(&bob).whoami().await.ok();
    // Alice can log in again, with only the new device left.
    let s = api.login("alice", "pw-alice-1").await;
    assert_eq!(device_ids(&api, &s).await, vec![s.device_id.clone()]);
}
