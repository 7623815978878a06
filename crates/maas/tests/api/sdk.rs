//! matrix-sdk as a real client against two tenants of one server: `localhost` (reached as
//! `http://localhost:PORT`) and `second.test` (reached as `http://127.0.0.1:PORT`).

use std::future::Future;
use std::time::Duration;

use matrix_sdk::Client;
use matrix_sdk::ruma::api::client::account::register;
use matrix_sdk::ruma::api::client::uiaa;
use serde_json::json;

use crate::harness::*;

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}

async fn client(url: String) -> Client {
    bounded(
        "building client",
        Client::builder().homeserver_url(url).build(),
    )
    .await
    .expect("building client")
}

/// Default tenant on `localhost` only; `second.test` also owns `127.0.0.1`.
async fn setup() -> TestServer {
    let srv = TestServer::start().await;
    let t = srv
        .patch_tenant("localhost", json!({"hosts": ["localhost"]}))
        .await;
    assert_eq!(t["hosts"], json!(["localhost"]), "{t}");
    srv.create_tenant("second.test", &["second.test", "127.0.0.1"], "open")
        .await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    srv.create_user("second.test", "alice", "pw-alice-2").await;
    srv
}

fn register_request(
    username: &str,
    password: &str,
    session: Option<String>,
) -> register::v3::Request {
    let mut req = register::v3::Request::new();
    req.username = Some(username.to_owned());
    req.password = Some(password.to_owned());
    req.initial_device_display_name = Some("matrix-sdk test".to_owned());
    if let Some(session) = session {
        let mut dummy = uiaa::Dummy::new();
        dummy.session = Some(session);
        req.auth = Some(uiaa::AuthData::Dummy(dummy));
    }
    req
}

#[tokio::test]
async fn matrix_sdk_login_and_whoami_on_two_tenants() {
    let srv = setup().await;

    let a = client(format!("http://localhost:{}", srv.port)).await;
    let resp = bounded(
        "login on localhost",
        a.matrix_auth()
            .login_username("alice", "pw-alice-1")
            .initial_device_display_name("sdk on localhost")
            .send(),
    )
    .await
    .expect("login on localhost");
    assert_eq!(resp.user_id.as_str(), "@alice:localhost");
    let who = bounded("whoami", a.whoami())
        .await
        .expect("whoami on localhost");
    assert_eq!(who.user_id.as_str(), "@alice:localhost");
    assert_eq!(
        who.device_id.as_deref().map(|d| d.as_str()),
        Some(resp.device_id.as_str())
    );

    let b = client(format!("http://127.0.0.1:{}", srv.port)).await;
    let resp_b = bounded(
        "login on second.test",
        b.matrix_auth().login_username("alice", "pw-alice-2").send(),
    )
    .await
    .expect("login on second.test");
    assert_eq!(resp_b.user_id.as_str(), "@alice:second.test");
    let who = bounded("whoami", b.whoami())
        .await
        .expect("whoami on second.test");
    assert_eq!(who.user_id.as_str(), "@alice:second.test");

    // The password of one tenant doesn't open the other.
    let c = client(format!("http://127.0.0.1:{}", srv.port)).await;
    let err = bounded(
        "bad login",
        c.matrix_auth().login_username("alice", "pw-alice-1").send(),
    )
    .await;
    assert!(err.is_err(), "localhost password accepted on second.test");

    // The tokens are tenant-bound, and the display name arrived.
    assert_error(
        &srv.on("127.0.0.1").auth(&resp.access_token).whoami().await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &srv.on("localhost")
            .auth(&resp_b.access_token)
            .whoami()
            .await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    let dev = srv
        .on("localhost")
        .auth(&resp.access_token)
        .get(&format!("{CS}/devices/{}", enc(resp.device_id.as_str())))
        .await
        .ok();
    assert_eq!(dev["display_name"], "sdk on localhost", "{dev}");

    // Logout through the SDK kills the token.
    bounded("logout", a.matrix_auth().logout())
        .await
        .expect("logout");
    assert_error(
        &srv.on("localhost").auth(&resp.access_token).whoami().await,
        401,
        "M_UNKNOWN_TOKEN",
    );
}

#[tokio::test]
async fn matrix_sdk_registers_with_dummy_uia() {
    let srv = setup().await;
    let c = client(format!("http://127.0.0.1:{}", srv.port)).await;

    let err = bounded(
        "register",
        c.matrix_auth()
            .register(register_request("carol", "pw-carol-1", None)),
    )
    .await
    .expect_err("registration without auth must ask for UIA");
    let info = err
        .as_uiaa_response()
        .unwrap_or_else(|| panic!("not a UIA response: {err:?}"));
    assert!(
        info.flows
            .iter()
            .any(|f| f.stages.iter().any(|s| s.as_str() == "m.login.dummy")),
        "{:?}",
        info.flows
    );
    let session = info.session.clone().expect("UIA session");

    let resp = bounded(
        "register",
        c.matrix_auth()
            .register(register_request("carol", "pw-carol-1", Some(session))),
    )
    .await
    .expect("registration with m.login.dummy");
    assert_eq!(resp.user_id.as_str(), "@carol:second.test");
    assert!(resp.access_token.is_some());
    assert_eq!(
        c.user_id().map(|u| u.as_str()),
        Some("@carol:second.test"),
        "client not logged in after register"
    );
    let who = bounded("whoami", c.whoami()).await.expect("whoami");
    assert_eq!(who.user_id.as_str(), "@carol:second.test");

    // carol exists on second.test only.
    let body = srv
        .on("localhost")
        .get(&format!("{CS}/register/available?username=carol"))
        .await
        .ok();
    assert_eq!(body["available"], true);
    srv.login("127.0.0.1", "carol", "pw-carol-1").await;
}
