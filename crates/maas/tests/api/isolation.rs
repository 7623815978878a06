//! Tenant isolation: users, tokens, suspension and deletion are per tenant.

use serde_json::json;

use crate::harness::*;

async fn two_tenants() -> TestServer {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test", "chat.b.test"], "open")
        .await;
    srv
}

#[tokio::test]
async fn same_localpart_on_two_tenants() {
    let srv = two_tenants().await;
    let a = srv.register("a.test", "alice", "pw-on-a").await;
    let b = srv.register("b.test", "alice", "pw-on-b").await;
    assert_eq!(a.user_id, "@alice:a.test");
    assert_eq!(b.user_id, "@alice:b.test");

    // Each tenant has its own password for alice.
    assert_error(
        &srv.on("a.test")
            .login_raw(login_body("alice", "pw-on-b"))
            .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &srv.on("b.test")
            .login_raw(login_body("alice", "pw-on-a"))
            .await,
        403,
        "M_FORBIDDEN",
    );
    srv.login("a.test", "alice", "pw-on-a").await;
    // Any host of a tenant reaches the same tenant.
    let s = srv.login("chat.b.test", "alice", "pw-on-b").await;
    assert_eq!(s.user_id, "@alice:b.test");
    // Users of one tenant are unknown on another.
    srv.register("a.test", "onlya", "pw-1").await;
    assert_error(
        &srv.on("b.test")
            .login_raw(login_body("onlya", "pw-1"))
            .await,
        403,
        "M_FORBIDDEN",
    );
    let body = srv
        .on("b.test")
        .get(&format!("{CS}/register/available?username=onlya"))
        .await
        .ok();
    assert_eq!(body["available"], true);
}

#[tokio::test]
async fn token_of_one_tenant_is_unknown_on_another() {
    let srv = two_tenants().await;
    let a = srv.register("a.test", "alice", "pw-on-a").await;
    let b = srv.register("b.test", "bob", "pw-on-b").await;

    assert_error(
        &srv.on("b.test").as_user(&a).whoami().await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &srv.on("a.test").as_user(&b).whoami().await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &srv.on("localhost").as_user(&a).whoami().await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    let resp = srv
        .on("b.test")
        .get(&format!(
            "{CS}/account/whoami?access_token={}",
            enc(&a.access_token)
        ))
        .await;
    assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
    assert_eq!(
        srv.on("a.test").as_user(&a).whoami().await.ok()["user_id"],
        "@alice:a.test"
    );
    assert_eq!(
        srv.on("b.test").as_user(&b).whoami().await.ok()["user_id"],
        "@bob:b.test"
    );
    assert_eq!(
        srv.on("chat.b.test").as_user(&b).whoami().await.ok()["user_id"],
        "@bob:b.test"
    );
    // Logging out on the wrong tenant does nothing.
    let resp = srv
        .on("b.test")
        .as_user(&a)
        .post(&format!("{CS}/logout"), json!({}))
        .await;
    assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
    srv.on("a.test").as_user(&a).whoami().await.ok();
}

#[tokio::test]
async fn suspended_tenant_refuses_and_resumes_with_data() {
    let srv = two_tenants().await;
    let a = srv.register("a.test", "alice", "pw-on-a").await;
    let b = srv.register("b.test", "bob", "pw-on-b").await;

    let tenant = srv.patch_tenant("a.test", json!({"suspended": true})).await;
    assert_eq!(tenant["suspended"], true, "{tenant}");
    let api = srv.on("a.test");
    assert_error(&api.as_user(&a).whoami().await, 403, "M_FORBIDDEN");
    assert_error(
        &api.login_raw(login_body("alice", "pw-on-a")).await,
        403,
        "M_FORBIDDEN",
    );
    let resp = api
        .register_raw(json!({"username": "newbie", "password": "pw-1"}))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Other tenants are unaffected.
    srv.on("b.test").as_user(&b).whoami().await.ok();
    assert_eq!(srv.get_tenant("a.test").await["suspended"], true);

    let tenant = srv
        .patch_tenant("a.test", json!({"suspended": false}))
        .await;
    assert_eq!(tenant["suspended"], false, "{tenant}");
    assert_eq!(
        api.as_user(&a).whoami().await.ok()["user_id"],
        "@alice:a.test"
    );
    api.login("alice", "pw-on-a").await;
    let body = api
        .get(&format!("{CS}/register/available?username=newbie"))
        .await
        .ok();
    assert_eq!(
        body["available"], true,
        "registration while suspended must not have happened"
    );
}

#[tokio::test]
async fn deleted_tenant_is_gone_from_disk_and_routing() {
    let srv = two_tenants().await;
    let a = srv.register("a.test", "alice", "pw-on-a").await;
    let b = srv.register("b.test", "bob", "pw-on-b").await;
    let tenant = srv.get_tenant("a.test").await;
    let tenant_id = tenant["tenant_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{tenant}"))
        .to_owned();
    assert!(
        srv.tenant_storage_exists(&tenant_id).await,
        "storage of {tenant_id} should exist; tenants dir has {:?}",
        tenant_dirs(&srv.data_dir)
    );

    let body = srv.op().delete(&format!("{OP}/tenants/a.test")).await.ok();
    assert_eq!(body, json!({}));
    assert!(
        !srv.tenant_storage_exists(&tenant_id).await,
        "storage of {tenant_id} still exists after delete"
    );

    assert_error(
        &srv.on("a.test").get("/_matrix/client/versions").await,
        404,
        "M_UNRECOGNIZED",
    );
    assert_error(
        &srv.on("a.test").as_user(&a).whoami().await,
        404,
        "M_UNRECOGNIZED",
    );
    assert_error(
        &srv.op().get(&format!("{OP}/tenants/a.test")).await,
        404,
        "M_NOT_FOUND",
    );
    srv.on("b.test").as_user(&b).whoami().await.ok();

    // A new tenant with the same name starts empty.
    srv.create_tenant("a.test", &["a.test"], "open").await;
    let body = srv
        .on("a.test")
        .get(&format!("{CS}/register/available?username=alice"))
        .await
        .ok();
    assert_eq!(body["available"], true);
    assert_error(
        &srv.on("a.test").as_user(&a).whoami().await,
        401,
        "M_UNKNOWN_TOKEN",
    );
}
