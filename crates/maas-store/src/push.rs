//! What push rule evaluation leaves behind (spec: Client-Server API, "Push Notifications",
//! "Receiving notifications"): one row per (event, recipient) that a recipient's push rules
//! said to notify about, from which sync computes `unread_notifications`.

use async_trait::async_trait;

use crate::{AccountDataRecord, Result};

/// An event that notifies one user.
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
    /// A `highlight` tweak was set.
    pub highlight: bool,
}

#[async_trait]
pub trait PushStore: Send + Sync {
    /// Records notifications in one transaction; a row that exists already (same user, room
    /// and stream) is left as it is, so a retried insert is harmless.
    async fn insert_push_actions(&self, actions: &[PushActionRecord]) -> Result<()>;
    /// Removes every notification of a stored event (for a redacted event).
    async fn delete_push_actions(&self, event_id: &str) -> Result<()>;
    /// `(notifications, highlights)` of the user in the room at streams above `after_stream`.
    async fn notification_counts(
        &self,
        room_id: &str,
        user_id: &str,
        after_stream: i64,
    ) -> Result<(u64, u64)>;
    /// `(notifications, highlights)` the user has not read yet: those after the event of their
    /// newest `m.read` or `m.read.private` receipt that is unthreaded or of the notification's
    /// own thread (`main` for the main timeline). Receipts for unknown events are ignored.
    async fn unread_notification_counts(&self, room_id: &str, user_id: &str) -> Result<(u64, u64)>;
    /// Global account data of type `data_type` of each user in `localparts` that has some, in
    /// no particular order: one read for a whole room's recipients.
    async fn global_account_data_of(
        &self,
        localparts: &[String],
        data_type: &str,
    ) -> Result<Vec<AccountDataRecord>>;
}
