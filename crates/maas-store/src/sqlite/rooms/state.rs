//! The stream and state-group counters, room records and state groups. A group is a snapshot
//! or a delta against an older group; reading one walks the chain in a recursive query and lets
//! SQLite pick the newest entry per key, so only the resolved state leaves the database.

use rusqlite::Connection;
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use std::sync::Arc;

use crate::sqlite::raw::{self, Direct};
use crate::sqlite::util::{found, to_u64};
use crate::{NewStateGroup, Result, RoomRecord, StateEntry, StoreError};

/// Chains longer than this can only come from a damaged database (or a cycle); callers bound
/// their chains far below it.
const MAX_CHAIN: i64 = 10_000;

/// `SELECT <every room column> FROM rooms <rest>`, as a `&'static str`.
macro_rules! select_rooms {
    ($rest:literal) => {
        concat!(
            "SELECT room_id, room_version, creator, created_ts, published, state_group \
             FROM rooms ",
            $rest
        )
    };
}

/// `WITH RECURSIVE chain(id, prev_group, depth)`: group `?1` (depth 0) and the groups it is a
/// delta against, up to its snapshot.
macro_rules! with_chain {
    ($rest:literal) => {
        concat!(
            "WITH RECURSIVE chain (id, prev_group, depth) AS ( \
                 SELECT id, prev_group, 0 FROM state_groups WHERE id = ?1 \
                 UNION ALL \
                 SELECT g.id, g.prev_group, c.depth + 1 \
                 FROM chain AS c JOIN state_groups AS g ON g.id = c.prev_group \
                 WHERE c.depth < ?2 \
             ) ",
            $rest
        )
    };
}

pub(super) async fn stream_reserved(pool: &SqlitePool) -> Result<i64> {
    // The highest stored event counts too (it is the rowid, so MAX is one index step): a
    // position handed out without a reservation must still never be handed out again.
    let reserved: i64 = sqlx::query_scalar(
        "SELECT MAX(stream_reserved, COALESCE((SELECT MAX(stream) FROM events), 0)) \
         FROM counters WHERE id = 0",
    )
    .fetch_one(pool)
    .await?;
    Ok(reserved)
}

pub(super) async fn reserve_stream(pool: &SqlitePool, up_to: i64) -> Result<()> {
    // One statement, so concurrent reservations can't lower each other's.
    sqlx::query("UPDATE counters SET stream_reserved = MAX(stream_reserved, ?) WHERE id = 0")
        .bind(up_to)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn insert_room(writer: &Arc<Direct>, room: &RoomRecord) -> Result<()> {
    writer.write(|tx| write_room(tx, room)).await
}

/// Inserts a room row inside the caller's transaction; `Conflict` when it exists.
pub(super) fn write_room(tx: &Connection, room: &RoomRecord) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO rooms (room_id, room_version, creator, created_ts, published, state_group) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute((
        &room.room_id,
        &room.room_version,
        &room.creator,
        room.created_ts,
        room.published,
        room.state_group,
    ))
    .map_err(|err| raw::conflict(err, || format!("room {}", room.room_id)))?;
    Ok(())
}

pub(super) async fn room(pool: &SqlitePool, room_id: &str) -> Result<Option<RoomRecord>> {
    let row = sqlx::query(select_rooms!("WHERE room_id = ?"))
        .bind(room_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(room_from_row).transpose()
}

pub(super) async fn set_room_published(
    pool: &SqlitePool,
    room_id: &str,
    published: bool,
) -> Result<()> {
    let updated = sqlx::query("UPDATE rooms SET published = ? WHERE room_id = ?")
        .bind(published)
        .bind(room_id)
        .execute(pool)
        .await?;
    found(updated.rows_affected(), || format!("room {room_id}"))
}

pub(super) async fn published_rooms(
    pool: &SqlitePool,
    since: Option<&str>,
    limit: u32,
) -> Result<Vec<RoomRecord>> {
    // Every room id sorts after '', so "from the start" is a plain bound too and each page is
    // one range read of the partial index.
    let rows = sqlx::query(select_rooms!(
        "WHERE published = 1 AND room_id > ? ORDER BY room_id LIMIT ?"
    ))
    .bind(since.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(room_from_row).collect()
}

pub(super) async fn count_published_rooms(pool: &SqlitePool) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE published = 1")
        .fetch_one(pool)
        .await?;
    to_u64(count, "published room count")
}

pub(super) async fn reserve_state_groups(pool: &SqlitePool, count: i64) -> Result<i64> {
    // Incrementing and reading in one statement keeps ids unique under concurrent calls. Ids
    // stored by other means (a restored backup, a caller's own id) are skipped as well.
    let id: i64 = sqlx::query_scalar(
        "UPDATE counters \
         SET last_state_group = \
             MAX(last_state_group, COALESCE((SELECT MAX(id) FROM state_groups), 0)) + ? \
         WHERE id = 0 \
         RETURNING last_state_group",
    )
    .bind(count.max(1))
    .fetch_one(pool)
    .await?;
    Ok(id)
}

pub(super) async fn insert_state_group(writer: &Arc<Direct>, group: &NewStateGroup) -> Result<()> {
    writer.write(|tx| write_state_group(tx, group)).await
}

/// Writes a group and its entries inside the caller's transaction: `Conflict` when the id is
/// taken, `NotFound` when `prev_group` doesn't exist.
pub(super) fn write_state_group(tx: &Connection, group: &NewStateGroup) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO state_groups (id, room_id, prev_group, chain_len) VALUES (?, ?, ?, ?)",
    )?
    .execute((
        group.id,
        &group.room_id,
        group.prev_group,
        i64::from(group.chain_len),
    ))
    .map_err(|err| {
        if raw::is_foreign_key_violation(&err) {
            StoreError::NotFound(format!(
                "state group {} (previous group of {})",
                group.prev_group.unwrap_or_default(),
                group.id
            ))
        } else {
            raw::conflict(err, || format!("state group {}", group.id))
        }
    })?;
    // A key given twice keeps its last entry, as applying the delta in order would.
    let mut insert = tx.prepare_cached(
        "INSERT INTO state_group_entries (group_id, event_type, state_key, event_id) \
         VALUES (?, ?, ?, ?) \
         ON CONFLICT (group_id, event_type, state_key) DO UPDATE SET event_id = excluded.event_id",
    )?;
    for entry in &group.delta {
        insert.execute((
            group.id,
            &entry.event_type,
            &entry.state_key,
            &entry.event_id,
        ))?;
    }
    Ok(())
}

pub(super) async fn state_group(pool: &SqlitePool, id: i64) -> Result<Vec<StateEntry>> {
    // One snapshot for both reads. Groups never change once written, but a consistent view
    // costs nothing here.
    let mut tx = pool.begin().await?;
    let chain = sqlx::query(with_chain!(
        "SELECT prev_group FROM chain ORDER BY depth DESC LIMIT 1"
    ))
    .bind(id)
    .bind(MAX_CHAIN)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(oldest) = chain else {
        return Err(StoreError::NotFound(format!("state group {id}")));
    };
    let oldest_prev: Option<i64> = oldest.try_get("prev_group")?;
    if oldest_prev.is_some() {
        return Err(StoreError::Corrupt(format!(
            "state group {id} does not reach a snapshot within {MAX_CHAIN} groups"
        )));
    }
    // SQLite fills bare columns of a MIN() aggregate from the row holding the minimum, so each
    // key takes the entry of the newest group (the smallest depth) that sets it.
    let rows = sqlx::query(with_chain!(
        "SELECT e.event_type, e.state_key, e.event_id, MIN(c.depth) \
         FROM chain AS c JOIN state_group_entries AS e ON e.group_id = c.id \
         GROUP BY e.event_type, e.state_key \
         ORDER BY e.event_type, e.state_key"
    ))
    .bind(id)
    .bind(MAX_CHAIN)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|row| {
            Ok(StateEntry {
                event_type: row.try_get("event_type")?,
                state_key: row.try_get("state_key")?,
                event_id: row.try_get("event_id")?,
            })
        })
        .collect()
}

pub(super) async fn state_group_info(
    pool: &SqlitePool,
    id: i64,
) -> Result<Option<(Option<i64>, u32)>> {
    let row = sqlx::query("SELECT prev_group, chain_len FROM state_groups WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let chain_len: i64 = row.try_get("chain_len")?;
    let chain_len = u32::try_from(chain_len).map_err(|_| {
        StoreError::Corrupt(format!("chain_len of state group {id} is {chain_len}"))
    })?;
    Ok(Some((row.try_get("prev_group")?, chain_len)))
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
