//! `AdminStore` on both backends: blocked rooms, admin tasks and their filters, the room list
//! helpers, and the purges: a purged room leaves no row in any table of the tenant database
//! (every table is read generically, through the export), and a history purge removes only
//! what it may.

use std::collections::{BTreeMap, BTreeSet};

use maas_store::{
    AccountDataRecord, AdminTaskFilter, AdminTaskRecord, AliasRecord, BackupKeyRecord,
    BlockedRoomRecord, EventBatch, EventRecord, HistoryPurge, NewEvent, OutboundPduRecord,
    OutlierRecord, PartialStateRecord, ReceiptRecord, RoomPushActionRecord, StoreError, TableRows,
    TenantStore,
};
use serde_json::Value;

mod support;
use support::{
    Bind, Fixture, action, entry, event, group, member_event, on_both_backends, plain, room, user,
};

on_both_backends!(rooms_are_blocked_and_unblocked);
on_both_backends!(admin_tasks_are_kept_filtered_and_pruned);
on_both_backends!(the_room_list_and_extremities);
on_both_backends!(a_purged_room_leaves_no_row_in_any_table);
on_both_backends!(a_history_purge_keeps_state_extremities_and_local_events);

/// The room purged in the purge cases, and the one that must stay whole. Their event ids start
/// with `$p-` and `$k-`, so that a row naming one of them is found by its text.
const PURGED: &str = "!purged:example.org";
const KEPT: &str = "!kept:example.org";

/// Tables the admin's own records about a room live in: they outlive its purge.
const OUTLIVING: [&str; 3] = ["blocked_rooms", "admin_tasks", "reports"];

/// Tables whose rows name a room by a `room_id` column, each cleared by the purge. A new table
/// with such a column fails `a_purged_room_leaves_no_row_in_any_table` until the purge (and
/// this list) takes it into account.
const ROOM_ID_TABLES: [&str; 17] = [
    "rooms",
    "state_groups",
    "events",
    "outliers",
    "partial_state_rooms",
    "forward_extremities",
    "room_memberships",
    "forgotten_rooms",
    "room_aliases",
    "account_data",
    "receipts",
    "event_push_actions",
    "room_push_actions",
    "backup_keys",
    "server_notice_rooms",
    "blocked_rooms",
    "reports",
];

async fn rooms_are_blocked_and_unblocked(store: &dyn TenantStore) {
    assert_eq!(store.blocked_room(PURGED).await.unwrap(), None);
    let block = |user_id: &str, ts: i64| BlockedRoomRecord {
        room_id: PURGED.to_owned(),
        user_id: user_id.to_owned(),
        blocked_ts: ts,
    };
    // A room unknown here can be blocked; blocking again records the new admin.
    store
        .block_room(&block("@admin:example.org", 1))
        .await
        .unwrap();
    store
        .block_room(&block("@other:example.org", 2))
        .await
        .unwrap();
    assert_eq!(
        store.blocked_room(PURGED).await.unwrap(),
        Some(block("@other:example.org", 2))
    );
    assert_eq!(store.blocked_room(KEPT).await.unwrap(), None);
    assert!(store.unblock_room(PURGED).await.unwrap());
    assert!(!store.unblock_room(PURGED).await.unwrap());
    assert_eq!(store.blocked_room(PURGED).await.unwrap(), None);
}

fn task(id: &str, action: &str, resource: &str, status: &str, ts: i64) -> AdminTaskRecord {
    AdminTaskRecord {
        task_id: id.to_owned(),
        action: action.to_owned(),
        resource_id: resource.to_owned(),
        status: status.to_owned(),
        params: r#"{"purge":true}"#.to_owned(),
        result: None,
        error: None,
        created_ts: ts,
        updated_ts: ts,
    }
}

async fn task_ids(store: &dyn TenantStore, filter: AdminTaskFilter) -> Vec<String> {
    let tasks = store.admin_tasks(&filter).await.unwrap();
    tasks.into_iter().map(|t| t.task_id).collect()
}

async fn admin_tasks_are_kept_filtered_and_pruned(store: &dyn TenantStore) {
    let tasks = [
        task("t1", "purge_room", PURGED, "complete", 10),
        task("t2", "shutdown_and_purge_room", PURGED, "active", 20),
        task("t3", "purge_history", KEPT, "failed", 30),
        task("t4", "purge_room", KEPT, "scheduled", 40),
    ];
    for t in &tasks {
        store.insert_admin_task(t).await.unwrap();
    }
    let taken = store.insert_admin_task(&tasks[0]).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(
        store.admin_task("t3").await.unwrap(),
        Some(tasks[2].clone())
    );
    assert_eq!(store.admin_task("nope").await.unwrap(), None);

    // Oldest first; every filter alone and together.
    let all = AdminTaskFilter::default();
    assert_eq!(task_ids(store, all.clone()).await, ["t1", "t2", "t3", "t4"]);
    let by_action = AdminTaskFilter {
        actions: vec!["purge_room".into(), "shutdown_and_purge_room".into()],
        ..all.clone()
    };
    assert_eq!(task_ids(store, by_action.clone()).await, ["t1", "t2", "t4"]);
    let of_room = AdminTaskFilter {
        resource_id: Some(KEPT.into()),
        ..all.clone()
    };
    assert_eq!(task_ids(store, of_room).await, ["t3", "t4"]);
    let unfinished = AdminTaskFilter {
        statuses: vec!["scheduled".into(), "active".into()],
        ..by_action
    };
    assert_eq!(task_ids(store, unfinished).await, ["t2", "t4"]);
    let older = AdminTaskFilter {
        max_timestamp: Some(30),
        ..all.clone()
    };
    assert_eq!(task_ids(store, older).await, ["t1", "t2", "t3"]);

    // An update replaces the status, result and error.
    let mut done = tasks[1].clone();
    done.status = "failed".into();
    done.result = Some(r#"{"kicked_users":[]}"#.into());
    done.error = Some("Users are still joined to this room".into());
    done.updated_ts = 50;
    store.update_admin_task(&done).await.unwrap();
    assert_eq!(store.admin_task("t2").await.unwrap(), Some(done));
    let missing = store
        .update_admin_task(&task("t9", "x", KEPT, "active", 1))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    // Only tasks that ended before the time go.
    assert_eq!(store.prune_admin_tasks(35).await.unwrap(), 2);
    assert_eq!(task_ids(store, all).await, ["t2", "t4"]);
}

async fn the_room_list_and_extremities(store: &dyn TenantStore) {
    assert!(store.all_rooms().await.unwrap().is_empty());
    fill_room(store, KEPT, "k").await;
    fill_room(store, PURGED, "p").await;
    let rooms: Vec<String> = store
        .all_rooms()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.room_id)
        .collect();
    assert_eq!(rooms, [KEPT, PURGED]);

    // One PDU of each room is queued for another server.
    assert_eq!(store.outbound_pdus_of_room(PURGED).await.unwrap(), 1);
    assert_eq!(store.outbound_pdus_of_room("!none:x").await.unwrap(), 0);

    let mut extremities = store.forward_extremities(PURGED).await.unwrap();
    extremities.sort();
    assert_eq!(extremities, ["$p-fork", "$p-last"]);
    assert_eq!(
        store
            .delete_forward_extremities(PURGED, "$p-last")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.forward_extremities(PURGED).await.unwrap(),
        ["$p-last"]
    );
    let mut kept = store.forward_extremities(KEPT).await.unwrap();
    kept.sort();
    assert_eq!(kept, ["$k-fork", "$k-last"]);
}

async fn a_purged_room_leaves_no_row_in_any_table(fixture: &Fixture) {
    let store = &**fixture.store().await;
    store.insert_user(&user("alice"), None).await.unwrap();
    let version = store
        .create_backup_version("alice", "m.megolm_backup.v1", "{}")
        .await
        .unwrap();
    fill_room(store, KEPT, "k").await;
    fill_room(store, PURGED, "p").await;
    for (room_id, prefix) in [(KEPT, "k"), (PURGED, "p")] {
        let key = BackupKeyRecord {
            room_id: room_id.to_owned(),
            session_id: format!("${prefix}-session"),
            first_message_index: 0,
            forwarded_count: 0,
            is_verified: false,
            session_data_json: "{}".to_owned(),
        };
        store
            .put_backup_keys("alice", &version, &[key])
            .await
            .unwrap();
    }
    // What only other helpers' code writes, planted by hand.
    let mut raw = fixture.raw().await;
    for (localpart, room_id) in [("alice", KEPT), ("bob", PURGED)] {
        raw.execute(
            "INSERT INTO server_notice_rooms (localpart, room_id) VALUES ($1, $2)",
            &[Bind::from(localpart), Bind::from(room_id)],
        )
        .await;
    }
    raw.execute(
        "INSERT INTO reports (received_ts, kind, room_id, event_id, reporter) \
         VALUES (1, 'event', $1, '$p-msg1', '@alice:example.org')",
        &[Bind::from(PURGED)],
    )
    .await;
    store
        .block_room(&BlockedRoomRecord {
            room_id: PURGED.to_owned(),
            user_id: "@admin:example.org".to_owned(),
            blocked_ts: 1,
        })
        .await
        .unwrap();
    store
        .insert_admin_task(&task("t1", "purge_room", PURGED, "active", 1))
        .await
        .unwrap();

    let before = export(store).await;
    assert_room_tables_are_known(&before);
    let purged_before = mentions(&before, "!purged", "$p-");
    // The fixture fills every table the purge must clear.
    for table in [
        "rooms",
        "state_groups",
        "state_group_entries",
        "events",
        "outliers",
        "partial_state_rooms",
        "forward_extremities",
        "room_memberships",
        "forgotten_rooms",
        "room_aliases",
        "account_data",
        "receipts",
        "event_push_actions",
        "room_push_actions",
        "federation_outbox",
        "backup_keys",
        "server_notice_rooms",
    ] {
        assert!(
            purged_before.contains_key(table),
            "{table} has no row of the room"
        );
    }
    let kept_before = mentions(&before, "!kept", "$k-");

    let mut removed = store.purge_room(PURGED).await.unwrap();
    removed.sort();
    assert_eq!(
        removed,
        [
            "$p-create",
            "$p-fork",
            "$p-last",
            "$p-member",
            "$p-msg1",
            "$p-msg2",
            "$p-outlier"
        ]
    );

    let after = export(store).await;
    let left: BTreeSet<&str> = mentions(&after, "!purged", "$p-")
        .into_keys()
        .filter(|t| !OUTLIVING.contains(t))
        .collect();
    assert!(
        left.is_empty(),
        "rows of the purged room remain in {left:?}"
    );
    for table in OUTLIVING {
        assert_eq!(
            mentions(&after, "!purged", "$p-").get(table),
            purged_before.get(table),
            "{table}"
        );
    }
    // The other room is whole, row for row, and its state still reads.
    assert_eq!(mentions(&after, "!kept", "$k-"), kept_before);
    assert_eq!(
        store.state_group(22).await.unwrap().len(),
        2,
        "the kept room's state"
    );
    assert!(store.room(PURGED).await.unwrap().is_none());
    assert!(store.event("$p-msg1").await.unwrap().is_none());
    // Purging a room that is gone is harmless.
    assert!(store.purge_room(PURGED).await.unwrap().is_empty());
}

async fn a_history_purge_keeps_state_extremities_and_local_events(store: &dyn TenantStore) {
    fill_room(store, KEPT, "k").await;
    fill_room(store, PURGED, "p").await;
    // A remote user's message deeper in the room, and one of ours.
    let mut remote = event(PURGED, "$p-remote", 20, 200);
    remote.depth = 3;
    remote.sender = "@eve:remote.example".to_owned();
    remote.state_before = 11;
    remote.state_after = 11;
    let mut local_old = event(PURGED, "$p-local", 21, 210);
    local_old.depth = 3;
    local_old.state_before = 11;
    local_old.state_after = 11;
    store
        .insert_backfilled(&[remote.clone(), local_old.clone()])
        .await
        .unwrap();

    // Up to depth 5, keeping our users' events: only the remote message goes.
    let keep_local = HistoryPurge {
        room_id: PURGED.to_owned(),
        before_depth: 5,
        keep_local_of: Some("example.org".to_owned()),
    };
    assert_eq!(
        store.purge_history(&keep_local).await.unwrap(),
        ["$p-remote"]
    );
    assert!(store.event("$p-local").await.unwrap().is_some());
    assert!(store.event("$p-msg1").await.unwrap().is_some());

    // Everything before depth 100 but state and the extremities: the messages go, with their
    // notifications and queued PDUs; the fork's own state group goes with it.
    let all = HistoryPurge {
        keep_local_of: None,
        before_depth: 100,
        ..keep_local
    };
    let mut removed = store.purge_history(&all).await.unwrap();
    removed.sort();
    assert_eq!(removed, ["$p-local", "$p-msg1", "$p-msg2"]);
    for kept in ["$p-create", "$p-member", "$p-fork", "$p-last", "$p-outlier"] {
        assert!(store.event(kept).await.unwrap().is_some(), "{kept}");
    }
    assert_eq!(store.outbound_pdus_of_room(PURGED).await.unwrap(), 0);
    // Group 13 (the state before the purged message) went; the groups the kept events and the
    // room name stayed, with the snapshot their deltas need.
    assert!(store.state_group(13).await.is_err());
    assert_eq!(store.state_group(11).await.unwrap().len(), 2);
    assert_eq!(store.state_group(10).await.unwrap().len(), 1);
    // The other room lost nothing.
    assert!(store.event("$k-msg1").await.unwrap().is_some());
    assert_eq!(store.outbound_pdus_of_room(KEPT).await.unwrap(), 1);
    assert!(store.state_group(23).await.is_ok());
}

/// A room with a row in every table a room's data goes to. Its state groups are 10 (a
/// snapshot: the create event), 11 (a delta on it: the member), 12 (a snapshot of both, the
/// room's state) and 13 (a delta on 11, before the second message); the kept room's are the
/// same plus 10 (20, 21, …), its stream positions the same plus 100.
async fn fill_room(store: &dyn TenantStore, room_id: &str, prefix: &str) {
    let base = if prefix == "k" { 20 } else { 10 };
    let id = |name: &str| format!("${prefix}-{name}");
    let stream = |n: i64| if prefix == "k" { 100 + n } else { n };
    let alice = "@alice:example.org";
    let create_entry = entry("m.room.create", "", &id("create"));
    let member_entry = entry("m.room.member", alice, &id("member"));

    let mut record = room(room_id);
    record.state_group = base + 2;

    let mut create = event(room_id, &id("create"), stream(1), 10);
    create.event_type = "m.room.create".to_owned();
    create.state_key = Some(String::new());
    create.depth = 1;
    create.state_before = base;
    create.state_after = base;
    let mut member = member_event(room_id, alice, "join", stream(2));
    member.extremities = Vec::new();
    member.event.event_id = id("member");
    member.event.depth = 2;
    member.event.state_before = base;
    member.event.state_after = base + 1;
    if let Some(m) = member.membership.as_mut() {
        m.event_id = id("member");
    }
    let mut msg1 = event(room_id, &id("msg1"), stream(3), 30);
    msg1.depth = 3;
    msg1.state_before = base + 1;
    msg1.state_after = base + 1;
    let mut msg2 = event(room_id, &id("msg2"), stream(4), 40);
    msg2.depth = 4;
    msg2.state_before = base + 3;
    msg2.state_after = base + 3;
    let mut fork = event(room_id, &id("fork"), stream(5), 50);
    fork.depth = 4;
    fork.state_before = base + 1;
    fork.state_after = base + 1;
    let mut last = event(room_id, &id("last"), stream(6), 60);
    last.depth = 5;
    last.state_before = base + 2;
    last.state_after = base + 2;

    let with_extremities = |event: EventRecord, extremities: &[&str]| NewEvent {
        extremities: extremities.iter().map(|e| (*e).to_owned()).collect(),
        room_state_group: base + 2,
        ..plain(event)
    };
    let batch = EventBatch {
        state_groups: vec![
            group(room_id, base, None, 0, vec![create_entry.clone()]),
            group(room_id, base + 1, Some(base), 1, vec![member_entry.clone()]),
            group(room_id, base + 2, None, 0, vec![create_entry, member_entry]),
            group(room_id, base + 3, Some(base + 1), 2, Vec::new()),
        ],
        rooms: vec![record],
        outliers: vec![OutlierRecord {
            event_id: id("outlier"),
            room_id: room_id.to_owned(),
            depth: 1,
            event_type: "m.room.power_levels".to_owned(),
            state_key: Some(String::new()),
            sender: alice.to_owned(),
            origin_server_ts: 5,
            pdu: "{}".to_owned(),
        }],
        memberships: Vec::new(),
        events: vec![
            with_extremities(create, &[]),
            NewEvent {
                room_state_group: base + 2,
                ..member
            },
            with_extremities(msg1, &[]),
            with_extremities(msg2, &[]),
            with_extremities(fork, &[]),
            with_extremities(last, &[&id("last"), &id("fork")]),
        ],
        push_actions: vec![{
            let mut a = action(room_id, "@bob:example.org", stream(3), false);
            a.event_id = id("msg1");
            a
        }],
        room_push_actions: vec![RoomPushActionRecord {
            room_id: room_id.to_owned(),
            event_id: id("msg2"),
            stream: stream(4),
            sender: alice.to_owned(),
            thread_id: None,
        }],
        outbound_pdus: vec![OutboundPduRecord {
            destination: "remote.example".to_owned(),
            stream: stream(3),
            event_id: id("msg1"),
        }],
        partial_states: vec![PartialStateRecord {
            room_id: room_id.to_owned(),
            join_event_id: id("member"),
            state_group: base + 1,
            servers: vec!["remote.example".to_owned()],
        }],
    };
    store.persist_events(&batch).await.unwrap();
    store
        .forget_room(room_id, "@carol:example.org")
        .await
        .unwrap();
    store
        .insert_alias(&AliasRecord {
            alias: format!("#{prefix}:example.org"),
            room_id: room_id.to_owned(),
            creator: alice.to_owned(),
        })
        .await
        .unwrap();
    store
        .set_account_data(&AccountDataRecord {
            localpart: "alice".to_owned(),
            room_id: Some(room_id.to_owned()),
            data_type: "m.tag".to_owned(),
            content: "{}".to_owned(),
            stream: stream(7),
        })
        .await
        .unwrap();
    store
        .set_receipt(&ReceiptRecord {
            room_id: room_id.to_owned(),
            user_id: alice.to_owned(),
            receipt_type: "m.read".to_owned(),
            thread_id: None,
            event_id: id("msg2"),
            ts: 1,
            stream: stream(8),
        })
        .await
        .unwrap();
}

/// Every table of the tenant database, read through the export.
async fn export(store: &dyn TenantStore) -> Vec<TableRows> {
    let mut chunks: Vec<TableRows> = Vec::new();
    store.export_tables(&mut chunks).await.unwrap();
    chunks
}

/// Per table, the rows (as JSON text) with a value that names `room` (a prefix of its id) or
/// an event id starting with `event_prefix`.
fn mentions<'a>(
    tables: &'a [TableRows],
    room: &str,
    event_prefix: &str,
) -> BTreeMap<&'a str, Vec<String>> {
    let mut found: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for chunk in tables {
        for row in &chunk.rows {
            let named = row.iter().any(|value| match value {
                Value::String(text) => text.contains(room) || text.contains(event_prefix),
                _ => false,
            });
            if named {
                let text = serde_json::to_string(row).unwrap();
                found.entry(chunk.table.as_str()).or_default().push(text);
            }
        }
    }
    for rows in found.values_mut() {
        rows.sort();
    }
    found
}

/// Every table with a `room_id` column is one the purge knows.
fn assert_room_tables_are_known(tables: &[TableRows]) {
    let with_room_id: BTreeSet<&str> = tables
        .iter()
        .filter(|chunk| chunk.columns.iter().any(|c| c == "room_id"))
        .map(|chunk| chunk.table.as_str())
        .collect();
    let known: BTreeSet<&str> = ROOM_ID_TABLES.into_iter().collect();
    assert_eq!(
        with_room_id, known,
        "a table names rooms: the room purge must clear it (or keep it on purpose)"
    );
}
