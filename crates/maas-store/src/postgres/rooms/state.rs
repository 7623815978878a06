//! The stream and state-group counters, room records and state groups. A group is a snapshot
//! or a delta against an older group; reading one walks the chain in a recursive query and lets
//! PostgreSQL pick the newest entry per key, so only the resolved state leaves the database.

use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};

use crate::postgres::util::{Schema, conflict, found, is_foreign_key_violation, to_u64};
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

pub(super) async fn stream_reserved(schema: &Schema) -> Result<i64> {
    // The highest stored event counts too (MAX of the primary key is one index step): a
    // position handed out without a reservation must still never be handed out again.
    let mut conn = schema.conn().await?;
    let reserved: i64 = sqlx::query_scalar(
        "SELECT GREATEST(stream_reserved, COALESCE((SELECT MAX(stream) FROM events), 0)) \
         FROM counters WHERE id = 0",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(reserved)
}

pub(super) async fn reserve_stream(schema: &Schema, up_to: i64) -> Result<()> {
    // One statement on one row: a concurrent reservation waits for the row lock and then
    // recomputes GREATEST from the committed value, so none can lower another's.
    let mut conn = schema.conn().await?;
    sqlx::query("UPDATE counters SET stream_reserved = GREATEST(stream_reserved, $1) WHERE id = 0")
        .bind(up_to)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn insert_room(schema: &Schema, room: &RoomRecord) -> Result<()> {
    let mut conn = schema.conn().await?;
    write_room(&mut conn, room).await
}

/// Inserts a room row on the caller's connection or transaction; `Conflict` when it exists.
pub(super) async fn write_room(conn: &mut PgConnection, room: &RoomRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO rooms (room_id, room_version, creator, created_ts, published, state_group) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&room.room_id)
    .bind(&room.room_version)
    .bind(&room.creator)
    .bind(room.created_ts)
    .bind(room.published)
    .bind(room.state_group)
    .execute(&mut *conn)
    .await
    .map_err(|err| conflict(err, || format!("room {}", room.room_id)))?;
    Ok(())
}

pub(super) async fn room(schema: &Schema, room_id: &str) -> Result<Option<RoomRecord>> {
    let mut conn = schema.conn().await?;
    let row = sqlx::query(select_rooms!("WHERE room_id = $1"))
        .bind(room_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(room_from_row).transpose()
}

pub(super) async fn set_room_published(
    schema: &Schema,
    room_id: &str,
    published: bool,
) -> Result<()> {
    let mut conn = schema.conn().await?;
    let updated = sqlx::query("UPDATE rooms SET published = $1 WHERE room_id = $2")
        .bind(published)
        .bind(room_id)
        .execute(&mut *conn)
        .await?;
    found(updated.rows_affected(), || format!("room {room_id}"))
}

pub(super) async fn published_rooms(
    schema: &Schema,
    since: Option<&str>,
    limit: u32,
) -> Result<Vec<RoomRecord>> {
    // Every room id sorts after '' (byte order), so "from the start" is a plain bound too and
    // each page is one range read of the partial index.
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(select_rooms!(
        "WHERE published AND room_id > $1 ORDER BY room_id LIMIT $2"
    ))
    .bind(since.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(room_from_row).collect()
}

pub(super) async fn count_published_rooms(schema: &Schema) -> Result<u64> {
    let mut conn = schema.conn().await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE published")
        .fetch_one(&mut *conn)
        .await?;
    to_u64(count, "published room count")
}

pub(super) async fn reserve_state_groups(schema: &Schema, count: i64) -> Result<i64> {
    // Incrementing and reading in one statement keeps ids unique under concurrent calls: a
    // second caller waits for the row lock and recomputes from the committed value. Ids stored
    // by other means (a restored backup, a caller's own id) are skipped as well.
    let mut conn = schema.conn().await?;
    let id: i64 = sqlx::query_scalar(
        "UPDATE counters \
         SET last_state_group = \
             GREATEST(last_state_group, COALESCE((SELECT MAX(id) FROM state_groups), 0)) + $1 \
         WHERE id = 0 \
         RETURNING last_state_group",
    )
    .bind(count.max(1))
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

pub(super) async fn insert_state_group(schema: &Schema, group: &NewStateGroup) -> Result<()> {
    let mut tx = schema.begin().await?;
    write_state_group(&mut tx, group).await?;
    tx.commit().await
}

/// Writes a group and its entries inside the caller's transaction: `Conflict` when the id is
/// taken, `NotFound` when `prev_group` doesn't exist.
pub(super) async fn write_state_group(
    conn: &mut PgConnection,
    group: &NewStateGroup,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO state_groups (id, room_id, prev_group, chain_len) VALUES ($1, $2, $3, $4)",
    )
    .bind(group.id)
    .bind(&group.room_id)
    .bind(group.prev_group)
    .bind(i64::from(group.chain_len))
    .execute(&mut *conn)
    .await
    .map_err(|err| {
        if is_foreign_key_violation(&err) {
            StoreError::NotFound(format!(
                "state group {} (previous group of {})",
                group.prev_group.unwrap_or_default(),
                group.id
            ))
        } else {
            conflict(err, || format!("state group {}", group.id))
        }
    })?;
    if group.delta.is_empty() {
        return Ok(());
    }
    // All entries in one statement, one array per column: a snapshot of a large room has
    // thousands. A key given twice keeps its last entry, as applying the delta in order would;
    // it is picked here because one INSERT may not touch the same row twice.
    let (mut types, mut keys, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for e in &group.delta {
        types.push(e.event_type.as_str());
        keys.push(e.state_key.as_str());
        ids.push(e.event_id.as_str());
    }
    sqlx::query(
        "INSERT INTO state_group_entries (group_id, event_type, state_key, event_id) \
         SELECT DISTINCT ON (d.event_type, d.state_key) $1, d.event_type, d.state_key, d.event_id \
         FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY \
             AS d (event_type, state_key, event_id, n) \
         ORDER BY d.event_type, d.state_key, d.n DESC",
    )
    .bind(group.id)
    .bind(types)
    .bind(keys)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn state_group(schema: &Schema, id: i64) -> Result<Vec<StateEntry>> {
    // One statement, so one snapshot. `chain` is group $1 (depth 0) and the groups it is a
    // delta against, up to its snapshot; `oldest` is the last group reached, whose
    // `prev_group` must be NULL or the chain was cut short by the guard (a cycle, or damage).
    // Each key takes the entry of the newest group (the smallest depth) that sets it. The
    // left join keeps the `oldest` row when the state is empty; no row means no such group.
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(
        "WITH RECURSIVE chain (id, prev_group, depth) AS ( \
             SELECT id, prev_group, 0::bigint FROM state_groups WHERE id = $1 \
             UNION ALL \
             SELECT g.id, g.prev_group, c.depth + 1 \
             FROM chain AS c JOIN state_groups AS g ON g.id = c.prev_group \
             WHERE c.depth < $2 \
         ), \
         oldest AS (SELECT prev_group FROM chain ORDER BY depth DESC LIMIT 1), \
         resolved AS ( \
             SELECT DISTINCT ON (e.event_type, e.state_key) \
                    e.event_type, e.state_key, e.event_id \
             FROM chain AS c JOIN state_group_entries AS e ON e.group_id = c.id \
             ORDER BY e.event_type, e.state_key, c.depth \
         ) \
         SELECT oldest.prev_group AS oldest_prev, \
                resolved.event_type, resolved.state_key, resolved.event_id \
         FROM oldest LEFT JOIN resolved ON TRUE \
         ORDER BY resolved.event_type, resolved.state_key",
    )
    .bind(id)
    .bind(MAX_CHAIN)
    .fetch_all(&mut *conn)
    .await?;
    let Some(first) = rows.first() else {
        return Err(StoreError::NotFound(format!("state group {id}")));
    };
    let oldest_prev: Option<i64> = first.try_get("oldest_prev")?;
    if oldest_prev.is_some() {
        return Err(StoreError::Corrupt(format!(
            "state group {id} does not reach a snapshot within {MAX_CHAIN} groups"
        )));
    }
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let event_type: Option<String> = row.try_get("event_type")?;
        // The one row of an empty state carries no entry.
        let Some(event_type) = event_type else {
            continue;
        };
        entries.push(StateEntry {
            event_type,
            state_key: row.try_get("state_key")?,
            event_id: row.try_get("event_id")?,
        });
    }
    Ok(entries)
}

pub(super) async fn state_group_info(
    schema: &Schema,
    id: i64,
) -> Result<Option<(Option<i64>, u32)>> {
    let mut conn = schema.conn().await?;
    let row = sqlx::query("SELECT prev_group, chain_len FROM state_groups WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
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
