//! Events: persisting batches of events with everything derived from them in one transaction, and
//! the timeline, relation, thread and timestamp queries. The stream position is the primary
//! key of `events`, and every range query reads an index that ends in it.

use std::collections::HashSet;

use sqlx::postgres::PgConnection;

use super::{members, state};
use crate::postgres::util::{Schema, conflict, violates};
use crate::postgres::{federation, push};
use crate::rows::event_from_row;
use crate::{
    Direction, EventBatch, EventRecord, NewEvent, OutlierRecord, Redaction, Result, StoreError,
    StreamRange, TxnRecord,
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
            "SELECT 0::BIGINT AS stream, event_id, room_id, depth, event_type, state_key, \
                    sender, origin_server_ts, pdu, 0::BIGINT AS state_before, \
                    0::BIGINT AS state_after, NULL::TEXT AS redacted_by, \
                    NULL::TEXT AS txn_localpart, NULL::TEXT AS txn_device_id, \
                    NULL::TEXT AS txn_scope, NULL::TEXT AS txn_id, NULL::TEXT AS rel_type, \
                    NULL::TEXT AS parent_event_id \
             FROM outliers ",
            $rest
        )
    };
}

/// Persists a batch of events, in order, with their notifications in one transaction: one
/// commit (one WAL flush) for the whole batch.
pub(super) async fn persist_events(schema: &Schema, batch: &EventBatch) -> Result<()> {
    // Everything below commits together or not at all: an error returns before the commit and
    // dropping the transaction rolls it back.
    let mut tx = schema.begin().await?;
    for group in &batch.state_groups {
        state::write_state_group(&mut tx, group).await?;
    }
    for room in &batch.rooms {
        state::write_room(&mut tx, room).await?;
    }
    for outlier in &batch.outliers {
        insert_outlier(&mut tx, outlier).await?;
    }
    for membership in &batch.memberships {
        members::write_membership(&mut tx, membership).await?;
    }
    for partial in &batch.partial_states {
        super::partial_state::write_partial_state(&mut tx, partial).await?;
    }
    let heads = crate::batch::last_per_room(&batch.events);
    // The room rows first, in a fixed order: their locks, held until commit, serialize the
    // events of one room, as SQLite's write lock does. Without them, two batches persisted at
    // once could each delete the extremities they saw and both insert theirs. Whether a room
    // exists is reported below, after the events' own conflicts, in the order SQLite reports
    // them.
    let mut room_ids: Vec<&str> = heads.iter().map(|n| n.event.room_id.as_str()).collect();
    room_ids.sort_unstable();
    let mut missing = Vec::new();
    for room_id in room_ids {
        let head = heads
            .iter()
            .find(|n| n.event.room_id == room_id)
            .ok_or_else(|| StoreError::NotFound(format!("room {room_id}")))?;
        let updated = sqlx::query("UPDATE rooms SET state_group = $1 WHERE room_id = $2")
            .bind(head.room_state_group)
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            missing.push(room_id);
        }
    }
    // Queued with their events: a PDU goes out if and only if its event was stored.
    federation::write_outbound_pdus(&mut tx, &batch.outbound_pdus).await?;
    for new in &batch.events {
        if let Some(group) = &new.new_state_group {
            state::write_state_group(&mut tx, group).await?;
        }
        insert_event(&mut tx, &new.event).await?;
    }
    if let Some(room_id) = missing.first() {
        return Err(StoreError::NotFound(format!("room {room_id}")));
    }
    for new in &heads {
        write_extremities(&mut tx, new).await?;
    }
    // Before the redactions, so that one later in the batch removes its target's
    // notifications.
    push::write_push_actions(&mut tx, &batch.push_actions).await?;
    push::write_room_push_actions(&mut tx, &batch.room_push_actions).await?;
    for new in &batch.events {
        if let Some(membership) = &new.membership {
            members::write_membership(&mut tx, membership).await?;
        }
        if let Some(redaction) = &new.redaction {
            redact(&mut tx, &new.event.room_id, redaction).await?;
        }
    }
    tx.commit().await
}

async fn write_extremities(conn: &mut PgConnection, new: &NewEvent) -> Result<()> {
    sqlx::query("DELETE FROM forward_extremities WHERE room_id = $1")
        .bind(&new.event.room_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO forward_extremities (room_id, event_id) \
         SELECT DISTINCT $1, e FROM unnest($2::text[]) AS e",
    )
    .bind(&new.event.room_id)
    .bind(&new.extremities)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts the event row; `Conflict` naming what was taken (event id, transaction, position).
pub(super) async fn lowest_stream(schema: &Schema) -> Result<i64> {
    let mut conn = schema.conn().await?;
    let lowest: Option<i64> = sqlx::query_scalar("SELECT MIN(stream) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    Ok(lowest.unwrap_or(0).min(0))
}

/// Backfilled events, in one transaction; ones known already stay as they are.
pub(super) async fn insert_backfilled(schema: &Schema, events: &[EventRecord]) -> Result<()> {
    let mut tx = schema.begin().await?;
    for event in events {
        let relation = event.relation.as_ref();
        sqlx::query(
            "INSERT INTO events (stream, event_id, room_id, depth, event_type, state_key, sender, \
                                 origin_server_ts, pdu, state_before, state_after, rel_type, \
                                 parent_event_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT DO NOTHING",
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
        .bind(relation.map(|r| r.rel_type.as_str()))
        .bind(relation.map(|r| r.parent_event_id.as_str()))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Inserts an outlier, unless it is known already.
pub(super) async fn insert_outlier(conn: &mut PgConnection, outlier: &OutlierRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO outliers (event_id, room_id, depth, event_type, state_key, sender, \
                               origin_server_ts, pdu) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&outlier.event_id)
    .bind(&outlier.room_id)
    .bind(outlier.depth)
    .bind(&outlier.event_type)
    .bind(&outlier.state_key)
    .bind(&outlier.sender)
    .bind(outlier.origin_server_ts)
    .bind(&outlier.pdu)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_event(conn: &mut PgConnection, event: &EventRecord) -> Result<()> {
    let txn = event.txn.as_ref();
    let relation = event.relation.as_ref();
    sqlx::query(
        "INSERT INTO events (stream, event_id, room_id, depth, event_type, state_key, sender, \
                             origin_server_ts, pdu, state_before, state_after, redacted_by, \
                             txn_localpart, txn_device_id, txn_scope, txn_id, rel_type, parent_event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18)",
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
    .bind(txn.map(|t| t.scope.as_str()))
    .bind(txn.map(|t| t.txn_id.as_str()))
    .bind(relation.map(|r| r.rel_type.as_str()))
    .bind(relation.map(|r| r.parent_event_id.as_str()))
    .execute(&mut *conn)
    .await
    .map_err(|err| {
        // Constraint and index names from `0002_rooms.sql`.
        let what = if violates(&err, "events_by_txn") {
            match txn {
                Some(t) => format!(
                    "transaction {} of {} on device {}",
                    t.txn_id, t.localpart, t.device_id
                ),
                None => "transaction".to_owned(),
            }
        } else if violates(&err, "events_stream") {
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
async fn redact(conn: &mut PgConnection, room_id: &str, redaction: &Redaction) -> Result<()> {
    // The relation columns mirror `content.m.relates_to` of the redacted form.
    let relation = redaction.relation.as_ref();
    sqlx::query(
        "UPDATE events SET pdu = $1, redacted_by = COALESCE(redacted_by, $2), \
                           rel_type = $3, parent_event_id = $4 \
         WHERE event_id = $5 AND room_id = $6",
    )
    .bind(&redaction.redacted_pdu)
    .bind(&redaction.redacted_by)
    .bind(relation.map(|r| r.rel_type.as_str()))
    .bind(relation.map(|r| r.parent_event_id.as_str()))
    .bind(&redaction.event_id)
    // A redaction only ever applies within its own room.
    .bind(room_id)
    .execute(&mut *conn)
    .await?;
    // A redacted event no longer notifies anyone.
    push::delete_push_actions_of(conn, &redaction.event_id).await
}

pub(super) async fn event(schema: &Schema, event_id: &str) -> Result<Option<EventRecord>> {
    let mut conn = schema.conn().await?;
    let row = sqlx::query(select_events!("WHERE event_id = $1"))
        .bind(event_id)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = row {
        return event_from_row(&row).map(Some);
    }
    let row = sqlx::query(select_outliers!("WHERE event_id = $1"))
        .bind(event_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(event_from_row).transpose()
}

pub(super) async fn events(schema: &Schema, event_ids: &[String]) -> Result<Vec<EventRecord>> {
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The ids go in as one array: a single bind parameter and a statement of fixed text however
    // long the list is, each id one probe of the unique index.
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(select_events!("WHERE event_id = ANY($1)"))
        .bind(event_ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut events: Vec<EventRecord> = rows.iter().map(event_from_row).collect::<Result<_>>()?;
    if events.len() == event_ids.len() {
        return Ok(events);
    }
    let found: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let missing: Vec<&str> = event_ids
        .iter()
        .map(String::as_str)
        .filter(|id| !found.contains(id))
        .collect();
    let rows = sqlx::query(select_outliers!("WHERE event_id = ANY($1)"))
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        events.push(event_from_row(row)?);
    }
    Ok(events)
}

pub(super) async fn event_id_by_txn(schema: &Schema, txn: &TxnRecord) -> Result<Option<String>> {
    let mut conn = schema.conn().await?;
    let event_id = sqlx::query_scalar(
        "SELECT event_id FROM events \
         WHERE txn_localpart = $1 AND txn_device_id = $2 AND txn_scope = $3 AND txn_id = $4",
    )
    .bind(&txn.localpart)
    .bind(&txn.device_id)
    .bind(&txn.scope)
    .bind(&txn.txn_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(event_id)
}

pub(super) async fn forward_extremities(schema: &Schema, room_id: &str) -> Result<Vec<String>> {
    let mut conn = schema.conn().await?;
    let ids = sqlx::query_scalar(
        "SELECT event_id FROM forward_extremities WHERE room_id = $1 ORDER BY event_id",
    )
    .bind(room_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids)
}

pub(super) async fn room_events(
    schema: &Schema,
    room_id: &str,
    range: StreamRange,
    direction: Direction,
    limit: u32,
) -> Result<Vec<EventRecord>> {
    let sql = match direction {
        Direction::Forward => select_events!(
            "WHERE room_id = $1 AND stream > $2 AND stream <= $3 ORDER BY stream LIMIT $4"
        ),
        Direction::Backward => select_events!(
            "WHERE room_id = $1 AND stream > $2 AND stream <= $3 ORDER BY stream DESC LIMIT $4"
        ),
    };
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(sql)
        .bind(room_id)
        .bind(range.after)
        .bind(range.up_to)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn last_event_at(
    schema: &Schema,
    room_id: &str,
    stream: i64,
) -> Result<Option<EventRecord>> {
    let mut conn = schema.conn().await?;
    let row = sqlx::query(select_events!(
        "WHERE room_id = $1 AND stream <= $2 ORDER BY stream DESC LIMIT 1"
    ))
    .bind(room_id)
    .bind(stream)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(event_from_row).transpose()
}

pub(super) async fn event_by_timestamp(
    schema: &Schema,
    room_id: &str,
    ts: i64,
    direction: Direction,
) -> Result<Option<EventRecord>> {
    // Events with the same timestamp are ordered by stream, the last column of the
    // (room_id, origin_server_ts, stream) index: no sort either way.
    let sql = match direction {
        Direction::Forward => select_events!(
            "WHERE room_id = $1 AND origin_server_ts >= $2 \
             ORDER BY origin_server_ts, stream LIMIT 1"
        ),
        Direction::Backward => select_events!(
            "WHERE room_id = $1 AND origin_server_ts <= $2 \
             ORDER BY origin_server_ts DESC, stream DESC LIMIT 1"
        ),
    };
    let mut conn = schema.conn().await?;
    let row = sqlx::query(sql)
        .bind(room_id)
        .bind(ts)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(event_from_row).transpose()
}

pub(super) async fn rooms_with_events(
    schema: &Schema,
    room_ids: &[String],
    range: StreamRange,
) -> Result<Vec<String>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    // One index probe per room on (room_id, stream): the cost follows the number of rooms
    // asked about, not the number of events in them. A LATERAL subquery with LIMIT rather than
    // EXISTS, which the planner may turn into a join that reads every event in the range (it
    // did under a generic plan). DISTINCT reports a room listed twice once.
    let mut conn = schema.conn().await?;
    let mut rooms: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT r FROM unnest($1::text[]) AS r, \
             LATERAL (SELECT 1 FROM events \
                      WHERE room_id = r AND stream > $2 AND stream <= $3 LIMIT 1) AS found",
    )
    .bind(room_ids)
    .bind(range.after)
    .bind(range.up_to)
    .fetch_all(&mut *conn)
    .await?;
    // Sorted as SQLite returns them, in byte order whatever the database's locale.
    rooms.sort_unstable();
    Ok(rooms)
}

pub(super) async fn relations(
    schema: &Schema,
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
            "WHERE parent_event_id = $1 AND ($2::text IS NULL OR event_type = $2) \
               AND stream > $3 \
             ORDER BY stream LIMIT $4"
        ),
        (false, Direction::Backward) => select_events!(
            "WHERE parent_event_id = $1 AND ($2::text IS NULL OR event_type = $2) \
               AND stream < $3 \
             ORDER BY stream DESC LIMIT $4"
        ),
        (true, Direction::Forward) => select_events!(
            "WHERE parent_event_id = $1 AND rel_type = $5 \
               AND ($2::text IS NULL OR event_type = $2) AND stream > $3 \
             ORDER BY stream LIMIT $4"
        ),
        (true, Direction::Backward) => select_events!(
            "WHERE parent_event_id = $1 AND rel_type = $5 \
               AND ($2::text IS NULL OR event_type = $2) AND stream < $3 \
             ORDER BY stream DESC LIMIT $4"
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
    let mut conn = schema.conn().await?;
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn thread_roots(
    schema: &Schema,
    room_id: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<EventRecord>> {
    // Threads are ordered by their latest reply, as clients list them, and `before` bounds
    // that same key. The inner query reads only the room's thread replies (a partial index);
    // a reply whose root isn't stored drops out in the join.
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(select_events!(
        "JOIN (SELECT parent_event_id AS root, MAX(stream) AS latest FROM events \
               WHERE room_id = $1 AND rel_type = 'm.thread' \
               GROUP BY parent_event_id) AS threads \
           ON threads.root = events.event_id \
         WHERE events.room_id = $1 AND threads.latest < $2 \
         ORDER BY threads.latest DESC LIMIT $3"
    ))
    .bind(room_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_from_row).collect()
}
