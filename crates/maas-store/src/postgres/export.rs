//! A tenant's PostgreSQL schema as plain rows (see `crate::export`): export reads every table
//! in one REPEATABLE READ transaction (one snapshot, kept until the last chunk was taken),
//! streaming each table's rows into chunks; import writes chunks as they come in one
//! transaction and, before committing, moves identity sequences past the imported ids.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Connection, Database, Row};

use super::tenant::PostgresTenantStore;
use super::util::SchemaTx;
use crate::export::{
    Cell, Chunker, ImportProgress, bytes_value, check_chunk, float_value, quote, rows_per_insert,
    rows_refused, send_rows,
};
use crate::{ChunkSink, Result, StoreError, TENANT_TABLES, TableImport, TableRows};

/// Bound values per statement, well below PostgreSQL's limit of 65535.
const MAX_PARAMS: usize = 8192;

type PgQuery = Query<'static, Postgres, <Postgres as Database>::Arguments>;

/// A column of a live table, from the catalog.
struct ColumnInfo {
    name: String,
    /// The column's type, schema-qualified and quoted, for casts.
    cast: String,
    udt_name: String,
    /// Filled from a sequence (`serial` or identity): the sequence follows imported ids.
    serial: bool,
    /// `GENERATED ALWAYS AS IDENTITY`: inserting ids needs `OVERRIDING SYSTEM VALUE`.
    identity_always: bool,
    /// Position in the primary key (1-based).
    pk: Option<i32>,
}

impl PostgresTenantStore {
    pub(super) async fn export_tables_impl(&self, sink: &mut dyn ChunkSink) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        // One snapshot for every table, however long the export runs; writers aren't blocked.
        let mut tx = conn
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        for table in TENANT_TABLES {
            export_table(&mut tx, table, sink).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn begin_import_impl(&self) -> Result<Box<dyn TableImport>> {
        let mut tx = self.schema.begin().await?;
        let mut live = HashMap::new();
        for table in TENANT_TABLES {
            live.insert(*table, table_columns(&mut tx, table).await?);
        }
        Ok(Box::new(PostgresImport {
            tx,
            live,
            progress: ImportProgress::default(),
        }))
    }
}

/// Streams one table's rows into chunks for `sink`.
async fn export_table(
    conn: &mut PgConnection,
    table: &str,
    sink: &mut dyn ChunkSink,
) -> Result<()> {
    let columns = table_columns(conn, table).await?;
    if columns.is_empty() {
        return Err(StoreError::Corrupt(format!("table {table} is missing")));
    }
    let chunker = Chunker::new(table, columns.iter().map(|c| c.name.clone()).collect());
    // The server waits on a full socket while the sink takes the chunks: no side buffers the
    // table.
    let rows = sqlx::query(AssertSqlSafe(select_sql(table, &columns))).fetch(&mut *conn);
    send_rows(rows, chunker, sink, |row| {
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| value_at(row, i, &c.udt_name))
            .collect()
    })
    .await
}

/// An import's transaction on a fresh tenant schema.
struct PostgresImport {
    tx: SchemaTx,
    /// The columns of every tenant table.
    live: HashMap<&'static str, Vec<ColumnInfo>>,
    progress: ImportProgress,
}

impl PostgresImport {
    fn columns(&self, table: &str) -> &[ColumnInfo] {
        self.live.get(table).map(Vec::as_slice).unwrap_or_default()
    }
}

#[async_trait]
impl TableImport for PostgresImport {
    async fn write(&mut self, chunk: &TableRows) -> Result<()> {
        let names: Vec<String> = self
            .columns(&chunk.table)
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let known = self.live.contains_key(chunk.table.as_str());
        check_chunk(chunk, known.then_some(names.as_slice()))?;
        if self.progress.starts_table(chunk)? {
            // Rows the migrations seeded (the `counters` row) give way to the archive's.
            let sql = format!("DELETE FROM {}", quote(&chunk.table));
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *self.tx)
                .await?;
        }
        // The fields apart: the columns are read while the transaction writes.
        let columns = self
            .live
            .get(chunk.table.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let by_name: HashMap<&str, &ColumnInfo> =
            columns.iter().map(|c| (c.name.as_str(), c)).collect();
        // `check_chunk` made sure every archived column is a live one.
        let targets: Vec<&ColumnInfo> = chunk
            .columns
            .iter()
            .filter_map(|c| by_name.get(c.as_str()).copied())
            .collect();
        let overriding = columns.iter().any(|c| c.identity_always);
        let per_insert = rows_per_insert(targets.len(), MAX_PARAMS);
        for batch in chunk.rows.chunks(per_insert) {
            let sql = insert_sql(&chunk.table, &targets, batch.len(), overriding);
            let mut query: PgQuery = sqlx::query(AssertSqlSafe(sql));
            for value in batch.iter().flatten() {
                query = query.bind(as_text(Cell::from_json(value)?));
            }
            query
                .execute(&mut *self.tx)
                .await
                .map_err(|e| rows_refused(&chunk.table, e))?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        // Ids inserted explicitly leave the sequences behind; the next generated id must not
        // collide with an imported one.
        for table in std::mem::take(&mut self.progress.tables) {
            let serial: Vec<String> = self
                .columns(table)
                .iter()
                .filter(|c| c.serial)
                .map(|c| c.name.clone())
                .collect();
            for column in serial {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), m) \
                     FROM (SELECT max({}) AS m FROM {}) AS imported WHERE m IS NOT NULL",
                    quote(&column),
                    quote(table)
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(quote(table))
                    .bind(&column)
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        self.tx.commit().await
    }

    async fn abort(self: Box<Self>) {
        if let Err(e) = self.tx.rollback().await {
            tracing::warn!(error = %e, "rolling back an import failed");
        }
    }
}

/// The columns of `table` in the current schema, in declaration order; empty when the table
/// doesn't exist.
async fn table_columns(conn: &mut PgConnection, table: &str) -> Result<Vec<ColumnInfo>> {
    let rows = sqlx::query(
        "SELECT c.column_name::text AS name, c.udt_schema::text AS udt_schema, \
                c.udt_name::text AS udt_name, \
                COALESCE(c.column_default LIKE 'nextval(%' OR c.is_identity = 'YES', false) \
                    AS serial, \
                COALESCE(c.is_identity = 'YES' AND c.identity_generation = 'ALWAYS', false) \
                    AS identity_always, \
                k.ordinal_position::int4 AS pk \
         FROM information_schema.columns c \
         LEFT JOIN information_schema.table_constraints t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
          AND t.constraint_type = 'PRIMARY KEY' \
         LEFT JOIN information_schema.key_column_usage k \
           ON k.constraint_schema = t.constraint_schema \
          AND k.constraint_name = t.constraint_name \
          AND k.table_name = c.table_name AND k.column_name = c.column_name \
         WHERE c.table_schema = current_schema() AND c.table_name = $1 \
         ORDER BY c.ordinal_position",
    )
    .bind(table)
    .fetch_all(conn)
    .await?;
    rows.iter().map(column_from_row).collect()
}

fn column_from_row(row: &PgRow) -> Result<ColumnInfo> {
    let udt_schema: String = row.try_get("udt_schema")?;
    let udt_name: String = row.try_get("udt_name")?;
    Ok(ColumnInfo {
        name: row.try_get("name")?,
        cast: format!("{}.{}", quote(&udt_schema), quote(&udt_name)),
        udt_name,
        serial: row.try_get("serial")?,
        identity_always: row.try_get("identity_always")?,
        pk: row.try_get("pk")?,
    })
}

/// Types read natively; every other column is read as its text form.
const NATIVE_TYPES: &[&str] = &[
    "bool", "int2", "int4", "int8", "float4", "float8", "bytea", "text",
];

/// Every column, ordered by the primary key so that exports are repeatable and a
/// self-referencing table (`state_groups`) lists parents before children.
fn select_sql(table: &str, columns: &[ColumnInfo]) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            if NATIVE_TYPES.contains(&c.udt_name.as_str()) {
                quote(&c.name)
            } else {
                format!("{}::text", quote(&c.name))
            }
        })
        .collect();
    let mut pk: Vec<(i32, &str)> = columns
        .iter()
        .filter_map(|c| c.pk.map(|p| (p, c.name.as_str())))
        .collect();
    pk.sort_unstable();
    let order: Vec<String> = pk.iter().map(|(_, name)| quote(name)).collect();
    let mut sql = format!("SELECT {} FROM {}", list.join(", "), quote(table));
    if !order.is_empty() {
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    sql
}

/// `INSERT INTO "t" ("a", "b") VALUES ($1::type, $2::type), …` for `rows` rows: every value is
/// bound as text and converted by the column type's own input function.
fn insert_sql(table: &str, columns: &[&ColumnInfo], rows: usize, overriding: bool) -> String {
    let list: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let mut n = 0;
    let values: Vec<String> = (0..rows)
        .map(|_| {
            let row: Vec<String> = columns
                .iter()
                .map(|c| {
                    n += 1;
                    format!("${n}::{}", c.cast)
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}){} VALUES {}",
        quote(table),
        list.join(", "),
        if overriding {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        },
        values.join(", ")
    )
}

/// One value by the column's type: booleans as JSON booleans, bytea as `$bytes`.
fn value_at(row: &PgRow, i: usize, udt_name: &str) -> Result<serde_json::Value> {
    use serde_json::Value;
    let value = match udt_name {
        "bool" => row.try_get::<Option<bool>, _>(i)?.map(Value::from),
        "int2" => row.try_get::<Option<i16>, _>(i)?.map(Value::from),
        "int4" => row.try_get::<Option<i32>, _>(i)?.map(Value::from),
        "int8" => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
        "float4" => row
            .try_get::<Option<f32>, _>(i)?
            .map(|f| float_value(f64::from(f)))
            .transpose()?,
        "float8" => row
            .try_get::<Option<f64>, _>(i)?
            .map(float_value)
            .transpose()?,
        "bytea" => row
            .try_get::<Option<Vec<u8>>, _>(i)?
            .map(|b| bytes_value(&b)),
        _ => row.try_get::<Option<String>, _>(i)?.map(Value::from),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// The text form a column type's input function reads: `0`/`1` and `true`/`false` both read as
/// booleans, bytes as `\x<hex>`.
fn as_text(cell: Cell) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Int(i) => Some(i.to_string()),
        Cell::Float(f) => Some(f.to_string()),
        Cell::Text(s) => Some(s),
        Cell::Bytes(b) => {
            let mut text = String::with_capacity(2 + 2 * b.len());
            text.push_str("\\x");
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for byte in b {
                text.push(char::from(HEX[usize::from(byte >> 4)]));
                text.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
            Some(text)
        }
    }
}
