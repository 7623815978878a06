//! What the admin API keeps about rooms (tables in the `administration` migration): blocked
//! rooms, long admin operations (`admin_tasks`), and the purge of a room's rows.

use async_trait::async_trait;

use super::{Result, RoomRecord};

/// A room no local user may join or be invited to, and the admin who blocked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedRoomRecord {
    pub room_id: String,
    pub user_id: String,
    pub blocked_ts: i64,
}

/// A long admin operation (Synapse: a scheduled task) and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTaskRecord {
    pub task_id: String,
    /// What the task does (`shutdown_and_purge_room`, `purge_room`, `purge_history`).
    pub action: String,
    /// What it works on: a room id.
    pub resource_id: String,
    /// `scheduled`, `active`, `complete` or `failed`.
    pub status: String,
    /// The task's parameters as a JSON object.
    pub params: String,
    /// What it did so far, as JSON.
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_ts: i64,
    /// When its status or result last changed.
    pub updated_ts: i64,
}

/// Which admin tasks to list; `None` and empty lists leave a field unfiltered.
#[derive(Clone, Debug, Default)]
pub struct AdminTaskFilter {
    pub actions: Vec<String>,
    pub resource_id: Option<String>,
    pub statuses: Vec<String>,
    /// Tasks whose `updated_ts` is at most this.
    pub max_timestamp: Option<i64>,
}

/// What a purge of a room's history removes: its timeline events at a depth below
/// `before_depth`, but never a state event, a forward extremity, nor (with `keep_local_of`)
/// an event whose sender is a user of that server name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPurge {
    pub room_id: String,
    pub before_depth: i64,
    pub keep_local_of: Option<String>,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    // Blocked rooms.
    /// Blocks a room (known here or not); blocking it again records the new admin.
    async fn block_room(&self, block: &BlockedRoomRecord) -> Result<()>;
    /// Whether the room was blocked.
    async fn unblock_room(&self, room_id: &str) -> Result<bool>;
    async fn blocked_room(&self, room_id: &str) -> Result<Option<BlockedRoomRecord>>;

    // Admin tasks.
    /// `Conflict` when the task id is taken.
    async fn insert_admin_task(&self, task: &AdminTaskRecord) -> Result<()>;
    /// Replaces the status, result, error and `updated_ts` of a task; `NotFound` when it
    /// doesn't exist.
    async fn update_admin_task(&self, task: &AdminTaskRecord) -> Result<()>;
    async fn admin_task(&self, task_id: &str) -> Result<Option<AdminTaskRecord>>;
    /// The tasks `filter` selects, oldest first.
    async fn admin_tasks(&self, filter: &AdminTaskFilter) -> Result<Vec<AdminTaskRecord>>;
    /// Removes the tasks that ended (`complete`, `failed`) before `before_ts`; how many went.
    async fn prune_admin_tasks(&self, before_ts: i64) -> Result<u64>;

    // Rooms.
    /// Every room of the tenant, ordered by room id.
    async fn all_rooms(&self) -> Result<Vec<RoomRecord>>;
    /// Removes the room's forward extremities but `keep`; how many went.
    async fn delete_forward_extremities(&self, room_id: &str, keep: &str) -> Result<u64>;
    /// PDUs of the room's events still queued for other servers.
    async fn outbound_pdus_of_room(&self, room_id: &str) -> Result<u64>;
    /// Removes what `purge` selects, with what was derived from those events (notifications,
    /// queued PDUs), and then the room's state groups that nothing needs any more; in
    /// transactions of bounded size. Returns the ids of the removed events.
    async fn purge_history(&self, purge: &HistoryPurge) -> Result<Vec<String>>;
    /// Removes every row of the room from every table, but `blocked_rooms`, `admin_tasks` and
    /// `reports` (an admin's records about the room outlive it); in transactions of bounded
    /// size, the room's row last. Returns the ids of its removed events (timeline and
    /// outliers).
    async fn purge_room(&self, room_id: &str) -> Result<Vec<String>>;

    // Redacting a user's events.
    /// The ids of `sender`'s timeline events in the room not redacted yet, of one of `types`,
    /// sent at or after `after_ts` and at or before `before_ts`: the newest `limit`, newest
    /// first.
    async fn unredacted_events_of_sender(
        &self,
        room_id: &str,
        sender: &str,
        types: &[&str],
        (after_ts, before_ts): (Option<i64>, Option<i64>),
        limit: u32,
    ) -> Result<Vec<String>>;
}
