//! `UsageStore` on a tenant's PostgreSQL schema: counts, and the size of the schema's tables
//! (indexes and TOAST included) as PostgreSQL accounts for it.

use async_trait::async_trait;

use super::PostgresTenantStore;
use super::util::to_u64;
use crate::{Result, UsageStore};

#[async_trait]
impl UsageStore for PostgresTenantStore {
    async fn count_rooms(&self) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM rooms")
            .fetch_one(&mut *conn)
            .await?;
        to_u64(count, "room count")
    }

    async fn database_bytes(&self) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        // `current_schema()` is the tenant's: the connection's `search_path` names it alone.
        let bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT \
             FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')",
        )
        .fetch_one(&mut *conn)
        .await?;
        to_u64(bytes, "database size")
    }

    async fn federation_queue(&self) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM federation_outbox) \
                  + (SELECT count(*) FROM federation_outbox_edus)",
        )
        .fetch_one(&mut *conn)
        .await?;
        to_u64(count, "federation queue")
    }
}
