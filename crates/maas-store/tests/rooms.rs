//! `RoomStore` on both backends: rooms and the directory, state groups, the event stream
//! (persisting, conflicts, ranges, redactions, relations), memberships, aliases, account data,
//! receipts and filters, including concurrent writers and ids sorted by bytes in any locale.

use std::collections::HashSet;
use std::sync::Arc;

use maas_store::{
    AccountDataRecord, AliasRecord, Direction, EventRecord, MembershipRecord, NewEvent,
    NewStateGroup, ReceiptRecord, Redaction, RelationRecord, RoomRecord, StoreError, TenantStore,
    TxnRecord,
};

mod support;
use support::{
    Fixture, TENANT, entry, event, group, ids, member_event, membership, on_both_backends, plain,
    range, related, room,
};

const ROOM: &str = "!room:example.org";
const OTHER_ROOM: &str = "!other:example.org";

/// A store with `ROOM` and `OTHER_ROOM` and an empty snapshot as group 1.
/// The request path most test transactions were sent on.
const SEND_SCOPE: &str = r#"["send","!room:example.org","m.room.message"]"#;

async fn with_rooms(store: &dyn TenantStore) {
    let id = store.next_state_group_id().await.unwrap();
    assert_eq!(id, 1);
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

on_both_backends!(rooms_and_directory);
on_both_backends!(state_groups_apply_their_delta_chain);
on_both_backends!(damaged_state_chains_are_reported);
on_both_backends!(state_group_ids_are_unique_under_concurrency);
on_both_backends!(stream_reservation_never_lowers);
on_both_backends!(persist_event_writes_everything_at_once);
on_both_backends!(conflicts_leave_nothing_written);
on_both_backends!(room_events_by_range_and_direction);
on_both_backends!(event_by_timestamp);
on_both_backends!(redaction_is_applied_with_the_redaction_event);
on_both_backends!(relations_and_thread_roots);
on_both_backends!(memberships);
on_both_backends!(aliases);
on_both_backends!(account_data_upserts_and_ranges);
on_both_backends!(receipts_upsert_and_ranges);
on_both_backends!(filters);
on_both_backends!(rooms_survive_reopening);
on_both_backends!(ids_sort_by_bytes_whatever_the_locale);
on_both_backends!(concurrent_events_of_one_room_keep_one_extremity_set);
on_both_backends!(forgetting_is_recorded_until_the_next_membership);
on_both_backends!(tenants_with_the_same_ids_keep_their_rooms_apart);

async fn rooms_and_directory(store: &dyn TenantStore) {
    for id in ["!c:x", "!a:x", "!b:x", "!d:x"] {
        store.insert_room(&room(id)).await.unwrap();
    }
    assert!(matches!(
        store.insert_room(&room("!a:x")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.room("!a:x").await.unwrap(), Some(room("!a:x")));
    assert_eq!(store.room("!nope:x").await.unwrap(), None);

    for id in ["!c:x", "!a:x", "!b:x"] {
        store.set_room_published(id, true).await.unwrap();
    }
    store.set_room_published("!b:x", false).await.unwrap();
    assert!(matches!(
        store.set_room_published("!nope:x", true).await,
        Err(StoreError::NotFound(_))
    ));
    let listed = |rooms: Vec<RoomRecord>| rooms.into_iter().map(|r| r.room_id).collect::<Vec<_>>();
    assert_eq!(
        listed(store.published_rooms(None, 10).await.unwrap()),
        ["!a:x", "!c:x"]
    );
    assert_eq!(
        listed(store.published_rooms(None, 1).await.unwrap()),
        ["!a:x"]
    );
    assert_eq!(
        listed(store.published_rooms(Some("!a:x"), 10).await.unwrap()),
        ["!c:x"]
    );
    assert!(
        store
            .published_rooms(Some("!c:x"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_published_rooms().await.unwrap(), 2);
    assert!(store.room("!a:x").await.unwrap().unwrap().published);
}

async fn state_groups_apply_their_delta_chain(store: &dyn TenantStore) {
    let ids: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(store.next_state_group_id().await.unwrap());
        }
        ids
    };
    assert_eq!(ids, [1, 2, 3, 4]);
    let (snapshot, delta1, delta2, other) = (ids[0], ids[1], ids[2], ids[3]);

    store
        .insert_state_group(&group(
            ROOM,
            snapshot,
            None,
            0,
            vec![
                entry("m.room.create", "", "$create"),
                entry("m.room.member", "@alice:x", "$alice_join"),
                entry("m.room.power_levels", "", "$pl"),
            ],
        ))
        .await
        .unwrap();
    store
        .insert_state_group(&group(
            ROOM,
            delta1,
            Some(snapshot),
            1,
            vec![entry("m.room.member", "@bob:x", "$bob_join")],
        ))
        .await
        .unwrap();
    store
        .insert_state_group(&group(
            ROOM,
            delta2,
            Some(delta1),
            2,
            vec![
                // Overrides the snapshot's entry for the same key.
                entry("m.room.member", "@alice:x", "$alice_name"),
                entry("m.room.topic", "", "$topic"),
                // A key given twice keeps its last entry.
                entry("m.room.name", "", "$name1"),
                entry("m.room.name", "", "$name2"),
            ],
        ))
        .await
        .unwrap();
    // A sibling delta of the snapshot sees none of delta1/delta2.
    store
        .insert_state_group(&group(
            ROOM,
            other,
            Some(snapshot),
            1,
            vec![entry("m.room.power_levels", "", "$pl2")],
        ))
        .await
        .unwrap();

    assert_eq!(
        store.state_group(delta2).await.unwrap(),
        vec![
            entry("m.room.create", "", "$create"),
            entry("m.room.member", "@alice:x", "$alice_name"),
            entry("m.room.member", "@bob:x", "$bob_join"),
            entry("m.room.name", "", "$name2"),
            entry("m.room.power_levels", "", "$pl"),
            entry("m.room.topic", "", "$topic"),
        ]
    );
    assert_eq!(
        store.state_group(delta1).await.unwrap(),
        vec![
            entry("m.room.create", "", "$create"),
            entry("m.room.member", "@alice:x", "$alice_join"),
            entry("m.room.member", "@bob:x", "$bob_join"),
            entry("m.room.power_levels", "", "$pl"),
        ]
    );
    assert_eq!(
        store.state_group(other).await.unwrap(),
        vec![
            entry("m.room.create", "", "$create"),
            entry("m.room.member", "@alice:x", "$alice_join"),
            entry("m.room.power_levels", "", "$pl2"),
        ]
    );
    assert_eq!(
        store.state_group_info(snapshot).await.unwrap(),
        Some((None, 0))
    );
    assert_eq!(
        store.state_group_info(delta2).await.unwrap(),
        Some((Some(delta1), 2))
    );
    assert_eq!(store.state_group_info(99).await.unwrap(), None);
    assert!(matches!(
        store.state_group(99).await,
        Err(StoreError::NotFound(_))
    ));

    // An empty snapshot exists and is empty, which is not the same as unknown.
    let empty = store.next_state_group_id().await.unwrap();
    store
        .insert_state_group(&group(ROOM, empty, None, 0, Vec::new()))
        .await
        .unwrap();
    assert_eq!(store.state_group(empty).await.unwrap(), Vec::new());

    assert!(matches!(
        store
            .insert_state_group(&group(ROOM, delta1, None, 0, Vec::new()))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let orphan = store.next_state_group_id().await.unwrap();
    assert!(matches!(
        store
            .insert_state_group(&group(
                ROOM,
                orphan,
                Some(1234),
                1,
                vec![entry("a", "", "$a")]
            ))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.state_group_info(orphan).await.unwrap(), None);
}

async fn damaged_state_chains_are_reported(fixture: &Fixture) {
    let store = fixture.store().await;
    store
        .insert_state_group(&group(ROOM, 1, None, 0, vec![entry("a", "", "$a")]))
        .await
        .unwrap();
    store
        .insert_state_group(&group(ROOM, 2, Some(1), 1, vec![entry("b", "", "$b")]))
        .await
        .unwrap();
    // A cycle can't be written through the trait; plant one and expect an error, not a hang.
    let planted = fixture
        .raw()
        .await
        .execute("UPDATE state_groups SET prev_group = 2 WHERE id = 1", &[])
        .await;
    assert_eq!(planted, 1);
    let err = store.state_group(2).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

async fn state_group_ids_are_unique_under_concurrency(store: Arc<dyn TenantStore>) {
    // A group stored under an id the counter never handed out is skipped.
    store
        .insert_state_group(&group(ROOM, 10, None, 0, Vec::new()))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.next_state_group_id().await.unwrap() })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let id = task.await.unwrap();
        assert!(id > 10, "{id}");
        assert!(ids.insert(id), "{id} handed out twice");
    }
}

async fn stream_reservation_never_lowers(store: Arc<dyn TenantStore>) {
    with_rooms(&*store).await;
    assert_eq!(store.stream_reserved().await.unwrap(), 0);
    store.reserve_stream(100).await.unwrap();
    assert_eq!(store.stream_reserved().await.unwrap(), 100);
    store.reserve_stream(50).await.unwrap();
    assert_eq!(store.stream_reserved().await.unwrap(), 100);

    let tasks: Vec<_> = (1..=20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve_stream(100 + i * 7 % 20).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.stream_reserved().await.unwrap(), 119);

    // A stored event above the reservation counts as handed out.
    store
        .persist_event(&plain(event(ROOM, "$far", 500, 1)))
        .await
        .unwrap();
    assert_eq!(store.stream_reserved().await.unwrap(), 500);
}

async fn persist_event_writes_everything_at_once(store: &dyn TenantStore) {
    with_rooms(store).await;

    store
        .persist_event(&plain(event(ROOM, "$a", 1, 10)))
        .await
        .unwrap();
    store
        .persist_event(&plain(event(OTHER_ROOM, "$other", 2, 10)))
        .await
        .unwrap();
    assert_eq!(store.forward_extremities(ROOM).await.unwrap(), ["$a"]);

    // A state event: a new delta group, two extremities, the room's state moves.
    let group_id = store.next_state_group_id().await.unwrap();
    let mut topic = event(ROOM, "$topic", 3, 30);
    topic.event_type = "m.room.topic".to_owned();
    topic.state_key = Some(String::new());
    topic.state_before = 1;
    topic.state_after = group_id;
    topic.txn = Some(TxnRecord {
        localpart: "alice".to_owned(),
        device_id: "DEV".to_owned(),
        scope: SEND_SCOPE.to_owned(),
        txn_id: "t1".to_owned(),
    });
    let new = NewEvent {
        event: topic.clone(),
        extremities: vec![
            "$topic".to_owned(),
            "$remote".to_owned(),
            "$topic".to_owned(),
        ],
        new_state_group: Some(NewStateGroup {
            id: group_id,
            room_id: ROOM.to_owned(),
            prev_group: Some(1),
            delta: vec![entry("m.room.topic", "", "$topic")],
            chain_len: 1,
        }),
        room_state_group: group_id,
        membership: None,
        redaction: None,
    };
    store.persist_event(&new).await.unwrap();

    assert_eq!(store.event("$topic").await.unwrap(), Some(topic.clone()));
    assert_eq!(store.event("$nope").await.unwrap(), None);
    assert_eq!(
        store.forward_extremities(ROOM).await.unwrap(),
        ["$remote", "$topic"]
    );
    assert_eq!(
        store.forward_extremities(OTHER_ROOM).await.unwrap(),
        ["$other"]
    );
    assert_eq!(
        store.room(ROOM).await.unwrap().unwrap().state_group,
        group_id
    );
    assert_eq!(
        store.room(OTHER_ROOM).await.unwrap().unwrap().state_group,
        1
    );
    assert_eq!(
        store.state_group(group_id).await.unwrap(),
        vec![entry("m.room.topic", "", "$topic")]
    );
    assert_eq!(
        store
            .event_id_by_txn(topic.txn.as_ref().unwrap())
            .await
            .unwrap()
            .as_deref(),
        Some("$topic")
    );
    let other_device = TxnRecord {
        localpart: "alice".to_owned(),
        device_id: "OTHER".to_owned(),
        scope: SEND_SCOPE.to_owned(),
        txn_id: "t1".to_owned(),
    };
    assert_eq!(store.event_id_by_txn(&other_device).await.unwrap(), None);
    // The same id on another request path is another transaction.
    let other_path = TxnRecord {
        scope: r#"["send","!room:example.org","m.room.name"]"#.to_owned(),
        ..topic.txn.clone().unwrap()
    };
    assert_eq!(store.event_id_by_txn(&other_path).await.unwrap(), None);

    let mut found = store
        .events(&["$a".to_owned(), "$missing".to_owned(), "$topic".to_owned()])
        .await
        .unwrap();
    found.sort_by_key(|e| e.stream);
    assert_eq!(ids(&found), ["$a", "$topic"]);
    assert!(store.events(&[]).await.unwrap().is_empty());
}

async fn conflicts_leave_nothing_written(store: &dyn TenantStore) {
    with_rooms(store).await;
    let txn = TxnRecord {
        localpart: "alice".to_owned(),
        device_id: "DEV".to_owned(),
        scope: SEND_SCOPE.to_owned(),
        txn_id: "t1".to_owned(),
    };
    let mut first = event(ROOM, "$first", 1, 10);
    first.txn = Some(txn.clone());
    store.persist_event(&plain(first.clone())).await.unwrap();
    store
        .persist_event(&member_event(ROOM, "@bob:x", "join", 2))
        .await
        .unwrap();

    // Everything a refused event would have changed, so that leftovers show.
    let attempt = |event: EventRecord| {
        let group_id = 77;
        NewEvent {
            extremities: vec![event.event_id.clone()],
            event,
            new_state_group: Some(group(
                ROOM,
                group_id,
                Some(1),
                1,
                vec![entry("x", "", "$x")],
            )),
            room_state_group: group_id,
            membership: Some(membership(ROOM, "@bob:x", "leave", 3)),
            redaction: Some(Redaction {
                event_id: "$first".to_owned(),
                redacted_pdu: "{}".to_owned(),
                redacted_by: "$whatever".to_owned(),
                relation: None,
            }),
        }
    };
    let check_unchanged = || async {
        assert_eq!(store.state_group_info(77).await.unwrap(), None);
        assert_eq!(store.room(ROOM).await.unwrap().unwrap().state_group, 1);
        assert_eq!(store.forward_extremities(ROOM).await.unwrap(), ["$member2"]);
        assert_eq!(
            store
                .membership(ROOM, "@bob:x")
                .await
                .unwrap()
                .unwrap()
                .membership,
            "join"
        );
        assert_eq!(store.event("$first").await.unwrap(), Some(first.clone()));
        assert_eq!(
            store
                .room_events(ROOM, range(0, 100), Direction::Forward, 100)
                .await
                .unwrap()
                .len(),
            2
        );
    };

    // The same event id again.
    let err = store
        .persist_event(&attempt(event(ROOM, "$first", 3, 30)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("$first")),
        "{err:?}"
    );
    check_unchanged().await;

    // The same client transaction under another event id.
    let mut again = event(ROOM, "$again", 3, 30);
    again.txn = Some(txn.clone());
    let err = store.persist_event(&attempt(again)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("transaction")),
        "{err:?}"
    );
    check_unchanged().await;

    // A stream position that is taken.
    let err = store
        .persist_event(&attempt(event(ROOM, "$clash", 1, 30)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("stream")),
        "{err:?}"
    );
    check_unchanged().await;

    // A room that doesn't exist.
    let err = store
        .persist_event(&attempt(event("!nope:x", "$lost", 3, 30)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.event("$lost").await.unwrap(), None);
    check_unchanged().await;

    // The same transaction id from another device is a different transaction.
    let mut other_device = event(ROOM, "$other_device", 3, 30);
    other_device.txn = Some(TxnRecord {
        device_id: "DEV2".to_owned(),
        ..txn.clone()
    });
    store.persist_event(&plain(other_device)).await.unwrap();
    // …and from the same device on another request path too.
    let mut other_path = event(ROOM, "$other_path", 4, 40);
    other_path.txn = Some(TxnRecord {
        scope: r#"["send","!room:example.org","m.reaction"]"#.to_owned(),
        ..txn.clone()
    });
    store.persist_event(&plain(other_path)).await.unwrap();
}

async fn room_events_by_range_and_direction(store: Arc<dyn TenantStore>) {
    with_rooms(&*store).await;
    // Streams interleave between the rooms, as they do in one tenant-wide stream.
    for stream in 1..=10 {
        let room_id = if stream % 2 == 0 { ROOM } else { OTHER_ROOM };
        store
            .persist_event(&plain(event(
                room_id,
                &format!("$e{stream}"),
                stream,
                stream,
            )))
            .await
            .unwrap();
    }
    let get = |after, up_to, direction, limit| {
        let store = store.clone();
        async move {
            let events = store
                .room_events(ROOM, range(after, up_to), direction, limit)
                .await
                .unwrap();
            events.iter().map(|e| e.stream).collect::<Vec<_>>()
        }
    };
    assert_eq!(get(0, 10, Direction::Forward, 100).await, [2, 4, 6, 8, 10]);
    assert_eq!(get(0, 10, Direction::Backward, 100).await, [10, 8, 6, 4, 2]);
    // `after` is exclusive, `up_to` inclusive.
    assert_eq!(get(4, 8, Direction::Forward, 100).await, [6, 8]);
    assert_eq!(get(4, 8, Direction::Backward, 100).await, [8, 6]);
    assert_eq!(get(3, 9, Direction::Forward, 2).await, [4, 6]);
    assert_eq!(get(3, 9, Direction::Backward, 2).await, [8, 6]);
    assert_eq!(
        get(10, 20, Direction::Forward, 100).await,
        Vec::<i64>::new()
    );
    assert_eq!(get(0, 10, Direction::Forward, 0).await, Vec::<i64>::new());

    assert_eq!(
        store.last_event_at(ROOM, 7).await.unwrap().unwrap().stream,
        6
    );
    assert_eq!(
        store.last_event_at(ROOM, 8).await.unwrap().unwrap().stream,
        8
    );
    assert_eq!(store.last_event_at(ROOM, 1).await.unwrap(), None);

    let room_ids = vec![
        ROOM.to_owned(),
        OTHER_ROOM.to_owned(),
        "!empty:x".to_owned(),
    ];
    let mut with = store
        .rooms_with_events(&room_ids, range(0, 10))
        .await
        .unwrap();
    with.sort();
    assert_eq!(with, [OTHER_ROOM, ROOM]);
    assert_eq!(
        store
            .rooms_with_events(&room_ids, range(9, 10))
            .await
            .unwrap(),
        [ROOM]
    );
    assert_eq!(
        store
            .rooms_with_events(&room_ids, range(8, 9))
            .await
            .unwrap(),
        [OTHER_ROOM]
    );
    assert!(
        store
            .rooms_with_events(&room_ids, range(10, 20))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .rooms_with_events(&[], range(0, 10))
            .await
            .unwrap()
            .is_empty()
    );

    // Many more ids than one chunk holds, with the real rooms at the end and listed twice.
    let mut many: Vec<String> = (0..1_200).map(|i| format!("!r{i}:x")).collect();
    many.extend([ROOM.to_owned(), OTHER_ROOM.to_owned(), ROOM.to_owned()]);
    let mut with = store.rooms_with_events(&many, range(0, 10)).await.unwrap();
    with.sort();
    assert_eq!(with, [OTHER_ROOM, ROOM]);

    let wanted: Vec<String> = (1..=10).map(|i| format!("$e{i}")).chain(many).collect();
    assert_eq!(store.events(&wanted).await.unwrap().len(), 10);
}

async fn event_by_timestamp(store: Arc<dyn TenantStore>) {
    with_rooms(&*store).await;
    // Timestamps need not follow the stream; two events share ts 200.
    for (id, stream, ts) in [
        ("$a", 1, 100),
        ("$b", 2, 300),
        ("$c", 3, 200),
        ("$d", 4, 200),
    ] {
        store
            .persist_event(&plain(event(ROOM, id, stream, ts)))
            .await
            .unwrap();
    }
    store
        .persist_event(&plain(event(OTHER_ROOM, "$x", 5, 150)))
        .await
        .unwrap();
    let at = |ts, direction| {
        let store = store.clone();
        async move {
            store
                .event_by_timestamp(ROOM, ts, direction)
                .await
                .unwrap()
                .map(|e| e.event_id)
        }
    };
    assert_eq!(at(150, Direction::Forward).await.as_deref(), Some("$c"));
    assert_eq!(at(200, Direction::Forward).await.as_deref(), Some("$c"));
    assert_eq!(at(201, Direction::Forward).await.as_deref(), Some("$b"));
    assert_eq!(at(301, Direction::Forward).await, None);
    assert_eq!(at(150, Direction::Backward).await.as_deref(), Some("$a"));
    assert_eq!(at(200, Direction::Backward).await.as_deref(), Some("$d"));
    assert_eq!(at(1_000, Direction::Backward).await.as_deref(), Some("$b"));
    assert_eq!(at(99, Direction::Backward).await, None);
}

async fn redaction_is_applied_with_the_redaction_event(store: &dyn TenantStore) {
    with_rooms(store).await;
    store
        .persist_event(&plain(event(ROOM, "$root", 1, 1)))
        .await
        .unwrap();
    store
        .persist_event(&plain(related(
            event(ROOM, "$edit", 2, 2),
            "m.replace",
            "$root",
        )))
        .await
        .unwrap();
    store
        .persist_event(&plain(event(OTHER_ROOM, "$elsewhere", 3, 3)))
        .await
        .unwrap();

    let mut redaction = event(ROOM, "$redaction", 4, 4);
    redaction.event_type = "m.room.redaction".to_owned();
    let mut new = plain(redaction.clone());
    new.redaction = Some(Redaction {
        event_id: "$edit".to_owned(),
        redacted_pdu: r#"{"content":{},"type":"m.room.message"}"#.to_owned(),
        redacted_by: "$redaction".to_owned(),
        relation: None,
    });
    store.persist_event(&new).await.unwrap();

    let edit = store.event("$edit").await.unwrap().unwrap();
    assert_eq!(edit.pdu, r#"{"content":{},"type":"m.room.message"}"#);
    assert_eq!(edit.redacted_by.as_deref(), Some("$redaction"));
    // The redacted content no longer relates to anything, so the edit no longer counts.
    assert_eq!(edit.relation, None);
    assert!(
        store
            .relations("$root", None, None, Direction::Forward, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.event("$redaction").await.unwrap(), Some(redaction));

    // A redaction never reaches into another room, and a missing target is no error.
    let mut new = plain(event(ROOM, "$redaction2", 5, 5));
    new.redaction = Some(Redaction {
        event_id: "$elsewhere".to_owned(),
        redacted_pdu: "{}".to_owned(),
        redacted_by: "$redaction2".to_owned(),
        relation: None,
    });
    store.persist_event(&new).await.unwrap();
    let elsewhere = store.event("$elsewhere").await.unwrap().unwrap();
    assert_eq!(elsewhere.redacted_by, None);
    let mut new = plain(event(ROOM, "$redaction3", 6, 6));
    new.redaction = Some(Redaction {
        event_id: "$not_yet_here".to_owned(),
        redacted_pdu: "{}".to_owned(),
        redacted_by: "$redaction3".to_owned(),
        relation: None,
    });
    store.persist_event(&new).await.unwrap();

    // Where the room version keeps `m.relates_to` in the redacted form, the relation stays.
    let relation = RelationRecord {
        rel_type: "m.thread".to_owned(),
        parent_event_id: "$root".to_owned(),
    };
    let mut reply = event(ROOM, "$reply", 7, 7);
    reply.relation = Some(relation.clone());
    store.persist_event(&plain(reply)).await.unwrap();
    let mut new = plain(event(ROOM, "$redaction4", 8, 8));
    new.redaction = Some(Redaction {
        event_id: "$reply".to_owned(),
        redacted_pdu: r#"{"content":{"m.relates_to":{}},"type":"m.room.message"}"#.to_owned(),
        redacted_by: "$redaction4".to_owned(),
        relation: Some(relation.clone()),
    });
    store.persist_event(&new).await.unwrap();
    let reply = store.event("$reply").await.unwrap().unwrap();
    assert_eq!(reply.redacted_by.as_deref(), Some("$redaction4"));
    assert_eq!(reply.relation, Some(relation));
}

async fn relations_and_thread_roots(store: Arc<dyn TenantStore>) {
    with_rooms(&*store).await;
    let mut stream = 0;
    let persist = |event: EventRecord| {
        let store = store.clone();
        async move { store.persist_event(&plain(event)).await.unwrap() }
    };
    let mut next = || {
        stream += 1;
        stream
    };
    // Roots: $t1 (stream 1), $t2 (2), $plain (3, no thread); replies interleave.
    for id in ["$t1", "$t2", "$plain"] {
        let s = next();
        persist(event(ROOM, id, s, s)).await;
    }
    let s = next(); // 4
    persist(related(event(ROOM, "$r1a", s, s), "m.thread", "$t1")).await;
    let s = next(); // 5
    persist(related(event(ROOM, "$r2a", s, s), "m.thread", "$t2")).await;
    let s = next(); // 6
    let mut reaction = related(event(ROOM, "$react", s, s), "m.annotation", "$t1");
    reaction.event_type = "m.reaction".to_owned();
    persist(reaction).await;
    let s = next(); // 7
    persist(related(event(ROOM, "$r1b", s, s), "m.thread", "$t1")).await;
    let s = next(); // 8
    persist(related(event(ROOM, "$edit", s, s), "m.replace", "$plain")).await;
    // A thread in another room and a reply to an unknown root.
    let s = next(); // 9
    persist(event(OTHER_ROOM, "$t3", s, s)).await;
    let s = next(); // 10
    persist(related(event(OTHER_ROOM, "$r3a", s, s), "m.thread", "$t3")).await;
    let s = next(); // 11
    persist(related(event(ROOM, "$r4a", s, s), "m.thread", "$unknown")).await;

    let rel = |rel_type: Option<&'static str>,
               event_type: Option<&'static str>,
               direction,
               from,
               limit| {
        let store = store.clone();
        async move {
            let events = store
                .relations("$t1", rel_type, event_type, direction, from, limit)
                .await
                .unwrap();
            events.into_iter().map(|e| e.event_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        rel(None, None, Direction::Forward, None, 10).await,
        ["$r1a", "$react", "$r1b"]
    );
    assert_eq!(
        rel(None, None, Direction::Backward, None, 10).await,
        ["$r1b", "$react", "$r1a"]
    );
    assert_eq!(
        rel(Some("m.thread"), None, Direction::Forward, None, 10).await,
        ["$r1a", "$r1b"]
    );
    assert_eq!(
        rel(Some("m.thread"), None, Direction::Backward, None, 1).await,
        ["$r1b"]
    );
    assert_eq!(
        rel(Some("m.thread"), None, Direction::Backward, Some(7), 10).await,
        ["$r1a"]
    );
    assert_eq!(
        rel(None, None, Direction::Forward, Some(4), 10).await,
        ["$react", "$r1b"]
    );
    assert_eq!(
        rel(None, Some("m.reaction"), Direction::Forward, None, 10).await,
        ["$react"]
    );
    assert_eq!(
        rel(
            Some("m.annotation"),
            Some("m.room.message"),
            Direction::Forward,
            None,
            10
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        store
            .relations(
                "$plain",
                Some("m.replace"),
                None,
                Direction::Forward,
                None,
                10
            )
            .await
            .unwrap()[0]
            .relation,
        Some(RelationRecord {
            rel_type: "m.replace".to_owned(),
            parent_event_id: "$plain".to_owned(),
        })
    );

    // Ordered by the latest reply: $t1's (7) is newer than $t2's (5).
    let roots = |before| {
        let store = store.clone();
        async move {
            let events = store.thread_roots(ROOM, before, 10).await.unwrap();
            events.into_iter().map(|e| e.event_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(roots(None).await, ["$t1", "$t2"]);
    assert_eq!(roots(Some(7)).await, ["$t2"]);
    assert_eq!(roots(Some(5)).await, Vec::<String>::new());
    assert_eq!(
        ids(&store.thread_roots(ROOM, None, 1).await.unwrap()),
        ["$t1"]
    );
    assert_eq!(
        ids(&store.thread_roots(OTHER_ROOM, None, 10).await.unwrap()),
        ["$t3"]
    );

    // A new reply moves $t2 to the front.
    let s = next(); // 12
    persist(related(event(ROOM, "$r2b", s, s), "m.thread", "$t2")).await;
    assert_eq!(roots(None).await, ["$t2", "$t1"]);
}

async fn memberships(store: Arc<dyn TenantStore>) {
    with_rooms(&*store).await;
    let alice = "@alice:x";
    let bob = "@bob:x";
    for new in [
        member_event(ROOM, alice, "join", 1),
        member_event(ROOM, bob, "invite", 2),
        member_event(OTHER_ROOM, alice, "join", 3),
        member_event(OTHER_ROOM, bob, "join", 4),
        member_event(ROOM, bob, "join", 5),
        member_event(OTHER_ROOM, bob, "leave", 6),
    ] {
        store.persist_event(&new).await.unwrap();
    }
    // Invites on remote rooms have no local room or events; they are memberships all the same.
    assert_eq!(
        store.membership(ROOM, bob).await.unwrap(),
        Some(MembershipRecord {
            stripped_state: None,
            ..membership(ROOM, bob, "join", 5)
        })
    );
    assert_eq!(store.membership(ROOM, "@nobody:x").await.unwrap(), None);

    let rooms_of = |m: Vec<MembershipRecord>| {
        m.into_iter()
            .map(|m| (m.room_id, m.membership))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rooms_of(store.memberships_of_user(bob).await.unwrap()),
        [
            (ROOM.to_owned(), "join".to_owned()),
            (OTHER_ROOM.to_owned(), "leave".to_owned())
        ]
    );
    assert_eq!(
        rooms_of(
            store
                .memberships_of_user_in(bob, range(0, 5))
                .await
                .unwrap()
        ),
        [(ROOM.to_owned(), "join".to_owned())]
    );
    assert_eq!(
        rooms_of(
            store
                .memberships_of_user_in(bob, range(5, 6))
                .await
                .unwrap()
        ),
        [(OTHER_ROOM.to_owned(), "leave".to_owned())]
    );
    assert!(
        store
            .memberships_of_user_in(alice, range(3, 6))
            .await
            .unwrap()
            .is_empty()
    );

    let members = |room_id, filter| {
        let store = store.clone();
        async move {
            let members = store.room_members(room_id, filter).await.unwrap();
            members.into_iter().map(|m| m.user_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(members(ROOM, None).await, [alice, bob]);
    assert_eq!(members(OTHER_ROOM, Some("join")).await, [alice]);
    assert_eq!(members(OTHER_ROOM, Some("leave")).await, [bob]);
    assert_eq!(members(OTHER_ROOM, Some("ban")).await, Vec::<String>::new());

    // An invite keeps its stripped state.
    store
        .persist_event(&member_event(ROOM, "@carol:x", "invite", 7))
        .await
        .unwrap();
    assert_eq!(
        store.membership(ROOM, "@carol:x").await.unwrap(),
        Some(membership(ROOM, "@carol:x", "invite", 7))
    );

    // Forgetting (core allows it only after leaving): per user, per room, undone by the next
    // membership change.
    store.forget_room(OTHER_ROOM, bob).await.unwrap();
    store.forget_room(OTHER_ROOM, bob).await.unwrap();
    assert!(store.is_forgotten(OTHER_ROOM, bob).await.unwrap());
    assert!(!store.is_forgotten(OTHER_ROOM, alice).await.unwrap());
    assert!(!store.is_forgotten(ROOM, bob).await.unwrap());
    // Forgotten rooms are still memberships.
    assert_eq!(store.memberships_of_user(bob).await.unwrap().len(), 2);
    store
        .persist_event(&member_event(OTHER_ROOM, bob, "invite", 8))
        .await
        .unwrap();
    assert!(!store.is_forgotten(OTHER_ROOM, bob).await.unwrap());
}

async fn aliases(store: &dyn TenantStore) {
    with_rooms(store).await;
    let alias = |name: &str, room_id: &str| AliasRecord {
        alias: name.to_owned(),
        room_id: room_id.to_owned(),
        creator: "@alice:x".to_owned(),
    };
    store.insert_alias(&alias("#b:x", ROOM)).await.unwrap();
    store.insert_alias(&alias("#a:x", ROOM)).await.unwrap();
    store
        .insert_alias(&alias("#c:x", OTHER_ROOM))
        .await
        .unwrap();
    let err = store
        .insert_alias(&alias("#a:x", OTHER_ROOM))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.alias("#a:x").await.unwrap(),
        Some(alias("#a:x", ROOM))
    );
    assert_eq!(store.alias("#zz:x").await.unwrap(), None);
    assert_eq!(store.aliases_of_room(ROOM).await.unwrap(), ["#a:x", "#b:x"]);
    assert!(store.delete_alias("#a:x").await.unwrap());
    assert!(!store.delete_alias("#a:x").await.unwrap());
    assert_eq!(store.aliases_of_room(ROOM).await.unwrap(), ["#b:x"]);
    // A deleted alias can be taken again.
    store
        .insert_alias(&alias("#a:x", OTHER_ROOM))
        .await
        .unwrap();
    assert_eq!(
        store.aliases_of_room(OTHER_ROOM).await.unwrap(),
        ["#a:x", "#c:x"]
    );
}

async fn account_data_upserts_and_ranges(store: &dyn TenantStore) {
    let data = |room_id: Option<&str>, data_type: &str, content: &str, stream| AccountDataRecord {
        localpart: "alice".to_owned(),
        room_id: room_id.map(str::to_owned),
        data_type: data_type.to_owned(),
        content: content.to_owned(),
        stream,
    };
    let global = data(None, "m.push_rules", "{}", 1);
    let tags = data(Some(ROOM), "m.tag", r#"{"tags":{}}"#, 2);
    // The same type globally and in a room are two entries.
    let room_rules = data(Some(ROOM), "m.push_rules", r#"{"room":1}"#, 3);
    for d in [&global, &tags, &room_rules] {
        store.set_account_data(d).await.unwrap();
    }
    let mut other_user = data(None, "m.push_rules", "{}", 4);
    other_user.localpart = "bob".to_owned();
    store.set_account_data(&other_user).await.unwrap();

    assert_eq!(
        store
            .account_data("alice", None, "m.push_rules")
            .await
            .unwrap(),
        Some(global.clone())
    );
    assert_eq!(
        store
            .account_data("alice", Some(ROOM), "m.push_rules")
            .await
            .unwrap(),
        Some(room_rules.clone())
    );
    assert_eq!(
        store.account_data("alice", None, "m.tag").await.unwrap(),
        None
    );

    // An update replaces the content and moves the entry to its new position.
    let updated = data(None, "m.push_rules", r#"{"v":2}"#, 5);
    store.set_account_data(&updated).await.unwrap();
    assert_eq!(
        store
            .account_data("alice", None, "m.push_rules")
            .await
            .unwrap(),
        Some(updated.clone())
    );
    assert_eq!(
        store.account_data_in("alice", range(0, 10)).await.unwrap(),
        vec![tags.clone(), room_rules.clone(), updated.clone()]
    );
    assert_eq!(
        store.account_data_in("alice", range(2, 10)).await.unwrap(),
        vec![room_rules.clone(), updated.clone()]
    );
    assert_eq!(
        store.account_data_in("alice", range(2, 4)).await.unwrap(),
        vec![room_rules.clone()]
    );
    assert_eq!(
        store.account_data_in("bob", range(0, 10)).await.unwrap(),
        vec![other_user]
    );
}

async fn receipts_upsert_and_ranges(store: &dyn TenantStore) {
    let receipt =
        |room_id: &str, user_id: &str, thread_id: Option<&str>, event_id: &str, stream| {
            ReceiptRecord {
                room_id: room_id.to_owned(),
                user_id: user_id.to_owned(),
                receipt_type: "m.read".to_owned(),
                thread_id: thread_id.map(str::to_owned),
                event_id: event_id.to_owned(),
                ts: stream * 100,
                stream,
            }
        };
    let a1 = receipt(ROOM, "@a:x", None, "$1", 1);
    let a_thread = receipt(ROOM, "@a:x", Some("$root"), "$2", 2);
    let mut a_private = receipt(ROOM, "@a:x", None, "$3", 3);
    a_private.receipt_type = "m.read.private".to_owned();
    let b_other = receipt(OTHER_ROOM, "@b:x", Some("main"), "$4", 4);
    for r in [&a1, &a_thread, &a_private, &b_other] {
        store.set_receipt(r).await.unwrap();
    }
    let rooms = vec![ROOM.to_owned(), OTHER_ROOM.to_owned()];
    assert_eq!(
        store.receipts_in(&rooms, range(0, 10)).await.unwrap(),
        vec![
            a1.clone(),
            a_thread.clone(),
            a_private.clone(),
            b_other.clone()
        ]
    );
    // Moving the unthreaded m.read receipt replaces it; the others stay.
    let a5 = receipt(ROOM, "@a:x", None, "$5", 5);
    store.set_receipt(&a5).await.unwrap();
    assert_eq!(
        store.receipts_in(&rooms, range(0, 10)).await.unwrap(),
        vec![
            a_thread.clone(),
            a_private.clone(),
            b_other.clone(),
            a5.clone()
        ]
    );
    assert_eq!(
        store.receipts_in(&rooms, range(2, 4)).await.unwrap(),
        vec![a_private.clone(), b_other.clone()]
    );
    assert_eq!(
        store
            .receipts_in(&[ROOM.to_owned()], range(0, 10))
            .await
            .unwrap(),
        vec![a_thread.clone(), a_private.clone(), a5.clone()]
    );
    assert!(
        store
            .receipts_in(&[], range(0, 10))
            .await
            .unwrap()
            .is_empty()
    );

    // More rooms than one chunk: still all found, still in stream order.
    let mut many: Vec<String> = (0..700).map(|i| format!("!r{i}:x")).collect();
    many.insert(0, OTHER_ROOM.to_owned());
    many.push(ROOM.to_owned());
    assert_eq!(
        store.receipts_in(&many, range(0, 10)).await.unwrap(),
        vec![a_thread, a_private, b_other, a5]
    );
}

async fn filters(store: Arc<dyn TenantStore>) {
    assert_eq!(
        store.insert_filter("alice", r#"{"a":0}"#).await.unwrap(),
        "0"
    );
    assert_eq!(
        store.insert_filter("alice", r#"{"a":1}"#).await.unwrap(),
        "1"
    );
    assert_eq!(store.insert_filter("bob", r#"{"b":0}"#).await.unwrap(), "0");
    assert_eq!(
        store.filter("alice", "1").await.unwrap().as_deref(),
        Some(r#"{"a":1}"#)
    );
    assert_eq!(
        store.filter("bob", "0").await.unwrap().as_deref(),
        Some(r#"{"b":0}"#)
    );
    assert_eq!(store.filter("bob", "1").await.unwrap(), None);
    for bad in ["01", "-0", "x", "", "99999999999999999999"] {
        assert_eq!(store.filter("alice", bad).await.unwrap(), None, "{bad:?}");
    }

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.insert_filter("carol", &format!("{i}")).await.unwrap() },
            )
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        assert!(ids.insert(task.await.unwrap()));
    }
    let expected: HashSet<String> = (0..16).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected);
}

async fn rooms_survive_reopening(fixture: &Fixture) {
    let group_id;
    {
        let backend = fixture.open_backend().await;
        let store = backend.open_tenant(TENANT).await.unwrap();
        with_rooms(&*store).await;
        group_id = store.next_state_group_id().await.unwrap();
        let mut new = member_event(ROOM, "@alice:x", "join", 1);
        new.event.state_after = group_id;
        new.new_state_group = Some(group(
            ROOM,
            group_id,
            Some(1),
            1,
            vec![entry("m.room.member", "@alice:x", "$member1")],
        ));
        new.room_state_group = group_id;
        store.persist_event(&new).await.unwrap();
        store.reserve_stream(50).await.unwrap();
        store
            .insert_alias(&AliasRecord {
                alias: "#a:x".to_owned(),
                room_id: ROOM.to_owned(),
                creator: "@alice:x".to_owned(),
            })
            .await
            .unwrap();
        store.insert_filter("alice", "{}").await.unwrap();
        store.close().await;
        backend.close().await;
    }
    let backend = fixture.open_backend().await;
    let store = backend.open_tenant(TENANT).await.unwrap();
    assert_eq!(store.stream_reserved().await.unwrap(), 50);
    assert_eq!(
        store.room(ROOM).await.unwrap().unwrap().state_group,
        group_id
    );
    assert_eq!(
        store.state_group(group_id).await.unwrap(),
        vec![entry("m.room.member", "@alice:x", "$member1")]
    );
    assert_eq!(store.event("$member1").await.unwrap().unwrap().stream, 1);
    assert_eq!(store.forward_extremities(ROOM).await.unwrap(), ["$member1"]);
    assert_eq!(
        store
            .membership(ROOM, "@alice:x")
            .await
            .unwrap()
            .unwrap()
            .membership,
        "join"
    );
    assert_eq!(store.alias("#a:x").await.unwrap().unwrap().room_id, ROOM);
    // Counters carry on where they stopped.
    assert!(store.next_state_group_id().await.unwrap() > group_id);
    assert_eq!(store.insert_filter("alice", "{}").await.unwrap(), "1");
    store.close().await;
    backend.close().await;
}

/// On PostgreSQL, on a database whose default collation sorts "!a" before "!B" (see
/// `support::TestDb`): ids are still listed in byte order, SQLite's.
async fn ids_sort_by_bytes_whatever_the_locale(store: &dyn TenantStore) {
    with_rooms(store).await;
    for id in ["!c:x", "!a:x", "!B:x"] {
        store.insert_room(&room(id)).await.unwrap();
        store.set_room_published(id, true).await.unwrap();
    }
    let listed = |rooms: Vec<RoomRecord>| rooms.into_iter().map(|r| r.room_id).collect::<Vec<_>>();
    assert_eq!(
        listed(store.published_rooms(None, 10).await.unwrap()),
        ["!B:x", "!a:x", "!c:x"]
    );
    assert_eq!(
        listed(store.published_rooms(Some("!B:x"), 10).await.unwrap()),
        ["!a:x", "!c:x"]
    );

    let snapshot = store.next_state_group_id().await.unwrap();
    store
        .insert_state_group(&group(
            ROOM,
            snapshot,
            None,
            0,
            vec![
                entry("m.room.member", "@b:x", "$b"),
                entry("m.room.member", "@B:x", "$B"),
                entry("M.custom", "", "$custom"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        store.state_group(snapshot).await.unwrap(),
        vec![
            entry("M.custom", "", "$custom"),
            entry("m.room.member", "@B:x", "$B"),
            entry("m.room.member", "@b:x", "$b"),
        ]
    );

    for (stream, user) in [(1, "@b:x"), (2, "@B:x"), (3, "@a:x")] {
        store
            .persist_event(&member_event(ROOM, user, "join", stream))
            .await
            .unwrap();
    }
    let members: Vec<String> = store
        .room_members(ROOM, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members, ["@B:x", "@a:x", "@b:x"]);

    let mut new = plain(event(ROOM, "$b", 4, 4));
    new.extremities = vec!["$b".to_owned(), "$B".to_owned(), "$a".to_owned()];
    store.persist_event(&new).await.unwrap();
    assert_eq!(
        store.forward_extremities(ROOM).await.unwrap(),
        ["$B", "$a", "$b"]
    );

    for name in ["#b:x", "#B:x", "#a:x"] {
        store
            .insert_alias(&AliasRecord {
                alias: name.to_owned(),
                room_id: ROOM.to_owned(),
                creator: "@a:x".to_owned(),
            })
            .await
            .unwrap();
    }
    assert_eq!(
        store.aliases_of_room(ROOM).await.unwrap(),
        ["#B:x", "#a:x", "#b:x"]
    );
    let rooms = vec!["!c:x".to_owned(), ROOM.to_owned(), "!B:x".to_owned()];
    for (stream, room_id) in [(5, "!c:x"), (6, "!B:x")] {
        store
            .persist_event(&plain(event(
                room_id,
                &format!("$e{stream}"),
                stream,
                stream,
            )))
            .await
            .unwrap();
    }
    assert_eq!(
        store.rooms_with_events(&rooms, range(0, 10)).await.unwrap(),
        ["!B:x", "!c:x", ROOM]
    );
}

async fn concurrent_events_of_one_room_keep_one_extremity_set(store: Arc<dyn TenantStore>) {
    with_rooms(&*store).await;
    // Each event claims to be the room's only extremity, so whichever commits last must be
    // the only one left: the sets are replaced, never merged.
    let tasks: Vec<_> = (1..=40)
        .map(|stream| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("$c{stream}");
                store
                    .persist_event(&plain(event(ROOM, &id, stream, stream)))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let extremities = store.forward_extremities(ROOM).await.unwrap();
    assert_eq!(extremities.len(), 1, "{extremities:?}");
    assert_eq!(
        store
            .room_events(ROOM, range(0, 100), Direction::Forward, 100)
            .await
            .unwrap()
            .len(),
        40
    );
}

/// Whether a user may forget a room is core's rule; the store records it, once, and a later
/// membership undoes it.
async fn forgetting_is_recorded_until_the_next_membership(store: &dyn TenantStore) {
    with_rooms(store).await;
    let user = "@left:x";
    store
        .persist_event(&member_event(ROOM, user, "leave", 1))
        .await
        .unwrap();
    assert!(!store.is_forgotten(ROOM, user).await.unwrap());
    store.forget_room(ROOM, user).await.unwrap();
    store.forget_room(ROOM, user).await.unwrap();
    assert!(store.is_forgotten(ROOM, user).await.unwrap());
    assert!(!store.is_forgotten(ROOM, "@other:x").await.unwrap());
    store
        .persist_event(&member_event(ROOM, user, "join", 2))
        .await
        .unwrap();
    assert!(!store.is_forgotten(ROOM, user).await.unwrap());
}

async fn tenants_with_the_same_ids_keep_their_rooms_apart(fixture: &Fixture) {
    let store = fixture.store().await;
    with_rooms(&**store).await;
    let other = fixture
        .backend()
        .await
        .open_tenant("t0123456789abcdee")
        .await
        .unwrap();
    // The same ids in both tenants: every key is per tenant (per schema, on PostgreSQL).
    assert_eq!(other.next_state_group_id().await.unwrap(), 1);
    other
        .insert_state_group(&group(
            ROOM,
            1,
            None,
            0,
            vec![entry("m.room.create", "", "$other")],
        ))
        .await
        .unwrap();
    other.insert_room(&room(ROOM)).await.unwrap();
    store
        .persist_event(&plain(event(ROOM, "$same", 1, 1)))
        .await
        .unwrap();
    let mut theirs = event(ROOM, "$same", 1, 2);
    theirs.pdu = "{}".to_owned();
    other.persist_event(&plain(theirs.clone())).await.unwrap();
    other.reserve_stream(70).await.unwrap();
    other.insert_filter("alice", "{}").await.unwrap();

    assert_eq!(
        store
            .event("$same")
            .await
            .unwrap()
            .unwrap()
            .origin_server_ts,
        1
    );
    assert_eq!(other.event("$same").await.unwrap(), Some(theirs));
    assert_eq!(store.state_group(1).await.unwrap(), Vec::new());
    assert_eq!(
        other.state_group(1).await.unwrap(),
        vec![entry("m.room.create", "", "$other")]
    );
    assert!(store.room(OTHER_ROOM).await.unwrap().is_some());
    assert!(other.room(OTHER_ROOM).await.unwrap().is_none());
    assert_eq!(store.stream_reserved().await.unwrap(), 1);
    assert_eq!(other.stream_reserved().await.unwrap(), 70);
    assert_eq!(store.filter("alice", "0").await.unwrap(), None);
    assert_eq!(store.insert_filter("alice", "{}").await.unwrap(), "0");
}
