//! The Synapse-compatible admin API surface: tenant by `Host`, its admins by access token
//! (`GET /_synapse/admin/v1/users/{userId}/admin`), and `server_version`, open to all.

use serde_json::{Value, json};

use crate::harness::*;

const ADMIN: &str = "/_synapse/admin/v1";

fn is_admin_path(user_id: &str) -> String {
    format!("{ADMIN}/users/{}/admin", enc(user_id))
}

/// A server with tenants `a.test` and `b.test`, and a session of `a.test`'s admin.
async fn tenant_with_admin() -> (TestServer, Session) {
    let srv = TestServer::start().await;
    let tenant = srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let password = tenant["admin"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no admin password: {tenant}"));
    let admin = srv.login("a.test", "admin", password).await;
    (srv, admin)
}

#[tokio::test]
async fn server_version_needs_no_authentication() {
    let (srv, admin) = tenant_with_admin().await;
    let path = format!("{ADMIN}/server_version");
    let expected = json!({"server_version": env!("CARGO_PKG_VERSION")});
    let api = srv.on("a.test");
    assert_eq!(api.get(&path).await.ok(), expected);
    assert_eq!(api.as_user(&admin).get(&path).await.ok(), expected);
    assert_eq!(srv.on("localhost").get(&path).await.ok(), expected);
    assert_error(&srv.on("nope.test").get(&path).await, 404, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn admin_endpoints_want_a_tenant_admin() {
    let (srv, _admin) = tenant_with_admin().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let path = is_admin_path(&alice.user_id);

    assert_error(&api.get(&path).await, 401, "M_MISSING_TOKEN");
    assert_error(
        &api.auth("no-such-token").get(&path).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(&api.as_user(&alice).get(&path).await, 403, "M_FORBIDDEN");
    // The operator is not a tenant admin: the two privileges are separate.
    let resp = api.auth(&srv.operator_token).get(&path).await;
    assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn admin_of_one_tenant_is_nobody_on_another() {
    let (srv, admin) = tenant_with_admin().await;
    let b = srv.register("b.test", "bob", "pw-bob-1").await;
    let resp = srv
        .on("b.test")
        .as_user(&admin)
        .get(&is_admin_path(&b.user_id))
        .await;
    assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn is_user_admin_answers_for_local_users() {
    let (srv, admin) = tenant_with_admin().await;
    let api = srv.on("a.test").as_user(&admin);
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let admin_of = |body: Value| body["admin"].clone();

    assert_eq!(
        admin_of(api.get(&is_admin_path(&admin.user_id)).await.ok()),
        true
    );
    assert_eq!(
        admin_of(api.get(&is_admin_path(&alice.user_id)).await.ok()),
        false
    );
    // Like Synapse: an unknown local user is no admin, a remote one is not ours to answer for.
    let unknown = api.get(&is_admin_path("@nobody:a.test")).await.ok();
    assert_eq!(admin_of(unknown), false);
    let remote = api.get(&is_admin_path("@bob:b.test")).await;
    assert_error(&remote, 400, "M_UNKNOWN");

    let promoted = srv
        .op()
        .patch(
            &format!("{OP}/tenants/a.test/users/alice"),
            json!({"admin": true}),
        )
        .await
        .ok();
    assert_eq!(promoted["admin"], true, "{promoted}");
    // Her session is an admin's from the next request on.
    let body = srv
        .on("a.test")
        .as_user(&alice)
        .get(&is_admin_path(&alice.user_id))
        .await
        .ok();
    assert_eq!(admin_of(body), true);
}

#[tokio::test]
async fn suspended_tenant_closes_its_admin_api() {
    let (srv, admin) = tenant_with_admin().await;
    srv.patch_tenant("a.test", json!({"suspended": true})).await;
    let api = srv.on("a.test").as_user(&admin);
    let resp = api.get(&format!("{ADMIN}/server_version")).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = api.get(&is_admin_path(&admin.user_id)).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    srv.on("b.test")
        .get(&format!("{ADMIN}/server_version"))
        .await
        .ok();
}
