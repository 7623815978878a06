//! Other servers' media (spec: Server-Server API, "Content repository"): two tenants of one
//! process federate in-process, with every check a remote server's request gets. Bob on
//! `b.test` downloads Alice's upload on `a.test` through his own homeserver, which fetches it
//! with `GET /_matrix/federation/v1/media/download`, keeps it, and thumbnails it.

use serde_json::json;

use crate::harness::*;
use crate::media::{dimensions, download, png, upload};

#[tokio::test]
async fn media_of_another_homeserver_is_fetched_kept_and_purged() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    srv.create_user("a.test", "alice", "pw-alice").await;
    srv.create_user("b.test", "bob", "pw-bob").await;
    let alice = srv.login("a.test", "alice", "pw-alice").await;
    let bob = srv.login("b.test", "bob", "pw-bob").await;
    let picture = png(400, 300);
    let up = upload(
        &srv.on("a.test").as_user(&alice),
        picture.clone(),
        "image/png",
        Some("p.png"),
    )
    .await;
    up.resp.ok();

    let as_bob = srv.on("b.test").as_user(&bob);
    let path = format!("/_matrix/client/v1/media/download/a.test/{}", up.media_id);
    let d = download(&as_bob, &path).await;
    assert_eq!(d.status, 200, "{}", String::from_utf8_lossy(&d.bytes));
    assert_eq!(d.bytes, picture);
    assert_eq!(d.header("content-type"), "image/png");
    assert!(
        d.header("content-disposition").contains("p.png"),
        "{}",
        d.header("content-disposition")
    );
    assert!(d.header("content-security-policy").contains("sandbox"));

    let thumb = format!(
        "/_matrix/client/v1/media/thumbnail/a.test/{}?width=96&height=96&method=crop",
        up.media_id
    );
    let d = download(&as_bob, &thumb).await;
    assert_eq!(d.status, 200, "{}", String::from_utf8_lossy(&d.bytes));
    assert_eq!(dimensions(&d.bytes), (96, 96));

    // Kept: served although the origin deleted it since.
    srv.op()
        .delete(&format!(
            "/_maas/operator/v1/tenants/a.test/media/a.test/{}",
            up.media_id
        ))
        .await
        .ok();
    assert_eq!(download(&as_bob, &path).await.bytes, picture);

    // Cached remote media is not the tenant's own upload.
    let listed = srv
        .op()
        .get("/_maas/operator/v1/tenants/b.test/media")
        .await
        .ok();
    assert_eq!(listed["media"], json!([]), "{listed}");
    // Purged, it is asked of the origin again, which no longer has it.
    let purged = srv
        .op()
        .post(
            "/_maas/operator/v1/tenants/b.test/media/purge_remote",
            json!({"before_ts": now_ms() + 1000}),
        )
        .await
        .ok();
    assert_eq!(purged["deleted"], json!(1), "{purged}");
    let d = download(&as_bob, &path).await;
    assert_eq!(d.status, 404, "{}", String::from_utf8_lossy(&d.bytes));

    // Unknown media of a server that exists is not found; of one that doesn't, unreachable.
    let d = download(
        &as_bob,
        "/_matrix/client/v1/media/download/a.test/nosuchmedia",
    )
    .await;
    assert_eq!(d.status, 404);
    let d = download(
        &as_bob,
        "/_matrix/client/v1/media/download/unreachable.invalid/abc",
    )
    .await;
    assert_eq!(d.status, 502, "{}", String::from_utf8_lossy(&d.bytes));
}

#[tokio::test]
async fn federation_media_needs_a_signature() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice").await;
    let alice = srv.login("localhost", "alice", "pw-alice").await;
    let up = upload(
        &srv.on("localhost").as_user(&alice),
        b"x".to_vec(),
        "text/plain",
        None,
    )
    .await;
    up.resp.ok();
    let path = format!("/_matrix/federation/v1/media/download/{}", up.media_id);
    let resp = srv.on("localhost").get(&path).await;
    assert_eq!(resp.status, 401, "{}", resp.text);
}
