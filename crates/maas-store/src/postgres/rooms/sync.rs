//! `SyncStore` on a tenant's PostgreSQL schema: the per-room reads of sync for many rooms in
//! one statement. The ids go in as one array (a single bind parameter, fixed statement text);
//! "the newest N of each room" is a LATERAL subquery with LIMIT per listed room, one index
//! range read each, whatever the size of the rooms.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{PgConnection, Row};

use crate::postgres::PostgresTenantStore;
use crate::postgres::util::to_u64;
use crate::rows::{event_from_row, membership_from_row};
use crate::{
    EventRecord, MemberSummary, MembershipRecord, Result, StateEntry, StoreError, StreamRange,
    SyncStore, UnreadCounts,
};

/// Chains longer than this can only come from a damaged database (or a cycle); as in `state`.
const MAX_CHAIN: i64 = 10_000;

/// Every event column, of the events table aliased `e`.
macro_rules! event_columns {
    () => {
        "e.stream, e.event_id, e.room_id, e.depth, e.event_type, e.state_key, e.sender, \
         e.origin_server_ts, e.pdu, e.state_before, e.state_after, e.redacted_by, \
         e.txn_localpart, e.txn_device_id, e.txn_scope, e.txn_id, e.rel_type, e.parent_event_id"
    };
}

#[async_trait]
impl SyncStore for PostgresTenantStore {
    async fn latest_room_events(
        &self,
        room_ids: &[String],
        range: StreamRange,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        if room_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM (SELECT DISTINCT unnest($1::text[]) AS room_id) AS r \
             CROSS JOIN LATERAL ( \
                 SELECT * FROM events \
                 WHERE room_id = r.room_id AND stream > $2 AND stream <= $3 \
                 ORDER BY stream DESC LIMIT $4) AS e \
             ORDER BY e.stream"
        ))
        .bind(room_ids)
        .bind(range.after)
        .bind(range.up_to)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn children_of(
        &self,
        parent_event_ids: &[String],
        rel_types: &[&str],
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        if parent_event_ids.is_empty() || rel_types.is_empty() {
            return Ok(Vec::new());
        }
        // Each parent is a read of the (parent_event_id, rel_type, stream) index; most events
        // have no children, so most reads find nothing.
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM (SELECT DISTINCT unnest($1::text[]) AS parent) AS p \
             CROSS JOIN LATERAL ( \
                 SELECT * FROM events \
                 WHERE parent_event_id = p.parent AND rel_type = ANY($2) \
                 ORDER BY stream LIMIT $3) AS e \
             ORDER BY e.stream"
        ))
        .bind(parent_event_ids)
        .bind(rel_types)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn state_groups(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<StateEntry>)>> {
        let ids: Vec<i64> = ids
            .iter()
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // One statement, so one snapshot. `chain` follows every listed group (`start`) down to
        // its snapshot; `ends` is the last group reached from each, whose `prev_group` must be
        // NULL; `resolved` gives each key the entry of the newest group (the smallest depth)
        // that sets it. Rows without an entry are the ends.
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "WITH RECURSIVE chain (start, id, prev_group, depth) AS ( \
                 SELECT id, id, prev_group, 0::bigint FROM state_groups WHERE id = ANY($1) \
                 UNION ALL \
                 SELECT c.start, g.id, g.prev_group, c.depth + 1 \
                 FROM chain AS c JOIN state_groups AS g ON g.id = c.prev_group \
                 WHERE c.depth < $2 \
             ), \
             ends AS ( \
                 SELECT DISTINCT ON (start) start, prev_group FROM chain \
                 ORDER BY start, depth DESC \
             ), \
             resolved AS ( \
                 SELECT DISTINCT ON (c.start, e.event_type, e.state_key) \
                        c.start, e.event_type, e.state_key, e.event_id \
                 FROM chain AS c JOIN state_group_entries AS e ON e.group_id = c.id \
                 ORDER BY c.start, e.event_type, e.state_key, c.depth \
             ) \
             SELECT start, prev_group AS oldest_prev, NULL::text AS event_type, \
                    NULL::text AS state_key, NULL::text AS event_id \
             FROM ends \
             UNION ALL \
             SELECT start, NULL, event_type, state_key, event_id FROM resolved",
        )
        .bind(&ids)
        .bind(MAX_CHAIN)
        .fetch_all(&mut *conn)
        .await?;
        let mut groups: HashMap<i64, Vec<StateEntry>> = HashMap::with_capacity(ids.len());
        for row in &rows {
            let start: i64 = row.try_get("start")?;
            let Some(event_type) = row.try_get::<Option<String>, _>("event_type")? else {
                if row.try_get::<Option<i64>, _>("oldest_prev")?.is_some() {
                    return Err(StoreError::Corrupt(format!(
                        "state group {start} does not reach a snapshot within {MAX_CHAIN} groups"
                    )));
                }
                groups.entry(start).or_default();
                continue;
            };
            groups.entry(start).or_default().push(StateEntry {
                event_type,
                state_key: row.try_get("state_key")?,
                event_id: row.try_get("event_id")?,
            });
        }
        if let Some(missing) = ids.iter().find(|id| !groups.contains_key(id)) {
            return Err(StoreError::NotFound(format!("state group {missing}")));
        }
        Ok(groups.into_iter().collect())
    }

    async fn member_summaries(
        &self,
        room_ids: &[String],
        user_id: &str,
        max_heroes: u32,
    ) -> Result<Vec<MemberSummary>> {
        if room_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Per room: two counts and the first heroes from the room's rows of the primary key
        // (room_id, user_id), whose order (COLLATE "C") is byte order, as on SQLite.
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT r.room_id, \
                    (SELECT COUNT(*) FROM room_memberships \
                     WHERE room_id = r.room_id AND membership = 'join') AS joined, \
                    (SELECT COUNT(*) FROM room_memberships \
                     WHERE room_id = r.room_id AND membership = 'invite') AS invited, \
                    ARRAY(SELECT user_id FROM room_memberships \
                          WHERE room_id = r.room_id AND membership IN ('join', 'invite') \
                            AND user_id <> $2 \
                          ORDER BY user_id LIMIT $3) AS heroes \
             FROM (SELECT DISTINCT unnest($1::text[]) AS room_id) AS r",
        )
        .bind(room_ids)
        .bind(user_id)
        .bind(i64::from(max_heroes))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberSummary {
                    room_id: row.try_get("room_id")?,
                    joined: to_u64(row.try_get("joined")?, "joined members")?,
                    invited: to_u64(row.try_get("invited")?, "invited members")?,
                    heroes: row.try_get("heroes")?,
                })
            })
            .collect()
    }

    async fn unread_counts_in(
        &self,
        room_ids: &[String],
        user_id: &str,
    ) -> Result<Vec<UnreadCounts>> {
        if room_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.schema.conn().await?;
        unread_counts_in(&mut conn, room_ids, user_id).await
    }

    async fn users_joined_to_any(
        &self,
        user_ids: &[String],
        room_ids: &[String],
    ) -> Result<Vec<String>> {
        if user_ids.is_empty() || room_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Each listed user is one read of the by-user index, checked against the rooms.
        let mut conn = self.schema.conn().await?;
        let users = sqlx::query_scalar(
            "SELECT DISTINCT user_id FROM room_memberships \
             WHERE user_id = ANY($1) AND membership = 'join' AND room_id = ANY($2)",
        )
        .bind(user_ids)
        .bind(room_ids)
        .fetch_all(&mut *conn)
        .await?;
        Ok(users)
    }

    async fn membership_changes_in(
        &self,
        room_ids: &[String],
        range: StreamRange,
    ) -> Result<Vec<MembershipRecord>> {
        if room_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One range of the (room_id, stream) index per room: the cost follows the changes,
        // not the room's size.
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT m.* FROM (SELECT DISTINCT unnest($1::text[]) AS room_id) AS r \
             JOIN room_memberships AS m ON m.room_id = r.room_id \
             WHERE m.stream > $2 AND m.stream <= $3 \
             ORDER BY m.stream",
        )
        .bind(room_ids)
        .bind(range.after)
        .bind(range.up_to)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(membership_from_row).collect()
    }
}

/// `(notifications, highlights)` of `user_id` in each of `room_ids` that has some, as
/// `PushStore::unread_notification_counts` defines them.
///
/// `last_read` holds per room and receipt thread ('' for unthreaded receipts) the stream of
/// the newest event read. Per room, notifications are the user's own rows after the unthreaded
/// receipt, plus the room's rows after both that receipt and the start of the user's join
/// (`room_from`), minus the own rows that replace one of those. Each is a range of a primary
/// key, counted without a per-row lookup unless the user has read a thread further than the
/// room (`threaded`): then each row is checked against its thread's receipt.
pub(in crate::postgres) async fn unread_counts_in(
    conn: &mut PgConnection,
    room_ids: &[String],
    user_id: &str,
) -> Result<Vec<UnreadCounts>> {
    let rows = sqlx::query(
        "WITH last_read (room_id, thread_id, stream) AS ( \
             SELECT r.room_id, r.thread_id, MAX(e.stream) \
             FROM receipts AS r JOIN events AS e ON e.event_id = r.event_id \
             WHERE r.room_id = ANY($1) AND r.user_id = $2 \
               AND r.receipt_type IN ('m.read', 'm.read.private') AND e.room_id = r.room_id \
             GROUP BY r.room_id, r.thread_id \
         ), \
         since (room_id, unthreaded, room_from, threaded) AS MATERIALIZED ( \
             SELECT rooms.room_id, COALESCE(u.stream, 0), \
                    CASE WHEN m.joined_since IS NULL THEN $3 \
                         ELSE GREATEST(COALESCE(u.stream, 0), m.joined_since) END, \
                    EXISTS (SELECT 1 FROM last_read AS t \
                            WHERE t.room_id = rooms.room_id AND t.thread_id <> '' \
                              AND t.stream > COALESCE(u.stream, 0)) \
             FROM (SELECT DISTINCT unnest($1::text[]) COLLATE \"C\" AS room_id) AS rooms \
             LEFT JOIN last_read AS u ON u.room_id = rooms.room_id AND u.thread_id = '' \
             LEFT JOIN room_memberships AS m \
                 ON m.room_id = rooms.room_id AND m.user_id = $2 AND m.membership = 'join' \
         ) \
         SELECT s.room_id, COALESCE(own.notifications, 0) + room.notifications AS notifications, \
                own.highlights \
         FROM since AS s \
         CROSS JOIN LATERAL ( \
             SELECT SUM(a.notify::int - (a.replaces_room AND a.stream > s.room_from)::int) \
                        AS notifications, \
                    COUNT(*) FILTER (WHERE a.highlight) AS highlights \
             FROM event_push_actions AS a \
             WHERE a.user_id = $2 AND a.room_id = s.room_id AND a.stream > s.unthreaded \
               AND (NOT s.threaded OR a.stream > COALESCE( \
                   (SELECT t.stream FROM last_read AS t \
                    WHERE t.room_id = a.room_id AND t.thread_id = a.thread_id), 0)) \
         ) AS own \
         CROSS JOIN LATERAL ( \
             SELECT COUNT(*) AS notifications \
             FROM room_push_actions AS n \
             WHERE n.room_id = s.room_id AND n.stream > s.room_from AND n.sender <> $2 \
               AND (NOT s.threaded OR n.stream > COALESCE( \
                   (SELECT t.stream FROM last_read AS t \
                    WHERE t.room_id = n.room_id AND t.thread_id = n.thread_id), 0)) \
         ) AS room \
         WHERE COALESCE(own.notifications, 0) + room.notifications > 0",
    )
    .bind(room_ids)
    .bind(user_id)
    // `room_from` of a room the user is not joined to: no room row is theirs.
    .bind(i64::MAX)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(UnreadCounts {
                room_id: row.try_get("room_id")?,
                notifications: to_u64(row.try_get("notifications")?, "notifications")?,
                highlights: to_u64(row.try_get("highlights")?, "highlights")?,
            })
        })
        .collect()
}
