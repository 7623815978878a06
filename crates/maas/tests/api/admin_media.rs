//! The Synapse-compatible media admin API of a tenant: a user's uploads listed and deleted by
//! offset pages in Synapse's orders, one piece of media looked at or deleted, quarantine, and
//! the purge of cached remote media, with Synapse's shapes and errors.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::*;
use crate::media::{download, upload};

const ADMIN: &str = "/_synapse/admin/v1";

fn user_media_path(user_id: &str) -> String {
    format!("{ADMIN}/users/{}/media", enc(user_id))
}

fn download_path(server_name: &str, media_id: &str) -> String {
    format!("/_matrix/client/v1/media/download/{server_name}/{media_id}")
}

/// Uploads `bytes` as `content_type`, named `name`, and returns the media id. Waits a little
/// after it, so that uploads made one after another have distinct `created_ts`.
async fn upload_one(api: &Api<'_>, bytes: &[u8], content_type: &str, name: Option<&str>) -> String {
    let up = upload(api, bytes.to_vec(), content_type, name).await;
    up.resp.ok();
    tokio::time::sleep(Duration::from_millis(5)).await;
    up.media_id
}

/// Alice of `a.test` with three uploads, oldest first: `one.txt` (3 bytes, text), `two.png`
/// (1 byte, image) and one without a name (2 bytes, octet-stream).
async fn alice_with_uploads(srv: &TestServer) -> (Session, [String; 3]) {
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let api = srv.on("a.test").as_user(&alice);
    let one = upload_one(&api, b"one", "text/plain", Some("one.txt")).await;
    let two = upload_one(&api, b"2", "image/png", Some("two.png")).await;
    let three = upload_one(&api, b"33", "application/octet-stream", None).await;
    (alice, [one, two, three])
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        .iter()
        .map(|m| {
            m.get("media_id")
                .unwrap_or(m)
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn strings(ids: &[&String]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn media_admin_endpoints_want_an_admin_of_the_tenant() {
    let (srv, _a_admin, b_admin) = tenants_with_admins().await;
    let (alice, [one, ..]) = alice_with_uploads(&srv).await;
    let api = srv.on("a.test");
    let requests = [
        ("GET", user_media_path(&alice.user_id)),
        ("DELETE", user_media_path(&alice.user_id)),
        ("GET", format!("{ADMIN}/media/a.test/{one}")),
        ("DELETE", format!("{ADMIN}/media/a.test/{one}")),
        ("POST", format!("{ADMIN}/media/quarantine/a.test/{one}")),
        ("POST", format!("{ADMIN}/media/unquarantine/a.test/{one}")),
        (
            "POST",
            format!("{ADMIN}/purge_media_cache?before_ts={}", now_ms()),
        ),
    ];
    for (method, path) in &requests {
        let method: reqwest::Method = method.parse().expect("a method");
        let body = Some(json!({}));
        let resp = api.send(method.clone(), path, body.as_ref()).await;
        assert_error(&resp, 401, "M_MISSING_TOKEN");
        // A user of the tenant who is no admin.
        let resp = api
            .as_user(&alice)
            .send(method.clone(), path, body.as_ref())
            .await;
        assert_error(&resp, 403, "M_FORBIDDEN");
        // Another tenant's admin is nobody here: their token is not one of this tenant's.
        let resp = api
            .as_user(&b_admin)
            .send(method, path, body.as_ref())
            .await;
        assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
    }
    // Nothing was touched.
    let d = download(&api.as_user(&alice), &download_path("a.test", &one)).await;
    assert_eq!(d.status, 200);
}

#[tokio::test]
async fn user_media_is_listed_in_pages_and_orders() {
    let (srv, admin, _) = tenants_with_admins().await;
    let (alice, [one, two, three]) = alice_with_uploads(&srv).await;
    let api = srv.on("a.test").as_user(&admin);
    let path = user_media_path(&alice.user_id);

    // Newest first unless an order is asked for.
    let body = api.get(&path).await.ok();
    assert_eq!(
        ids(&body, "media"),
        strings(&[&three, &two, &one]),
        "{body}"
    );
    assert_eq!(body["total"], 3);
    assert!(body.get("next_token").is_none(), "{body}");
    let listed = body["media"][2].clone();
    let created_ts = listed["created_ts"].as_i64().expect("created_ts");
    assert_eq!(
        listed,
        json!({
            "created_ts": created_ts,
            "last_access_ts": listed["last_access_ts"],
            "media_id": one,
            "media_length": 3,
            "media_type": "text/plain",
            "quarantined_by": null,
            "safe_from_quarantine": false,
            "upload_name": "one.txt",
        })
    );
    assert!(
        listed["last_access_ts"].as_i64() >= Some(created_ts),
        "{listed}"
    );

    // Offset pages: `next_token` while the window ends before the list.
    let first = api.get(&format!("{path}?limit=2")).await.ok();
    assert_eq!(ids(&first, "media"), strings(&[&three, &two]), "{first}");
    assert_eq!(first["next_token"], 2, "{first}");
    assert_eq!(first["total"], 3);
    let second = api.get(&format!("{path}?limit=2&from=2")).await.ok();
    assert_eq!(ids(&second, "media"), strings(&[&one]), "{second}");
    assert!(second.get("next_token").is_none(), "{second}");
    let past = api.get(&format!("{path}?from=10")).await.ok();
    assert_eq!(past["media"], json!([]), "{past}");
    assert_eq!(past["total"], 3);

    // `dir` alone goes by creation; `order_by` alone forwards.
    let body = api.get(&format!("{path}?dir=f")).await.ok();
    assert_eq!(ids(&body, "media"), strings(&[&one, &two, &three]));
    let body = api.get(&format!("{path}?order_by=media_length")).await.ok();
    assert_eq!(ids(&body, "media"), strings(&[&two, &three, &one]));
    let body = api
        .get(&format!("{path}?order_by=media_length&dir=b"))
        .await
        .ok();
    assert_eq!(ids(&body, "media"), strings(&[&one, &three, &two]));
    // Without a name comes last, as PostgreSQL sorts NULL.
    let body = api.get(&format!("{path}?order_by=upload_name")).await.ok();
    assert_eq!(ids(&body, "media"), strings(&[&one, &two, &three]));
    let body = api.get(&format!("{path}?order_by=media_type")).await.ok();
    assert_eq!(ids(&body, "media"), strings(&[&three, &two, &one]));
    // Equal values go by media id.
    let mut by_id = vec![one.clone(), two.clone(), three.clone()];
    by_id.sort();
    let body = api
        .get(&format!("{path}?order_by=safe_from_quarantine&dir=b"))
        .await
        .ok();
    assert_eq!(ids(&body, "media"), by_id);
    let body = api.get(&format!("{path}?order_by=media_id")).await.ok();
    assert_eq!(ids(&body, "media"), by_id);

    // Someone without uploads has none.
    let bob = srv.register("a.test", "bob", "pw-bob-1").await;
    let body = api.get(&user_media_path(&bob.user_id)).await.ok();
    assert_eq!(body, json!({"media": [], "total": 0}));
}

#[tokio::test]
async fn user_media_requests_are_checked_as_synapse_does() {
    let (srv, admin, _) = tenants_with_admins().await;
    srv.register("b.test", "bob", "pw-bob-1").await;
    let (alice, _) = alice_with_uploads(&srv).await;
    let api = srv.on("a.test").as_user(&admin);
    let path = user_media_path(&alice.user_id);

    for user in ["@bob:b.test", "@nobody:elsewhere.test"] {
        assert_error(&api.get(&user_media_path(user)).await, 400, "M_UNKNOWN");
        assert_error(&api.delete(&user_media_path(user)).await, 400, "M_UNKNOWN");
    }
    let unknown = user_media_path("@nobody:a.test");
    assert_error(&api.get(&unknown).await, 404, "M_NOT_FOUND");
    assert_error(&api.delete(&unknown).await, 404, "M_NOT_FOUND");
    let invalid = format!("{ADMIN}/users/not-a-user-id/media");
    assert_error(&api.get(&invalid).await, 400, "M_INVALID_PARAM");

    for query in [
        "from=-1",
        "from=one",
        "limit=-5",
        "limit=",
        "order_by=size",
        "dir=up",
    ] {
        let resp = api.get(&format!("{path}?{query}")).await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
        let resp = api.delete(&format!("{path}?{query}")).await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
    }
    // Nothing was deleted by the refused requests.
    assert_eq!(api.get(&path).await.ok()["total"], 3);
}

#[tokio::test]
async fn user_media_is_deleted_by_the_page() {
    let (srv, admin, _) = tenants_with_admins().await;
    let (alice, [one, two, three]) = alice_with_uploads(&srv).await;
    let api = srv.on("a.test").as_user(&admin);
    let path = user_media_path(&alice.user_id);

    // The page the same query lists: newest first by default.
    let body = api.delete(&format!("{path}?limit=2")).await.ok();
    assert_eq!(body["total"], 2, "{body}");
    let mut deleted = ids(&body, "deleted_media");
    deleted.sort();
    let mut expected = vec![two.clone(), three.clone()];
    expected.sort();
    assert_eq!(deleted, expected);

    let as_alice = srv.on("a.test").as_user(&alice);
    for gone in [&two, &three] {
        let d = download(&as_alice, &download_path("a.test", gone)).await;
        assert_eq!(d.status, 404);
    }
    let d = download(&as_alice, &download_path("a.test", &one)).await;
    assert_eq!(d.bytes, b"one");
    let body = api.get(&path).await.ok();
    assert_eq!(ids(&body, "media"), strings(&[&one]));
    assert_eq!(body["total"], 1);

    let body = api.delete(&path).await.ok();
    assert_eq!(body, json!({"deleted_media": [one], "total": 1}));
    let body = api.delete(&path).await.ok();
    assert_eq!(body, json!({"deleted_media": [], "total": 0}));
}

#[tokio::test]
async fn one_piece_of_media_is_looked_at_and_deleted() {
    let (srv, admin, _) = tenants_with_admins().await;
    let (alice, [one, two, _]) = alice_with_uploads(&srv).await;
    let api = srv.on("a.test").as_user(&admin);

    let info = api.get(&format!("{ADMIN}/media/a.test/{one}")).await.ok();
    let media_info = &info["media_info"];
    assert_eq!(
        media_info,
        &json!({
            "media_origin": null,
            "user_id": alice.user_id,
            "media_id": one,
            "media_type": "text/plain",
            "media_length": 3,
            "upload_name": "one.txt",
            "created_ts": media_info["created_ts"],
            "filesystem_id": null,
            "url_cache": null,
            "last_access_ts": media_info["last_access_ts"],
            "quarantined_by": null,
            // New tenants serve their media by the authenticated endpoints only.
            "authenticated": true,
            "safe_from_quarantine": false,
            "sha256": hex::encode(Sha256::digest(b"one")),
        })
    );
    assert!(media_info["created_ts"].as_i64() > Some(0), "{info}");

    let resp = api.delete(&format!("{ADMIN}/media/a.test/{one}")).await;
    assert_eq!(resp.ok(), json!({"deleted_media": [one], "total": 1}));
    let d = download(
        &srv.on("a.test").as_user(&alice),
        &download_path("a.test", &one),
    )
    .await;
    assert_eq!(d.status, 404);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let path = format!("{ADMIN}/media/a.test/{one}");
        assert_error(
            &api.send(method.clone(), &path, None).await,
            404,
            "M_NOT_FOUND",
        );
        let path = format!("{ADMIN}/media/a.test/no-such-media");
        assert_error(&api.send(method, &path, None).await, 404, "M_NOT_FOUND");
    }
    // Synapse deletes local media only; another server's cached media is purged instead.
    let resp = api.delete(&format!("{ADMIN}/media/b.test/{two}")).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    // Unknown remote media is not cached, so not found.
    let resp = api.get(&format!("{ADMIN}/media/b.test/{two}")).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let d = download(
        &srv.on("a.test").as_user(&alice),
        &download_path("a.test", &two),
    )
    .await;
    assert_eq!(d.status, 200);
}

#[tokio::test]
async fn quarantined_media_is_served_to_no_one_until_released() {
    let (srv, admin, _) = tenants_with_admins().await;
    let (alice, [one, ..]) = alice_with_uploads(&srv).await;
    let api = srv.on("a.test").as_user(&admin);
    let as_alice = srv.on("a.test").as_user(&alice);
    let path = download_path("a.test", &one);

    let resp = api
        .post(&format!("{ADMIN}/media/quarantine/a.test/{one}"), json!({}))
        .await;
    assert_eq!(resp.ok(), json!({}));
    assert_eq!(download(&as_alice, &path).await.status, 404);
    assert_eq!(download(&api, &path).await.status, 404);
    // Kept, and shown as quarantined by the admin who did it.
    let info = api.get(&format!("{ADMIN}/media/a.test/{one}")).await.ok();
    assert_eq!(
        info["media_info"]["quarantined_by"], admin.user_id,
        "{info}"
    );
    let listed = api
        .get(&format!(
            "{}?order_by=quarantined_by",
            user_media_path(&alice.user_id)
        ))
        .await
        .ok();
    assert_eq!(listed["media"][0]["media_id"], one.as_str(), "{listed}");
    assert_eq!(
        listed["media"][0]["quarantined_by"], admin.user_id,
        "{listed}"
    );
    assert_eq!(
        listed["media"][1]["quarantined_by"],
        Value::Null,
        "{listed}"
    );

    let resp = api
        .post(
            &format!("{ADMIN}/media/unquarantine/a.test/{one}"),
            json!({}),
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
    let d = download(&as_alice, &path).await;
    assert_eq!((d.status, d.bytes), (200, b"one".to_vec()));
    let info = api.get(&format!("{ADMIN}/media/a.test/{one}")).await.ok();
    assert_eq!(info["media_info"]["quarantined_by"], Value::Null, "{info}");

    // Like Synapse, media that isn't there is no error.
    let resp = api
        .post(
            &format!("{ADMIN}/media/quarantine/a.test/nosuchmedia"),
            json!({}),
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
}

#[tokio::test]
async fn cached_remote_media_is_quarantined_looked_at_and_purged() {
    let (srv, _, b_admin) = tenants_with_admins().await;
    let (_, [one, ..]) = alice_with_uploads(&srv).await;
    let bob = srv.register("b.test", "bob", "pw-bob-1").await;
    let as_bob = srv.on("b.test").as_user(&bob);
    let api = srv.on("b.test").as_user(&b_admin);
    let path = download_path("a.test", &one);
    // b.test fetches Alice's upload from a.test and keeps it.
    assert_eq!(download(&as_bob, &path).await.bytes, b"one");

    let info = api.get(&format!("{ADMIN}/media/a.test/{one}")).await.ok();
    let media_info = &info["media_info"];
    assert_eq!(media_info["media_origin"], "a.test", "{info}");
    assert_eq!(media_info["user_id"], Value::Null, "{info}");
    assert_eq!(media_info["media_length"], 3, "{info}");
    assert_eq!(media_info["safe_from_quarantine"], Value::Null, "{info}");
    assert_eq!(
        media_info["sha256"],
        hex::encode(Sha256::digest(b"one")),
        "{info}"
    );

    // The tenant's copy of another server's media can be quarantined.
    let quarantine = format!("{ADMIN}/media/quarantine/a.test/{one}");
    api.post(&quarantine, json!({})).await.ok();
    assert_eq!(download(&as_bob, &path).await.status, 404);
    let unquarantine = format!("{ADMIN}/media/unquarantine/a.test/{one}");
    api.post(&unquarantine, json!({})).await.ok();
    assert_eq!(download(&as_bob, &path).await.status, 200);

    let purge = format!("{ADMIN}/purge_media_cache");
    assert_error(&api.post(&purge, json!({})).await, 400, "M_MISSING_PARAM");
    for before_ts in ["-1", "1000", "soon"] {
        let resp = api
            .post(&format!("{purge}?before_ts={before_ts}"), json!({}))
            .await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
    }
    let purged = api
        .post(&format!("{purge}?before_ts={}", now_ms() + 1000), json!({}))
        .await
        .ok();
    assert_eq!(purged, json!({"deleted": 1}));
    let resp = api.get(&format!("{ADMIN}/media/a.test/{one}")).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let purged = api
        .post(&format!("{purge}?before_ts={}", now_ms() + 1000), json!({}))
        .await
        .ok();
    assert_eq!(purged, json!({"deleted": 0}));
    // Asked for again, it is fetched again.
    assert_eq!(download(&as_bob, &path).await.bytes, b"one");
}
