//! Per-user room data: account data (global and per room), read receipts and filters. The
//! optional room and thread ids are stored as '' so that they can take part in primary keys
//! (NULLs never collide there), and map back to `None` on the way out.

use crate::postgres::util::Schema;
use crate::rows::{account_data_from_row, receipt_from_row};
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

pub(super) async fn set_account_data(schema: &Schema, data: &AccountDataRecord) -> Result<()> {
    let mut conn = schema.conn().await?;
    sqlx::query(
        "INSERT INTO account_data (localpart, room_id, data_type, content, stream) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (localpart, room_id, data_type) DO UPDATE \
         SET content = excluded.content, stream = excluded.stream",
    )
    .bind(&data.localpart)
    .bind(data.room_id.as_deref().unwrap_or(""))
    .bind(&data.data_type)
    .bind(&data.content)
    .bind(data.stream)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn account_data(
    schema: &Schema,
    localpart: &str,
    room_id: Option<&str>,
    data_type: &str,
) -> Result<Option<AccountDataRecord>> {
    let mut conn = schema.conn().await?;
    let row = sqlx::query(select_account_data!(
        "WHERE localpart = $1 AND room_id = $2 AND data_type = $3"
    ))
    .bind(localpart)
    .bind(room_id.unwrap_or(""))
    .bind(data_type)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(account_data_from_row).transpose()
}

pub(super) async fn account_data_in(
    schema: &Schema,
    localpart: &str,
    range: StreamRange,
) -> Result<Vec<AccountDataRecord>> {
    // `after == 0` is an initial sync: everything, whatever position it was written at.
    let after = if range.after == 0 {
        i64::MIN
    } else {
        range.after
    };
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(select_account_data!(
        "WHERE localpart = $1 AND stream > $2 AND stream <= $3 ORDER BY stream"
    ))
    .bind(localpart)
    .bind(after)
    .bind(range.up_to)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(account_data_from_row).collect()
}

pub(super) async fn set_receipt(schema: &Schema, receipt: &ReceiptRecord) -> Result<()> {
    let mut conn = schema.conn().await?;
    sqlx::query(
        "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn receipts_in(
    schema: &Schema,
    room_ids: &[String],
    range: StreamRange,
) -> Result<Vec<ReceiptRecord>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The rooms go in as one array; each listed room is one range scan of (room_id, stream).
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(
        "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream \
         FROM receipts \
         WHERE room_id = ANY($1) AND stream > $2 AND stream <= $3 \
         ORDER BY stream",
    )
    .bind(room_ids)
    .bind(range.after)
    .bind(range.up_to)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(receipt_from_row).collect()
}

pub(super) async fn insert_filter(
    schema: &Schema,
    localpart: &str,
    filter_json: &str,
) -> Result<String> {
    // Under READ COMMITTED two uploads could read the same MAX and collide on the key. This
    // lock mode conflicts with itself and with every writer of `filters`, not with readers:
    // uploads of the tenant take turns (they are rare and this transaction is short).
    let mut tx = schema.begin().await?;
    sqlx::query("LOCK TABLE filters IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO filters (localpart, filter_id, filter_json) \
         SELECT $1, COALESCE(MAX(filter_id) + 1, 0), $2 FROM filters WHERE localpart = $1 \
         RETURNING filter_id",
    )
    .bind(localpart)
    .bind(filter_json)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id.to_string())
}

pub(super) async fn filter(
    schema: &Schema,
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
    let mut conn = schema.conn().await?;
    let json = sqlx::query_scalar(
        "SELECT filter_json FROM filters WHERE localpart = $1 AND filter_id = $2",
    )
    .bind(localpart)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(json)
}
