//! `PushStore` on a tenant's SQLite database (schema in `0003_push.sql` and
//! `0006_room_push_actions.sql`). Counts are read with sync's batched read
//! (`rooms::sync::unread_counts_in`).

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteTenantStore;
use super::util::to_json;
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
             (user_id, room_id, stream, event_id, thread_id, notify, highlight, replaces_room) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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
            i64::from(a.replaces_room),
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
        let counts = self
            .reader
            .read(|db| super::rooms::sync::unread_counts_in(db, &[room_id], user_id))
            .await?;
        Ok(counts
            .first()
            .map_or((0, 0), |c| (c.notifications, c.highlights)))
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
