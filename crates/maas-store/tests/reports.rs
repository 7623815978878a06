//! `ReportStore` on both backends: reports filed, read back by kind, listed with their filters
//! and pages, and deleted; server notice rooms remembered; and the admin API's reads of other
//! tables (federation destinations and their rooms, media usage per uploader, rooms by size).

use maas_store::{
    MediaQuota, MediaRecord, NewReport, ReportKind, ReportQuery, TableRows, TenantStore,
    UploaderUsage,
};

mod support;
use support::{Fixture, event, group, member_event, on_both_backends, plain, room};

const ROOM: &str = "!room:example.org";
const OTHER_ROOM: &str = "!other:example.org";
const ALICE: &str = "@alice:example.org";
const BOB: &str = "@bob:example.org";

on_both_backends!(reports_are_filed_read_and_deleted_by_kind);
on_both_backends!(reports_are_listed_with_filters_and_pages);
on_both_backends!(server_notice_rooms_are_remembered);
on_both_backends!(destinations_come_from_memberships_and_queues);
on_both_backends!(media_usage_is_summed_per_uploader);
on_both_backends!(largest_rooms_come_first);
on_both_backends!(reports_survive_export_and_import);

async fn with_rooms(store: &dyn TenantStore) {
    let id = store.next_state_group_id().await.unwrap();
    store
        .insert_state_group(&group(ROOM, id, None, 0, Vec::new()))
        .await
        .unwrap();
    for room_id in [ROOM, OTHER_ROOM] {
        let mut r = room(room_id);
        r.state_group = id;
        store.insert_room(&r).await.unwrap();
    }
}

fn event_report(reporter: &str, room_id: &str, event_id: &str, ts: i64) -> NewReport {
    NewReport {
        received_ts: ts,
        kind: ReportKind::Event,
        room_id: Some(room_id.to_owned()),
        event_id: Some(event_id.to_owned()),
        target_user_id: None,
        reporter: reporter.to_owned(),
        reason: Some(format!("reason {ts}")),
        score: Some(-ts),
    }
}

fn user_report(reporter: &str, target: &str, ts: i64) -> NewReport {
    NewReport {
        received_ts: ts,
        kind: ReportKind::User,
        room_id: None,
        event_id: None,
        target_user_id: Some(target.to_owned()),
        reporter: reporter.to_owned(),
        reason: None,
        score: None,
    }
}

fn query(kind: ReportKind) -> ReportQuery {
    ReportQuery {
        kind,
        reporter_contains: None,
        room_contains: None,
        target_contains: None,
        event_sender: None,
        newest_first: false,
        offset: 0,
        limit: 100,
    }
}

async fn reports_are_filed_read_and_deleted_by_kind(store: &dyn TenantStore) {
    with_rooms(store).await;
    let mut ev = event(ROOM, "$bad", 1, 10);
    ev.sender = BOB.to_owned();
    store.persist_event(&plain(ev)).await.unwrap();

    let first = store
        .insert_report(&event_report(ALICE, ROOM, "$bad", 100))
        .await
        .unwrap();
    let second = store
        .insert_report(&user_report(ALICE, BOB, 200))
        .await
        .unwrap();
    assert!(second > first, "ids grow: {first} then {second}");

    let read = store
        .report(ReportKind::Event, first)
        .await
        .unwrap()
        .expect("the event report");
    assert_eq!(read.report_id, first);
    assert_eq!(read.report, event_report(ALICE, ROOM, "$bad", 100));
    assert_eq!(read.event_sender.as_deref(), Some(BOB));
    let read = store.report(ReportKind::User, second).await.unwrap();
    let read = read.expect("the user report");
    assert_eq!(read.report, user_report(ALICE, BOB, 200));
    assert_eq!(read.event_sender, None);

    // Each kind is its own list: an id of another kind is not found, nor deleted.
    assert_eq!(store.report(ReportKind::User, first).await.unwrap(), None);
    assert_eq!(store.report(ReportKind::Room, first).await.unwrap(), None);
    assert!(!store.delete_report(ReportKind::User, first).await.unwrap());
    assert!(
        store
            .report(ReportKind::Event, first)
            .await
            .unwrap()
            .is_some()
    );

    assert!(store.delete_report(ReportKind::Event, first).await.unwrap());
    assert!(!store.delete_report(ReportKind::Event, first).await.unwrap());
    assert_eq!(store.report(ReportKind::Event, first).await.unwrap(), None);
    assert!(
        store
            .report(ReportKind::User, second)
            .await
            .unwrap()
            .is_some()
    );

    // A report of an event not stored (purged) keeps no sender.
    let orphan = store
        .insert_report(&event_report(ALICE, ROOM, "$gone", 300))
        .await
        .unwrap();
    let read = store.report(ReportKind::Event, orphan).await.unwrap();
    assert_eq!(read.expect("the orphan report").event_sender, None);
}

async fn reports_are_listed_with_filters_and_pages(store: &dyn TenantStore) {
    with_rooms(store).await;
    for (stream, event_id, sender) in [(1, "$a", BOB), (2, "$b", ALICE)] {
        let mut ev = event(ROOM, event_id, stream, stream * 10);
        ev.sender = sender.to_owned();
        store.persist_event(&plain(ev)).await.unwrap();
    }
    let mut ids = Vec::new();
    for (reporter, room_id, event_id, ts) in [
        (ALICE, ROOM, "$a", 1),
        (BOB, ROOM, "$b", 2),
        (ALICE, OTHER_ROOM, "$c", 3),
        (ALICE, ROOM, "$b", 4),
    ] {
        let report = event_report(reporter, room_id, event_id, ts);
        ids.push(store.insert_report(&report).await.unwrap());
    }
    store
        .insert_report(&user_report(ALICE, BOB, 5))
        .await
        .unwrap();
    let listed = async |q: &ReportQuery| {
        let (page, total) = store.reports(q).await.unwrap();
        (page.iter().map(|r| r.report_id).collect::<Vec<_>>(), total)
    };

    // Every event report, oldest first, and newest first; the user report is not one.
    assert_eq!(listed(&query(ReportKind::Event)).await, (ids.clone(), 4));
    let mut newest = query(ReportKind::Event);
    newest.newest_first = true;
    let reversed: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(listed(&newest).await, (reversed, 4));

    // Pages by offset and limit; the total is the whole selection's.
    let mut page = query(ReportKind::Event);
    page.offset = 1;
    page.limit = 2;
    assert_eq!(listed(&page).await, (ids[1..3].to_vec(), 4));
    page.offset = 10;
    assert_eq!(listed(&page).await, (vec![], 4));
    page.offset = 0;
    page.limit = 0;
    assert_eq!(listed(&page).await, (vec![], 4));

    // Filters: part of the reporter's or the room's ID, the event's sender exactly.
    let mut by_reporter = query(ReportKind::Event);
    by_reporter.reporter_contains = Some("alice".to_owned());
    assert_eq!(
        listed(&by_reporter).await,
        (vec![ids[0], ids[2], ids[3]], 3)
    );
    by_reporter.reporter_contains = Some("ALICE".to_owned());
    assert_eq!(listed(&by_reporter).await, (vec![], 0));
    let mut by_room = query(ReportKind::Event);
    by_room.room_contains = Some("other".to_owned());
    assert_eq!(listed(&by_room).await, (vec![ids[2]], 1));
    let mut by_sender = query(ReportKind::Event);
    by_sender.event_sender = Some(ALICE.to_owned());
    assert_eq!(listed(&by_sender).await, (vec![ids[1], ids[3]], 2));
    by_sender.event_sender = Some("alice".to_owned());
    assert_eq!(listed(&by_sender).await, (vec![], 0));
    let mut both = query(ReportKind::Event);
    both.reporter_contains = Some("@alice".to_owned());
    both.event_sender = Some(ALICE.to_owned());
    assert_eq!(listed(&both).await, (vec![ids[3]], 1));
    // `%` and `_` are characters, not patterns.
    by_reporter.reporter_contains = Some("%".to_owned());
    assert_eq!(listed(&by_reporter).await, (vec![], 0));

    let mut users = query(ReportKind::User);
    users.target_contains = Some("bob".to_owned());
    let (page, total) = store.reports(&users).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(page[0].report, user_report(ALICE, BOB, 5));
}

async fn server_notice_rooms_are_remembered(store: &dyn TenantStore) {
    assert_eq!(store.server_notice_room("alice").await.unwrap(), None);
    store
        .set_server_notice_room("alice", "!one:example.org")
        .await
        .unwrap();
    store
        .set_server_notice_room("bob", "!two:example.org")
        .await
        .unwrap();
    assert_eq!(
        store.server_notice_room("alice").await.unwrap().as_deref(),
        Some("!one:example.org")
    );
    store
        .set_server_notice_room("alice", "!three:example.org")
        .await
        .unwrap();
    assert_eq!(
        store.server_notice_room("alice").await.unwrap().as_deref(),
        Some("!three:example.org")
    );
    assert_eq!(
        store.server_notice_room("bob").await.unwrap().as_deref(),
        Some("!two:example.org")
    );
}

async fn destinations_come_from_memberships_and_queues(store: &dyn TenantStore) {
    with_rooms(store).await;
    assert_eq!(
        store.known_destinations().await.unwrap(),
        Vec::<String>::new()
    );
    let joins = [
        (ROOM, ALICE, "join", 1),
        (ROOM, "@carol:remote.example", "join", 2),
        (OTHER_ROOM, "@dave:remote.example", "join", 3),
        (OTHER_ROOM, "@erin:other.example:8448", "leave", 4),
        (ROOM, "@frank:third.example", "invite", 5),
    ];
    for (room_id, user_id, membership, stream) in joins {
        let event = member_event(room_id, user_id, membership, stream);
        store.persist_event(&event).await.unwrap();
    }
    store
        .persist_event(&plain(event(OTHER_ROOM, "$late", 9, 90)))
        .await
        .unwrap();
    store
        .queue_edu(&["queued.example".to_owned()], r#"{"edu_type":"x"}"#)
        .await
        .unwrap();

    assert_eq!(
        store.known_destinations().await.unwrap(),
        [
            "example.org",
            "other.example:8448",
            "queued.example",
            "remote.example",
            "third.example"
        ]
    );
    let rooms = store.destination_rooms("remote.example").await.unwrap();
    let rooms: Vec<(&str, i64)> = rooms
        .iter()
        .map(|r| (r.room_id.as_str(), r.stream))
        .collect();
    assert_eq!(rooms, [(OTHER_ROOM, 9), (ROOM, 5)]);
    // Only joined members count: a server that left or is only invited shares no room.
    assert!(
        store
            .destination_rooms("other.example:8448")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .destination_rooms("third.example")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.destination_rooms("example").await.unwrap().is_empty());
}

fn upload(media_id: &str, uploader: &str, size: u64, ts: i64) -> MediaRecord {
    MediaRecord {
        media_id: media_id.to_owned(),
        uploader: uploader.to_owned(),
        content_type: None,
        file_name: None,
        size,
        sha256: Some("ab".repeat(32)),
        created_ts: ts,
        last_access_ts: ts,
        expires_ts: None,
        quarantined: false,
    }
}

async fn media_usage_is_summed_per_uploader(store: &dyn TenantStore) {
    let unlimited = MediaQuota {
        tenant_bytes: None,
        user_bytes: None,
    };
    for (media_id, uploader, size, ts) in [
        ("a1", ALICE, 10, 100),
        ("a2", ALICE, 20, 200),
        ("b1", BOB, 5, 300),
    ] {
        let media = upload(media_id, uploader, size, ts);
        store.insert_media(&media, unlimited).await.unwrap();
    }
    // A pending upload has no bytes yet and doesn't count.
    let mut pending = upload("p", BOB, 0, 150);
    pending.sha256 = None;
    pending.expires_ts = Some(i64::MAX);
    store.insert_pending_media(&pending).await.unwrap();

    let usage = |uploader: &str, count, bytes| UploaderUsage {
        uploader: uploader.to_owned(),
        count,
        bytes,
    };
    assert_eq!(
        store.media_usage_by_uploader(0, None).await.unwrap(),
        [usage(ALICE, 2, 30), usage(BOB, 1, 5)]
    );
    assert_eq!(
        store.media_usage_by_uploader(200, Some(300)).await.unwrap(),
        [usage(ALICE, 1, 20), usage(BOB, 1, 5)]
    );
    assert_eq!(
        store.media_usage_by_uploader(0, Some(199)).await.unwrap(),
        [usage(ALICE, 1, 10)]
    );
    assert!(
        store
            .media_usage_by_uploader(301, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn largest_rooms_come_first(store: &dyn TenantStore) {
    with_rooms(store).await;
    assert!(store.largest_rooms(10).await.unwrap().is_empty());
    let mut small = event(ROOM, "$small", 1, 10);
    small.pdu = "{}".to_owned();
    store.persist_event(&plain(small)).await.unwrap();
    for stream in 2..=3 {
        let mut big = event(OTHER_ROOM, &format!("$big{stream}"), stream, 10);
        // Bytes, not characters: "é" is two.
        big.pdu = format!(r#"{{"body":"{}"}}"#, "é".repeat(50));
        store.persist_event(&plain(big)).await.unwrap();
    }
    let sizes = store.largest_rooms(10).await.unwrap();
    let sizes: Vec<(&str, u64)> = sizes
        .iter()
        .map(|r| (r.room_id.as_str(), r.bytes))
        .collect();
    assert_eq!(sizes, [(OTHER_ROOM, 2 * 111), (ROOM, 2)]);
    assert_eq!(store.largest_rooms(1).await.unwrap().len(), 1);
}

async fn export(store: &dyn TenantStore) -> Vec<TableRows> {
    let mut chunks = Vec::new();
    store.export_tables(&mut chunks).await.unwrap();
    chunks
}

/// Reports and notice rooms move with the tenant, and new reports are numbered after the
/// imported ones.
async fn reports_survive_export_and_import(fixture: &Fixture) {
    let source = fixture.store().await;
    let first = source
        .insert_report(&user_report(ALICE, BOB, 1))
        .await
        .unwrap();
    let second = source
        .insert_report(&event_report(BOB, ROOM, "$e", 2))
        .await
        .unwrap();
    source
        .set_server_notice_room("alice", "!notices:example.org")
        .await
        .unwrap();
    let exported = export(source.as_ref()).await;

    let target = fixture.backend().await.open_tenant("tcopy").await.unwrap();
    let text = serde_json::to_string(&exported).unwrap();
    let chunks: Vec<TableRows> = serde_json::from_str(&text).unwrap();
    let mut import = target.begin_import().await.unwrap();
    for chunk in &chunks {
        import.write(chunk).await.unwrap();
    }
    import.commit().await.unwrap();

    let read = target.report(ReportKind::User, first).await.unwrap();
    assert_eq!(read.map(|r| r.report), Some(user_report(ALICE, BOB, 1)));
    let read = target.report(ReportKind::Event, second).await.unwrap();
    assert_eq!(
        read.map(|r| r.report),
        Some(event_report(BOB, ROOM, "$e", 2))
    );
    assert_eq!(
        target.server_notice_room("alice").await.unwrap().as_deref(),
        Some("!notices:example.org")
    );
    let next = target
        .insert_report(&user_report(BOB, ALICE, 3))
        .await
        .unwrap();
    assert!(next > second, "{next} after {second}");
    target.close().await;
}
