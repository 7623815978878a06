//! Rate limits on login and registration: `429 M_LIMIT_EXCEEDED` with `retry_after_ms`.

use serde_json::json;

use crate::harness::*;

fn limited() -> Options {
    Options::default()
        .with_rate_limits()
        .env("MAAS_RATE_LIMITS__LOGIN_PER_IP__BURST", "3")
        .env("MAAS_RATE_LIMITS__LOGIN_PER_IP__PER_SECOND", "0.01")
        .env("MAAS_RATE_LIMITS__LOGIN_PER_USER__BURST", "3")
        .env("MAAS_RATE_LIMITS__LOGIN_PER_USER__PER_SECOND", "0.01")
        .env("MAAS_RATE_LIMITS__REGISTER_PER_IP__BURST", "3")
        .env("MAAS_RATE_LIMITS__REGISTER_PER_IP__PER_SECOND", "0.01")
}

#[track_caller]
fn assert_limited(resp: &Resp) {
    assert_error(resp, 429, "M_LIMIT_EXCEEDED");
    let retry = &resp.body["retry_after_ms"];
    assert!(
        retry.is_u64() && retry.as_u64().unwrap() > 0,
        "retry_after_ms must be a positive integer: {}",
        resp.text
    );
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let srv = TestServer::start_with(limited()).await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    let api = srv.on("localhost");
    for _ in 0..3 {
        let resp = api.login_raw(login_body("alice", "wrong")).await;
        assert_error(&resp, 403, "M_FORBIDDEN");
    }
    let resp = api.login_raw(login_body("alice", "wrong")).await;
    assert_limited(&resp);
    // While limited, even the right password is refused (no oracle for guessing).
    let resp = api.login_raw(login_body("alice", "pw-alice-1")).await;
    assert_limited(&resp);
    // Other endpoints are not limited.
    api.get("/_matrix/client/versions").await.ok();
}

#[tokio::test]
async fn registrations_are_rate_limited_per_ip() {
    let srv = TestServer::start_with(limited()).await;
    let api = srv.on("localhost");
    let mut registered = 0;
    let mut limited = None;
    for i in 0..10 {
        let resp = api
            .register_raw(json!({"username": format!("user{i}"), "password": "pw-1"}))
            .await;
        if resp.status == 429 {
            limited = Some(resp);
            break;
        }
        api.session_from(resp);
        registered += 1;
    }
    let resp = limited.expect("10 registrations from one IP were never rate limited");
    assert_limited(&resp);
    assert!(
        registered >= 1,
        "the very first registration was already limited"
    );
    assert!(
        registered <= 3,
        "burst is 3, but {registered} registrations got through"
    );
}

#[tokio::test]
async fn rate_limits_can_be_disabled() {
    let mut opts = limited();
    opts.rate_limits = false; // MAAS_RATE_LIMITS__ENABLED=false, burst settings still present
    let srv = TestServer::start_with(opts).await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    let api = srv.on("localhost");
    for _ in 0..8 {
        assert_error(
            &api.login_raw(login_body("alice", "wrong")).await,
            403,
            "M_FORBIDDEN",
        );
    }
    api.login("alice", "pw-alice-1").await;
    for i in 0..5 {
        api.register(&format!("user{i}"), "pw-1").await;
    }
}

fn behind_proxy(per_ip: u32, per_user: u32) -> Options {
    Options::default()
        .with_rate_limits()
        .env("MAAS_SERVER__BEHIND_PROXY", "true")
        .env("MAAS_RATE_LIMITS__LOGIN_PER_IP__BURST", &per_ip.to_string())
        .env("MAAS_RATE_LIMITS__LOGIN_PER_IP__PER_SECOND", "0.01")
        .env(
            "MAAS_RATE_LIMITS__LOGIN_PER_USER__BURST",
            &per_user.to_string(),
        )
        .env("MAAS_RATE_LIMITS__LOGIN_PER_USER__PER_SECOND", "0.01")
        .env(
            "MAAS_RATE_LIMITS__REGISTER_PER_IP__BURST",
            &per_ip.to_string(),
        )
        .env("MAAS_RATE_LIMITS__REGISTER_PER_IP__PER_SECOND", "0.01")
}

async fn login_from(api: &Api<'_>, ip: &str, user: &str, password: &str) -> Resp {
    TestServer::send(
        api.builder(reqwest::Method::POST, &format!("{CS}/login"))
            .header("X-Forwarded-For", format!("{ip}, 10.255.255.1"))
            .json(&login_body(user, password)),
    )
    .await
}

#[tokio::test]
async fn login_limit_per_user_across_ips() {
    let srv = TestServer::start_with(behind_proxy(100, 3)).await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    srv.create_user("localhost", "bob", "pw-bob-1").await;
    let api = srv.on("localhost");
    for i in 1..=3 {
        let resp = login_from(&api, &format!("10.0.0.{i}"), "alice", "wrong").await;
        assert_error(&resp, 403, "M_FORBIDDEN");
    }
    // A fourth address doesn't help: the limit is on the user.
    assert_limited(&login_from(&api, "10.0.0.4", "alice", "wrong").await);
    assert_limited(&login_from(&api, "10.0.0.5", "@alice:localhost", "pw-alice-1").await);
    // Another user from the same addresses is fine.
    let resp = login_from(&api, "10.0.0.1", "bob", "pw-bob-1").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
}

#[tokio::test]
async fn login_limit_per_ip_behind_proxy() {
    let srv = TestServer::start_with(behind_proxy(3, 100)).await;
    for u in ["u1", "u2", "u3", "u4", "u5"] {
        srv.create_user("localhost", u, "pw-1").await;
    }
    let api = srv.on("localhost");
    for u in ["u1", "u2", "u3"] {
        assert_error(
            &login_from(&api, "10.0.0.1", u, "wrong").await,
            403,
            "M_FORBIDDEN",
        );
    }
    assert_limited(&login_from(&api, "10.0.0.1", "u4", "wrong").await);
    // Another client address (as told by the proxy) has its own budget.
    let resp = login_from(&api, "10.0.0.2", "u5", "pw-1").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_behind_proxy() {
    let srv = TestServer::start_with(limited()).await;
    let api = srv.on("localhost");
    for i in 1..=3 {
        let resp = login_from(&api, &format!("10.0.0.{i}"), &format!("user{i}"), "wrong").await;
        assert_error(&resp, 403, "M_FORBIDDEN");
    }
    // Spoofed addresses don't buy new attempts.
    assert_limited(&login_from(&api, "10.0.0.4", "user4", "wrong").await);
}

#[tokio::test]
async fn registration_limit_is_per_ip_behind_proxy() {
    let srv = TestServer::start_with(behind_proxy(3, 100)).await;
    let api = srv.on("localhost");
    let register_from = |ip: &'static str, name: String| {
        let api = api.clone();
        async move {
            let path = format!("{CS}/register");
            let body = json!({"username": name, "password": "pw-1"});
            let first = TestServer::send(
                api.builder(reqwest::Method::POST, &path)
                    .header("X-Forwarded-For", ip)
                    .json(&body),
            )
            .await;
            if first.status != 401 {
                return first;
            }
            let mut body = body;
            body["auth"] = json!({"type": "m.login.dummy", "session": first.body["session"]});
            TestServer::send(
                api.builder(reqwest::Method::POST, &path)
                    .header("X-Forwarded-For", ip)
                    .json(&body),
            )
            .await
        }
    };
    let mut limited_resp = None;
    for i in 0..10 {
        let resp = register_from("10.0.0.1", format!("a{i}")).await;
        if resp.status == 429 {
            limited_resp = Some(resp);
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.text);
    }
    assert_limited(&limited_resp.expect("registrations from one address never limited"));
    let resp = register_from("10.0.0.2", "b0".to_owned()).await;
    assert_eq!(
        resp.status, 200,
        "another address must still register: {}",
        resp.text
    );
}
