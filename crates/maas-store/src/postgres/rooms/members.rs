//! Current memberships, forgotten rooms and room aliases. Memberships are one row per
//! (room, user), replaced by each membership event, and indexed by user and stream so that
//! "what changed for this user" never reads other users' rows.

use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::postgres::util::{Schema, conflict};
use crate::rows::membership_from_row;
use crate::{AliasRecord, MembershipRecord, Result, StreamRange};

/// `SELECT <every membership column> FROM room_memberships <rest>`, as a `&'static str`.
macro_rules! select_memberships {
    ($rest:literal) => {
        concat!(
            "SELECT room_id, user_id, membership, event_id, stream, sender, stripped_state \
             FROM room_memberships ",
            $rest
        )
    };
}

/// Replaces the user's membership of the room, inside the caller's transaction.
pub(super) async fn write_membership(
    conn: &mut PgConnection,
    membership: &MembershipRecord,
) -> Result<()> {
    sqlx::query(
        // `joined_since` survives a join replacing a join (a new display name): room-wide
        // notifications count from where the join began.
        "INSERT INTO room_memberships (room_id, user_id, membership, event_id, stream, sender, \
                                       stripped_state, joined_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $3 = 'join' THEN $5 END) \
         ON CONFLICT (room_id, user_id) DO UPDATE \
         SET membership = excluded.membership, event_id = excluded.event_id, \
             stream = excluded.stream, sender = excluded.sender, \
             stripped_state = excluded.stripped_state, \
             joined_since = CASE WHEN room_memberships.membership = 'join' \
                                  AND excluded.membership = 'join' \
                                 THEN room_memberships.joined_since \
                                 ELSE excluded.joined_since END",
    )
    .bind(&membership.room_id)
    .bind(&membership.user_id)
    .bind(&membership.membership)
    .bind(&membership.event_id)
    .bind(membership.stream)
    .bind(&membership.sender)
    .bind(&membership.stripped_state)
    .execute(&mut *conn)
    .await?;
    // A forgotten room comes back once the user's membership changes again (a new invite,
    // a rejoin), as the spec asks.
    sqlx::query("DELETE FROM forgotten_rooms WHERE room_id = $1 AND user_id = $2")
        .bind(&membership.room_id)
        .bind(&membership.user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn membership(
    schema: &Schema,
    room_id: &str,
    user_id: &str,
) -> Result<Option<MembershipRecord>> {
    let mut conn = schema.conn().await?;
    let row = sqlx::query(select_memberships!("WHERE room_id = $1 AND user_id = $2"))
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(membership_from_row).transpose()
}

pub(super) async fn memberships_of_user(
    schema: &Schema,
    user_id: &str,
) -> Result<Vec<MembershipRecord>> {
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(select_memberships!("WHERE user_id = $1 ORDER BY stream"))
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(membership_from_row).collect()
}

pub(super) async fn memberships_of_user_in(
    schema: &Schema,
    user_id: &str,
    range: StreamRange,
) -> Result<Vec<MembershipRecord>> {
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(select_memberships!(
        "WHERE user_id = $1 AND stream > $2 AND stream <= $3 ORDER BY stream"
    ))
    .bind(user_id)
    .bind(range.after)
    .bind(range.up_to)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(membership_from_row).collect()
}

pub(super) async fn room_members(
    schema: &Schema,
    room_id: &str,
    membership: Option<&str>,
) -> Result<Vec<MembershipRecord>> {
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(select_memberships!(
        "WHERE room_id = $1 AND ($2::text IS NULL OR membership = $2) ORDER BY user_id"
    ))
    .bind(room_id)
    .bind(membership)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(membership_from_row).collect()
}

pub(super) async fn forget_room(schema: &Schema, room_id: &str, user_id: &str) -> Result<()> {
    let mut conn = schema.conn().await?;
    sqlx::query(
        "INSERT INTO forgotten_rooms (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(room_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn is_forgotten(schema: &Schema, room_id: &str, user_id: &str) -> Result<bool> {
    let mut conn = schema.conn().await?;
    let row = sqlx::query("SELECT 1 FROM forgotten_rooms WHERE room_id = $1 AND user_id = $2")
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

pub(super) async fn insert_alias(schema: &Schema, alias: &AliasRecord) -> Result<()> {
    let mut conn = schema.conn().await?;
    sqlx::query("INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3)")
        .bind(&alias.alias)
        .bind(&alias.room_id)
        .bind(&alias.creator)
        .execute(&mut *conn)
        .await
        .map_err(|err| conflict(err, || format!("alias {}", alias.alias)))?;
    Ok(())
}

pub(super) async fn alias(schema: &Schema, alias: &str) -> Result<Option<AliasRecord>> {
    let mut conn = schema.conn().await?;
    let row = sqlx::query("SELECT alias, room_id, creator FROM room_aliases WHERE alias = $1")
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        Ok(AliasRecord {
            alias: row.try_get("alias")?,
            room_id: row.try_get("room_id")?,
            creator: row.try_get("creator")?,
        })
    })
    .transpose()
}

pub(super) async fn delete_alias(schema: &Schema, alias: &str) -> Result<bool> {
    let mut conn = schema.conn().await?;
    let deleted = sqlx::query("DELETE FROM room_aliases WHERE alias = $1")
        .bind(alias)
        .execute(&mut *conn)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

pub(super) async fn aliases_of_room(schema: &Schema, room_id: &str) -> Result<Vec<String>> {
    let mut conn = schema.conn().await?;
    let aliases =
        sqlx::query_scalar("SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias")
            .bind(room_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(aliases)
}
