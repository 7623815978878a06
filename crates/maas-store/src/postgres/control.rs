//! The control plane on PostgreSQL: tenants and their hosts in the schema `maas_control`.
//! Hosts keep the order they were given in (a `position` column) because the first one is the
//! tenant's primary host; a tenant is read with its hosts in one statement, so one snapshot.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool, PgRow};

use super::CONTROL_SCHEMA;
use super::util::{Schema, conflict, found, from_json, to_json, violates};
use crate::{ControlStore, Result, TenantInfo};

/// Connections the control plane may hold at once. Its queries are short lookups, mostly
/// answered from the callers' caches, so a few are plenty and leave the pool to the tenants.
const CONTROL_MAX_CONNECTIONS: u32 = 4;

/// `SELECT <every tenant column, hosts as an array> FROM tenants <rest>`, as a `&'static str`.
macro_rules! select_tenants {
    ($rest:literal) => {
        concat!(
            "SELECT tenant_id, server_name, settings, created_ts, \
                    ARRAY(SELECT host FROM tenant_hosts h \
                          WHERE h.tenant_id = tenants.tenant_id ORDER BY position) AS hosts \
             FROM tenants ",
            $rest
        )
    };
}

/// The control plane in the schema `maas_control` of the shared database.
pub struct PostgresControlStore {
    schema: Schema,
}

impl PostgresControlStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            schema: Schema::new(pool, CONTROL_SCHEMA.into(), CONTROL_MAX_CONNECTIONS),
        }
    }

    /// One tenant looked up by a unique column.
    async fn tenant_where(&self, sql: &'static str, key: &str) -> Result<Option<TenantInfo>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }
}

#[async_trait]
impl ControlStore for PostgresControlStore {
    async fn tenants(&self) -> Result<Vec<TenantInfo>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(select_tenants!("ORDER BY tenant_id"))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn tenant(&self, tenant_id: &str) -> Result<Option<TenantInfo>> {
        self.tenant_where(select_tenants!("WHERE tenant_id = $1"), tenant_id)
            .await
    }

    async fn tenant_by_server_name(&self, server_name: &str) -> Result<Option<TenantInfo>> {
        self.tenant_where(select_tenants!("WHERE server_name = $1"), server_name)
            .await
    }

    async fn insert_tenant(&self, tenant: &TenantInfo) -> Result<()> {
        let settings = to_json(&tenant.settings, "tenant settings")?;
        let mut tx = self.schema.begin().await?;
        sqlx::query(
            "INSERT INTO tenants (tenant_id, server_name, settings, created_ts) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&tenant.tenant_id)
        .bind(&tenant.server_name)
        .bind(settings)
        .bind(tenant.created_ts)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            let what = if violates(&err, "tenants_server_name_key") {
                format!("server name {}", tenant.server_name)
            } else {
                format!("tenant {}", tenant.tenant_id)
            };
            conflict(err, || what)
        })?;
        insert_hosts(&mut tx, &tenant.tenant_id, &tenant.hosts).await?;
        tx.commit().await
    }

    /// The server name and creation time of a tenant never change; only settings and hosts are
    /// written.
    async fn update_tenant(&self, tenant: &TenantInfo) -> Result<()> {
        let settings = to_json(&tenant.settings, "tenant settings")?;
        let mut tx = self.schema.begin().await?;
        let updated = sqlx::query("UPDATE tenants SET settings = $1 WHERE tenant_id = $2")
            .bind(settings)
            .bind(&tenant.tenant_id)
            .execute(&mut *tx)
            .await?;
        found(updated.rows_affected(), || {
            format!("tenant {}", tenant.tenant_id)
        })?;
        sqlx::query("DELETE FROM tenant_hosts WHERE tenant_id = $1")
            .bind(&tenant.tenant_id)
            .execute(&mut *tx)
            .await?;
        insert_hosts(&mut tx, &tenant.tenant_id, &tenant.hosts).await?;
        tx.commit().await
    }

    async fn delete_tenant(&self, tenant_id: &str) -> Result<()> {
        // Hosts go with the tenant through ON DELETE CASCADE.
        let mut conn = self.schema.conn().await?;
        let deleted = sqlx::query("DELETE FROM tenants WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *conn)
            .await?;
        found(deleted.rows_affected(), || format!("tenant {tenant_id}"))
    }

    async fn set_federation_pending(&self, tenant_id: &str, pending: bool) -> Result<()> {
        let sql = if pending {
            // Only for a tenant that exists (one deleted meanwhile is left alone).
            "INSERT INTO federation_pending (tenant_id) \
             SELECT tenant_id FROM tenants WHERE tenant_id = $1 ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM federation_pending WHERE tenant_id = $1"
        };
        let mut conn = self.schema.conn().await?;
        sqlx::query(sql).bind(tenant_id).execute(&mut *conn).await?;
        Ok(())
    }

    async fn federation_pending(&self) -> Result<Vec<String>> {
        let mut conn = self.schema.conn().await?;
        let ids = sqlx::query_scalar("SELECT tenant_id FROM federation_pending ORDER BY tenant_id")
            .fetch_all(&mut *conn)
            .await?;
        Ok(ids)
    }
}

/// Inserts the hosts in their order. Any unique violation here is a host taken already (by
/// another tenant or twice in the list): `host` is the only key of the table.
async fn insert_hosts(conn: &mut PgConnection, tenant_id: &str, hosts: &[String]) -> Result<()> {
    for (position, host) in (0_i64..).zip(hosts) {
        sqlx::query("INSERT INTO tenant_hosts (host, tenant_id, position) VALUES ($1, $2, $3)")
            .bind(host)
            .bind(tenant_id)
            .bind(position)
            .execute(&mut *conn)
            .await
            .map_err(|err| conflict(err, || format!("host {host}")))?;
    }
    Ok(())
}

fn tenant_from_row(row: &PgRow) -> Result<TenantInfo> {
    let tenant_id: String = row.try_get("tenant_id")?;
    let settings: String = row.try_get("settings")?;
    Ok(TenantInfo {
        settings: from_json(&settings, &format!("settings of tenant {tenant_id}"))?,
        tenant_id,
        server_name: row.try_get("server_name")?,
        hosts: row.try_get("hosts")?,
        created_ts: row.try_get("created_ts")?,
    })
}
