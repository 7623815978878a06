//! Rooms joined with partial state on both backends: the record is stored with the join's
//! batch and listed until the room is completed; completing adds the omitted entries to the
//! room's snapshots from the join on (deltas read through them), never to older snapshots,
//! another room's, or a key an event after the join set, and stores their events and
//! memberships without overwriting newer ones.

use maas_store::{
    EventBatch, MembershipRecord, OutlierRecord, PartialStateCompletion, PartialStateRecord,
    RoomRecord, StateEntry, TenantStore,
};

mod support;
use support::{entry, group, membership, on_both_backends, room};

const ROOM: &str = "!r:example.org";
const OTHER: &str = "!other:example.org";
const ME: &str = "@me:here.example";
const ALICE: &str = "@alice:there.example";
const CAROL: &str = "@carol:there.example";

on_both_backends!(a_partial_join_is_listed_until_completed);
on_both_backends!(completing_adds_the_omitted_state_from_the_join_on);
on_both_backends!(completing_keeps_newer_memberships_and_announces_ours);

fn record() -> PartialStateRecord {
    PartialStateRecord {
        room_id: ROOM.to_owned(),
        join_event_id: "$join".to_owned(),
        state_group: 2,
        servers: vec!["there.example".to_owned(), "third.example".to_owned()],
    }
}

fn member(user_id: &str, event_id: &str) -> StateEntry {
    entry("m.room.member", user_id, event_id)
}

/// The room and its state groups: 1, a snapshot from before the join (a room joined again);
/// 2, the partial state the join was checked against; 3, a delta on it (our join); 4, a later
/// snapshot where carol's membership changed; 5, a delta on that. 6 is another room's.
async fn with_groups(store: &dyn TenantStore) {
    let create = entry("m.room.create", "", "$create");
    let groups = [
        group(ROOM, 1, None, 0, vec![create.clone()]),
        group(ROOM, 2, None, 0, vec![create.clone()]),
        group(ROOM, 3, Some(2), 1, vec![member(ME, "$join")]),
        group(
            ROOM,
            4,
            None,
            0,
            vec![create, member(ME, "$join"), member(CAROL, "$carol-left")],
        ),
        group(
            ROOM,
            5,
            Some(4),
            1,
            vec![entry("m.room.topic", "", "$topic")],
        ),
        group(OTHER, 6, None, 0, vec![entry("m.room.create", "", "$x")]),
    ];
    for group in &groups {
        store.insert_state_group(group).await.unwrap();
    }
    for (room_id, state_group) in [(ROOM, 5), (OTHER, 6)] {
        store
            .insert_room(&RoomRecord {
                state_group,
                ..room(room_id)
            })
            .await
            .unwrap();
    }
}

fn outlier(event_id: &str, user_id: &str) -> OutlierRecord {
    OutlierRecord {
        event_id: event_id.to_owned(),
        room_id: ROOM.to_owned(),
        depth: 3,
        event_type: "m.room.member".to_owned(),
        state_key: Some(user_id.to_owned()),
        sender: user_id.to_owned(),
        origin_server_ts: 30,
        pdu: format!(r#"{{"state_key":"{user_id}","type":"m.room.member"}}"#),
    }
}

fn joined(user_id: &str, event_id: &str) -> MembershipRecord {
    MembershipRecord {
        event_id: event_id.to_owned(),
        ..membership(ROOM, user_id, "join", 0)
    }
}

/// Alice's and carol's joins, omitted from the partial state; carol has left since.
fn completion() -> PartialStateCompletion {
    PartialStateCompletion {
        room_id: ROOM.to_owned(),
        since_group: 2,
        entries: vec![member(ALICE, "$alice"), member(CAROL, "$carol")],
        outliers: vec![outlier("$alice", ALICE), outlier("$carol", CAROL)],
        memberships: vec![joined(ALICE, "$alice"), joined(CAROL, "$carol")],
        announce: vec![ME.to_owned()],
        announce_stream: 9,
    }
}

/// The entries of a group as (type, state key, event id), sorted.
async fn state(store: &dyn TenantStore, group: i64) -> Vec<(String, String, String)> {
    let mut entries: Vec<_> = store
        .state_group(group)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.state_key, e.event_id))
        .collect();
    entries.sort();
    entries
}

fn members_in(entries: &[(String, String, String)]) -> Vec<(&str, &str)> {
    entries
        .iter()
        .filter(|(kind, _, _)| kind == "m.room.member")
        .map(|(_, key, id)| (key.as_str(), id.as_str()))
        .collect()
}

async fn a_partial_join_is_listed_until_completed(store: &dyn TenantStore) {
    with_groups(store).await;
    assert!(store.partial_state_rooms().await.unwrap().is_empty());
    let batch = EventBatch {
        partial_states: vec![record()],
        ..EventBatch::default()
    };
    store.persist_events(&batch).await.unwrap();
    assert_eq!(store.partial_state_rooms().await.unwrap(), [record()]);

    store.complete_partial_state(&completion()).await.unwrap();
    assert!(store.partial_state_rooms().await.unwrap().is_empty());
}

async fn completing_adds_the_omitted_state_from_the_join_on(store: &dyn TenantStore) {
    with_groups(store).await;
    let before_join = state(store, 1).await;
    let other_room = state(store, 6).await;
    store.complete_partial_state(&completion()).await.unwrap();

    assert_eq!(
        members_in(&state(store, 2).await),
        [(ALICE, "$alice"), (CAROL, "$carol")]
    );
    assert_eq!(
        members_in(&state(store, 3).await),
        [(ALICE, "$alice"), (CAROL, "$carol"), (ME, "$join")]
    );
    // Carol's leave after the join stays; the delta on the snapshot reads alice through it.
    let later = state(store, 5).await;
    assert_eq!(
        members_in(&later),
        [(ALICE, "$alice"), (CAROL, "$carol-left"), (ME, "$join")]
    );
    assert!(later.iter().any(|(kind, _, _)| kind == "m.room.topic"));
    assert_eq!(state(store, 1).await, before_join);
    assert_eq!(state(store, 6).await, other_room);

    let stored = store
        .event("$alice")
        .await
        .unwrap()
        .expect("outlier stored");
    assert_eq!(
        (stored.stream, stored.state_key.as_deref()),
        (0, Some(ALICE))
    );
}

async fn completing_keeps_newer_memberships_and_announces_ours(store: &dyn TenantStore) {
    with_groups(store).await;
    let batch = EventBatch {
        memberships: vec![
            MembershipRecord {
                event_id: "$carol-left".to_owned(),
                ..membership(ROOM, CAROL, "leave", 7)
            },
            joined(ME, "$join"),
        ],
        ..EventBatch::default()
    };
    store.persist_events(&batch).await.unwrap();
    let mut completion = completion();
    completion.memberships[0].stream = 9;
    completion.memberships[1].stream = 9;
    store.complete_partial_state(&completion).await.unwrap();

    let of = |user: &'static str| async move {
        let m = store.membership(ROOM, user).await.unwrap().expect(user);
        (m.membership, m.event_id, m.stream)
    };
    assert_eq!(of(ALICE).await, ("join".into(), "$alice".into(), 9));
    assert_eq!(of(CAROL).await, ("leave".into(), "$carol-left".into(), 7));
    assert_eq!(of(ME).await, ("join".into(), "$join".into(), 9));

    // Completing again (a retry after a crash) changes nothing more.
    store.complete_partial_state(&completion).await.unwrap();
    assert_eq!(of(CAROL).await, ("leave".into(), "$carol-left".into(), 7));
    assert_eq!(members_in(&state(store, 2).await).len(), 2);
}
