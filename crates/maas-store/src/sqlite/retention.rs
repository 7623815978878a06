//! `RetentionStore` on a tenant's SQLite database (schema in `0008_retention.sql`). Every
//! batch is one transaction on the tenant's writer connection, between the event batches it
//! writes, so a large prune never holds the write lock for long.

use async_trait::async_trait;
use rusqlite::{OptionalExtension as _, Transaction};

use super::SqliteTenantStore;
use crate::retention::{CountedFrom, in_batches};
use crate::{Result, RetentionStore};

/// (room, user) pairs with a read receipt handled per transaction.
const RECEIPTS_PER_BATCH: usize = 200;
/// Rooms handled per transaction.
const ROOMS_PER_BATCH: usize = 100;
/// Device list changes deleted per transaction, about.
const CHANGES_PER_BATCH: i64 = 10_000;

/// The position of a user's newest unthreaded read receipt in a room: what their unread
/// counts start after (`rooms::sync::unread_counts_in`).
const READ_UP_TO: &str = "SELECT MAX(e.stream) FROM receipts AS r \
     JOIN events AS e ON e.event_id = r.event_id AND e.room_id = r.room_id \
     WHERE r.room_id = m.room_id AND r.user_id = m.user_id AND r.thread_id = '' \
       AND r.receipt_type IN ('m.read', 'm.read.private')";

#[async_trait]
impl RetentionStore for SqliteTenantStore {
    async fn mark_stream(&self, stream: i64, ts: i64) -> Result<()> {
        self.writer
            .write(|tx| {
                tx.prepare_cached(
                    "INSERT INTO stream_marks (stream, ts) VALUES (?, ?) \
                     ON CONFLICT (stream) DO NOTHING",
                )?
                .execute((stream, ts))?;
                Ok(())
            })
            .await
    }

    async fn stream_marked_by(&self, ts: i64) -> Result<Option<i64>> {
        self.reader
            .read(|db| {
                let mut statement =
                    db.prepare_cached("SELECT MAX(stream) FROM stream_marks WHERE ts <= ?")?;
                Ok(statement.query_row([ts], |row| row.get(0))?)
            })
            .await
    }

    async fn prune_stream_marks(&self, before_ts: i64) -> Result<u64> {
        self.writer
            .write(|tx| {
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM stream_marks WHERE ts < ?1 \
                         AND stream < (SELECT MAX(stream) FROM stream_marks WHERE ts < ?1)",
                    )?
                    .execute([before_ts])?;
                Ok(deleted as u64)
            })
            .await
    }

    async fn prune_read_push_actions(&self, up_to: i64) -> Result<u64> {
        in_batches((String::new(), String::new()), |after| async move {
            self.writer
                .write(|tx| read_push_actions_batch(tx, up_to, &after))
                .await
        })
        .await
    }

    async fn prune_room_push_actions(&self, up_to: i64, server_name: &str) -> Result<u64> {
        let suffix = format!(":{server_name}");
        in_batches(String::new(), |after| {
            let suffix = &suffix;
            async move {
                self.writer
                    .write(|tx| room_push_actions_batch(tx, up_to, suffix, &after))
                    .await
            }
        })
        .await
    }

    async fn prune_device_list_changes(&self, up_to: i64) -> Result<u64> {
        in_batches((), |()| async move {
            self.writer
                .write(|tx| device_list_changes_batch(tx, up_to))
                .await
        })
        .await
    }
}

/// One batch of (room, user) pairs after `after`: each user's own notifications in the room up
/// to their read receipt (and `up_to`). Returns what went and the last pair, when there may be
/// more.
fn read_push_actions_batch(
    tx: &Transaction<'_>,
    up_to: i64,
    after: &(String, String),
) -> Result<(u64, Option<(String, String)>)> {
    // The primary key of receipts (room_id, user_id, …) gives the pairs in order.
    let mut select = tx.prepare_cached(
        "SELECT r.room_id, r.user_id, MAX(e.stream) FROM receipts AS r \
         JOIN events AS e ON e.event_id = r.event_id AND e.room_id = r.room_id \
         WHERE (r.room_id, r.user_id) > (?1, ?2) AND r.thread_id = '' \
           AND r.receipt_type IN ('m.read', 'm.read.private') \
         GROUP BY r.room_id, r.user_id ORDER BY r.room_id, r.user_id LIMIT ?3",
    )?;
    let pairs = select
        .query_map((&after.0, &after.1, RECEIPTS_PER_BATCH as i64), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<(String, String, i64)>>>()?;
    let mut delete = tx.prepare_cached(
        "DELETE FROM event_push_actions WHERE user_id = ? AND room_id = ? AND stream <= ?",
    )?;
    let mut deleted = 0;
    for (room_id, user_id, read) in &pairs {
        deleted += delete.execute((user_id, room_id, (*read).min(up_to)))? as u64;
    }
    let last = (pairs.len() == RECEIPTS_PER_BATCH)
        .then(|| pairs.last().map(|(r, u, _)| (r.clone(), u.clone())))
        .flatten();
    Ok((deleted, last))
}

/// One batch of rooms after `after`: room-wide notifications that no joined local member but
/// their sender counts any more (and up to `up_to`). Returns what went and the last room,
/// when there may be more.
fn room_push_actions_batch(
    tx: &Transaction<'_>,
    up_to: i64,
    suffix: &str,
    after: &str,
) -> Result<(u64, Option<String>)> {
    let rooms = tx
        .prepare_cached("SELECT room_id FROM rooms WHERE room_id > ? ORDER BY room_id LIMIT ?")?
        .query_map((after, ROOMS_PER_BATCH as i64), |row| {
            row.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    // A member counts room-wide notifications after both their read receipt and their join:
    // the two members who count from the earliest points.
    let mut earliest = tx.prepare_cached(&format!(
        "SELECT m.user_id, MAX(COALESCE(({READ_UP_TO}), 0), COALESCE(m.joined_since, 0)) \
         FROM room_memberships AS m \
         WHERE m.room_id = ?1 AND m.membership = 'join' \
           AND substr(m.user_id, -length(?2)) = ?2 \
         ORDER BY 2, 1 LIMIT 2"
    ))?;
    let mut delete = tx.prepare_cached(
        "DELETE FROM room_push_actions \
         WHERE room_id = ?1 AND stream <= ?2 AND (stream <= ?3 OR sender = ?4)",
    )?;
    let mut deleted = 0;
    for room_id in &rooms {
        let counting = earliest
            .query_map((room_id, suffix), |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
        let bounds = CountedFrom::of(&counting, up_to);
        deleted +=
            delete.execute((room_id, bounds.others, bounds.first, &bounds.first_user))? as u64;
    }
    let last = (rooms.len() == ROOMS_PER_BATCH)
        .then(|| rooms.last().cloned())
        .flatten();
    Ok((deleted, last))
}

/// Deletes the oldest changes up to `up_to`, about `CHANGES_PER_BATCH` of them (whole
/// positions), and moves the pruned mark to the last position deleted: a token at or after it
/// misses nothing. Returns what went, and `Some` when more may be left.
fn device_list_changes_batch(tx: &Transaction<'_>, up_to: i64) -> Result<(u64, Option<()>)> {
    let bound: Option<i64> = tx
        .prepare_cached(
            "SELECT stream FROM device_list_changes WHERE stream <= ? \
             ORDER BY stream LIMIT 1 OFFSET ?",
        )?
        .query_row((up_to, CHANGES_PER_BATCH), |row| row.get(0))
        .optional()?;
    let last: Option<i64> = tx
        .prepare_cached("SELECT MAX(stream) FROM device_list_changes WHERE stream <= ?")?
        .query_row([bound.unwrap_or(up_to)], |row| row.get(0))?;
    let Some(last) = last else {
        return Ok((0, None));
    };
    let deleted = tx
        .prepare_cached("DELETE FROM device_list_changes WHERE stream <= ?")?
        .execute([last])?;
    // A signer's own view of others' keys goes with them, behind the same mark.
    tx.prepare_cached("DELETE FROM signature_changes WHERE stream <= ?")?
        .execute([last])?;
    tx.prepare_cached(
        "UPDATE counters SET device_lists_pruned_through = MAX(device_lists_pruned_through, ?)",
    )?
    .execute([last])?;
    Ok((deleted as u64, bound.map(|_| ())))
}
