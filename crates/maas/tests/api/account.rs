//! `POST /account/password` and `POST /account/deactivate` (user-interactive auth with
//! `m.login.password`), `GET /account/3pid`.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn change_password_with_uia() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "old-pw-1").await;
    let b = api.login("alice", "old-pw-1").await;
    let path = format!("{CS}/account/password");
    let me = api.as_user(&a);

    assert_error(
        &api.post(&path, json!({"new_password": "new-pw-1"})).await,
        401,
        "M_MISSING_TOKEN",
    );

    let first = me.post(&path, json!({"new_password": "new-pw-1"})).await;
    let session = assert_uia(&first);
    assert!(
        uia_flows(&first)
            .iter()
            .any(|f| f == &vec!["m.login.password".to_owned()]),
        "{}",
        first.text
    );

    // Wrong password: 401 with an errcode, and the flows again.
    let mut auth = password_stage("alice", "wrong");
    auth["session"] = session.clone().into();
    let resp = me
        .post(&path, json!({"new_password": "new-pw-1", "auth": auth}))
        .await;
    assert_eq!(resp.status, 401, "{}", resp.text);
    assert_eq!(resp.errcode(), "M_FORBIDDEN", "{}", resp.text);
    assert_uia(&resp);
    api.login("alice", "old-pw-1").await; // unchanged

    let mut auth = password_stage("alice", "old-pw-1");
    auth["session"] = resp.body["session"].clone();
    let body = me
        .post(&path, json!({"new_password": "new-pw-1", "auth": auth}))
        .await
        .ok();
    assert_eq!(body, json!({}));

    assert_error(
        &api.login_raw(login_body("alice", "old-pw-1")).await,
        403,
        "M_FORBIDDEN",
    );
    api.login("alice", "new-pw-1").await;
    // The requesting device stays logged in, other devices are logged out.
    me.whoami().await.ok();
    assert_error(&api.as_user(&b).whoami().await, 401, "M_UNKNOWN_TOKEN");
    let resp = me.get(&format!("{CS}/devices/{}", enc(&b.device_id))).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn change_password_keeping_other_devices() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "old-pw-1").await;
    let b = api.login("alice", "old-pw-1").await;
    let resp = api
        .as_user(&a)
        .uia(
            Method::POST,
            &format!("{CS}/account/password"),
            json!({"new_password": "new-pw-1", "logout_devices": false}),
            &[password_stage("@alice:localhost", "old-pw-1")],
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
    api.as_user(&b).whoami().await.ok();
    api.as_user(&a).whoami().await.ok();
    api.login("alice", "new-pw-1").await;
}

#[tokio::test]
async fn uia_session_is_bound_to_its_user() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    // Bob can't pass alice's password stage for his own request.
    let resp = api
        .as_user(&bob)
        .uia(
            Method::POST,
            &format!("{CS}/account/password"),
            json!({"new_password": "hacked"}),
            &[password_stage("alice", "pw-alice-1")],
        )
        .await;
    assert!(
        resp.status == 401 || resp.status == 403,
        "authenticated as another user: {}",
        resp.text
    );
    api.login("bob", "pw-bob-1").await;
    assert_error(
        &api.login_raw(login_body("bob", "hacked")).await,
        403,
        "M_FORBIDDEN",
    );
    api.login("alice", "pw-alice-1").await;
    api.as_user(&alice).whoami().await.ok();
}

#[tokio::test]
async fn deactivate_account_with_uia() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let b = api.login("alice", "pw-alice-1").await;
    let path = format!("{CS}/account/deactivate");

    let first = api.as_user(&a).post(&path, json!({})).await;
    assert_uia(&first);
    api.as_user(&a).whoami().await.ok(); // nothing happened yet

    let resp = api
        .as_user(&a)
        .uia(
            Method::POST,
            &path,
            json!({}),
            &[password_stage("alice", "wrong")],
        )
        .await;
    assert_eq!(resp.status, 401, "{}", resp.text);
    assert_eq!(resp.errcode(), "M_FORBIDDEN", "{}", resp.text);
    api.as_user(&a).whoami().await.ok();

    let resp = api
        .as_user(&a)
        .uia(
            Method::POST,
            &path,
            json!({}),
            &[password_stage("alice", "pw-alice-1")],
        )
        .await;
    let body = resp.ok();
    let unbind = body["id_server_unbind_result"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(["success", "no-support"].contains(&unbind), "{body}");

    assert_error(&api.as_user(&a).whoami().await, 401, "M_UNKNOWN_TOKEN");
    assert_error(&api.as_user(&b).whoami().await, 401, "M_UNKNOWN_TOKEN");
    assert_error(
        &api.login_raw(login_body("alice", "pw-alice-1")).await,
        403,
        "M_USER_DEACTIVATED",
    );
    // The user id is not given out again.
    let resp = api
        .get(&format!("{CS}/register/available?username=alice"))
        .await;
    assert_error(&resp, 400, "M_USER_IN_USE");
    let resp = api
        .register_raw(json!({"username": "alice", "password": "pw-2"}))
        .await;
    assert_error(&resp, 400, "M_USER_IN_USE");
    let user = srv
        .op()
        .get(&format!("{OP}/tenants/localhost/users/alice"))
        .await
        .ok();
    assert_eq!(user["deactivated"], true, "{user}");
}

#[tokio::test]
async fn threepids_are_empty() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    assert_error(
        &api.get(&format!("{CS}/account/3pid")).await,
        401,
        "M_MISSING_TOKEN",
    );
    let a = api.register("alice", "pw-alice-1").await;
    let body = api
        .as_user(&a)
        .get(&format!("{CS}/account/3pid"))
        .await
        .ok();
    assert_eq!(body, json!({"threepids": []}));
}
