//! `PushStore` on a tenant's SQLite database (schema in `0003_push.sql`). Notification counts
//! are read per (user, room) from the primary key, never by scanning other users' rows.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteTenantStore;
use super::util::{to_json, to_u64};
use crate::{AccountDataRecord, PushActionRecord, PushStore, Result};

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
        "INSERT INTO event_push_actions (user_id, room_id, stream, event_id, thread_id, highlight) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (user_id, room_id, stream) DO NOTHING",
    )?;
    for a in actions {
        insert.execute((
            &a.user_id,
            &a.room_id,
            a.stream,
            &a.event_id,
            a.thread_id.as_deref().unwrap_or(MAIN_THREAD),
            i64::from(a.highlight),
        ))?;
    }
    Ok(())
}

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

    async fn delete_push_actions(&self, event_id: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM event_push_actions \
             WHERE stream = (SELECT stream FROM events WHERE event_id = ?)",
        )
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notification_counts(
        &self,
        room_id: &str,
        user_id: &str,
        after_stream: i64,
    ) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS notifications, COALESCE(SUM(highlight), 0) AS highlights \
             FROM event_push_actions WHERE user_id = ? AND room_id = ? AND stream > ?",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(after_stream)
        .fetch_one(&self.pool)
        .await?;
        counts_from_row(&row)
    }

    async fn unread_notification_counts(&self, room_id: &str, user_id: &str) -> Result<(u64, u64)> {
        // `read` holds, per receipt thread ('' for unthreaded receipts), the stream of the
        // newest event read: a few rows from the receipts' primary key. A notification is
        // unread when it is after both the unthreaded receipt and the one of its thread.
        let row = sqlx::query(
            "WITH read (thread_id, stream) AS ( \
                 SELECT r.thread_id, MAX(e.stream) \
                 FROM receipts AS r JOIN events AS e ON e.event_id = r.event_id \
                 WHERE r.room_id = ?1 AND r.user_id = ?2 \
                   AND r.receipt_type IN ('m.read', 'm.read.private') AND e.room_id = ?1 \
                 GROUP BY r.thread_id \
             ) \
             SELECT COUNT(*) AS notifications, COALESCE(SUM(a.highlight), 0) AS highlights \
             FROM event_push_actions AS a \
             WHERE a.user_id = ?2 AND a.room_id = ?1 \
               AND a.stream > COALESCE((SELECT stream FROM read WHERE thread_id = ''), 0) \
               AND a.stream > COALESCE( \
                   (SELECT stream FROM read WHERE read.thread_id = a.thread_id), 0)",
        )
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
