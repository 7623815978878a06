//! To-device messages: stored once per sender transaction, read by the recipient device in
//! stream order, deleted when a later sync acknowledges them (or with the device).

use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};

use super::{device_name, missing};
use crate::postgres::util::Schema;
use crate::{Result, ToDeviceRecord, TxnRecord};

pub(super) async fn insert_to_device(
    schema: &Schema,
    txn: &TxnRecord,
    messages: &[ToDeviceRecord],
) -> Result<bool> {
    // The transaction and its messages commit together: a retry after a crash in between
    // must neither be refused with nothing delivered nor deliver twice. A concurrent retry
    // waits on the first one's txn row and then inserts nothing.
    let mut tx = schema.begin().await?;
    let recorded = sqlx::query(
        "INSERT INTO to_device_txns (localpart, device_id, scope, txn_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (localpart, device_id, scope, txn_id) DO NOTHING",
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
    schema: &Schema,
    messages: &[ToDeviceRecord],
) -> Result<()> {
    let mut tx = schema.begin().await?;
    write_messages(&mut tx, messages).await?;
    tx.commit().await?;
    Ok(())
}

async fn write_messages(conn: &mut PgConnection, messages: &[ToDeviceRecord]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let column =
        |field: fn(&ToDeviceRecord) -> &str| -> Vec<&str> { messages.iter().map(field).collect() };
    let streams: Vec<i64> = messages.iter().map(|m| m.stream).collect();
    // One statement for a send to a whole room's devices. The identity column numbers the
    // rows as they come out of the ORDER BY, so messages keep the order they were given
    // in. A recipient device may be deleted between the caller listing it and this write:
    // the join skips it (such a message has nobody left to read it), and FOR KEY SHARE
    // keeps a device found here from going before the commit, or makes a deletion
    // committed meanwhile drop the row rather than fail the foreign key.
    sqlx::query(
        "INSERT INTO to_device_messages (localpart, device_id, stream, sender, event_type, \
                                         content) \
         SELECT m.localpart, m.device_id, m.stream, m.sender, m.event_type, m.content \
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
                     $6::text[]) WITH ORDINALITY \
              AS m (localpart, device_id, stream, sender, event_type, content, position) \
         JOIN devices AS d ON d.localpart = m.localpart AND d.device_id = m.device_id \
         ORDER BY m.position \
         FOR KEY SHARE OF d",
    )
    .bind(column(|m| &m.localpart))
    .bind(column(|m| &m.device_id))
    .bind(streams)
    .bind(column(|m| &m.sender))
    .bind(column(|m| &m.event_type))
    .bind(column(|m| &m.content_json))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn to_device_messages(
    schema: &Schema,
    localpart: &str,
    device_id: &str,
    up_to: i64,
    limit: u32,
) -> Result<Vec<ToDeviceRecord>> {
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(
        "SELECT localpart, device_id, stream, sender, event_type, content \
         FROM to_device_messages \
         WHERE localpart = $1 AND device_id = $2 AND stream <= $3 \
         ORDER BY stream, id LIMIT $4",
    )
    .bind(localpart)
    .bind(device_id)
    .bind(up_to)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(message_from_row).collect()
}

pub(super) async fn delete_to_device(
    schema: &Schema,
    localpart: &str,
    device_id: &str,
    up_to: i64,
) -> Result<()> {
    let mut conn = schema.conn().await?;
    sqlx::query(
        "DELETE FROM to_device_messages WHERE localpart = $1 AND device_id = $2 AND stream <= $3",
    )
    .bind(localpart)
    .bind(device_id)
    .bind(up_to)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn message_from_row(row: &PgRow) -> Result<ToDeviceRecord> {
    Ok(ToDeviceRecord {
        localpart: row.try_get("localpart")?,
        device_id: row.try_get("device_id")?,
        stream: row.try_get("stream")?,
        sender: row.try_get("sender")?,
        event_type: row.try_get("event_type")?,
        content_json: row.try_get("content")?,
    })
}
