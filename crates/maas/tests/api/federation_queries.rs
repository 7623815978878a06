//! Queries between servers (spec: Server-Server API, "Querying for information") and the
//! `X-Matrix` signatures they need ("Request Authentication"). Two tenants of one process
//! federate in-process, through the same router and checks as a request from the network;
//! the test also plays a server itself, signing with a tenant's real key taken from its export.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use ruma::api::federation::authentication::{ServerSignaturesInput, XMatrix};
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};

use crate::harness::*;

const PROFILE: &str = "/_matrix/federation/v1/query/profile";

async fn two_tenants() -> TestServer {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    srv
}

/// Registers `@alice:a.test` with the display name `alice`.
async fn alice(srv: &TestServer) -> Session {
    let alice = srv.register("a.test", "alice", "password-alice").await;
    srv.on("a.test")
        .as_user(&alice)
        .put(
            "/_matrix/client/v3/profile/@alice:a.test/displayname",
            json!({"displayname": "alice"}),
        )
        .await
        .ok();
    alice
}

/// The current signing key of `server_name`, read from its archive.
pub(crate) async fn signing_key(srv: &TestServer, server_name: &str) -> Ed25519KeyPair {
    let archive = crate::export::export(srv, server_name).await;
    let text = String::from_utf8(archive).expect("archive text");
    let chunk: Value = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|chunk| chunk["table"] == "signing_keys")
        .expect("signing_keys in the archive");
    let columns: Vec<&str> = chunk["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("column name"))
        .collect();
    let at = |name: &str| columns.iter().position(|c| *c == name).expect(name);
    let rows = chunk["rows"].as_array().expect("rows");
    let newest = rows
        .iter()
        .max_by_key(|row| row[at("created_ts")].as_i64())
        .expect("a key");
    let version = newest[at("key_id")]
        .as_str()
        .and_then(|id| id.strip_prefix("ed25519:"))
        .expect("ed25519 key id");
    let der = STANDARD
        .decode(newest[at("pkcs8")]["$bytes"].as_str().expect("pkcs8 bytes"))
        .expect("base64");
    Ed25519KeyPair::from_der(&der, version.to_owned()).expect("key pair")
}

/// `X-Matrix` for a request, as `origin` signs it with `key` for `destination`.
pub(crate) fn x_matrix(
    method: &str,
    path: &str,
    body: Option<&Value>,
    origin: &str,
    destination: &str,
    key: &Ed25519KeyPair,
) -> String {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(bytes)
        .expect("request");
    let input = ServerSignaturesInput::new(
        origin.try_into().expect("origin"),
        destination.try_into().expect("destination"),
        key,
    );
    XMatrix::try_from_http_request(&request, input)
        .expect("signed")
        .to_string()
}

async fn federation_get(srv: &TestServer, host: &str, path: &str, auth: Option<&str>) -> Resp {
    let mut builder = srv.on(host).builder(Method::GET, path);
    if let Some(auth) = auth {
        builder = builder.header("Authorization", auth);
    }
    TestServer::send(builder).await
}

#[tokio::test]
async fn a_user_reads_the_profile_of_a_user_of_another_tenant() {
    let srv = two_tenants().await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    srv.on("b.test")
        .as_user(&bob)
        .put(
            "/_matrix/client/v3/profile/@bob:b.test/displayname",
            json!({"displayname": "Bob of B"}),
        )
        .await
        .ok();
    let as_alice = srv.on("a.test").as_user(&alice);
    let profile = as_alice
        .get("/_matrix/client/v3/profile/@bob:b.test")
        .await
        .ok();
    assert_eq!(profile["displayname"], "Bob of B", "{profile}");
    let name = as_alice
        .get("/_matrix/client/v3/profile/@bob:b.test/displayname")
        .await
        .ok();
    assert_eq!(name["displayname"], "Bob of B", "{name}");
    // Bob's server says he has no avatar; nobody is behind an unknown user id.
    let avatar = as_alice
        .get("/_matrix/client/v3/profile/@bob:b.test/avatar_url")
        .await;
    assert_error(&avatar, 404, "M_NOT_FOUND");
    let nobody = as_alice
        .get("/_matrix/client/v3/profile/@nobody:b.test")
        .await;
    assert_error(&nobody, 404, "M_NOT_FOUND");
    // A server this process can't reach is an upstream failure, not "no such user".
    let unreachable = as_alice
        .get("/_matrix/client/v3/profile/@carol:127.0.0.1:1")
        .await;
    assert_eq!(unreachable.status, 502, "{}", unreachable.text);
}

#[tokio::test]
async fn a_user_resolves_an_alias_of_another_tenant() {
    let srv = two_tenants().await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    let room = srv
        .on("b.test")
        .as_user(&bob)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"room_alias_name": "lobby"}),
        )
        .await
        .ok();
    let as_alice = srv.on("a.test").as_user(&alice);
    let found = as_alice
        .get(&format!(
            "/_matrix/client/v3/directory/room/{}",
            enc("#lobby:b.test")
        ))
        .await
        .ok();
    assert_eq!(found["room_id"], room["room_id"], "{found}");
    assert_eq!(found["servers"], json!(["b.test"]), "{found}");
    let missing = as_alice
        .get(&format!(
            "/_matrix/client/v3/directory/room/{}",
            enc("#nope:b.test")
        ))
        .await;
    assert_error(&missing, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn federation_requests_need_a_valid_signature_for_this_destination() {
    let srv = two_tenants().await;
    alice(&srv).await;
    let b_key = signing_key(&srv, "b.test").await;
    let path = format!("{PROFILE}?user_id={}", enc("@alice:a.test"));
    let signed = |origin: &str, destination: &str, key: &Ed25519KeyPair| {
        x_matrix("GET", &path, None, origin, destination, key)
    };

    // Signed by b.test's real key for a.test: answered.
    let good = signed("b.test", "a.test", &b_key);
    let resp = federation_get(&srv, "a.test", &path, Some(&good)).await;
    assert_eq!(resp.ok()["displayname"], "alice");

    // No signature at all.
    let resp = federation_get(&srv, "a.test", &path, None).await;
    assert_error(&resp, 401, "M_UNAUTHORIZED");
    // Signed for another destination, and sent to a.test by Host: refused.
    let for_b = signed("b.test", "c.test", &b_key);
    let resp = federation_get(
        &srv,
        "a.test",
        &path,
        Some(&for_b.replace("destination=c.test,", "")),
    )
    .await;
    assert_error(&resp, 401, "M_UNAUTHORIZED");
    // A key b.test never published.
    let stranger =
        Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "k0".into()).expect("key pair");
    let resp = federation_get(
        &srv,
        "a.test",
        &path,
        Some(&signed("b.test", "a.test", &stranger)),
    )
    .await;
    assert_error(&resp, 401, "M_UNAUTHORIZED");
    // b.test's key id, but not b.test's key.
    let impostor =
        Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), b_key.version().to_owned())
            .expect("key pair");
    let resp = federation_get(
        &srv,
        "a.test",
        &path,
        Some(&signed("b.test", "a.test", &impostor)),
    )
    .await;
    assert_error(&resp, 401, "M_UNAUTHORIZED");
    // The signature covers the request: another query string doesn't verify.
    let other_path = format!("{PROFILE}?user_id={}", enc("@bob:a.test"));
    let resp = federation_get(&srv, "a.test", &other_path, Some(&good)).await;
    assert_error(&resp, 401, "M_UNAUTHORIZED");
    // An origin nobody can reach has no keys to check against.
    let resp = federation_get(
        &srv,
        "a.test",
        &path,
        Some(&signed("127.0.0.1:1", "a.test", &b_key)),
    )
    .await;
    assert_error(&resp, 401, "M_UNAUTHORIZED");
    // The same for a body: `POST /key/v2/query` is unsigned, so use a signed request with one
    // once there is one (transactions); queries carry none.
}

#[tokio::test]
async fn federation_queries_answer_with_the_spec_errors() {
    let srv = two_tenants().await;
    alice(&srv).await;
    let b_key = signing_key(&srv, "b.test").await;
    let get = |path: String| {
        let auth = x_matrix("GET", &path, None, "b.test", "a.test", &b_key);
        let srv = &srv;
        async move { federation_get(srv, "a.test", &path, Some(&auth)).await }
    };
    // Only the asked field.
    let only = get(format!(
        "{PROFILE}?user_id={}&field=displayname",
        enc("@alice:a.test")
    ))
    .await;
    assert_eq!(only.ok(), json!({"displayname": "alice"}));
    // Unknown users, users of other servers.
    for user in ["@nobody:a.test", "@alice:b.test"] {
        let resp = get(format!("{PROFILE}?user_id={}", enc(user))).await;
        assert_error(&resp, 404, "M_NOT_FOUND");
    }
    // No user id.
    let resp = get(PROFILE.to_owned()).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    // Aliases of other servers are not this server's to answer.
    let resp = get(format!(
        "/_matrix/federation/v1/query/directory?room_alias={}",
        enc("#lobby:b.test")
    ))
    .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn other_servers_list_the_public_room_directory() {
    let srv = two_tenants().await;
    let alice = alice(&srv).await;
    let as_alice = srv.on("a.test").as_user(&alice);
    for name in ["Lobby", "Garden"] {
        as_alice
            .post(
                "/_matrix/client/v3/createRoom",
                json!({"visibility": "public", "name": name, "preset": "public_chat"}),
            )
            .await
            .ok();
    }
    as_alice
        .post("/_matrix/client/v3/createRoom", json!({"name": "Hidden"}))
        .await
        .ok();
    let b_key = signing_key(&srv, "b.test").await;
    let path = "/_matrix/federation/v1/publicRooms?limit=1";
    let auth = x_matrix("GET", path, None, "b.test", "a.test", &b_key);
    let first = federation_get(&srv, "a.test", path, Some(&auth)).await.ok();
    assert_eq!(first["chunk"].as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(first["total_room_count_estimate"], 2, "{first}");
    assert!(first["next_batch"].is_string(), "{first}");

    let path = "/_matrix/federation/v1/publicRooms";
    let body = json!({"filter": {"generic_search_term": "gard"}});
    let auth = x_matrix("POST", path, Some(&body), "b.test", "a.test", &b_key);
    let found = TestServer::send(
        srv.on("a.test")
            .builder(Method::POST, path)
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .body(body.to_string()),
    )
    .await
    .ok();
    let names: Vec<&str> = found["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, vec!["Garden"], "{found}");
    // Unsigned, it is refused like every federation request.
    let resp = federation_get(&srv, "a.test", path, None).await;
    assert_error(&resp, 401, "M_UNAUTHORIZED");
}

#[tokio::test]
async fn an_openid_token_tells_a_third_party_who_the_user_is() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let path = format!(
        "/_matrix/client/v3/user/{}/openid/request_token",
        enc(&alice.user_id)
    );
    let token = as_alice.post(&path, json!({})).await.ok();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["matrix_server_name"], "a.test");
    assert_eq!(token["expires_in"], 3600);
    let access_token = token["access_token"].as_str().expect("access token");

    // The third party asks the user's server, with no signature.
    let userinfo = |host: &'static str, token: String| {
        let srv = &srv;
        async move {
            federation_get(
                srv,
                host,
                &format!(
                    "/_matrix/federation/v1/openid/userinfo?access_token={}",
                    enc(&token)
                ),
                None,
            )
            .await
        }
    };
    let info = userinfo("a.test", access_token.to_owned()).await.ok();
    assert_eq!(info["sub"], alice.user_id.as_str());
    // The token proves nothing on another tenant, nor does a made-up one.
    assert_error(
        &userinfo("b.test", access_token.to_owned()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &userinfo("a.test", "made-up".to_owned()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    // Only for oneself.
    let resp = srv
        .on("b.test")
        .as_user(&bob)
        .post(
            &format!(
                "/_matrix/client/v3/user/{}/openid/request_token",
                enc(&alice.user_id)
            ),
            json!({}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}
