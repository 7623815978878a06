//! `PushStore` on a tenant's SQLite database (schema in `0003_push.sql` and
//! `0006_room_push_actions.sql`). Notification counts read the user's own rows from the
//! primary key, and of the room-wide rows only those after the user's read receipt.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteTenantStore;
use super::util::{to_json, to_u64};
use crate::{AccountDataRecord, PushActionRecord, PushStore, Result, RoomPushActionRecord};

/// Rows or ids passed to one statement as a JSON array; chunks keep each statement bounded.
const CHUNK: usize = 500;

/// `thread_id` of main-timeline rows: what threaded receipts of the main timeline carry.
const MAIN_THREAD: &str = "main";

/// Inserts notifications inside the caller's transaction; existing rows stay as they are.
pub(crate) fn write_push_actions(
    tx: &rusqlite::Connection,
    actions: &[PushActionRecord],
) -> Result<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO event_push_actions \
             (user_id, room_id, stream, event_id, thread_id, notify, highlight) \
         VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (user_id, room_id, stream) DO NOTHING",
    )?;
    for a in actions {
        insert.execute((
            &a.user_id,
            &a.room_id,
            a.stream,
            &a.event_id,
            a.thread_id.as_deref().unwrap_or(MAIN_THREAD),
            i64::from(a.notify),
            i64::from(a.highlight),
        ))?;
    }
    Ok(())
}

/// Inserts room-wide notifications inside the caller's transaction; existing rows stay.
pub(crate) fn write_room_push_actions(
    tx: &rusqlite::Connection,
    actions: &[RoomPushActionRecord],
) -> Result<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO room_push_actions (room_id, stream, event_id, sender, thread_id) \
         VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (room_id, stream) DO NOTHING",
    )?;
    for a in actions {
        insert.execute((
            &a.room_id,
            a.stream,
            &a.event_id,
            &a.sender,
            a.thread_id.as_deref().unwrap_or(MAIN_THREAD),
        ))?;
    }
    Ok(())
}

/// Removes every notification of a stored event, inside the caller's transaction.
pub(crate) fn delete_push_actions_of(tx: &rusqlite::Connection, event_id: &str) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM event_push_actions \
         WHERE stream = (SELECT stream FROM events WHERE event_id = ?)",
    )?
    .execute([event_id])?;
    tx.prepare_cached(
        "DELETE FROM room_push_actions \
         WHERE room_id = (SELECT room_id FROM events WHERE event_id = ?1) \
           AND stream = (SELECT stream FROM events WHERE event_id = ?1)",
    )?
    .execute([event_id])?;
    Ok(())
}

/// `notified (room_id, stream, thread_id, highlight)`: the notifications of user `?2` in the
/// rooms of `since (room_id, unthreaded)`, after each room's unthreaded read receipt. Its own
/// rows come from the primary key; room-wide ones from the room's rows after both the receipt
/// and the start of the user's join, each checked for a row of the user's own that replaces it.
macro_rules! notified_cte {
    () => {
        "notified (room_id, stream, thread_id, highlight) AS ( \
             SELECT a.room_id, a.stream, a.thread_id, a.highlight \
             FROM since AS s JOIN event_push_actions AS a \
                 ON a.user_id = ?2 AND a.room_id = s.room_id AND a.stream > s.unthreaded \
             WHERE a.notify = 1 \
             UNION ALL \
             SELECT n.room_id, n.stream, n.thread_id, 0 \
             FROM since AS s \
             JOIN room_memberships AS m \
                 ON m.room_id = s.room_id AND m.user_id = ?2 AND m.membership = 'join' \
             JOIN room_push_actions AS n \
                 ON n.room_id = s.room_id AND n.stream > MAX(s.unthreaded, m.joined_since) \
             WHERE n.sender <> ?2 \
               AND NOT EXISTS (SELECT 1 FROM event_push_actions AS own \
                               WHERE own.user_id = ?2 AND own.room_id = n.room_id \
                                 AND own.stream = n.stream) \
         )"
    };
}
pub(crate) use notified_cte;

#[async_trait]
impl PushStore for SqliteTenantStore {
    async fn insert_push_actions(&self, actions: &[PushActionRecord]) -> Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        self.writer
            .write(|tx| write_push_actions(tx, actions))
            .await
    }

    async fn insert_room_push_actions(&self, actions: &[RoomPushActionRecord]) -> Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        self.writer
            .write(|tx| write_room_push_actions(tx, actions))
            .await
    }

    async fn delete_push_actions(&self, event_id: &str) -> Result<()> {
        self.writer
            .write(|tx| delete_push_actions_of(tx, event_id))
            .await
    }

    async fn unread_notification_counts(&self, room_id: &str, user_id: &str) -> Result<(u64, u64)> {
        // `read` holds, per receipt thread ('' for unthreaded receipts), the stream of the
        // newest event read: a few rows from the receipts' primary key. A notification is
        // unread when it is after both the unthreaded receipt and the one of its thread.
        let row = sqlx::query(concat!(
            "WITH read (thread_id, stream) AS ( \
                 SELECT r.thread_id, MAX(e.stream) \
                 FROM receipts AS r JOIN events AS e ON e.event_id = r.event_id \
                 WHERE r.room_id = ?1 AND r.user_id = ?2 \
                   AND r.receipt_type IN ('m.read', 'm.read.private') AND e.room_id = ?1 \
                 GROUP BY r.thread_id \
             ), \
             since (room_id, unthreaded) AS ( \
                 SELECT ?1, COALESCE((SELECT stream FROM read WHERE thread_id = ''), 0) \
             ), ",
            notified_cte!(),
            " SELECT COUNT(*) AS notifications, COALESCE(SUM(a.highlight), 0) AS highlights \
             FROM notified AS a \
             WHERE a.stream > COALESCE( \
                 (SELECT stream FROM read WHERE read.thread_id = a.thread_id), 0)",
        ))
        .bind(room_id)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        counts_from_row(&row)
    }

    async fn global_account_data_of(
        &self,
        localparts: &[String],
        data_type: &str,
    ) -> Result<Vec<AccountDataRecord>> {
        let mut records = Vec::new();
        for chunk in localparts.chunks(CHUNK) {
            // One primary key lookup per listed user; global data has room_id ''.
            let rows = sqlx::query(
                "SELECT localpart, content, stream FROM account_data \
                 WHERE localpart IN (SELECT value FROM json_each(?)) \
                   AND room_id = '' AND data_type = ?",
            )
            .bind(to_json(&chunk, "localparts")?)
            .bind(data_type)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                records.push(AccountDataRecord {
                    localpart: row.try_get("localpart")?,
                    room_id: None,
                    data_type: data_type.to_owned(),
                    content: row.try_get("content")?,
                    stream: row.try_get("stream")?,
                });
            }
        }
        Ok(records)
    }
}

fn counts_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<(u64, u64)> {
    let notifications: i64 = row.try_get("notifications")?;
    let highlights: i64 = row.try_get("highlights")?;
    Ok((
        to_u64(notifications, "notifications")?,
        to_u64(highlights, "highlights")?,
    ))
}
