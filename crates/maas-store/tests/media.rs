//! `MediaStore` on both backends: uploads within quota (refusals store nothing), the lifecycle
//! of pending uploads, deletion with thumbnails, quarantine, listings, cached remote media,
//! thumbnails kept once, the blob references the three tables hold, and export and import of
//! all of it, also from SQLite to PostgreSQL and back.

use std::sync::Arc;

use maas_store::postgres::{PostgresBackend, PostgresOptions};
use maas_store::sqlite::SqliteBackend;
use maas_store::{
    Backend, MediaInsert, MediaQuota, MediaRecord, PendingUpload, QuarantineMark,
    RemoteMediaRecord, StoreError, TableRows, TenantStore, ThumbnailRecord, UploadedBytes,
    UserRecord,
};
use serde_json::{Value, json};

mod support;
use support::{Fixture, TestDb, on_both_backends};

/// The tenant's server name: the origin of its own media's thumbnails.
const LOCAL: &str = "example.org";
const REMOTE: &str = "remote.example";
const ALICE: &str = "@alice:example.org";
const BOB: &str = "@bob:example.org";

/// No quota at all.
const UNLIMITED: MediaQuota = MediaQuota {
    tenant_bytes: None,
    user_bytes: None,
};

on_both_backends!(uploads_are_stored_and_read_back);
on_both_backends!(quotas_refuse_uploads_and_store_nothing);
on_both_backends!(concurrent_uploads_never_exceed_the_quota, multi_thread);
on_both_backends!(pending_uploads_are_counted_until_they_expire);
on_both_backends!(pending_uploads_take_their_bytes_once);
on_both_backends!(completing_a_pending_upload_checks_the_quotas);
on_both_backends!(expired_pending_uploads_are_deleted);
on_both_backends!(deleting_media_removes_its_thumbnails);
on_both_backends!(media_is_quarantined_and_released);
on_both_backends!(media_is_quarantined_in_an_admins_name_unless_protected);
on_both_backends!(old_local_media_is_found_for_deletion);
on_both_backends!(media_is_listed_in_pages);
on_both_backends!(usage_counts_stored_bytes);
on_both_backends!(remote_media_is_cached_replaced_and_purged);
on_both_backends!(thumbnails_are_kept_once);
on_both_backends!(blob_references_span_the_three_tables);
on_both_backends!(media_rows_survive_export_and_import);

/// A digest made of one repeated byte.
fn digest(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

/// A whole upload of `size` bytes by `uploader` at `ts`, its digest `digest(byte)`.
fn upload(media_id: &str, uploader: &str, size: u64, ts: i64, byte: u8) -> MediaRecord {
    MediaRecord {
        media_id: media_id.to_owned(),
        uploader: uploader.to_owned(),
        content_type: Some("image/png".to_owned()),
        file_name: Some(format!("{media_id} «name».png")),
        size,
        sha256: Some(digest(byte)),
        created_ts: ts,
        last_access_ts: ts,
        expires_ts: None,
        quarantined: false,
    }
}

/// A media id created at 1000 whose bytes must come before `expires_ts`.
fn pending(media_id: &str, uploader: &str, expires_ts: i64) -> MediaRecord {
    MediaRecord {
        content_type: None,
        file_name: None,
        size: 0,
        sha256: None,
        expires_ts: Some(expires_ts),
        ..upload(media_id, uploader, 0, 1_000, 0)
    }
}

fn bytes(size: u64, byte: u8) -> UploadedBytes {
    UploadedBytes {
        content_type: Some("text/plain".to_owned()),
        file_name: None,
        size,
        sha256: digest(byte),
    }
}

fn remote(origin: &str, media_id: &str, last_access_ts: i64, byte: u8) -> RemoteMediaRecord {
    RemoteMediaRecord {
        origin: origin.to_owned(),
        media_id: media_id.to_owned(),
        content_type: Some("image/jpeg".to_owned()),
        file_name: None,
        size: 500,
        sha256: digest(byte),
        fetched_ts: 100,
        last_access_ts,
        quarantined: false,
    }
}

fn thumbnail(origin: &str, media_id: &str, width: u32, method: &str, byte: u8) -> ThumbnailRecord {
    ThumbnailRecord {
        origin: origin.to_owned(),
        media_id: media_id.to_owned(),
        width,
        height: width,
        method: method.to_owned(),
        animated: false,
        content_type: "image/webp".to_owned(),
        size: 40,
        sha256: digest(byte),
    }
}

fn quota(tenant_bytes: Option<u64>, user_bytes: Option<u64>) -> MediaQuota {
    MediaQuota {
        tenant_bytes,
        user_bytes,
    }
}

async fn store_upload(store: &dyn TenantStore, media: &MediaRecord) {
    assert_eq!(
        store.insert_media(media, UNLIMITED).await.unwrap(),
        MediaInsert::Stored
    );
}

async fn uploads_are_stored_and_read_back(store: &dyn TenantStore) {
    let media = upload("m1", ALICE, 1234, 1_000, 1);
    store_upload(store, &media).await;
    assert_eq!(store.media("m1").await.unwrap(), Some(media.clone()));
    assert_eq!(store.media("m2").await.unwrap(), None);

    // A taken id is refused, pending or whole, and the stored record stays.
    let again = upload("m1", BOB, 1, 2_000, 2);
    let result = store.insert_media(&again, UNLIMITED).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    let result = store.insert_pending_media(&pending("m1", BOB, 9_000)).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    // Even when the quota would refuse it too.
    let result = store.insert_media(&again, quota(Some(0), None)).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.media("m1").await.unwrap(), Some(media));

    // Sizes beyond 32 bits and empty optional fields come back as written.
    let large = MediaRecord {
        content_type: None,
        file_name: None,
        ..upload("m2", BOB, 5 << 40, 3_000, 3)
    };
    store_upload(store, &large).await;
    assert_eq!(store.media("m2").await.unwrap(), Some(large));

    // Touching keeps the latest time; an unknown id is no error.
    store.touch_media("m1", 5_000).await.unwrap();
    store.touch_media("m1", 4_000).await.unwrap();
    store.touch_media("nope", 4_000).await.unwrap();
    let touched = store.media("m1").await.unwrap().unwrap();
    assert_eq!((touched.created_ts, touched.last_access_ts), (1_000, 5_000));
}

async fn quotas_refuse_uploads_and_store_nothing(store: &dyn TenantStore) {
    store_upload(store, &upload("a1", ALICE, 60, 1, 1)).await;
    store_upload(store, &upload("b1", BOB, 30, 2, 2)).await;
    // A pending upload counts nothing.
    store
        .insert_pending_media(&pending("p1", ALICE, 9_000))
        .await
        .unwrap();

    // Exactly up to the limit is allowed; one byte more is not.
    let cases = [
        (quota(Some(100), None), 11, MediaInsert::TenantQuotaExceeded),
        (quota(None, Some(70)), 11, MediaInsert::UserQuotaExceeded),
        // Both exceeded: the tenant's quota is checked first.
        (
            quota(Some(100), Some(70)),
            11,
            MediaInsert::TenantQuotaExceeded,
        ),
        (
            quota(Some(1_000), Some(70)),
            11,
            MediaInsert::UserQuotaExceeded,
        ),
    ];
    for (i, (limits, size, expected)) in cases.into_iter().enumerate() {
        let id = format!("refused{i}");
        let answer = store
            .insert_media(&upload(&id, ALICE, size, 3, 3), limits)
            .await
            .unwrap();
        assert_eq!(answer, expected, "{limits:?}");
        assert_eq!(store.media(&id).await.unwrap(), None, "{limits:?}");
    }
    assert_eq!(store.media_usage(None).await.unwrap(), 90);
    assert_eq!(store.media_usage(Some(ALICE)).await.unwrap(), 60);

    let fits = upload("a2", ALICE, 10, 4, 4);
    let answer = store
        .insert_media(&fits, quota(Some(100), Some(70)))
        .await
        .unwrap();
    assert_eq!(answer, MediaInsert::Stored);
    assert_eq!(store.media("a2").await.unwrap(), Some(fits));
    // Bob's own usage is what his quota counts.
    let answer = store
        .insert_media(&upload("b2", BOB, 40, 5, 5), quota(None, Some(70)))
        .await
        .unwrap();
    assert_eq!(answer, MediaInsert::Stored);
    assert_eq!(store.media_usage(None).await.unwrap(), 140);
}

/// Concurrent uploads, each checking the tenant's quota, store exactly as many as fit.
async fn concurrent_uploads_never_exceed_the_quota(store: Arc<dyn TenantStore>) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let media = upload(&format!("m{i:02}"), ALICE, 10, i, 1);
                store.insert_media(&media, quota(Some(95), None)).await
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            MediaInsert::Stored => stored += 1,
            refused => assert_eq!(refused, MediaInsert::TenantQuotaExceeded),
        }
    }
    assert_eq!(stored, 9);
    assert_eq!(store.media_usage(None).await.unwrap(), 90);
}

async fn pending_uploads_are_counted_until_they_expire(store: &dyn TenantStore) {
    for (id, expires_ts) in [("p1", 2_000), ("p2", 3_000), ("p3", 4_000)] {
        store
            .insert_pending_media(&pending(id, ALICE, expires_ts))
            .await
            .unwrap();
    }
    store
        .insert_pending_media(&pending("p4", BOB, 4_000))
        .await
        .unwrap();
    store_upload(store, &upload("m1", ALICE, 10, 1_000, 1)).await;
    let read = store.media("p1").await.unwrap().unwrap();
    assert_eq!(
        (read.sha256, read.expires_ts, read.size),
        (None, Some(2_000), 0)
    );

    assert_eq!(store.count_pending_media(ALICE, 1_000).await.unwrap(), 3);
    // Still pending at its expiry time, expired after it.
    assert_eq!(store.count_pending_media(ALICE, 2_000).await.unwrap(), 3);
    assert_eq!(store.count_pending_media(ALICE, 2_001).await.unwrap(), 2);
    assert_eq!(store.count_pending_media(ALICE, 5_000).await.unwrap(), 0);
    assert_eq!(store.count_pending_media(BOB, 1_000).await.unwrap(), 1);
    // A completed upload is no longer pending.
    let answer = store
        .complete_pending_media("p2", ALICE, &bytes(5, 2), UNLIMITED, 1_000)
        .await
        .unwrap();
    assert_eq!(answer, PendingUpload::Stored);
    assert_eq!(store.count_pending_media(ALICE, 1_000).await.unwrap(), 2);
}

async fn pending_uploads_take_their_bytes_once(store: &dyn TenantStore) {
    store
        .insert_pending_media(&pending("p1", ALICE, 2_000))
        .await
        .unwrap();
    let complete = |media_id: &'static str, uploader: &'static str, now_ts: i64| async move {
        store
            .complete_pending_media(media_id, uploader, &bytes(7, 9), UNLIMITED, now_ts)
            .await
            .unwrap()
    };
    assert_eq!(
        complete("nope", ALICE, 1_500).await,
        PendingUpload::NotFound
    );
    // Expiry is checked before the owner.
    assert_eq!(complete("p1", BOB, 2_001).await, PendingUpload::NotFound);
    assert_eq!(complete("p1", ALICE, 2_001).await, PendingUpload::NotFound);
    assert_eq!(complete("p1", BOB, 1_500).await, PendingUpload::NotUploader);
    assert_eq!(store.media("p1").await.unwrap().unwrap().sha256, None);

    assert_eq!(complete("p1", ALICE, 2_000).await, PendingUpload::Stored);
    let stored = store.media("p1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        MediaRecord {
            content_type: Some("text/plain".to_owned()),
            file_name: None,
            size: 7,
            sha256: Some(digest(9)),
            expires_ts: None,
            ..pending("p1", ALICE, 2_000)
        }
    );
    // Uploaded is uploaded, whenever asked; someone else is still someone else.
    assert_eq!(
        complete("p1", ALICE, 1_500).await,
        PendingUpload::AlreadyUploaded
    );
    assert_eq!(
        complete("p1", ALICE, 9_000).await,
        PendingUpload::AlreadyUploaded
    );
    assert_eq!(complete("p1", BOB, 9_000).await, PendingUpload::NotUploader);
    // A whole upload's id takes no more bytes either.
    store_upload(store, &upload("m1", ALICE, 3, 1_000, 1)).await;
    assert_eq!(
        complete("m1", ALICE, 1_500).await,
        PendingUpload::AlreadyUploaded
    );
    assert_eq!(store.media("p1").await.unwrap(), Some(stored));
}

async fn completing_a_pending_upload_checks_the_quotas(store: &dyn TenantStore) {
    store_upload(store, &upload("a1", ALICE, 50, 1, 1)).await;
    store_upload(store, &upload("b1", BOB, 40, 2, 2)).await;
    store
        .insert_pending_media(&pending("p1", ALICE, 9_000))
        .await
        .unwrap();
    let before = store.media("p1").await.unwrap();
    for (limits, expected) in [
        (quota(Some(100), None), PendingUpload::TenantQuotaExceeded),
        (
            quota(Some(100), Some(10)),
            PendingUpload::TenantQuotaExceeded,
        ),
        (quota(None, Some(60)), PendingUpload::UserQuotaExceeded),
    ] {
        let answer = store
            .complete_pending_media("p1", ALICE, &bytes(11, 3), limits, 1_000)
            .await
            .unwrap();
        assert_eq!(answer, expected, "{limits:?}");
        assert_eq!(store.media("p1").await.unwrap(), before, "{limits:?}");
    }
    assert_eq!(store.media_usage(None).await.unwrap(), 90);
    let answer = store
        .complete_pending_media(
            "p1",
            ALICE,
            &bytes(10, 3),
            quota(Some(100), Some(60)),
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(answer, PendingUpload::Stored);
    assert_eq!(store.media_usage(None).await.unwrap(), 100);
    assert_eq!(store.media_usage(Some(ALICE)).await.unwrap(), 60);
}

async fn expired_pending_uploads_are_deleted(store: &dyn TenantStore) {
    for (id, expires_ts) in [("p1", 2_000), ("p2", 3_000), ("p3", 4_000)] {
        store
            .insert_pending_media(&pending(id, ALICE, expires_ts))
            .await
            .unwrap();
    }
    // Completed in time: stored, never expires.
    let answer = store
        .complete_pending_media("p1", ALICE, &bytes(1, 1), UNLIMITED, 1_500)
        .await
        .unwrap();
    assert_eq!(answer, PendingUpload::Stored);
    store_upload(store, &upload("m1", ALICE, 3, 1_000, 2)).await;

    assert_eq!(store.delete_expired_pending_media(3_000).await.unwrap(), 0);
    assert_eq!(store.delete_expired_pending_media(3_001).await.unwrap(), 1);
    assert_eq!(store.media("p2").await.unwrap(), None);
    assert_eq!(store.delete_expired_pending_media(3_001).await.unwrap(), 0);
    assert_eq!(store.delete_expired_pending_media(10_000).await.unwrap(), 1);
    for id in ["p1", "m1"] {
        assert!(store.media(id).await.unwrap().is_some(), "{id}");
    }
    assert_eq!(store.media("p3").await.unwrap(), None);
}

async fn deleting_media_removes_its_thumbnails(store: &dyn TenantStore) {
    let media = upload("m1", ALICE, 10, 1_000, 1);
    store_upload(store, &media).await;
    // Thumbnails of the local media, and of remote media that happens to have the same id.
    let local = [
        thumbnail(LOCAL, "m1", 96, "scale", 2),
        thumbnail(LOCAL, "m1", 32, "crop", 3),
    ];
    let cached = remote(REMOTE, "m1", 100, 4);
    let remote_thumbnail = thumbnail(REMOTE, "m1", 32, "crop", 5);
    store.insert_remote_media(&cached).await.unwrap();
    for t in local.iter().chain([&remote_thumbnail]) {
        assert!(store.insert_thumbnail(t).await.unwrap());
    }

    let (deleted, thumbnails) = store.delete_media("m1").await.unwrap().unwrap();
    assert_eq!(deleted, media);
    // In the order of their key.
    assert_eq!(thumbnails, [local[1].clone(), local[0].clone()]);
    assert_eq!(store.media("m1").await.unwrap(), None);
    assert_eq!(
        store
            .thumbnail(LOCAL, "m1", 32, 32, "crop", false)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.delete_media("m1").await.unwrap(), None);

    // The remote media's thumbnail stayed, and goes with it.
    let (deleted, thumbnails) = store
        .delete_remote_media(REMOTE, "m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted, cached);
    assert_eq!(thumbnails, [remote_thumbnail]);
    assert_eq!(store.remote_media(REMOTE, "m1").await.unwrap(), None);
    assert_eq!(store.delete_remote_media(REMOTE, "m1").await.unwrap(), None);
    assert_eq!(store.count_blob_references(&digest(5)).await.unwrap(), 0);
}

async fn media_is_quarantined_and_released(store: &dyn TenantStore) {
    store_upload(store, &upload("m1", ALICE, 10, 1_000, 1)).await;
    store
        .insert_remote_media(&remote(REMOTE, "r1", 100, 2))
        .await
        .unwrap();

    assert!(store.set_media_quarantined("m1", true).await.unwrap());
    assert!(store.media("m1").await.unwrap().unwrap().quarantined);
    assert!(store.set_media_quarantined("m1", false).await.unwrap());
    assert!(!store.media("m1").await.unwrap().unwrap().quarantined);
    assert!(!store.set_media_quarantined("nope", true).await.unwrap());

    assert!(
        store
            .set_remote_media_quarantined(REMOTE, "r1", true)
            .await
            .unwrap()
    );
    let cached = store.remote_media(REMOTE, "r1").await.unwrap().unwrap();
    assert!(cached.quarantined);
    assert!(
        !store
            .set_remote_media_quarantined("other.example", "r1", true)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_remote_media_quarantined(REMOTE, "r1", false)
            .await
            .unwrap()
    );
    assert!(
        !store
            .remote_media(REMOTE, "r1")
            .await
            .unwrap()
            .unwrap()
            .quarantined
    );
}

fn mark(media_id: &str, quarantined_by: Option<&str>, safe: bool) -> QuarantineMark {
    QuarantineMark {
        media_id: media_id.to_owned(),
        quarantined_by: quarantined_by.map(str::to_owned),
        safe_from_quarantine: safe,
    }
}

async fn media_is_quarantined_in_an_admins_name_unless_protected(store: &dyn TenantStore) {
    const ADMIN: &str = "@admin:example.org";
    for (id, uploader) in [("m1", ALICE), ("m2", ALICE), ("m3", ALICE), ("m4", BOB)] {
        store_upload(store, &upload(id, uploader, 10, 1_000, 1)).await;
    }
    store
        .insert_remote_media(&remote(REMOTE, "r1", 100, 2))
        .await
        .unwrap();
    assert!(store.set_media_safe("m2", true).await.unwrap());
    assert!(!store.set_media_safe("nope", true).await.unwrap());

    assert!(store.quarantine_media_by("m1", ADMIN).await.unwrap());
    assert!(!store.quarantine_media_by("m2", ADMIN).await.unwrap());
    assert!(!store.quarantine_media_by("nope", ADMIN).await.unwrap());
    assert!(store.media("m1").await.unwrap().unwrap().quarantined);
    assert!(!store.media("m2").await.unwrap().unwrap().quarantined);
    // Alice's last upload: the one neither quarantined nor protected.
    assert_eq!(store.quarantine_uploads_by(ALICE, ADMIN).await.unwrap(), 1);
    assert_eq!(store.quarantine_uploads_by(ALICE, ADMIN).await.unwrap(), 0);
    assert!(store.media("m3").await.unwrap().unwrap().quarantined);
    assert!(!store.media("m4").await.unwrap().unwrap().quarantined);

    let expected = vec![
        mark("m1", Some(ADMIN), false),
        mark("m2", None, true),
        mark("m3", Some(ADMIN), false),
    ];
    assert_eq!(store.quarantine_marks(None, None).await.unwrap(), expected);
    assert_eq!(
        store.quarantine_marks(Some(ALICE), None).await.unwrap(),
        expected
    );
    assert_eq!(
        store.quarantine_marks(Some(BOB), None).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.quarantine_marks(None, Some("m2")).await.unwrap(),
        vec![mark("m2", None, true)]
    );
    assert_eq!(
        store.quarantine_marks(Some(BOB), Some("m2")).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.quarantine_marks(None, Some("m4")).await.unwrap(),
        vec![]
    );

    // A quarantine naming no admin (the operator's) or its release forgets who.
    assert!(store.set_media_quarantined("m1", true).await.unwrap());
    assert!(store.set_media_quarantined("m3", false).await.unwrap());
    assert!(store.set_media_safe("m2", false).await.unwrap());
    assert_eq!(
        store.quarantine_marks(None, None).await.unwrap(),
        vec![mark("m1", None, false)]
    );

    assert!(
        store
            .quarantine_remote_media_by(REMOTE, "r1", ADMIN)
            .await
            .unwrap()
    );
    assert!(
        !store
            .quarantine_remote_media_by(LOCAL, "r1", ADMIN)
            .await
            .unwrap()
    );
    assert!(
        store
            .remote_media(REMOTE, "r1")
            .await
            .unwrap()
            .unwrap()
            .quarantined
    );
    assert_eq!(
        store
            .remote_media_quarantined_by(REMOTE, "r1")
            .await
            .unwrap()
            .as_deref(),
        Some(ADMIN)
    );
    assert!(
        store
            .set_remote_media_quarantined(REMOTE, "r1", false)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .remote_media_quarantined_by(REMOTE, "r1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .remote_media_quarantined_by(REMOTE, "nope")
            .await
            .unwrap(),
        None
    );
}

async fn old_local_media_is_found_for_deletion(store: &dyn TenantStore) {
    let mut old_big = upload("a-big", ALICE, 100, 1_000, 1);
    old_big.last_access_ts = 1_500;
    store_upload(store, &old_big).await;
    store_upload(store, &upload("b-small", ALICE, 5, 1_000, 2)).await;
    store_upload(store, &upload("c-new", BOB, 100, 5_000, 3)).await;
    store_upload(store, &upload("d-quarantined", BOB, 100, 1_000, 4)).await;
    store_upload(store, &upload("e-safe", BOB, 100, 1_000, 5)).await;
    store
        .insert_pending_media(&pending("f-pending", BOB, 9_000))
        .await
        .unwrap();
    store
        .set_media_quarantined("d-quarantined", true)
        .await
        .unwrap();
    store.set_media_safe("e-safe", true).await.unwrap();

    let found = |size_gt, after: Option<&'static str>, limit| async move {
        let records = store
            .local_media_unused_since(2_000, size_gt, after, limit)
            .await
            .unwrap();
        records.into_iter().map(|r| r.media_id).collect::<Vec<_>>()
    };
    assert_eq!(found(0, None, 10).await, ["a-big", "b-small"]);
    assert_eq!(found(5, None, 10).await, ["a-big"]);
    assert_eq!(found(0, None, 1).await, ["a-big"]);
    assert_eq!(found(0, Some("a-big"), 10).await, ["b-small"]);
    assert!(found(100, None, 10).await.is_empty());

    store
        .insert_user(
            &UserRecord {
                localpart: "alice".to_owned(),
                avatar_url: Some("mxc://example.org/a-big".to_owned()),
                ..UserRecord::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store.avatar_uris().await.unwrap(),
        ["mxc://example.org/a-big"]
    );
}

async fn media_is_listed_in_pages(store: &dyn TenantStore) {
    // Ids of the same time are ordered byte by byte ("B" before "a"), whatever the collation.
    let layout = [
        ("a2", ALICE, 20),
        ("B1", BOB, 10),
        ("a1", ALICE, 10),
        ("b2", BOB, 20),
        ("a3", ALICE, 30),
    ];
    for (i, (id, uploader, ts)) in layout.into_iter().enumerate() {
        let byte = u8::try_from(i).unwrap();
        store_upload(store, &upload(id, uploader, 1, ts, byte)).await;
    }
    store
        .insert_pending_media(&pending("p1", ALICE, 9_000))
        .await
        .unwrap();
    // Pending uploads are listed too (created at 1000).
    assert_eq!(
        listed(store, None, 2).await,
        ["B1", "a1", "a2", "b2", "a3", "p1"]
    );
    assert_eq!(listed(store, None, 10).await, listed(store, None, 1).await);
    assert_eq!(
        listed(store, Some(ALICE), 2).await,
        ["a1", "a2", "a3", "p1"]
    );
    assert_eq!(listed(store, Some(BOB), 1).await, ["B1", "b2"]);
    assert!(
        listed(store, Some("@nobody:example.org"), 5)
            .await
            .is_empty()
    );
    // A cursor between records, and past the end.
    let after = store
        .list_media(None, Some(&(15, "zzz".to_owned())), 10)
        .await
        .unwrap();
    assert_eq!(ids(&after), ["a2", "b2", "a3", "p1"]);
    let after = store
        .list_media(Some(BOB), Some(&(20, "b2".to_owned())), 10)
        .await
        .unwrap();
    assert!(after.is_empty());
    // The records are whole.
    let first = store.list_media(None, None, 1).await.unwrap();
    assert_eq!(first, [upload("B1", BOB, 1, 10, 1)]);
}

/// Every media id of `uploader` (or of all), read in pages of `page`.
async fn listed(store: &dyn TenantStore, uploader: Option<&str>, page: u32) -> Vec<String> {
    let mut all = Vec::new();
    let mut from = None;
    loop {
        let records = store
            .list_media(uploader, from.as_ref(), page)
            .await
            .unwrap();
        assert!(records.len() <= page as usize);
        let Some(last) = records.last() else {
            return all;
        };
        from = Some((last.created_ts, last.media_id.clone()));
        all.extend(records.into_iter().map(|m| m.media_id));
    }
}

fn ids(records: &[MediaRecord]) -> Vec<&str> {
    records.iter().map(|m| m.media_id.as_str()).collect()
}

async fn usage_counts_stored_bytes(store: &dyn TenantStore) {
    assert_eq!(store.media_usage(None).await.unwrap(), 0);
    assert_eq!(store.media_usage(Some(ALICE)).await.unwrap(), 0);
    store_upload(store, &upload("a1", ALICE, 100, 1, 1)).await;
    store_upload(store, &upload("a2", ALICE, 20, 2, 1)).await;
    store_upload(store, &upload("b1", BOB, 3, 3, 2)).await;
    store
        .insert_pending_media(&pending("p1", ALICE, 9_000))
        .await
        .unwrap();
    // Cached remote media and thumbnails count for no one.
    store
        .insert_remote_media(&remote(REMOTE, "r1", 100, 3))
        .await
        .unwrap();
    store
        .insert_thumbnail(&thumbnail(LOCAL, "a1", 32, "crop", 4))
        .await
        .unwrap();
    assert_eq!(store.media_usage(None).await.unwrap(), 123);
    assert_eq!(store.media_usage(Some(ALICE)).await.unwrap(), 120);
    assert_eq!(store.media_usage(Some(BOB)).await.unwrap(), 3);
    store.delete_media("a1").await.unwrap();
    assert_eq!(store.media_usage(None).await.unwrap(), 23);
}

async fn remote_media_is_cached_replaced_and_purged(store: &dyn TenantStore) {
    let first = remote(REMOTE, "r1", 300, 1);
    store.insert_remote_media(&first).await.unwrap();
    assert_eq!(
        store.remote_media(REMOTE, "r1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.remote_media("other.example", "r1").await.unwrap(),
        None
    );
    assert_eq!(store.remote_media(REMOTE, "r2").await.unwrap(), None);

    // Fetched again: the new record replaces the old one whole.
    let replaced = RemoteMediaRecord {
        content_type: None,
        file_name: Some("new.jpg".to_owned()),
        size: 7 << 33,
        sha256: digest(2),
        fetched_ts: 200,
        last_access_ts: 250,
        quarantined: true,
        ..first
    };
    store.insert_remote_media(&replaced).await.unwrap();
    assert_eq!(
        store.remote_media(REMOTE, "r1").await.unwrap(),
        Some(replaced.clone())
    );
    assert_eq!(store.count_blob_references(&digest(1)).await.unwrap(), 0);
    store
        .insert_remote_media(&RemoteMediaRecord {
            quarantined: false,
            ..replaced
        })
        .await
        .unwrap();

    for (origin, id, ts) in [
        ("b.example", "x", 100),
        ("a.example", "y", 100),
        ("a.example", "quarantined", 50),
        (REMOTE, "recent", 1_000),
    ] {
        store
            .insert_remote_media(&remote(origin, id, ts, 3))
            .await
            .unwrap();
    }
    assert!(
        store
            .set_remote_media_quarantined("a.example", "quarantined", true)
            .await
            .unwrap()
    );
    // Touching keeps the latest time; an unknown one is no error.
    store.touch_remote_media(REMOTE, "r1", 400).await.unwrap();
    store.touch_remote_media(REMOTE, "r1", 10).await.unwrap();
    store.touch_remote_media(REMOTE, "nope", 10).await.unwrap();
    let touched = store.remote_media(REMOTE, "r1").await.unwrap().unwrap();
    assert_eq!((touched.fetched_ts, touched.last_access_ts), (200, 400));

    let unused = |ts: i64, limit: u32| async move {
        let records = store.remote_media_unused_since(ts, limit).await.unwrap();
        records
            .into_iter()
            .map(|r| format!("{}/{}", r.origin, r.media_id))
            .collect::<Vec<_>>()
    };
    // Oldest first, then by origin and id; quarantined media stays.
    assert_eq!(
        unused(1_000, 10).await,
        ["a.example/y", "b.example/x", "remote.example/r1"]
    );
    assert_eq!(unused(1_001, 2).await, ["a.example/y", "b.example/x"]);
    assert_eq!(unused(100, 10).await, Vec::<String>::new());
}

async fn thumbnails_are_kept_once(store: &dyn TenantStore) {
    let first = thumbnail(LOCAL, "m1", 320, "scale", 1);
    assert!(store.insert_thumbnail(&first).await.unwrap());
    // Made again concurrently: the first one stays.
    let second = ThumbnailRecord {
        content_type: "image/png".to_owned(),
        size: 99,
        sha256: digest(2),
        ..first.clone()
    };
    assert!(!store.insert_thumbnail(&second).await.unwrap());
    let read = |width: u32, height: u32, method: &'static str, animated: bool| async move {
        store
            .thumbnail(LOCAL, "m1", width, height, method, animated)
            .await
            .unwrap()
    };
    assert_eq!(read(320, 320, "scale", false).await, Some(first.clone()));
    assert_eq!(store.count_blob_references(&digest(2)).await.unwrap(), 0);

    // Any part of the name makes another thumbnail.
    assert_eq!(read(320, 320, "crop", false).await, None);
    assert_eq!(read(320, 320, "scale", true).await, None);
    assert_eq!(read(320, 240, "scale", false).await, None);
    let animated = ThumbnailRecord {
        animated: true,
        ..second.clone()
    };
    assert!(store.insert_thumbnail(&animated).await.unwrap());
    assert_eq!(read(320, 320, "scale", true).await, Some(animated));
    assert_eq!(read(320, 320, "scale", false).await, Some(first));
    assert_eq!(
        store
            .thumbnail(REMOTE, "m1", 320, 320, "scale", false)
            .await
            .unwrap(),
        None
    );
    // Any `u32` size is kept whole.
    let huge = ThumbnailRecord {
        width: u32::MAX,
        height: 1,
        ..second
    };
    assert!(store.insert_thumbnail(&huge).await.unwrap());
    assert_eq!(read(u32::MAX, 1, "scale", false).await, Some(huge));
}

async fn blob_references_span_the_three_tables(store: &dyn TenantStore) {
    // digest(1) in every table, twice in `media`; the others once each.
    store_upload(store, &upload("m1", ALICE, 1, 1, 1)).await;
    store_upload(store, &upload("m2", BOB, 1, 2, 1)).await;
    store_upload(store, &upload("m3", BOB, 1, 3, 0x30)).await;
    store
        .insert_remote_media(&remote(REMOTE, "r1", 100, 1))
        .await
        .unwrap();
    store
        .insert_remote_media(&remote(REMOTE, "r2", 100, 0xf0))
        .await
        .unwrap();
    store
        .insert_thumbnail(&thumbnail(LOCAL, "m1", 32, "crop", 1))
        .await
        .unwrap();
    store
        .insert_thumbnail(&thumbnail(REMOTE, "r2", 32, "crop", 0x0a))
        .await
        .unwrap();
    // A pending upload names no blob.
    store
        .insert_pending_media(&pending("p1", ALICE, 9_000))
        .await
        .unwrap();

    assert_eq!(store.count_blob_references(&digest(1)).await.unwrap(), 4);
    for byte in [0x30, 0xf0, 0x0a] {
        assert_eq!(store.count_blob_references(&digest(byte)).await.unwrap(), 1);
    }
    assert_eq!(store.count_blob_references(&digest(2)).await.unwrap(), 0);

    let all = [digest(1), digest(0x0a), digest(0x30), digest(0xf0)];
    assert_eq!(store.blob_references(None, 10).await.unwrap(), all);
    // In pages, each starting after the last digest of the one before.
    let mut paged = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let page = store.blob_references(from.as_deref(), 1).await.unwrap();
        let Some(last) = page.last() else { break };
        from = Some(last.clone());
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert_eq!(
        store.blob_references(Some(&digest(1)), 2).await.unwrap(),
        all[1..3]
    );
    assert!(
        store
            .blob_references(Some(&digest(0xf0)), 5)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Rows in each of the media tables, with booleans set and unset.
async fn fill_media(store: &dyn TenantStore) {
    store_upload(store, &upload("m1", ALICE, 10, 1_000, 1)).await;
    store_upload(store, &upload("m2", BOB, 20, 2_000, 2)).await;
    store.set_media_quarantined("m2", true).await.unwrap();
    store
        .insert_pending_media(&pending("p1", ALICE, 9_000))
        .await
        .unwrap();
    store
        .insert_remote_media(&remote(REMOTE, "r1", 100, 3))
        .await
        .unwrap();
    store
        .insert_remote_media(&RemoteMediaRecord {
            quarantined: true,
            ..remote(REMOTE, "r2", 200, 4)
        })
        .await
        .unwrap();
    store
        .insert_thumbnail(&thumbnail(LOCAL, "m1", 32, "crop", 5))
        .await
        .unwrap();
    store
        .insert_thumbnail(&ThumbnailRecord {
            animated: true,
            ..thumbnail(REMOTE, "r1", 96, "scale", 6)
        })
        .await
        .unwrap();
}

/// What the media tables hold, read through the trait.
#[derive(Debug, PartialEq)]
struct MediaState {
    media: Vec<MediaRecord>,
    remote: Vec<Option<RemoteMediaRecord>>,
    thumbnails: Vec<Option<ThumbnailRecord>>,
    references: Vec<String>,
}

async fn media_state(store: &dyn TenantStore) -> MediaState {
    let mut remote = Vec::new();
    for id in ["r1", "r2"] {
        remote.push(store.remote_media(REMOTE, id).await.unwrap());
    }
    MediaState {
        media: store.list_media(None, None, 100).await.unwrap(),
        remote,
        thumbnails: vec![
            store
                .thumbnail(LOCAL, "m1", 32, 32, "crop", false)
                .await
                .unwrap(),
            store
                .thumbnail(REMOTE, "r1", 96, 96, "scale", true)
                .await
                .unwrap(),
        ],
        references: store.blob_references(None, 100).await.unwrap(),
    }
}

async fn export(store: &dyn TenantStore) -> Vec<TableRows> {
    let mut chunks = Vec::new();
    store.export_tables(&mut chunks).await.unwrap();
    chunks
}

/// Imports `chunks` as an archive brings them (through JSON).
async fn import(store: &dyn TenantStore, chunks: &[TableRows]) {
    let text = serde_json::to_string(chunks).unwrap();
    let chunks: Vec<TableRows> = serde_json::from_str(&text).unwrap();
    let mut import = store.begin_import().await.unwrap();
    for chunk in &chunks {
        import.write(chunk).await.unwrap();
    }
    import.commit().await.unwrap();
}

fn media_rows(chunks: &[TableRows]) -> Vec<&TableRows> {
    let tables = ["media", "remote_media", "media_thumbnails"];
    chunks
        .iter()
        .filter(|c| tables.contains(&c.table.as_str()))
        .collect()
}

async fn media_rows_survive_export_and_import(fixture: &Fixture) {
    let source = fixture.store().await;
    fill_media(source.as_ref()).await;
    let exported = export(source.as_ref()).await;
    let rows: usize = media_rows(&exported).iter().map(|c| c.rows.len()).sum();
    assert_eq!(rows, 7);

    let target = fixture.backend().await.open_tenant("tcopy").await.unwrap();
    import(target.as_ref(), &exported).await;
    assert_eq!(export(target.as_ref()).await, exported);
    assert_eq!(
        media_state(target.as_ref()).await,
        media_state(source.as_ref()).await
    );
    target.close().await;
}

/// `value` with every boolean as the integer SQLite stores it as.
fn booleans_as_integers(value: &mut Value) {
    match value {
        Value::Bool(b) => *value = json!(i64::from(*b)),
        Value::Array(items) => items.iter_mut().for_each(booleans_as_integers),
        Value::Object(map) => map.values_mut().for_each(booleans_as_integers),
        _ => {}
    }
}

#[tokio::test]
async fn media_moves_from_sqlite_to_postgres_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteBackend::open(dir.path()).await.unwrap();
    let source = sqlite.open_tenant("source").await.unwrap();
    fill_media(source.as_ref()).await;
    let exported = export(source.as_ref()).await;

    let database = TestDb::create().await;
    let postgres = PostgresBackend::open(&database.url(), PostgresOptions::default())
        .await
        .unwrap();
    let pg = postgres.open_tenant("tpg").await.unwrap();
    import(pg.as_ref(), &exported).await;
    let from_pg = export(pg.as_ref()).await;
    assert_eq!(
        media_state(pg.as_ref()).await,
        media_state(source.as_ref()).await
    );
    // Booleans come back as booleans, everything else as SQLite had it.
    let mut normalized = serde_json::to_value(media_rows(&from_pg)).unwrap();
    booleans_as_integers(&mut normalized);
    assert_eq!(
        normalized,
        serde_json::to_value(media_rows(&exported)).unwrap()
    );

    let back = sqlite.open_tenant("back").await.unwrap();
    import(back.as_ref(), &from_pg).await;
    assert_eq!(
        media_rows(&export(back.as_ref()).await),
        media_rows(&exported)
    );
    assert_eq!(
        media_state(back.as_ref()).await,
        media_state(source.as_ref()).await
    );

    for store in [source, pg, back] {
        store.close().await;
    }
    postgres.close().await;
    sqlite.close().await;
}
