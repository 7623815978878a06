//! `SyncStore` on both backends: each batched read answers, for every room (event, group) it
//! is asked about, what the per-room reads of `RoomStore` and `PushStore` answer. Every case runs
//! on SQLite (a temporary directory) and on PostgreSQL (a database of its own per test, on the
//! local server that `.ci/run` starts).

use std::collections::HashMap;
use std::sync::Arc;

use maas_store::postgres::{PostgresBackend, PostgresOptions};
use maas_store::sqlite::SqliteBackend;
use maas_store::{
    Backend, Direction, EventBatch, EventRecord, MemberSummary, MembershipRecord, NewEvent,
    NewStateGroup, PushActionRecord, ReceiptRecord, Redaction, RelationRecord,
    RoomPushActionRecord, RoomRecord, StateEntry, StoreError, StreamRange, TenantStore,
    UnreadCounts,
};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

const ROOM_A: &str = "!a:example.org";
const ROOM_B: &str = "!b:example.org";
/// A room without events or members.
const ROOM_C: &str = "!c:example.org";
const ALICE: &str = "@alice:example.org";
/// Sorts before the lower-case ids in byte order, after them in most locales.
const ZED: &str = "@Zed:example.org";

/// The server the PostgreSQL cases create their databases on.
const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const TENANT: &str = "t0123456789abcdef";

/// A PostgreSQL database of one test, dropped when the test ends, passed or failed.
struct TestDb {
    name: String,
}

impl TestDb {
    async fn create() -> Self {
        use std::hash::BuildHasher;
        // Random per process and per call, so parallel tests and runs never share a database.
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        let name = format!("maas_test_{random:016x}");
        let mut server = PgConnection::connect(SERVER_URL)
            .await
            .expect("connect to PostgreSQL on 127.0.0.1:5432");
        server
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("create test database");
        server.close().await.expect("close");
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // The test's runtime can't block on a future from within: a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut server = PgConnection::connect(SERVER_URL).await?;
                server
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .await?;
                server.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// A tenant store and what keeps it alive.
struct Fixture {
    store: Arc<dyn TenantStore>,
    _backend: Box<dyn Backend>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDb>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path()).await.expect("open backend");
    let store = backend.open_tenant("t1").await.expect("open tenant");
    Fixture {
        store,
        _backend: Box::new(backend),
        _dir: Some(dir),
        _db: None,
    }
}

async fn postgres() -> Fixture {
    let db = TestDb::create().await;
    let backend = PostgresBackend::open(&db.url(), PostgresOptions::default())
        .await
        .expect("open backend");
    let store = backend.open_tenant(TENANT).await.expect("open tenant");
    Fixture {
        store,
        _backend: Box::new(backend),
        _dir: None,
        _db: Some(db),
    }
}

/// Runs one case on SQLite, then on PostgreSQL.
macro_rules! on_both_backends {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case(&*super::sqlite().await.store).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$case(&*super::postgres().await.store).await;
            }
        }
    };
    // On a multi-threaded runtime, like the server's: reads of many rooms leave its workers.
    ($case:ident, multi_thread) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(&*super::sqlite().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(&*super::postgres().await.store).await;
            }
        }
    };
}

on_both_backends!(latest_room_events_are_the_newest_of_each_room);
on_both_backends!(children_of_many_parents);
on_both_backends!(state_groups_resolve_each_chain);
on_both_backends!(member_summaries_count_and_pick_heroes);
on_both_backends!(unread_counts_of_many_rooms);
on_both_backends!(room_wide_notifications_count_while_joined);
on_both_backends!(users_joined_to_any_of_the_rooms);
on_both_backends!(membership_changes_in_a_range);
on_both_backends!(reads_of_many_rooms_answer_as_reads_of_one, multi_thread);

fn entry(event_type: &str, state_key: &str, event_id: &str) -> StateEntry {
    StateEntry {
        event_type: event_type.to_owned(),
        state_key: state_key.to_owned(),
        event_id: event_id.to_owned(),
    }
}

fn group(
    id: i64,
    prev_group: Option<i64>,
    chain_len: u32,
    delta: Vec<StateEntry>,
) -> NewStateGroup {
    NewStateGroup {
        id,
        room_id: ROOM_A.to_owned(),
        prev_group,
        delta,
        chain_len,
    }
}

/// A message event of `room_id` at `stream`.
fn event(room_id: &str, stream: i64) -> EventRecord {
    let event_id = format!("$e{stream}");
    EventRecord {
        pdu: format!(r#"{{"content":{{"body":"{event_id}"}},"type":"m.room.message"}}"#),
        event_id,
        room_id: room_id.to_owned(),
        stream,
        depth: stream,
        event_type: "m.room.message".to_owned(),
        state_key: None,
        sender: ALICE.to_owned(),
        origin_server_ts: stream * 10,
        state_before: 1,
        state_after: 1,
        redacted_by: None,
        txn: None,
        relation: None,
    }
}

fn related(mut event: EventRecord, rel_type: &str, parent: &str) -> EventRecord {
    event.relation = Some(RelationRecord {
        rel_type: rel_type.to_owned(),
        parent_event_id: parent.to_owned(),
    });
    event.pdu = format!(
        r#"{{"content":{{"m.relates_to":{{"event_id":"{parent}","rel_type":"{rel_type}"}}}}}}"#
    );
    event
}

fn plain(event: EventRecord) -> NewEvent {
    NewEvent {
        extremities: vec![event.event_id.clone()],
        event,
        new_state_group: None,
        room_state_group: 1,
        membership: None,
        redaction: None,
    }
}

/// A member event of `user_id` at `stream`, persisted with its membership.
fn member(room_id: &str, user_id: &str, value: &str, stream: i64) -> NewEvent {
    let mut ev = event(room_id, stream);
    ev.event_type = "m.room.member".to_owned();
    ev.state_key = Some(user_id.to_owned());
    let mut new = plain(ev);
    new.membership = Some(MembershipRecord {
        room_id: room_id.to_owned(),
        user_id: user_id.to_owned(),
        membership: value.to_owned(),
        event_id: format!("$e{stream}"),
        stream,
        sender: user_id.to_owned(),
        stripped_state: None,
    });
    new
}

/// The three rooms, sharing an empty snapshot as group 1.
async fn with_rooms(store: &dyn TenantStore) {
    store
        .insert_state_group(&group(1, None, 0, Vec::new()))
        .await
        .unwrap();
    for room_id in [ROOM_A, ROOM_B, ROOM_C] {
        store
            .insert_room(&RoomRecord {
                room_id: room_id.to_owned(),
                room_version: "12".to_owned(),
                creator: ALICE.to_owned(),
                created_ts: 1_000,
                published: false,
                state_group: 1,
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

fn ids(events: &[EventRecord]) -> Vec<&str> {
    events.iter().map(|e| e.event_id.as_str()).collect()
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
        layout.iter().map(|(r, s)| plain(event(r, *s))).collect(),
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
            plain(event(ROOM_A, 1)),
            plain(event(ROOM_A, 2)),
            plain(related(event(ROOM_A, 3), "m.replace", "$e1")),
            plain(related(event(ROOM_A, 4), "m.thread", "$e1")),
            plain(related(event(ROOM_A, 5), "m.annotation", "$e1")),
            plain(related(event(ROOM_A, 6), "m.reference", "$e2")),
            plain(related(event(ROOM_A, 7), "m.thread", "$e1")),
            // A child in another room counts too, as for `relations`.
            plain(related(event(ROOM_B, 8), "m.thread", "$e2")),
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
        .insert_state_group(&group(1, None, 0, Vec::new()))
        .await
        .unwrap();
    store
        .insert_state_group(&group(2, Some(1), 1, vec![entry("m.room.topic", "", "$t")]))
        .await
        .unwrap();
    store
        .insert_state_group(&group(
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
        .insert_state_group(&group(4, Some(3), 1, vec![entry("m.room.name", "", "$n2")]))
        .await
        .unwrap();
    store
        .insert_state_group(&group(
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
        .map(|((room, user, value), stream)| member(room, user, value, stream))
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

fn action(room_id: &str, stream: i64, thread: Option<&str>, highlight: bool) -> PushActionRecord {
    PushActionRecord {
        room_id: room_id.to_owned(),
        user_id: ALICE.to_owned(),
        event_id: format!("$e{stream}"),
        stream,
        thread_id: thread.map(str::to_owned),
        notify: true,
        highlight,
        replaces_room: false,
    }
}

fn receipt(room_id: &str, thread: Option<&str>, stream: i64) -> ReceiptRecord {
    ReceiptRecord {
        room_id: room_id.to_owned(),
        user_id: ALICE.to_owned(),
        receipt_type: "m.read".to_owned(),
        thread_id: thread.map(str::to_owned),
        event_id: format!("$e{stream}"),
        ts: 0,
        stream: 100 + stream,
    }
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
        .map(|(r, s)| plain(event(r, *s)))
        .collect(),
    )
    .await;
    store
        .insert_push_actions(&[
            action(ROOM_A, 1, None, false),
            action(ROOM_A, 2, None, true),
            action(ROOM_A, 3, None, true),
            action(ROOM_B, 4, None, false),
            action(ROOM_B, 5, Some("$e4"), true),
            action(ROOM_B, 6, Some("$e4"), false),
        ])
        .await
        .unwrap();
    // Room A is read up to its second event; in room B only the thread, up to its first reply.
    store.set_receipt(&receipt(ROOM_A, None, 2)).await.unwrap();
    store
        .set_receipt(&receipt(ROOM_B, Some("$e4"), 5))
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
    let mut ev = event(ROOM_A, stream);
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
            member(ROOM_A, ALICE, "join", 1),
            member(ROOM_A, BOB, "join", 2),
            member(ROOM_A, CAROL, "join", 3),
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
    persist(store, vec![member(ROOM_A, ALICE, "join", 6)]).await;
    commit(store, vec![room_message(7, CAROL, Some("$e4"))], vec![]).await;
    assert_eq!(unread(store, ALICE).await, (2, 0));
    assert_eq!(unread(store, BOB).await, (2, 1));
    assert_eq!(unread(store, CAROL).await, (1, 0));
    // Nobody else: a stranger, or a user who never joined, has no notifications.
    assert_eq!(unread(store, "@dave:example.org").await, (0, 0));

    // Receipts read room-wide rows as they read a user's own: by thread, and unthreaded.
    store
        .set_receipt(&receipt(ROOM_A, Some("$e4"), 7))
        .await
        .unwrap();
    assert_eq!(unread(store, ALICE).await, (1, 0));
    let mut bobs = receipt(ROOM_A, None, 5);
    bobs.user_id = BOB.to_owned();
    store.set_receipt(&bobs).await.unwrap();
    assert_eq!(unread(store, BOB).await, (1, 0));

    // Carol leaves: what notified her counts no more, nor does what is sent while she is
    // away once she is back. What comes after her return does.
    persist(store, vec![member(ROOM_A, CAROL, "leave", 8)]).await;
    assert_eq!(unread(store, CAROL).await, (0, 0));
    commit(store, vec![room_message(9, ALICE, None)], vec![]).await;
    persist(store, vec![member(ROOM_A, CAROL, "join", 10)]).await;
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
            member(ROOM_A, ALICE, "join", 1),
            member(ROOM_A, "@carol:example.org", "invite", 2),
            member(ROOM_A, "@dave:example.org", "leave", 3),
            member(ROOM_B, ZED, "join", 4),
            member(ROOM_A, ZED, "join", 5),
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
            member(ROOM_A, ALICE, "join", 1),
            member(ROOM_A, ZED, "join", 2),
            member(ROOM_B, ALICE, "join", 3),
            member(ROOM_A, "@carol:example.org", "invite", 4),
            member(ROOM_B, ZED, "join", 5),
            // Replaces Zed's join of room A: the current membership is this one.
            member(ROOM_A, ZED, "leave", 6),
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
    let room = |n: i64| format!("!many{n}:example.org");
    for n in 0..ROOMS {
        store
            .insert_room(&RoomRecord {
                room_id: room(n),
                room_version: "12".to_owned(),
                creator: ALICE.to_owned(),
                created_ts: 1_000,
                published: false,
                state_group: 1,
            })
            .await
            .unwrap();
    }
    // Room n holds Alice's join and n % 4 messages, notifying her with a highlight.
    let mut stream = 0;
    let mut events = Vec::new();
    for n in 0..ROOMS {
        stream += 1;
        events.push(member(&room(n), ALICE, "join", stream));
        for _ in 0..n % 4 {
            stream += 1;
            let mut new = plain(event(&room(n), stream));
            new.event.sender = ZED.to_owned();
            events.push(new);
        }
    }
    let up_to = stream;
    let actions: Vec<PushActionRecord> = events
        .iter()
        .filter(|new| new.event.sender == ZED)
        .map(|new| action(&new.event.room_id, new.event.stream, None, true))
        .collect();
    persist(store, events).await;
    store.insert_push_actions(&actions).await.unwrap();
    let all: Vec<String> = (0..ROOMS).chain(0..3).map(room).collect();
    let range = StreamRange { after: 0, up_to };

    let latest = store.latest_room_events(&all, range, 2).await.unwrap();
    let summaries = store.member_summaries(&all, ZED, 5).await.unwrap();
    let changes = store.membership_changes_in(&all, range).await.unwrap();
    assert_eq!(summaries.len(), ROOMS as usize, "each room once");
    assert_eq!(changes.len(), ROOMS as usize, "Alice's join of each room");
    for n in 0..ROOMS {
        let id = room(n);
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
            .unread_notification_counts(&room(n), ALICE)
            .await
            .unwrap();
        assert_eq!(
            (notifications, highlights),
            ((n % 4) as u64, (n % 4) as u64)
        );
        alone.push(UnreadCounts {
            room_id: room(n),
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
