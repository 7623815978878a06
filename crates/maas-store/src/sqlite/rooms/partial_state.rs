//! Rooms joined with partial state (schema in `0013_partial_state.sql`): the record written
//! with the join, and the completion that adds the omitted members to the room's state once
//! they are fetched.

use std::sync::Arc;

use rusqlite::Connection;
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use super::{events, members};
use crate::sqlite::raw::Direct;
use crate::sqlite::util::{from_json, to_json};
use crate::{PartialStateCompletion, PartialStateRecord, Result};

/// Records a partial-state join inside the caller's transaction (the join's batch).
pub(super) fn write_partial_state(tx: &Connection, record: &PartialStateRecord) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO partial_state_rooms (room_id, join_event_id, state_group, servers) \
         VALUES (?, ?, ?, ?) \
         ON CONFLICT (room_id) DO UPDATE \
         SET join_event_id = excluded.join_event_id, state_group = excluded.state_group, \
             servers = excluded.servers",
    )?
    .execute((
        &record.room_id,
        &record.join_event_id,
        record.state_group,
        to_json(&record.servers, "servers")?,
    ))?;
    Ok(())
}

pub(super) async fn partial_state_rooms(pool: &SqlitePool) -> Result<Vec<PartialStateRecord>> {
    let rows = sqlx::query(
        "SELECT room_id, join_event_id, state_group, servers FROM partial_state_rooms \
         ORDER BY room_id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PartialStateRecord {
                room_id: row.try_get("room_id")?,
                join_event_id: row.try_get("join_event_id")?,
                state_group: row.try_get("state_group")?,
                servers: from_json(row.try_get("servers")?, "partial state servers")?,
            })
        })
        .collect()
}

pub(super) async fn complete_partial_state(
    writer: &Arc<Direct>,
    completion: &PartialStateCompletion,
) -> Result<()> {
    writer
        .write(|tx| {
            let room_id = &completion.room_id;
            for outlier in &completion.outliers {
                events::insert_outlier(tx, outlier)?;
            }
            // A snapshot that has the key already got it from an event after the join.
            let mut add = tx.prepare_cached(
                "INSERT INTO state_group_entries (group_id, event_type, state_key, event_id) \
                 SELECT id, ?, ?, ? FROM state_groups \
                 WHERE room_id = ? AND prev_group IS NULL AND id >= ? \
                 ON CONFLICT DO NOTHING",
            )?;
            for entry in &completion.entries {
                add.execute((
                    &entry.event_type,
                    &entry.state_key,
                    &entry.event_id,
                    room_id,
                    completion.since_group,
                ))?;
            }
            let mut known = tx.prepare_cached(
                "SELECT 1 FROM room_memberships WHERE room_id = ? AND user_id = ?",
            )?;
            for membership in &completion.memberships {
                if !known.exists((room_id, &membership.user_id))? {
                    members::write_membership(tx, membership)?;
                }
            }
            let mut announce = tx.prepare_cached(
                "UPDATE room_memberships SET stream = ? WHERE room_id = ? AND user_id = ?",
            )?;
            for user_id in &completion.announce {
                announce.execute((completion.announce_stream, room_id, user_id))?;
            }
            tx.prepare_cached("DELETE FROM partial_state_rooms WHERE room_id = ?")?
                .execute([room_id])?;
            Ok(())
        })
        .await
}
