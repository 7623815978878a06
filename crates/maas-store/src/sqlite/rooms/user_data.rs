//! Per-user room data: account data (global and per room), read receipts and filters. The
//! optional room and thread ids are stored as '' so that they can take part in primary keys
//! (NULLs never collide there), and map back to `None` on the way out.

use std::sync::Arc;

use sqlx::sqlite::SqlitePool;

use super::ID_CHUNK;
use crate::rows::{account_data_from_row, receipt_from_row};
use crate::sqlite::raw::{self, Direct};
use crate::sqlite::util::to_json;
use crate::{AccountDataRecord, ReceiptRecord, Result, StreamRange};

/// `SELECT <every account data column> FROM account_data <rest>`, as a `&'static str`.
macro_rules! select_account_data {
    ($rest:literal) => {
        concat!(
            "SELECT localpart, room_id, data_type, content, stream FROM account_data ",
            $rest
        )
    };
}

pub(super) async fn set_account_data(pool: &SqlitePool, data: &AccountDataRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO account_data (localpart, room_id, data_type, content, stream) \
         VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (localpart, room_id, data_type) DO UPDATE \
         SET content = excluded.content, stream = excluded.stream",
    )
    .bind(&data.localpart)
    .bind(data.room_id.as_deref().unwrap_or(""))
    .bind(&data.data_type)
    .bind(&data.content)
    .bind(data.stream)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn account_data(
    pool: &SqlitePool,
    localpart: &str,
    room_id: Option<&str>,
    data_type: &str,
) -> Result<Option<AccountDataRecord>> {
    let row = sqlx::query(select_account_data!(
        "WHERE localpart = ? AND room_id = ? AND data_type = ?"
    ))
    .bind(localpart)
    .bind(room_id.unwrap_or(""))
    .bind(data_type)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(account_data_from_row).transpose()
}

/// Read straight on the tenant's direct reader: every sync asks, and an incremental one
/// mostly finds nothing, which costs less than a hand-off to a pool connection's thread.
pub(super) async fn account_data_in(
    reader: &Arc<Direct>,
    localpart: &str,
    range: StreamRange,
) -> Result<Vec<AccountDataRecord>> {
    // `after == 0` is an initial sync: everything, whatever position it was written at.
    let after = if range.after == 0 {
        i64::MIN
    } else {
        range.after
    };
    reader
        .read(|db| {
            let mut statement = db.prepare_cached(select_account_data!(
                "WHERE localpart = ? AND stream > ? AND stream <= ? ORDER BY stream"
            ))?;
            let rows = statement.query((localpart, after, range.up_to))?;
            raw::collect(rows, account_data_from_row)
        })
        .await
}

pub(super) async fn set_receipt(pool: &SqlitePool, receipt: &ReceiptRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream) \
         VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE \
         SET event_id = excluded.event_id, ts = excluded.ts, stream = excluded.stream",
    )
    .bind(&receipt.room_id)
    .bind(&receipt.user_id)
    .bind(&receipt.receipt_type)
    .bind(receipt.thread_id.as_deref().unwrap_or(""))
    .bind(&receipt.event_id)
    .bind(receipt.ts)
    .bind(receipt.stream)
    .execute(pool)
    .await?;
    Ok(())
}

/// Read straight on the tenant's direct reader, as `account_data_in`: every sync asks.
pub(super) async fn receipts_in(
    reader: &Arc<Direct>,
    room_ids: &[String],
    range: StreamRange,
) -> Result<Vec<ReceiptRecord>> {
    reader
        .read(|db| {
            // Each listed room is one range scan of (room_id, stream).
            let mut statement = db.prepare_cached(
                "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream \
                 FROM receipts \
                 WHERE room_id IN (SELECT value FROM json_each(?)) AND stream > ? AND stream <= ? \
                 ORDER BY stream",
            )?;
            let mut receipts = Vec::new();
            for chunk in room_ids.chunks(ID_CHUNK) {
                let rooms = to_json(&chunk, "room ids")?;
                let rows = statement.query((rooms, range.after, range.up_to))?;
                receipts.extend(raw::collect(rows, receipt_from_row)?);
            }
            if room_ids.len() > ID_CHUNK {
                // Chunks are each in stream order; keep the whole answer so too.
                receipts.sort_by_key(|r| r.stream);
            }
            Ok(receipts)
        })
        .await
}

pub(super) async fn insert_filter(
    pool: &SqlitePool,
    localpart: &str,
    filter_json: &str,
) -> Result<String> {
    // Picking the next id and inserting are one statement, which holds the write lock
    // throughout, so concurrent uploads can't get the same id.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO filters (localpart, filter_id, filter_json) \
         SELECT ?1, COALESCE(MAX(filter_id) + 1, 0), ?2 FROM filters WHERE localpart = ?1 \
         RETURNING filter_id",
    )
    .bind(localpart)
    .bind(filter_json)
    .fetch_one(pool)
    .await?;
    Ok(id.to_string())
}

pub(super) async fn filter(
    pool: &SqlitePool,
    localpart: &str,
    filter_id: &str,
) -> Result<Option<String>> {
    // Ids are handed out as decimal integers; anything else ("01", "x") names no filter.
    let Ok(id) = filter_id.parse::<i64>() else {
        return Ok(None);
    };
    if id.to_string() != filter_id {
        return Ok(None);
    }
    let json =
        sqlx::query_scalar("SELECT filter_json FROM filters WHERE localpart = ? AND filter_id = ?")
            .bind(localpart)
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(json)
}
