//! A tenant database as plain rows, for export and import: every tenant table with its column
//! names and values in a backend-neutral JSON form, so a tenant moves between SQLite and
//! PostgreSQL (and between machines) through the same representation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value};

use futures_util::{Stream, TryStreamExt};

use crate::{
    ChunkSink, EXPORT_CHUNK_BYTES, EXPORT_CHUNK_ROWS, Result, StoreError, TENANT_TABLES, TableRows,
};

/// The key marking a binary value.
const BYTES_KEY: &str = "$bytes";

/// One value decoded from the JSON form, ready to bind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    /// Decodes one archived value; anything outside the documented forms is `Corrupt`.
    pub(crate) fn from_json(value: &Value) -> Result<Cell> {
        match value {
            Value::Null => Ok(Cell::Null),
            Value::Bool(b) => Ok(Cell::Bool(*b)),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(Cell::Int(i)),
                // Integers beyond i64 fit no column of ours; floats carry a fraction or exponent.
                (None, Some(f)) if !n.is_u64() => Ok(Cell::Float(f)),
                _ => Err(StoreError::Corrupt(format!("number out of range: {n}"))),
            },
            Value::String(s) => Ok(Cell::Text(s.clone())),
            Value::Object(map) => match (map.len(), map.get(BYTES_KEY)) {
                (1, Some(Value::String(encoded))) => STANDARD
                    .decode(encoded)
                    .map(Cell::Bytes)
                    .map_err(|e| StoreError::Corrupt(format!("bad base64 in {BYTES_KEY}: {e}"))),
                _ => Err(StoreError::Corrupt(format!(
                    "unexpected object value {value}"
                ))),
            },
            Value::Array(_) => Err(StoreError::Corrupt(format!(
                "unexpected array value {value}"
            ))),
        }
    }
}

/// The JSON form of a binary value.
pub(crate) fn bytes_value(bytes: &[u8]) -> Value {
    let mut map = Map::new();
    map.insert(BYTES_KEY.into(), Value::String(STANDARD.encode(bytes)));
    Value::Object(map)
}

/// The JSON form of a float; NaN and infinities have none, and no column of ours holds them.
pub(crate) fn float_value(f: f64) -> Result<Value> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| StoreError::Corrupt(format!("float {f} has no JSON form")))
}

/// Checks an archived chunk against the known tables and the live columns before anything of
/// it is written. `live` lists the columns the database has for the chunk's table, `None` for
/// a table it doesn't have.
pub(crate) fn check_chunk(chunk: &TableRows, live: Option<&[String]>) -> Result<()> {
    let Some(live) = live.filter(|_| TENANT_TABLES.contains(&chunk.table.as_str())) else {
        return Err(StoreError::Corrupt(format!(
            "unknown table {:?}",
            chunk.table
        )));
    };
    for (i, column) in chunk.columns.iter().enumerate() {
        if !live.contains(column) {
            return Err(StoreError::Corrupt(format!(
                "unknown column {:?} in table {}",
                column, chunk.table
            )));
        }
        if chunk.columns[..i].contains(column) {
            return Err(StoreError::Corrupt(format!(
                "column {column:?} appears twice in table {}",
                chunk.table
            )));
        }
    }
    if chunk.columns.is_empty() && !chunk.rows.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "rows without columns in {}",
            chunk.table
        )));
    }
    if let Some(row) = chunk.rows.iter().find(|r| r.len() != chunk.columns.len()) {
        return Err(StoreError::Corrupt(format!(
            "a row of {} has {} values for {} columns",
            chunk.table,
            row.len(),
            chunk.columns.len()
        )));
    }
    Ok(())
}

/// What an import has written so far, the same on every backend: tables come in
/// `TENANT_TABLES` order, and a table's first chunk clears the rows the migrations seeded
/// (the `counters` row) to make way for the archive's.
#[derive(Default)]
pub(crate) struct ImportProgress {
    /// Position in `TENANT_TABLES` of the table being written.
    current: Option<usize>,
    /// Tables written, in order.
    pub(crate) tables: Vec<&'static str>,
}

impl ImportProgress {
    /// Whether `chunk` starts a new table (to be cleared first); `Corrupt` when it comes out
    /// of order, which would break the foreign keys.
    pub(crate) fn starts_table(&mut self, chunk: &TableRows) -> Result<bool> {
        let Some(at) = TENANT_TABLES.iter().position(|t| *t == chunk.table) else {
            return Err(StoreError::Corrupt(format!(
                "unknown table {:?}",
                chunk.table
            )));
        };
        match self.current {
            Some(current) if current == at => Ok(false),
            Some(current) if current > at => Err(StoreError::Corrupt(format!(
                "rows of {} come after those of {}",
                chunk.table, TENANT_TABLES[current]
            ))),
            _ => {
                self.current = Some(at);
                self.tables.push(TENANT_TABLES[at]);
                Ok(true)
            }
        }
    }
}

/// Cuts a table's rows into chunks of at most `EXPORT_CHUNK_ROWS` rows and about
/// `EXPORT_CHUNK_BYTES`.
pub(crate) struct Chunker {
    table: String,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    bytes: usize,
    /// Whether a chunk of this table went out already.
    sent: bool,
}

impl Chunker {
    pub(crate) fn new(table: &str, columns: Vec<String>) -> Self {
        Self {
            table: table.to_owned(),
            columns,
            rows: Vec::new(),
            bytes: 0,
            sent: false,
        }
    }

    /// Adds a row; a full chunk comes back to be sent.
    pub(crate) fn push(&mut self, row: Vec<Value>) -> Option<TableRows> {
        self.bytes += row.iter().map(approximate_size).sum::<usize>();
        self.rows.push(row);
        (self.rows.len() >= EXPORT_CHUNK_ROWS || self.bytes >= EXPORT_CHUNK_BYTES)
            .then(|| self.take())
    }

    /// The last chunk: the rows left, or an empty chunk when the table had none, so that its
    /// columns are recorded.
    pub(crate) fn finish(mut self) -> Option<TableRows> {
        (!self.rows.is_empty() || !self.sent).then(|| self.take())
    }

    fn take(&mut self) -> TableRows {
        self.sent = true;
        self.bytes = 0;
        TableRows {
            table: self.table.clone(),
            columns: self.columns.clone(),
            rows: std::mem::take(&mut self.rows),
        }
    }
}

/// Hands a table's rows to `sink` in chunks as they are read: full chunks go while the
/// statement is still open, so the table is never held whole. `values` turns a row into the
/// table's values; `chunker` knows the table and its columns.
pub(crate) async fn send_rows<R>(
    mut rows: impl Stream<Item = Result<R, sqlx::Error>> + Unpin,
    mut chunker: Chunker,
    sink: &mut dyn ChunkSink,
    values: impl Fn(&R) -> Result<Vec<Value>>,
) -> Result<()> {
    while let Some(row) = rows.try_next().await? {
        if let Some(chunk) = chunker.push(values(&row)?) {
            sink.put(chunk).await?;
        }
    }
    // The statement ends before the last chunk goes (the sink may wait).
    drop(rows);
    if let Some(chunk) = chunker.finish() {
        sink.put(chunk).await?;
    }
    Ok(())
}

/// About the bytes a value takes in the archive.
fn approximate_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| k.len() + 3 + approximate_size(v))
            .sum(),
        Value::Array(items) => items.iter().map(approximate_size).sum(),
        _ => 8,
    }
}

/// An error of the database while writing archived rows: an error the database reported
/// (a constraint, a wrong type) means the archive doesn't fit, so it is `Corrupt`; others
/// (connection, I/O) stay what they are.
pub(crate) fn rows_refused(table: &str, err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => {
            StoreError::Corrupt(format!("rows of {table} refused: {}", db.message()))
        }
        other => other.into(),
    }
}

/// Rows per `INSERT` so that one statement binds at most `max_params` values.
pub(crate) fn rows_per_insert(columns: usize, max_params: usize) -> usize {
    (max_params / columns.max(1)).max(1)
}

/// `"name"`, for a name that `check_tables` or the catalog vouched for; a quote inside is
/// doubled all the same, so a name can never end the identifier early.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_decode_to_cells() {
        assert_eq!(Cell::from_json(&json!(null)).ok(), Some(Cell::Null));
        assert_eq!(Cell::from_json(&json!(true)).ok(), Some(Cell::Bool(true)));
        assert_eq!(Cell::from_json(&json!(-7)).ok(), Some(Cell::Int(-7)));
        assert_eq!(Cell::from_json(&json!(1.5)).ok(), Some(Cell::Float(1.5)));
        assert_eq!(
            Cell::from_json(&json!("x")).ok(),
            Some(Cell::Text("x".into()))
        );
        assert_eq!(
            Cell::from_json(&bytes_value(&[0, 1, 255])).ok(),
            Some(Cell::Bytes(vec![0, 1, 255]))
        );
        for bad in [
            json!([1]),
            json!({"a": 1}),
            json!({"$bytes": "!!"}),
            json!({"$bytes": "AA==", "x": 1}),
            json!(u64::MAX),
        ] {
            assert!(Cell::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunks_are_checked_against_the_schema() {
        let live = vec!["localpart".to_owned(), "admin".to_owned()];
        let chunk = |name: &str, columns: &[&str], row: Vec<Value>| TableRows {
            table: name.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: vec![row],
        };
        let ok = chunk("users", &["localpart"], vec![json!("a")]);
        assert!(check_chunk(&ok, Some(&live)).is_ok());
        assert!(check_chunk(&ok, None).is_err());
        for bad in [
            chunk("sqlite_master", &["localpart"], vec![json!("a")]),
            chunk(
                "users",
                &["localpart", "x\"; DROP"],
                vec![json!("a"), json!(1)],
            ),
            chunk(
                "users",
                &["localpart", "localpart"],
                vec![json!("a"), json!("b")],
            ),
            chunk("users", &["localpart"], vec![]),
        ] {
            assert!(
                matches!(check_chunk(&bad, Some(&live)), Err(StoreError::Corrupt(_))),
                "accepted"
            );
        }
    }

    #[test]
    fn tables_must_come_in_foreign_key_order() {
        let t = |name: &str| TableRows {
            table: name.into(),
            columns: vec![],
            rows: vec![],
        };
        let mut progress = ImportProgress::default();
        assert!(progress.starts_table(&t("users")).expect("users"));
        assert!(!progress.starts_table(&t("users")).expect("more users"));
        assert!(progress.starts_table(&t("access_tokens")).expect("tokens"));
        assert!(progress.starts_table(&t("devices")).is_err());
        assert!(progress.starts_table(&t("nonsense")).is_err());
        assert_eq!(progress.tables, ["users", "access_tokens"]);
    }

    #[test]
    fn chunks_are_cut_by_rows_and_by_bytes() {
        let mut small = Chunker::new("users", vec!["localpart".into()]);
        let full: Vec<TableRows> = (0..2500)
            .filter_map(|i| small.push(vec![json!(format!("u{i}"))]))
            .collect();
        assert_eq!(full.len(), 2);
        assert!(full.iter().all(|c| c.rows.len() == EXPORT_CHUNK_ROWS));
        assert_eq!(small.finish().map(|c| c.rows.len()), Some(500));

        let mut big = Chunker::new("events", vec!["pdu".into()]);
        let pdu = "x".repeat(64 * 1024);
        let full: Vec<TableRows> = (0..100)
            .filter_map(|_| big.push(vec![json!(pdu)]))
            .collect();
        assert!(full.len() >= 6, "{} chunks", full.len());
        assert!(full.iter().all(|c| c.rows.len() <= 17));

        let empty = Chunker::new("filters", vec!["a".into(), "b".into()]);
        let last = empty.finish().expect("an empty table still has a chunk");
        assert_eq!((last.rows.len(), last.columns.len()), (0, 2));
    }
}
