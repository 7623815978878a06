//! Records read from rows by column name, written once for every driver: sqlx's SQLite and
//! PostgreSQL rows and rusqlite's (the SQLite tenant's direct connections). The tables name
//! their columns alike on both databases, so one mapping serves all three.

use sqlx::Row;

use crate::{
    AccountDataRecord, EventRecord, MembershipRecord, ReceiptRecord, RelationRecord, Result,
    StoreError, TxnRecord,
};

/// A row whose columns can be read by name.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> Result<String>;
    fn text_or_null(&self, name: &str) -> Result<Option<String>>;
    fn int(&self, name: &str) -> Result<i64>;
}

macro_rules! sqlx_columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, name: &str) -> Result<String> {
                Ok(self.try_get(name)?)
            }
            fn text_or_null(&self, name: &str) -> Result<Option<String>> {
                Ok(self.try_get(name)?)
            }
            fn int(&self, name: &str) -> Result<i64> {
                Ok(self.try_get(name)?)
            }
        }
    };
}

sqlx_columns!(sqlx::sqlite::SqliteRow);
sqlx_columns!(sqlx::postgres::PgRow);

impl Columns for rusqlite::Row<'_> {
    fn text(&self, name: &str) -> Result<String> {
        Ok(self.get(name)?)
    }
    fn text_or_null(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(name)?)
    }
    fn int(&self, name: &str) -> Result<i64> {
        Ok(self.get(name)?)
    }
}

/// An event from a row of every `events` column.
pub(crate) fn event_from_row(row: &impl Columns) -> Result<EventRecord> {
    let event_id = row.text("event_id")?;
    let txn = match (
        row.text_or_null("txn_localpart")?,
        row.text_or_null("txn_device_id")?,
        row.text_or_null("txn_id")?,
    ) {
        (Some(localpart), Some(device_id), Some(txn_id)) => Some(TxnRecord {
            localpart,
            device_id,
            // Events stored before scopes were kept have none.
            scope: row.text_or_null("txn_scope")?.unwrap_or_default(),
            txn_id,
        }),
        (None, None, None) => None,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "partial transaction of event {event_id}"
            )));
        }
    };
    let relation = match (
        row.text_or_null("rel_type")?,
        row.text_or_null("parent_event_id")?,
    ) {
        (Some(rel_type), Some(parent_event_id)) => Some(RelationRecord {
            rel_type,
            parent_event_id,
        }),
        (None, None) => None,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "partial relation of event {event_id}"
            )));
        }
    };
    Ok(EventRecord {
        event_id,
        room_id: row.text("room_id")?,
        stream: row.int("stream")?,
        depth: row.int("depth")?,
        event_type: row.text("event_type")?,
        state_key: row.text_or_null("state_key")?,
        sender: row.text("sender")?,
        origin_server_ts: row.int("origin_server_ts")?,
        pdu: row.text("pdu")?,
        state_before: row.int("state_before")?,
        state_after: row.int("state_after")?,
        redacted_by: row.text_or_null("redacted_by")?,
        txn,
        relation,
    })
}

/// A membership from a row of every `room_memberships` column.
pub(crate) fn membership_from_row(row: &impl Columns) -> Result<MembershipRecord> {
    Ok(MembershipRecord {
        room_id: row.text("room_id")?,
        user_id: row.text("user_id")?,
        membership: row.text("membership")?,
        event_id: row.text("event_id")?,
        stream: row.int("stream")?,
        sender: row.text("sender")?,
        stripped_state: row.text_or_null("stripped_state")?,
    })
}

/// An account data entry from a row of every `account_data` column; global entries have room
/// id ''.
pub(crate) fn account_data_from_row(row: &impl Columns) -> Result<AccountDataRecord> {
    let room_id = row.text("room_id")?;
    Ok(AccountDataRecord {
        localpart: row.text("localpart")?,
        room_id: (!room_id.is_empty()).then_some(room_id),
        data_type: row.text("data_type")?,
        content: row.text("content")?,
        stream: row.int("stream")?,
    })
}

/// A receipt from a row of every `receipts` column; unthreaded receipts have thread id ''.
pub(crate) fn receipt_from_row(row: &impl Columns) -> Result<ReceiptRecord> {
    let thread_id = row.text("thread_id")?;
    Ok(ReceiptRecord {
        room_id: row.text("room_id")?,
        user_id: row.text("user_id")?,
        receipt_type: row.text("receipt_type")?,
        thread_id: (!thread_id.is_empty()).then_some(thread_id),
        event_id: row.text("event_id")?,
        ts: row.int("ts")?,
        stream: row.int("stream")?,
    })
}
