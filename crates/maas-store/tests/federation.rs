//! `FederationStore` on both backends: PDUs are queued in the transaction of their events and
//! read back per destination in stream order, in their current (redacted) form, until
//! acknowledged; received transactions keep their first answer until pruned.

use maas_store::{
    EventBatch, NewEvent, OutboundPduRecord, QueuedPdu, Redaction, RoomRecord, StoreError,
    TenantStore,
};

mod support;
use support::{Raw, event, group, numbered_event, on_both_backends, plain, room};

const ROOM: &str = "!r:example.org";
const ONE: &str = "one.example";
const TWO: &str = "two.example";

on_both_backends!(a_batch_queues_its_pdus_with_its_events);
on_both_backends!(destinations_are_those_with_queued_pdus);
on_both_backends!(queued_pdus_come_per_destination_in_stream_order);
on_both_backends!(a_redacted_event_is_queued_redacted);
on_both_backends!(acknowledged_pdus_leave_the_queue);
on_both_backends!(queued_edus_come_per_destination_until_acknowledged);
on_both_backends!(received_transactions_keep_their_first_answer);
on_both_backends!(received_transactions_are_pruned_by_age);

/// The room, its state an empty snapshot (group 1).
async fn with_room(store: &dyn TenantStore) {
    store
        .insert_state_group(&group(ROOM, 1, None, 0, Vec::new()))
        .await
        .unwrap();
    store
        .insert_room(&RoomRecord {
            state_group: 1,
            ..room(ROOM)
        })
        .await
        .unwrap();
}

/// `$e<stream>` queued for `destination`.
fn outbound(destination: &str, stream: i64) -> OutboundPduRecord {
    OutboundPduRecord {
        destination: destination.to_owned(),
        stream,
        event_id: format!("$e{stream}"),
    }
}

/// Commits `events` with `outbound_pdus` in one batch, as the committer does.
async fn commit(
    store: &dyn TenantStore,
    events: Vec<NewEvent>,
    outbound_pdus: Vec<OutboundPduRecord>,
) -> maas_store::Result<()> {
    let batch = EventBatch {
        events,
        outbound_pdus,
        ..EventBatch::default()
    };
    store.persist_events(&batch).await
}

/// Messages `$e<stream>` for each of `streams`, committed with their PDUs queued for
/// `queue`'s destinations.
async fn commit_messages(store: &dyn TenantStore, streams: &[i64], queue: &[(&str, i64)]) {
    let events = streams
        .iter()
        .map(|s| plain(numbered_event(ROOM, *s)))
        .collect();
    let pdus = queue.iter().map(|(d, s)| outbound(d, *s)).collect();
    commit(store, events, pdus).await.unwrap();
}

/// The streams of what `destination` has queued, up to `limit`.
async fn queued_streams(store: &dyn TenantStore, destination: &str, limit: u32) -> Vec<i64> {
    let queued = store.queued_pdus(destination, limit).await.unwrap();
    queued.iter().map(|p| p.stream).collect()
}

/// Destinations with queued PDUs, in byte order.
async fn destinations(store: &dyn TenantStore) -> Vec<String> {
    let mut destinations = store.outbound_destinations().await.unwrap();
    destinations.sort();
    destinations
}

async fn a_batch_queues_its_pdus_with_its_events(fixture: &support::Fixture) {
    let store: &dyn TenantStore = &**fixture.store().await;
    with_room(store).await;
    commit_messages(store, &[1, 2], &[(ONE, 1), (ONE, 2), (TWO, 2)]).await;
    let stored = store.event("$e2").await.unwrap().expect("event stored");
    assert_eq!(
        store.queued_pdus(ONE, 10).await.unwrap(),
        [
            QueuedPdu {
                stream: 1,
                event_id: "$e1".to_owned(),
                pdu: numbered_event(ROOM, 1).pdu,
            },
            QueuedPdu {
                stream: 2,
                event_id: "$e2".to_owned(),
                pdu: stored.pdu,
            },
        ]
    );
    assert_eq!(queued_streams(store, TWO, 10).await, [2]);

    // A batch whose second event reuses an id fails whole: its new event and its queue rows,
    // for a destination nothing else is queued for, are not stored.
    let failing = commit(
        store,
        vec![
            plain(numbered_event(ROOM, 3)),
            plain(event(ROOM, "$e1", 4, 40)),
        ],
        vec![outbound("three.example", 3), outbound(ONE, 4)],
    )
    .await;
    assert!(
        matches!(failing, Err(StoreError::Conflict(_))),
        "{failing:?}"
    );
    assert!(store.event("$e3").await.unwrap().is_none());
    assert_eq!(destinations(store).await, [ONE, TWO]);
    assert_eq!(queued_streams(store, ONE, 10).await, [1, 2]);
    // Not even a row the reads' join would hide.
    let mut raw: Raw = fixture.raw().await;
    assert_eq!(raw.count_rows("federation_outbox").await, 3);
}

async fn destinations_are_those_with_queued_pdus(store: &dyn TenantStore) {
    with_room(store).await;
    assert!(destinations(store).await.is_empty());
    // A batch without PDUs for other servers queues nothing.
    commit_messages(store, &[1], &[]).await;
    assert!(destinations(store).await.is_empty());
    commit_messages(store, &[2, 3], &[(TWO, 2), (ONE, 3), (TWO, 3)]).await;
    assert_eq!(destinations(store).await, [ONE, TWO]);
    store.acknowledge_pdus(TWO, 3).await.unwrap();
    assert_eq!(destinations(store).await, [ONE]);
}

async fn queued_pdus_come_per_destination_in_stream_order(store: &dyn TenantStore) {
    with_room(store).await;
    // Rows in any order within a batch, and over several batches.
    commit_messages(store, &[1, 2, 3], &[(ONE, 3), (TWO, 2), (ONE, 1)]).await;
    commit_messages(store, &[4, 5], &[(TWO, 5), (ONE, 4)]).await;
    assert_eq!(queued_streams(store, ONE, 10).await, [1, 3, 4]);
    assert_eq!(queued_streams(store, TWO, 10).await, [2, 5]);
    // The oldest first, up to the limit.
    assert_eq!(queued_streams(store, ONE, 2).await, [1, 3]);
    assert_eq!(queued_streams(store, ONE, 1).await, [1]);
    assert!(queued_streams(store, "other.example", 10).await.is_empty());
    let queued = store.queued_pdus(TWO, 10).await.unwrap();
    let ids: Vec<&str> = queued.iter().map(|p| p.event_id.as_str()).collect();
    assert_eq!(ids, ["$e2", "$e5"]);
}

async fn a_redacted_event_is_queued_redacted(store: &dyn TenantStore) {
    with_room(store).await;
    commit_messages(store, &[1, 2], &[(ONE, 1), (ONE, 2)]).await;
    let redacted_pdu = r#"{"content":{},"type":"m.room.message"}"#;
    let mut redaction = plain(numbered_event(ROOM, 3));
    redaction.redaction = Some(Redaction {
        event_id: "$e1".to_owned(),
        redacted_pdu: redacted_pdu.to_owned(),
        redacted_by: "$e3".to_owned(),
        relation: None,
    });
    commit(store, vec![redaction], vec![outbound(ONE, 3)])
        .await
        .unwrap();
    let queued = store.queued_pdus(ONE, 10).await.unwrap();
    let pdus: Vec<(&str, &str)> = queued
        .iter()
        .map(|p| (p.event_id.as_str(), p.pdu.as_str()))
        .collect();
    let e2 = numbered_event(ROOM, 2).pdu;
    let e3 = numbered_event(ROOM, 3).pdu;
    assert_eq!(
        pdus,
        [
            ("$e1", redacted_pdu),
            ("$e2", e2.as_str()),
            ("$e3", e3.as_str())
        ]
    );
}

async fn acknowledged_pdus_leave_the_queue(store: &dyn TenantStore) {
    with_room(store).await;
    commit_messages(
        store,
        &[1, 2, 3, 4],
        &[(ONE, 1), (ONE, 3), (ONE, 4), (TWO, 2), (TWO, 3)],
    )
    .await;
    store.acknowledge_pdus(ONE, 3).await.unwrap();
    assert_eq!(queued_streams(store, ONE, 10).await, [4]);
    // Another destination's queue is its own.
    assert_eq!(queued_streams(store, TWO, 10).await, [2, 3]);
    // Acknowledging again, or less, changes nothing.
    store.acknowledge_pdus(ONE, 3).await.unwrap();
    store.acknowledge_pdus(ONE, 1).await.unwrap();
    assert_eq!(queued_streams(store, ONE, 10).await, [4]);
    store.acknowledge_pdus(TWO, 2).await.unwrap();
    assert_eq!(queued_streams(store, TWO, 10).await, [3]);
    store.acknowledge_pdus(ONE, 100).await.unwrap();
    assert!(queued_streams(store, ONE, 10).await.is_empty());
    // A destination that had nothing queued.
    store.acknowledge_pdus("other.example", 100).await.unwrap();
    assert_eq!(destinations(store).await, [TWO]);
}

async fn received_transactions_keep_their_first_answer(store: &dyn TenantStore) {
    assert_eq!(store.received_transaction(ONE, "t1").await.unwrap(), None);
    let first = r#"{"pdus":{"$a":{}}}"#;
    store
        .record_received_transaction(ONE, "t1", first, 1_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .received_transaction(ONE, "t1")
            .await
            .unwrap()
            .as_deref(),
        Some(first)
    );
    // Recorded again (received twice at once): no error, and the first answer stays.
    store
        .record_received_transaction(ONE, "t1", r#"{"pdus":{}}"#, 2_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .received_transaction(ONE, "t1")
            .await
            .unwrap()
            .as_deref(),
        Some(first)
    );
    // A transaction id is its origin's: another server's is another transaction.
    assert_eq!(store.received_transaction(TWO, "t1").await.unwrap(), None);
    assert_eq!(store.received_transaction(ONE, "t2").await.unwrap(), None);
    store
        .record_received_transaction(TWO, "t1", "{}", 1_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .received_transaction(TWO, "t1")
            .await
            .unwrap()
            .as_deref(),
        Some("{}")
    );
}

async fn received_transactions_are_pruned_by_age(store: &dyn TenantStore) {
    for (txn_id, ts) in [("t100", 100), ("t200", 200), ("t300", 300)] {
        store
            .record_received_transaction(ONE, txn_id, "{}", ts)
            .await
            .unwrap();
    }
    assert_eq!(store.prune_received_transactions(100).await.unwrap(), 0);
    // Strictly older than the bound.
    assert_eq!(store.prune_received_transactions(200).await.unwrap(), 1);
    assert_eq!(store.received_transaction(ONE, "t100").await.unwrap(), None);
    assert!(
        store
            .received_transaction(ONE, "t200")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.prune_received_transactions(1_000).await.unwrap(), 2);
    assert_eq!(store.received_transaction(ONE, "t300").await.unwrap(), None);
    assert_eq!(store.prune_received_transactions(1_000).await.unwrap(), 0);
}

async fn queued_edus_come_per_destination_until_acknowledged(store: &dyn TenantStore) {
    let both = [ONE.to_owned(), TWO.to_owned()];
    store.queue_edu(&both, r#"{"edu_type":"a"}"#).await.unwrap();
    store
        .queue_edu(&[ONE.to_owned()], r#"{"edu_type":"b"}"#)
        .await
        .unwrap();
    assert_eq!(destinations(store).await, [ONE, TWO]);
    let edus = |destination: &'static str, limit: u32| async move {
        let queued = store.queued_edus(destination, limit).await.unwrap();
        let ids: Vec<i64> = queued.iter().map(|e| e.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "in queue order: {ids:?}"
        );
        (ids, queued.into_iter().map(|e| e.edu).collect::<Vec<_>>())
    };
    let (ids, bodies) = edus(ONE, 10).await;
    assert_eq!(bodies, [r#"{"edu_type":"a"}"#, r#"{"edu_type":"b"}"#]);
    assert_eq!(edus(ONE, 1).await.1.len(), 1);
    assert_eq!(edus(TWO, 10).await.1, [r#"{"edu_type":"a"}"#]);

    store.acknowledge_edus(ONE, ids[0]).await.unwrap();
    assert_eq!(edus(ONE, 10).await.0, [ids[1]]);
    store.acknowledge_edus(ONE, ids[1]).await.unwrap();
    store.acknowledge_edus(TWO, i64::MAX).await.unwrap();
    assert!(destinations(store).await.is_empty());
    // Ids are never handed out again, even once the queue was emptied.
    store
        .queue_edu(&[ONE.to_owned()], r#"{"edu_type":"c"}"#)
        .await
        .unwrap();
    let (again, _) = edus(ONE, 10).await;
    assert!(again[0] > ids[1], "{again:?} after {ids:?}");
}
