//! URL previews (spec: `GET /_matrix/client/v1/media/preview_url`): off unless the operator
//! turns them on for the platform and the tenant; never fetched from loopback, private or
//! link-local addresses; a page's OpenGraph data with its image kept as media.

use std::net::SocketAddr;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::*;
use crate::media::{download, png};

/// A web server on loopback answering `/` with a page naming `/image.png`, and that image.
async fn web_page() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let image = png(64, 32);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let image = image.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..n]);
                let (content_type, body) = if head.starts_with("GET /image.png") {
                    ("image/png", image)
                } else {
                    let page = "<html><head><title>Fallback</title>\
                        <meta property=\"og:title\" content=\"A page about cats\">\
                        <meta property=\"og:description\" content=\"Cats, mostly.\">\
                        <meta property=\"og:image\" content=\"/image.png\">\
                        </head><body>hi</body></html>";
                    ("text/html; charset=utf-8", page.as_bytes().to_vec())
                };
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(header.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    addr
}

fn preview_path(url: &str) -> String {
    format!("/_matrix/client/v1/media/preview_url?url={}", enc(url))
}

#[tokio::test]
async fn previews_are_off_by_default_and_never_reach_private_addresses() {
    let page = web_page().await;
    let srv = TestServer::start_with(
        Options::default()
            .env("MAAS_MEDIA__URL_PREVIEW__ENABLED", "true")
            // The test's page on 127.0.0.1 only: every other private address stays refused.
            .env(
                "MAAS_MEDIA__URL_PREVIEW__ALLOWED_IP_RANGES",
                "[\"127.0.0.1/32\"]",
            ),
    )
    .await;
    srv.create_user("localhost", "alice", "pw-alice").await;
    let alice = srv.login("localhost", "alice", "pw-alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let url = format!("http://{page}/");

    // The platform allows previews, the tenant doesn't yet.
    assert_error(&api.get(&preview_path(&url)).await, 404, "M_NOT_FOUND");
    let t = srv
        .patch_tenant("localhost", json!({"url_previews": true}))
        .await;
    assert_eq!(t["media"]["url_previews"], json!(true), "{t}");

    let og = api.get(&preview_path(&url)).await.ok();
    assert_eq!(og["og:title"], json!("A page about cats"), "{og}");
    assert_eq!(og["og:description"], json!("Cats, mostly."), "{og}");
    let image = og["og:image"].as_str().unwrap_or_default().to_owned();
    assert!(image.starts_with("mxc://localhost/"), "{og}");
    assert_eq!(og["matrix:image:size"], json!(png(64, 32).len()), "{og}");
    let media_id = image.rsplit('/').next().unwrap_or_default();
    let d = download(
        &api,
        &format!("/_matrix/client/v1/media/download/localhost/{media_id}"),
    )
    .await;
    assert_eq!((d.status, d.bytes), (200, png(64, 32)));
    // The deprecated path answers the same way.
    let legacy = api
        .get(&format!("/_matrix/media/v3/preview_url?url={}", enc(&url)))
        .await
        .ok();
    assert_eq!(legacy["og:title"], json!("A page about cats"));

    for refused in [
        format!("http://127.0.0.2:{}/", page.port()),
        format!("http://[::1]:{}/", page.port()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        format!("http://localhost:{}/", page.port()),
    ] {
        let resp = api.get(&preview_path(&refused)).await;
        assert_error(&resp, 403, "M_FORBIDDEN");
    }
    for invalid in [
        "file:///etc/passwd",
        "not a url",
        "http://user:pw@example.org/",
    ] {
        let resp = api.get(&preview_path(invalid)).await;
        assert_eq!(resp.status, 400, "{invalid}: {}", resp.text);
    }
    let anon = srv.on("localhost").get(&preview_path(&url)).await;
    assert_error(&anon, 401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn previews_stay_off_unless_the_platform_enables_them() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice").await;
    let alice = srv.login("localhost", "alice", "pw-alice").await;
    srv.patch_tenant("localhost", json!({"url_previews": true}))
        .await;
    let resp = srv
        .on("localhost")
        .as_user(&alice)
        .get(&preview_path("http://example.org/"))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}
