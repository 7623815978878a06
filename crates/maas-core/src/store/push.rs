//! What push rule evaluation leaves behind (spec: Client-Server API, "Push Notifications",
//! "Receiving notifications"), from which sync computes `unread_notifications`. Most events
//! notify every local member of their room but the sender alike, so such an event is one row
//! for the room, and only recipients whose rules decided otherwise get a row of their own.

use async_trait::async_trait;

use super::{AccountDataRecord, Result};

/// What an event does for one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushActionRecord {
    pub room_id: String,
    /// The recipient.
    pub user_id: String,
    pub event_id: String,
    /// Stream position of the event.
    pub stream: i64,
    /// The thread the event belongs to: the thread root for `m.thread` relations, `None` for
    /// the main timeline. Threaded read receipts clear the notifications of their thread.
    pub thread_id: Option<String>,
    /// The event notifies the user; `false` only with `replaces_room` (the user's rules mute
    /// an event that notifies the room).
    pub notify: bool,
    /// The event has a [`RoomPushActionRecord`], and this row says what it does for the user
    /// instead.
    pub replaces_room: bool,
    /// A `highlight` tweak was set.
    pub highlight: bool,
}

/// An event that notifies, without highlight, every local user whose membership of the room
/// is a join that began before the event (so they were joined when it was sent), except its
/// sender and the users with a [`PushActionRecord`] that replaces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomPushActionRecord {
    pub room_id: String,
    pub event_id: String,
    /// Stream position of the event.
    pub stream: i64,
    pub sender: String,
    /// As [`PushActionRecord::thread_id`].
    pub thread_id: Option<String>,
}

#[async_trait]
pub trait PushStore: Send + Sync {
    /// Records notifications in one transaction; a row that exists already (same user, room
    /// and stream) is left as it is, so a retried insert is harmless.
    async fn insert_push_actions(&self, actions: &[PushActionRecord]) -> Result<()>;
    /// Records room-wide notifications in one transaction; as `insert_push_actions`, a row
    /// that exists already (same room and stream) is left as it is.
    async fn insert_room_push_actions(&self, actions: &[RoomPushActionRecord]) -> Result<()>;
    /// Removes every notification of a stored event (for a redacted event).
    async fn delete_push_actions(&self, event_id: &str) -> Result<()>;
    /// `(notifications, highlights)` the user has not read yet: those after the event of their
    /// newest `m.read` or `m.read.private` receipt that is unthreaded or of the notification's
    /// own thread (`main` for the main timeline). Receipts for unknown events are ignored.
    /// Room-wide notifications count only while the user stays joined: after leaving and
    /// joining again, those from before count no more.
    async fn unread_notification_counts(&self, room_id: &str, user_id: &str) -> Result<(u64, u64)>;
    /// Global account data of type `data_type` of each user in `localparts` that has some, in
    /// no particular order: one read for a whole room's recipients.
    async fn global_account_data_of(
        &self,
        localparts: &[String],
        data_type: &str,
    ) -> Result<Vec<AccountDataRecord>>;
}
