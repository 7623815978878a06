//! The content repository over HTTP: uploads and downloads on both endpoint families, the
//! headers that keep media from running as a page, the freeze of unauthenticated media,
//! uploads made in two steps (MSC2246), limits and quotas, and tenants kept apart.

use std::io::Cursor;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::*;

/// An upload as the server answered it: status, JSON, and the media id when it worked.
pub struct Uploaded {
    pub resp: Resp,
    pub media_id: String,
}

/// `POST /_matrix/media/v3/upload` of `bytes` as `content_type`, named `file_name`.
pub async fn upload(
    api: &Api<'_>,
    bytes: Vec<u8>,
    content_type: &str,
    file_name: Option<&str>,
) -> Uploaded {
    let path = match file_name {
        Some(name) => format!("/_matrix/media/v3/upload?filename={}", enc(name)),
        None => "/_matrix/media/v3/upload".to_owned(),
    };
    let builder = api
        .builder(Method::POST, &path)
        .header("Content-Type", content_type)
        .body(bytes);
    let resp = TestServer::send(builder).await;
    let media_id = resp.body["content_uri"]
        .as_str()
        .and_then(|uri| uri.rsplit('/').next())
        .unwrap_or_default()
        .to_owned();
    Uploaded { resp, media_id }
}

/// A download's status, headers and bytes, unparsed.
pub struct Downloaded {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Downloaded {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

pub async fn download(api: &Api<'_>, path: &str) -> Downloaded {
    let resp = api
        .builder(Method::GET, path)
        .send()
        .await
        .expect("download request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("download body").to_vec();
    Downloaded {
        status,
        headers,
        bytes,
    }
}

/// A PNG of `width`×`height` with a gradient, so that scaled copies differ from it.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a PNG");
    out.into_inner()
}

/// The dimensions of an image the server sent.
pub fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory(bytes).expect("the server sent an image");
    (image.width(), image.height())
}

fn v1_download(server_name: &str, media_id: &str) -> String {
    format!("/_matrix/client/v1/media/download/{server_name}/{media_id}")
}

fn v3_download(server_name: &str, media_id: &str) -> String {
    format!("/_matrix/media/v3/download/{server_name}/{media_id}")
}

#[track_caller]
fn assert_sandboxed(d: &Downloaded) {
    let csp = d.header("content-security-policy");
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(d.header("x-content-type-options"), "nosniff");
    assert_eq!(d.header("cross-origin-resource-policy"), "cross-origin");
}

async fn alice(srv: &TestServer) -> Session {
    srv.create_user("localhost", "alice", "pw-alice").await;
    srv.login("localhost", "alice", "pw-alice").await
}

#[tokio::test]
async fn uploads_come_back_whole_with_the_sandboxing_headers() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let bytes = png(40, 30);
    let up = upload(&api, bytes.clone(), "image/png", Some("pic.png")).await;
    let uri = up.resp.ok()["content_uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(uri, format!("mxc://localhost/{}", up.media_id));
    assert!(up.media_id.len() >= 16, "{uri}");

    let d = download(&api, &v1_download("localhost", &up.media_id)).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.bytes, bytes);
    assert_eq!(d.header("content-type"), "image/png");
    assert_eq!(d.header("content-length"), bytes.len().to_string());
    assert_eq!(d.header("content-disposition"), "inline; filename=pic.png");
    assert_sandboxed(&d);

    // The name in the path wins over the stored one.
    let path = format!("{}/other.png", v1_download("localhost", &up.media_id));
    let d = download(&api, &path).await;
    assert_eq!((d.status, d.bytes.len()), (200, bytes.len()));
    assert_eq!(
        d.header("content-disposition"),
        "inline; filename=other.png"
    );

    // An upload without a type or name is served as bytes.
    let up = upload(&api, b"raw".to_vec(), "", None).await;
    up.resp.ok();
    let d = download(&api, &v1_download("localhost", &up.media_id)).await;
    assert_eq!(d.header("content-type"), "application/octet-stream");
    assert_eq!(d.header("content-disposition"), "attachment");

    let config = api.get("/_matrix/client/v1/media/config").await.ok();
    assert_eq!(config["m.upload.size"], json!(50 * 1024 * 1024));
    let config = api.get("/_matrix/media/v3/config").await.ok();
    assert_eq!(config["m.upload.size"], json!(50 * 1024 * 1024));
}

#[tokio::test]
async fn pages_and_scripts_are_never_served_inline() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    for (content_type, body) in [
        ("text/html", &b"<script>alert(1)</script>"[..]),
        ("image/svg+xml", b"<svg onload=\"alert(1)\"/>"),
        ("application/javascript", b"alert(1)"),
        ("text/html; charset=utf-8", b"<p>hi</p>"),
    ] {
        let up = upload(&api, body.to_vec(), content_type, Some("x")).await;
        up.resp.ok();
        let d = download(&api, &v1_download("localhost", &up.media_id)).await;
        assert_eq!(d.status, 200, "{content_type}");
        assert!(
            d.header("content-disposition").starts_with("attachment"),
            "{content_type}: {}",
            d.header("content-disposition")
        );
        assert_sandboxed(&d);
    }
}

#[tokio::test]
async fn downloads_need_a_token_and_the_deprecated_ones_are_frozen() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let anon = srv.on("localhost");
    let up = upload(&api, b"before".to_vec(), "text/plain", None).await;
    up.resp.ok();

    let d = download(&anon, &v1_download("localhost", &up.media_id)).await;
    assert_eq!(
        (d.status, d.json()["errcode"].clone()),
        (401, json!("M_MISSING_TOKEN"))
    );
    let upload_anon = upload(&anon, b"x".to_vec(), "text/plain", None).await;
    assert_error(&upload_anon.resp, 401, "M_MISSING_TOKEN");

    // A new tenant is frozen from its creation: its media is for the authenticated
    // endpoints only.
    let tenant = srv.get_tenant("localhost").await;
    assert!(
        tenant["media"]["unauthenticated_frozen_ts"].is_i64(),
        "{tenant}"
    );
    let d = download(&anon, &v3_download("localhost", &up.media_id)).await;
    assert_eq!(
        (d.status, d.json()["errcode"].clone()),
        (404, json!("M_NOT_FOUND"))
    );

    // Lifted, the deprecated endpoints serve it, with the same headers.
    srv.patch_tenant("localhost", json!({"freeze_unauthenticated_media": false}))
        .await;
    let d = download(&anon, &v3_download("localhost", &up.media_id)).await;
    assert_eq!((d.status, d.bytes.as_slice()), (200, &b"before"[..]));
    assert_sandboxed(&d);
    let d = download(
        &anon,
        &format!("/_matrix/media/r0/download/localhost/{}", up.media_id),
    )
    .await;
    assert_eq!(d.status, 200);

    // Frozen again: what was stored before stays served, what comes after is not.
    tokio::time::sleep(Duration::from_millis(5)).await;
    srv.patch_tenant("localhost", json!({"freeze_unauthenticated_media": true}))
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let after = upload(&api, b"after".to_vec(), "text/plain", None).await;
    after.resp.ok();
    let d = download(&anon, &v3_download("localhost", &up.media_id)).await;
    assert_eq!(d.status, 200);
    let d = download(&anon, &v3_download("localhost", &after.media_id)).await;
    assert_eq!(d.status, 404);
    let d = download(&api, &v1_download("localhost", &after.media_id)).await;
    assert_eq!((d.status, d.bytes.as_slice()), (200, &b"after"[..]));
}

#[tokio::test]
async fn unknown_and_malformed_media_ids_are_not_found() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    for id in ["doesnotexist", "a.b", "a%20b", "..%2F..%2Fetc", "%00"] {
        let d = download(&api, &v1_download("localhost", id)).await;
        assert_eq!(d.status, 404, "{id}: {}", String::from_utf8_lossy(&d.bytes));
        assert_eq!(d.json()["errcode"], json!("M_NOT_FOUND"), "{id}");
    }
    // `..` as a segment is resolved away before the request leaves the client: no path of ours.
    let d = download(&api, &v1_download("localhost", "%2e%2e")).await;
    assert_eq!(d.status, 404);
    // Another server's media is not fetched when the client says not to.
    let path = "/_matrix/media/v3/download/remote.test/abc?allow_remote=false";
    srv.patch_tenant("localhost", json!({"freeze_unauthenticated_media": false}))
        .await;
    let d = download(&srv.on("localhost"), path).await;
    assert_eq!(d.status, 404);
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_and_leave_nothing() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let t = srv
        .patch_tenant("localhost", json!({"media_max_upload_bytes": 1000}))
        .await;
    assert_eq!(t["media"]["max_upload_bytes"], json!(1000), "{t}");
    let config = api.get("/_matrix/client/v1/media/config").await.ok();
    assert_eq!(config["m.upload.size"], json!(1000));

    // Announced too large: refused before the body is read.
    let big = upload(&api, vec![7; 1001], "application/octet-stream", None).await;
    assert_error(&big.resp, 413, "M_TOO_LARGE");
    // Streamed without a length, refused once it passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..100).map(|_| Ok(vec![1u8; 64 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let builder = api
        .builder(Method::POST, "/_matrix/media/v3/upload")
        .header("Content-Type", "application/octet-stream")
        .body(body);
    let resp = TestServer::send(builder).await;
    assert_error(&resp, 413, "M_TOO_LARGE");

    let ok = upload(&api, vec![7; 1000], "application/octet-stream", None).await;
    ok.resp.ok();
    let listed = srv
        .op()
        .get("/_maas/operator/v1/tenants/localhost/media")
        .await
        .ok();
    assert_eq!(
        listed["media"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["usage_bytes"], json!(1000));
    assert_eq!(
        blob_files(&srv).len(),
        1,
        "only the accepted upload is stored"
    );
}

#[tokio::test]
async fn quotas_refuse_uploads_and_leave_nothing_behind() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    srv.create_user("localhost", "bob", "pw-bob").await;
    let bob = srv.login("localhost", "bob", "pw-bob").await;
    let as_alice = srv.on("localhost").as_user(&alice);
    let as_bob = srv.on("localhost").as_user(&bob);
    srv.patch_tenant(
        "localhost",
        json!({"media_user_quota_bytes": 1000, "media_quota_bytes": 1500}),
    )
    .await;

    upload(&as_alice, vec![1; 800], "text/plain", None)
        .await
        .resp
        .ok();
    let over = upload(&as_alice, vec![2; 300], "text/plain", None).await;
    assert_error(&over.resp, 403, "M_FORBIDDEN");

    upload(&as_bob, vec![3; 600], "text/plain", None)
        .await
        .resp
        .ok();
    let full = upload(&as_bob, vec![4; 200], "text/plain", None).await;
    assert_error(&full.resp, 403, "M_RESOURCE_LIMIT_EXCEEDED");
    assert!(
        full.resp.body["admin_contact"].is_string(),
        "{}",
        full.resp.text
    );

    let listed = srv
        .op()
        .get("/_maas/operator/v1/tenants/localhost/media")
        .await
        .ok();
    assert_eq!(
        listed["media"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_eq!(listed["usage_bytes"], json!(1400));
    assert_eq!(blob_files(&srv).len(), 2, "refused uploads left no bytes");

    // The same bytes again cost the user again, but are stored once.
    srv.patch_tenant(
        "localhost",
        json!({"media_quota_bytes": null, "media_user_quota_bytes": null}),
    )
    .await;
    upload(&as_bob, vec![3; 600], "text/plain", None)
        .await
        .resp
        .ok();
    assert_eq!(blob_files(&srv).len(), 2);
}

/// The files of the platform's blob store (one per distinct content).
fn blob_files(srv: &TestServer) -> Vec<std::path::PathBuf> {
    let root = srv.data_dir.join("media").join("blobs");
    let Ok(shards) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    shards
        .flatten()
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.path())
        .collect()
}

#[tokio::test]
async fn media_ids_made_first_get_their_bytes_later() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    srv.create_user("localhost", "bob", "pw-bob").await;
    let bob = srv.login("localhost", "bob", "pw-bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let created = api.post("/_matrix/media/v1/create", json!({})).await.ok();
    let uri = created["content_uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let media_id = uri.rsplit('/').next().unwrap_or_default().to_owned();
    assert!(uri.starts_with("mxc://localhost/"), "{created}");
    assert!(
        created["unused_expires_at"].as_i64() > Some(now_ms()),
        "{created}"
    );

    let early = download(
        &api,
        &format!("{}?timeout_ms=300", v1_download("localhost", &media_id)),
    )
    .await;
    assert_eq!(early.status, 504);
    assert_eq!(early.json()["errcode"], json!("M_NOT_YET_UPLOADED"));

    let put = |api: Api<'_>, server: &str, bytes: &'static [u8]| {
        let path = format!("/_matrix/media/v3/upload/{server}/{media_id}");
        api.builder(Method::PUT, &path)
            .header("Content-Type", "text/plain")
            .body(bytes)
    };
    let by_bob =
        TestServer::send(put(srv.on("localhost").as_user(&bob), "localhost", b"bob")).await;
    assert_error(&by_bob, 403, "M_FORBIDDEN");
    let elsewhere = TestServer::send(put(api.clone(), "other.test", b"x")).await;
    assert_error(&elsewhere, 404, "M_NOT_FOUND");

    // A download waiting for the bytes gets them as soon as they come.
    let waiting = {
        let path = format!("{}?timeout_ms=10000", v1_download("localhost", &media_id));
        let api = api.clone();
        async move { download(&api, &path).await }
    };
    let uploading = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        TestServer::send(put(api.clone(), "localhost", b"later")).await
    };
    let (waited, put_resp) = tokio::join!(waiting, uploading);
    assert_eq!(put_resp.ok(), json!({}));
    assert_eq!(
        (waited.status, waited.bytes.as_slice()),
        (200, &b"later"[..])
    );

    let again = TestServer::send(put(api.clone(), "localhost", b"again")).await;
    assert_error(&again, 409, "M_CANNOT_OVERWRITE_MEDIA");
    let unknown = api.builder(Method::PUT, "/_matrix/media/v3/upload/localhost/unknownid");
    assert_error(
        &TestServer::send(unknown.body("x")).await,
        404,
        "M_NOT_FOUND",
    );
}

#[tokio::test]
async fn pending_uploads_per_user_are_bounded() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    for _ in 0..5 {
        api.post("/_matrix/media/v1/create", json!({})).await.ok();
    }
    let sixth = api.post("/_matrix/media/v1/create", json!({})).await;
    assert_error(&sixth, 429, "M_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn identical_bytes_are_stored_once_and_go_with_the_last_tenant() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    srv.create_tenant("second.test", &["second.test"], "open")
        .await;
    srv.create_user("second.test", "carol", "pw-carol").await;
    let carol = srv.login("second.test", "carol", "pw-carol").await;
    let bytes = png(20, 20);
    let on_first = upload(
        &srv.on("localhost").as_user(&alice),
        bytes.clone(),
        "image/png",
        None,
    )
    .await;
    on_first.resp.ok();
    let on_second = upload(
        &srv.on("second.test").as_user(&carol),
        bytes.clone(),
        "image/png",
        None,
    )
    .await;
    on_second.resp.ok();
    assert_eq!(blob_files(&srv).len(), 1);

    // Each tenant serves its own media only through its own name: the other's is remote
    // media, which the deprecated endpoint doesn't fetch when told not to.
    srv.patch_tenant(
        "second.test",
        json!({"freeze_unauthenticated_media": false}),
    )
    .await;
    let path = format!(
        "{}?allow_remote=false",
        v3_download("localhost", &on_first.media_id)
    );
    assert_eq!(download(&srv.on("second.test"), &path).await.status, 404);
    let path = v1_download("second.test", &on_first.media_id);
    let d = download(&srv.on("second.test").as_user(&carol), &path).await;
    assert_eq!(
        d.status, 404,
        "another tenant's id under this tenant's name is unknown"
    );

    let resp = srv
        .op()
        .delete("/_maas/operator/v1/tenants/second.test")
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        blob_files(&srv).len(),
        1,
        "the first tenant still holds the bytes"
    );
    let d = download(
        &srv.on("localhost").as_user(&alice),
        &v1_download("localhost", &on_first.media_id),
    )
    .await;
    assert_eq!(d.bytes, bytes);
    srv.op()
        .delete("/_maas/operator/v1/tenants/localhost")
        .await;
    assert!(
        blob_files(&srv).is_empty(),
        "deleting the last tenant freed the bytes"
    );
}

#[tokio::test]
async fn administrators_delete_and_quarantine_media() {
    let srv = TestServer::start().await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let a = upload(&api, png(64, 64), "image/png", None).await;
    a.resp.ok();
    let b = upload(&api, b"keep".to_vec(), "text/plain", None).await;
    b.resp.ok();
    // A thumbnail is made, and must go with its media.
    let thumb = format!(
        "/_matrix/client/v1/media/thumbnail/localhost/{}?width=32&height=32&method=crop",
        a.media_id
    );
    assert_eq!(download(&api, &thumb).await.status, 200);
    assert_eq!(blob_files(&srv).len(), 3);

    let media = "/_maas/operator/v1/tenants/localhost/media/localhost";
    let q = srv
        .op()
        .post(
            &format!("{media}/{}/quarantine", b.media_id),
            json!({"quarantined": true}),
        )
        .await
        .ok();
    assert_eq!(q["quarantined"], json!(true));
    let d = download(&api, &v1_download("localhost", &b.media_id)).await;
    assert_eq!(d.status, 404, "quarantined media is served to no one");
    srv.op()
        .post(
            &format!("{media}/{}/quarantine", b.media_id),
            json!({"quarantined": false}),
        )
        .await
        .ok();
    assert_eq!(
        download(&api, &v1_download("localhost", &b.media_id))
            .await
            .status,
        200
    );

    let resp = srv.op().delete(&format!("{media}/{}", a.media_id)).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        download(&api, &v1_download("localhost", &a.media_id))
            .await
            .status,
        404
    );
    assert_eq!(download(&api, &thumb).await.status, 404);
    assert_eq!(
        blob_files(&srv).len(),
        1,
        "the media and its thumbnail are gone"
    );
    let again = srv.op().delete(&format!("{media}/{}", a.media_id)).await;
    assert_error(&again, 404, "M_NOT_FOUND");

    let listed = srv
        .op()
        .get("/_maas/operator/v1/tenants/localhost/media?limit=1")
        .await
        .ok();
    assert_eq!(listed["media"][0]["media_id"], json!(b.media_id));
    assert_eq!(listed["media"][0]["uploader"], json!("@alice:localhost"));
}

#[tokio::test]
async fn uploads_are_rate_limited_per_user() {
    let srv = TestServer::start_with(Options::default().with_rate_limits()).await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    let mut limited = None;
    for _ in 0..40 {
        let up = upload(&api, b"x".to_vec(), "text/plain", None).await;
        if up.resp.status != 200 {
            limited = Some(up.resp);
            break;
        }
    }
    let limited = limited.expect("uploads were never limited");
    assert_error(&limited, 429, "M_LIMIT_EXCEEDED");
    assert!(limited.body["retry_after_ms"].is_u64(), "{}", limited.text);
}

/// Resident memory of a process, in KiB (`VmRSS`), and its peak (`VmHWM`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn a_100_mb_upload_streams_through_without_sitting_in_memory() {
    const SIZE: usize = 100 * 1024 * 1024;
    const CHUNK: usize = 256 * 1024;
    let srv = TestServer::start_with(
        Options::default().env("MAAS_MEDIA__MAX_UPLOAD_BYTES", &(2 * SIZE).to_string()),
    )
    .await;
    let alice = alice(&srv).await;
    let api = srv.on("localhost").as_user(&alice);
    // Warm up allocator pools with a small upload first, then measure the peak.
    upload(&api, vec![0; 1024], "application/octet-stream", None)
        .await
        .resp
        .ok();
    let (_, peak_before) = memory_kib(srv.pid());

    let mut hasher = Sha256::new();
    let chunks: Vec<Vec<u8>> = (0..SIZE / CHUNK)
        .map(|i| {
            let chunk: Vec<u8> = (0..CHUNK).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
            hasher.update(&chunk);
            chunk
        })
        .collect();
    let expected = hex::encode(hasher.finalize());
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let builder = api
        .builder(Method::POST, "/_matrix/media/v3/upload")
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", SIZE.to_string())
        .timeout(Duration::from_secs(120))
        .body(reqwest::Body::wrap_stream(stream));
    let up = TestServer::send(builder).await;
    let uri = up.ok()["content_uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let media_id = uri.rsplit('/').next().unwrap_or_default();
    let (_, peak_after) = memory_kib(srv.pid());
    let growth_mib = peak_after.saturating_sub(peak_before) / 1024;
    assert!(
        growth_mib < 40,
        "the server's peak memory grew by {growth_mib} MiB"
    );

    // Downloading streams too, and brings back the same bytes.
    let resp = api
        .builder(Method::GET, &v1_download("localhost", media_id))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status().as_u16(), 200);
    let mut hasher = Sha256::new();
    let mut stream = resp.bytes_stream();
    let mut total = 0;
    while let Some(piece) = futures_util::StreamExt::next(&mut stream).await {
        let piece = piece.expect("a piece of the download");
        total += piece.len();
        hasher.update(&piece);
    }
    assert_eq!(total, SIZE);
    assert_eq!(hex::encode(hasher.finalize()), expected);
    let (_, peak_final) = memory_kib(srv.pid());
    let growth_mib = peak_final.saturating_sub(peak_before) / 1024;
    assert!(
        growth_mib < 40,
        "the server's peak memory grew by {growth_mib} MiB"
    );
}
