//! Rooms joined with partial state (schema in `0012_partial_state.sql`): the record written
//! with the join, and the completion that adds the omitted members to the room's state once
//! they are fetched.

use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::{events, members};
use crate::postgres::util::{Schema, from_json, to_json};
use crate::{PartialStateCompletion, PartialStateRecord, Result};

/// Records a partial-state join inside the caller's transaction (the join's batch).
pub(super) async fn write_partial_state(
    conn: &mut PgConnection,
    record: &PartialStateRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO partial_state_rooms (room_id, join_event_id, state_group, servers) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (room_id) DO UPDATE \
         SET join_event_id = excluded.join_event_id, state_group = excluded.state_group, \
             servers = excluded.servers",
    )
    .bind(&record.room_id)
    .bind(&record.join_event_id)
    .bind(record.state_group)
    .bind(to_json(&record.servers, "servers")?)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn partial_state_rooms(schema: &Schema) -> Result<Vec<PartialStateRecord>> {
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(
        "SELECT room_id, join_event_id, state_group, servers FROM partial_state_rooms \
         ORDER BY room_id",
    )
    .fetch_all(&mut *conn)
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
    schema: &Schema,
    completion: &PartialStateCompletion,
) -> Result<()> {
    let room_id = &completion.room_id;
    let mut tx = schema.begin().await?;
    for outlier in &completion.outliers {
        events::insert_outlier(&mut tx, outlier).await?;
    }
    let column = |f: fn(&crate::StateEntry) -> &str| -> Vec<&str> {
        completion.entries.iter().map(f).collect()
    };
    // One statement for every entry and snapshot; a snapshot that has the key already got it
    // from an event after the join.
    sqlx::query(
        "INSERT INTO state_group_entries (group_id, event_type, state_key, event_id) \
         SELECT g.id, e.event_type, e.state_key, e.event_id \
         FROM state_groups AS g, \
              unnest($1::text[], $2::text[], $3::text[]) AS e (event_type, state_key, event_id) \
         WHERE g.room_id = $4 AND g.prev_group IS NULL AND g.id >= $5 \
         ON CONFLICT DO NOTHING",
    )
    .bind(column(|e| &e.event_type))
    .bind(column(|e| &e.state_key))
    .bind(column(|e| &e.event_id))
    .bind(room_id)
    .bind(completion.since_group)
    .execute(&mut *tx)
    .await?;
    for membership in &completion.memberships {
        let known: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM room_memberships WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id)
        .bind(&membership.user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if known.is_none() {
            members::write_membership(&mut tx, membership).await?;
        }
    }
    sqlx::query("UPDATE room_memberships SET stream = $1 WHERE room_id = $2 AND user_id = ANY($3)")
        .bind(completion.announce_stream)
        .bind(room_id)
        .bind(&completion.announce)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM partial_state_rooms WHERE room_id = $1")
        .bind(room_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
