//! `/versions`, `/.well-known/matrix/{client,server}`, `/capabilities`.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn versions_lists_supported_versions() {
    let srv = TestServer::start().await;
    for host in ["localhost", "127.0.0.1"] {
        let body = srv.on(host).get("/_matrix/client/versions").await.ok();
        let versions = body["versions"]
            .as_array()
            .unwrap_or_else(|| panic!("no versions: {body}"));
        assert!(!versions.is_empty(), "{body}");
        for v in versions {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("non-string version in {body}"));
            assert!(
                v.starts_with("v1.") || v.starts_with("r0."),
                "unexpected version {v:?} in {body}"
            );
        }
        if let Some(features) = body.get("unstable_features") {
            assert!(
                features.is_object(),
                "unstable_features must be an object: {body}"
            );
        }
    }
    // Works without any authentication, also with a port in the Host header.
    let port = srv.port;
    let body = srv
        .on(&format!("localhost:{port}"))
        .get("/_matrix/client/versions")
        .await
        .ok();
    assert!(body["versions"].is_array(), "{body}");
}

#[tokio::test]
async fn well_known_client_default_and_configured() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;

    let body = srv
        .on("localhost")
        .get("/.well-known/matrix/client")
        .await
        .ok();
    let base = body["m.homeserver"]["base_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        base.starts_with("http://") || base.starts_with("https://"),
        "{body}"
    );

    let resp = srv.on("a.test").get("/.well-known/matrix/client").await;
    assert!(
        resp.header("access-control-allow-origin") == "*",
        "no CORS on well-known: {:?}",
        resp.headers
    );
    let body = resp.ok();
    let base = body["m.homeserver"]["base_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        base.starts_with("http://") || base.starts_with("https://"),
        "{body}"
    );
    assert!(
        base.contains("a.test"),
        "default base_url of a.test should name it: {body}"
    );

    let tenant = srv
        .patch_tenant(
            "a.test",
            json!({"client_base_url": "https://matrix.a.test"}),
        )
        .await;
    assert_eq!(
        tenant["client_base_url"], "https://matrix.a.test",
        "{tenant}"
    );
    let body = srv
        .on("a.test")
        .get("/.well-known/matrix/client")
        .await
        .ok();
    assert_eq!(
        body["m.homeserver"]["base_url"]
            .as_str()
            .map(|s| s.trim_end_matches('/')),
        Some("https://matrix.a.test"),
        "{body}"
    );
    // Another tenant is unaffected.
    let body = srv
        .on("localhost")
        .get("/.well-known/matrix/client")
        .await
        .ok();
    assert!(
        !body["m.homeserver"]["base_url"]
            .as_str()
            .unwrap()
            .contains("a.test"),
        "{body}"
    );
}

#[tokio::test]
async fn well_known_server_default_and_configured() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;

    let body = srv
        .on("a.test")
        .get("/.well-known/matrix/server")
        .await
        .ok();
    let server = body["m.server"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        server == "a.test" || server.starts_with("a.test:"),
        "{body}"
    );

    srv.patch_tenant("a.test", json!({"federation_server": "fed.a.test:8448"}))
        .await;
    let body = srv
        .on("a.test")
        .get("/.well-known/matrix/server")
        .await
        .ok();
    assert_eq!(body["m.server"], "fed.a.test:8448", "{body}");
}

#[tokio::test]
async fn capabilities_require_auth_and_list_change_password() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let resp = api.get(&format!("{CS}/capabilities")).await;
    assert_error(&resp, 401, "M_MISSING_TOKEN");

    let alice = api.register("alice", "secret-pw-1").await;
    let body = api
        .as_user(&alice)
        .get(&format!("{CS}/capabilities"))
        .await
        .ok();
    let caps = &body["capabilities"];
    assert!(caps.is_object(), "{body}");
    // Spec: when `m.change_password` is absent, clients assume password changes work.
    if let Some(cp) = caps.get("m.change_password") {
        assert_eq!(
            cp["enabled"], true,
            "account/password is implemented: {body}"
        );
    }
    // No 3PID support, so it must not be advertised as changeable.
    if let Some(tp) = caps.get("m.3pid_changes") {
        assert_eq!(tp["enabled"], false, "{body}");
    }
    if let Some(rv) = caps.get("m.room_versions") {
        assert!(rv["default"].is_string(), "{body}");
        assert!(rv["available"].is_object(), "{body}");
    }
}
