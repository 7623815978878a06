//! A tenant database as table chunks, for export and import (`crate::export` writes them as an
//! archive). Both directions go a chunk at a time, so no side ever holds a whole database: an
//! export hands its chunks to a sink as it reads them, an import writes them as they come,
//! inside one transaction that only its commit makes visible.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Result;

/// Every table of a tenant database, parents before children: importing in this order
/// satisfies every foreign key. A new migration's tables must be added here (a store test
/// compares this list with each backend's migrated schema).
pub const TENANT_TABLES: &[&str] = &[
    "signing_keys",
    "users",
    "user_threepids",
    "user_external_ids",
    "ratelimit_overrides",
    "devices",
    "access_tokens",
    "puppet_tokens",
    "uia_sessions",
    "registration_tokens",
    "counters",
    "stream_marks",
    "rooms",
    "state_groups",
    "state_group_entries",
    "events",
    "outliers",
    "partial_state_rooms",
    "forward_extremities",
    "room_memberships",
    "forgotten_rooms",
    "room_aliases",
    "account_data",
    "receipts",
    "filters",
    "event_push_actions",
    "room_push_actions",
    // The queue moves with the tenant, which must still deliver it; the received
    // transactions too, since every table travels (a replay guard, small once pruned).
    "federation_outbox",
    "federation_outbox_edus",
    "federation_inbox",
    "device_keys",
    "one_time_keys",
    "fallback_keys",
    "cross_signing_keys",
    "device_list_changes",
    "signature_changes",
    "to_device_txns",
    "to_device_messages",
    "backup_versions",
    "backup_keys",
    // Media metadata; the bytes it names are in the blob store (see `blob_references`).
    "media",
    "remote_media",
    "media_thumbnails",
    // What the tenant's admins keep (the admin API).
    "reports",
    "blocked_rooms",
    "admin_tasks",
    "server_notice_rooms",
];

/// Rows per chunk at most: what an archive's version 1 allows per line.
pub const EXPORT_CHUNK_ROWS: usize = 1000;

/// A chunk ends once its values reach about this many bytes, whatever its row count, so that a
/// table of large rows (events, account data) travels in chunks of bounded size too.
pub const EXPORT_CHUNK_BYTES: usize = 1 << 20;

/// Rows of one table of a tenant database, for export and import. Values are JSON null,
/// booleans, integers, floats, strings, or `{"$bytes": "<base64>"}` for binary columns; each
/// row has one value per column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRows {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// Where an export puts what it reads.
#[async_trait]
pub trait ChunkSink: Send {
    /// Takes the next chunk. An error (whoever reads the export went away) ends the export
    /// with that error.
    async fn put(&mut self, chunk: TableRows) -> Result<()>;
}

/// Collects chunks, for callers that want a (small) database whole.
#[async_trait]
impl ChunkSink for Vec<TableRows> {
    async fn put(&mut self, chunk: TableRows) -> Result<()> {
        self.push(chunk);
        Ok(())
    }
}

/// An import under way: one transaction on a freshly migrated tenant database, which nothing
/// else reads until it is committed. Dropping it (or `abort`) rolls everything back.
#[async_trait]
pub trait TableImport: Send {
    /// Writes one chunk. Chunks come table by table in `TENANT_TABLES` order, each table's
    /// chunks with the same columns. An unknown table or column, or rows the database refuses
    /// (a constraint, a wrong type), are `Corrupt`; after any error the import can only be
    /// aborted.
    async fn write(&mut self, chunk: &TableRows) -> Result<()>;
    /// Makes every row written visible at once.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Rolls back now, rather than whenever the connection is next used.
    async fn abort(self: Box<Self>);
}
