//! A tenant's SQLite database as plain rows (see `crate::export`): export reads every table in
//! one read transaction (one WAL snapshot), import writes them in one `BEGIN IMMEDIATE`
//! transaction, so an import either lands completely or not at all.

use std::collections::HashMap;

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Database, Row, TypeInfo, ValueRef};

use super::tenant::SqliteTenantStore;
use super::util::begin_write;
use crate::export::{
    Cell, bytes_value, check_tables, float_value, in_table_order, quote, rows_per_insert,
    rows_refused,
};
use crate::{Result, StoreError};
use crate::{TENANT_TABLES, TableRows};

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
    pub(super) async fn export_tables_impl(&self) -> Result<Vec<TableRows>> {
        // A deferred transaction: the first read fixes the snapshot every later read sees, and
        // writers carry on meanwhile (WAL).
        let mut tx = self.pool.begin().await?;
        let mut tables = Vec::with_capacity(TENANT_TABLES.len());
        for table in TENANT_TABLES {
            let columns = table_columns(&mut tx, table).await?;
            if columns.is_empty() {
                return Err(StoreError::Corrupt(format!("table {table} is missing")));
            }
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            let sql = select_sql(table, &columns);
            let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
            let rows = rows
                .iter()
                .map(|row| (0..names.len()).map(|i| value_at(row, i)).collect())
                .collect::<Result<Vec<Vec<_>>>>()?;
            tables.push(TableRows {
                table: (*table).to_owned(),
                columns: names,
                rows,
            });
        }
        tx.commit().await?;
        Ok(tables)
    }

    pub(super) async fn import_tables_impl(&self, tables: &[TableRows]) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let mut live: HashMap<&str, Vec<String>> = HashMap::new();
        for table in TENANT_TABLES {
            let columns = table_columns(&mut tx, table).await?;
            live.insert(table, columns.into_iter().map(|c| c.name).collect());
        }
        check_tables(tables, |name| live.get(name).map(Vec::as_slice))?;
        // Rows the migrations seeded (the `counters` row) give way to the archive's.
        for table in TENANT_TABLES.iter().rev() {
            if tables.iter().any(|t| t.table == *table) {
                let sql = format!("DELETE FROM {}", quote(table));
                sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
            }
        }
        for table in in_table_order(tables) {
            let per_insert = rows_per_insert(table.columns.len(), MAX_PARAMS);
            for batch in table.rows.chunks(per_insert) {
                let sql = insert_sql(&table.table, &table.columns, batch.len());
                let mut query: SqliteQuery = sqlx::query(AssertSqlSafe(sql));
                for value in batch.iter().flatten() {
                    query = bind(query, Cell::from_json(value)?);
                }
                query
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| rows_refused(&table.table, e))?;
            }
        }
        // Dropping the transaction on any error above rolls everything back.
        tx.commit().await?;
        Ok(())
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
