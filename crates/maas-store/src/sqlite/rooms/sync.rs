//! `SyncStore` on a tenant's SQLite database: the per-room reads of sync for many rooms in one
//! statement. The ids go in as a JSON array (one bind parameter, fixed statement text, so the
//! prepared statement is reused); SQLite has no LATERAL join, so "the newest N of each room"
//! is a correlated subquery per listed room that finds where that room's window starts, followed
//! by one index range read per room. All run on the tenant's direct reader: an incremental
//! sync's few rooms on the caller's thread, an initial sync's many off the runtime's workers.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use rusqlite::Connection;

use super::ID_CHUNK;
use crate::rows::{Columns, event_from_row, membership_from_row};
use crate::sqlite::SqliteTenantStore;
use crate::sqlite::raw;
use crate::sqlite::util::{to_json, to_u64};
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
impl SyncStore for SqliteTenantStore {
    async fn latest_room_events(
        &self,
        room_ids: &[String],
        range: StreamRange,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        let mut events = self
            .in_chunks(&distinct(room_ids), |db, chunk| {
                latest_room_events(db, chunk, range, limit)
            })
            .await?;
        events.sort_by_key(|e| e.stream);
        Ok(events)
    }

    async fn children_of(
        &self,
        parent_event_ids: &[String],
        rel_types: &[&str],
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        let mut events = self
            .in_chunks(&distinct(parent_event_ids), |db, chunk| {
                children_of(db, chunk, rel_types, limit)
            })
            .await?;
        events.sort_by_key(|e| e.stream);
        Ok(events)
    }

    async fn state_groups(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<StateEntry>)>> {
        let ids: Vec<i64> = ids
            .iter()
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.in_chunks(&ids, state_groups).await
    }

    async fn member_summaries(
        &self,
        room_ids: &[String],
        user_id: &str,
        max_heroes: u32,
    ) -> Result<Vec<MemberSummary>> {
        self.in_chunks(&distinct(room_ids), |db, chunk| {
            member_summaries(db, chunk, user_id, max_heroes)
        })
        .await
    }

    async fn unread_counts_in(
        &self,
        room_ids: &[String],
        user_id: &str,
    ) -> Result<Vec<UnreadCounts>> {
        self.in_chunks(&distinct(room_ids), |db, chunk| {
            unread_counts_in(db, chunk, user_id)
        })
        .await
    }

    async fn users_joined_to_any(
        &self,
        user_ids: &[String],
        room_ids: &[String],
    ) -> Result<Vec<String>> {
        if room_ids.is_empty() {
            return Ok(Vec::new());
        }
        // The rooms go in whole: each listed user is one range read of the by-user index,
        // checked against them.
        let rooms = to_json(&room_ids, "room ids")?;
        self.in_chunks(&distinct(user_ids), |db, chunk| {
            let mut statement = db.prepare_cached(
                "SELECT DISTINCT user_id FROM room_memberships \
                 WHERE user_id IN (SELECT value FROM json_each(?1)) AND membership = 'join' \
                   AND room_id IN (SELECT value FROM json_each(?2))",
            )?;
            let found = statement.query((to_json(&chunk, "user ids")?, &rooms))?;
            raw::collect(found, |row| row.text("user_id"))
        })
        .await
    }

    async fn membership_changes_in(
        &self,
        room_ids: &[String],
        range: StreamRange,
    ) -> Result<Vec<MembershipRecord>> {
        let mut changes = self
            .in_chunks(&distinct(room_ids), |db, chunk| {
                // One range of the (room_id, stream) index per room: the cost follows the
                // changes, not the room's size.
                let mut statement = db.prepare_cached(
                    "SELECT m.* FROM json_each(?1) AS r CROSS JOIN room_memberships AS m \
                     WHERE m.room_id = r.value AND m.stream > ?2 AND m.stream <= ?3",
                )?;
                let rows =
                    statement.query((to_json(&chunk, "room ids")?, range.after, range.up_to))?;
                raw::collect(rows, membership_from_row)
            })
            .await?;
        changes.sort_by_key(|m| m.stream);
        Ok(changes)
    }
}

impl SqliteTenantStore {
    /// `read` of every chunk of `ids` in turn, on the tenant's direct reader, as one read of
    /// all of them (`Direct::read_many`).
    async fn in_chunks<I: Sync, T>(
        &self,
        ids: &[I],
        read: impl Fn(&Connection, &[I]) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        self.reader
            .read_many(ids.len(), |db| {
                let mut out = Vec::new();
                for chunk in ids.chunks(ID_CHUNK) {
                    out.extend(read(db, chunk)?);
                }
                Ok(out)
            })
            .await
    }
}

/// `ids` without repeats, in first-seen order: a repeated id must not be answered twice when
/// its copies fall into different chunks.
fn distinct(ids: &[String]) -> Vec<&str> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .collect()
}

fn latest_room_events(
    db: &Connection,
    room_ids: &[&str],
    range: StreamRange,
    limit: u32,
) -> Result<Vec<EventRecord>> {
    // `bounds.low` is the stream of the room's (limit+1)-th newest event in range (or the
    // range's start when there are fewer): the events above it are the newest `limit`. Both
    // reads walk the (room_id, stream) index of one room; CROSS JOIN keeps the rooms outside.
    let mut statement = db.prepare_cached(concat!(
        "WITH bounds (room_id, low) AS ( \
             SELECT r.value, COALESCE( \
                 (SELECT stream FROM events \
                  WHERE room_id = r.value AND stream > ?2 AND stream <= ?3 \
                  ORDER BY stream DESC LIMIT 1 OFFSET ?4), \
                 ?2) \
             FROM json_each(?1) AS r \
         ) \
         SELECT ",
        event_columns!(),
        " FROM bounds AS b CROSS JOIN events AS e \
         WHERE e.room_id = b.room_id AND e.stream > b.low AND e.stream <= ?3"
    ))?;
    let rows = statement.query((
        to_json(&room_ids, "room ids")?,
        range.after,
        range.up_to,
        i64::from(limit),
    ))?;
    raw::collect(rows, event_from_row)
}

fn children_of(
    db: &Connection,
    parent_event_ids: &[&str],
    rel_types: &[&str],
    limit: u32,
) -> Result<Vec<EventRecord>> {
    // Both lists are probed on the (parent_event_id, rel_type, stream) index; the window
    // numbers each parent's children oldest first. Most events have no children at all, so
    // this reads little more than the index entries it finds.
    let mut statement = db.prepare_cached(concat!(
        "SELECT ",
        event_columns!(),
        " FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY parent_event_id ORDER BY stream) AS n \
                FROM events \
                WHERE parent_event_id IN (SELECT value FROM json_each(?1)) \
                  AND rel_type IN (SELECT value FROM json_each(?2))) AS e \
         WHERE e.n <= ?3"
    ))?;
    let rows = statement.query((
        to_json(&parent_event_ids, "event ids")?,
        to_json(&rel_types, "relation types")?,
        i64::from(limit),
    ))?;
    raw::collect(rows, event_from_row)
}

fn state_groups(db: &Connection, ids: &[i64]) -> Result<Vec<(i64, Vec<StateEntry>)>> {
    // One statement, so one snapshot. `chain` follows every listed group (`start`) down to its
    // snapshot. The first part gives one row per reached group with the `prev_group` of the
    // last group of its chain (SQLite fills bare columns of a MAX() aggregate from the row
    // holding the maximum), which must be NULL; the second each group's entries, each key
    // taking the entry of the newest group (the smallest depth) that sets it.
    let mut statement = db.prepare_cached(
        "WITH RECURSIVE chain (start, id, prev_group, depth) AS ( \
             SELECT id, id, prev_group, 0 FROM state_groups \
             WHERE id IN (SELECT value FROM json_each(?1)) \
             UNION ALL \
             SELECT c.start, g.id, g.prev_group, c.depth + 1 \
             FROM chain AS c JOIN state_groups AS g ON g.id = c.prev_group \
             WHERE c.depth < ?2 \
         ) \
         SELECT start, prev_group AS oldest_prev, NULL AS event_type, NULL AS state_key, \
                NULL AS event_id, MAX(depth) \
         FROM chain GROUP BY start \
         UNION ALL \
         SELECT c.start, NULL, e.event_type, e.state_key, e.event_id, MIN(c.depth) \
         FROM chain AS c JOIN state_group_entries AS e ON e.group_id = c.id \
         GROUP BY c.start, e.event_type, e.state_key",
    )?;
    let mut rows = statement.query((to_json(&ids, "state group ids")?, MAX_CHAIN))?;
    let mut groups: HashMap<i64, Vec<StateEntry>> = HashMap::with_capacity(ids.len());
    while let Some(row) = rows.next()? {
        let start = row.int("start")?;
        // Rows without an entry are the chain ends.
        let Some(event_type) = row.text_or_null("event_type")? else {
            if row.get::<_, Option<i64>>("oldest_prev")?.is_some() {
                return Err(StoreError::Corrupt(format!(
                    "state group {start} does not reach a snapshot within {MAX_CHAIN} groups"
                )));
            }
            groups.entry(start).or_default();
            continue;
        };
        groups.entry(start).or_default().push(StateEntry {
            event_type,
            state_key: row.text("state_key")?,
            event_id: row.text("event_id")?,
        });
    }
    if let Some(missing) = ids.iter().find(|id| !groups.contains_key(id)) {
        return Err(StoreError::NotFound(format!("state group {missing}")));
    }
    Ok(groups.into_iter().collect())
}

fn member_summaries(
    db: &Connection,
    room_ids: &[&str],
    user_id: &str,
    max_heroes: u32,
) -> Result<Vec<MemberSummary>> {
    // Per room: two counts and the first heroes, each from the room's rows of the primary key
    // (room_id, user_id), whose order is the heroes' order.
    let mut statement = db.prepare_cached(
        "SELECT r.value AS room_id, \
                (SELECT COUNT(*) FROM room_memberships \
                 WHERE room_id = r.value AND membership = 'join') AS joined, \
                (SELECT COUNT(*) FROM room_memberships \
                 WHERE room_id = r.value AND membership = 'invite') AS invited, \
                (SELECT json_group_array(user_id) FROM ( \
                     SELECT user_id FROM room_memberships \
                     WHERE room_id = r.value AND membership IN ('join', 'invite') \
                       AND user_id <> ?2 \
                     ORDER BY user_id LIMIT ?3)) AS heroes \
         FROM json_each(?1) AS r",
    )?;
    let rows = statement.query((
        to_json(&room_ids, "room ids")?,
        user_id,
        i64::from(max_heroes),
    ))?;
    raw::collect(rows, |row| {
        let heroes = row.text("heroes")?;
        let mut heroes: Vec<String> = serde_json::from_str(&heroes)
            .map_err(|e| StoreError::Corrupt(format!("heroes: {e}")))?;
        // The aggregate's input order is the subquery's in practice; sorting makes it so.
        heroes.sort_unstable();
        Ok(MemberSummary {
            room_id: row.text("room_id")?,
            joined: to_u64(row.int("joined")?, "joined members")?,
            invited: to_u64(row.int("invited")?, "invited members")?,
            heroes,
        })
    })
}

/// `(notifications, highlights)` of `user_id` in each of `room_ids` that has some, as
/// `PushStore::unread_notification_counts` defines them.
///
/// `read` holds per room and receipt thread ('' for unthreaded receipts) the stream of the
/// newest event read. Per room, notifications are the user's own rows after the unthreaded
/// receipt, plus the room's rows after both that receipt and the start of the user's join
/// (`room_from`), minus the own rows that replace one of those. Each is a range of a primary
/// key, counted without a per-row lookup unless the user has read a thread further than the
/// room (`threaded`): then each row is checked against its thread's receipt.
pub(in crate::sqlite) fn unread_counts_in(
    db: &Connection,
    room_ids: &[&str],
    user_id: &str,
) -> Result<Vec<UnreadCounts>> {
    // Materialised: `since` is read once per room, not once per row, and `counts` once.
    let mut statement = db.prepare_cached(
        "WITH rooms (room_id) AS (SELECT DISTINCT value FROM json_each(?1)), \
         read (room_id, thread_id, stream) AS ( \
             SELECT r.room_id, r.thread_id, MAX(e.stream) \
             FROM receipts AS r JOIN events AS e ON e.event_id = r.event_id \
             WHERE r.room_id IN (SELECT room_id FROM rooms) AND r.user_id = ?2 \
               AND r.receipt_type IN ('m.read', 'm.read.private') AND e.room_id = r.room_id \
             GROUP BY r.room_id, r.thread_id \
         ), \
         since (room_id, unthreaded, room_from, threaded) AS MATERIALIZED ( \
             SELECT rooms.room_id, COALESCE(u.stream, 0), \
                    COALESCE(MAX(COALESCE(u.stream, 0), m.joined_since), ?3), \
                    EXISTS (SELECT 1 FROM read AS t \
                            WHERE t.room_id = rooms.room_id AND t.thread_id <> '' \
                              AND t.stream > COALESCE(u.stream, 0)) \
             FROM rooms \
             LEFT JOIN read AS u ON u.room_id = rooms.room_id AND u.thread_id = '' \
             LEFT JOIN room_memberships AS m \
                 ON m.room_id = rooms.room_id AND m.user_id = ?2 AND m.membership = 'join' \
         ), \
         counts (room_id, own, highlights, room) AS MATERIALIZED ( \
             SELECT s.room_id, \
                 (SELECT SUM(a.notify - (a.replaces_room AND a.stream > s.room_from)) \
                  FROM event_push_actions AS a \
                  WHERE a.user_id = ?2 AND a.room_id = s.room_id AND a.stream > s.unthreaded \
                    AND (NOT s.threaded OR a.stream > COALESCE( \
                        (SELECT t.stream FROM read AS t \
                         WHERE t.room_id = a.room_id AND t.thread_id = a.thread_id), 0))), \
                 (SELECT SUM(a.highlight) \
                  FROM event_push_actions AS a \
                  WHERE a.user_id = ?2 AND a.room_id = s.room_id AND a.stream > s.unthreaded \
                    AND (NOT s.threaded OR a.stream > COALESCE( \
                        (SELECT t.stream FROM read AS t \
                         WHERE t.room_id = a.room_id AND t.thread_id = a.thread_id), 0))), \
                 (SELECT COUNT(*) \
                  FROM room_push_actions AS n \
                  WHERE n.room_id = s.room_id AND n.stream > s.room_from AND n.sender <> ?2 \
                    AND (NOT s.threaded OR n.stream > COALESCE( \
                        (SELECT t.stream FROM read AS t \
                         WHERE t.room_id = n.room_id AND t.thread_id = n.thread_id), 0))) \
             FROM since AS s \
         ) \
         SELECT room_id, COALESCE(own, 0) + room AS notifications, \
                COALESCE(highlights, 0) AS highlights \
         FROM counts WHERE COALESCE(own, 0) + room > 0",
    )?;
    // `room_from` of a room the user is not joined to (?3): no room row is theirs.
    let rows = statement.query((to_json(&room_ids, "room ids")?, user_id, i64::MAX))?;
    raw::collect(rows, |row| {
        Ok(UnreadCounts {
            room_id: row.text("room_id")?,
            notifications: to_u64(row.int("notifications")?, "notifications")?,
            highlights: to_u64(row.int("highlights")?, "highlights")?,
        })
    })
}
