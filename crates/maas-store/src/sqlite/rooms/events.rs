//! Events: persisting batches of events with everything derived from them in one write transaction,
//! and the timeline, relation, thread and timestamp queries. The stream position is the rowid
//! of `events`, so every range query reads an index in stream order.

use serde_json::Value;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, SqliteConnection};

use super::{ID_CHUNK, members, state};
use crate::sqlite::util::{begin_write, conflict, found, to_json, violates};
use crate::{
    Direction, EventBatch, EventRecord, NewEvent, Redaction, RelationRecord, Result, StoreError,
    StreamRange, TxnRecord,
};

/// `SELECT <every event column> FROM events <rest>`, as a `&'static str`.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT stream, event_id, room_id, depth, event_type, state_key, sender, \
                    origin_server_ts, pdu, state_before, state_after, redacted_by, \
                    txn_localpart, txn_device_id, txn_id, rel_type, parent_event_id \
             FROM events ",
            $rest
        )
    };
}

/// Persists a batch of events, in order, with their notifications in one write transaction:
/// one commit (and, when durable, one fsync) for the whole batch.
pub(super) async fn persist_events(pool: &SqlitePool, batch: &EventBatch) -> Result<()> {
    // Everything below commits together or not at all: an error returns before the commit and
    // dropping the transaction rolls it back.
    let mut tx = begin_write(pool).await?;
    for group in &batch.state_groups {
        state::write_state_group(&mut tx, group).await?;
    }
    for room in &batch.rooms {
        state::write_room(&mut tx, room).await?;
    }
    for group in batch
        .events
        .iter()
        .filter_map(|n| n.new_state_group.as_ref())
    {
        state::write_state_group(&mut tx, group).await?;
    }
    insert_events(&mut tx, &batch.events).await?;
    for new in &batch.events {
        if let Some(membership) = &new.membership {
            members::write_membership(&mut tx, membership).await?;
        }
        if let Some(redaction) = &new.redaction {
            redact(&mut tx, &new.event.room_id, redaction).await?;
        }
    }
    // Only the last event of each room decides its extremities and current state.
    for new in crate::rooms::last_per_room(&batch.events) {
        write_room_head(&mut tx, new).await?;
    }
    crate::sqlite::push::write_push_actions(&mut tx, &batch.push_actions).await?;
    tx.commit().await?;
    Ok(())
}

/// Inserts the events' rows with one statement (one round trip to SQLite's thread whatever
/// the batch size). When a row conflicts, SQLite undoes just that statement, so inserting one
/// by one then names the conflict exactly.
async fn insert_events(conn: &mut SqliteConnection, events: &[NewEvent]) -> Result<()> {
    if let [single] = events {
        return insert_event(conn, &single.event).await;
    }
    for chunk in events.chunks(ID_CHUNK) {
        let rows: Vec<serde_json::Value> = chunk.iter().map(|n| event_row(&n.event)).collect();
        let inserted = sqlx::query(
            "INSERT INTO events (stream, event_id, room_id, depth, event_type, state_key, sender, \
                                 origin_server_ts, pdu, state_before, state_after, redacted_by, \
                                 txn_localpart, txn_device_id, txn_id, rel_type, parent_event_id) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                    value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, \
                    value ->> 10, value ->> 11, value ->> 12, value ->> 13, value ->> 14, \
                    value ->> 15, value ->> 16 \
             FROM json_each(?) ORDER BY key",
        )
        .bind(to_json(&rows, "events")?)
        .execute(&mut *conn)
        .await;
        match inserted {
            Ok(_) => {}
            Err(err) if matches!(&err, sqlx::Error::Database(db) if db.is_unique_violation()) => {
                for new in chunk {
                    insert_event(conn, &new.event).await?;
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// An event's columns as a JSON array, in `insert_events`' column order.
fn event_row(event: &EventRecord) -> serde_json::Value {
    let txn = event.txn.as_ref();
    let relation = event.relation.as_ref();
    serde_json::json!([
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
        txn.map(|t| t.txn_id.as_str()),
        relation.map(|r| r.rel_type.as_str()),
        relation.map(|r| r.parent_event_id.as_str()),
    ])
}

/// The room's forward extremities and current state group after `new`.
async fn write_room_head(conn: &mut SqliteConnection, new: &NewEvent) -> Result<()> {
    let room_id = &new.event.room_id;
    sqlx::query("DELETE FROM forward_extremities WHERE room_id = ?")
        .bind(room_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO forward_extremities (room_id, event_id) \
         SELECT DISTINCT ?1, value FROM json_each(?2)",
    )
    .bind(room_id)
    .bind(to_json(&new.extremities, "forward extremities")?)
    .execute(&mut *conn)
    .await?;
    let updated = sqlx::query("UPDATE rooms SET state_group = ? WHERE room_id = ?")
        .bind(new.room_state_group)
        .bind(room_id)
        .execute(&mut *conn)
        .await?;
    found(updated.rows_affected(), || format!("room {room_id}"))
}

/// Inserts the event row; `Conflict` naming what was taken (event id, transaction, position).
async fn insert_event(conn: &mut SqliteConnection, event: &EventRecord) -> Result<()> {
    let txn = event.txn.as_ref();
    let relation = event.relation.as_ref();
    sqlx::query(
        "INSERT INTO events (stream, event_id, room_id, depth, event_type, state_key, sender, \
                             origin_server_ts, pdu, state_before, state_after, redacted_by, \
                             txn_localpart, txn_device_id, txn_id, rel_type, parent_event_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(event.stream)
    .bind(&event.event_id)
    .bind(&event.room_id)
    .bind(event.depth)
    .bind(&event.event_type)
    .bind(&event.state_key)
    .bind(&event.sender)
    .bind(event.origin_server_ts)
    .bind(&event.pdu)
    .bind(event.state_before)
    .bind(event.state_after)
    .bind(&event.redacted_by)
    .bind(txn.map(|t| t.localpart.as_str()))
    .bind(txn.map(|t| t.device_id.as_str()))
    .bind(txn.map(|t| t.txn_id.as_str()))
    .bind(relation.map(|r| r.rel_type.as_str()))
    .bind(relation.map(|r| r.parent_event_id.as_str()))
    .execute(&mut *conn)
    .await
    .map_err(|err| {
        let what = if violates(&err, "events.txn_id") {
            match txn {
                Some(t) => format!(
                    "transaction {} of {} on device {}",
                    t.txn_id, t.localpart, t.device_id
                ),
                None => "transaction".to_owned(),
            }
        } else if violates(&err, "events.stream") {
            format!("stream position {}", event.stream)
        } else {
            format!("event {}", event.event_id)
        };
        conflict(err, || what)
    })?;
    Ok(())
}

/// Replaces the redacted event's PDU with its redacted form. A target that isn't stored (yet)
/// is no error: redactions may arrive before their target, which is then redacted on arrival.
async fn redact(conn: &mut SqliteConnection, room_id: &str, redaction: &Redaction) -> Result<()> {
    // The relation columns mirror `content.m.relates_to`; stable room versions strip it on
    // redaction (a redacted edit or thread reply no longer counts), later ones may keep it.
    let relation = relation_of(&redaction.redacted_pdu);
    sqlx::query(
        "UPDATE events SET pdu = ?, redacted_by = COALESCE(redacted_by, ?), \
                           rel_type = ?, parent_event_id = ? \
         WHERE event_id = ? AND room_id = ?",
    )
    .bind(&redaction.redacted_pdu)
    .bind(&redaction.redacted_by)
    .bind(relation.as_ref().map(|r| r.rel_type.as_str()))
    .bind(relation.as_ref().map(|r| r.parent_event_id.as_str()))
    .bind(&redaction.event_id)
    // A redaction only ever applies within its own room.
    .bind(room_id)
    .execute(&mut *conn)
    .await?;
    // A redacted event no longer notifies anyone.
    sqlx::query("DELETE FROM event_push_actions WHERE event_id = ?")
        .bind(&redaction.event_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `content.m.relates_to` of a PDU, if it has a well-formed one.
fn relation_of(pdu: &str) -> Option<RelationRecord> {
    let pdu: Value = serde_json::from_str(pdu).ok()?;
    let relates_to = pdu.get("content")?.get("m.relates_to")?;
    Some(RelationRecord {
        rel_type: relates_to.get("rel_type")?.as_str()?.to_owned(),
        parent_event_id: relates_to.get("event_id")?.as_str()?.to_owned(),
    })
}

pub(super) async fn event(pool: &SqlitePool, event_id: &str) -> Result<Option<EventRecord>> {
    let row = sqlx::query(select_events!("WHERE event_id = ?"))
        .bind(event_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(event_from_row).transpose()
}

pub(super) async fn events(pool: &SqlitePool, event_ids: &[String]) -> Result<Vec<EventRecord>> {
    let mut events = Vec::with_capacity(event_ids.len());
    // The ids go in as one JSON array per chunk: a single bind parameter, and a statement of
    // bounded size however long the list is.
    for chunk in event_ids.chunks(ID_CHUNK) {
        let rows = sqlx::query(select_events!(
            "WHERE event_id IN (SELECT value FROM json_each(?))"
        ))
        .bind(to_json(&chunk, "event ids")?)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            events.push(event_from_row(row)?);
        }
    }
    Ok(events)
}

pub(super) async fn event_id_by_txn(pool: &SqlitePool, txn: &TxnRecord) -> Result<Option<String>> {
    let event_id = sqlx::query_scalar(
        "SELECT event_id FROM events \
         WHERE txn_localpart = ? AND txn_device_id = ? AND txn_id = ?",
    )
    .bind(&txn.localpart)
    .bind(&txn.device_id)
    .bind(&txn.txn_id)
    .fetch_optional(pool)
    .await?;
    Ok(event_id)
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

pub(super) async fn last_event_at(
    pool: &SqlitePool,
    room_id: &str,
    stream: i64,
) -> Result<Option<EventRecord>> {
    let row = sqlx::query(select_events!(
        "WHERE room_id = ? AND stream <= ? ORDER BY stream DESC LIMIT 1"
    ))
    .bind(room_id)
    .bind(stream)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(event_from_row).transpose()
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

pub(super) async fn rooms_with_events(
    pool: &SqlitePool,
    room_ids: &[String],
    range: StreamRange,
) -> Result<Vec<String>> {
    let mut rooms = Vec::new();
    for chunk in room_ids.chunks(ID_CHUNK) {
        // One index probe per room on (room_id, stream): the cost follows the number of rooms
        // asked about, not the number of events in them.
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT r.value FROM json_each(?1) AS r \
             WHERE EXISTS (SELECT 1 FROM events \
                           WHERE room_id = r.value AND stream > ?2 AND stream <= ?3)",
        )
        .bind(to_json(&chunk, "room ids")?)
        .bind(range.after)
        .bind(range.up_to)
        .fetch_all(pool)
        .await?;
        rooms.extend(found);
    }
    // A room listed twice, in two chunks, is still reported once.
    rooms.sort_unstable();
    rooms.dedup();
    Ok(rooms)
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

pub(super) fn event_from_row(row: &SqliteRow) -> Result<EventRecord> {
    let event_id: String = row.try_get("event_id")?;
    let txn = match (
        row.try_get::<Option<String>, _>("txn_localpart")?,
        row.try_get::<Option<String>, _>("txn_device_id")?,
        row.try_get::<Option<String>, _>("txn_id")?,
    ) {
        (Some(localpart), Some(device_id), Some(txn_id)) => Some(TxnRecord {
            localpart,
            device_id,
            txn_id,
        }),
        (None, None, None) => None,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "partial transaction of event {event_id}"
            )));
        }
    };
    let relation = match (
        row.try_get::<Option<String>, _>("rel_type")?,
        row.try_get::<Option<String>, _>("parent_event_id")?,
    ) {
        (Some(rel_type), Some(parent_event_id)) => Some(RelationRecord {
            rel_type,
            parent_event_id,
        }),
        (None, None) => None,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "partial relation of event {event_id}"
            )));
        }
    };
    Ok(EventRecord {
        event_id,
        room_id: row.try_get("room_id")?,
        stream: row.try_get("stream")?,
        depth: row.try_get("depth")?,
        event_type: row.try_get("event_type")?,
        state_key: row.try_get("state_key")?,
        sender: row.try_get("sender")?,
        origin_server_ts: row.try_get("origin_server_ts")?,
        pdu: row.try_get("pdu")?,
        state_before: row.try_get("state_before")?,
        state_after: row.try_get("state_after")?,
        redacted_by: row.try_get("redacted_by")?,
        txn,
        relation,
    })
}
