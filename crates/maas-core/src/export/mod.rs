//! Tenant archives: a tenant's record and every row of its database as JSON Lines — a header,
//! table chunks, and a trailer holding the SHA-256 of all lines before it — so a tenant moves
//! between machines and storage backends as one self-checking file.
//!
//! Both directions stream. An export writes each chunk the store reads as one line
//! ([`TenantExport`]); an import reads the body line by line as it arrives, checks each line,
//! and hands the chunk to the store ([`read::ArchiveReader`]), whose transaction the trailer's
//! checksum and the consistency checks ([`check`]) must pass before it is committed. Memory
//! follows a chunk (`EXPORT_CHUNK_ROWS` rows, about `EXPORT_CHUNK_BYTES`), never the archive.

pub(crate) mod check;
pub(crate) mod read;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use read::{ArchiveSource, StreamSource};

use crate::store::{ChunkSink, StoreError, TableRows, TenantInfo, TenantSettings};
use crate::{Error, Result, Tenant};

/// The `format` of the header line.
pub const FORMAT: &str = "maas-tenant-export";
/// The archive layout this server writes and reads. Chunks cut by size as well as by row count
/// (since streaming) are still version 1: readers of version 1 merge a table's chunks, however
/// many rows each holds.
pub const VERSION: u64 = 1;

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

/// Writes an archive one line at a time, hashing what it wrote for the trailer.
pub(crate) struct ArchiveWriter {
    hasher: Sha256,
    /// Distinct tables written, in order.
    tables: Vec<String>,
    rows: u64,
    bytes: u64,
}

impl ArchiveWriter {
    /// A writer and the header line of `tenant`'s archive.
    pub(crate) fn start(tenant: &ArchivedTenant, created_ts: i64) -> Result<(Self, Vec<u8>)> {
        let mut writer = Self {
            hasher: Sha256::new(),
            tables: Vec::new(),
            rows: 0,
            bytes: 0,
        };
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            created_ts,
            tenant: tenant.clone(),
        };
        let line = writer.line(&header)?;
        Ok((writer, line))
    }

    /// The line of one chunk.
    pub(crate) fn chunk(&mut self, chunk: &TableRows) -> Result<Vec<u8>> {
        if self.tables.last() != Some(&chunk.table) {
            self.tables.push(chunk.table.clone());
        }
        self.rows += chunk.rows.len() as u64;
        self.line(&ChunkRef {
            table: &chunk.table,
            columns: &chunk.columns,
            rows: &chunk.rows,
        })
    }

    /// The trailer: counts and the checksum of every line before it. Not hashed itself.
    pub(crate) fn trailer(&mut self) -> Result<Vec<u8>> {
        let trailer = Trailer {
            end: true,
            tables: self.tables.len() as u64,
            rows: self.rows,
            sha256: hex::encode(self.hasher.clone().finalize()),
        };
        let line = json_line(&trailer)?;
        self.bytes += line.len() as u64;
        Ok(line)
    }

    fn line(&mut self, value: &impl Serialize) -> Result<Vec<u8>> {
        let line = json_line(value)?;
        self.hasher.update(&line);
        self.bytes += line.len() as u64;
        Ok(line)
    }
}

/// One JSON value and a newline. JSON escapes newlines inside strings, so lines never break.
fn json_line(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(value)
        .map_err(|e| Error::Internal(format!("writing the archive: {e}")))?;
    line.push(b'\n');
    Ok(line)
}

/// What the store's export task hands over.
enum Piece {
    Chunk(TableRows),
    /// Every table was read.
    Done,
    Failed(Error),
}

/// Chunks the store hands out go through a channel of one: the store reads the next chunk
/// while the last one is being sent, and waits when the reader is slower.
const PIECES_IN_FLIGHT: usize = 1;

struct ChannelSink(mpsc::Sender<Piece>);

#[async_trait::async_trait]
impl ChunkSink for ChannelSink {
    async fn put(&mut self, chunk: TableRows) -> crate::store::Result<()> {
        self.0.send(Piece::Chunk(chunk)).await.map_err(|_| {
            StoreError::Backend(Box::new(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "nobody reads the export any more",
            )))
        })
    }
}

/// An export under way: its bytes, a line at a time, as the store reads them from one
/// snapshot. Dropping it ends the store's read.
pub struct TenantExport {
    server_name: String,
    writer: ArchiveWriter,
    header: Option<Vec<u8>>,
    pieces: mpsc::Receiver<Piece>,
    finished: bool,
}

impl TenantExport {
    /// Starts reading `tenant`'s database on a task of its own.
    pub(crate) fn start(tenant: Tenant, created_ts: i64) -> Result<Self> {
        let archived = ArchivedTenant::from(&tenant.record());
        let (writer, header) = ArchiveWriter::start(&archived, created_ts)?;
        let (sender, pieces) = mpsc::channel(PIECES_IN_FLIGHT);
        tokio::spawn(async move {
            let mut sink = ChannelSink(sender.clone());
            let last = match tenant.store().export_tables(&mut sink).await {
                Ok(()) => Piece::Done,
                Err(e) => Piece::Failed(e.into()),
            };
            // Nobody left to tell when the reader went away.
            let _ = sender.send(last).await;
        });
        Ok(Self {
            server_name: archived.server_name,
            writer,
            header: Some(header),
            pieces,
            finished: false,
        })
    }

    /// The archive's next bytes — the header, a line per chunk, the trailer — or `None` after
    /// the trailer. An error ends the archive without a trailer, so that what was sent of it
    /// can never be taken for a whole archive.
    pub async fn next_bytes(&mut self) -> Option<Result<Vec<u8>>> {
        if let Some(header) = self.header.take() {
            return Some(Ok(header));
        }
        if self.finished {
            return None;
        }
        let piece = self.pieces.recv().await;
        if !matches!(piece, Some(Piece::Chunk(_))) {
            self.finished = true;
        }
        Some(match piece {
            Some(Piece::Chunk(chunk)) => self.writer.chunk(&chunk),
            Some(Piece::Done) => {
                let trailer = self.writer.trailer();
                tracing::info!(
                    server_name = %self.server_name,
                    tables = self.writer.tables.len(),
                    rows = self.writer.rows,
                    bytes = self.writer.bytes,
                    "tenant exported"
                );
                trailer
            }
            Some(Piece::Failed(e)) => {
                tracing::error!(server_name = %self.server_name, error = %e, "export failed");
                Err(e)
            }
            // The task ended without a word: it panicked.
            None => Err(Error::Internal("the export stopped unexpectedly".into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::read::ArchiveReader;
    use super::*;

    pub(super) fn tenant() -> ArchivedTenant {
        ArchivedTenant {
            server_name: "example.test".into(),
            hosts: vec!["example.test".into(), "chat.example.test".into()],
            settings: TenantSettings::default(),
            created_ts: 1_700_000_000_000,
        }
    }

    /// Chunks as a store hands them out: signing keys (empty), then users in chunks of 1000.
    pub(super) fn chunks() -> Vec<TableRows> {
        let users: Vec<Vec<Value>> = (0..2500)
            .map(|i| vec![json!(format!("u{i}")), json!(i % 2)])
            .collect();
        let mut chunks = vec![TableRows {
            table: "signing_keys".into(),
            columns: vec!["key_id".into(), "pkcs8".into()],
            rows: vec![],
        }];
        for part in users.chunks(1000) {
            chunks.push(TableRows {
                table: "users".into(),
                columns: vec!["localpart".into(), "admin".into()],
                rows: part.to_vec(),
            });
        }
        chunks
    }

    pub(super) fn write(tenant: &ArchivedTenant, chunks: &[TableRows]) -> Vec<u8> {
        let (mut writer, mut out) = ArchiveWriter::start(tenant, 42).expect("header");
        for chunk in chunks {
            out.extend(writer.chunk(chunk).expect("chunk"));
        }
        out.extend(writer.trailer().expect("trailer"));
        out
    }

    /// Reads an archive handed over in pieces of `piece` bytes; the header's tenant, its
    /// creation time and the chunks.
    pub(super) async fn read(
        bytes: &[u8],
        piece: usize,
    ) -> Result<(ArchivedTenant, i64, Vec<TableRows>)> {
        let mut source = read::tests::Pieces::new(bytes, piece);
        let (mut reader, tenant, created_ts) = ArchiveReader::open(&mut source).await?;
        let mut chunks = Vec::new();
        while let Some(chunk) = reader.next_chunk().await? {
            chunks.push(chunk);
        }
        Ok((tenant, created_ts, chunks))
    }

    #[tokio::test]
    async fn archives_round_trip_in_chunks() {
        let bytes = write(&tenant(), &chunks());
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        // Header, one (empty) chunk of signing keys, three of users, trailer.
        assert_eq!(text.lines().count(), 6);
        assert!(text.ends_with('\n'));
        let trailer: Value =
            serde_json::from_str(text.lines().last().expect("trailer")).expect("trailer JSON");
        assert_eq!(
            (trailer["tables"].as_u64(), trailer["rows"].as_u64()),
            (Some(2), Some(2500))
        );
        // However the bytes arrive, the same chunks come out.
        for piece in [1, 7, 4096, bytes.len()] {
            let (tenant, created_ts, read) = read(&bytes, piece).await.expect("read");
            assert_eq!(tenant, self::tenant());
            assert_eq!(created_ts, 42);
            assert_eq!(read, chunks(), "pieces of {piece}");
        }
    }
}
