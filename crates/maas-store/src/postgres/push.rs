//! `PushStore` on a tenant's PostgreSQL schema (tables in `0003_push.sql` and
//! `0005_room_push_actions.sql`). Counts are read with sync's batched read
//! (`rooms::sync::unread_counts_in`); a batch of rows travels as one array per column, so any
//! number of them is one statement.

use async_trait::async_trait;
use sqlx::{PgConnection, Row};

use super::PostgresTenantStore;
use crate::{AccountDataRecord, PushActionRecord, PushStore, Result, RoomPushActionRecord};

/// `thread_id` of main-timeline rows: what threaded receipts of the main timeline carry.
const MAIN_THREAD: &str = "main";

/// Inserts notifications with one statement (all rows or none) on the caller's connection or
/// transaction; `DO NOTHING` also covers duplicates in the batch.
pub(crate) async fn write_push_actions(
    conn: &mut PgConnection,
    actions: &[PushActionRecord],
) -> Result<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let user_ids: Vec<&str> = actions.iter().map(|a| a.user_id.as_str()).collect();
    let room_ids: Vec<&str> = actions.iter().map(|a| a.room_id.as_str()).collect();
    let streams: Vec<i64> = actions.iter().map(|a| a.stream).collect();
    let event_ids: Vec<&str> = actions.iter().map(|a| a.event_id.as_str()).collect();
    let thread_ids: Vec<&str> = actions
        .iter()
        .map(|a| a.thread_id.as_deref().unwrap_or(MAIN_THREAD))
        .collect();
    let notifies: Vec<bool> = actions.iter().map(|a| a.notify).collect();
    let highlights: Vec<bool> = actions.iter().map(|a| a.highlight).collect();
    let replaces: Vec<bool> = actions.iter().map(|a| a.replaces_room).collect();
    sqlx::query(
        "INSERT INTO event_push_actions \
             (user_id, room_id, stream, event_id, thread_id, notify, highlight, replaces_room) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], \
                              $5::text[], $6::boolean[], $7::boolean[], $8::boolean[]) \
         ON CONFLICT (user_id, room_id, stream) DO NOTHING",
    )
    .bind(user_ids)
    .bind(room_ids)
    .bind(streams)
    .bind(event_ids)
    .bind(thread_ids)
    .bind(notifies)
    .bind(highlights)
    .bind(replaces)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// As [`write_push_actions`], for room-wide notifications.
pub(crate) async fn write_room_push_actions(
    conn: &mut PgConnection,
    actions: &[RoomPushActionRecord],
) -> Result<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let room_ids: Vec<&str> = actions.iter().map(|a| a.room_id.as_str()).collect();
    let streams: Vec<i64> = actions.iter().map(|a| a.stream).collect();
    let event_ids: Vec<&str> = actions.iter().map(|a| a.event_id.as_str()).collect();
    let senders: Vec<&str> = actions.iter().map(|a| a.sender.as_str()).collect();
    let thread_ids: Vec<&str> = actions
        .iter()
        .map(|a| a.thread_id.as_deref().unwrap_or(MAIN_THREAD))
        .collect();
    sqlx::query(
        "INSERT INTO room_push_actions (room_id, stream, event_id, sender, thread_id) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[]) \
         ON CONFLICT (room_id, stream) DO NOTHING",
    )
    .bind(room_ids)
    .bind(streams)
    .bind(event_ids)
    .bind(senders)
    .bind(thread_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes every notification of a stored event, on the caller's connection or transaction.
pub(crate) async fn delete_push_actions_of(conn: &mut PgConnection, event_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM event_push_actions WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM room_push_actions AS n USING events AS e \
         WHERE e.event_id = $1 AND n.room_id = e.room_id AND n.stream = e.stream",
    )
    .bind(event_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl PushStore for PostgresTenantStore {
    async fn insert_push_actions(&self, actions: &[PushActionRecord]) -> Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        let mut conn = self.schema.conn().await?;
        write_push_actions(&mut conn, actions).await
    }

    async fn insert_room_push_actions(&self, actions: &[RoomPushActionRecord]) -> Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        let mut conn = self.schema.conn().await?;
        write_room_push_actions(&mut conn, actions).await
    }

    async fn delete_push_actions(&self, event_id: &str) -> Result<()> {
        let mut tx = self.schema.begin().await?;
        delete_push_actions_of(&mut tx, event_id).await?;
        tx.commit().await
    }

    async fn unread_notification_counts(&self, room_id: &str, user_id: &str) -> Result<(u64, u64)> {
        let mut conn = self.schema.conn().await?;
        let rooms = [room_id.to_owned()];
        let counts = super::rooms::sync::unread_counts_in(&mut conn, &rooms, user_id).await?;
        Ok(counts
            .first()
            .map_or((0, 0), |c| (c.notifications, c.highlights)))
    }

    async fn global_account_data_of(
        &self,
        localparts: &[String],
        data_type: &str,
    ) -> Result<Vec<AccountDataRecord>> {
        if localparts.is_empty() {
            return Ok(Vec::new());
        }
        // One primary key lookup per listed user; global data has room_id ''.
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT localpart, content, stream FROM account_data \
             WHERE localpart = ANY($1) AND room_id = '' AND data_type = $2",
        )
        .bind(localparts)
        .bind(data_type)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AccountDataRecord {
                    localpart: row.try_get("localpart")?,
                    room_id: None,
                    data_type: data_type.to_owned(),
                    content: row.try_get("content")?,
                    stream: row.try_get("stream")?,
                })
            })
            .collect()
    }
}
