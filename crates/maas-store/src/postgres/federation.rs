//! `FederationStore` on a tenant's PostgreSQL schema (tables in `0010_federation.sql`): the
//! outbound queue, written by the group commit with its events (`write_outbound_pdus`) and
//! read with the current PDU from `events`, and the received transactions' answers.

use async_trait::async_trait;
use sqlx::{PgConnection, Row};

use super::PostgresTenantStore;
use crate::retention::in_batches;
use crate::{FederationStore, OutboundPduRecord, QueuedEdu, QueuedPdu, Result};

/// Received transactions deleted per statement when pruning, about.
const INBOX_PER_BATCH: i64 = 10_000;

/// Queues PDUs with one statement on the caller's transaction (the batch of their events);
/// `DO NOTHING` also covers duplicates in the batch.
pub(crate) async fn write_outbound_pdus(
    conn: &mut PgConnection,
    pdus: &[OutboundPduRecord],
) -> Result<()> {
    if pdus.is_empty() {
        return Ok(());
    }
    let destinations: Vec<&str> = pdus.iter().map(|p| p.destination.as_str()).collect();
    let streams: Vec<i64> = pdus.iter().map(|p| p.stream).collect();
    let event_ids: Vec<&str> = pdus.iter().map(|p| p.event_id.as_str()).collect();
    sqlx::query(
        "INSERT INTO federation_outbox (destination, stream, event_id) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) \
         ON CONFLICT (destination, stream) DO NOTHING",
    )
    .bind(destinations)
    .bind(streams)
    .bind(event_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl FederationStore for PostgresTenantStore {
    async fn outbound_destinations(&self) -> Result<Vec<String>> {
        let mut conn = self.schema.conn().await?;
        let destinations = sqlx::query_scalar(
            "SELECT destination FROM federation_outbox \
             UNION SELECT destination FROM federation_outbox_edus ORDER BY destination",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(destinations)
    }

    async fn queue_edu(&self, destinations: &[String], edu: &str) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO federation_outbox_edus (destination, edu) \
             SELECT d, $2 FROM unnest($1::text[]) AS d",
        )
        .bind(destinations)
        .bind(edu)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn queued_edus(&self, destination: &str, limit: u32) -> Result<Vec<QueuedEdu>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT id, edu FROM federation_outbox_edus WHERE destination = $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(destination)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueuedEdu {
                    id: row.try_get("id")?,
                    edu: row.try_get("edu")?,
                })
            })
            .collect()
    }

    async fn acknowledge_edus(&self, destination: &str, up_to_id: i64) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query("DELETE FROM federation_outbox_edus WHERE destination = $1 AND id <= $2")
            .bind(destination)
            .bind(up_to_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn queued_pdus(&self, destination: &str, limit: u32) -> Result<Vec<QueuedPdu>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT o.stream, o.event_id, e.pdu FROM federation_outbox AS o \
             JOIN events AS e ON e.event_id = o.event_id \
             WHERE o.destination = $1 ORDER BY o.stream LIMIT $2",
        )
        .bind(destination)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueuedPdu {
                    stream: row.try_get("stream")?,
                    event_id: row.try_get("event_id")?,
                    pdu: row.try_get("pdu")?,
                })
            })
            .collect()
    }

    async fn acknowledge_pdus(&self, destination: &str, up_to_stream: i64) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query("DELETE FROM federation_outbox WHERE destination = $1 AND stream <= $2")
            .bind(destination)
            .bind(up_to_stream)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn received_transaction(&self, origin: &str, txn_id: &str) -> Result<Option<String>> {
        let mut conn = self.schema.conn().await?;
        let response = sqlx::query_scalar(
            "SELECT response FROM federation_inbox WHERE origin = $1 AND txn_id = $2",
        )
        .bind(origin)
        .bind(txn_id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(response)
    }

    async fn record_received_transaction(
        &self,
        origin: &str,
        txn_id: &str,
        response: &str,
        received_ts: i64,
    ) -> Result<()> {
        // A transaction received twice at once keeps the first answer, as a retry is given.
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO federation_inbox (origin, txn_id, response, received_ts) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (origin, txn_id) DO NOTHING",
        )
        .bind(origin)
        .bind(txn_id)
        .bind(response)
        .bind(received_ts)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn prune_received_transactions(&self, before_ts: i64) -> Result<u64> {
        // One statement per batch, each its own transaction: row locks are held briefly.
        in_batches((), |()| async move {
            let mut conn = self.schema.conn().await?;
            let deleted = sqlx::query(
                "DELETE FROM federation_inbox WHERE (origin, txn_id) IN \
                 (SELECT origin, txn_id FROM federation_inbox WHERE received_ts < $1 \
                  ORDER BY received_ts LIMIT $2)",
            )
            .bind(before_ts)
            .bind(INBOX_PER_BATCH)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            let more = (deleted as i64 == INBOX_PER_BATCH).then_some(());
            Ok((deleted, more))
        })
        .await
    }
}
