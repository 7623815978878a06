//! Protocol abuse, request level: duplicate `Host` headers, absolute-form targets, odd hosts,
//! the case of the `Bearer` scheme, and a malformed body for every endpoint family, which must
//! each be a Matrix error (never a dropped connection, never a 5xx).

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;
use crate::raw_http::*;
use crate::room_support::*;

fn get(target: &str, host_lines: &str) -> String {
    format!("GET {target} HTTP/1.1\r\n{host_lines}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn two_host_headers_are_400() {
    let srv = TestServer::start().await;
    for hosts in [
        "Host: localhost\r\nHost: evil.test\r\n",
        "Host: localhost\r\nHost: localhost\r\n",
    ] {
        for path in [
            "/_matrix/client/versions",
            "/.well-known/matrix/client",
            "/_matrix/federation/v1/version",
        ] {
            let response = exchange(&srv, &get(path, hosts)).await;
            response.assert_error(400, "M_INVALID_PARAM");
        }
    }
    let response = exchange(
        &srv,
        &get("/_matrix/client/versions", "Host: localhost\r\n"),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.head);
}

#[tokio::test]
async fn an_absolute_form_target_is_routed_by_its_authority() {
    let srv = TestServer::start().await;
    // RFC 9112 §3.2.2: the target's authority wins over `Host`.
    let to_nobody = get(
        "http://nobody.test/_matrix/client/versions",
        "Host: localhost\r\n",
    );
    exchange(&srv, &to_nobody)
        .await
        .assert_error(404, "M_UNRECOGNIZED");
    for target in [
        "http://localhost/_matrix/client/versions",
        &format!("http://localhost:{}/_matrix/client/versions", srv.port),
        "http://LOCALHOST./_matrix/client/versions",
    ] {
        let response = exchange(&srv, &get(target, "Host: nobody.test\r\n")).await;
        assert_eq!(response.status, 200, "{target}: {}", response.head);
    }
}

#[tokio::test]
async fn hosts_match_whatever_their_case_port_or_trailing_dot() {
    let srv = TestServer::start().await;
    for host in [
        "localhost",
        "LOCALHOST",
        "LocalHost:8008",
        "localhost.",
        "localhost.:8008",
        "127.0.0.1",
        "127.0.0.1:1",
    ] {
        let resp = srv.on(host).get("/_matrix/client/versions").await;
        assert_eq!(resp.status, 200, "{host}: {}", resp.text);
    }
    for host in ["localhost..", ".localhost", "localhost.test", "[::1]", ""] {
        let resp = srv.on(host).get("/_matrix/client/versions").await;
        assert_error(&resp, 404, "M_UNRECOGNIZED");
    }
    // An IPv6 literal as a tenant's host, with and without port.
    srv.create_tenant("v6.test", &["[::1]"], "open").await;
    let bob = srv.on("[::1]:8008").register("bob", "pw-bob-1").await;
    assert_eq!(bob.user_id, "@bob:v6.test");
    let me = srv.on("[::1]").as_user(&bob).whoami().await.ok();
    assert_eq!(me["user_id"], "@bob:v6.test");
}

#[tokio::test]
async fn a_request_without_host_is_400_in_http_1_1_and_unrouted_in_1_0() {
    let srv = TestServer::start().await;
    let response = exchange(
        &srv,
        "GET /_matrix/client/versions HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    response.assert_error(400, "M_INVALID_PARAM");
    // HTTP/1.0 has no `Host` to require: no tenant to route to.
    let response = exchange(&srv, "GET /_matrix/client/versions HTTP/1.0\r\n\r\n").await;
    response.assert_error(404, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let alice = api.register("alice", "pw-alice-1").await;
    let token = &alice.access_token;
    for value in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("BeArEr   {token}"),
    ] {
        let resp = TestServer::send(
            api.builder(Method::GET, &format!("{CS}/account/whoami"))
                .header("Authorization", &value),
        )
        .await;
        assert_eq!(resp.status, 200, "{value}: {}", resp.text);
        assert_eq!(resp.body["user_id"], alice.user_id.as_str());
    }
    for value in [format!("Bearer{token}"), format!("Basic {token}")] {
        let resp = TestServer::send(
            api.builder(Method::GET, &format!("{CS}/account/whoami"))
                .header("Authorization", &value),
        )
        .await;
        assert_error(&resp, 401, "M_MISSING_TOKEN");
    }
}

/// Bodies that are not what any endpoint wants: wrong JSON types at the top, `type` fields
/// missing or of the wrong type (ruma dispatches on them), auth objects without a type.
fn junk_bodies() -> Vec<Value> {
    let mut nested = json!(0);
    for _ in 0..200 {
        nested = json!([nested]);
    }
    vec![
        json!({}),
        json!([]),
        json!(null),
        json!(5),
        json!("x"),
        json!({"type": 5}),
        json!({"type": null}),
        json!({"auth": {}}),
        json!({"auth": {"type": 5}}),
        json!({"auth": {"type": "x.custom"}}),
        json!({"identifier": {}, "type": "m.login.password"}),
        json!({"identifier": {"type": 5}, "type": "m.login.password"}),
        json!({"content": 5, "state_key": [], "user_id": 5, "visibility": 5}),
        nested,
    ]
}

/// Endpoints of every family, with the method they take a body on.
fn endpoint_families(user: &str, room: &str, event: &str) -> Vec<(Method, String)> {
    let u = enc(user);
    let r = enc(room);
    let e = enc(event);
    let put = |path: String| (Method::PUT, path);
    let post = |path: String| (Method::POST, path);
    vec![
        post(format!("{CS}/login")),
        post(format!("{CS}/register")),
        post(format!("{CS}/account/password")),
        post(format!("{CS}/account/deactivate")),
        post(format!("{CS}/delete_devices")),
        put(format!("{CS}/devices/SOMEDEVICE")),
        (Method::DELETE, format!("{CS}/devices/SOMEDEVICE")),
        post(format!("{CS}/createRoom")),
        put(format!("{CS}/rooms/{r}/send/m.room.message/t1")),
        put(format!("{CS}/rooms/{r}/state/m.room.topic/")),
        post(format!("{CS}/rooms/{r}/invite")),
        post(format!("{CS}/rooms/{r}/kick")),
        post(format!("{CS}/rooms/{r}/ban")),
        post(format!("{CS}/rooms/{r}/unban")),
        post(format!("{CS}/join/{}", enc("#nowhere:localhost"))),
        post(format!("{CS}/knock/{r}")),
        post(format!("{CS}/rooms/{r}/read_markers")),
        post(format!("{CS}/rooms/{r}/receipt/m.read/{e}")),
        put(format!("{CS}/rooms/{r}/typing/{u}")),
        put(format!("{CS}/rooms/{r}/redact/{e}/t2")),
        post(format!("{CS}/rooms/{r}/upgrade")),
        put(format!("{CS}/directory/list/room/{r}")),
        put(format!("{CS}/directory/room/{}", enc("#junk:localhost"))),
        post(format!("{CS}/publicRooms")),
        post(format!("{CS}/user_directory/search")),
        put(format!("{CS}/user/{u}/account_data/m.junk")),
        put(format!("{CS}/user/{u}/rooms/{r}/account_data/m.junk")),
        put(format!("{CS}/user/{u}/rooms/{r}/tags/u.junk")),
        post(format!("{CS}/user/{u}/filter")),
        put(format!("{CS}/profile/{u}/displayname")),
        put(format!("{CS}/profile/{u}/avatar_url")),
        put(format!("{CS}/presence/{u}/status")),
        put(format!("{CS}/pushrules/global/override/junk")),
        put(format!("{CS}/pushrules/global/override/junk/actions")),
        put(format!("{CS}/pushrules/global/override/junk/enabled")),
        post(format!("{CS}/keys/upload")),
        post(format!("{CS}/keys/query")),
        post(format!("{CS}/keys/claim")),
        post(format!("{CS}/keys/device_signing/upload")),
        post(format!("{CS}/keys/signatures/upload")),
        put(format!("{CS}/sendToDevice/m.junk/t3")),
        post(format!("{CS}/room_keys/version")),
        put(format!("{CS}/room_keys/version/1")),
        put(format!("{CS}/room_keys/keys?version=1")),
        put(format!("{CS}/room_keys/keys/{r}?version=1")),
        put(format!("{CS}/room_keys/keys/{r}/s1?version=1")),
        post(format!("{OP}/tenants")),
        (Method::PATCH, format!("{OP}/tenants/localhost")),
        post(format!("{OP}/tenants/localhost/users")),
        (Method::PATCH, format!("{OP}/tenants/localhost/users/alice")),
        post(format!(
            "{OP}/tenants/localhost/users/nobody/reset_password"
        )),
        post(format!("{OP}/tenants/localhost/registration_tokens")),
    ]
}

/// Queries and paths no endpoint accepts, on the endpoints that take them.
fn junk_queries(room: &str, event: &str) -> Vec<String> {
    let r = enc(room);
    let e = enc(event);
    vec![
        format!("{CS}/sync?filter=%7B&timeout=soon"),
        format!("{CS}/sync?since=yesterday"),
        format!("{CS}/rooms/{r}/messages?dir=sideways&limit=-1"),
        format!("{CS}/rooms/{r}/context/{e}?limit=many"),
        format!("{CS}/rooms/{r}/members?membership=bogus"),
        format!("/_matrix/client/v1/rooms/{r}/threads?limit=many&include=x"),
        format!("/_matrix/client/v1/rooms/{r}/relations/{e}?limit=many"),
        format!("/_matrix/client/v1/rooms/{r}/timestamp_to_event?dir=x&ts=y"),
        format!("/_matrix/client/v1/rooms/%FF%FE/threads"),
        format!("{CS}/rooms/%FF%FE/state"),
        format!("{CS}/keys/changes?from=x"),
        format!("{CS}/publicRooms?limit=many"),
        format!("{CS}/register/available?username="),
        format!("{CS}/profile/%FF"),
        format!("/_synapse/admin/v1/users/%FF/admin"),
        format!("{OP}/tenants/localhost/users?limit=many"),
        format!("{OP}/tenants/%FF%FE/users"),
    ]
}

/// A Matrix answer: a success, a user-interactive-auth challenge or an error with an errcode,
/// never a 5xx.
#[track_caller]
fn assert_matrix_answer(what: &str, resp: &Resp) {
    let matrix = resp.status < 300
        || resp.body.get("flows").is_some()
        || resp.body["errcode"]
            .as_str()
            .is_some_and(|e| e.starts_with("M_"));
    assert!(
        resp.status < 500 && matrix && resp.body.is_object(),
        "{what}: {} {}",
        resp.status,
        resp.text
    );
    assert!(
        resp.header("content-type").starts_with("application/json"),
        "{what}: {:?}",
        resp.headers
    );
}

#[tokio::test]
async fn malformed_input_to_every_endpoint_family_is_a_matrix_error() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let room = create_room(&api, json!({})).await;
    let event = send_text(&api, &room, "hello").await;
    let as_operator = |path: &str| path.starts_with(OP);
    for (method, path) in endpoint_families(&alice.user_id, &room, &event) {
        let caller = if as_operator(&path) {
            srv.op()
        } else {
            api.clone()
        };
        for body in junk_bodies() {
            let resp = caller.send(method.clone(), &path, Some(&body)).await;
            assert_matrix_answer(&format!("{method} {path} {body}"), &resp);
        }
        for raw in ["{\"unterminated\": ", "\u{0}", "{} {}"] {
            let resp = TestServer::send(
                caller
                    .builder(method.clone(), &path)
                    .header("Content-Type", "application/json")
                    .body(raw),
            )
            .await;
            assert_matrix_answer(&format!("{method} {path} {raw:?}"), &resp);
        }
        let resp =
            TestServer::send(caller.builder(method.clone(), &path).body(vec![0xff, 0xfe])).await;
        assert_matrix_answer(&format!("{method} {path} (not UTF-8)"), &resp);
    }
    for path in junk_queries(&room, &event) {
        let caller = if as_operator(&path) {
            srv.op()
        } else {
            api.clone()
        };
        let resp = caller.get(&path).await;
        assert_matrix_answer(&format!("GET {path}"), &resp);
    }
    // A malformed `X-Matrix` authorization on the federation surface.
    let resp = TestServer::send(
        srv.on("localhost")
            .builder(Method::GET, "/_matrix/federation/v1/version")
            .header("Authorization", "X-Matrix ,,,="),
    )
    .await;
    assert_matrix_answer("federation", &resp);
    // Still serving, and alice is still who she was.
    let me = api.whoami().await.ok();
    assert_eq!(me["user_id"], alice.user_id.as_str());
}
