//! The control plane on SQLite: tenants and their hosts. Hosts keep the order they were given
//! in (a `position` column) because the first one is the tenant's primary host.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{Row, SqliteConnection, Transaction};

use super::util::{begin_write, conflict, found, from_json, to_json, violates};
use crate::{ControlStore, Result, TenantInfo};

/// `SELECT <every tenant column> FROM tenants <rest>`, as a `&'static str`.
macro_rules! select_tenants {
    ($rest:literal) => {
        concat!(
            "SELECT tenant_id, server_name, settings, created_ts FROM tenants ",
            $rest
        )
    };
}

/// The control plane in `<data_dir>/control.db`.
pub struct SqliteControlStore {
    pool: SqlitePool,
}

impl SqliteControlStore {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// One tenant looked up by a unique column, with its hosts, read from one snapshot.
    async fn tenant_where(&self, sql: &'static str, key: &str) -> Result<Option<TenantInfo>> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(sql).bind(key).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let mut tenant = tenant_from_row(&row)?;
        tenant.hosts = hosts_of(&mut tx, &tenant.tenant_id).await?;
        tx.commit().await?;
        Ok(Some(tenant))
    }
}

#[async_trait]
impl ControlStore for SqliteControlStore {
    async fn tenants(&self) -> Result<Vec<TenantInfo>> {
        // One snapshot, so that no tenant is seen with another version's hosts.
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(select_tenants!("ORDER BY tenant_id"))
            .fetch_all(&mut *tx)
            .await?;
        let host_rows =
            sqlx::query("SELECT tenant_id, host FROM tenant_hosts ORDER BY tenant_id, position")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;

        let mut hosts: HashMap<String, Vec<String>> = HashMap::new();
        for row in host_rows {
            hosts
                .entry(row.try_get("tenant_id")?)
                .or_default()
                .push(row.try_get("host")?);
        }
        rows.iter()
            .map(|row| {
                let mut tenant = tenant_from_row(row)?;
                tenant.hosts = hosts.remove(&tenant.tenant_id).unwrap_or_default();
                Ok(tenant)
            })
            .collect()
    }

    async fn tenant(&self, tenant_id: &str) -> Result<Option<TenantInfo>> {
        self.tenant_where(select_tenants!("WHERE tenant_id = ?"), tenant_id)
            .await
    }

    async fn tenant_by_server_name(&self, server_name: &str) -> Result<Option<TenantInfo>> {
        self.tenant_where(select_tenants!("WHERE server_name = ?"), server_name)
            .await
    }

    async fn insert_tenant(&self, tenant: &TenantInfo) -> Result<()> {
        let settings = to_json(&tenant.settings, "tenant settings")?;
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO tenants (tenant_id, server_name, settings, created_ts) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&tenant.tenant_id)
        .bind(&tenant.server_name)
        .bind(settings)
        .bind(tenant.created_ts)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            let what = if violates(&err, "tenants.server_name") {
                format!("server name {}", tenant.server_name)
            } else {
                format!("tenant {}", tenant.tenant_id)
            };
            conflict(err, || what)
        })?;
        insert_hosts(&mut tx, &tenant.tenant_id, &tenant.hosts).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The server name and creation time of a tenant never change; only settings and hosts are
    /// written.
    async fn update_tenant(&self, tenant: &TenantInfo) -> Result<()> {
        let settings = to_json(&tenant.settings, "tenant settings")?;
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query("UPDATE tenants SET settings = ? WHERE tenant_id = ?")
            .bind(settings)
            .bind(&tenant.tenant_id)
            .execute(&mut *tx)
            .await?;
        found(updated.rows_affected(), || {
            format!("tenant {}", tenant.tenant_id)
        })?;
        sqlx::query("DELETE FROM tenant_hosts WHERE tenant_id = ?")
            .bind(&tenant.tenant_id)
            .execute(&mut *tx)
            .await?;
        insert_hosts(&mut tx, &tenant.tenant_id, &tenant.hosts).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_tenant(&self, tenant_id: &str) -> Result<()> {
        // Hosts go with the tenant through ON DELETE CASCADE.
        let deleted = sqlx::query("DELETE FROM tenants WHERE tenant_id = ?")
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        found(deleted.rows_affected(), || format!("tenant {tenant_id}"))
    }

    async fn set_federation_pending(&self, tenant_id: &str, pending: bool) -> Result<()> {
        let sql = if pending {
            // Only for a tenant that exists (one deleted meanwhile is left alone).
            "INSERT INTO federation_pending (tenant_id) \
             SELECT tenant_id FROM tenants WHERE tenant_id = ? ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM federation_pending WHERE tenant_id = ?"
        };
        sqlx::query(sql).bind(tenant_id).execute(&self.pool).await?;
        Ok(())
    }

    async fn federation_pending(&self) -> Result<Vec<String>> {
        let ids = sqlx::query_scalar("SELECT tenant_id FROM federation_pending ORDER BY tenant_id")
            .fetch_all(&self.pool)
            .await?;
        Ok(ids)
    }
}

async fn insert_hosts(
    tx: &mut Transaction<'static, Sqlite>,
    tenant_id: &str,
    hosts: &[String],
) -> Result<()> {
    for (position, host) in (0_i64..).zip(hosts) {
        sqlx::query("INSERT INTO tenant_hosts (host, tenant_id, position) VALUES (?, ?, ?)")
            .bind(host)
            .bind(tenant_id)
            .bind(position)
            .execute(&mut **tx)
            .await
            .map_err(|err| conflict(err, || format!("host {host}")))?;
    }
    Ok(())
}

async fn hosts_of(conn: &mut SqliteConnection, tenant_id: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT host FROM tenant_hosts WHERE tenant_id = ? ORDER BY position")
            .bind(tenant_id)
            .fetch_all(conn)
            .await?,
    )
}

/// A tenant without its hosts, which live in another table.
fn tenant_from_row(row: &SqliteRow) -> Result<TenantInfo> {
    let tenant_id: String = row.try_get("tenant_id")?;
    let settings: String = row.try_get("settings")?;
    Ok(TenantInfo {
        settings: from_json(&settings, &format!("settings of tenant {tenant_id}"))?,
        tenant_id,
        server_name: row.try_get("server_name")?,
        hosts: Vec::new(),
        created_ts: row.try_get("created_ts")?,
    })
}
