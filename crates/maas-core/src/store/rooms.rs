//! What a tenant stores of its rooms: the event DAG (full PDUs), compact state (state groups
//! stored as deltas against a base group), current memberships, aliases and the public
//! directory, and per-user room data (account data, receipts, filters). Every change that sync
//! must see carries a position in the tenant's single stream.

use async_trait::async_trait;

use super::Result;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRecord {
    pub room_id: String,
    pub room_version: String,
    pub creator: String,
    pub created_ts: i64,
    /// Listed in the public room directory.
    pub published: bool,
    /// The resolved state after the room's forward extremities.
    pub state_group: i64,
}

/// One persisted PDU and what the server derived from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub event_id: String,
    pub room_id: String,
    /// Position in the tenant's stream: the timeline order. 0 for an outlier (an event known
    /// but not in the timeline, see [`OutlierRecord`]), whose state groups are 0 as well.
    pub stream: i64,
    pub depth: i64,
    pub event_type: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub origin_server_ts: i64,
    /// The PDU as canonical JSON; the redacted form once redacted.
    pub pdu: String,
    /// State of the room before this event.
    pub state_before: i64,
    /// State after it: differs from `state_before` only for state events.
    pub state_after: i64,
    pub redacted_by: Option<String>,
    /// The client transaction that sent the event, for idempotent sends and for
    /// `unsigned.transaction_id` in the sender's own sync.
    pub txn: Option<TxnRecord>,
    /// `content.m.relates_to` of the event: relation type and parent event id.
    pub relation: Option<RelationRecord>,
}

/// An event of a room known here but not placed in its timeline (spec: "outlier"): the state
/// and auth chain a join over federation brings. It has no stream position and no state of
/// its own; it is read as state and as an auth event, and `event`/`events` return it (stream
/// 0) when no timeline event has its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierRecord {
    pub event_id: String,
    pub room_id: String,
    pub depth: i64,
    pub event_type: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub origin_server_ts: i64,
    pub pdu: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// A client transaction: its id is scoped to the device and the request path (spec:
/// "Transaction identifiers").
pub struct TxnRecord {
    pub localpart: String,
    pub device_id: String,
    /// The endpoint and its path parameters, as a compact JSON array such as
    /// `["send","!room:example.org","m.room.message"]`.
    pub scope: String,
    pub txn_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationRecord {
    pub rel_type: String,
    pub parent_event_id: String,
}

/// One `(event type, state key) → event id` entry of a state group. In a delta group,
/// `event_id: None` is never used: state entries are only ever added or replaced.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateEntry {
    pub event_type: String,
    pub state_key: String,
    pub event_id: String,
}

/// A user's current membership of a room, kept for fast "rooms of a user" and member lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipRecord {
    pub room_id: String,
    pub user_id: String,
    /// `join`, `invite`, `leave`, `ban` or `knock`.
    pub membership: String,
    pub event_id: String,
    /// Stream position of the membership event.
    pub stream: i64,
    pub sender: String,
    /// Stripped state shown with an invite or knock (JSON array), when there is one.
    pub stripped_state: Option<String>,
}

/// Everything that changes when one event is persisted; written atomically.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event: EventRecord,
    /// The room's forward extremities after this event (replaces the old set).
    pub extremities: Vec<String>,
    /// A new state group to create first, when the event is a state event (its id is
    /// `event.state_after`, allocated by the caller through `next_state_group_id`).
    pub new_state_group: Option<NewStateGroup>,
    /// The room's resolved state after this event.
    pub room_state_group: i64,
    /// The membership this event establishes, for `m.room.member` events.
    pub membership: Option<MembershipRecord>,
    /// For a redaction: the redacted event and its PDU with the content redacted.
    pub redaction: Option<Redaction>,
}

/// What one group commit writes.
#[derive(Clone, Debug, Default)]
pub struct EventBatch {
    /// State groups that no event of the batch brings (a new room's empty state).
    pub state_groups: Vec<NewStateGroup>,
    /// Rooms the batch's events create.
    pub rooms: Vec<RoomRecord>,
    /// Events the batch's rooms start with outside their timeline (a room joined over
    /// federation: its state and auth chain), stored before the events; ones known already
    /// are left as they are.
    pub outliers: Vec<OutlierRecord>,
    /// Memberships no event of the batch sets (a room joined over federation: its members),
    /// written before the events' own.
    pub memberships: Vec<MembershipRecord>,
    pub events: Vec<NewEvent>,
    pub push_actions: Vec<super::PushActionRecord>,
    pub room_push_actions: Vec<super::RoomPushActionRecord>,
    /// PDUs queued for other servers (their events are in this batch).
    pub outbound_pdus: Vec<super::OutboundPduRecord>,
    /// Rooms the batch joins with partial state, stored with the join.
    pub partial_states: Vec<PartialStateRecord>,
}

/// A room joined over federation with partial state (`send_join` with `omit_members`): the
/// resident server left its member events out, and they are fetched in the background.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialStateRecord {
    pub room_id: String,
    /// Our join, at which the room's whole state is fetched.
    pub join_event_id: String,
    /// The state the join was checked against: it and every later snapshot of the room's
    /// state lack the omitted members.
    pub state_group: i64,
    /// The servers in the room at the join, as the resident server listed them: events go to
    /// them until the members are known.
    pub servers: Vec<String>,
}

/// What the room's whole state adds to a partial-state room, written at once.
#[derive(Clone, Debug, Default)]
pub struct PartialStateCompletion {
    pub room_id: String,
    /// The partial state's first group ([`PartialStateRecord::state_group`]).
    pub since_group: i64,
    /// The omitted state entries: added to every snapshot of the room's state from
    /// `since_group` on that has none for their key (deltas read through their snapshots).
    pub entries: Vec<StateEntry>,
    /// Their events, stored as outliers where not known already.
    pub outliers: Vec<OutlierRecord>,
    /// Their memberships, written where the room has none for the user yet.
    pub memberships: Vec<MembershipRecord>,
    /// Members of the room whose membership moves to `announce_stream`, so that their next
    /// sync sends the room whole again (the tenant's own joined users).
    pub announce: Vec<String>,
    pub announce_stream: i64,
}

#[derive(Clone, Debug)]
pub struct NewStateGroup {
    pub id: i64,
    pub room_id: String,
    /// The group this one is a delta against; `None` for a full snapshot.
    pub prev_group: Option<i64>,
    /// Entries added or replaced relative to `prev_group` (all entries for a snapshot).
    pub delta: Vec<StateEntry>,
    /// Number of deltas between this group and its snapshot (0 for a snapshot); callers
    /// store a snapshot once it reaches their bound, so reads stay cheap.
    pub chain_len: u32,
}

#[derive(Clone, Debug)]
pub struct Redaction {
    pub event_id: String,
    pub redacted_pdu: String,
    pub redacted_by: String,
    /// The relation the redacted form still declares (room versions differ on whether
    /// `m.relates_to` survives), which replaces the event's.
    pub relation: Option<RelationRecord>,
}

pub use crate::rooms::Direction;

/// Stream positions bounding a query: `after < stream <= up_to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRange {
    pub after: i64,
    pub up_to: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasRecord {
    pub alias: String,
    pub room_id: String,
    pub creator: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDataRecord {
    pub localpart: String,
    /// `None` for global account data.
    pub room_id: Option<String>,
    pub data_type: String,
    /// The content as JSON.
    pub content: String,
    pub stream: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRecord {
    pub room_id: String,
    pub user_id: String,
    /// `m.read` or `m.read.private`.
    pub receipt_type: String,
    /// `None` for unthreaded receipts; `main` or a thread root otherwise.
    pub thread_id: Option<String>,
    pub event_id: String,
    pub ts: i64,
    pub stream: i64,
}

#[async_trait]
pub trait RoomStore: Send + Sync {
    // The stream.
    /// The highest position ever handed out or reserved; positions restart above it.
    async fn stream_reserved(&self) -> Result<i64>;
    /// Records that positions up to `up_to` may be handed out (never lowers it).
    async fn reserve_stream(&self, up_to: i64) -> Result<()>;

    // Rooms.
    /// `Conflict` when the room exists.
    async fn insert_room(&self, room: &RoomRecord) -> Result<()>;
    async fn room(&self, room_id: &str) -> Result<Option<RoomRecord>>;
    async fn set_room_published(&self, room_id: &str, published: bool) -> Result<()>;
    /// Published rooms ordered by room id, after `since` (exclusive), at most `limit`.
    async fn published_rooms(&self, since: Option<&str>, limit: u32) -> Result<Vec<RoomRecord>>;
    async fn count_published_rooms(&self) -> Result<u64>;

    // State groups.
    /// A fresh state group id, unique in the tenant.
    async fn next_state_group_id(&self) -> Result<i64> {
        self.reserve_state_groups(1).await
    }
    /// Reserves `count` (≥ 1) fresh state group ids at once and returns the last; the caller
    /// hands out the ids down to `last - count + 1` from memory.
    async fn reserve_state_groups(&self, count: i64) -> Result<i64>;
    /// Stores a group outside of an event (e.g. the state of a room's first event).
    async fn insert_state_group(&self, group: &NewStateGroup) -> Result<()>;
    /// The full state of a group, its delta chain applied; `NotFound` for an unknown group.
    async fn state_group(&self, id: i64) -> Result<Vec<StateEntry>>;
    /// `(prev_group, chain_len)` of a group.
    async fn state_group_info(&self, id: i64) -> Result<Option<(Option<i64>, u32)>>;

    // Events.
    /// Persists an event and everything that changes with it in one transaction; `Conflict`
    /// when the event id or its client transaction is already stored.
    async fn persist_event(&self, new: &NewEvent) -> Result<()> {
        let batch = EventBatch {
            events: vec![new.clone()],
            ..EventBatch::default()
        };
        self.persist_events(&batch).await
    }
    /// Persists a batch in one transaction (group commit), all or nothing: its state groups
    /// and rooms, then its events in order with everything that changes with them, then their
    /// notifications.
    async fn persist_events(&self, batch: &EventBatch) -> Result<()>;
    /// The lowest stream position of any event, at most 0: backfilled history goes below it.
    async fn lowest_stream(&self) -> Result<i64>;
    /// Rooms joined with partial state whose members are still to be fetched.
    async fn partial_state_rooms(&self) -> Result<Vec<PartialStateRecord>>;
    /// Completes a partial-state room in one transaction and forgets its partial state.
    async fn complete_partial_state(&self, completion: &PartialStateCompletion) -> Result<()>;
    /// Stores events fetched from other servers from before the room's earliest event here
    /// (their positions below every other), without touching the room's head; events known
    /// already are left as they are.
    async fn insert_backfilled(&self, events: &[EventRecord]) -> Result<()>;
    /// The event `event_id`: the timeline's, else an outlier's (stream 0).
    async fn event(&self, event_id: &str) -> Result<Option<EventRecord>>;
    /// The events among `event_ids` that exist, timeline or outliers, in no particular order.
    async fn events(&self, event_ids: &[String]) -> Result<Vec<EventRecord>>;
    async fn event_id_by_txn(&self, txn: &TxnRecord) -> Result<Option<String>>;
    async fn forward_extremities(&self, room_id: &str) -> Result<Vec<String>>;
    /// Events of a room in `range`, in `direction`, at most `limit`.
    async fn room_events(
        &self,
        room_id: &str,
        range: StreamRange,
        direction: Direction,
        limit: u32,
    ) -> Result<Vec<EventRecord>>;
    /// The last event of the room at or before `stream` (for the state at a sync position).
    async fn last_event_at(&self, room_id: &str, stream: i64) -> Result<Option<EventRecord>>;
    /// The event of the room whose `origin_server_ts` is closest to `ts` in `direction`
    /// (`Forward`: first at or after `ts`; `Backward`: last at or before).
    async fn event_by_timestamp(
        &self,
        room_id: &str,
        ts: i64,
        direction: Direction,
    ) -> Result<Option<EventRecord>>;
    /// Of `room_ids`, those with events in `range`.
    async fn rooms_with_events(
        &self,
        room_ids: &[String],
        range: StreamRange,
    ) -> Result<Vec<String>>;
    /// Children of `parent_event_id` by relation, optionally of one relation type (and one
    /// child event type), oldest first, at most `limit` after stream `from` (exclusive).
    async fn relations(
        &self,
        parent_event_id: &str,
        rel_type: Option<&str>,
        event_type: Option<&str>,
        direction: Direction,
        from: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EventRecord>>;
    /// Thread roots of a room (events with at least one `m.thread` child), newest first.
    async fn thread_roots(
        &self,
        room_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EventRecord>>;

    // Memberships.
    async fn membership(&self, room_id: &str, user_id: &str) -> Result<Option<MembershipRecord>>;
    /// All current memberships of a user (any membership value).
    async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MembershipRecord>>;
    /// Memberships of a user whose event is in `range`.
    async fn memberships_of_user_in(
        &self,
        user_id: &str,
        range: StreamRange,
    ) -> Result<Vec<MembershipRecord>>;
    /// Current members of a room, optionally only those with `membership`.
    async fn room_members(
        &self,
        room_id: &str,
        membership: Option<&str>,
    ) -> Result<Vec<MembershipRecord>>;
    /// Records that the user forgot the room (whether they may is the caller's rule); a
    /// later membership of theirs in the room, persisted with its event, undoes it.
    async fn forget_room(&self, room_id: &str, user_id: &str) -> Result<()>;
    async fn is_forgotten(&self, room_id: &str, user_id: &str) -> Result<bool>;

    // Aliases.
    /// `Conflict` when the alias is taken.
    async fn insert_alias(&self, alias: &AliasRecord) -> Result<()>;
    async fn alias(&self, alias: &str) -> Result<Option<AliasRecord>>;
    async fn delete_alias(&self, alias: &str) -> Result<bool>;
    async fn aliases_of_room(&self, room_id: &str) -> Result<Vec<String>>;

    // Per-user data.
    /// Upserts account data (global when `room_id` is `None`) at `stream`.
    async fn set_account_data(&self, data: &AccountDataRecord) -> Result<()>;
    async fn account_data(
        &self,
        localpart: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> Result<Option<AccountDataRecord>>;
    /// Account data of a user changed in `range` (all of it when `range.after` is 0).
    async fn account_data_in(
        &self,
        localpart: &str,
        range: StreamRange,
    ) -> Result<Vec<AccountDataRecord>>;
    /// Upserts the receipt of (room, user, type, thread).
    async fn set_receipt(&self, receipt: &ReceiptRecord) -> Result<()>;
    /// Receipts of the given rooms changed in `range`.
    async fn receipts_in(
        &self,
        room_ids: &[String],
        range: StreamRange,
    ) -> Result<Vec<ReceiptRecord>>;
    /// Stores a filter; returns its id (unique per user).
    async fn insert_filter(&self, localpart: &str, filter_json: &str) -> Result<String>;
    async fn filter(&self, localpart: &str, filter_id: &str) -> Result<Option<String>>;
}
