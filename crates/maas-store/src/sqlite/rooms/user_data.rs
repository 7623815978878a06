//! Per-user room data: account data (global and per room), read receipts and filters. The
//! optional room and thread ids are stored as '' so that they can take part in primary keys
//! (NULLs never collide there), and map back to `None` on the way out.

use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use super::ID_CHUNK;
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

pub(super) async fn account_data_in(
    pool: &SqlitePool,
    localpart: &str,
    range: StreamRange,
) -> Result<Vec<AccountDataRecord>> {
    // `after == 0` is an initial sync: everything, whatever position it was written at.
    let after = if range.after == 0 {
        i64::MIN
    } else {
        range.after
    };
    let rows = sqlx::query(select_account_data!(
        "WHERE localpart = ? AND stream > ? AND stream <= ? ORDER BY stream"
    ))
    .bind(localpart)
    .bind(after)
    .bind(range.up_to)
    .fetch_all(pool)
    .await?;
    rows.iter().map(account_data_from_row).collect()
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

pub(super) async fn receipts_in(
    pool: &SqlitePool,
    room_ids: &[String],
    range: StreamRange,
) -> Result<Vec<ReceiptRecord>> {
    let mut receipts = Vec::new();
    for chunk in room_ids.chunks(ID_CHUNK) {
        // Each listed room is one range scan of (room_id, stream).
        let rows = sqlx::query(
            "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream \
             FROM receipts \
             WHERE room_id IN (SELECT value FROM json_each(?)) AND stream > ? AND stream <= ? \
             ORDER BY stream",
        )
        .bind(to_json(&chunk, "room ids")?)
        .bind(range.after)
        .bind(range.up_to)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            receipts.push(receipt_from_row(row)?);
        }
    }
    if room_ids.len() > ID_CHUNK {
        // Chunks are each in stream order; keep the whole answer so too.
        receipts.sort_by_key(|r| r.stream);
    }
    Ok(receipts)
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

fn account_data_from_row(row: &SqliteRow) -> Result<AccountDataRecord> {
    let room_id: String = row.try_get("room_id")?;
    Ok(AccountDataRecord {
        localpart: row.try_get("localpart")?,
        room_id: (!room_id.is_empty()).then_some(room_id),
        data_type: row.try_get("data_type")?,
        content: row.try_get("content")?,
        stream: row.try_get("stream")?,
    })
}

fn receipt_from_row(row: &SqliteRow) -> Result<ReceiptRecord> {
    let thread_id: String = row.try_get("thread_id")?;
    Ok(ReceiptRecord {
        room_id: row.try_get("room_id")?,
        user_id: row.try_get("user_id")?,
        receipt_type: row.try_get("receipt_type")?,
        thread_id: (!thread_id.is_empty()).then_some(thread_id),
        event_id: row.try_get("event_id")?,
        ts: row.try_get("ts")?,
        stream: row.try_get("stream")?,
    })
}
