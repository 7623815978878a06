//! `FederationStore` on a tenant's SQLite database (schema in `0011_federation.sql`): the
//! outbound queue, written by the group commit with its events (`write_outbound_pdus`) and
//! read with the current PDU from `events`, and the received transactions' answers.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, Transaction};

use super::SqliteTenantStore;
use super::raw;
use crate::retention::in_batches;
use crate::{FederationStore, OutboundPduRecord, QueuedEdu, QueuedPdu, Result};

/// Received transactions deleted per write transaction when pruning, about.
const INBOX_PER_BATCH: usize = 10_000;

/// Queues PDUs inside the caller's transaction (the batch of their events); a row already
/// queued stays as it is.
pub(crate) fn write_outbound_pdus(tx: &Connection, pdus: &[OutboundPduRecord]) -> Result<()> {
    if pdus.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO federation_outbox (destination, stream, event_id) VALUES (?, ?, ?) \
         ON CONFLICT (destination, stream) DO NOTHING",
    )?;
    for pdu in pdus {
        insert.execute((&pdu.destination, pdu.stream, &pdu.event_id))?;
    }
    Ok(())
}

#[async_trait]
impl FederationStore for SqliteTenantStore {
    async fn outbound_destinations(&self) -> Result<Vec<String>> {
        // Read once per start: the primary key gives the destinations in order.
        let destinations = sqlx::query_scalar(
            "SELECT destination FROM federation_outbox \
             UNION SELECT destination FROM federation_outbox_edus ORDER BY destination",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(destinations)
    }

    async fn queue_edu(&self, destinations: &[String], edu: &str) -> Result<()> {
        self.writer
            .write(|tx| {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO federation_outbox_edus (destination, edu) VALUES (?, ?)",
                )?;
                for destination in destinations {
                    insert.execute((destination, edu))?;
                }
                Ok(())
            })
            .await
    }

    async fn queued_edus(&self, destination: &str, limit: u32) -> Result<Vec<QueuedEdu>> {
        self.reader
            .read(|db| {
                let mut statement = db.prepare_cached(
                    "SELECT id, edu FROM federation_outbox_edus WHERE destination = ? \
                     ORDER BY id LIMIT ?",
                )?;
                let rows = statement.query((destination, i64::from(limit)))?;
                raw::collect(rows, |row| {
                    Ok(QueuedEdu {
                        id: row.get(0)?,
                        edu: row.get(1)?,
                    })
                })
            })
            .await
    }

    async fn acknowledge_edus(&self, destination: &str, up_to_id: i64) -> Result<()> {
        self.writer
            .write(|tx| {
                tx.prepare_cached(
                    "DELETE FROM federation_outbox_edus WHERE destination = ? AND id <= ?",
                )?
                .execute((destination, up_to_id))?;
                Ok(())
            })
            .await
    }

    async fn queued_pdus(&self, destination: &str, limit: u32) -> Result<Vec<QueuedPdu>> {
        // A full transaction's PDUs can be large: off the runtime's workers then, as sync's
        // reads of many events.
        let rows = usize::try_from(limit).unwrap_or(usize::MAX);
        self.reader
            .read_many(rows, |db| queued(db, destination, limit))
            .await
    }

    async fn acknowledge_pdus(&self, destination: &str, up_to_stream: i64) -> Result<()> {
        self.writer
            .write(|tx| {
                tx.prepare_cached(
                    "DELETE FROM federation_outbox WHERE destination = ? AND stream <= ?",
                )?
                .execute((destination, up_to_stream))?;
                Ok(())
            })
            .await
    }

    async fn received_transaction(&self, origin: &str, txn_id: &str) -> Result<Option<String>> {
        // On every incoming transaction: a point lookup, run directly.
        self.reader
            .read(|db| {
                let response = db
                    .prepare_cached(
                        "SELECT response FROM federation_inbox WHERE origin = ? AND txn_id = ?",
                    )?
                    .query_row((origin, txn_id), |row| row.get(0))
                    .optional()?;
                Ok(response)
            })
            .await
    }

    async fn record_received_transaction(
        &self,
        origin: &str,
        txn_id: &str,
        response: &str,
        received_ts: i64,
    ) -> Result<()> {
        // A transaction received twice at once keeps the first answer, as a retry is given.
        self.writer
            .write(|tx| {
                tx.prepare_cached(
                    "INSERT INTO federation_inbox (origin, txn_id, response, received_ts) \
                     VALUES (?, ?, ?, ?) ON CONFLICT (origin, txn_id) DO NOTHING",
                )?
                .execute((origin, txn_id, response, received_ts))?;
                Ok(())
            })
            .await
    }

    async fn prune_received_transactions(&self, before_ts: i64) -> Result<u64> {
        in_batches((), |()| async move {
            self.writer
                .write(|tx| received_transactions_batch(tx, before_ts))
                .await
        })
        .await
    }
}

/// The oldest `limit` PDUs queued for `destination`, each in its stored form.
fn queued(db: &Connection, destination: &str, limit: u32) -> Result<Vec<QueuedPdu>> {
    let mut statement = db.prepare_cached(
        "SELECT o.stream, o.event_id, e.pdu FROM federation_outbox AS o \
         JOIN events AS e ON e.event_id = o.event_id \
         WHERE o.destination = ? ORDER BY o.stream LIMIT ?",
    )?;
    let rows = statement.query((destination, i64::from(limit)))?;
    raw::collect(rows, |row| {
        Ok(QueuedPdu {
            stream: row.get(0)?,
            event_id: row.get(1)?,
            pdu: row.get(2)?,
        })
    })
}

/// Deletes up to `INBOX_PER_BATCH` of the oldest received transactions before `before_ts`;
/// `Some` when more may be left.
fn received_transactions_batch(tx: &Transaction<'_>, before_ts: i64) -> Result<(u64, Option<()>)> {
    let deleted = tx
        .prepare_cached(
            "DELETE FROM federation_inbox WHERE rowid IN \
             (SELECT rowid FROM federation_inbox WHERE received_ts < ? \
              ORDER BY received_ts LIMIT ?)",
        )?
        .execute((before_ts, INBOX_PER_BATCH as i64))?;
    let more = (deleted == INBOX_PER_BATCH).then_some(());
    Ok((deleted as u64, more))
}
