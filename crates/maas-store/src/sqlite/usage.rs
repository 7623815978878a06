//! `UsageStore` on a tenant's SQLite database: counts and the database's size, read on the
//! pool (whose connections run on threads of their own).

use async_trait::async_trait;

use super::SqliteTenantStore;
use super::util::to_u64;
use crate::{Result, UsageStore};

#[async_trait]
impl UsageStore for SqliteTenantStore {
    async fn count_rooms(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rooms")
            .fetch_one(&self.pool)
            .await?;
        to_u64(count, "room count")
    }

    async fn database_bytes(&self) -> Result<u64> {
        // Pages times their size is the main file (free pages included, as the disk holds
        // them); the write-ahead log is left out: checkpoints keep it small.
        let bytes: i64 = sqlx::query_scalar(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        )
        .fetch_one(&self.pool)
        .await?;
        to_u64(bytes, "database size")
    }

    async fn federation_queue(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM federation_outbox) \
                  + (SELECT COUNT(*) FROM federation_outbox_edus)",
        )
        .fetch_one(&self.pool)
        .await?;
        to_u64(count, "federation queue")
    }
}
