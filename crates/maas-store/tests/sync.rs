//! `SyncStore` on both backends: each batched read answers, for every room (event, group) it
//! is asked about, what the per-room reads of `RoomStore` and `PushStore` answer.

use std::collections::HashMap;

use maas_store::{
    Direction, EventBatch, EventRecord, MemberSummary, MembershipRecord, NewEvent,
    PushActionRecord, Redaction, RoomPushActionRecord, RoomRecord, StateEntry, StoreError,
    StreamRange, TenantStore, UnreadCounts,
};

mod support;
use support::{
    action, entry, group, ids, member_event, numbered_event, on_both_backends, plain, receipt,
    related, room, threaded,
};

const ROOM_A: &str = "!a:example.org";
const ROOM_B: &str = "!b:example.org";
/// A room without events or members.
const ROOM_C: &str = "!c:example.org";
const ALICE: &str = "@alice:example.org";
/// Sorts before the lower-case ids in byte order, after them in most locales.
const ZED: &str = "@Zed:example.org";

on_both_backends!(latest_room_events_are_the_newest_of_each_room);
on_both_backends!(children_of_many_parents);
on_both_backends!(state_groups_resolve_each_chain);
on_both_backends!(member_summaries_count_and_pick_heroes);
on_both_backends!(unread_counts_of_many_rooms);
on_both_backends!(room_wide_notifications_count_while_joined);
on_both_backends!(users_joined_to_any_of_the_rooms);
on_both_backends!(membership_changes_in_a_range);
on_both_backends!(reads_of_many_rooms_answer_as_reads_of_one, multi_thread);

/// The three rooms, sharing an empty snapshot as group 1.
async fn with_rooms(store: &dyn TenantStore) {
    store
        .insert_state_group(&group(ROOM_A, 1, None, 0, Vec::new()))
        .await
        .unwrap();
    for room_id in [ROOM_A, ROOM_B, ROOM_C] {
        store
            .insert_room(&RoomRecord {
                state_group: 1,
                ..room(room_id)
            })
            .await
            .unwrap();
    }
}

async fn persist(store: &dyn TenantStore, events: Vec<NewEvent>) {
    for new in &events {
        store.persist_event(new).await.unwrap();
    }
}

fn rooms(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

async fn latest_room_events_are_the_newest_of_each_room(store: &dyn TenantStore) {
    with_rooms(store).await;
    let layout = [
        (ROOM_A, 1),
        (ROOM_A, 2),
        (ROOM_A, 3),
        (ROOM_A, 4),
        (ROOM_A, 5),
        (ROOM_B, 6),
        (ROOM_B, 7),
        (ROOM_A, 8),
    ];
    persist(
        store,
        layout
            .iter()
            .map(|(r, s)| plain(numbered_event(r, *s)))
            .collect(),
    )
    .await;
    let all = rooms(&[ROOM_A, ROOM_B, ROOM_C, ROOM_A, "!unknown:example.org"]);
    let range = |after, up_to| StreamRange { after, up_to };

    let latest = store
        .latest_room_events(&all, range(0, 8), 3)
        .await
        .unwrap();
    assert_eq!(ids(&latest), ["$e4", "$e5", "$e6", "$e7", "$e8"]);
    // The same events as the per-room read, whole records included.
    for (r, limit, window) in [(ROOM_A, 3, range(0, 8)), (ROOM_B, 1, range(0, 6))] {
        let mut one = store
            .room_events(r, window, Direction::Backward, limit)
            .await
            .unwrap();
        one.reverse();
        let batched = store
            .latest_room_events(&all, window, limit)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.room_id == r)
            .collect::<Vec<_>>();
        assert_eq!(batched, one);
    }

    let since = store
        .latest_room_events(&all, range(4, 7), 10)
        .await
        .unwrap();
    assert_eq!(ids(&since), ["$e5", "$e6", "$e7"]);
    assert!(
        store
            .latest_room_events(&all, range(0, 8), 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .latest_room_events(&[], range(0, 8), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn children_of_many_parents(store: &dyn TenantStore) {
    with_rooms(store).await;
    persist(
        store,
        vec![
            plain(numbered_event(ROOM_A, 1)),
            plain(numbered_event(ROOM_A, 2)),
            plain(related(numbered_event(ROOM_A, 3), "m.replace", "$e1")),
            plain(related(numbered_event(ROOM_A, 4), "m.thread", "$e1")),
            plain(related(numbered_event(ROOM_A, 5), "m.annotation", "$e1")),
            plain(related(numbered_event(ROOM_A, 6), "m.reference", "$e2")),
            plain(related(numbered_event(ROOM_A, 7), "m.thread", "$e1")),
            // A child in another room counts too, as for `relations`.
            plain(related(numbered_event(ROOM_B, 8), "m.thread", "$e2")),
        ],
    )
    .await;
    let parents = rooms(&["$e1", "$e2", "$e1", "$none"]);
    let bundled = ["m.replace", "m.thread", "m.reference"];

    let children = store.children_of(&parents, &bundled, 1000).await.unwrap();
    assert_eq!(ids(&children), ["$e3", "$e4", "$e6", "$e7", "$e8"]);
    // Whole records, as the per-parent read returns them.
    let one = store
        .relations("$e1", Some("m.thread"), None, Direction::Forward, None, 10)
        .await
        .unwrap();
    let batched: Vec<EventRecord> = store
        .children_of(&parents, &["m.thread"], 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.relation.as_ref().unwrap().parent_event_id == "$e1")
        .collect();
    assert_eq!(batched, one);

    // The limit is per parent, oldest first.
    let first = store.children_of(&parents, &bundled, 1).await.unwrap();
    assert_eq!(ids(&first), ["$e3", "$e6"]);
    assert!(
        store
            .children_of(&[], &bundled, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .children_of(&parents, &[], 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn state_groups_resolve_each_chain(store: &dyn TenantStore) {
    store
        .insert_state_group(&group(ROOM_A, 1, None, 0, Vec::new()))
        .await
        .unwrap();
    store
        .insert_state_group(&group(
            ROOM_A,
            2,
            Some(1),
            1,
            vec![entry("m.room.topic", "", "$t")],
        ))
        .await
        .unwrap();
    store
        .insert_state_group(&group(
            ROOM_A,
            3,
            None,
            0,
            vec![
                entry("m.room.create", "", "$c"),
                entry("m.room.name", "", "$n"),
                entry("m.room.member", ALICE, "$m"),
            ],
        ))
        .await
        .unwrap();
    store
        .insert_state_group(&group(
            ROOM_A,
            4,
            Some(3),
            1,
            vec![entry("m.room.name", "", "$n2")],
        ))
        .await
        .unwrap();
    store
        .insert_state_group(&group(
            ROOM_A,
            5,
            Some(4),
            2,
            vec![entry("m.room.member", ZED, "$z")],
        ))
        .await
        .unwrap();

    let groups: HashMap<i64, Vec<StateEntry>> = store
        .state_groups(&[5, 2, 1, 4, 5, 3])
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(groups.len(), 5);
    for (id, mut entries) in groups {
        let mut one = store.state_group(id).await.unwrap();
        entries.sort_by(|a, b| (&a.event_type, &a.state_key).cmp(&(&b.event_type, &b.state_key)));
        one.sort_by(|a, b| (&a.event_type, &a.state_key).cmp(&(&b.event_type, &b.state_key)));
        assert_eq!(entries, one, "group {id}");
    }
    assert!(store.state_groups(&[]).await.unwrap().is_empty());
    assert!(matches!(
        store.state_groups(&[2, 99]).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn member_summaries_count_and_pick_heroes(store: &dyn TenantStore) {
    with_rooms(store).await;
    let people = [
        (ROOM_A, ALICE, "join"),
        (ROOM_A, "@bob:example.org", "join"),
        (ROOM_A, "@carol:example.org", "invite"),
        (ROOM_A, "@dave:example.org", "leave"),
        (ROOM_A, "@erin:example.org", "ban"),
        (ROOM_A, "@frank:example.org", "knock"),
        (ROOM_A, ZED, "join"),
        (ROOM_B, ALICE, "join"),
    ];
    let events = people
        .iter()
        .zip(1..)
        .map(|((room, user, value), stream)| member_event(room, user, value, stream))
        .collect();
    persist(store, events).await;
    let all = rooms(&[ROOM_A, ROOM_B, ROOM_C, ROOM_A]);

    let mut summaries = store.member_summaries(&all, ALICE, 2).await.unwrap();
    summaries.sort_by(|a, b| a.room_id.cmp(&b.room_id));
    let summary = |room: &str, joined, invited, heroes: &[&str]| MemberSummary {
        room_id: room.to_owned(),
        joined,
        invited,
        heroes: rooms(heroes),
    };
    assert_eq!(
        summaries,
        [
            summary(ROOM_A, 3, 1, &[ZED, "@bob:example.org"]),
            summary(ROOM_B, 1, 0, &[]),
            summary(ROOM_C, 0, 0, &[]),
        ]
    );
    let more = store.member_summaries(&all[..1], ALICE, 5).await.unwrap();
    assert_eq!(
        more[0].heroes,
        [ZED, "@bob:example.org", "@carol:example.org"]
    );
    assert!(
        store
            .member_summaries(&[], ALICE, 5)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn unread_counts_of_many_rooms(store: &dyn TenantStore) {
    with_rooms(store).await;
    persist(
        store,
        [
            (ROOM_A, 1),
            (ROOM_A, 2),
            (ROOM_A, 3),
            (ROOM_B, 4),
            (ROOM_B, 5),
            (ROOM_B, 6),
        ]
        .iter()
        .map(|(r, s)| plain(numbered_event(r, *s)))
        .collect(),
    )
    .await;
    store
        .insert_push_actions(&[
            action(ROOM_A, ALICE, 1, false),
            action(ROOM_A, ALICE, 2, true),
            action(ROOM_A, ALICE, 3, true),
            action(ROOM_B, ALICE, 4, false),
            threaded(action(ROOM_B, ALICE, 5, true), "$e4"),
            threaded(action(ROOM_B, ALICE, 6, false), "$e4"),
        ])
        .await
        .unwrap();
    // Room A is read up to its second event; in room B only the thread, up to its first reply.
    store
        .set_receipt(&receipt(ROOM_A, ALICE, "m.read", None, 2))
        .await
        .unwrap();
    store
        .set_receipt(&receipt(ROOM_B, ALICE, "m.read", Some("$e4"), 5))
        .await
        .unwrap();
    let all = rooms(&[ROOM_A, ROOM_B, ROOM_C, ROOM_A]);

    let mut counts = store.unread_counts_in(&all, ALICE).await.unwrap();
    counts.sort_by(|a, b| a.room_id.cmp(&b.room_id));
    let unread = |room: &str, notifications, highlights| UnreadCounts {
        room_id: room.to_owned(),
        notifications,
        highlights,
    };
    assert_eq!(counts, [unread(ROOM_A, 1, 1), unread(ROOM_B, 2, 0)]);
    // The same as the per-room read, rooms with nothing unread left out.
    for count in &counts {
        assert_eq!(
            store
                .unread_notification_counts(&count.room_id, ALICE)
                .await
                .unwrap(),
            (count.notifications, count.highlights)
        );
    }
    assert_eq!(
        store
            .unread_notification_counts(ROOM_C, ALICE)
            .await
            .unwrap(),
        (0, 0)
    );
    assert!(
        store
            .unread_counts_in(&all, "@bob:example.org")
            .await
            .unwrap()
            .is_empty()
    );
}

const BOB: &str = "@bob:example.org";
const CAROL: &str = "@carol:example.org";

/// A message of room A at `stream` from `sender` that notifies the room, with its room row.
fn room_message(
    stream: i64,
    sender: &str,
    thread: Option<&str>,
) -> (NewEvent, RoomPushActionRecord) {
    let mut ev = numbered_event(ROOM_A, stream);
    ev.sender = sender.to_owned();
    let room = RoomPushActionRecord {
        room_id: ROOM_A.to_owned(),
        event_id: ev.event_id.clone(),
        stream,
        sender: sender.to_owned(),
        thread_id: thread.map(str::to_owned),
    };
    (plain(ev), room)
}

/// Commits room messages with their room rows and `users`' own rows, as the committer does.
async fn commit(
    store: &dyn TenantStore,
    messages: Vec<(NewEvent, RoomPushActionRecord)>,
    users: Vec<PushActionRecord>,
) {
    let (events, room_push_actions) = messages.into_iter().unzip();
    let batch = EventBatch {
        events,
        room_push_actions,
        push_actions: users,
        ..EventBatch::default()
    };
    store.persist_events(&batch).await.unwrap();
}

/// A row of `user_id`'s own that replaces the room row of the event at `stream`.
fn own(user_id: &str, stream: i64, notify: bool, highlight: bool) -> PushActionRecord {
    PushActionRecord {
        room_id: ROOM_A.to_owned(),
        user_id: user_id.to_owned(),
        event_id: format!("$e{stream}"),
        stream,
        thread_id: None,
        notify,
        highlight,
        replaces_room: true,
    }
}

/// `(notifications, highlights)` of `user_id` in room A, checked against the batched read.
async fn unread(store: &dyn TenantStore, user_id: &str) -> (u64, u64) {
    let counts = store
        .unread_notification_counts(ROOM_A, user_id)
        .await
        .unwrap();
    let batched = store
        .unread_counts_in(&rooms(&[ROOM_A, ROOM_B]), user_id)
        .await
        .unwrap();
    let expected: Vec<UnreadCounts> = (counts != (0, 0))
        .then(|| UnreadCounts {
            room_id: ROOM_A.to_owned(),
            notifications: counts.0,
            highlights: counts.1,
        })
        .into_iter()
        .collect();
    assert_eq!(batched, expected, "batched counts of {user_id}");
    counts
}

async fn room_wide_notifications_count_while_joined(store: &dyn TenantStore) {
    with_rooms(store).await;
    persist(
        store,
        vec![
            member_event(ROOM_A, ALICE, "join", 1),
            member_event(ROOM_A, BOB, "join", 2),
            member_event(ROOM_A, CAROL, "join", 3),
        ],
    )
    .await;
    // 4 notifies everyone but its sender. 5 too, except that Carol's rules mute it and Bob's
    // highlight it; 6 is Alice's new display name (her join goes on); 7 is in a thread.
    commit(
        store,
        vec![room_message(4, BOB, None), room_message(5, ALICE, None)],
        vec![own(CAROL, 5, false, false), own(BOB, 5, true, true)],
    )
    .await;
    persist(store, vec![member_event(ROOM_A, ALICE, "join", 6)]).await;
    commit(store, vec![room_message(7, CAROL, Some("$e4"))], vec![]).await;
    assert_eq!(unread(store, ALICE).await, (2, 0));
    assert_eq!(unread(store, BOB).await, (2, 1));
    assert_eq!(unread(store, CAROL).await, (1, 0));
    // Nobody else: a stranger, or a user who never joined, has no notifications.
    assert_eq!(unread(store, "@dave:example.org").await, (0, 0));

    // Receipts read room-wide rows as they read a user's own: by thread, and unthreaded.
    store
        .set_receipt(&receipt(ROOM_A, ALICE, "m.read", Some("$e4"), 7))
        .await
        .unwrap();
    assert_eq!(unread(store, ALICE).await, (1, 0));
    let mut bobs = receipt(ROOM_A, ALICE, "m.read", None, 5);
    bobs.user_id = BOB.to_owned();
    store.set_receipt(&bobs).await.unwrap();
    assert_eq!(unread(store, BOB).await, (1, 0));

    // Carol leaves: what notified her counts no more, nor does what is sent while she is
    // away once she is back. What comes after her return does.
    persist(store, vec![member_event(ROOM_A, CAROL, "leave", 8)]).await;
    assert_eq!(unread(store, CAROL).await, (0, 0));
    commit(store, vec![room_message(9, ALICE, None)], vec![]).await;
    persist(store, vec![member_event(ROOM_A, CAROL, "join", 10)]).await;
    commit(store, vec![room_message(11, BOB, None)], vec![]).await;
    assert_eq!(unread(store, CAROL).await, (1, 0));
    // Alice sent 9 herself, and read the thread 7 is in: 4 and 11.
    assert_eq!(unread(store, ALICE).await, (2, 0));

    // Storing a room row again (a retry) changes nothing.
    store
        .insert_room_push_actions(&[room_message(11, BOB, None).1])
        .await
        .unwrap();
    assert_eq!(unread(store, CAROL).await, (1, 0));

    // A redacted event notifies nobody, whether redacted later or in its own batch.
    store.delete_push_actions("$e11").await.unwrap();
    assert_eq!(unread(store, CAROL).await, (0, 0));
    assert_eq!(unread(store, ALICE).await, (1, 0));
    let (message, room) = room_message(12, BOB, None);
    let (mut redaction, _) = room_message(13, BOB, None);
    redaction.redaction = Some(Redaction {
        event_id: "$e12".to_owned(),
        redacted_pdu: r#"{"content":{},"type":"m.room.message"}"#.to_owned(),
        redacted_by: "$e13".to_owned(),
        relation: None,
    });
    let batch = EventBatch {
        events: vec![message, redaction],
        room_push_actions: vec![room],
        ..EventBatch::default()
    };
    store.persist_events(&batch).await.unwrap();
    assert_eq!(unread(store, CAROL).await, (0, 0));
}

async fn users_joined_to_any_of_the_rooms(store: &dyn TenantStore) {
    with_rooms(store).await;
    persist(
        store,
        vec![
            member_event(ROOM_A, ALICE, "join", 1),
            member_event(ROOM_A, "@carol:example.org", "invite", 2),
            member_event(ROOM_A, "@dave:example.org", "leave", 3),
            member_event(ROOM_B, ZED, "join", 4),
            member_event(ROOM_A, ZED, "join", 5),
        ],
    )
    .await;
    let users = rooms(&[
        ALICE,
        "@carol:example.org",
        "@dave:example.org",
        ZED,
        ZED,
        "@nobody:example.org",
    ]);

    let mut joined = store
        .users_joined_to_any(&users, &rooms(&[ROOM_A, ROOM_B]))
        .await
        .unwrap();
    joined.sort_unstable();
    assert_eq!(joined, [ZED, ALICE]);
    let only_b = store
        .users_joined_to_any(&users, &rooms(&[ROOM_B, ROOM_C]))
        .await
        .unwrap();
    assert_eq!(only_b, [ZED]);
    assert!(
        store
            .users_joined_to_any(&users, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .users_joined_to_any(&[], &rooms(&[ROOM_A]))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn membership_changes_in_a_range(store: &dyn TenantStore) {
    with_rooms(store).await;
    persist(
        store,
        vec![
            member_event(ROOM_A, ALICE, "join", 1),
            member_event(ROOM_A, ZED, "join", 2),
            member_event(ROOM_B, ALICE, "join", 3),
            member_event(ROOM_A, "@carol:example.org", "invite", 4),
            member_event(ROOM_B, ZED, "join", 5),
            // Replaces Zed's join of room A: the current membership is this one.
            member_event(ROOM_A, ZED, "leave", 6),
        ],
    )
    .await;
    let range = |after, up_to| StreamRange { after, up_to };
    let changes = |found: Vec<MembershipRecord>| -> Vec<(String, String, String, i64)> {
        found
            .into_iter()
            .map(|m| (m.room_id, m.user_id, m.membership, m.stream))
            .collect()
    };
    let change = |room: &str, user: &str, value: &str, stream| {
        (room.to_owned(), user.to_owned(), value.to_owned(), stream)
    };
    let all = rooms(&[ROOM_A, ROOM_B, ROOM_C, ROOM_A, "!unknown:example.org"]);

    let since_2 = store
        .membership_changes_in(&all, range(2, 6))
        .await
        .unwrap();
    assert_eq!(
        changes(since_2),
        [
            change(ROOM_B, ALICE, "join", 3),
            change(ROOM_A, "@carol:example.org", "invite", 4),
            change(ROOM_B, ZED, "join", 5),
            change(ROOM_A, ZED, "leave", 6),
        ]
    );
    // Zed's join of room A was replaced after the range: no current membership changed in it.
    let early = store
        .membership_changes_in(&rooms(&[ROOM_A]), range(0, 3))
        .await
        .unwrap();
    assert_eq!(changes(early), [change(ROOM_A, ALICE, "join", 1)]);
    let only_b = store
        .membership_changes_in(&rooms(&[ROOM_B]), range(3, 6))
        .await
        .unwrap();
    assert_eq!(changes(only_b), [change(ROOM_B, ZED, "join", 5)]);
    assert!(
        store
            .membership_changes_in(&all, range(6, 9))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .membership_changes_in(&[], range(0, 9))
            .await
            .unwrap()
            .is_empty()
    );
}

/// More rooms than an incremental sync names: each batched read answers for each room what
/// it answers for that room alone.
async fn reads_of_many_rooms_answer_as_reads_of_one(store: &dyn TenantStore) {
    const ROOMS: i64 = 40;
    with_rooms(store).await;
    let many = |n: i64| format!("!many{n}:example.org");
    for n in 0..ROOMS {
        store
            .insert_room(&RoomRecord {
                state_group: 1,
                ..room(&many(n))
            })
            .await
            .unwrap();
    }
    // Room n holds Alice's join and n % 4 messages, notifying her with a highlight.
    let mut stream = 0;
    let mut events = Vec::new();
    for n in 0..ROOMS {
        stream += 1;
        events.push(member_event(&many(n), ALICE, "join", stream));
        for _ in 0..n % 4 {
            stream += 1;
            let mut new = plain(numbered_event(&many(n), stream));
            new.event.sender = ZED.to_owned();
            events.push(new);
        }
    }
    let up_to = stream;
    let actions: Vec<PushActionRecord> = events
        .iter()
        .filter(|new| new.event.sender == ZED)
        .map(|new| action(&new.event.room_id, ALICE, new.event.stream, true))
        .collect();
    persist(store, events).await;
    store.insert_push_actions(&actions).await.unwrap();
    let all: Vec<String> = (0..ROOMS).chain(0..3).map(many).collect();
    let range = StreamRange { after: 0, up_to };

    let latest = store.latest_room_events(&all, range, 2).await.unwrap();
    let summaries = store.member_summaries(&all, ZED, 5).await.unwrap();
    let changes = store.membership_changes_in(&all, range).await.unwrap();
    assert_eq!(summaries.len(), ROOMS as usize, "each room once");
    assert_eq!(changes.len(), ROOMS as usize, "Alice's join of each room");
    for n in 0..ROOMS {
        let id = many(n);
        let mut alone = store
            .room_events(&id, range, Direction::Backward, 2)
            .await
            .unwrap();
        alone.reverse();
        let batched: Vec<&EventRecord> = latest.iter().filter(|e| e.room_id == id).collect();
        assert_eq!(batched, alone.iter().collect::<Vec<_>>(), "{id}");
        let summary = summaries.iter().find(|s| s.room_id == id).unwrap();
        assert_eq!(
            (summary.joined, summary.heroes.clone()),
            (1, rooms(&[ALICE]))
        );
    }
    let mut unread = store.unread_counts_in(&all, ALICE).await.unwrap();
    unread.sort_by(|a, b| a.room_id.cmp(&b.room_id));
    let mut alone = Vec::new();
    for n in (0..ROOMS).filter(|n| n % 4 > 0) {
        let (notifications, highlights) = store
            .unread_notification_counts(&many(n), ALICE)
            .await
            .unwrap();
        assert_eq!(
            (notifications, highlights),
            ((n % 4) as u64, (n % 4) as u64)
        );
        alone.push(UnreadCounts {
            room_id: many(n),
            notifications,
            highlights,
        });
    }
    alone.sort_by(|a, b| a.room_id.cmp(&b.room_id));
    assert_eq!(unread, alone);
    let joined = store
        .users_joined_to_any(&rooms(&[ALICE, ZED]), &all)
        .await
        .unwrap();
    assert_eq!(joined, [ALICE]);
}
