//! What a tenant uses of what its quotas bound and its metrics show: rooms, bytes on disk, the
//! federation queue. Counts are read afresh; callers cache them where reads are frequent.

use async_trait::async_trait;

use super::Result;

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Rooms the tenant's database holds (created here or joined over federation).
    async fn count_rooms(&self) -> Result<u64>;
    /// Bytes the tenant's database takes on disk (SQLite: its file and log; PostgreSQL: its
    /// schema's tables with their indexes and TOAST).
    async fn database_bytes(&self) -> Result<u64>;
    /// Events and EDUs queued for other servers and not yet acknowledged.
    async fn federation_queue(&self) -> Result<u64>;
}
