//! The Server-Server API surface: which tenant a federation request is for (the `destination`
//! of its `X-Matrix` authorization, else its `Host`), seen through
//! `GET /_matrix/federation/v1/version`, which needs no signature.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

const VERSION: &str = "/_matrix/federation/v1/version";

/// An `X-Matrix` authorization from `remote.test`; its signature is not checked by routing.
fn x_matrix(destination: Option<&str>) -> String {
    let destination = destination
        .map(|d| format!(r#",destination="{d}""#))
        .unwrap_or_default();
    format!(r#"X-Matrix origin="remote.test",key="ed25519:k1",sig="c2lnbmF0dXJl"{destination}"#)
}

/// `GET /version` on `host` with these `Authorization` values.
async fn version(srv: &TestServer, host: &str, authorizations: &[&str]) -> Resp {
    let mut builder = srv.on(host).builder(Method::GET, VERSION);
    for value in authorizations {
        builder = builder.header("Authorization", *value);
    }
    TestServer::send(builder).await
}

async fn two_tenants() -> TestServer {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    srv
}

#[track_caller]
fn assert_version(resp: Resp) {
    let body = resp.ok();
    assert_eq!(
        body["server"],
        json!({"name": "maas", "version": env!("CARGO_PKG_VERSION")}),
        "{body}"
    );
}

#[tokio::test]
async fn version_by_host_and_by_destination() {
    let srv = two_tenants().await;
    assert_version(version(&srv, "a.test", &[]).await);
    assert_version(version(&srv, "a.test:8448", &[]).await);
    // A request routed by destination needs no known host.
    let header = x_matrix(Some("b.test"));
    assert_version(version(&srv, "federation.example", &[&header]).await);
    // Servers older than spec v1.3 send no destination: their `Host` decides.
    assert_version(version(&srv, "a.test", &[&x_matrix(None)]).await);
    // Other authorization schemes are not routing's business.
    assert_version(version(&srv, "a.test", &["Bearer some-token"]).await);
}

#[tokio::test]
async fn destination_wins_over_host() {
    let srv = two_tenants().await;
    let resp = version(&srv, "a.test", &[&x_matrix(Some("nope.test"))]).await;
    assert_error(&resp, 404, "M_UNRECOGNIZED");
    srv.patch_tenant("b.test", json!({"suspended": true})).await;
    let resp = version(&srv, "a.test", &[&x_matrix(Some("b.test"))]).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let header = x_matrix(Some("a.test"));
    assert_version(version(&srv, "b.test", &[&header]).await);
}

#[tokio::test]
async fn unknown_destination_or_host_is_404_unrecognized() {
    let srv = two_tenants().await;
    let header = x_matrix(Some("nope.test"));
    for resp in [
        version(&srv, "nope.test", &[&header]).await,
        version(&srv, "nope.test", &[]).await,
    ] {
        assert_error(&resp, 404, "M_UNRECOGNIZED");
        assert!(
            resp.header("content-type").starts_with("application/json"),
            "{:?}",
            resp.headers
        );
    }
    // A destination is a server name, not any host the tenant answers on.
    srv.create_tenant("c.test", &["matrix.c.test"], "open")
        .await;
    let resp = version(&srv, "c.test", &[&x_matrix(Some("matrix.c.test"))]).await;
    assert_error(&resp, 404, "M_UNRECOGNIZED");
    assert_version(version(&srv, "matrix.c.test", &[&x_matrix(Some("c.test"))]).await);
}

#[tokio::test]
async fn malformed_x_matrix_is_400_unauthorized() {
    let srv = two_tenants().await;
    let missing_sig = r#"X-Matrix origin="remote.test",key="ed25519:k1",destination="a.test""#;
    let bad_destination =
        r#"X-Matrix origin="remote.test",key="ed25519:k1",sig="c2ln",destination="a b""#;
    for header in ["X-Matrix", "X-Matrix ,,,=", missing_sig, bad_destination] {
        let resp = version(&srv, "a.test", &[header]).await;
        assert_error(&resp, 400, "M_UNAUTHORIZED");
    }
}

#[tokio::test]
async fn suspended_tenant_refuses_federation_until_resumed() {
    let srv = two_tenants().await;
    srv.patch_tenant("a.test", json!({"suspended": true})).await;
    let header = x_matrix(Some("a.test"));
    assert_error(&version(&srv, "a.test", &[]).await, 403, "M_FORBIDDEN");
    let resp = version(&srv, "b.test", &[&header]).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Other tenants are unaffected, and discovery stays open.
    assert_version(version(&srv, "b.test", &[]).await);
    srv.on("a.test")
        .get("/.well-known/matrix/server")
        .await
        .ok();

    srv.patch_tenant("a.test", json!({"suspended": false}))
        .await;
    assert_version(version(&srv, "b.test", &[&header]).await);
}

#[tokio::test]
async fn unknown_federation_endpoint_and_method_are_unrecognized() {
    let srv = two_tenants().await;
    let api = srv.on("a.test");
    let resp = api.get("/_matrix/federation/v1/no_such_endpoint").await;
    assert_error(&resp, 404, "M_UNRECOGNIZED");
    let resp = api.post(VERSION, json!({})).await;
    assert_error(&resp, 405, "M_UNRECOGNIZED");
}
