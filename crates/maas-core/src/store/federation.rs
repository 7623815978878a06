//! What federation stores per tenant: the outbound queue of PDUs per destination server (rows
//! written in the same transaction as their event, removed once the destination acknowledged
//! them), the EDUs that must reach it as surely (to-device messages, device list and signing
//! key updates), and the transactions received from other servers (answered again, not
//! applied again, when an origin retries one).

use async_trait::async_trait;

use super::Result;

/// A PDU waiting for a destination server, as the group commit stores it with its event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundPduRecord {
    /// The server name the PDU goes to.
    pub destination: String,
    /// The event's stream position in this tenant, which orders the queue.
    pub stream: i64,
    pub event_id: String,
}

/// A queued PDU as the sender reads it: its position and the stored PDU (canonical JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedPdu {
    pub stream: i64,
    pub event_id: String,
    pub pdu: String,
}

/// A queued EDU: its place in the queue (ids only grow) and the EDU as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedEdu {
    pub id: i64,
    pub edu: String,
}

#[async_trait]
pub trait FederationStore: Send + Sync {
    /// Destinations with at least one queued PDU or EDU (after a restart, whom to send to).
    async fn outbound_destinations(&self) -> Result<Vec<String>>;
    /// Queues `edu` (JSON) for each of `destinations`, in one transaction.
    async fn queue_edu(&self, destinations: &[String], edu: &str) -> Result<()>;
    /// The oldest `limit` EDUs queued for `destination`, in queue order.
    async fn queued_edus(&self, destination: &str, limit: u32) -> Result<Vec<QueuedEdu>>;
    /// Removes what `destination` acknowledged: every EDU queued for it up to `id`.
    async fn acknowledge_edus(&self, destination: &str, up_to_id: i64) -> Result<()>;
    /// The oldest `limit` PDUs queued for `destination`, by stream position, with the PDU as
    /// stored now (a redacted event goes out redacted).
    async fn queued_pdus(&self, destination: &str, limit: u32) -> Result<Vec<QueuedPdu>>;
    /// Removes what `destination` acknowledged: every PDU queued for it up to `stream`.
    async fn acknowledge_pdus(&self, destination: &str, up_to_stream: i64) -> Result<()>;

    /// The answer already given to the transaction `txn_id` of `origin`, if it was received.
    async fn received_transaction(&self, origin: &str, txn_id: &str) -> Result<Option<String>>;
    /// Records the answer given to a received transaction (a JSON document).
    async fn record_received_transaction(
        &self,
        origin: &str,
        txn_id: &str,
        response: &str,
        received_ts: i64,
    ) -> Result<()>;
    /// Forgets received transactions older than `before_ts` (retention).
    async fn prune_received_transactions(&self, before_ts: i64) -> Result<u64>;
}
