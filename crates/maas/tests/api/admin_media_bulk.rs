//! The Synapse-compatible media admin API's bulk operations: media quarantined by room or by
//! uploader in the admin's name, media protected from that, and old local media deleted by
//! date and size, with Synapse's shapes, errors and tenant isolation.

use serde_json::{Value, json};

use crate::harness::*;
use crate::media::{download, upload};
use crate::room_support::{create_room, send};

const ADMIN: &str = "/_synapse/admin/v1";

fn download_path(server_name: &str, media_id: &str) -> String {
    format!("/_matrix/client/v1/media/download/{server_name}/{media_id}")
}

async fn upload_one(api: &Api<'_>, bytes: &[u8]) -> String {
    let up = upload(api, bytes.to_vec(), "application/octet-stream", None).await;
    up.resp.ok();
    up.media_id
}

/// Synapse's `media_info` of `media_id` on `server_name`, as the tenant's admin sees it.
async fn media_info(api: &Api<'_>, server_name: &str, media_id: &str) -> Value {
    let info = api
        .get(&format!("{ADMIN}/media/{server_name}/{media_id}"))
        .await
        .ok();
    info["media_info"].clone()
}

async fn status_of(api: &Api<'_>, server_name: &str, media_id: &str) -> u16 {
    download(api, &download_path(server_name, media_id))
        .await
        .status
}

#[tokio::test]
async fn bulk_media_endpoints_want_an_admin_of_the_tenant() {
    let (srv, _a_admin, b_admin) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let one = upload_one(&as_alice, b"one").await;
    let room_id = create_room(&as_alice, json!({})).await;
    let url = format!("mxc://a.test/{one}");
    send(
        &as_alice,
        &room_id,
        "m.room.message",
        json!({"msgtype": "m.file", "body": "f", "url": url}),
    )
    .await;
    let requests = [
        format!("{ADMIN}/room/{}/media/quarantine", enc(&room_id)),
        format!("{ADMIN}/quarantine_media/{}", enc(&room_id)),
        format!("{ADMIN}/user/{}/media/quarantine", enc(&alice.user_id)),
        format!("{ADMIN}/media/protect/{one}"),
        format!("{ADMIN}/media/unprotect/{one}"),
        format!("{ADMIN}/media/delete?before_ts={}", now_ms() + 1000),
        format!("{ADMIN}/media/a.test/delete?before_ts={}", now_ms() + 1000),
    ];
    let api = srv.on("a.test");
    for path in &requests {
        assert_error(&api.post(path, json!({})).await, 401, "M_MISSING_TOKEN");
        let resp = api.as_user(&alice).post(path, json!({})).await;
        assert_error(&resp, 403, "M_FORBIDDEN");
        // Another tenant's admin is nobody here.
        let resp = api.as_user(&b_admin).post(path, json!({})).await;
        assert_error(&resp, 401, "M_UNKNOWN_TOKEN");
    }
    // Nothing was touched.
    assert_eq!(status_of(&as_alice, "a.test", &one).await, 200);
}

#[tokio::test]
async fn room_media_is_quarantined_but_for_protected_media() {
    let (srv, admin, b_admin) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let bob = srv.register("b.test", "bob", "pw-bob-1").await;
    let as_bob = srv.on("b.test").as_user(&bob);
    let one = upload_one(&as_alice, b"one").await;
    let two = upload_one(&as_alice, b"two").await;
    let elsewhere = upload_one(&as_alice, b"not in the room").await;
    // Bob's upload on b.test, cached by a.test when Alice looks at it.
    let bobs = upload_one(&as_bob, b"bob's").await;
    assert_eq!(status_of(&as_alice, "b.test", &bobs).await, 200);
    let room_id = create_room(&as_alice, json!({})).await;
    for (server, media_id) in [("a.test", &one), ("a.test", &two), ("b.test", &bobs)] {
        let content =
            json!({"msgtype": "m.file", "body": "f", "url": format!("mxc://{server}/{media_id}")});
        send(&as_alice, &room_id, "m.room.message", content).await;
    }
    let api = srv.on("a.test").as_user(&admin);

    let protect = api
        .post(&format!("{ADMIN}/media/protect/{two}"), json!({}))
        .await;
    assert_eq!(protect.ok(), json!({}));
    assert_eq!(
        media_info(&api, "a.test", &two).await["safe_from_quarantine"],
        true
    );

    let path = format!("{ADMIN}/room/{}/media/quarantine", enc(&room_id));
    let resp = api.post(&path, json!({})).await.ok();
    assert_eq!(resp, json!({"num_quarantined": 2}));
    assert_eq!(status_of(&as_alice, "a.test", &one).await, 404);
    assert_eq!(status_of(&as_alice, "b.test", &bobs).await, 404);
    assert_eq!(status_of(&as_alice, "a.test", &two).await, 200);
    assert_eq!(status_of(&as_alice, "a.test", &elsewhere).await, 200);
    // Recorded in the admin's name, in every listing.
    let info = media_info(&api, "a.test", &one).await;
    assert_eq!(info["quarantined_by"], admin.user_id, "{info}");
    assert_eq!(info["safe_from_quarantine"], false, "{info}");
    let info = media_info(&api, "b.test", &bobs).await;
    assert_eq!(info["quarantined_by"], admin.user_id, "{info}");
    assert_eq!(info["safe_from_quarantine"], Value::Null, "{info}");
    let info = media_info(&api, "a.test", &two).await;
    assert_eq!(info["quarantined_by"], Value::Null, "{info}");
    let listed = api
        .get(&format!(
            "{ADMIN}/users/{}/media?order_by=media_id",
            enc(&alice.user_id)
        ))
        .await
        .ok();
    for item in listed["media"].as_array().expect("media") {
        let (quarantined_by, safe) = if item["media_id"] == one.as_str() {
            (json!(admin.user_id), false)
        } else {
            (Value::Null, item["media_id"] == two.as_str())
        };
        assert_eq!(item["quarantined_by"], quarantined_by, "{listed}");
        assert_eq!(item["safe_from_quarantine"], safe, "{listed}");
    }
    // Bob's own tenant still serves his upload: a.test quarantined only its copy.
    assert_eq!(status_of(&as_bob, "b.test", &bobs).await, 200);

    // The older path does the same; media quarantined already counts again, as Synapse.
    let legacy = format!("{ADMIN}/quarantine_media/{}", enc(&room_id));
    assert_eq!(
        api.post(&legacy, json!({})).await.ok(),
        json!({"num_quarantined": 2})
    );
    // Unprotected, the rest of the room goes too.
    let unprotect = api
        .post(&format!("{ADMIN}/media/unprotect/{two}"), json!({}))
        .await;
    assert_eq!(unprotect.ok(), json!({}));
    assert_eq!(
        api.post(&path, json!({})).await.ok(),
        json!({"num_quarantined": 3})
    );
    assert_eq!(status_of(&as_alice, "a.test", &two).await, 404);

    // Rooms with no media, unknown or not even room ids, have nothing to quarantine.
    for room in ["!unknown:a.test", "not-a-room"] {
        let path = format!("{ADMIN}/room/{}/media/quarantine", enc(room));
        assert_eq!(
            api.post(&path, json!({})).await.ok(),
            json!({"num_quarantined": 0})
        );
    }
    // b.test's admin asking about a.test's room touches nothing of a.test.
    let b_api = srv.on("b.test").as_user(&b_admin);
    let b_path = format!("{ADMIN}/room/{}/media/quarantine", enc(&room_id));
    assert_eq!(
        b_api.post(&b_path, json!({})).await.ok(),
        json!({"num_quarantined": 0})
    );
    assert_eq!(status_of(&as_bob, "b.test", &bobs).await, 200);
}

#[tokio::test]
async fn a_users_uploads_are_quarantined_but_for_protected_media() {
    let (srv, admin, b_admin) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let bob = srv.register("b.test", "bob", "pw-bob-1").await;
    let as_bob = srv.on("b.test").as_user(&bob);
    let one = upload_one(&as_alice, b"one").await;
    let two = upload_one(&as_alice, b"two").await;
    let three = upload_one(&as_alice, b"three").await;
    let bobs = upload_one(&as_bob, b"bob's").await;
    let api = srv.on("a.test").as_user(&admin);
    api.post(&format!("{ADMIN}/media/protect/{two}"), json!({}))
        .await
        .ok();
    // Protected media is kept from a quarantine by id as well (Synapse's one rule for all).
    let by_id = format!("{ADMIN}/media/quarantine/a.test/{two}");
    assert_eq!(api.post(&by_id, json!({})).await.ok(), json!({}));
    assert_eq!(status_of(&as_alice, "a.test", &two).await, 200);

    let path = format!("{ADMIN}/user/{}/media/quarantine", enc(&alice.user_id));
    assert_eq!(
        api.post(&path, json!({})).await.ok(),
        json!({"num_quarantined": 2})
    );
    for media_id in [&one, &three] {
        assert_eq!(status_of(&as_alice, "a.test", media_id).await, 404);
        let info = media_info(&api, "a.test", media_id).await;
        assert_eq!(info["quarantined_by"], admin.user_id, "{info}");
    }
    assert_eq!(status_of(&as_alice, "a.test", &two).await, 200);
    // What is quarantined already is not counted again.
    assert_eq!(
        api.post(&path, json!({})).await.ok(),
        json!({"num_quarantined": 0})
    );

    // As Synapse, users are not looked up: another server's, an unknown one or a malformed id
    // has nothing quarantined here.
    for user in [bob.user_id.as_str(), "@nobody:a.test", "not-a-user"] {
        let path = format!("{ADMIN}/user/{}/media/quarantine", enc(user));
        assert_eq!(
            api.post(&path, json!({})).await.ok(),
            json!({"num_quarantined": 0})
        );
    }
    assert_eq!(status_of(&as_bob, "b.test", &bobs).await, 200);

    // Protection of unknown media is Synapse's failed update; b.test doesn't know a.test's.
    for media_id in ["nosuchmedia", "not/an/id"] {
        for verb in ["protect", "unprotect"] {
            let resp = api
                .post(
                    &format!("{ADMIN}/media/{verb}/{}", enc(media_id)),
                    json!({}),
                )
                .await;
            assert_error(&resp, 404, "M_UNKNOWN");
        }
    }
    let b_api = srv.on("b.test").as_user(&b_admin);
    let resp = b_api
        .post(&format!("{ADMIN}/media/unprotect/{two}"), json!({}))
        .await;
    assert_error(&resp, 404, "M_UNKNOWN");
    let b_path = format!("{ADMIN}/user/{}/media/quarantine", enc(&alice.user_id));
    assert_eq!(
        b_api.post(&b_path, json!({})).await.ok(),
        json!({"num_quarantined": 0})
    );
    assert_eq!(
        media_info(&api, "a.test", &two).await["safe_from_quarantine"],
        true
    );
}

#[tokio::test]
async fn old_local_media_is_deleted_by_date_and_size() {
    let (srv, admin, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let bob = srv.register("b.test", "bob", "pw-bob-1").await;
    let as_bob = srv.on("b.test").as_user(&bob);
    let big = upload_one(&as_alice, b"three").await;
    let small = upload_one(&as_alice, b"1").await;
    let avatar = upload_one(&as_alice, b"face").await;
    let room_avatar = upload_one(&as_alice, b"room").await;
    let bobs = upload_one(&as_bob, b"bob's").await;
    let profile = format!(
        "/_matrix/client/v3/profile/{}/avatar_url",
        enc(&alice.user_id)
    );
    as_alice
        .put(
            &profile,
            json!({"avatar_url": format!("mxc://a.test/{avatar}")}),
        )
        .await
        .ok();
    let avatar_state = json!({"type": "m.room.avatar", "state_key": "", "content": {"url": format!("mxc://a.test/{room_avatar}")}});
    create_room(&as_alice, json!({"initial_state": [avatar_state]})).await;
    let api = srv.on("a.test").as_user(&admin);
    let later = now_ms() + 1000;
    let delete = |query: String| {
        let api = &api;
        async move {
            api.post(&format!("{ADMIN}/media/delete?{query}"), json!({}))
                .await
        }
    };

    // Nothing was last served before an earlier time.
    let resp = delete(format!("before_ts={}", now_ms() - 60_000))
        .await
        .ok();
    assert_eq!(resp, json!({"deleted_media": [], "total": 0}));
    // Larger than one byte, avatars kept: only the big upload.
    let resp = delete(format!("before_ts={later}&size_gt=1")).await.ok();
    assert_eq!(resp, json!({"deleted_media": [big], "total": 1}));
    assert_eq!(status_of(&as_alice, "a.test", &big).await, 404);
    assert_eq!(status_of(&as_alice, "a.test", &small).await, 200);
    assert_eq!(status_of(&as_alice, "a.test", &avatar).await, 200);

    // Quarantined and protected media stays whatever is asked.
    api.post(
        &format!("{ADMIN}/media/quarantine/a.test/{small}"),
        json!({}),
    )
    .await
    .ok();
    api.post(&format!("{ADMIN}/media/protect/{avatar}"), json!({}))
        .await
        .ok();
    let resp = delete(format!("before_ts={later}&keep_profiles=false"))
        .await
        .ok();
    assert_eq!(resp, json!({"deleted_media": [room_avatar], "total": 1}));
    assert_eq!(status_of(&as_alice, "a.test", &room_avatar).await, 404);
    assert_eq!(
        media_info(&api, "a.test", &small).await["media_id"],
        small.as_str()
    );
    api.post(
        &format!("{ADMIN}/media/unquarantine/a.test/{small}"),
        json!({}),
    )
    .await
    .ok();
    api.post(&format!("{ADMIN}/media/unprotect/{avatar}"), json!({}))
        .await
        .ok();

    // The older path, for the tenant's own server name only.
    let resp = api
        .post(
            &format!("{ADMIN}/media/b.test/delete?before_ts={later}"),
            json!({}),
        )
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    let resp = api
        .post(
            &format!("{ADMIN}/media/a.test/delete?before_ts={later}&keep_profiles=false"),
            json!({}),
        )
        .await
        .ok();
    let mut deleted: Vec<String> =
        serde_json::from_value(resp["deleted_media"].clone()).expect("ids");
    deleted.sort();
    let mut expected = vec![small.clone(), avatar.clone()];
    expected.sort();
    assert_eq!(deleted, expected, "{resp}");
    assert_eq!(resp["total"], 2, "{resp}");
    assert_eq!(status_of(&as_alice, "a.test", &avatar).await, 404);
    // Another tenant's media is not a.test's to delete.
    assert_eq!(status_of(&as_bob, "b.test", &bobs).await, 200);
}

#[tokio::test]
async fn old_media_deletion_checks_its_parameters_as_synapse() {
    let (srv, admin, _) = tenants_with_admins().await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let one = upload_one(&as_alice, b"one").await;
    let api = srv.on("a.test").as_user(&admin);
    let later = now_ms() + 1000;
    for base in [
        format!("{ADMIN}/media/delete"),
        format!("{ADMIN}/media/a.test/delete"),
    ] {
        let resp = api.post(&base, json!({})).await;
        assert_error(&resp, 400, "M_MISSING_PARAM");
        for query in [
            "before_ts=-1".to_owned(),
            "before_ts=1000".to_owned(),
            "before_ts=soon".to_owned(),
            format!("before_ts={later}&size_gt=-1"),
            format!("before_ts={later}&size_gt=big"),
            format!("before_ts={later}&keep_profiles=maybe"),
        ] {
            let resp = api.post(&format!("{base}?{query}"), json!({})).await;
            assert_error(&resp, 400, "M_INVALID_PARAM");
        }
    }
    // Bad requests changed nothing.
    assert_eq!(status_of(&as_alice, "a.test", &one).await, 200);
}
