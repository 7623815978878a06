//! Current memberships, forgotten rooms and room aliases. Memberships are one row per
//! (room, user), replaced by each membership event, and indexed by user and stream so that
//! "what changed for this user" never reads other users' rows.

use std::sync::Arc;

use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use crate::rows::membership_from_row;
use crate::sqlite::raw::{self, Direct};
use crate::sqlite::util::conflict;
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
pub(super) fn write_membership(
    tx: &rusqlite::Connection,
    membership: &MembershipRecord,
) -> Result<()> {
    tx.prepare_cached(
        // `joined_since` survives a join replacing a join (a new display name): room-wide
        // notifications count from where the join began.
        "INSERT INTO room_memberships (room_id, user_id, membership, event_id, stream, sender, \
                                       stripped_state, joined_since) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?3 = 'join' THEN ?5 END) \
         ON CONFLICT (room_id, user_id) DO UPDATE \
         SET membership = excluded.membership, event_id = excluded.event_id, \
             stream = excluded.stream, sender = excluded.sender, \
             stripped_state = excluded.stripped_state, \
             joined_since = CASE WHEN room_memberships.membership = 'join' \
                                  AND excluded.membership = 'join' \
                                 THEN room_memberships.joined_since \
                                 ELSE excluded.joined_since END",
    )?
    .execute((
        &membership.room_id,
        &membership.user_id,
        &membership.membership,
        &membership.event_id,
        membership.stream,
        &membership.sender,
        &membership.stripped_state,
    ))?;
    // A forgotten room comes back once the user's membership changes again (a new invite,
    // a rejoin), as the spec asks.
    tx.prepare_cached("DELETE FROM forgotten_rooms WHERE room_id = ? AND user_id = ?")?
        .execute((&membership.room_id, &membership.user_id))?;
    Ok(())
}

pub(super) async fn membership(
    pool: &SqlitePool,
    room_id: &str,
    user_id: &str,
) -> Result<Option<MembershipRecord>> {
    let row = sqlx::query(select_memberships!("WHERE room_id = ? AND user_id = ?"))
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(membership_from_row).transpose()
}

/// Read straight on the tenant's direct reader: every sync starts with it, and one index range
/// of the user's own rows costs less than a hand-off to a pool connection's thread.
pub(super) async fn memberships_of_user(
    reader: &Arc<Direct>,
    user_id: &str,
) -> Result<Vec<MembershipRecord>> {
    reader
        .read(|db| {
            let mut statement =
                db.prepare_cached(select_memberships!("WHERE user_id = ? ORDER BY stream"))?;
            raw::collect(statement.query([user_id])?, membership_from_row)
        })
        .await
}

pub(super) async fn memberships_of_user_in(
    pool: &SqlitePool,
    user_id: &str,
    range: StreamRange,
) -> Result<Vec<MembershipRecord>> {
    let rows = sqlx::query(select_memberships!(
        "WHERE user_id = ? AND stream > ? AND stream <= ? ORDER BY stream"
    ))
    .bind(user_id)
    .bind(range.after)
    .bind(range.up_to)
    .fetch_all(pool)
    .await?;
    rows.iter().map(membership_from_row).collect()
}

pub(super) async fn room_members(
    pool: &SqlitePool,
    room_id: &str,
    membership: Option<&str>,
) -> Result<Vec<MembershipRecord>> {
    let rows = sqlx::query(select_memberships!(
        "WHERE room_id = ?1 AND (?2 IS NULL OR membership = ?2) ORDER BY user_id"
    ))
    .bind(room_id)
    .bind(membership)
    .fetch_all(pool)
    .await?;
    rows.iter().map(membership_from_row).collect()
}

pub(super) async fn forget_room(pool: &SqlitePool, room_id: &str, user_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO forgotten_rooms (room_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(room_id)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn is_forgotten(pool: &SqlitePool, room_id: &str, user_id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 FROM forgotten_rooms WHERE room_id = ? AND user_id = ?")
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

pub(super) async fn insert_alias(pool: &SqlitePool, alias: &AliasRecord) -> Result<()> {
    sqlx::query("INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)")
        .bind(&alias.alias)
        .bind(&alias.room_id)
        .bind(&alias.creator)
        .execute(pool)
        .await
        .map_err(|err| conflict(err, || format!("alias {}", alias.alias)))?;
    Ok(())
}

pub(super) async fn alias(pool: &SqlitePool, alias: &str) -> Result<Option<AliasRecord>> {
    let row = sqlx::query("SELECT alias, room_id, creator FROM room_aliases WHERE alias = ?")
        .bind(alias)
        .fetch_optional(pool)
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

pub(super) async fn delete_alias(pool: &SqlitePool, alias: &str) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM room_aliases WHERE alias = ?")
        .bind(alias)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

pub(super) async fn aliases_of_room(pool: &SqlitePool, room_id: &str) -> Result<Vec<String>> {
    let aliases =
        sqlx::query_scalar("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias")
            .bind(room_id)
            .fetch_all(pool)
            .await?;
    Ok(aliases)
}
