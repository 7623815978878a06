//! `PushStore` on both backends: notifications counted per user and room, unread counts that
//! start after the user's read receipt (per thread for threaded receipts), and global account
//! data of several users at once.

use maas_store::{AccountDataRecord, TenantStore};

mod support;
use support::{
    action, group, numbered_event, on_both_backends, plain, receipt, related, room, threaded,
};

const ROOM: &str = "!room:example.org";
const OTHER_ROOM: &str = "!other:example.org";
const BOB: &str = "@bob:example.org";
const CAROL: &str = "@carol:example.org";

/// `ROOM`, whose state is an empty snapshot.
async fn with_room(store: &dyn TenantStore) {
    let group = group(
        ROOM,
        store.next_state_group_id().await.expect("group id"),
        None,
        0,
        Vec::new(),
    );
    store.insert_state_group(&group).await.expect("state group");
    let mut room = room(ROOM);
    room.state_group = group.id;
    store.insert_room(&room).await.expect("room");
}

/// `$e<stream>`, an event of `room_id` persisted at `stream` (for receipts to point at), in
/// the thread of `thread` if given.
async fn persist(store: &dyn TenantStore, room_id: &str, stream: i64, thread: Option<&str>) {
    let mut event = numbered_event(room_id, stream);
    if let Some(root) = thread {
        event = related(event, "m.thread", root);
    }
    store
        .persist_event(&plain(event))
        .await
        .expect("persist event");
}

on_both_backends!(counts_per_user_and_room);
on_both_backends!(many_actions_go_in_one_call);
on_both_backends!(unread_counts_start_after_the_read_receipt);
on_both_backends!(threaded_receipts_read_their_own_thread);
on_both_backends!(global_account_data_of_several_users);

async fn counts_per_user_and_room(store: &dyn TenantStore) {
    with_room(store).await;
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (0, 0)
    );
    store.insert_push_actions(&[]).await.unwrap();

    // The events notified about: redactions find an event's notifications through it.
    for stream in 1..=3 {
        persist(store, ROOM, stream, None).await;
    }
    store
        .insert_push_actions(&[
            action(ROOM, BOB, 1, false),
            action(ROOM, BOB, 2, true),
            action(ROOM, BOB, 3, false),
            action(ROOM, CAROL, 3, true),
            action(OTHER_ROOM, BOB, 4, true),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (3, 1)
    );
    assert_eq!(
        store.unread_notification_counts(ROOM, CAROL).await.unwrap(),
        (1, 1)
    );
    assert_eq!(
        store
            .unread_notification_counts(OTHER_ROOM, BOB)
            .await
            .unwrap(),
        (1, 1)
    );
    assert_eq!(
        store
            .unread_notification_counts(OTHER_ROOM, CAROL)
            .await
            .unwrap(),
        (0, 0)
    );

    // Inserting the same rows again (a retry) changes nothing.
    store
        .insert_push_actions(&[action(ROOM, BOB, 1, true), action(ROOM, BOB, 2, true)])
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (3, 1)
    );

    // A redacted event no longer notifies anyone.
    store.delete_push_actions("$e3").await.unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (2, 1)
    );
    assert_eq!(
        store.unread_notification_counts(ROOM, CAROL).await.unwrap(),
        (0, 0)
    );
}

async fn many_actions_go_in_one_call(store: &dyn TenantStore) {
    with_room(store).await;
    let actions: Vec<_> = (0..1_200)
        .map(|i| action(ROOM, &format!("@u{i}:example.org"), 7, i % 3 == 0))
        .collect();
    store.insert_push_actions(&actions).await.unwrap();
    assert_eq!(
        store
            .unread_notification_counts(ROOM, "@u0:example.org")
            .await
            .unwrap(),
        (1, 1)
    );
    assert_eq!(
        store
            .unread_notification_counts(ROOM, "@u1199:example.org")
            .await
            .unwrap(),
        (1, 0)
    );
}

async fn unread_counts_start_after_the_read_receipt(store: &dyn TenantStore) {
    with_room(store).await;
    for stream in 1..=5 {
        persist(store, ROOM, stream, None).await;
    }
    store
        .insert_push_actions(&[
            action(ROOM, BOB, 2, true),
            action(ROOM, BOB, 3, false),
            action(ROOM, BOB, 5, false),
            action(ROOM, CAROL, 5, true),
        ])
        .await
        .unwrap();
    // No receipt: everything is unread.
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (3, 1)
    );

    store
        .set_receipt(&receipt(ROOM, BOB, "m.read", None, 2))
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (2, 0)
    );
    // The newer of public and private receipts counts, in either order.
    store
        .set_receipt(&receipt(ROOM, BOB, "m.read.private", None, 3))
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (1, 0)
    );
    // Other receipt types don't read anything.
    store
        .set_receipt(&receipt(ROOM, BOB, "m.fully_read", None, 5))
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (1, 0)
    );
    store
        .set_receipt(&receipt(ROOM, BOB, "m.read", None, 5))
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (0, 0)
    );
    // Bob's receipts are his own.
    assert_eq!(
        store.unread_notification_counts(ROOM, CAROL).await.unwrap(),
        (1, 1)
    );

    // A receipt for an event the server doesn't have reads nothing.
    let mut unknown = receipt(ROOM, CAROL, "m.read", None, 5);
    unknown.event_id = "$unknown".to_owned();
    store.set_receipt(&unknown).await.unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, CAROL).await.unwrap(),
        (1, 1)
    );
}

async fn threaded_receipts_read_their_own_thread(store: &dyn TenantStore) {
    with_room(store).await;
    // $e1 is a thread root; 2 and 4 are in its thread, 3 and 5 in the main timeline.
    persist(store, ROOM, 1, None).await;
    persist(store, ROOM, 2, Some("$e1")).await;
    persist(store, ROOM, 3, None).await;
    persist(store, ROOM, 4, Some("$e1")).await;
    persist(store, ROOM, 5, None).await;
    store
        .insert_push_actions(&[
            action(ROOM, BOB, 1, false),
            threaded(action(ROOM, BOB, 2, false), "$e1"),
            action(ROOM, BOB, 3, true),
            threaded(action(ROOM, BOB, 4, true), "$e1"),
            action(ROOM, BOB, 5, false),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (5, 2)
    );

    // Reading the thread up to its end leaves the main timeline unread.
    store
        .set_receipt(&receipt(ROOM, BOB, "m.read", Some("$e1"), 4))
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (3, 1)
    );
    // Reading the main timeline up to $e3 leaves $e5.
    store
        .set_receipt(&receipt(ROOM, BOB, "m.read", Some("main"), 3))
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (1, 0)
    );
    // An unthreaded receipt reads everything up to its event, in every thread.
    store
        .insert_push_actions(&[threaded(action(ROOM, BOB, 6, true), "$e1")])
        .await
        .unwrap();
    persist(store, ROOM, 6, Some("$e1")).await;
    store
        .set_receipt(&receipt(ROOM, BOB, "m.read", None, 5))
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (1, 1)
    );
    store
        .set_receipt(&receipt(ROOM, BOB, "m.read", None, 6))
        .await
        .unwrap();
    assert_eq!(
        store.unread_notification_counts(ROOM, BOB).await.unwrap(),
        (0, 0)
    );
}

async fn global_account_data_of_several_users(store: &dyn TenantStore) {
    with_room(store).await;
    let data =
        |localpart: &str, room_id: Option<&str>, data_type: &str, stream| AccountDataRecord {
            localpart: localpart.to_owned(),
            room_id: room_id.map(str::to_owned),
            data_type: data_type.to_owned(),
            content: format!(r#"{{"owner":"{localpart}"}}"#),
            stream,
        };
    store
        .set_account_data(&data("bob", None, "m.push_rules", 1))
        .await
        .unwrap();
    store
        .set_account_data(&data("carol", None, "m.push_rules", 2))
        .await
        .unwrap();
    store
        .set_account_data(&data("carol", None, "m.other", 3))
        .await
        .unwrap();
    store
        .set_account_data(&data("dave", Some(ROOM), "m.push_rules", 4))
        .await
        .unwrap();

    let users: Vec<String> = ["bob", "carol", "dave", "erin"].map(str::to_owned).to_vec();
    let mut found = store
        .global_account_data_of(&users, "m.push_rules")
        .await
        .unwrap();
    found.sort_by(|a, b| a.localpart.cmp(&b.localpart));
    assert_eq!(
        found,
        vec![
            data("bob", None, "m.push_rules", 1),
            data("carol", None, "m.push_rules", 2)
        ]
    );
    assert!(
        store
            .global_account_data_of(&[], "m.push_rules")
            .await
            .unwrap()
            .is_empty()
    );
}
