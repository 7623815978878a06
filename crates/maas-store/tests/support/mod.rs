//! What the store tests share: a fixture per backend (SQLite in a temporary directory,
//! PostgreSQL on a database of its own, dropped when the test ends), raw connections for what
//! the traits can't do, the record builders, and `on_both_backends!`, which runs a case on both.

// Every test binary compiles this module and uses its own part of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use maas_store::postgres::{PostgresBackend, PostgresOptions};
use maas_store::sqlite::{SqliteBackend, SqliteOptions};
use maas_store::{
    AccessTokenRecord, Backend, DeviceRecord, EventRecord, MembershipRecord, NewEvent,
    NewStateGroup, PushActionRecord, ReceiptRecord, RegistrationTokenRecord, RelationRecord,
    RoomRecord, StateEntry, StreamRange, TenantStore, UserRecord,
};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqliteConnection};

/// The server the PostgreSQL fixtures create their databases on (`.ci/run` starts it).
pub const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The tenant a case's store belongs to; generated ids look like this one.
pub const TENANT: &str = "t0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// Running one case on both backends.

/// Runs a case once on SQLite and once on PostgreSQL, each on fresh storage:
/// `on_both_backends!(case);` makes `mod case { sqlite(), postgres() }`.
///
/// The case is an `async fn case(x: X)` in the calling module, and what it receives follows
/// from `X` (see [`Given`]): `&dyn TenantStore` or `Arc<dyn TenantStore>` (the store of
/// [`TENANT`], opened for it), `&dyn Backend` (control plane, several tenants), or `&Fixture`
/// (reopening, raw connections, backends of other sizes).
///
/// `on_both_backends!(case, multi_thread);` runs it on a multi-threaded runtime, like the
/// server's, so that concurrent tasks really run side by side.
#[allow(unused_macros)] // `sqlite_only` and `postgres_only` have no case for both.
macro_rules! on_both_backends {
    ($case:ident) => {
        on_both_backends!(@each $case, [tokio::test]);
    };
    ($case:ident, multi_thread) => {
        on_both_backends!(@each $case, [tokio::test(flavor = "multi_thread", worker_threads = 4)]);
    };
    (@each $case:ident, [$test:meta]) => {
        mod $case {
            #[$test]
            async fn sqlite() {
                let fixture = $crate::support::Fixture::sqlite().await;
                $crate::support::run(&fixture, super::$case).await;
            }

            #[$test]
            async fn postgres() {
                let fixture = $crate::support::Fixture::postgres().await;
                $crate::support::run(&fixture, super::$case).await;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// What a case can ask the fixture for, by the type of its argument.
pub trait Given<'a>: Sized {
    async fn given(fixture: &'a Fixture) -> Self;
}

impl<'a> Given<'a> for &'a dyn TenantStore {
    async fn given(fixture: &'a Fixture) -> Self {
        &**fixture.store().await
    }
}

/// For cases that hand the store to spawned tasks.
impl<'a> Given<'a> for Arc<dyn TenantStore> {
    async fn given(fixture: &'a Fixture) -> Self {
        fixture.store().await.clone()
    }
}

impl<'a> Given<'a> for &'a dyn Backend {
    async fn given(fixture: &'a Fixture) -> Self {
        &**fixture.backend().await
    }
}

impl<'a> Given<'a> for &'a Fixture {
    async fn given(fixture: &'a Fixture) -> Self {
        fixture
    }
}

/// Runs `case` with what its argument asks of `fixture`.
pub async fn run<'a, T, F>(fixture: &'a Fixture, case: impl FnOnce(T) -> F)
where
    T: Given<'a>,
    F: Future<Output = ()>,
{
    case(T::given(fixture).await).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// A PostgreSQL database of one test, dropped (with whatever still connects to it) when the
/// test ends, passed or failed.
///
/// Its default collation is a natural-language one, as on many servers: it sorts "!a" before
/// "!B", byte order (SQLite's, which the PostgreSQL backend must follow) the other way round.
/// So every order a test asserts is also checked against a collation that is not byte order.
pub struct TestDb {
    name: String,
}

impl TestDb {
    pub async fn create() -> Self {
        use std::hash::BuildHasher;
        // Random per process and per call, so parallel tests and runs never share a database.
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        let name = format!("maas_test_{random:016x}");
        let mut server = PgConnection::connect(SERVER_URL)
            .await
            .expect("connect to PostgreSQL on 127.0.0.1:5432");
        server
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\" TEMPLATE template0 \
                 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )))
            .await
            .expect("create test database");
        server.close().await.expect("close");
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// A connection of its own to the database, outside any backend's pool.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url())
            .await
            .expect("raw connection")
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

/// Where a fixture's backends keep their data.
enum Storage {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

/// How many connections a backend opened by a case may hold. SQLite has a pool per tenant
/// (`per_tenant`) and one for the control plane; PostgreSQL one pool of `total` for all.
#[derive(Clone, Copy, Debug)]
pub struct Connections {
    pub total: u32,
    pub per_tenant: u32,
}

/// Fresh storage on one backend, and the backend and store a case asks for, opened on first
/// use (so that a case that wants neither finds the storage untouched).
pub struct Fixture {
    // Dropped in this order: the store and the backend before their storage.
    store: OnceLock<Arc<dyn TenantStore>>,
    backend: OnceLock<Arc<dyn Backend>>,
    storage: Storage,
}

impl Fixture {
    /// A temporary data directory.
    pub async fn sqlite() -> Self {
        Self::on(Storage::Sqlite(tempfile::tempdir().expect("tempdir")))
    }

    /// A database of its own on the local server (see [`TestDb`] for its collation).
    pub async fn postgres() -> Self {
        Self::on(Storage::Postgres(TestDb::create().await))
    }

    fn on(storage: Storage) -> Self {
        Self {
            store: OnceLock::new(),
            backend: OnceLock::new(),
            storage,
        }
    }

    /// The backend of the case, opened with the default sizes.
    pub async fn backend(&self) -> &Arc<dyn Backend> {
        if self.backend.get().is_none() {
            let opened = Arc::from(self.open_backend().await);
            // A case runs on one task: nobody can have set it since the check.
            let _ = self.backend.set(opened);
        }
        self.backend.get().expect("backend")
    }

    /// The store of [`TENANT`] on [`Fixture::backend`].
    pub async fn store(&self) -> &Arc<dyn TenantStore> {
        if self.store.get().is_none() {
            let opened = self
                .backend()
                .await
                .open_tenant(TENANT)
                .await
                .expect("open tenant");
            let _ = self.store.set(opened);
        }
        self.store.get().expect("store")
    }

    /// Another backend on the same storage: the server started again, or another node.
    pub async fn open_backend(&self) -> Box<dyn Backend> {
        match &self.storage {
            Storage::Sqlite(dir) => Box::new(
                SqliteBackend::open(dir.path())
                    .await
                    .expect("open SQLite backend"),
            ),
            Storage::Postgres(db) => Box::new(
                PostgresBackend::open(&db.url(), PostgresOptions::default())
                    .await
                    .expect("open PostgreSQL backend"),
            ),
        }
    }

    /// As [`Fixture::open_backend`], with pools of the given sizes.
    pub async fn open_backend_with(&self, connections: Connections) -> Box<dyn Backend> {
        match &self.storage {
            Storage::Sqlite(dir) => {
                let options = SqliteOptions {
                    tenant_connections: connections.per_tenant,
                    ..SqliteOptions::default()
                };
                Box::new(
                    SqliteBackend::open_with_options(dir.path(), options)
                        .await
                        .expect("open SQLite backend"),
                )
            }
            Storage::Postgres(db) => {
                let options = PostgresOptions {
                    max_connections: connections.total,
                    per_tenant_connections: connections.per_tenant,
                };
                Box::new(
                    PostgresBackend::open(&db.url(), options)
                        .await
                        .expect("open PostgreSQL backend"),
                )
            }
        }
    }

    /// A connection of its own to [`TENANT`]'s tables, outside the backend (the tenant must
    /// have been opened): table names need no schema.
    pub async fn raw(&self) -> Raw {
        match &self.storage {
            Storage::Sqlite(dir) => Raw::Sqlite(
                sqlite_connection(
                    &dir.path()
                        .join("tenants")
                        .join(TENANT)
                        .join("homeserver.db"),
                )
                .await,
            ),
            Storage::Postgres(db) => Raw::postgres(db, &format!("t_{TENANT}")).await,
        }
    }

    /// A connection of its own to the control plane's tables.
    pub async fn raw_control(&self) -> Raw {
        match &self.storage {
            Storage::Sqlite(dir) => {
                Raw::Sqlite(sqlite_connection(&dir.path().join("control.db")).await)
            }
            Storage::Postgres(db) => Raw::postgres(db, "maas_control").await,
        }
    }
}

/// A connection of its own to an SQLite database file, foreign keys enforced as the backend
/// does.
pub async fn sqlite_connection(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true),
    )
    .await
    .expect("raw connection")
}

/// A raw connection to one backend's tables, for what the traits can't do: planting rows,
/// damaging data, counting rows the traits no longer show. Statements are written once for
/// both: unqualified table names, `$1`-style placeholders (which SQLite understands too).
pub enum Raw {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// A value bound to a raw statement.
#[derive(Clone, Debug)]
pub enum Bind {
    Text(String),
    Int(i64),
}

impl From<&str> for Bind {
    fn from(text: &str) -> Self {
        Bind::Text(text.to_owned())
    }
}

impl From<String> for Bind {
    fn from(text: String) -> Self {
        Bind::Text(text)
    }
}

impl From<i64> for Bind {
    fn from(int: i64) -> Self {
        Bind::Int(int)
    }
}

impl Raw {
    /// A connection whose `search_path` is `schema`.
    async fn postgres(db: &TestDb, schema: &str) -> Self {
        let mut conn = db.connect().await;
        conn.execute(AssertSqlSafe(format!("SET search_path TO \"{schema}\"")))
            .await
            .expect("set search_path");
        Raw::Postgres(conn)
    }

    /// Runs one statement; the number of rows it changed.
    pub async fn execute(&mut self, sql: &str, binds: &[Bind]) -> u64 {
        // The statements come from the tests themselves.
        let sql = AssertSqlSafe(sql.to_owned());
        let done = match self {
            Raw::Sqlite(conn) => {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = match bind {
                        Bind::Text(text) => query.bind(text.clone()),
                        Bind::Int(int) => query.bind(*int),
                    };
                }
                query.execute(conn).await.map(|done| done.rows_affected())
            }
            Raw::Postgres(conn) => {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = match bind {
                        Bind::Text(text) => query.bind(text.clone()),
                        Bind::Int(int) => query.bind(*int),
                    };
                }
                query.execute(conn).await.map(|done| done.rows_affected())
            }
        };
        done.expect("raw statement")
    }

    /// The integer a query without parameters returns.
    pub async fn scalar(&mut self, sql: &str) -> i64 {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Sqlite(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
            Raw::Postgres(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
        }
        .expect("raw query")
    }

    pub async fn count_rows(&mut self, table: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) FROM {table}")).await
    }
}

// ---------------------------------------------------------------------------------------------
// Records.

pub fn user(localpart: &str) -> UserRecord {
    UserRecord {
        localpart: localpart.to_owned(),
        password_hash: Some("$argon2id$hash".to_owned()),
        admin: false,
        guest: false,
        deactivated: false,
        displayname: Some(format!("{localpart} display")),
        avatar_url: Some("mxc://example.org/avatar".to_owned()),
        created_ts: 2_000,
        ..UserRecord::default()
    }
}

pub fn device(localpart: &str, device_id: &str, name: Option<&str>) -> DeviceRecord {
    DeviceRecord {
        localpart: localpart.to_owned(),
        device_id: device_id.to_owned(),
        display_name: name.map(str::to_owned),
        last_seen_ts: None,
        last_seen_ip: None,
        created_ts: 3_000,
    }
}

pub fn token(hash: &str, localpart: &str, device_id: &str) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash: hash.to_owned(),
        localpart: localpart.to_owned(),
        device_id: device_id.to_owned(),
        created_ts: 4_000,
    }
}

pub fn reg_token(
    token: &str,
    uses_allowed: Option<u64>,
    expiry_time: Option<i64>,
) -> RegistrationTokenRecord {
    RegistrationTokenRecord {
        token: token.to_owned(),
        uses_allowed,
        completed: 0,
        expiry_time,
        created_ts: 5_000,
    }
}

/// A room whose state is group 0 (set `state_group` once the group exists).
pub fn room(room_id: &str) -> RoomRecord {
    RoomRecord {
        room_id: room_id.to_owned(),
        room_version: "12".to_owned(),
        creator: "@alice:example.org".to_owned(),
        created_ts: 1_000,
        published: false,
        state_group: 0,
    }
}

pub fn entry(event_type: &str, state_key: &str, event_id: &str) -> StateEntry {
    StateEntry {
        event_type: event_type.to_owned(),
        state_key: state_key.to_owned(),
        event_id: event_id.to_owned(),
    }
}

pub fn group(
    room_id: &str,
    id: i64,
    prev_group: Option<i64>,
    chain_len: u32,
    delta: Vec<StateEntry>,
) -> NewStateGroup {
    NewStateGroup {
        id,
        room_id: room_id.to_owned(),
        prev_group,
        delta,
        chain_len,
    }
}

/// A message event of `room_id` at `stream`, sent at `ts`.
pub fn event(room_id: &str, event_id: &str, stream: i64, ts: i64) -> EventRecord {
    EventRecord {
        event_id: event_id.to_owned(),
        room_id: room_id.to_owned(),
        stream,
        depth: stream,
        event_type: "m.room.message".to_owned(),
        state_key: None,
        sender: "@alice:example.org".to_owned(),
        origin_server_ts: ts,
        pdu: format!(r#"{{"content":{{"body":"{event_id}"}},"type":"m.room.message"}}"#),
        state_before: 1,
        state_after: 1,
        redacted_by: None,
        txn: None,
        relation: None,
    }
}

/// `$e<stream>`, a message event of `room_id` at `stream`, sent at `stream * 10`.
pub fn numbered_event(room_id: &str, stream: i64) -> EventRecord {
    event(room_id, &format!("$e{stream}"), stream, stream * 10)
}

/// `event` as a child of `parent` by `rel_type`.
pub fn related(mut event: EventRecord, rel_type: &str, parent: &str) -> EventRecord {
    event.relation = Some(RelationRecord {
        rel_type: rel_type.to_owned(),
        parent_event_id: parent.to_owned(),
    });
    event.pdu = format!(
        r#"{{"content":{{"m.relates_to":{{"event_id":"{parent}","rel_type":"{rel_type}"}}}}}}"#
    );
    event
}

/// Persisting `event` alone: it becomes the only extremity, the room's state stays group 1.
pub fn plain(event: EventRecord) -> NewEvent {
    NewEvent {
        extremities: vec![event.event_id.clone()],
        event,
        new_state_group: None,
        room_state_group: 1,
        membership: None,
        redaction: None,
    }
}

/// The membership `$member<stream>` sets; an invite carries stripped state.
pub fn membership(room_id: &str, user_id: &str, membership: &str, stream: i64) -> MembershipRecord {
    MembershipRecord {
        room_id: room_id.to_owned(),
        user_id: user_id.to_owned(),
        membership: membership.to_owned(),
        event_id: format!("$member{stream}"),
        stream,
        sender: user_id.to_owned(),
        stripped_state: (membership == "invite").then(|| r#"[{"type":"m.room.name"}]"#.to_owned()),
    }
}

/// A member event persisted with its membership (and no new state group).
pub fn member_event(room_id: &str, user_id: &str, value: &str, stream: i64) -> NewEvent {
    let mut ev = event(room_id, &format!("$member{stream}"), stream, stream * 10);
    ev.event_type = "m.room.member".to_owned();
    ev.state_key = Some(user_id.to_owned());
    let mut new = plain(ev);
    new.membership = Some(membership(room_id, user_id, value, stream));
    new
}

/// A notification of `user_id` about `$e<stream>`, outside any thread.
pub fn action(room_id: &str, user_id: &str, stream: i64, highlight: bool) -> PushActionRecord {
    PushActionRecord {
        room_id: room_id.to_owned(),
        user_id: user_id.to_owned(),
        event_id: format!("$e{stream}"),
        stream,
        thread_id: None,
        notify: true,
        highlight,
        replaces_room: false,
    }
}

/// `action` in the thread of `root`.
pub fn threaded(mut action: PushActionRecord, root: &str) -> PushActionRecord {
    action.thread_id = Some(root.to_owned());
    action
}

/// A receipt of `user_id` for `$e<stream>`.
pub fn receipt(
    room_id: &str,
    user_id: &str,
    kind: &str,
    thread: Option<&str>,
    stream: i64,
) -> ReceiptRecord {
    ReceiptRecord {
        room_id: room_id.to_owned(),
        user_id: user_id.to_owned(),
        receipt_type: kind.to_owned(),
        thread_id: thread.map(str::to_owned),
        event_id: format!("$e{stream}"),
        ts: 0,
        // The receipt's own position is far from its event's: counts must use the event's.
        stream: 1_000 + stream,
    }
}

pub fn range(after: i64, up_to: i64) -> StreamRange {
    StreamRange { after, up_to }
}

pub fn ids(events: &[EventRecord]) -> Vec<&str> {
    events.iter().map(|e| e.event_id.as_str()).collect()
}
