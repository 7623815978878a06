//! Batched reads for `/sync`: each method answers for many rooms (or events, or state groups)
//! in one statement, so a sync of a user in hundreds of rooms costs a handful of round trips
//! to the database instead of several per room. Every method reads only; what each returns is
//! what the per-room methods of `RoomStore` and `PushStore` return for each room in turn.

use async_trait::async_trait;

use super::{EventRecord, MembershipRecord, Result, StateEntry, StreamRange};

/// Member counts and heroes of one room (spec: "Room summary").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSummary {
    pub room_id: String,
    /// Members whose current membership is `join`.
    pub joined: u64,
    /// Members whose current membership is `invite`.
    pub invited: u64,
    /// The first joined or invited members in byte order of their user ids.
    pub heroes: Vec<String>,
}

/// Notifications of one user in one room that they have not read yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadCounts {
    pub room_id: String,
    pub notifications: u64,
    pub highlights: u64,
}

#[async_trait]
pub trait SyncStore: Send + Sync {
    /// The newest `limit` events in `range` of each of `room_ids`, all of them in stream order
    /// (oldest first). A room listed twice counts once.
    async fn latest_room_events(
        &self,
        room_ids: &[String],
        range: StreamRange,
        limit: u32,
    ) -> Result<Vec<EventRecord>>;

    /// Children of each of `parent_event_ids` whose relation type is one of `rel_types`: the
    /// oldest `limit` of each parent, all of them in stream order.
    async fn children_of(
        &self,
        parent_event_ids: &[String],
        rel_types: &[&str],
        limit: u32,
    ) -> Result<Vec<EventRecord>>;

    /// The full state of each group in `ids` (each once, in no particular order), as
    /// `RoomStore::state_group` returns it; `NotFound` when one of them is unknown.
    async fn state_groups(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<StateEntry>)>>;

    /// For each of `room_ids` (each once, in no particular order): member counts and the first
    /// `max_heroes` joined or invited members other than `user_id`.
    async fn member_summaries(
        &self,
        room_ids: &[String],
        user_id: &str,
        max_heroes: u32,
    ) -> Result<Vec<MemberSummary>>;

    /// What `PushStore::unread_notification_counts` counts, for each of `room_ids` at once;
    /// rooms with nothing unread are left out.
    async fn unread_counts_in(
        &self,
        room_ids: &[String],
        user_id: &str,
    ) -> Result<Vec<UnreadCounts>>;

    /// Those of `user_ids` who are joined to at least one of `room_ids`, each once.
    async fn users_joined_to_any(
        &self,
        user_ids: &[String],
        room_ids: &[String],
    ) -> Result<Vec<String>>;

    /// The current memberships in `room_ids` that changed in `range`, in stream order: whose
    /// device lists an incremental sync must mention. Costs what changed, not the rooms' size.
    async fn membership_changes_in(
        &self,
        room_ids: &[String],
        range: StreamRange,
    ) -> Result<Vec<MembershipRecord>>;
}
