//! `AdminStore` on a tenant's SQLite database (tables in the `administration` migration).
//! Purges run on the tenant's writer connection in transactions of bounded size, so the
//! tenant's other rooms keep being written between them.

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{Connection, Transaction};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteTenantStore;
use super::raw::collect;
use super::util::{conflict, found};
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
impl AdminStore for SqliteTenantStore {
    async fn block_room(&self, block: &BlockedRoomRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES (?, ?, ?) \
             ON CONFLICT (room_id) DO UPDATE SET user_id = excluded.user_id, \
                                                 blocked_ts = excluded.blocked_ts",
        )
        .bind(&block.room_id)
        .bind(&block.user_id)
        .bind(block.blocked_ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn unblock_room(&self, room_id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM blocked_rooms WHERE room_id = ?")
            .bind(room_id)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn blocked_room(&self, room_id: &str) -> Result<Option<BlockedRoomRecord>> {
        let row =
            sqlx::query("SELECT room_id, user_id, blocked_ts FROM blocked_rooms WHERE room_id = ?")
                .bind(room_id)
                .fetch_optional(&self.pool)
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
        sqlx::query(
            "INSERT INTO admin_tasks (task_id, action, resource_id, status, params, result, \
                                      error, created_ts, updated_ts) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await
        .map_err(|err| conflict(err, || format!("admin task {}", task.task_id)))?;
        Ok(())
    }

    async fn update_admin_task(&self, task: &AdminTaskRecord) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE admin_tasks SET status = ?, result = ?, error = ?, updated_ts = ? \
             WHERE task_id = ?",
        )
        .bind(&task.status)
        .bind(&task.result)
        .bind(&task.error)
        .bind(task.updated_ts)
        .bind(&task.task_id)
        .execute(&self.pool)
        .await?;
        found(updated.rows_affected(), || {
            format!("admin task {}", task.task_id)
        })
    }

    async fn admin_task(&self, task_id: &str) -> Result<Option<AdminTaskRecord>> {
        let row = sqlx::query(select_tasks!("WHERE task_id = ?"))
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn admin_tasks(&self, filter: &AdminTaskFilter) -> Result<Vec<AdminTaskRecord>> {
        // Few tasks are kept (finished ones are pruned), so filtering the lists here is
        // simpler than building statements for them.
        let rows = sqlx::query(select_tasks!(
            "WHERE (?1 IS NULL OR resource_id = ?1) AND (?2 IS NULL OR updated_ts <= ?2) \
             ORDER BY created_ts, task_id"
        ))
        .bind(&filter.resource_id)
        .bind(filter.max_timestamp)
        .fetch_all(&self.pool)
        .await?;
        let tasks = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
        Ok(tasks
            .into_iter()
            .filter(|t| filter.actions.is_empty() || filter.actions.contains(&t.action))
            .filter(|t| filter.statuses.is_empty() || filter.statuses.contains(&t.status))
            .collect())
    }

    async fn prune_admin_tasks(&self, before_ts: i64) -> Result<u64> {
        let deleted = sqlx::query(
            "DELETE FROM admin_tasks \
             WHERE status IN ('complete', 'failed') AND updated_ts < ?",
        )
        .bind(before_ts)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    async fn all_rooms(&self) -> Result<Vec<RoomRecord>> {
        let rows = sqlx::query(
            "SELECT room_id, room_version, creator, created_ts, published, state_group \
             FROM rooms ORDER BY room_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(room_from_row).collect()
    }

    async fn delete_forward_extremities(&self, room_id: &str, keep: &str) -> Result<u64> {
        let deleted =
            sqlx::query("DELETE FROM forward_extremities WHERE room_id = ? AND event_id <> ?")
                .bind(room_id)
                .bind(keep)
                .execute(&self.pool)
                .await?;
        Ok(deleted.rows_affected())
    }

    async fn outbound_pdus_of_room(&self, room_id: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM federation_outbox \
             WHERE event_id IN (SELECT event_id FROM events WHERE room_id = ?)",
        )
        .bind(room_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn purge_history(&self, purge: &HistoryPurge) -> Result<Vec<String>> {
        let keep: HashSet<String> = self
            .reader
            .read(|db| extremities(db, &purge.room_id))
            .await?;
        self.writer
            .write(|tx| forget_queued_pdus(tx, &purge.room_id, Some(purge.before_depth)))
            .await?;
        let mut removed = Vec::new();
        let mut after = i64::MIN;
        loop {
            let batch = self
                .writer
                .write(|tx| history_batch(tx, purge, &keep, after))
                .await?;
            removed.extend(batch.removed);
            match batch.last {
                Some(last) => after = last,
                None => break,
            }
        }
        let unneeded = self
            .reader
            .read(|db| unneeded_groups(db, &purge.room_id))
            .await?;
        for chunk in unneeded.chunks(PURGE_BATCH) {
            self.writer.write(|tx| delete_groups(tx, chunk)).await?;
        }
        Ok(removed)
    }

    async fn purge_room(&self, room_id: &str) -> Result<Vec<String>> {
        self.writer
            .write(|tx| forget_queued_pdus(tx, room_id, None))
            .await?;
        let mut removed = Vec::new();
        loop {
            let batch = self
                .writer
                .write(|tx| room_events_batch(tx, room_id))
                .await?;
            if batch.is_empty() {
                break;
            }
            removed.extend(batch);
        }
        let outliers: Vec<String> = self
            .reader
            .read(|db| {
                ids_of(
                    db,
                    "SELECT event_id FROM outliers WHERE room_id = ?",
                    room_id,
                )
            })
            .await?;
        for chunk in outliers.chunks(PURGE_BATCH) {
            self.writer.write(|tx| delete_outliers(tx, chunk)).await?;
        }
        removed.extend(outliers);
        let groups: Vec<i64> = self
            .reader
            .read(|db| {
                let mut select = db.prepare_cached(
                    "SELECT id FROM state_groups WHERE room_id = ? ORDER BY id DESC",
                )?;
                collect(select.query([room_id])?, |row| Ok(row.get(0)?))
            })
            .await?;
        for chunk in groups.chunks(PURGE_BATCH) {
            self.writer.write(|tx| delete_groups(tx, chunk)).await?;
        }
        self.writer.write(|tx| room_rows(tx, room_id)).await?;
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
        // A list of strings always serialises.
        let types = serde_json::to_string(types).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT event_id FROM events \
             WHERE room_id = ?1 AND sender = ?2 AND redacted_by IS NULL \
               AND event_type IN (SELECT value FROM json_each(?3)) \
               AND (?4 IS NULL OR origin_server_ts >= ?4) \
               AND (?5 IS NULL OR origin_server_ts <= ?5) \
             ORDER BY stream DESC LIMIT ?6",
        )
        .bind(room_id)
        .bind(sender)
        .bind(types)
        .bind(after_ts)
        .bind(before_ts)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

fn task_from_row(row: &SqliteRow) -> Result<AdminTaskRecord> {
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

fn room_from_row(row: &SqliteRow) -> Result<RoomRecord> {
    Ok(RoomRecord {
        room_id: row.try_get("room_id")?,
        room_version: row.try_get("room_version")?,
        creator: row.try_get("creator")?,
        created_ts: row.try_get("created_ts")?,
        published: row.try_get("published")?,
        state_group: row.try_get("state_group")?,
    })
}

fn extremities(db: &Connection, room_id: &str) -> Result<HashSet<String>> {
    let ids = ids_of(
        db,
        "SELECT event_id FROM forward_extremities WHERE room_id = ?",
        room_id,
    )?;
    Ok(ids.into_iter().collect())
}

fn ids_of(db: &Connection, sql: &str, room_id: &str) -> Result<Vec<String>> {
    let mut select = db.prepare_cached(sql)?;
    collect(select.query([room_id])?, |row| Ok(row.get(0)?))
}

/// Takes the room's events out of the federation queue (all of them, or those below
/// `before_depth`): their rows are about to go. One pass over the queue, which has no index
/// by event.
fn forget_queued_pdus(
    tx: &Transaction<'_>,
    room_id: &str,
    before_depth: Option<i64>,
) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM federation_outbox WHERE event_id IN ( \
             SELECT event_id FROM events \
             WHERE room_id = ?1 AND (?2 IS NULL OR (depth < ?2 AND state_key IS NULL)))",
    )?
    .execute((room_id, before_depth))?;
    Ok(())
}

/// One batch of a history purge: what went, and the position to go on after (none at the
/// end of the room).
struct HistoryBatch {
    removed: Vec<String>,
    last: Option<i64>,
}

fn history_batch(
    tx: &Transaction<'_>,
    purge: &HistoryPurge,
    keep: &HashSet<String>,
    after: i64,
) -> Result<HistoryBatch> {
    let candidates: Vec<(i64, String, String)> = {
        let mut select = tx.prepare_cached(
            "SELECT stream, event_id, sender FROM events \
             WHERE room_id = ?1 AND stream > ?2 AND depth < ?3 AND state_key IS NULL \
             ORDER BY stream LIMIT ?4",
        )?;
        let rows = select.query((
            &purge.room_id,
            after,
            purge.before_depth,
            PURGE_BATCH as i64,
        ))?;
        collect(rows, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
    };
    let last = (candidates.len() == PURGE_BATCH)
        .then(|| candidates.last().map(|c| c.0))
        .flatten();
    let mut removed = Vec::new();
    for (stream, event_id, sender) in candidates {
        if keep.contains(&event_id) || is_kept_sender(&sender, purge.keep_local_of.as_deref()) {
            continue;
        }
        delete_event(tx, &purge.room_id, stream)?;
        removed.push(event_id);
    }
    Ok(HistoryBatch { removed, last })
}

/// Whether `sender` is a user of `server_name` (user ids are `@localpart:server_name`, and a
/// localpart has no `:`).
fn is_kept_sender(sender: &str, server_name: Option<&str>) -> bool {
    server_name.is_some_and(|ours| sender.split_once(':').is_some_and(|(_, s)| s == ours))
}

/// One timeline event and its notifications.
fn delete_event(tx: &Transaction<'_>, room_id: &str, stream: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM event_push_actions WHERE stream = ? AND room_id = ?")?
        .execute((stream, room_id))?;
    tx.prepare_cached("DELETE FROM room_push_actions WHERE room_id = ? AND stream = ?")?
        .execute((room_id, stream))?;
    tx.prepare_cached("DELETE FROM events WHERE stream = ?")?
        .execute([stream])?;
    Ok(())
}

/// One batch of the room's timeline events, oldest first; their ids (none once all are gone).
fn room_events_batch(tx: &Transaction<'_>, room_id: &str) -> Result<Vec<String>> {
    let events: Vec<(i64, String)> = {
        let mut select = tx.prepare_cached(
            "SELECT stream, event_id FROM events WHERE room_id = ? ORDER BY stream LIMIT ?",
        )?;
        collect(select.query((room_id, PURGE_BATCH as i64))?, |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
    };
    for (stream, _) in &events {
        delete_event(tx, room_id, *stream)?;
    }
    Ok(events.into_iter().map(|(_, id)| id).collect())
}

fn delete_outliers(tx: &Transaction<'_>, event_ids: &[String]) -> Result<()> {
    let mut delete = tx.prepare_cached("DELETE FROM outliers WHERE event_id = ?")?;
    for event_id in event_ids {
        delete.execute([event_id])?;
    }
    Ok(())
}

/// The room's state groups that no event, the room's current state nor its partial state
/// names, directly or as the base of a delta that is named; newest first, so that a delta
/// goes before the group it is based on.
fn unneeded_groups(db: &Connection, room_id: &str) -> Result<Vec<i64>> {
    let mut select = db.prepare_cached(
        "WITH RECURSIVE needed (id) AS ( \
             SELECT state_before FROM events WHERE room_id = ?1 \
             UNION SELECT state_after FROM events WHERE room_id = ?1 \
             UNION SELECT state_group FROM rooms WHERE room_id = ?1 \
             UNION SELECT state_group FROM partial_state_rooms WHERE room_id = ?1 \
             UNION SELECT g.prev_group FROM state_groups AS g JOIN needed AS n ON g.id = n.id \
                   WHERE g.prev_group IS NOT NULL \
         ) \
         SELECT id FROM state_groups \
         WHERE room_id = ?1 AND id NOT IN (SELECT id FROM needed) ORDER BY id DESC",
    )?;
    collect(select.query([room_id])?, |row| Ok(row.get(0)?))
}

/// Groups and their entries; a group still based on by another one is refused by its foreign
/// key, so callers hand deltas over before their bases.
fn delete_groups(tx: &Transaction<'_>, ids: &[i64]) -> Result<()> {
    let mut entries = tx.prepare_cached("DELETE FROM state_group_entries WHERE group_id = ?")?;
    let mut groups = tx.prepare_cached("DELETE FROM state_groups WHERE id = ?")?;
    for id in ids {
        entries.execute([id])?;
        groups.execute([id])?;
    }
    Ok(())
}

/// The purge's last transaction: every other row naming the room, and the room itself.
fn room_rows(tx: &Transaction<'_>, room_id: &str) -> Result<()> {
    for table in ROOM_TABLES {
        // The table names are this module's constants.
        tx.execute(&format!("DELETE FROM {table} WHERE room_id = ?"), [room_id])?;
    }
    // None are left by now either; in one statement each, a delta and its base go together.
    tx.prepare_cached(
        "DELETE FROM state_group_entries \
         WHERE group_id IN (SELECT id FROM state_groups WHERE room_id = ?)",
    )?
    .execute([room_id])?;
    tx.prepare_cached("DELETE FROM state_groups WHERE room_id = ?")?
        .execute([room_id])?;
    tx.prepare_cached("DELETE FROM rooms WHERE room_id = ?")?
        .execute([room_id])?;
    Ok(())
}
