//! Tenant archives: a tenant's record and every row of its database as JSON Lines — a header,
//! table chunks, and a trailer holding the SHA-256 of all lines before it — so a tenant moves
//! between machines and storage backends as one self-checking file.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{TENANT_TABLES, TableRows, TenantInfo, TenantSettings};
use crate::{Error, Result};

/// The `format` of the header line.
pub const FORMAT: &str = "maas-tenant-export";
/// The archive layout this server writes and reads.
pub const VERSION: u64 = 1;
/// Rows per table line, so no line grows with the size of a table.
const CHUNK_ROWS: usize = 1000;

/// What the archive keeps of the control-plane record; the tenant id is not kept, since an
/// import always gets a new one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedTenant {
    pub server_name: String,
    pub hosts: Vec<String>,
    pub settings: TenantSettings,
    pub created_ts: i64,
}

impl From<&TenantInfo> for ArchivedTenant {
    fn from(record: &TenantInfo) -> Self {
        Self {
            server_name: record.server_name.clone(),
            hosts: record.hosts.clone(),
            settings: record.settings.clone(),
            created_ts: record.created_ts,
        }
    }
}

/// A verified archive: its tenant and its tables, each table's chunks merged, in
/// `TENANT_TABLES` order.
#[derive(Clone, Debug)]
pub struct Archive {
    pub created_ts: i64,
    pub tenant: ArchivedTenant,
    pub tables: Vec<TableRows>,
}

/// The first line.
#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u64,
    created_ts: i64,
    tenant: ArchivedTenant,
}

/// A table line, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Chunk {
    table: String,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// A table line, as written (borrowing the rows).
#[derive(Serialize)]
struct ChunkRef<'a> {
    table: &'a str,
    columns: &'a [String],
    rows: &'a [Vec<Value>],
}

/// The last line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    end: bool,
    /// Distinct tables in the archive.
    tables: u64,
    /// Rows over all tables.
    rows: u64,
    /// Lower-case hex SHA-256 of every byte before this line.
    sha256: String,
}

/// Writes the archive of `tenant` with these tables. Every table gets at least one line, so
/// that an empty table still records its columns.
pub fn write_archive(
    tenant: &ArchivedTenant,
    tables: &[TableRows],
    created_ts: i64,
) -> Result<Vec<u8>> {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        created_ts,
        tenant: tenant.clone(),
    };
    let mut out = Vec::new();
    push_line(&mut out, &header)?;
    let mut rows = 0u64;
    for table in tables {
        let chunks: Vec<&[Vec<Value>]> = if table.rows.is_empty() {
            vec![&[]]
        } else {
            table.rows.chunks(CHUNK_ROWS).collect()
        };
        for chunk in chunks {
            let line = ChunkRef {
                table: &table.table,
                columns: &table.columns,
                rows: chunk,
            };
            push_line(&mut out, &line)?;
        }
        rows += table.rows.len() as u64;
    }
    let distinct: std::collections::HashSet<&str> =
        tables.iter().map(|t| t.table.as_str()).collect();
    let trailer = Trailer {
        end: true,
        tables: distinct.len() as u64,
        rows,
        sha256: hex::encode(Sha256::digest(&out)),
    };
    push_line(&mut out, &trailer)?;
    Ok(out)
}

/// One JSON value and a newline. JSON escapes newlines inside strings, so lines never break.
fn push_line(out: &mut Vec<u8>, value: &impl Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|e| Error::Internal(format!("writing the archive: {e}")))?;
    out.push(b'\n');
    Ok(())
}

fn refuse(message: impl Into<String>) -> Error {
    Error::InvalidParam(message.into())
}

/// Reads and verifies an archive — format, version, trailer, checksum, table names, row
/// shapes, counts — without touching anything. Every refusal is `InvalidParam`.
pub fn read_archive(bytes: &[u8]) -> Result<Archive> {
    if bytes.is_empty() {
        return Err(refuse("The archive is empty"));
    }
    let Some(first_end) = bytes.iter().position(|b| *b == b'\n') else {
        // Not even the header is complete: say "truncated" for what began as an archive.
        let ours = format!("{{\"format\":\"{FORMAT}\"");
        if bytes.starts_with(ours.as_bytes()) || ours.as_bytes().starts_with(bytes) {
            return Err(refuse(
                "The archive is truncated: it ends inside its header",
            ));
        }
        read_header(bytes)?;
        return Err(refuse(
            "The archive is truncated: it has nothing after its header",
        ));
    };
    let header = read_header(&bytes[..first_end])?;
    let Some(body) = bytes.strip_suffix(b"\n") else {
        return Err(refuse(
            "The archive is truncated: it does not end with its end marker",
        ));
    };
    // The trailer is the last line; everything before it (newline included) is checksummed.
    let trailer_start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let trailer: Trailer = serde_json::from_slice(&body[trailer_start..])
        .ok()
        .filter(|t: &Trailer| t.end)
        .ok_or_else(|| refuse("The archive is truncated: it has no end marker"))?;
    if trailer_start <= first_end {
        return Err(refuse("The archive is truncated: it has no tables"));
    }
    let checked = &bytes[..trailer_start];
    if !hex::encode(Sha256::digest(checked)).eq_ignore_ascii_case(&trailer.sha256) {
        return Err(refuse(
            "The archive is corrupted: its SHA-256 does not match the one it was written with",
        ));
    }
    let lines = checked[first_end + 1..]
        .strip_suffix(b"\n")
        .unwrap_or_default();
    let mut tables: Vec<TableRows> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut rows = 0u64;
    for (n, line) in lines.split(|b| *b == b'\n').enumerate() {
        // Line 1 is the header.
        let line_no = n + 2;
        let chunk: Chunk = serde_json::from_slice(line).map_err(|e| {
            refuse(format!(
                "The archive is corrupted: line {line_no} is not a table chunk ({e})"
            ))
        })?;
        if !TENANT_TABLES.contains(&chunk.table.as_str()) {
            return Err(refuse(format!(
                "The archive holds table {:?}, which this server does not know \
                 (written by a newer maas?)",
                chunk.table
            )));
        }
        if let Some(row) = chunk.rows.iter().find(|r| r.len() != chunk.columns.len()) {
            return Err(refuse(format!(
                "The archive is corrupted: line {line_no} has a row of {} values for {} columns",
                row.len(),
                chunk.columns.len()
            )));
        }
        rows += chunk.rows.len() as u64;
        match index.get(&chunk.table) {
            Some(&i) => {
                if tables[i].columns != chunk.columns {
                    return Err(refuse(format!(
                        "The archive is corrupted: line {line_no} changes the columns of {}",
                        chunk.table
                    )));
                }
                tables[i].rows.extend(chunk.rows);
            }
            None => {
                index.insert(chunk.table.clone(), tables.len());
                tables.push(TableRows {
                    table: chunk.table,
                    columns: chunk.columns,
                    rows: chunk.rows,
                });
            }
        }
    }
    if trailer.tables != tables.len() as u64 || trailer.rows != rows {
        return Err(refuse(format!(
            "The archive is corrupted: it holds {} tables and {rows} rows, its end marker says \
             {} and {}",
            tables.len(),
            trailer.tables,
            trailer.rows
        )));
    }
    tables.sort_by_key(|t| TENANT_TABLES.iter().position(|name| *name == t.table));
    Ok(Archive {
        created_ts: header.created_ts,
        tenant: header.tenant,
        tables,
    })
}

/// The header, with a precise refusal for files that aren't archives or are of another version.
fn read_header(line: &[u8]) -> Result<Header> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|_| refuse("Not a maas tenant export: the first line is not JSON"))?;
    if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(refuse(format!(
            "Not a maas tenant export: the first line has no \"format\": \"{FORMAT}\""
        )));
    }
    match value.get("version").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(other) => {
            return Err(refuse(format!(
                "Unsupported archive version {other}; this server reads version {VERSION}"
            )));
        }
        None => {
            return Err(refuse(
                "Not a maas tenant export: the header has no version",
            ));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| refuse(format!("The archive's header is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenant() -> ArchivedTenant {
        ArchivedTenant {
            server_name: "example.test".into(),
            hosts: vec!["example.test".into(), "chat.example.test".into()],
            settings: TenantSettings::default(),
            created_ts: 1_700_000_000_000,
        }
    }

    fn tables() -> Vec<TableRows> {
        vec![
            TableRows {
                table: "users".into(),
                columns: vec!["localpart".into(), "admin".into()],
                rows: (0..2500)
                    .map(|i| vec![json!(format!("u{i}")), json!(i % 2)])
                    .collect(),
            },
            TableRows {
                table: "signing_keys".into(),
                columns: vec!["key_id".into(), "pkcs8".into()],
                rows: vec![],
            },
        ]
    }

    fn message(result: Result<Archive>) -> String {
        match result {
            Err(Error::InvalidParam(m)) => m,
            Err(other) => panic!("wrong error {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn archives_round_trip_in_chunks() {
        let bytes = write_archive(&tenant(), &tables(), 42).expect("write");
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        // Header, three chunks of users, one (empty) of signing keys, trailer.
        assert_eq!(text.lines().count(), 6);
        assert!(text.ends_with('\n'));
        let archive = read_archive(&bytes).expect("read");
        assert_eq!(archive.tenant, tenant());
        assert_eq!(archive.created_ts, 42);
        let mut expected = tables();
        expected.reverse(); // signing_keys comes first in `TENANT_TABLES`
        assert_eq!(archive.tables, expected);
    }

    #[test]
    fn damaged_archives_are_refused() {
        let bytes = write_archive(&tenant(), &tables(), 42).expect("write");
        assert!(message(read_archive(b"")).contains("empty"));
        assert!(message(read_archive(b"PK\x03\x04")).starts_with("Not a maas tenant export"));
        assert!(message(read_archive(b"{\"format\":\"other\"}\n")).starts_with("Not a maas"));
        let v2 = b"{\"format\":\"maas-tenant-export\",\"version\":2}\n";
        assert!(message(read_archive(v2)).contains("version 2"));
        for cut in [bytes.len() - 1, bytes.len() - 30, bytes.len() / 2, 300, 20] {
            assert!(
                message(read_archive(&bytes[..cut])).contains("truncated"),
                "cut at {cut}"
            );
        }
        // A whole line missing: the trailer's checksum no longer matches.
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(2);
        let dropped = format!("{}\n", lines.join("\n"));
        assert!(message(read_archive(dropped.as_bytes())).contains("corrupted"));
        // One byte flipped inside a row.
        let at = text.find("u1234").expect("row");
        let mut flipped = bytes.clone();
        flipped[at + 1] = b'9';
        assert!(message(read_archive(&flipped)).contains("SHA-256"));
    }

    #[test]
    fn unknown_tables_are_refused_even_with_a_good_checksum() {
        let mut bad = tables();
        bad[0].table = "sqlite_master".into();
        let bytes = write_archive(&tenant(), &bad, 42).expect("write");
        assert!(message(read_archive(&bytes)).contains("sqlite_master"));
    }
}
