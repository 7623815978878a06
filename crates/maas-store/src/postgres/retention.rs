//! `RetentionStore` on a tenant's PostgreSQL schema (schema in `0007_retention.sql`). Every
//! batch is one transaction, so a large prune never holds row locks for long; a batch of
//! receipts or rooms is one statement.

use async_trait::async_trait;

use super::PostgresTenantStore;
use super::util::SchemaTx;
use crate::retention::{CountedFrom, in_batches};
use crate::{Result, RetentionStore};

/// (room, user) pairs with a read receipt handled per transaction.
const RECEIPTS_PER_BATCH: i64 = 200;
/// Rooms handled per transaction.
const ROOMS_PER_BATCH: i64 = 100;
/// Device list changes deleted per transaction, about.
const CHANGES_PER_BATCH: i64 = 10_000;

#[async_trait]
impl RetentionStore for PostgresTenantStore {
    async fn mark_stream(&self, stream: i64, ts: i64) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO stream_marks (stream, ts) VALUES ($1, $2) \
             ON CONFLICT (stream) DO NOTHING",
        )
        .bind(stream)
        .bind(ts)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn stream_marked_by(&self, ts: i64) -> Result<Option<i64>> {
        let mut conn = self.schema.conn().await?;
        let stream = sqlx::query_scalar("SELECT MAX(stream) FROM stream_marks WHERE ts <= $1")
            .bind(ts)
            .fetch_one(&mut *conn)
            .await?;
        Ok(stream)
    }

    async fn prune_stream_marks(&self, before_ts: i64) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let deleted = sqlx::query(
            "DELETE FROM stream_marks WHERE ts < $1 \
             AND stream < (SELECT MAX(stream) FROM stream_marks WHERE ts < $1)",
        )
        .bind(before_ts)
        .execute(&mut *conn)
        .await?;
        Ok(deleted.rows_affected())
    }

    async fn prune_read_push_actions(&self, up_to: i64) -> Result<u64> {
        in_batches((String::new(), String::new()), |after| async move {
            let mut tx = self.schema.begin().await?;
            let done = read_push_actions_batch(&mut tx, up_to, &after).await?;
            tx.commit().await?;
            Ok(done)
        })
        .await
    }

    async fn prune_room_push_actions(&self, up_to: i64, server_name: &str) -> Result<u64> {
        let suffix = format!(":{server_name}");
        in_batches(String::new(), |after| {
            let suffix = &suffix;
            async move {
                let mut tx = self.schema.begin().await?;
                let done = room_push_actions_batch(&mut tx, up_to, suffix, &after).await?;
                tx.commit().await?;
                Ok(done)
            }
        })
        .await
    }

    async fn prune_device_list_changes(&self, up_to: i64) -> Result<u64> {
        in_batches((), |()| async move {
            let mut tx = self.schema.begin().await?;
            let done = device_list_changes_batch(&mut tx, up_to).await?;
            tx.commit().await?;
            Ok(done)
        })
        .await
    }
}

/// One batch of (room, user) pairs after `after`: each user's own notifications in the room up
/// to their newest unthreaded read receipt (and `up_to`), as unread counts start after it
/// (`rooms::sync::unread_counts_in`). Returns what went and the last pair, when there may be
/// more.
async fn read_push_actions_batch(
    tx: &mut SchemaTx,
    up_to: i64,
    after: &(String, String),
) -> Result<(u64, Option<(String, String)>)> {
    let pairs: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT r.room_id, r.user_id FROM receipts AS r \
         WHERE (r.room_id, r.user_id) > ($1, $2) AND r.thread_id = '' \
           AND r.receipt_type IN ('m.read', 'm.read.private') \
         ORDER BY r.room_id, r.user_id LIMIT $3",
    )
    .bind(&after.0)
    .bind(&after.1)
    .bind(RECEIPTS_PER_BATCH)
    .fetch_all(&mut **tx)
    .await?;
    let (rooms, users): (Vec<String>, Vec<String>) = pairs.iter().cloned().unzip();
    // A receipt for an event that isn't stored leaves `read` NULL: nothing of its pair goes.
    let deleted = sqlx::query(
        "DELETE FROM event_push_actions AS a \
         USING (SELECT p.room_id, p.user_id, \
                       (SELECT MAX(e.stream) FROM receipts AS r \
                        JOIN events AS e ON e.event_id = r.event_id AND e.room_id = r.room_id \
                        WHERE r.room_id = p.room_id AND r.user_id = p.user_id \
                          AND r.thread_id = '' \
                          AND r.receipt_type IN ('m.read', 'm.read.private')) AS read \
                FROM unnest($1::text[], $2::text[]) AS p (room_id, user_id)) AS p \
         WHERE a.user_id = p.user_id AND a.room_id = p.room_id \
           AND a.stream <= p.read AND a.stream <= $3",
    )
    .bind(&rooms)
    .bind(&users)
    .bind(up_to)
    .execute(&mut **tx)
    .await?;
    let last = (pairs.len() as i64 == RECEIPTS_PER_BATCH)
        .then(|| pairs.last().cloned())
        .flatten();
    Ok((deleted.rows_affected(), last))
}

/// One batch of rooms after `after`: room-wide notifications that no joined local member but
/// their sender counts any more (and up to `up_to`). Returns what went and the last room,
/// when there may be more.
async fn room_push_actions_batch(
    tx: &mut SchemaTx,
    up_to: i64,
    suffix: &str,
    after: &str,
) -> Result<(u64, Option<String>)> {
    let rooms: Vec<String> = sqlx::query_scalar(
        "SELECT room_id FROM rooms WHERE room_id > $1 ORDER BY room_id LIMIT $2",
    )
    .bind(after)
    .bind(ROOMS_PER_BATCH)
    .fetch_all(&mut **tx)
    .await?;
    let mut deleted = 0;
    for room_id in &rooms {
        // A member counts room-wide notifications after both their read receipt and their
        // join: the two members who count from the earliest points.
        let counting: Vec<(String, i64)> = sqlx::query_as(
            "SELECT m.user_id, GREATEST( \
                 COALESCE((SELECT MAX(e.stream) FROM receipts AS r \
                           JOIN events AS e ON e.event_id = r.event_id AND e.room_id = r.room_id \
                           WHERE r.room_id = m.room_id AND r.user_id = m.user_id \
                             AND r.thread_id = '' \
                             AND r.receipt_type IN ('m.read', 'm.read.private')), 0), \
                 COALESCE(m.joined_since, 0)) AS counted_from \
             FROM room_memberships AS m \
             WHERE m.room_id = $1 AND m.membership = 'join' \
               AND right(m.user_id, length($2)) = $2 \
             ORDER BY 2, 1 LIMIT 2",
        )
        .bind(room_id)
        .bind(suffix)
        .fetch_all(&mut **tx)
        .await?;
        let bounds = CountedFrom::of(&counting, up_to);
        deleted += sqlx::query(
            "DELETE FROM room_push_actions \
             WHERE room_id = $1 AND stream <= $2 AND (stream <= $3 OR sender = $4)",
        )
        .bind(room_id)
        .bind(bounds.others)
        .bind(bounds.first)
        .bind(&bounds.first_user)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    let last = (rooms.len() as i64 == ROOMS_PER_BATCH)
        .then(|| rooms.last().cloned())
        .flatten();
    Ok((deleted, last))
}

/// Deletes the oldest changes up to `up_to`, about `CHANGES_PER_BATCH` of them (whole
/// positions), and moves the pruned mark to the last position deleted: a token at or after it
/// misses nothing. Returns what went, and `Some` when more may be left.
async fn device_list_changes_batch(tx: &mut SchemaTx, up_to: i64) -> Result<(u64, Option<()>)> {
    let bound: Option<i64> = sqlx::query_scalar(
        "SELECT stream FROM device_list_changes WHERE stream <= $1 \
         ORDER BY stream LIMIT 1 OFFSET $2",
    )
    .bind(up_to)
    .bind(CHANGES_PER_BATCH)
    .fetch_optional(&mut **tx)
    .await?;
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(stream) FROM device_list_changes WHERE stream <= $1")
            .bind(bound.unwrap_or(up_to))
            .fetch_one(&mut **tx)
            .await?;
    let Some(last) = last else {
        return Ok((0, None));
    };
    let deleted = sqlx::query("DELETE FROM device_list_changes WHERE stream <= $1")
        .bind(last)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    // A signer's own view of others' keys goes with them, behind the same mark.
    sqlx::query("DELETE FROM signature_changes WHERE stream <= $1")
        .bind(last)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE counters SET device_lists_pruned_through = \
         GREATEST(device_lists_pruned_through, $1)",
    )
    .bind(last)
    .execute(&mut **tx)
    .await?;
    Ok((deleted, bound.map(|_| ())))
}
