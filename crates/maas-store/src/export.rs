//! A tenant database as plain rows, for export and import: every tenant table with its column
//! names and values in a backend-neutral JSON form, so a tenant moves between SQLite and
//! PostgreSQL (and between machines) through the same representation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value};

use crate::{Result, StoreError, TENANT_TABLES, TableRows};

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

/// Checks archived tables against the known tables and the live columns before anything is
/// written. `live_columns` returns the columns the database has for a known table.
pub(crate) fn check_tables<'c>(
    tables: &[TableRows],
    live_columns: impl Fn(&str) -> Option<&'c [String]>,
) -> Result<()> {
    for table in tables {
        if !TENANT_TABLES.contains(&table.table.as_str()) {
            return Err(StoreError::Corrupt(format!(
                "unknown table {:?}",
                table.table
            )));
        }
        let live = live_columns(&table.table).unwrap_or_default();
        for (i, column) in table.columns.iter().enumerate() {
            if !live.contains(column) {
                return Err(StoreError::Corrupt(format!(
                    "unknown column {:?} in table {}",
                    column, table.table
                )));
            }
            if table.columns[..i].contains(column) {
                return Err(StoreError::Corrupt(format!(
                    "column {column:?} appears twice in table {}",
                    table.table
                )));
            }
        }
        if table.columns.is_empty() && !table.rows.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "rows without columns in {}",
                table.table
            )));
        }
        if let Some(row) = table.rows.iter().find(|r| r.len() != table.columns.len()) {
            return Err(StoreError::Corrupt(format!(
                "a row of {} has {} values for {} columns",
                table.table,
                row.len(),
                table.columns.len()
            )));
        }
    }
    Ok(())
}

/// The archived tables in `TENANT_TABLES` order (the order foreign keys need), keeping the
/// archive's order among chunks of one table.
pub(crate) fn in_table_order(tables: &[TableRows]) -> Vec<&TableRows> {
    let mut ordered: Vec<&TableRows> = tables.iter().collect();
    ordered.sort_by_key(|t| TENANT_TABLES.iter().position(|name| *name == t.table));
    ordered
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
    fn tables_are_checked_against_the_schema() {
        let live = vec!["localpart".to_owned(), "admin".to_owned()];
        let table = |name: &str, columns: &[&str], row: Vec<Value>| TableRows {
            table: name.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: vec![row],
        };
        let lookup = |_: &str| Some(live.as_slice());
        let ok = [table("users", &["localpart"], vec![json!("a")])];
        assert!(check_tables(&ok, lookup).is_ok());
        for bad in [
            table("sqlite_master", &["localpart"], vec![json!("a")]),
            table(
                "users",
                &["localpart", "x\"; DROP"],
                vec![json!("a"), json!(1)],
            ),
            table(
                "users",
                &["localpart", "localpart"],
                vec![json!("a"), json!("b")],
            ),
            table("users", &["localpart"], vec![]),
        ] {
            assert!(
                matches!(check_tables(&[bad], lookup), Err(StoreError::Corrupt(_))),
                "accepted"
            );
        }
    }

    #[test]
    fn tables_come_in_foreign_key_order() {
        let t = |name: &str| TableRows {
            table: name.into(),
            columns: vec![],
            rows: vec![],
        };
        let tables = [t("access_tokens"), t("users"), t("devices"), t("users")];
        let names: Vec<&str> = in_table_order(&tables)
            .iter()
            .map(|t| t.table.as_str())
            .collect();
        assert_eq!(names, ["users", "users", "devices", "access_tokens"][..]);
    }
}
