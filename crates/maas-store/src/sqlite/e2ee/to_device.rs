//! To-device messages: stored once per sender transaction, read by the recipient device in
//! stream order, deleted when a later sync acknowledges them (or with the device).

use std::sync::Arc;

use sqlx::sqlite::{SqliteConnection, SqlitePool};

use super::{device_name, missing};
use crate::sqlite::raw::Direct;
use crate::sqlite::util::begin_write;
use crate::{Result, ToDeviceRecord, TxnRecord};

pub(super) async fn insert_to_device(
    pool: &SqlitePool,
    txn: &TxnRecord,
    messages: &[ToDeviceRecord],
) -> Result<bool> {
    // The transaction and its messages commit together: a retry after a crash in between
    // must neither be refused with nothing delivered nor deliver twice.
    let mut tx = begin_write(pool).await?;
    let recorded = sqlx::query(
        "INSERT INTO to_device_txns (localpart, device_id, scope, txn_id) VALUES (?, ?, ?, ?) \
         ON CONFLICT (localpart, device_id, scope, txn_id) DO NOTHING",
    )
    .bind(&txn.localpart)
    .bind(&txn.device_id)
    .bind(&txn.scope)
    .bind(&txn.txn_id)
    .execute(&mut *tx)
    .await
    .map_err(|err| missing(err, || device_name(&txn.localpart, &txn.device_id)))?;
    if recorded.rows_affected() == 0 {
        return Ok(false);
    }
    write_messages(&mut tx, messages).await?;
    tx.commit().await?;
    Ok(true)
}

/// Messages another server sent (an `m.direct_to_device` EDU): its transaction is what makes
/// them arrive once.
pub(super) async fn insert_received_to_device(
    pool: &SqlitePool,
    messages: &[ToDeviceRecord],
) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    write_messages(&mut tx, messages).await?;
    tx.commit().await?;
    Ok(())
}

async fn write_messages(conn: &mut SqliteConnection, messages: &[ToDeviceRecord]) -> Result<()> {
    for message in messages {
        // A recipient device may be deleted between the caller listing it and this write;
        // such a message has nobody left to read it.
        sqlx::query(
            "INSERT INTO to_device_messages (localpart, device_id, stream, sender, event_type, \
                                             content) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
             WHERE EXISTS (SELECT 1 FROM devices WHERE localpart = ?1 AND device_id = ?2)",
        )
        .bind(&message.localpart)
        .bind(&message.device_id)
        .bind(message.stream)
        .bind(&message.sender)
        .bind(&message.event_type)
        .bind(&message.content_json)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Read straight on the tenant's direct reader: every sync of the device asks, and mostly
/// finds nothing.
pub(super) async fn to_device_messages(
    reader: &Arc<Direct>,
    localpart: &str,
    device_id: &str,
    up_to: i64,
    limit: u32,
) -> Result<Vec<ToDeviceRecord>> {
    reader
        .read(|db| {
            let mut statement = db.prepare_cached(
                "SELECT localpart, device_id, stream, sender, event_type, content \
                 FROM to_device_messages \
                 WHERE localpart = ? AND device_id = ? AND stream <= ? \
                 ORDER BY stream, id LIMIT ?",
            )?;
            let rows =
                statement.query_map((localpart, device_id, up_to, i64::from(limit)), |row| {
                    Ok(ToDeviceRecord {
                        localpart: row.get("localpart")?,
                        device_id: row.get("device_id")?,
                        stream: row.get("stream")?,
                        sender: row.get("sender")?,
                        event_type: row.get("event_type")?,
                        content_json: row.get("content")?,
                    })
                })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
}

pub(super) async fn delete_to_device(
    pool: &SqlitePool,
    localpart: &str,
    device_id: &str,
    up_to: i64,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM to_device_messages WHERE localpart = ? AND device_id = ? AND stream <= ?",
    )
    .bind(localpart)
    .bind(device_id)
    .bind(up_to)
    .execute(pool)
    .await?;
    Ok(())
}
