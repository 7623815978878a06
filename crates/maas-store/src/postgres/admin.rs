//! `AdminStore` on a tenant's PostgreSQL schema (tables in the `administration` migration).
//! Purges run in transactions of bounded size, so a large room never holds its locks long.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresTenantStore;
use super::util::{SchemaTx, conflict, found, to_u64};
use crate::{
    AdminStore, AdminTaskFilter, AdminTaskRecord, BlockedRoomRecord, HistoryPurge, Result,
    RoomRecord,
};

/// Events (or state groups, outliers) removed per transaction.
const PURGE_BATCH: usize = 500;

/// `SELECT <every task column> FROM admin_tasks <rest>`, as a `&'static str`.
macro_rules! select_tasks {
    ($rest:literal) => {
        concat!(
            "SELECT task_id, action, resource_id, status, params, result, error, created_ts, \
                    updated_ts FROM admin_tasks ",
            $rest
        )
    };
}

/// Tables whose rows name the room in a `room_id` column and have nothing else to remove
/// first, cleared in the purge's last transaction (`rooms` after them).
const ROOM_TABLES: &[&str] = &[
    "forward_extremities",
    "room_memberships",
    "forgotten_rooms",
    "room_aliases",
    "account_data",
    "receipts",
    "event_push_actions",
    "room_push_actions",
    "partial_state_rooms",
    "backup_keys",
    "server_notice_rooms",
    // Nothing is left of these by now; cleared again in case a row slipped in meanwhile.
    "events",
    "outliers",
];

#[async_trait]
impl AdminStore for PostgresTenantStore {
    async fn block_room(&self, block: &BlockedRoomRecord) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES ($1, $2, $3) \
             ON CONFLICT (room_id) DO UPDATE SET user_id = excluded.user_id, \
                                                 blocked_ts = excluded.blocked_ts",
        )
        .bind(&block.room_id)
        .bind(&block.user_id)
        .bind(block.blocked_ts)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn unblock_room(&self, room_id: &str) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let deleted = sqlx::query("DELETE FROM blocked_rooms WHERE room_id = $1")
            .bind(room_id)
            .execute(&mut *conn)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn blocked_room(&self, room_id: &str) -> Result<Option<BlockedRoomRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(
            "SELECT room_id, user_id, blocked_ts FROM blocked_rooms WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(BlockedRoomRecord {
            room_id: row.try_get("room_id")?,
            user_id: row.try_get("user_id")?,
            blocked_ts: row.try_get("blocked_ts")?,
        }))
    }

    async fn insert_admin_task(&self, task: &AdminTaskRecord) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO admin_tasks (task_id, action, resource_id, status, params, result, \
                                      error, created_ts, updated_ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&task.task_id)
        .bind(&task.action)
        .bind(&task.resource_id)
        .bind(&task.status)
        .bind(&task.params)
        .bind(&task.result)
        .bind(&task.error)
        .bind(task.created_ts)
        .bind(task.updated_ts)
        .execute(&mut *conn)
        .await
        .map_err(|err| conflict(err, || format!("admin task {}", task.task_id)))?;
        Ok(())
    }

    async fn update_admin_task(&self, task: &AdminTaskRecord) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE admin_tasks SET status = $1, result = $2, error = $3, updated_ts = $4 \
             WHERE task_id = $5",
        )
        .bind(&task.status)
        .bind(&task.result)
        .bind(&task.error)
        .bind(task.updated_ts)
        .bind(&task.task_id)
        .execute(&mut *conn)
        .await?;
        found(updated.rows_affected(), || {
            format!("admin task {}", task.task_id)
        })
    }

    async fn admin_task(&self, task_id: &str) -> Result<Option<AdminTaskRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(select_tasks!("WHERE task_id = $1"))
            .bind(task_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn admin_tasks(&self, filter: &AdminTaskFilter) -> Result<Vec<AdminTaskRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(select_tasks!(
            "WHERE (cardinality($1::TEXT[]) = 0 OR action = ANY($1)) \
               AND ($2::TEXT IS NULL OR resource_id = $2) \
               AND (cardinality($3::TEXT[]) = 0 OR status = ANY($3)) \
               AND ($4::BIGINT IS NULL OR updated_ts <= $4) \
             ORDER BY created_ts, task_id"
        ))
        .bind(&filter.actions)
        .bind(&filter.resource_id)
        .bind(&filter.statuses)
        .bind(filter.max_timestamp)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn prune_admin_tasks(&self, before_ts: i64) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let deleted = sqlx::query(
            "DELETE FROM admin_tasks \
             WHERE status IN ('complete', 'failed') AND updated_ts < $1",
        )
        .bind(before_ts)
        .execute(&mut *conn)
        .await?;
        Ok(deleted.rows_affected())
    }

    async fn all_rooms(&self) -> Result<Vec<RoomRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT room_id, room_version, creator, created_ts, published, state_group \
             FROM rooms ORDER BY room_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(room_from_row).collect()
    }

    async fn delete_forward_extremities(&self, room_id: &str, keep: &str) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let deleted =
            sqlx::query("DELETE FROM forward_extremities WHERE room_id = $1 AND event_id <> $2")
                .bind(room_id)
                .bind(keep)
                .execute(&mut *conn)
                .await?;
        Ok(deleted.rows_affected())
    }

    async fn outbound_pdus_of_room(&self, room_id: &str) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM federation_outbox \
             WHERE event_id IN (SELECT event_id FROM events WHERE room_id = $1)",
        )
        .bind(room_id)
        .fetch_one(&mut *conn)
        .await?;
        to_u64(count, "queued PDU count")
    }

    async fn purge_history(&self, purge: &HistoryPurge) -> Result<Vec<String>> {
        let keep: HashSet<String> = self
            .room_ids(
                "SELECT event_id FROM forward_extremities WHERE room_id = $1",
                &purge.room_id,
            )
            .await?
            .into_iter()
            .collect();
        self.forget_queued_pdus(&purge.room_id, Some(purge.before_depth))
            .await?;
        let mut removed = Vec::new();
        let mut after = i64::MIN;
        loop {
            let mut tx = self.schema.begin().await?;
            let (gone, last) = history_batch(&mut tx, purge, &keep, after).await?;
            tx.commit().await?;
            removed.extend(gone);
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        let unneeded = self.unneeded_groups(&purge.room_id).await?;
        for chunk in unneeded.chunks(PURGE_BATCH) {
            let mut tx = self.schema.begin().await?;
            delete_groups(&mut tx, chunk).await?;
            tx.commit().await?;
        }
        Ok(removed)
    }

    async fn purge_room(&self, room_id: &str) -> Result<Vec<String>> {
        self.forget_queued_pdus(room_id, None).await?;
        let mut removed = Vec::new();
        loop {
            let mut tx = self.schema.begin().await?;
            let batch = room_events_batch(&mut tx, room_id).await?;
            tx.commit().await?;
            if batch.is_empty() {
                break;
            }
            removed.extend(batch);
        }
        let outliers = self
            .room_ids("SELECT event_id FROM outliers WHERE room_id = $1", room_id)
            .await?;
        for chunk in outliers.chunks(PURGE_BATCH) {
            let mut tx = self.schema.begin().await?;
            sqlx::query("DELETE FROM outliers WHERE event_id = ANY($1)")
                .bind(chunk)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        removed.extend(outliers);
        let groups: Vec<i64> = {
            let mut conn = self.schema.conn().await?;
            sqlx::query_scalar("SELECT id FROM state_groups WHERE room_id = $1 ORDER BY id DESC")
                .bind(room_id)
                .fetch_all(&mut *conn)
                .await?
        };
        for chunk in groups.chunks(PURGE_BATCH) {
            let mut tx = self.schema.begin().await?;
            delete_groups(&mut tx, chunk).await?;
            tx.commit().await?;
        }
        let mut tx = self.schema.begin().await?;
        room_rows(&mut tx, room_id).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn unredacted_events_of_sender(
        &self,
        room_id: &str,
        sender: &str,
        types: &[&str],
        (after_ts, before_ts): (Option<i64>, Option<i64>),
        limit: u32,
    ) -> Result<Vec<String>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT event_id FROM events \
             WHERE room_id = $1 AND sender = $2 AND redacted_by IS NULL \
               AND event_type = ANY($3) \
               AND ($4::BIGINT IS NULL OR origin_server_ts >= $4) \
               AND ($5::BIGINT IS NULL OR origin_server_ts <= $5) \
             ORDER BY stream DESC LIMIT $6",
        )
        .bind(room_id)
        .bind(sender)
        .bind(types)
        .bind(after_ts)
        .bind(before_ts)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl PostgresTenantStore {
    /// The event ids a query with the room id as `$1` returns.
    async fn room_ids(&self, sql: &'static str, room_id: &str) -> Result<Vec<String>> {
        let mut conn = self.schema.conn().await?;
        Ok(sqlx::query_scalar(sql)
            .bind(room_id)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Takes the room's events out of the federation queue (all of them, or those below
    /// `before_depth`): their rows are about to go.
    async fn forget_queued_pdus(&self, room_id: &str, before_depth: Option<i64>) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "DELETE FROM federation_outbox WHERE event_id IN ( \
                 SELECT event_id FROM events \
                 WHERE room_id = $1 \
                   AND ($2::BIGINT IS NULL OR (depth < $2 AND state_key IS NULL)))",
        )
        .bind(room_id)
        .bind(before_depth)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The room's state groups that no event, the room's current state nor its partial state
    /// names, directly or as the base of a delta that is named; newest first, so that a delta
    /// goes before the group it is based on.
    async fn unneeded_groups(&self, room_id: &str) -> Result<Vec<i64>> {
        let mut conn = self.schema.conn().await?;
        Ok(sqlx::query_scalar(
            "WITH RECURSIVE needed (id) AS ( \
                 SELECT state_before FROM events WHERE room_id = $1 \
                 UNION SELECT state_after FROM events WHERE room_id = $1 \
                 UNION SELECT state_group FROM rooms WHERE room_id = $1 \
                 UNION SELECT state_group FROM partial_state_rooms WHERE room_id = $1 \
                 UNION SELECT g.prev_group FROM state_groups AS g JOIN needed AS n ON g.id = n.id \
                       WHERE g.prev_group IS NOT NULL \
             ) \
             SELECT id FROM state_groups AS s \
             WHERE room_id = $1 AND NOT EXISTS (SELECT 1 FROM needed AS n WHERE n.id = s.id) \
             ORDER BY id DESC",
        )
        .bind(room_id)
        .fetch_all(&mut *conn)
        .await?)
    }
}

fn task_from_row(row: &PgRow) -> Result<AdminTaskRecord> {
    Ok(AdminTaskRecord {
        task_id: row.try_get("task_id")?,
        action: row.try_get("action")?,
        resource_id: row.try_get("resource_id")?,
        status: row.try_get("status")?,
        params: row.try_get("params")?,
        result: row.try_get("result")?,
        error: row.try_get("error")?,
        created_ts: row.try_get("created_ts")?,
        updated_ts: row.try_get("updated_ts")?,
    })
}

fn room_from_row(row: &PgRow) -> Result<RoomRecord> {
    Ok(RoomRecord {
        room_id: row.try_get("room_id")?,
        room_version: row.try_get("room_version")?,
        creator: row.try_get("creator")?,
        created_ts: row.try_get("created_ts")?,
        published: row.try_get("published")?,
        state_group: row.try_get("state_group")?,
    })
}

/// One batch of a history purge: the ids that went, and the position to go on after (none
/// at the end of the room).
async fn history_batch(
    tx: &mut SchemaTx,
    purge: &HistoryPurge,
    keep: &HashSet<String>,
    after: i64,
) -> Result<(Vec<String>, Option<i64>)> {
    let candidates: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT stream, event_id, sender FROM events \
         WHERE room_id = $1 AND stream > $2 AND depth < $3 AND state_key IS NULL \
         ORDER BY stream LIMIT $4",
    )
    .bind(&purge.room_id)
    .bind(after)
    .bind(purge.before_depth)
    .bind(PURGE_BATCH as i64)
    .fetch_all(&mut **tx)
    .await?;
    let last = (candidates.len() == PURGE_BATCH)
        .then(|| candidates.last().map(|c| c.0))
        .flatten();
    let (streams, removed): (Vec<i64>, Vec<String>) = candidates
        .into_iter()
        .filter(|(_, id, sender)| {
            !keep.contains(id) && !is_kept_sender(sender, purge.keep_local_of.as_deref())
        })
        .map(|(stream, id, _)| (stream, id))
        .unzip();
    delete_events(tx, &purge.room_id, &streams, &removed).await?;
    Ok((removed, last))
}

/// Whether `sender` is a user of `server_name` (user ids are `@localpart:server_name`, and a
/// localpart has no `:`).
fn is_kept_sender(sender: &str, server_name: Option<&str>) -> bool {
    server_name.is_some_and(|ours| sender.split_once(':').is_some_and(|(_, s)| s == ours))
}

/// Timeline events and their notifications.
async fn delete_events(
    tx: &mut SchemaTx,
    room_id: &str,
    streams: &[i64],
    event_ids: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM event_push_actions WHERE event_id = ANY($1)")
        .bind(event_ids)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM room_push_actions WHERE room_id = $1 AND stream = ANY($2)")
        .bind(room_id)
        .bind(streams)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM events WHERE stream = ANY($1)")
        .bind(streams)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One batch of the room's timeline events, oldest first; their ids (none once all are gone).
async fn room_events_batch(tx: &mut SchemaTx, room_id: &str) -> Result<Vec<String>> {
    let events: Vec<(i64, String)> = sqlx::query_as(
        "SELECT stream, event_id FROM events WHERE room_id = $1 ORDER BY stream LIMIT $2",
    )
    .bind(room_id)
    .bind(PURGE_BATCH as i64)
    .fetch_all(&mut **tx)
    .await?;
    let (streams, ids): (Vec<i64>, Vec<String>) = events.into_iter().unzip();
    delete_events(tx, room_id, &streams, &ids).await?;
    Ok(ids)
}

/// Groups and their entries, in one statement each (so a delta and its base may go together).
async fn delete_groups(tx: &mut SchemaTx, ids: &[i64]) -> Result<()> {
    sqlx::query("DELETE FROM state_group_entries WHERE group_id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM state_groups WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The purge's last transaction: every other row naming the room, and the room itself.
async fn room_rows(tx: &mut SchemaTx, room_id: &str) -> Result<()> {
    for table in ROOM_TABLES {
        // The table names are this module's constants.
        let sql = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE room_id = $1"));
        sqlx::query(sql).bind(room_id).execute(&mut **tx).await?;
    }
    sqlx::query(
        "DELETE FROM state_group_entries \
         WHERE group_id IN (SELECT id FROM state_groups WHERE room_id = $1)",
    )
    .bind(room_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM state_groups WHERE room_id = $1")
        .bind(room_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM rooms WHERE room_id = $1")
        .bind(room_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
