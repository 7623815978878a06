//! Registration with the `token` policy: `m.login.registration_token` (spec v1.15 /
//! MSC3231), the validity endpoint, uses and expiry.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

const VALIDITY: &str = "/_matrix/client/v1/register/m.login.registration_token/validity";

async fn token_server() -> TestServer {
    let srv = TestServer::start().await;
    let tenant = srv.create_tenant("tok.test", &["tok.test"], "token").await;
    assert_eq!(tenant["registration"], "token", "{tenant}");
    srv
}

async fn valid(srv: &TestServer, token: &str) -> bool {
    let body = srv
        .on("tok.test")
        .get(&format!("{VALIDITY}?token={}", enc(token)))
        .await
        .ok();
    body["valid"]
        .as_bool()
        .unwrap_or_else(|| panic!("no boolean `valid`: {body}"))
}

async fn list_tokens(srv: &TestServer) -> Vec<Value> {
    let body = srv
        .op()
        .get(&format!("{OP}/tenants/tok.test/registration_tokens"))
        .await
        .ok();
    body["registration_tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone()
}

#[tokio::test]
async fn token_policy_requires_registration_token_stage() {
    let srv = token_server().await;
    let api = srv.on("tok.test");
    let resp = api
        .post(
            &format!("{CS}/register"),
            json!({"username": "alice", "password": "pw-1"}),
        )
        .await;
    assert_uia(&resp);
    let flows = uia_flows(&resp);
    for flow in &flows {
        assert!(
            flow.iter().any(|s| s == "m.login.registration_token"),
            "flow without token stage: {}",
            resp.text
        );
    }
    // m.login.dummy alone doesn't get through.
    let resp = api
        .register_raw(json!({"username": "alice", "password": "pw-1"}))
        .await;
    assert_eq!(
        resp.status, 401,
        "registered without a token: {}",
        resp.text
    );
    let body = api
        .get(&format!("{CS}/register/available?username=alice"))
        .await
        .ok();
    assert_eq!(body["available"], true);
}

#[tokio::test]
async fn validity_endpoint() {
    let srv = token_server().await;
    let created = srv
        .create_registration_token("tok.test", json!({"token": "abc-123_x.y~z"}))
        .await;
    assert_eq!(created["token"], "abc-123_x.y~z", "{created}");
    assert!(valid(&srv, "abc-123_x.y~z").await);
    assert!(!valid(&srv, "nope").await);
    // Tokens belong to their tenant.
    srv.patch_tenant("localhost", json!({"registration": "token"}))
        .await;
    let body = srv
        .on("localhost")
        .get(&format!("{VALIDITY}?token=abc-123_x.y~z"))
        .await
        .ok();
    assert_eq!(body["valid"], false, "{body}");
}

#[tokio::test]
async fn wrong_token_is_refused_with_forbidden() {
    let srv = token_server().await;
    srv.create_registration_token("tok.test", json!({"token": "right"}))
        .await;
    let api = srv.on("tok.test");
    let resp = api
        .uia(
            Method::POST,
            &format!("{CS}/register"),
            json!({"username": "alice", "password": "pw-1"}),
            &[token_stage("wrong")],
        )
        .await;
    assert_eq!(resp.status, 401, "{}", resp.text);
    assert_eq!(resp.errcode(), "M_FORBIDDEN", "{}", resp.text);
    assert_uia(&resp);
    let body = api
        .get(&format!("{CS}/register/available?username=alice"))
        .await
        .ok();
    assert_eq!(body["available"], true);
    // With the right token it works.
    let s = api.register_with_token("alice", "pw-1", "right").await;
    assert_eq!(s.user_id, "@alice:tok.test");
}

#[tokio::test]
async fn single_use_token_works_once() {
    let srv = token_server().await;
    let created = srv
        .create_registration_token("tok.test", json!({"token": "once", "uses_allowed": 1}))
        .await;
    assert_eq!(created["uses_allowed"], 1, "{created}");
    assert_eq!(created["completed"], 0, "{created}");
    assert!(valid(&srv, "once").await);

    let api = srv.on("tok.test");
    let s = api.register_with_token("u1", "pw-u1-1", "once").await;
    assert_eq!(s.user_id, "@u1:tok.test");
    api.as_user(&s).whoami().await.ok();

    assert!(
        !valid(&srv, "once").await,
        "a used-up token must be invalid"
    );
    let resp = api
        .uia(
            Method::POST,
            &format!("{CS}/register"),
            json!({"username": "u2", "password": "pw-u2-1"}),
            &[token_stage("once"), dummy_stage()],
        )
        .await;
    assert_eq!(
        resp.status, 401,
        "second use of a single-use token: {}",
        resp.text
    );
    assert_eq!(resp.errcode(), "M_FORBIDDEN", "{}", resp.text);

    let tokens = list_tokens(&srv).await;
    let t = tokens
        .iter()
        .find(|t| t["token"] == "once")
        .unwrap_or_else(|| panic!("{tokens:?}"));
    assert_eq!(t["completed"], 1, "{t}");
    assert_eq!(t["uses_allowed"], 1, "{t}");
}

#[tokio::test]
async fn multi_use_token_counts_completions() {
    let srv = token_server().await;
    srv.create_registration_token("tok.test", json!({"token": "three", "uses_allowed": 3}))
        .await;
    let api = srv.on("tok.test");
    api.register_with_token("u1", "pw-1", "three").await;
    api.register_with_token("u2", "pw-2", "three").await;
    assert!(valid(&srv, "three").await);
    let t = list_tokens(&srv)
        .await
        .into_iter()
        .find(|t| t["token"] == "three")
        .unwrap();
    assert_eq!(t["completed"], 2, "{t}");
}

#[tokio::test]
async fn expired_token_is_invalid() {
    let srv = token_server().await;
    // Creating an already expired token may be refused; if it is accepted, it is invalid.
    let resp = srv
        .op()
        .post(
            &format!("{OP}/tenants/tok.test/registration_tokens"),
            json!({"token": "past", "expiry_time": now_ms() - 1000}),
        )
        .await;
    if resp.status == 200 {
        assert!(
            !valid(&srv, "past").await,
            "token created expired reported valid"
        );
    } else {
        assert_error(&resp, 400, "M_INVALID_PARAM");
    }
    // A token that expires shortly, and one that doesn't.
    srv.create_registration_token(
        "tok.test",
        json!({"token": "old", "expiry_time": now_ms() + 1500}),
    )
    .await;
    srv.create_registration_token(
        "tok.test",
        json!({"token": "fresh", "expiry_time": now_ms() + 3_600_000}),
    )
    .await;
    assert!(valid(&srv, "old").await);
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    assert!(!valid(&srv, "old").await, "expired token reported valid");
    assert!(valid(&srv, "fresh").await);

    let api = srv.on("tok.test");
    let resp = api
        .uia(
            Method::POST,
            &format!("{CS}/register"),
            json!({"username": "alice", "password": "pw-1"}),
            &[token_stage("old"), dummy_stage()],
        )
        .await;
    assert_eq!(
        resp.status, 401,
        "registered with an expired token: {}",
        resp.text
    );
    assert_eq!(resp.errcode(), "M_FORBIDDEN", "{}", resp.text);
    api.register_with_token("alice", "pw-1", "fresh").await;
}

#[tokio::test]
async fn failed_registration_does_not_use_up_token() {
    let srv = token_server().await;
    srv.create_registration_token("tok.test", json!({"token": "one", "uses_allowed": 1}))
        .await;
    let api = srv.on("tok.test");
    // `admin` exists: the registration fails, the token must stay usable.
    let resp = api
        .uia(
            Method::POST,
            &format!("{CS}/register"),
            json!({"username": "admin", "password": "pw-1"}),
            &[token_stage("one"), dummy_stage()],
        )
        .await;
    assert_error(&resp, 400, "M_USER_IN_USE");
    let resp = api
        .uia(
            Method::POST,
            &format!("{CS}/register"),
            json!({"username": "bad name", "password": "pw-1"}),
            &[token_stage("one"), dummy_stage()],
        )
        .await;
    assert_error(&resp, 400, "M_INVALID_USERNAME");
    assert!(valid(&srv, "one").await);
    api.register_with_token("alice", "pw-1", "one").await;
    assert!(!valid(&srv, "one").await);
}

#[tokio::test]
async fn single_use_token_under_concurrent_registrations() {
    let srv = token_server().await;
    srv.create_registration_token("tok.test", json!({"token": "race", "uses_allowed": 1}))
        .await;
    let api = srv.on("tok.test");
    let attempt = |name: &'static str| {
        let api = api.clone();
        async move {
            api.uia(
                Method::POST,
                &format!("{CS}/register"),
                json!({"username": name, "password": "pw-1"}),
                &[token_stage("race"), dummy_stage()],
            )
            .await
        }
    };
    let results = tokio::join!(
        attempt("r1"),
        attempt("r2"),
        attempt("r3"),
        attempt("r4"),
        attempt("r5")
    );
    let results = [results.0, results.1, results.2, results.3, results.4];
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "a single-use token registered {ok} users: {:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let t = list_tokens(&srv)
        .await
        .into_iter()
        .find(|t| t["token"] == "race")
        .unwrap();
    assert_eq!(t["completed"], 1, "{t}");
}
