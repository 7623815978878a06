//! Pruning of what would otherwise only grow (core's `maintenance` decides what may go and
//! when): notifications nobody can count any more, and device list changes older than the
//! retention, with a mark of how far they are gone. Each method works through its table in
//! transactions of bounded size, so writers wait at most one batch.

use async_trait::async_trait;

use super::Result;

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Records that every stream position up to `stream` was handed out by `ts`. A position
    /// marked before keeps its (earlier) time.
    async fn mark_stream(&self, stream: i64, ts: i64) -> Result<()>;
    /// The newest position marked at or before `ts`: every position up to it was handed out by
    /// then. `None` when no mark is that old.
    async fn stream_marked_by(&self, ts: i64) -> Result<Option<i64>>;
    /// Removes the marks older than `ts` but the newest of them, which still answers
    /// `stream_marked_by` for the times after it. Returns how many went.
    async fn prune_stream_marks(&self, before_ts: i64) -> Result<u64>;

    /// Removes each user's own notifications (`PushActionRecord`) in a room at positions up to
    /// `up_to` that their newest unthreaded `m.read` or `m.read.private` receipt there covers:
    /// those no unread count includes any more. Returns how many went.
    async fn prune_read_push_actions(&self, up_to: i64) -> Result<u64>;
    /// Removes room-wide notifications (`RoomPushActionRecord`) at positions up to `up_to`
    /// that no joined member on `server_name` can count any more: each such member's read
    /// receipt or current join is at or after them (a user who joins later counts only what
    /// follows the join). Returns how many went.
    async fn prune_room_push_actions(&self, up_to: i64, server_name: &str) -> Result<u64>;

    /// Removes the device list changes at positions up to `up_to` and records that changes up
    /// to there are gone (`DeviceListChanges::complete`). Returns how many went.
    async fn prune_device_list_changes(&self, up_to: i64) -> Result<u64>;
}
