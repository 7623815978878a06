//! Events: persisting batches of events with everything derived from them in one write transaction,
//! and the timeline, relation, thread and timestamp queries. The stream position is the rowid
//! of `events`, so every range query reads an index in stream order.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use sqlx::sqlite::SqlitePool;

use super::{ID_CHUNK, members, state};
use crate::rows::event_from_row;
use crate::sqlite::raw::{self, Direct};
use crate::sqlite::util::{found, to_json};
use crate::sqlite::{federation, push};
use crate::{
    Direction, EventBatch, EventRecord, NewEvent, OutlierRecord, Redaction, Result, StreamRange,
    TxnRecord,
};

/// `SELECT <every event column> FROM events <rest>`, as a `&'static str`.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT stream, event_id, room_id, depth, event_type, state_key, sender, \
                    origin_server_ts, pdu, state_before, state_after, redacted_by, \
                    txn_localpart, txn_device_id, txn_scope, txn_id, rel_type, parent_event_id \
             FROM events ",
            $rest
        )
    };
}

/// The columns of `select_events!` from `outliers`: no stream position, no state, no
/// transaction, no relation.
macro_rules! select_outliers {
    ($rest:literal) => {
        concat!(
            "SELECT 0 AS stream, event_id, room_id, depth, event_type, state_key, sender, \
                    origin_server_ts, pdu, 0 AS state_before, 0 AS state_after, \
                    NULL AS redacted_by, NULL AS txn_localpart, NULL AS txn_device_id, \
                    NULL AS txn_scope, NULL AS txn_id, NULL AS rel_type, \
                    NULL AS parent_event_id \
             FROM outliers ",
            $rest
        )
    };
}

/// Persists a batch of events, in order, with their notifications in one write transaction:
/// one commit (and, when durable, one fsync) for the whole batch, its statements run back to
/// back on the connection's handle.
pub(super) async fn persist_events(writer: &Arc<Direct>, batch: &EventBatch) -> Result<()> {
    writer
        .write(|tx| {
            for group in &batch.state_groups {
                state::write_state_group(tx, group)?;
            }
            for room in &batch.rooms {
                state::write_room(tx, room)?;
            }
            for outlier in &batch.outliers {
                insert_outlier(tx, outlier)?;
            }
            for membership in &batch.memberships {
                members::write_membership(tx, membership)?;
            }
            for partial in &batch.partial_states {
                super::partial_state::write_partial_state(tx, partial)?;
            }
            for group in batch
                .events
                .iter()
                .filter_map(|n| n.new_state_group.as_ref())
            {
                state::write_state_group(tx, group)?;
            }
            // Before the events, so that a redaction later in the batch removes its target's
            // notifications.
            push::write_push_actions(tx, &batch.push_actions)?;
            push::write_room_push_actions(tx, &batch.room_push_actions)?;
            // Queued with their events: a PDU goes out if and only if its event was stored.
            federation::write_outbound_pdus(tx, &batch.outbound_pdus)?;
            for new in &batch.events {
                insert_event(tx, &new.event)?;
                if let Some(membership) = &new.membership {
                    members::write_membership(tx, membership)?;
                }
                if let Some(redaction) = &new.redaction {
                    redact(tx, &new.event.room_id, redaction)?;
                }
            }
            // Only the last event of each room decides its extremities and current state.
            for new in crate::batch::last_per_room(&batch.events) {
                write_room_head(tx, new)?;
            }
            Ok(())
        })
        .await
}

/// The room's forward extremities and current state group after `new`.
fn write_room_head(tx: &Connection, new: &NewEvent) -> Result<()> {
    let room_id = &new.event.room_id;
    tx.prepare_cached("DELETE FROM forward_extremities WHERE room_id = ?")?
        .execute([room_id])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO forward_extremities (room_id, event_id) VALUES (?, ?) \
         ON CONFLICT DO NOTHING",
    )?;
    for event_id in &new.extremities {
        insert.execute((room_id, event_id))?;
    }
    let updated = tx
        .prepare_cached("UPDATE rooms SET state_group = ? WHERE room_id = ?")?
        .execute((new.room_state_group, room_id))?;
    found(updated as u64, || format!("room {room_id}"))
}

/// Inserts the event row; `Conflict` naming what was taken (event id, transaction, position).
fn insert_event(tx: &Connection, event: &EventRecord) -> Result<()> {
    let txn = event.txn.as_ref();
    let relation = event.relation.as_ref();
    tx.prepare_cached(
        "INSERT INTO events (stream, event_id, room_id, depth, event_type, state_key, sender, \
                             origin_server_ts, pdu, state_before, state_after, redacted_by, \
                             txn_localpart, txn_device_id, txn_scope, txn_id, rel_type, parent_event_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        event.stream,
        event.event_id,
        event.room_id,
        event.depth,
        event.event_type,
        event.state_key,
        event.sender,
        event.origin_server_ts,
        event.pdu,
        event.state_before,
        event.state_after,
        event.redacted_by,
        txn.map(|t| t.localpart.as_str()),
        txn.map(|t| t.device_id.as_str()),
        txn.map(|t| t.scope.as_str()),
        txn.map(|t| t.txn_id.as_str()),
        relation.map(|r| r.rel_type.as_str()),
        relation.map(|r| r.parent_event_id.as_str()),
    ])
    .map_err(|err| {
        let what = if raw::violates(&err, "events.txn_id") {
            match txn {
                Some(t) => format!(
                    "transaction {} of {} on device {}",
                    t.txn_id, t.localpart, t.device_id
                ),
                None => "transaction".to_owned(),
            }
        } else if raw::violates(&err, "events.stream") {
            format!("stream position {}", event.stream)
        } else {
            format!("event {}", event.event_id)
        };
        raw::conflict(err, || what)
    })?;
    Ok(())
}

pub(super) async fn lowest_stream(pool: &SqlitePool) -> Result<i64> {
    let lowest: Option<i64> = sqlx::query_scalar("SELECT MIN(stream) FROM events")
        .fetch_one(pool)
        .await?;
    Ok(lowest.unwrap_or(0).min(0))
}

/// Backfilled events, in one write transaction; ones known already stay as they are.
pub(super) async fn insert_backfilled(writer: &Arc<Direct>, events: &[EventRecord]) -> Result<()> {
    writer
        .write(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (stream, event_id, room_id, depth, event_type, state_key, \
                                     sender, origin_server_ts, pdu, state_before, state_after, \
                                     rel_type, parent_event_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )?;
            for event in events {
                let relation = event.relation.as_ref();
                insert.execute(rusqlite::params![
                    event.stream,
                    event.event_id,
                    event.room_id,
                    event.depth,
                    event.event_type,
                    event.state_key,
                    event.sender,
                    event.origin_server_ts,
                    event.pdu,
                    event.state_before,
                    event.state_after,
                    relation.map(|r| r.rel_type.as_str()),
                    relation.map(|r| r.parent_event_id.as_str()),
                ])?;
            }
            Ok(())
        })
        .await
}

/// Inserts an outlier, unless it is known already.
pub(super) fn insert_outlier(tx: &Connection, outlier: &OutlierRecord) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO outliers (event_id, room_id, depth, event_type, state_key, sender, \
                               origin_server_ts, pdu) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )?
    .execute(rusqlite::params![
        outlier.event_id,
        outlier.room_id,
        outlier.depth,
        outlier.event_type,
        outlier.state_key,
        outlier.sender,
        outlier.origin_server_ts,
        outlier.pdu,
    ])?;
    Ok(())
}

/// Replaces the redacted event's PDU with its redacted form. A target that isn't stored (yet)
/// is no error: redactions may arrive before their target, which is then redacted on arrival.
fn redact(tx: &Connection, room_id: &str, redaction: &Redaction) -> Result<()> {
    // The relation columns mirror `content.m.relates_to` of the redacted form.
    let relation = redaction.relation.as_ref();
    tx.prepare_cached(
        "UPDATE events SET pdu = ?, redacted_by = COALESCE(redacted_by, ?), \
                           rel_type = ?, parent_event_id = ? \
         WHERE event_id = ? AND room_id = ?",
    )?
    .execute((
        &redaction.redacted_pdu,
        &redaction.redacted_by,
        relation.map(|r| r.rel_type.as_str()),
        relation.map(|r| r.parent_event_id.as_str()),
        &redaction.event_id,
        // A redaction only ever applies within its own room.
        room_id,
    ))?;
    // A redacted event no longer notifies anyone.
    push::delete_push_actions_of(tx, &redaction.event_id)
}

pub(super) async fn event(pool: &SqlitePool, event_id: &str) -> Result<Option<EventRecord>> {
    let row = sqlx::query(select_events!("WHERE event_id = ?"))
        .bind(event_id)
        .fetch_optional(pool)
        .await?;
    if let Some(row) = row {
        return event_from_row(&row).map(Some);
    }
    let row = sqlx::query(select_outliers!("WHERE event_id = ?"))
        .bind(event_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(event_from_row).transpose()
}

/// Read on the tenant's direct reader: sync asks for the state events of every room it sends
/// whole, and the bundled aggregations' redactions.
pub(super) async fn events(reader: &Arc<Direct>, event_ids: &[String]) -> Result<Vec<EventRecord>> {
    reader
        .read_many(event_ids.len(), |db| {
            // The ids go in as one JSON array per chunk: a single bind parameter, and a
            // statement of bounded size however long the list is.
            let mut statement = db.prepare_cached(select_events!(
                "WHERE event_id IN (SELECT value FROM json_each(?))"
            ))?;
            let mut events = Vec::with_capacity(event_ids.len());
            for chunk in event_ids.chunks(ID_CHUNK) {
                let rows = statement.query([to_json(&chunk, "event ids")?])?;
                events.extend(raw::collect(rows, event_from_row)?);
            }
            if events.len() == event_ids.len() {
                return Ok(events);
            }
            let found: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
            let missing: Vec<&String> = event_ids
                .iter()
                .filter(|id| !found.contains(id.as_str()))
                .collect();
            let mut outliers = db.prepare_cached(select_outliers!(
                "WHERE event_id IN (SELECT value FROM json_each(?))"
            ))?;
            let mut more = Vec::new();
            for chunk in missing.chunks(ID_CHUNK) {
                let rows = outliers.query([to_json(&chunk, "event ids")?])?;
                more.extend(raw::collect(rows, event_from_row)?);
            }
            events.extend(more);
            Ok(events)
        })
        .await
}

/// On every send, before the write lock: a point lookup, run directly.
pub(super) async fn event_id_by_txn(
    reader: &Arc<Direct>,
    txn: &TxnRecord,
) -> Result<Option<String>> {
    reader
        .read(|db| {
            let event_id = db
                .prepare_cached(
                    "SELECT event_id FROM events \
                     WHERE txn_localpart = ? AND txn_device_id = ? AND txn_scope = ? \
                       AND txn_id = ?",
                )?
                .query_row(
                    (&txn.localpart, &txn.device_id, &txn.scope, &txn.txn_id),
                    |row| row.get(0),
                )
                .optional()?;
            Ok(event_id)
        })
        .await
}

pub(super) async fn forward_extremities(pool: &SqlitePool, room_id: &str) -> Result<Vec<String>> {
    let ids = sqlx::query_scalar(
        "SELECT event_id FROM forward_extremities WHERE room_id = ? ORDER BY event_id",
    )
    .bind(room_id)
    .fetch_all(pool)
    .await?;
    Ok(ids)
}

pub(super) async fn room_events(
    pool: &SqlitePool,
    room_id: &str,
    range: StreamRange,
    direction: Direction,
    limit: u32,
) -> Result<Vec<EventRecord>> {
    let sql = match direction {
        Direction::Forward => select_events!(
            "WHERE room_id = ? AND stream > ? AND stream <= ? ORDER BY stream LIMIT ?"
        ),
        Direction::Backward => select_events!(
            "WHERE room_id = ? AND stream > ? AND stream <= ? ORDER BY stream DESC LIMIT ?"
        ),
    };
    let rows = sqlx::query(sql)
        .bind(room_id)
        .bind(range.after)
        .bind(range.up_to)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// Read on the tenant's direct reader: sync asks for each room it sends state of.
pub(super) async fn last_event_at(
    reader: &Arc<Direct>,
    room_id: &str,
    stream: i64,
) -> Result<Option<EventRecord>> {
    reader
        .read(|db| {
            let mut statement = db.prepare_cached(select_events!(
                "WHERE room_id = ? AND stream <= ? ORDER BY stream DESC LIMIT 1"
            ))?;
            let rows = statement.query((room_id, stream))?;
            Ok(raw::collect(rows, event_from_row)?.pop())
        })
        .await
}

pub(super) async fn event_by_timestamp(
    pool: &SqlitePool,
    room_id: &str,
    ts: i64,
    direction: Direction,
) -> Result<Option<EventRecord>> {
    // Events with the same timestamp are ordered by stream, which the (room_id,
    // origin_server_ts) index carries as its rowid: no sort either way.
    let sql = match direction {
        Direction::Forward => select_events!(
            "WHERE room_id = ? AND origin_server_ts >= ? \
             ORDER BY origin_server_ts, stream LIMIT 1"
        ),
        Direction::Backward => select_events!(
            "WHERE room_id = ? AND origin_server_ts <= ? \
             ORDER BY origin_server_ts DESC, stream DESC LIMIT 1"
        ),
    };
    let row = sqlx::query(sql)
        .bind(room_id)
        .bind(ts)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(event_from_row).transpose()
}

/// Read straight on the tenant's direct reader: every incremental sync asks, and one index
/// probe per room costs less than a hand-off to a pool connection's thread.
pub(super) async fn rooms_with_events(
    reader: &Arc<Direct>,
    room_ids: &[String],
    range: StreamRange,
) -> Result<Vec<String>> {
    reader
        .read(|db| {
            // One index probe per room on (room_id, stream): the cost follows the number of
            // rooms asked about, not the number of events in them.
            let mut statement = db.prepare_cached(
                "SELECT DISTINCT r.value FROM json_each(?1) AS r \
                 WHERE EXISTS (SELECT 1 FROM events \
                               WHERE room_id = r.value AND stream > ?2 AND stream <= ?3)",
            )?;
            let mut rooms = Vec::new();
            for chunk in room_ids.chunks(ID_CHUNK) {
                let ids = to_json(&chunk, "room ids")?;
                let found =
                    statement.query_map((ids, range.after, range.up_to), |row| row.get(0))?;
                for room in found {
                    rooms.push(room?);
                }
            }
            // A room listed twice, in two chunks, is still reported once.
            rooms.sort_unstable();
            rooms.dedup();
            Ok(rooms)
        })
        .await
}

pub(super) async fn relations(
    pool: &SqlitePool,
    parent_event_id: &str,
    rel_type: Option<&str>,
    event_type: Option<&str>,
    direction: Direction,
    from: Option<i64>,
    limit: u32,
) -> Result<Vec<EventRecord>> {
    // With a relation type the whole (parent_event_id, rel_type, stream) index applies and
    // the rows come in stream order; without one only its prefix does. Separate statements
    // keep the planner from settling on the weaker plan for both.
    let sql = match (rel_type.is_some(), direction) {
        (false, Direction::Forward) => select_events!(
            "WHERE parent_event_id = ?1 AND (?2 IS NULL OR event_type = ?2) AND stream > ?3 \
             ORDER BY stream LIMIT ?4"
        ),
        (false, Direction::Backward) => select_events!(
            "WHERE parent_event_id = ?1 AND (?2 IS NULL OR event_type = ?2) AND stream < ?3 \
             ORDER BY stream DESC LIMIT ?4"
        ),
        (true, Direction::Forward) => select_events!(
            "WHERE parent_event_id = ?1 AND rel_type = ?5 AND (?2 IS NULL OR event_type = ?2) \
               AND stream > ?3 \
             ORDER BY stream LIMIT ?4"
        ),
        (true, Direction::Backward) => select_events!(
            "WHERE parent_event_id = ?1 AND rel_type = ?5 AND (?2 IS NULL OR event_type = ?2) \
               AND stream < ?3 \
             ORDER BY stream DESC LIMIT ?4"
        ),
    };
    let from = from.unwrap_or(match direction {
        Direction::Forward => i64::MIN,
        Direction::Backward => i64::MAX,
    });
    let mut query = sqlx::query(sql)
        .bind(parent_event_id)
        .bind(event_type)
        .bind(from)
        .bind(i64::from(limit));
    if let Some(rel_type) = rel_type {
        query = query.bind(rel_type);
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn thread_roots(
    pool: &SqlitePool,
    room_id: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<EventRecord>> {
    // Threads are ordered by their latest reply, as clients list them, and `before` bounds
    // that same key. The inner query reads only the room's thread replies (a partial index);
    // a reply whose root isn't stored drops out in the join.
    let rows = sqlx::query(select_events!(
        "JOIN (SELECT parent_event_id AS root, MAX(stream) AS latest FROM events \
               WHERE room_id = ?1 AND rel_type = 'm.thread' \
               GROUP BY parent_event_id) AS threads \
           ON threads.root = events.event_id \
         WHERE events.room_id = ?1 AND threads.latest < ?2 \
         ORDER BY threads.latest DESC LIMIT ?3"
    ))
    .bind(room_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_from_row).collect()
}
