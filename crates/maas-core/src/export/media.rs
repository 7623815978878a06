//! Media in an archive. The media tables travel like every table; the bytes they name (blobs in
//! the platform's blob store, by SHA-256) follow the last table as blob lines,
//! `{"blob": "<sha256>", "data": "<base64>", "last": <bool>}`, each blob in pieces of at most
//! [`BLOB_PIECE_BYTES`] so that a line stays about 1 MiB however large the blob, and no side
//! ever holds more than one piece of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::TableRows;

/// The tables whose rows name blobs, each with a `sha256` (NULL in `media` for an upload still
/// to come) and a `size` column.
pub(crate) const MEDIA_TABLES: &[&str] = &["media", "remote_media", "media_thumbnails"];

/// Raw bytes per blob line at most: base64 makes 1 MiB of them.
pub(crate) const BLOB_PIECE_BYTES: usize = 768 << 10;

/// A blob line, as written and read. Borrowed: base64 needs no JSON escapes, so `data` is a
/// slice of the line (a line with escapes in it isn't one of ours and is refused).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BlobLine<'a> {
    pub(super) blob: &'a str,
    pub(super) data: &'a str,
    /// On the blob's last piece (its only one when it is small, or empty).
    pub(super) last: bool,
}

/// One row's reference to a blob: its digest, and the size the row gives the bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BlobRef<'c> {
    pub(crate) sha256: &'c str,
    pub(crate) size: u64,
}

/// The blobs the rows of `chunk` name, if it is of a media table: nothing for other tables, nor
/// for a pending upload's row. Refused, with what is wrong, when a row names something that
/// isn't a lower-case hex SHA-256 (the blob store could hold no such blob) or has no size: the
/// import tells it as a disagreement of the archive, the export as damaged records.
pub(crate) fn blob_refs(chunk: &TableRows) -> Result<Vec<BlobRef<'_>>, String> {
    if !MEDIA_TABLES.contains(&chunk.table.as_str()) {
        return Ok(Vec::new());
    }
    let column = |name: &str| {
        chunk
            .columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| format!("{} has no column {name}", chunk.table))
    };
    let (digests, sizes) = (column("sha256")?, column("size")?);
    let mut refs = Vec::with_capacity(chunk.rows.len());
    for row in &chunk.rows {
        let sha256 = match &row[digests] {
            Value::Null => continue,
            Value::String(s) if is_sha256(s) => s.as_str(),
            other => {
                return Err(format!(
                    "{} names blob {other}, which is not a SHA-256",
                    chunk.table
                ));
            }
        };
        let size = row[sizes].as_u64().ok_or_else(|| {
            format!(
                "{} gives blob {sha256} the size {}",
                chunk.table, row[sizes]
            )
        })?;
        refs.push(BlobRef { sha256, size });
    }
    Ok(refs)
}

/// A SHA-256 as the blob store names blobs: 64 lower-case hex digits.
pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rows_name_their_blobs() {
        let sha = "a".repeat(64);
        let chunk = TableRows {
            table: "media".into(),
            columns: vec!["media_id".into(), "size".into(), "sha256".into()],
            rows: vec![
                vec![json!("m1"), json!(5), json!(sha)],
                // A pending upload names no blob.
                vec![json!("m2"), json!(0), Value::Null],
            ],
        };
        assert_eq!(
            blob_refs(&chunk).expect("refs"),
            [BlobRef {
                sha256: &sha,
                size: 5
            }]
        );
        let users = TableRows {
            table: "users".into(),
            columns: vec!["localpart".into()],
            rows: vec![vec![json!("u")]],
        };
        assert!(blob_refs(&users).expect("none").is_empty());
        for bad in [json!("../../etc/passwd"), json!("A".repeat(64)), json!(7)] {
            let mut wrong = chunk.clone();
            wrong.rows[0][2] = bad;
            assert!(blob_refs(&wrong).is_err());
        }
        let mut unsized_ = chunk.clone();
        unsized_.rows[0][1] = json!(-1);
        assert!(blob_refs(&unsized_).is_err());
    }
}
