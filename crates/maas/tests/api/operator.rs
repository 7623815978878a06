//! The operator API under `/_maas/operator/v1` (see crates/maas-http/API.md).

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

fn find<'a>(list: &'a Value, key: &str, field: &str, value: &str) -> Option<&'a Value> {
    list[key].as_array()?.iter().find(|t| t[field] == value)
}

#[tokio::test]
async fn operator_auth() {
    let srv = TestServer::start().await;
    let path = format!("{OP}/tenants");
    assert_error(&srv.op_anon().get(&path).await, 401, "M_MISSING_TOKEN");
    assert_error(
        &srv.op_anon().auth("wrong-token").get(&path).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    let resp = srv
        .op_anon()
        .post(&path, json!({"server_name": "x.test"}))
        .await;
    assert_error(&resp, 401, "M_MISSING_TOKEN");
    let resp = srv
        .op_anon()
        .auth("wrong-token")
        .delete(&format!("{OP}/tenants/localhost"))
        .await;
    assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
    // A tenant's access token is not an operator token.
    let s = srv.register("localhost", "alice", "pw-1").await;
    assert_error(
        &srv.op_anon().as_user(&s).get(&path).await,
        401,
        "M_UNKNOWN_TOKEN",
    );

    srv.op().get(&path).await.ok();
    // The operator API answers on every host, known or not.
    for host in ["localhost", "unknown.test"] {
        let resp =
            TestServer::send(srv.op().builder(Method::GET, &path).header("Host", host)).await;
        resp.ok();
    }
    // Nothing changed through the refused requests.
    let list = srv.op().get(&path).await.ok();
    assert!(
        find(&list, "tenants", "server_name", "x.test").is_none(),
        "{list}"
    );
    assert!(
        find(&list, "tenants", "server_name", "localhost").is_some(),
        "{list}"
    );
}

/// The operator API has a listener of its own (loopback by default): the public listener
/// doesn't know its paths, even with the right token, and it serves nothing else.
#[tokio::test]
async fn operator_api_is_on_its_own_listener() {
    let srv = TestServer::start().await;
    assert_ne!(srv.operator_url, srv.url, "server.json names one listener");
    let path = format!("{OP}/tenants");
    for host in ["localhost", "unknown.test"] {
        let resp = srv.on(host).auth(OPERATOR_TOKEN).get(&path).await;
        assert_error(&resp, 404, "M_UNRECOGNIZED");
        let resp = srv
            .on(host)
            .auth(OPERATOR_TOKEN)
            .post(&path, json!({"server_name": "public.test"}))
            .await;
        assert_error(&resp, 404, "M_UNRECOGNIZED");
    }
    assert_error(
        &srv.direct().auth(OPERATOR_TOKEN).get(&path).await,
        404,
        "M_UNRECOGNIZED",
    );
    // The Matrix APIs are not on the operator listener.
    let versions = srv.op().builder(Method::GET, "/_matrix/client/versions");
    let resp = TestServer::send(versions.header("Host", "localhost")).await;
    assert_error(&resp, 404, "M_UNRECOGNIZED");
    assert_error(
        &srv.op().get("/.well-known/matrix/client").await,
        404,
        "M_UNRECOGNIZED",
    );
    srv.on("localhost")
        .get("/_matrix/client/versions")
        .await
        .ok();
    let list = srv.op().get(&path).await.ok();
    assert!(find(&list, "tenants", "server_name", "public.test").is_none());
}

/// `operator.listen` equal to `server.listen`: one listener serves both, as before the
/// operator API had its own.
#[tokio::test]
async fn operator_api_can_share_the_public_listener() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let srv = TestServer::start_with(
        Options::default()
            .listen(&addr)
            .env("MAAS_OPERATOR__LISTEN", &addr),
    )
    .await;
    assert_eq!(srv.operator_url, srv.url);
    let path = format!("{OP}/tenants");
    srv.on("localhost")
        .auth(OPERATOR_TOKEN)
        .get(&path)
        .await
        .ok();
    assert_error(
        &srv.on("localhost").get(&path).await,
        401,
        "M_MISSING_TOKEN",
    );
    srv.on("localhost")
        .get("/_matrix/client/versions")
        .await
        .ok();
}

#[tokio::test]
async fn default_tenant_exists_after_first_start() {
    let srv = TestServer::start().await;
    let list = srv.op().get(&format!("{OP}/tenants")).await.ok();
    let tenants = list["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(tenants.len(), 1, "{list}");
    let t = &tenants[0];
    assert_eq!(t["server_name"], "localhost");
    let mut hosts: Vec<_> = t["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["127.0.0.1", "localhost"]);
    assert_eq!(t["registration"], "open");
    assert_eq!(t["suspended"], false);
    assert_eq!(t["user_count"], 1, "only the admin: {t}");
    let admin = srv
        .op()
        .get(&format!("{OP}/tenants/localhost/users/admin"))
        .await
        .ok();
    assert_eq!(admin["user_id"], "@admin:localhost");
    assert_eq!(admin["admin"], true);
}

#[tokio::test]
async fn tenant_create_show_list() {
    let srv = TestServer::start().await;
    let t = srv
        .op()
        .post(
            &format!("{OP}/tenants"),
            json!({"server_name": "x.test", "registration": "open"}),
        )
        .await
        .ok();
    assert!(
        t["tenant_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{t}"
    );
    assert_eq!(t["server_name"], "x.test");
    assert_eq!(
        t["hosts"],
        json!(["x.test"]),
        "hosts default to the server name"
    );
    assert_eq!(t["registration"], "open");
    assert_eq!(t["suspended"], false);
    assert_eq!(t["allow_guests"], false);
    assert!(t["max_users"].is_null(), "{t}");
    assert!(t["client_base_url"].is_null(), "{t}");
    assert!(t["federation_server"].is_null(), "{t}");
    assert!(
        t["created_ts"]
            .as_i64()
            .is_some_and(|ts| (ts - now_ms()).abs() < 600_000),
        "{t}"
    );
    assert_eq!(t["user_count"], 1, "{t}");
    assert_eq!(t["admin"]["user_id"], "@admin:x.test", "{t}");
    let password = t["admin"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        password.len() >= 12,
        "generated admin password too weak: {password:?}"
    );

    // The generated admin logs in on the tenant, and is an admin.
    let s = srv.login("x.test", "admin", password).await;
    assert_eq!(s.user_id, "@admin:x.test");
    let admin = srv
        .op()
        .get(&format!("{OP}/tenants/x.test/users/admin"))
        .await
        .ok();
    assert_eq!(admin["admin"], true, "{admin}");

    let shown = srv.get_tenant("x.test").await;
    assert_eq!(shown["tenant_id"], t["tenant_id"]);
    assert!(
        shown.get("admin").is_none() || shown["admin"].get("password").is_none(),
        "password shown again: {shown}"
    );

    let list = srv.op().get(&format!("{OP}/tenants")).await.ok();
    assert!(
        find(&list, "tenants", "server_name", "x.test").is_some(),
        "{list}"
    );
    assert!(
        find(&list, "tenants", "server_name", "localhost").is_some(),
        "{list}"
    );

    // Full creation request, custom admin localpart.
    let t = srv
        .op()
        .post(
            &format!("{OP}/tenants"),
            json!({
                "server_name": "y.test",
                "hosts": ["y.test", "matrix.y.test"],
                "registration": "token",
                "allow_guests": true,
                "max_users": 10,
                "client_base_url": "https://matrix.y.test",
                "federation_server": "matrix.y.test:443",
                "admin_localpart": "boss",
            }),
        )
        .await
        .ok();
    assert_eq!(t["hosts"], json!(["y.test", "matrix.y.test"]), "{t}");
    assert_eq!(t["registration"], "token");
    assert_eq!(t["allow_guests"], true);
    assert_eq!(t["max_users"], 10);
    assert_eq!(t["client_base_url"], "https://matrix.y.test");
    assert_eq!(t["federation_server"], "matrix.y.test:443");
    assert_eq!(t["admin"]["user_id"], "@boss:y.test");
    srv.login(
        "matrix.y.test",
        "boss",
        t["admin"]["password"].as_str().unwrap(),
    )
    .await;

    assert_error(
        &srv.op().get(&format!("{OP}/tenants/nope.test")).await,
        404,
        "M_NOT_FOUND",
    );
}

#[tokio::test]
async fn tenant_patch_and_delete() {
    let srv = TestServer::start().await;
    srv.create_tenant("x.test", &["x.test"], "closed").await;
    let t = srv
        .patch_tenant(
            "x.test",
            json!({"hosts": ["x2.test", "x3.test"], "registration": "open", "max_users": 5}),
        )
        .await;
    assert_eq!(t["hosts"], json!(["x2.test", "x3.test"]), "{t}");
    assert_eq!(t["registration"], "open");
    assert_eq!(t["max_users"], 5);
    // Unchanged fields stay.
    assert_eq!(t["suspended"], false);
    assert_eq!(t["server_name"], "x.test");

    assert_error(
        &srv.on("x.test").get("/_matrix/client/versions").await,
        404,
        "M_UNRECOGNIZED",
    );
    let s = srv.register("x2.test", "alice", "pw-1").await;
    assert_eq!(s.user_id, "@alice:x.test");
    srv.on("x3.test").as_user(&s).whoami().await.ok();

    let resp = srv
        .op()
        .patch(
            &format!("{OP}/tenants/nope.test"),
            json!({"suspended": true}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = srv
        .op()
        .patch(
            &format!("{OP}/tenants/x.test"),
            json!({"registration": "sometimes"}),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert_eq!(srv.get_tenant("x.test").await["registration"], "open");

    assert_eq!(
        srv.op().delete(&format!("{OP}/tenants/x.test")).await.ok(),
        json!({})
    );
    assert_error(
        &srv.op().delete(&format!("{OP}/tenants/x.test")).await,
        404,
        "M_NOT_FOUND",
    );
    let list = srv.op().get(&format!("{OP}/tenants")).await.ok();
    assert!(
        find(&list, "tenants", "server_name", "x.test").is_none(),
        "{list}"
    );
    assert_error(
        &srv.on("x2.test").as_user(&s).whoami().await,
        404,
        "M_UNRECOGNIZED",
    );
}

#[tokio::test]
async fn tenant_conflicts_and_validation() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test", "chat.a.test"], "open")
        .await;
    let create = |body: Value| {
        let srv = &srv;
        async move { srv.op().post(&format!("{OP}/tenants"), body).await }
    };
    assert_error(
        &create(json!({"server_name": "a.test", "hosts": ["other.test"]})).await,
        409,
        "M_CONFLICT",
    );
    assert_error(
        &create(json!({"server_name": "b.test", "hosts": ["chat.a.test"]})).await,
        409,
        "M_CONFLICT",
    );
    assert_error(
        &create(json!({"server_name": "b.test", "hosts": ["localhost"]})).await,
        409,
        "M_CONFLICT",
    );
    assert_error(
        &create(json!({"server_name": "b.test", "hosts": ["127.0.0.1"]})).await,
        409,
        "M_CONFLICT",
    );
    // Default hosts = [server_name], taken by another tenant.
    assert_error(
        &create(json!({"server_name": "chat.a.test"})).await,
        409,
        "M_CONFLICT",
    );

    srv.create_tenant("b.test", &["b.test"], "open").await;
    let resp = srv
        .op()
        .patch(
            &format!("{OP}/tenants/b.test"),
            json!({"hosts": ["b.test", "a.test"]}),
        )
        .await;
    assert_error(&resp, 409, "M_CONFLICT");
    assert_eq!(srv.get_tenant("b.test").await["hosts"], json!(["b.test"]));

    for bad in [
        json!({}),
        json!({"server_name": 7}),
        json!({"server_name": "c.test", "registration": "maybe"}),
    ] {
        let resp = create(bad.clone()).await;
        assert_eq!(resp.status, 400, "{bad}: {}", resp.text);
    }
    for bad in ["bad name", "", "ex ample.org", "a/b"] {
        let resp = create(json!({"server_name": bad})).await;
        assert_eq!(resp.status, 400, "server name {bad:?}: {}", resp.text);
    }
    let resp = TestServer::send(
        srv.op()
            .builder(Method::POST, &format!("{OP}/tenants"))
            .header("Content-Type", "application/json")
            .body("{"),
    )
    .await;
    assert_error(&resp, 400, "M_NOT_JSON");
    let list = srv.op().get(&format!("{OP}/tenants")).await.ok();
    assert_eq!(list["tenants"].as_array().unwrap().len(), 3, "{list}");
}

#[tokio::test]
async fn users_create_list_show_patch() {
    let srv = TestServer::start().await;
    srv.create_tenant("x.test", &["x.test"], "closed").await;
    let users = format!("{OP}/tenants/x.test/users");

    let u = srv
        .op()
        .post(
            &users,
            json!({"localpart": "alice", "password": "pw-alice-1", "displayname": "Alice"}),
        )
        .await
        .ok();
    assert_eq!(u["user_id"], "@alice:x.test");
    assert_eq!(u["localpart"], "alice");
    assert_eq!(u["admin"], false);
    assert_eq!(u["deactivated"], false);
    assert_eq!(u["guest"], false);
    assert_eq!(u["displayname"], "Alice");
    assert!(
        u.get("password").is_none_or(Value::is_null),
        "given password echoed: {u}"
    );
    let s = srv.login("x.test", "alice", "pw-alice-1").await;
    let profile = srv
        .on("x.test")
        .as_user(&s)
        .get(&format!(
            "{CS}/profile/{}/displayname",
            enc("@alice:x.test")
        ))
        .await
        .ok();
    assert_eq!(profile["displayname"], "Alice");

    let u = srv
        .op()
        .post(&users, json!({"localpart": "bob", "admin": true}))
        .await
        .ok();
    assert_eq!(u["admin"], true);
    let pw = u["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no generated password: {u}"));
    srv.login("x.test", "bob", pw).await;

    assert_error(
        &srv.op().post(&users, json!({"localpart": "alice"})).await,
        409,
        "M_USER_IN_USE",
    );
    let resp = srv
        .op()
        .post(&users, json!({"localpart": "bad name"}))
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    let resp = srv
        .op()
        .post(
            &format!("{OP}/tenants/nope.test/users"),
            json!({"localpart": "x"}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    let shown = srv.op().get(&format!("{users}/alice")).await.ok();
    assert_eq!(shown["user_id"], "@alice:x.test");
    assert_error(
        &srv.op().get(&format!("{users}/nobody")).await,
        404,
        "M_NOT_FOUND",
    );

    let patched = srv
        .op()
        .patch(&format!("{users}/alice"), json!({"admin": true}))
        .await
        .ok();
    assert_eq!(patched["admin"], true);
    assert_eq!(
        srv.op().get(&format!("{users}/alice")).await.ok()["admin"],
        true
    );

    assert_eq!(srv.get_tenant("x.test").await["user_count"], 3);
}

#[tokio::test]
async fn users_list_paginates() {
    let srv = TestServer::start().await;
    srv.create_tenant("x.test", &["x.test"], "closed").await;
    let users = format!("{OP}/tenants/x.test/users");
    for name in ["u1", "u2", "u3", "u4"] {
        srv.create_user("x.test", name, "pw-1").await;
    }
    let all = srv.op().get(&users).await.ok();
    let names: Vec<_> = all["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["localpart"].clone())
        .collect();
    assert_eq!(names.len(), 5, "admin + 4: {all}");

    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..10 {
        let path = match &from {
            Some(f) => format!("{users}?limit=2&from={}", enc(f)),
            None => format!("{users}?limit=2"),
        };
        let page = srv.op().get(&path).await.ok();
        let batch = page["users"].as_array().unwrap();
        assert!(batch.len() <= 2, "{page}");
        seen.extend(
            batch
                .iter()
                .map(|u| u["localpart"].as_str().unwrap().to_owned()),
        );
        match page.get("next_from").and_then(Value::as_str) {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ["admin", "u1", "u2", "u3", "u4"], "pages: {seen:?}");
    assert_eq!(seen.len(), 5, "no duplicates across pages: {seen:?}");
}

#[tokio::test]
async fn users_reset_password() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "old-pw-1").await;
    let api = srv.on("localhost");
    let s = api.login("alice", "old-pw-1").await;
    let reset = format!("{OP}/tenants/localhost/users/alice/reset_password");

    let body = srv
        .op()
        .post(&reset, json!({"password": "new-pw-1"}))
        .await
        .ok();
    assert_eq!(body["user_id"], "@alice:localhost");
    assert!(body.get("password").is_none_or(Value::is_null), "{body}");
    assert_error(
        &api.login_raw(login_body("alice", "old-pw-1")).await,
        403,
        "M_FORBIDDEN",
    );
    let s2 = api.login("alice", "new-pw-1").await;
    assert_error(&api.as_user(&s).whoami().await, 401, "M_UNKNOWN_TOKEN");

    // Keeping devices.
    srv.op()
        .post(
            &reset,
            json!({"password": "newer-pw-1", "logout_devices": false}),
        )
        .await
        .ok();
    api.as_user(&s2).whoami().await.ok();
    api.login("alice", "newer-pw-1").await;

    // A generated password.
    let body = srv.op().post(&reset, json!({})).await.ok();
    let generated = body["password"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    api.login("alice", generated).await;
    assert_error(
        &api.login_raw(login_body("alice", "newer-pw-1")).await,
        403,
        "M_FORBIDDEN",
    );

    let resp = srv
        .op()
        .post(
            &format!("{OP}/tenants/localhost/users/nobody/reset_password"),
            json!({}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn users_deactivate() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    let api = srv.on("localhost");
    let s = api.login("alice", "pw-alice-1").await;
    let user = srv
        .op()
        .post(
            &format!("{OP}/tenants/localhost/users/alice/deactivate"),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(user["deactivated"], true, "{user}");
    assert_eq!(user["user_id"], "@alice:localhost");
    assert_error(&api.as_user(&s).whoami().await, 401, "M_UNKNOWN_TOKEN");
    assert_error(
        &api.login_raw(login_body("alice", "pw-alice-1")).await,
        403,
        "M_USER_DEACTIVATED",
    );
    let list = srv
        .op()
        .get(&format!("{OP}/tenants/localhost/users"))
        .await
        .ok();
    let alice = find(&list, "users", "localpart", "alice").unwrap_or_else(|| panic!("{list}"));
    assert_eq!(alice["deactivated"], true);
}

#[tokio::test]
async fn registration_tokens_create_and_list() {
    let srv = TestServer::start().await;
    srv.create_tenant("x.test", &["x.test"], "token").await;
    let path = format!("{OP}/tenants/x.test/registration_tokens");

    let t = srv.create_registration_token("x.test", json!({})).await;
    let generated = t["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned();
    assert!(
        (1..=64).contains(&generated.len())
            && generated
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c)),
        "generated token {generated:?} outside the spec's alphabet"
    );
    assert!(t["uses_allowed"].is_null(), "{t}");
    assert!(t["expiry_time"].is_null(), "{t}");
    assert_eq!(t["pending"], 0, "{t}");
    assert_eq!(t["completed"], 0, "{t}");

    let expiry = now_ms() + 86_400_000;
    let t = srv
        .create_registration_token(
            "x.test",
            json!({"token": "mine", "uses_allowed": 5, "expiry_time": expiry}),
        )
        .await;
    assert_eq!(t["token"], "mine");
    assert_eq!(t["uses_allowed"], 5);
    assert_eq!(t["expiry_time"], expiry);

    assert_error(
        &srv.op().post(&path, json!({"token": "mine"})).await,
        409,
        "M_CONFLICT",
    );
    let resp = srv.op().post(&path, json!({"token": "has space!"})).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = srv.op().post(&path, json!({"token": "x".repeat(65)})).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = srv
        .op()
        .post(
            &format!("{OP}/tenants/nope.test/registration_tokens"),
            json!({}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    let list = srv.op().get(&path).await.ok();
    let tokens = list["registration_tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(tokens.len(), 2, "{list}");
    assert!(
        find(&list, "registration_tokens", "token", &generated).is_some(),
        "{list}"
    );
    let mine = find(&list, "registration_tokens", "token", "mine").unwrap();
    assert_eq!(mine["uses_allowed"], 5);
    // Tokens are per tenant.
    let other = srv
        .op()
        .get(&format!("{OP}/tenants/localhost/registration_tokens"))
        .await
        .ok();
    assert_eq!(other["registration_tokens"], json!([]), "{other}");
    // The generated token registers a user.
    let s = srv
        .on("x.test")
        .register_with_token("alice", "pw-1", &generated)
        .await;
    assert_eq!(s.user_id, "@alice:x.test");
}

/// Every server name is a tenant path: no operator path of its own may sit beside them. A
/// tenant named `import` is shown, changed and deleted like any other, and archives are
/// imported at `/import`, outside the tenants.
#[tokio::test]
async fn a_tenant_named_import_is_a_tenant_like_any_other() {
    let srv = TestServer::start().await;
    let created = srv
        .op()
        .post(&format!("{OP}/tenants"), json!({"server_name": "import"}))
        .await
        .ok();
    assert_eq!(created["server_name"], "import");
    let shown = srv.get_tenant("import").await;
    assert_eq!(shown["tenant_id"], created["tenant_id"], "{shown}");
    let patched = srv
        .patch_tenant("import", json!({"registration": "open"}))
        .await;
    assert_eq!(patched["registration"], "open", "{patched}");
    srv.op()
        .post(
            &format!("{OP}/tenants/import/users"),
            json!({"localpart": "alice", "password": "pw-alice-1"}),
        )
        .await
        .ok();

    // Its archive goes in through `/import`; the old path was a tenant's, and imports nothing.
    let archive = srv
        .op()
        .builder(Method::GET, &format!("{OP}/tenants/import/export"))
        .send()
        .await
        .expect("export")
        .bytes()
        .await
        .expect("archive");
    srv.op().delete(&format!("{OP}/tenants/import")).await.ok();
    assert_error(
        &srv.op().get(&format!("{OP}/tenants/import")).await,
        404,
        "M_NOT_FOUND",
    );
    let old_path = srv
        .op()
        .builder(Method::POST, &format!("{OP}/tenants/import"))
        .header("content-type", "application/x-ndjson")
        .body(archive.clone());
    assert_error(&TestServer::send(old_path).await, 405, "M_UNRECOGNIZED");
    let import = srv
        .op()
        .builder(Method::POST, &format!("{OP}/import"))
        .header("content-type", "application/x-ndjson")
        .body(archive);
    let imported = TestServer::send(import).await.ok();
    assert_eq!(imported["server_name"], "import", "{imported}");
    let user = srv
        .op()
        .get(&format!("{OP}/tenants/import/users/alice"))
        .await
        .ok();
    assert_eq!(user["user_id"], "@alice:import", "{user}");
}
