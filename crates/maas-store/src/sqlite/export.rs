//! A tenant's SQLite database as plain rows (see `crate::export`): export reads every table in
//! one read transaction (one WAL snapshot, kept until the last chunk was taken, while writers
//! carry on), streaming each table's rows into chunks; import writes chunks as they come in one
//! `BEGIN IMMEDIATE` transaction, so an import either lands completely or not at all.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Database, Row, Transaction, TypeInfo, ValueRef};

use super::tenant::SqliteTenantStore;
use super::util::begin_write;
use crate::export::{
    Cell, Chunker, ImportProgress, bytes_value, check_chunk, float_value, quote, rows_per_insert,
    rows_refused, send_rows,
};
use crate::{ChunkSink, Result, StoreError, TENANT_TABLES, TableImport, TableRows};

/// Bound values per statement: SQLite's historical default limit, which every build allows.
const MAX_PARAMS: usize = 999;

type SqliteQuery = Query<'static, Sqlite, <Sqlite as Database>::Arguments>;

/// A column of a live table.
struct ColumnInfo {
    name: String,
    /// Position in the primary key (1-based), 0 when not part of it.
    pk: i64,
}

impl SqliteTenantStore {
    pub(super) async fn export_tables_impl(&self, sink: &mut dyn ChunkSink) -> Result<()> {
        // A deferred transaction: the first read fixes the snapshot every later read sees, and
        // writers carry on meanwhile (WAL).
        let mut tx = self.pool.begin().await?;
        for table in TENANT_TABLES {
            export_table(&mut tx, table, sink).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn begin_import_impl(&self) -> Result<Box<dyn TableImport>> {
        let mut tx = begin_write(&self.pool).await?;
        let mut live = HashMap::new();
        for table in TENANT_TABLES {
            let columns = table_columns(&mut tx, table).await?;
            live.insert(*table, columns.into_iter().map(|c| c.name).collect());
        }
        Ok(Box::new(SqliteImport {
            tx,
            live,
            progress: ImportProgress::default(),
        }))
    }
}

/// Streams one table's rows into chunks for `sink`.
async fn export_table(
    conn: &mut SqliteConnection,
    table: &str,
    sink: &mut dyn ChunkSink,
) -> Result<()> {
    let columns = table_columns(conn, table).await?;
    if columns.is_empty() {
        return Err(StoreError::Corrupt(format!("table {table} is missing")));
    }
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let width = names.len();
    let rows = sqlx::query(AssertSqlSafe(select_sql(table, &columns))).fetch(&mut *conn);
    send_rows(rows, Chunker::new(table, names), sink, |row| {
        (0..width).map(|i| value_at(row, i)).collect()
    })
    .await
}

/// An import's write transaction on a fresh tenant database.
struct SqliteImport {
    tx: Transaction<'static, Sqlite>,
    /// The columns of every tenant table.
    live: HashMap<&'static str, Vec<String>>,
    progress: ImportProgress,
}

#[async_trait]
impl TableImport for SqliteImport {
    async fn write(&mut self, chunk: &TableRows) -> Result<()> {
        check_chunk(
            chunk,
            self.live.get(chunk.table.as_str()).map(Vec::as_slice),
        )?;
        if self.progress.starts_table(chunk)? {
            // Rows the migrations seeded (the `counters` row) give way to the archive's.
            let sql = format!("DELETE FROM {}", quote(&chunk.table));
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *self.tx)
                .await?;
        }
        let per_insert = rows_per_insert(chunk.columns.len(), MAX_PARAMS);
        for batch in chunk.rows.chunks(per_insert) {
            let sql = insert_sql(&chunk.table, &chunk.columns, batch.len());
            let mut query: SqliteQuery = sqlx::query(AssertSqlSafe(sql));
            for value in batch.iter().flatten() {
                query = bind(query, Cell::from_json(value)?);
            }
            query
                .execute(&mut *self.tx)
                .await
                .map_err(|e| rows_refused(&chunk.table, e))?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        if let Err(e) = self.tx.rollback().await {
            tracing::warn!(error = %e, "rolling back an import failed");
        }
    }
}

/// The columns of `table` in declaration order; empty when the table doesn't exist.
async fn table_columns(conn: &mut SqliteConnection, table: &str) -> Result<Vec<ColumnInfo>> {
    let rows = sqlx::query("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid")
        .bind(table)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ColumnInfo {
                name: row.try_get("name")?,
                pk: row.try_get("pk")?,
            })
        })
        .collect()
}

/// Every column, ordered by the primary key so that exports are repeatable and a
/// self-referencing table (`state_groups`) lists parents before children.
fn select_sql(table: &str, columns: &[ColumnInfo]) -> String {
    let list: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let mut pk: Vec<&ColumnInfo> = columns.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);
    let order: Vec<String> = pk.iter().map(|c| quote(&c.name)).collect();
    let mut sql = format!("SELECT {} FROM {}", list.join(", "), quote(table));
    if !order.is_empty() {
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    sql
}

/// `INSERT INTO "t" ("a", "b") VALUES (?, ?), …` for `rows` rows.
fn insert_sql(table: &str, columns: &[String], rows: usize) -> String {
    let list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        quote(table),
        list.join(", "),
        vec![row; rows].join(", ")
    )
}

/// A value by its storage class; SQLite stores booleans as the integers 0 and 1.
fn value_at(row: &SqliteRow, i: usize) -> Result<serde_json::Value> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let kind = raw.type_info().name().to_owned();
    match kind.as_str() {
        "INTEGER" => Ok(row.try_get::<i64, _>(i)?.into()),
        "REAL" => float_value(row.try_get::<f64, _>(i)?),
        "TEXT" => Ok(row.try_get::<String, _>(i)?.into()),
        "BLOB" => Ok(bytes_value(&row.try_get::<Vec<u8>, _>(i)?)),
        other => Err(StoreError::Corrupt(format!(
            "unexpected SQLite value type {other}"
        ))),
    }
}

/// Binds one value natively; STRICT tables then refuse a value of the wrong type.
fn bind(query: SqliteQuery, cell: Cell) -> SqliteQuery {
    match cell {
        Cell::Null => query.bind(None::<i64>),
        Cell::Bool(b) => query.bind(i64::from(b)),
        Cell::Int(i) => query.bind(i),
        Cell::Float(f) => query.bind(f),
        Cell::Text(s) => query.bind(s),
        Cell::Bytes(b) => query.bind(b),
    }
}
