//! `RetentionStore` on both backends: stream marks tell positions by time; pruning removes
//! the notifications no count includes any more (and no others: every count is the same
//! before and after) and device list changes up to a position, after which a range starting
//! before the pruned mark says it is incomplete.

use maas_store::{RoomPushActionRecord, TenantStore};

mod support;
use support::{
    Fixture, action, group, member_event, numbered_event, on_both_backends, plain, range, receipt,
    room, threaded,
};

const ROOM: &str = "!room:example.org";
const ALICE: &str = "@alice:example.org";
const BOB: &str = "@bob:example.org";
const CAROL: &str = "@carol:example.org";
/// A remote member: they never send us receipts, and their counts are not ours to keep.
const DAVE: &str = "@dave:remote.example";
const SERVER: &str = "example.org";

on_both_backends!(stream_marks_tell_positions_by_time);
on_both_backends!(read_notifications_go_and_every_count_stays);
on_both_backends!(ranges_before_pruned_device_list_changes_are_incomplete);
on_both_backends!(pruning_goes_through_every_batch);

async fn stream_marks_tell_positions_by_time(store: &dyn TenantStore) {
    assert_eq!(store.stream_marked_by(5_000).await.unwrap(), None);
    for (stream, ts) in [(10, 1_000), (20, 2_000), (20, 2_500), (30, 3_000)] {
        store.mark_stream(stream, ts).await.unwrap();
    }
    assert_eq!(store.stream_marked_by(999).await.unwrap(), None);
    assert_eq!(store.stream_marked_by(1_000).await.unwrap(), Some(10));
    // A position marked again keeps its first time.
    assert_eq!(store.stream_marked_by(2_100).await.unwrap(), Some(20));
    assert_eq!(store.stream_marked_by(9_999).await.unwrap(), Some(30));
    // Older marks go but the newest of them, which still answers for the times after it.
    assert_eq!(store.prune_stream_marks(2_500).await.unwrap(), 1);
    assert_eq!(store.stream_marked_by(2_100).await.unwrap(), Some(20));
    assert_eq!(store.stream_marked_by(1_500).await.unwrap(), None);
    assert_eq!(store.prune_stream_marks(2_500).await.unwrap(), 0);
}

/// `ROOM` with Alice, Bob, Carol and remote Dave joined at positions 1 to 4, and Alice's
/// messages `$e10` … `$e17`.
async fn room_with_messages(store: &dyn TenantStore) {
    let group = group(
        ROOM,
        store.next_state_group_id().await.unwrap(),
        None,
        0,
        Vec::new(),
    );
    store.insert_state_group(&group).await.unwrap();
    let mut record = room(ROOM);
    record.state_group = group.id;
    store.insert_room(&record).await.unwrap();
    for (stream, user) in [(1, ALICE), (2, BOB), (3, CAROL), (4, DAVE)] {
        store
            .persist_event(&member_event(ROOM, user, "join", stream))
            .await
            .unwrap();
    }
    for stream in 10..=17 {
        store
            .persist_event(&plain(numbered_event(ROOM, stream)))
            .await
            .unwrap();
    }
}

fn room_action(stream: i64) -> RoomPushActionRecord {
    RoomPushActionRecord {
        room_id: ROOM.to_owned(),
        event_id: format!("$e{stream}"),
        stream,
        sender: ALICE.to_owned(),
        thread_id: None,
    }
}

/// The unread counts of the local members (a remote member's are their server's to keep).
async fn counts(store: &dyn TenantStore) -> Vec<(u64, u64)> {
    let mut counts = Vec::new();
    for user in [ALICE, BOB, CAROL] {
        counts.push(store.unread_notification_counts(ROOM, user).await.unwrap());
    }
    counts
}

/// Streams of the rows left in a table, in order.
async fn left(fixture: &Fixture, sql: &str) -> Vec<i64> {
    let mut raw = fixture.raw().await;
    let mut streams = Vec::new();
    // One scalar per row: the tables here hold a handful.
    let n = raw
        .scalar(&format!("SELECT COUNT(*) FROM ({sql}) AS t"))
        .await;
    for i in 0..n {
        streams.push(
            raw.scalar(&format!(
                "SELECT stream FROM ({sql}) AS t ORDER BY stream LIMIT 1 OFFSET {i}"
            ))
            .await,
        );
    }
    streams
}

async fn read_notifications_go_and_every_count_stays(fixture: &Fixture) {
    let store = fixture.store().await.as_ref();
    room_with_messages(store).await;
    // Every message notifies room-wide; some replace that for one user: mentions of Bob (11,
    // 14) and Carol (14), and $e16, in the thread of $e12, for Bob.
    let mut room_rows: Vec<_> = (10..=17).map(room_action).collect();
    room_rows[6].thread_id = Some("$e12".into());
    store.insert_room_push_actions(&room_rows).await.unwrap();
    let mut replacing = vec![
        action(ROOM, BOB, 11, true),
        action(ROOM, BOB, 14, true),
        action(ROOM, CAROL, 14, true),
        threaded(action(ROOM, BOB, 16, false), "$e12"),
    ];
    for row in &mut replacing {
        row.replaces_room = true;
    }
    store.insert_push_actions(&replacing).await.unwrap();
    // Bob read up to 13 (and his thread to 16), Carol everything (privately), Alice and Dave
    // nothing; Erin's receipt is for an event the server doesn't have.
    for r in [
        receipt(ROOM, BOB, "m.read", None, 13),
        receipt(ROOM, BOB, "m.read", Some("$e12"), 16),
        receipt(ROOM, CAROL, "m.read.private", None, 17),
    ] {
        store.set_receipt(&r).await.unwrap();
    }
    let mut unknown = receipt(ROOM, "@erin:example.org", "m.read", None, 17);
    unknown.event_id = "$unknown".into();
    store.set_receipt(&unknown).await.unwrap();
    let before = counts(store).await;
    assert_eq!(
        before[1],
        (3, 1),
        "bob: 14, 15 (room-wide) and 16 (his thread)"
    );

    // Nothing past `up_to` goes, whoever read it.
    store.prune_read_push_actions(12).await.unwrap();
    store.prune_room_push_actions(12, SERVER).await.unwrap();
    let own = "SELECT stream FROM event_push_actions";
    let room_wide = "SELECT stream FROM room_push_actions";
    assert_eq!(left(fixture, own).await, [14, 14, 16]);
    assert_eq!(left(fixture, room_wide).await, [13, 14, 15, 16, 17]);
    assert_eq!(counts(store).await, before);

    // Then: of their own, what each read (Carol's 14; Bob's 14 is unread, 16 is read only in
    // its thread); room-wide, what every local member but the sender read (Bob up to 13;
    // remote Dave and Alice, who sent them, don't hold them back).
    assert_eq!(store.prune_read_push_actions(100).await.unwrap(), 1);
    assert_eq!(store.prune_room_push_actions(100, SERVER).await.unwrap(), 1);
    assert_eq!(left(fixture, own).await, [14, 16]);
    assert_eq!(left(fixture, room_wide).await, [14, 15, 16, 17]);
    assert_eq!(counts(store).await, before);
    // Again, nothing more.
    assert_eq!(store.prune_read_push_actions(100).await.unwrap(), 0);
    assert_eq!(store.prune_room_push_actions(100, SERVER).await.unwrap(), 0);

    // A member who never reads holds room-wide notifications back from their join on; the
    // others' reads let go of the rest.
    store
        .persist_event(&member_event(ROOM, "@frank:example.org", "join", 18))
        .await
        .unwrap();
    store
        .persist_event(&plain(numbered_event(ROOM, 19)))
        .await
        .unwrap();
    store
        .insert_room_push_actions(&[room_action(19)])
        .await
        .unwrap();
    store
        .set_receipt(&receipt(ROOM, BOB, "m.read", None, 19))
        .await
        .unwrap();
    let before = counts(store).await;
    store.prune_read_push_actions(100).await.unwrap();
    store.prune_room_push_actions(100, SERVER).await.unwrap();
    assert_eq!(left(fixture, room_wide).await, [19]);
    assert_eq!(left(fixture, own).await, [] as [i64; 0]);
    assert_eq!(counts(store).await, before);
    assert_eq!(
        store
            .unread_notification_counts(ROOM, "@frank:example.org")
            .await
            .unwrap(),
        (1, 0)
    );
}

async fn ranges_before_pruned_device_list_changes_are_incomplete(store: &dyn TenantStore) {
    let (alice, bob, remote) = (ALICE, BOB, DAVE);
    for (user, stream) in [(alice, 5), (bob, 6), (alice, 10), (remote, 12)] {
        store.record_device_list_change(user, stream).await.unwrap();
    }
    // Signatures of others' keys go behind the same mark.
    store.record_signature_change(bob, alice, 4).await.unwrap();
    store.record_signature_change(bob, remote, 9).await.unwrap();
    let all = store.device_list_changes(range(0, 20)).await.unwrap();
    assert!(all.complete);
    assert_eq!(all.users, [alice, bob, remote]);

    assert_eq!(store.prune_device_list_changes(8).await.unwrap(), 2);
    assert_eq!(
        store.signature_changes(bob, range(0, 20)).await.unwrap(),
        [remote]
    );
    // From before the last change pruned (6), the range can't be answered whole.
    for after in [0, 5] {
        let changes = store.device_list_changes(range(after, 20)).await.unwrap();
        assert!(!changes.complete, "after {after}");
        assert_eq!(changes.users, [alice, remote]);
    }
    // From 6 on nothing is missing: no change was at 7 or 8.
    for after in [6, 7, 8] {
        assert!(
            store
                .device_list_changes(range(after, 20))
                .await
                .unwrap()
                .complete
        );
    }
    assert_eq!(store.prune_device_list_changes(8).await.unwrap(), 0);
    assert!(
        store
            .device_list_changes(range(6, 20))
            .await
            .unwrap()
            .complete
    );

    // Everything: the mark moves to the last change, not to `up_to`.
    assert_eq!(store.prune_device_list_changes(100).await.unwrap(), 2);
    assert!(
        !store
            .device_list_changes(range(11, 200))
            .await
            .unwrap()
            .complete
    );
    let after = store.device_list_changes(range(12, 200)).await.unwrap();
    assert!(after.complete && after.users.is_empty());
    store.record_device_list_change(bob, 50).await.unwrap();
    assert_eq!(
        store
            .device_list_changes(range(12, 200))
            .await
            .unwrap()
            .users,
        [bob]
    );
}

/// More rows than one transaction takes: the batches go on until everything prunable went.
async fn pruning_goes_through_every_batch(fixture: &Fixture) {
    let store = fixture.store().await.as_ref();
    room_with_messages(store).await;
    let users: Vec<String> = (0..450).map(|i| format!("@u{i:03}:example.org")).collect();
    let own: Vec<_> = users.iter().map(|u| action(ROOM, u, 10, false)).collect();
    store.insert_push_actions(&own).await.unwrap();
    for user in &users {
        store
            .set_receipt(&receipt(ROOM, user, "m.read", None, 11))
            .await
            .unwrap();
    }
    // Rooms without local members: nobody counts their notifications.
    for i in 0..230 {
        let room_id = format!("!r{i:03}:example.org");
        let mut record = room(&room_id);
        record.state_group = 1;
        store.insert_room(&record).await.unwrap();
        let mut row = room_action(100 + i);
        row.room_id = room_id;
        store.insert_room_push_actions(&[row]).await.unwrap();
    }
    // Written at once: through the store that would be a round trip per change.
    let mut raw = fixture.raw().await;
    let inserted = raw
        .execute(
            "WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 24999) \
             INSERT INTO device_list_changes (stream, user_id) \
             SELECT 1000 + i, '@u' || (i % 450) || ':example.org' FROM n",
            &[],
        )
        .await;
    assert_eq!(inserted, 25_000);
    assert_eq!(store.prune_read_push_actions(1_000).await.unwrap(), 450);
    assert_eq!(
        store.prune_room_push_actions(1_000, SERVER).await.unwrap(),
        230
    );
    assert_eq!(
        store.prune_device_list_changes(100_000).await.unwrap(),
        25_000
    );
    let mut raw = fixture.raw().await;
    for table in [
        "event_push_actions",
        "room_push_actions",
        "device_list_changes",
    ] {
        assert_eq!(raw.count_rows(table).await, 0, "{table}");
    }
    assert!(
        !store
            .device_list_changes(range(25_998, 30_000))
            .await
            .unwrap()
            .complete
    );
    assert!(
        store
            .device_list_changes(range(25_999, 30_000))
            .await
            .unwrap()
            .complete
    );
}
