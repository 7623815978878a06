//! Routing and error behaviour common to every endpoint: unknown host, endpoint and method,
//! bad bodies, access tokens, CORS, body size limit.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn unknown_host_is_404_unrecognized() {
    let srv = TestServer::start().await;
    let api = srv.on("nope.test");
    let resp = api.get("/_matrix/client/versions").await;
    assert_error(&resp, 404, "M_UNRECOGNIZED");
    assert!(
        resp.header("content-type").starts_with("application/json"),
        "{:?}",
        resp.headers
    );
    assert_error(
        &api.login_raw(login_body("admin", "x")).await,
        404,
        "M_UNRECOGNIZED",
    );
    assert_error(
        &api.get("/.well-known/matrix/client").await,
        404,
        "M_UNRECOGNIZED",
    );
    // A known host with another port still routes.
    let body = srv
        .on("localhost:1234")
        .get("/_matrix/client/versions")
        .await
        .ok();
    assert!(body["versions"].is_array());
}

#[tokio::test]
async fn unknown_endpoint_is_404_unrecognized() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let resp = api.get(&format!("{CS}/this/endpoint/does_not_exist")).await;
    assert_error(&resp, 404, "M_UNRECOGNIZED");
    assert!(
        resp.header("content-type").starts_with("application/json"),
        "{:?}",
        resp.headers
    );
    assert_error(
        &api.post("/_matrix/client/v9/login", json!({})).await,
        404,
        "M_UNRECOGNIZED",
    );
    let alice = api.register("alice", "pw-alice-1").await;
    let resp = api
        .as_user(&alice)
        .get(&format!("{CS}/this/endpoint/does_not_exist"))
        .await;
    assert_error(&resp, 404, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn wrong_method_is_405_unrecognized() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let resp = api.put(&format!("{CS}/login"), json!({})).await;
    assert_error(&resp, 405, "M_UNRECOGNIZED");
    let resp = api.post("/_matrix/client/versions", json!({})).await;
    assert_error(&resp, 405, "M_UNRECOGNIZED");
    let resp = api
        .delete(&format!("{CS}/register/available?username=x"))
        .await;
    assert_error(&resp, 405, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn malformed_json_is_400_not_json() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let resp = TestServer::send(
        api.builder(Method::POST, &format!("{CS}/login"))
            .header("Content-Type", "application/json")
            .body("{\"type\": \"m.login.password\", "),
    )
    .await;
    assert_error(&resp, 400, "M_NOT_JSON");

    let alice = api.register("alice", "pw-alice-1").await;
    let resp = TestServer::send(
        api.as_user(&alice)
            .builder(
                Method::PUT,
                &format!("{CS}/profile/{}/displayname", enc(&alice.user_id)),
            )
            .header("Content-Type", "application/json")
            .body("not json at all"),
    )
    .await;
    assert_error(&resp, 400, "M_NOT_JSON");
}

#[tokio::test]
async fn wrong_field_types_are_400_bad_json() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    let api = srv.on("localhost");
    let resp = api
        .login_raw(json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": 123,
        }))
        .await;
    assert_error(&resp, 400, "M_BAD_JSON");
    let resp = api
        .login_raw(json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": ["alice"]},
            "password": "pw-alice-1",
        }))
        .await;
    assert_error(&resp, 400, "M_BAD_JSON");
    let resp = api.login_raw(json!(["m.login.password"])).await;
    assert_error(&resp, 400, "M_BAD_JSON");
    // Nothing happened: the correct request still works.
    api.login("alice", "pw-alice-1").await;
}

#[tokio::test]
async fn login_bodies_without_a_type_are_400_bad_json() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    let api = srv.on("localhost");
    // ruma 0.16 panicked on a login body without `type`; the client got no answer at all.
    for body in [
        json!({}),
        json!({"identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw-alice-1"}),
        json!({"type": null}),
        json!({"type": 5}),
    ] {
        let resp = api.login_raw(body.clone()).await;
        assert_error(&resp, 400, "M_BAD_JSON");
    }
    api.login("alice", "pw-alice-1").await;
}

#[tokio::test]
async fn bad_queries_and_paths_are_matrix_errors() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let alice = api.register("alice", "pw-alice-1").await;
    let me = api.as_user(&alice);
    let room = me.post(&format!("{CS}/createRoom"), json!({})).await.ok()["room_id"]
        .as_str()
        .map(str::to_owned)
        .expect("a room id");
    let threads = format!("/_matrix/client/v1/rooms/{}/threads", enc(&room));
    let cases = [
        (
            me.clone(),
            format!("{threads}?limit=many"),
            "M_INVALID_PARAM",
        ),
        (me.clone(), format!("{threads}?limit=-1"), "M_INVALID_PARAM"),
        (
            me.clone(),
            format!("{threads}?include=none"),
            "M_INVALID_PARAM",
        ),
        (
            me.clone(),
            format!("{threads}?from=later"),
            "M_INVALID_PARAM",
        ),
        (
            me.clone(),
            "/_matrix/client/v1/rooms/%FF%FE/threads".to_owned(),
            "M_INVALID_PARAM",
        ),
        (
            srv.op(),
            format!("{OP}/tenants/localhost/users?limit=many"),
            "M_INVALID_PARAM",
        ),
        (
            srv.op(),
            format!("{OP}/tenants/%FF%FE/users"),
            "M_INVALID_PARAM",
        ),
    ];
    for (caller, path, errcode) in cases {
        let resp = caller.get(&path).await;
        assert_error(&resp, 400, errcode);
        assert!(
            resp.header("content-type").starts_with("application/json"),
            "{path}: {:?}",
            resp.headers
        );
    }
}

#[tokio::test]
async fn missing_and_unknown_tokens_are_401() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    assert_error(&api.whoami().await, 401, "M_MISSING_TOKEN");
    let resp = api.auth("syt_not_a_real_token_0123456789").whoami().await;
    assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
    let resp = api
        .get(&format!(
            "{CS}/account/whoami?access_token=not_a_real_token"
        ))
        .await;
    assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
    // An empty bearer token is no token.
    let resp = TestServer::send(
        api.builder(Method::GET, &format!("{CS}/account/whoami"))
            .header("Authorization", "Bearer "),
    )
    .await;
    assert!(resp.status == 401, "{}: {}", resp.status, resp.text);
    assert!(
        ["M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"].contains(&resp.errcode()),
        "{}",
        resp.text
    );
}

#[tokio::test]
async fn token_accepted_in_header_or_query() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let alice = api.register("alice", "pw-alice-1").await;

    let body = api.as_user(&alice).whoami().await.ok();
    assert_eq!(body["user_id"], alice.user_id.as_str());

    let body = api
        .get(&format!(
            "{CS}/account/whoami?access_token={}",
            enc(&alice.access_token)
        ))
        .await
        .ok();
    assert_eq!(body["user_id"], alice.user_id.as_str());
    assert_eq!(body["device_id"], alice.device_id.as_str());
}

#[tokio::test]
async fn cors_headers_and_preflight() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let origin = "https://app.element.example";

    let resp = TestServer::send(
        api.builder(Method::GET, "/_matrix/client/versions")
            .header("Origin", origin),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("access-control-allow-origin"),
        "*",
        "{:?}",
        resp.headers
    );

    // Error responses carry CORS headers too, or browsers can't read the errcode.
    let resp = TestServer::send(
        api.builder(Method::GET, &format!("{CS}/account/whoami"))
            .header("Origin", origin),
    )
    .await;
    assert_error(&resp, 401, "M_MISSING_TOKEN");
    assert_eq!(
        resp.header("access-control-allow-origin"),
        "*",
        "{:?}",
        resp.headers
    );

    for (path, method) in [
        (format!("{CS}/login"), "POST"),
        (
            format!("{CS}/profile/%40alice%3Alocalhost/displayname"),
            "PUT",
        ),
        (format!("{CS}/devices/ABC"), "DELETE"),
        (
            "/_synapse/admin/v2/users/%40alice%3Alocalhost".to_owned(),
            "PUT",
        ),
    ] {
        let resp = TestServer::send(
            api.builder(Method::OPTIONS, &path)
                .header("Origin", origin)
                .header("Access-Control-Request-Method", method)
                .header(
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
        )
        .await;
        assert!(
            resp.status == 200 || resp.status == 204,
            "preflight {path}: {}: {}",
            resp.status,
            resp.text
        );
        assert_eq!(
            resp.header("access-control-allow-origin"),
            "*",
            "{:?}",
            resp.headers
        );
        let methods = resp
            .header("access-control-allow-methods")
            .to_ascii_uppercase();
        assert!(
            methods.contains(method) || methods.contains('*'),
            "allow-methods {methods:?} lacks {method}"
        );
        let headers = resp
            .header("access-control-allow-headers")
            .to_ascii_lowercase();
        assert!(
            (headers.contains("authorization") && headers.contains("content-type"))
                || headers.contains('*'),
            "allow-headers {headers:?}"
        );
    }
}

#[tokio::test]
async fn oversized_body_is_413_too_large() {
    let srv =
        TestServer::start_with(Options::default().env("MAAS_LIMITS__MAX_REQUEST_BYTES", "2048"))
            .await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    let api = srv.on("localhost");
    let big = "x".repeat(8192);
    let resp = api.login_raw(login_body("alice", &big)).await;
    assert_error(&resp, 413, "M_TOO_LARGE");
    let resp = api
        .register_raw(json!({"username": "bob", "password": big}))
        .await;
    assert_error(&resp, 413, "M_TOO_LARGE");
    // A body under the limit is fine.
    api.login("alice", "pw-alice-1").await;
}

#[tokio::test]
async fn cors_on_every_matrix_and_synapse_response() {
    let srv = TestServer::start().await;
    for (host, path) in [
        ("localhost", format!("{CS}/no/such/endpoint")),
        ("localhost", "/_synapse/admin/v1/server_version".to_owned()),
        ("localhost", "/_matrix/federation/v1/version".to_owned()),
        (
            "localhost",
            format!("{CS}/register/available?username=bad%20name"),
        ),
        ("nope.test", "/_matrix/client/versions".to_owned()),
    ] {
        let resp = TestServer::send(
            srv.on(host)
                .builder(Method::GET, &path)
                .header("Origin", "https://app.example"),
        )
        .await;
        assert!(resp.status >= 200, "{path}");
        assert_eq!(
            resp.header("access-control-allow-origin"),
            "*",
            "{host}{path} -> {}: {:?}",
            resp.status,
            resp.headers
        );
    }
}

#[tokio::test]
async fn host_names_are_case_insensitive() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    let s = srv.register("A.Test", "alice", "pw-1").await;
    assert_eq!(s.user_id, "@alice:a.test");
    srv.on("LOCALHOST")
        .get("/_matrix/client/versions")
        .await
        .ok();
    srv.on("a.TEST:8448").as_user(&s).whoami().await.ok();
}
