//! `POST /register` (user-interactive auth, dummy flow), `GET /register/available`, username
//! rules, closed tenants, guests, the max_users quota.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn register_with_dummy_uia() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let path = format!("{CS}/register");

    let first = api
        .post(
            &path,
            json!({"username": "alice", "password": "pw-alice-1"}),
        )
        .await;
    let session = assert_uia(&first);
    let flows = uia_flows(&first);
    assert!(
        flows.contains(&vec!["m.login.dummy".to_owned()]),
        "open tenant must offer m.login.dummy: {}",
        first.text
    );
    // The first call creates nothing.
    let avail = api
        .get(&format!("{CS}/register/available?username=alice"))
        .await
        .ok();
    assert_eq!(avail["available"], true, "{avail}");

    let resp = api
        .post(
            &path,
            json!({
                "username": "alice",
                "password": "pw-alice-1",
                "auth": {"type": "m.login.dummy", "session": session},
            }),
        )
        .await;
    let alice = api.session_from(resp);
    assert_eq!(alice.user_id, "@alice:localhost");
    assert!(!alice.device_id.is_empty());

    let me = api.as_user(&alice).whoami().await.ok();
    assert_eq!(me["user_id"], "@alice:localhost");
    assert_eq!(me["device_id"], alice.device_id.as_str());
    // The password was set.
    api.login("alice", "pw-alice-1").await;
    // The same name can't be registered twice.
    let resp = api
        .register_raw(json!({"username": "alice", "password": "other"}))
        .await;
    assert_error(&resp, 400, "M_USER_IN_USE");
}

/// Element Web first sends `POST /register` with no username or password, only to learn the
/// flows; the answer must be the UIA 401 (the spec makes `password` optional).
#[tokio::test]
async fn register_flows_without_credentials() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    for body in [
        json!({}),
        json!({"initial_device_display_name": "Element Web"}),
    ] {
        let resp = api.post(&format!("{CS}/register"), body).await;
        assert_uia(&resp);
        assert!(
            uia_flows(&resp).contains(&vec!["m.login.dummy".to_owned()]),
            "{}",
            resp.text
        );
    }
}

#[tokio::test]
async fn register_on_other_host_of_default_tenant() {
    let srv = TestServer::start().await;
    let s = srv.register("127.0.0.1", "bob", "pw-bob-1").await;
    assert_eq!(s.user_id, "@bob:localhost");
    srv.login("localhost", "bob", "pw-bob-1").await;
}

#[tokio::test]
async fn register_with_device_id_and_display_name() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let resp = api
        .register_raw(json!({
            "username": "alice",
            "password": "pw-alice-1",
            "device_id": "MYPHONE",
            "initial_device_display_name": "Alice's phone",
        }))
        .await;
    let alice = api.session_from(resp);
    assert_eq!(alice.device_id, "MYPHONE");
    let dev = api
        .as_user(&alice)
        .get(&format!("{CS}/devices/MYPHONE"))
        .await
        .ok();
    assert_eq!(dev["device_id"], "MYPHONE");
    assert_eq!(dev["display_name"], "Alice's phone", "{dev}");
}

#[tokio::test]
async fn register_without_username_generates_one() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let s = api.session_from(api.register_raw(json!({"password": "pw-anon-1"})).await);
    assert!(
        s.user_id.starts_with('@') && s.user_id.ends_with(":localhost"),
        "{}",
        s.user_id
    );
    let me = api.as_user(&s).whoami().await.ok();
    assert_eq!(me["user_id"], s.user_id.as_str());
}

#[tokio::test]
async fn register_inhibit_login_returns_no_token() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let resp = api
        .register_raw(json!({"username": "alice", "password": "pw-alice-1", "inhibit_login": true}))
        .await;
    let body = resp.ok();
    assert_eq!(body["user_id"], "@alice:localhost", "{body}");
    assert!(
        body.get("access_token").is_none_or(|t| t.is_null()),
        "{body}"
    );
    assert!(body.get("device_id").is_none_or(|t| t.is_null()), "{body}");
    // The account exists and logs in.
    let s = api.login("alice", "pw-alice-1").await;
    // No device was created by the registration.
    let devices = api.as_user(&s).get(&format!("{CS}/devices")).await.ok();
    assert_eq!(devices["devices"].as_array().unwrap().len(), 1, "{devices}");
}

#[tokio::test]
async fn register_available() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let path = |u: &str| format!("{CS}/register/available?username={}", enc(u));

    let body = api.get(&path("alice")).await.ok();
    assert_eq!(body["available"], true, "{body}");
    api.register("alice", "pw-alice-1").await;
    assert_error(&api.get(&path("alice")).await, 400, "M_USER_IN_USE");
    // The first-start admin exists too.
    assert_error(&api.get(&path("admin")).await, 400, "M_USER_IN_USE");
    assert_error(&api.get(&path("bad name")).await, 400, "M_INVALID_USERNAME");
    assert_error(&api.get(&path("@x:y")).await, 400, "M_INVALID_USERNAME");
    let resp = api.get(&format!("{CS}/register/available")).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    // Per tenant: the name is free on another tenant.
    srv.create_tenant("a.test", &["a.test"], "open").await;
    let body = srv.on("a.test").get(&path("alice")).await.ok();
    assert_eq!(body["available"], true, "{body}");
}

#[tokio::test]
async fn register_invalid_usernames() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let long = "a".repeat(300);
    for name in ["bad name", "@x:y", "x:y", "üñí", long.as_str()] {
        let resp = api
            .register_raw(json!({"username": name, "password": "pw-1"}))
            .await;
        assert_error(&resp, 400, "M_INVALID_USERNAME");
    }
    // Nothing was created.
    let body = api
        .get(&format!("{CS}/register/available?username=x"))
        .await
        .ok();
    assert_eq!(body["available"], true);
}

#[tokio::test]
async fn register_on_closed_tenant_is_forbidden() {
    let srv = TestServer::start().await;
    let tenant = srv
        .create_tenant("closed.test", &["closed.test"], "closed")
        .await;
    assert_eq!(tenant["registration"], "closed", "{tenant}");
    let api = srv.on("closed.test");
    let resp = api
        .post(
            &format!("{CS}/register"),
            json!({"username": "alice", "password": "pw-1"}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Even with a dummy auth.
    let resp = api
        .post(
            &format!("{CS}/register"),
            json!({"username": "alice", "password": "pw-1", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Tenants are closed by default.
    let tenant = srv
        .op()
        .post(
            &format!("{OP}/tenants"),
            json!({"server_name": "default.test"}),
        )
        .await
        .ok();
    assert_eq!(tenant["registration"], "closed", "{tenant}");
    let resp = srv
        .on("default.test")
        .post(
            &format!("{CS}/register"),
            json!({"username": "alice", "password": "pw-1"}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // The operator can still create users, and they log in.
    srv.create_user("closed.test", "carol", "pw-carol-1").await;
    srv.login("closed.test", "carol", "pw-carol-1").await;
}

#[tokio::test]
async fn guest_registration_only_when_allowed() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let path = format!("{CS}/register?kind=guest");
    let resp = api.post(&path, json!({})).await;
    assert_error(&resp, 403, "M_GUEST_ACCESS_FORBIDDEN");

    let tenant = srv
        .patch_tenant("localhost", json!({"allow_guests": true}))
        .await;
    assert_eq!(tenant["allow_guests"], true, "{tenant}");
    let resp = api
        .uia(reqwest::Method::POST, &path, json!({}), &[dummy_stage()])
        .await;
    let guest = api.session_from(resp);
    assert!(guest.user_id.ends_with(":localhost"), "{}", guest.user_id);
    let me = api.as_user(&guest).whoami().await.ok();
    assert_eq!(me["user_id"], guest.user_id.as_str());
    assert_eq!(me["is_guest"], true, "{me}");

    srv.patch_tenant("localhost", json!({"allow_guests": false}))
        .await;
    assert_error(
        &api.post(&path, json!({})).await,
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
}

#[tokio::test]
async fn max_users_quota() {
    let srv = TestServer::start().await;
    let tenant = srv.create_tenant("q.test", &["q.test"], "open").await;
    let count = tenant["user_count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no user_count: {tenant}"));
    assert!(count >= 1, "the generated admin counts: {tenant}");
    let tenant = srv
        .patch_tenant("q.test", json!({"max_users": count + 1}))
        .await;
    assert_eq!(tenant["max_users"], count + 1, "{tenant}");

    let api = srv.on("q.test");
    api.register("u1", "pw-u1-1").await;
    let resp = api
        .register_raw(json!({"username": "u2", "password": "pw-u2-1"}))
        .await;
    assert_error(&resp, 403, "M_RESOURCE_LIMIT_EXCEEDED");
    let resp = srv
        .op()
        .post(
            &format!("{OP}/tenants/q.test/users"),
            json!({"localpart": "u3", "password": "pw-u3-1"}),
        )
        .await;
    assert_error(&resp, 403, "M_RESOURCE_LIMIT_EXCEEDED");
    assert_eq!(srv.get_tenant("q.test").await["user_count"], count + 1);

    // Lifting the quota lets registration through again.
    let tenant = srv.patch_tenant("q.test", json!({"max_users": null})).await;
    assert!(tenant["max_users"].is_null(), "{tenant}");
    api.register("u2", "pw-u2-1").await;
    assert_eq!(srv.get_tenant("q.test").await["user_count"], count + 2);
}

#[tokio::test]
async fn concurrent_registrations_of_one_name() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let attempt = |pw: &'static str| {
        let api = api.clone();
        async move {
            api.register_raw(json!({"username": "alice", "password": pw}))
                .await
        }
    };
    let (a, b, c, d) = tokio::join!(attempt("p1"), attempt("p2"), attempt("p3"), attempt("p4"));
    let results = [a, b, c, d];
    let ok: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        ok.len(),
        1,
        "{:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        assert_error(r, 400, "M_USER_IN_USE");
    }
    let list = srv
        .op()
        .get(&format!("{OP}/tenants/localhost/users"))
        .await
        .ok();
    let alices = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["localpart"] == "alice")
        .count();
    assert_eq!(alices, 1, "{list}");
}
