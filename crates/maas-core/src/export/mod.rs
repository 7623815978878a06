//! Tenant archives: a tenant's record, every row of its database and the media bytes its rows
//! name as JSON Lines — a header, table chunks, blob lines ([`media`]), and a trailer holding
//! the SHA-256 of all lines before it — so a tenant moves between machines and storage
//! backends as one self-checking file.
//!
//! Both directions stream. An export writes each chunk the store reads as one line, then each
//! blob in pieces ([`TenantExport`]); an import reads the body line by line as it arrives,
//! checks each line, hands the chunk to the store and the blob's pieces to the blob store
//! ([`read::ArchiveReader`]), and the store's transaction must pass the trailer's checksum and
//! the consistency checks ([`check`]) before it is committed. Memory follows a chunk
//! (`EXPORT_CHUNK_ROWS` rows, about `EXPORT_CHUNK_BYTES`) or a blob's piece, never the archive.

pub(crate) mod check;
pub(crate) mod media;
pub(crate) mod read;

use std::collections::{BTreeSet, btree_set};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

pub use read::{ArchiveSource, StreamSource};

use self::media::{BLOB_PIECE_BYTES, BlobLine, blob_refs};
use crate::platform::blobs::{BlobError, BlobStore};
use crate::store::{ChunkSink, StoreError, TableRows, TenantInfo, TenantSettings};
use crate::{Error, Result, Tenant};

/// The `format` of the header line.
pub const FORMAT: &str = "maas-tenant-export";
/// The archive layout this server writes. Chunks cut by size as well as by row count (since
/// streaming) are still version 1: readers of version 1 merge a table's chunks, however many
/// rows each holds. Version 2 adds the blob lines after the tables, and their count to the
/// trailer.
pub const VERSION: u64 = 2;
/// The versions this server reads: a version 1 archive is one without media.
pub const READ_VERSIONS: &[u64] = &[1, 2];

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
    /// Blobs (whole, not pieces); absent from version 1 trailers.
    #[serde(default)]
    blobs: u64,
    /// Lower-case hex SHA-256 of every byte before this line.
    sha256: String,
}

/// Writes an archive one line at a time, hashing what it wrote for the trailer.
pub(crate) struct ArchiveWriter {
    hasher: Sha256,
    /// Distinct tables written, in order.
    tables: Vec<String>,
    rows: u64,
    /// Blobs whose last piece was written.
    blobs: u64,
    bytes: u64,
}

impl ArchiveWriter {
    /// A writer and the header line of `tenant`'s archive.
    pub(crate) fn start(tenant: &ArchivedTenant, created_ts: i64) -> Result<(Self, Vec<u8>)> {
        let mut writer = Self {
            hasher: Sha256::new(),
            tables: Vec::new(),
            rows: 0,
            blobs: 0,
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

    /// The line of one piece of blob `sha256`, at most `BLOB_PIECE_BYTES` of it; `last` on its
    /// final piece. The pieces of a blob go one after the other, after the last chunk.
    pub(crate) fn blob_piece(&mut self, sha256: &str, data: &[u8], last: bool) -> Result<Vec<u8>> {
        if last {
            self.blobs += 1;
        }
        let data = STANDARD.encode(data);
        self.line(&BlobLine {
            blob: sha256,
            data: &data,
            last,
        })
    }

    /// The trailer: counts and the checksum of every line before it. Not hashed itself.
    pub(crate) fn trailer(&mut self) -> Result<Vec<u8>> {
        let trailer = Trailer {
            end: true,
            tables: self.tables.len() as u64,
            rows: self.rows,
            blobs: self.blobs,
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
/// snapshot, then the bytes of the media its rows name. Dropping it ends the store's read.
pub struct TenantExport {
    tenant: Tenant,
    tenant_id: String,
    server_name: String,
    writer: ArchiveWriter,
    header: Option<Vec<u8>>,
    pieces: mpsc::Receiver<Piece>,
    /// The distinct blobs the media tables' chunks named so far: once the store is done, the
    /// snapshot's own. Sorted, so that the same tenant exports the same lines.
    named: BTreeSet<String>,
    /// Once the tables are done: the blobs still to send.
    to_send: Option<btree_set::IntoIter<String>>,
    /// The blob being sent.
    sending: Option<OutgoingBlob>,
    /// Blobs gone from the store since the snapshot, skipped.
    skipped: u64,
    finished: bool,
}

/// A blob being read into the archive, a piece per line.
struct OutgoingBlob {
    sha256: String,
    file: tokio::fs::File,
    /// Bytes still to send.
    remaining: u64,
    /// Of the bytes sent: they must still be the ones the blob is named by.
    hasher: Sha256,
}

impl TenantExport {
    /// Starts reading `tenant`'s database on a task of its own.
    pub(crate) fn start(tenant: Tenant, created_ts: i64) -> Result<Self> {
        let archived = ArchivedTenant::from(&tenant.record());
        let (writer, header) = ArchiveWriter::start(&archived, created_ts)?;
        let (sender, pieces) = mpsc::channel(PIECES_IN_FLIGHT);
        let reading = tenant.clone();
        tokio::spawn(async move {
            let mut sink = ChannelSink(sender.clone());
            let last = match reading.store().export_tables(&mut sink).await {
                Ok(()) => Piece::Done,
                Err(e) => Piece::Failed(e.into()),
            };
            // Nobody left to tell when the reader went away.
            let _ = sender.send(last).await;
        });
        Ok(Self {
            tenant_id: tenant.id(),
            tenant,
            server_name: archived.server_name,
            writer,
            header: Some(header),
            pieces,
            named: BTreeSet::new(),
            to_send: None,
            sending: None,
            skipped: 0,
            finished: false,
        })
    }

    /// The archive's next bytes — the header, a line per chunk, a line per piece of each blob,
    /// the trailer — or `None` after the trailer. An error ends the archive without a trailer,
    /// so that what was sent of it can never be taken for a whole archive.
    pub async fn next_bytes(&mut self) -> Option<Result<Vec<u8>>> {
        if let Some(header) = self.header.take() {
            return Some(Ok(header));
        }
        if self.finished {
            return None;
        }
        let next = match self.next_line().await {
            Ok(Some(line)) => return Some(Ok(line)),
            Ok(None) => self.writer.trailer(),
            Err(e) => Err(e),
        };
        self.finished = true;
        match &next {
            Ok(_) => tracing::info!(
                server_name = %self.server_name,
                tables = self.writer.tables.len(),
                rows = self.writer.rows,
                blobs = self.writer.blobs,
                skipped_blobs = self.skipped,
                bytes = self.writer.bytes,
                "tenant exported"
            ),
            Err(e) => {
                tracing::error!(server_name = %self.server_name, error = %e, "export failed");
            }
        }
        Some(next)
    }

    /// The next line before the trailer: a chunk's while the store reads, then a blob piece's;
    /// `None` once everything was written.
    async fn next_line(&mut self) -> Result<Option<Vec<u8>>> {
        if self.to_send.is_none() {
            match self.pieces.recv().await {
                Some(Piece::Chunk(chunk)) => {
                    let named = blob_refs(&chunk).map_err(|e| {
                        Error::Internal(format!("the tenant's media records are damaged: {e}"))
                    })?;
                    for blob in named {
                        if !self.named.contains(blob.sha256) {
                            self.named.insert(blob.sha256.to_owned());
                        }
                    }
                    return self.writer.chunk(&chunk).map(Some);
                }
                Some(Piece::Done) => {
                    self.to_send = Some(std::mem::take(&mut self.named).into_iter());
                }
                Some(Piece::Failed(e)) => return Err(e),
                // The task ended without a word: it panicked.
                None => return Err(Error::Internal("the export stopped unexpectedly".into())),
            }
        }
        loop {
            if self.sending.is_none() {
                let Some(sha256) = self.to_send.as_mut().and_then(Iterator::next) else {
                    return Ok(None);
                };
                self.sending = self.open_blob(sha256).await?;
                continue;
            }
            return self.blob_piece().await.map(Some);
        }
    }

    /// The blob to send next; `None` when it is gone.
    async fn open_blob(&mut self, sha256: String) -> Result<Option<OutgoingBlob>> {
        let blobs = self.tenant.blobs()?;
        let opened = OutgoingBlob::open(blobs, &self.tenant_id, sha256.clone()).await?;
        if opened.is_none() {
            // Media deleted after the snapshot: its record is in the archive, its bytes are
            // not. The import warns of it and serves the media as missing, which is what it
            // would have been here a moment later.
            tracing::warn!(
                server_name = %self.server_name,
                sha256,
                "media deleted during the export is left out of the archive"
            );
            self.skipped += 1;
        }
        Ok(opened)
    }

    /// The line of the next piece of the blob being sent.
    async fn blob_piece(&mut self) -> Result<Vec<u8>> {
        let Some(blob) = self.sending.as_mut() else {
            return Err(Error::Internal("no blob is being exported".into()));
        };
        let (line, last) = blob.next_line(&mut self.writer).await?;
        if last {
            self.sending = None;
        }
        Ok(line)
    }
}

impl OutgoingBlob {
    /// Tenant `tenant_id`'s blob `sha256`, to be read; `None` when it holds no such blob.
    async fn open(blobs: &BlobStore, tenant_id: &str, sha256: String) -> Result<Option<Self>> {
        let file = match blobs.open_blob(tenant_id, &sha256).await {
            Ok(file) => file,
            Err(BlobError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let remaining = file
            .metadata()
            .await
            .map_err(|e| Error::Internal(format!("reading media blob {sha256}: {e}")))?
            .len();
        Ok(Some(Self {
            sha256,
            file,
            remaining,
            hasher: Sha256::new(),
        }))
    }

    /// The line of the blob's next piece, and whether it was its last.
    async fn next_line(&mut self, writer: &mut ArchiveWriter) -> Result<(Vec<u8>, bool)> {
        // Blobs never change once stored: the size read when it was opened holds.
        let len = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(BLOB_PIECE_BYTES);
        let mut data = vec![0; len];
        self.file
            .read_exact(&mut data)
            .await
            .map_err(|e| Error::Internal(format!("reading media blob {}: {e}", self.sha256)))?;
        self.hasher.update(&data);
        self.remaining -= len as u64;
        let last = self.remaining == 0;
        // Checked before its last piece goes out, so that damaged bytes end the archive
        // without a trailer here rather than being refused by the import later.
        if last && hex::encode(self.hasher.clone().finalize()) != self.sha256 {
            return Err(Error::Internal(format!(
                "media blob {} is damaged: its bytes no longer have that SHA-256",
                self.sha256
            )));
        }
        let line = writer.blob_piece(&self.sha256, &data, last)?;
        Ok((line, last))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::read::{ArchiveReader, Entry, receive_blob};
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

    /// A chunk of the `media` table naming `blobs` (digest and size), and a pending upload.
    pub(super) fn media_chunk(blobs: &[(&str, u64)]) -> TableRows {
        let mut rows: Vec<Vec<Value>> = blobs
            .iter()
            .enumerate()
            .map(|(i, (sha256, size))| vec![json!(format!("m{i}")), json!(size), json!(sha256)])
            .collect();
        rows.push(vec![json!("pending"), json!(0), Value::Null]);
        TableRows {
            table: "media".into(),
            columns: vec!["media_id".into(), "size".into(), "sha256".into()],
            rows,
        }
    }

    /// The hex SHA-256 of `bytes`.
    pub(super) fn sha256(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// A blob store in a temporary directory, holding `contents` for tenant `exported`.
    pub(super) async fn blob_store(contents: &[&[u8]]) -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().expect("dir");
        let store = BlobStore::open(dir.path()).expect("store");
        for bytes in contents {
            let received = store
                .receive_bytes(bytes::Bytes::copy_from_slice(bytes))
                .await
                .expect("received");
            store.keep("exported", received).await.expect("kept");
        }
        (dir, store)
    }

    pub(super) fn write(tenant: &ArchivedTenant, chunks: &[TableRows]) -> Vec<u8> {
        let (mut writer, mut out) = ArchiveWriter::start(tenant, 42).expect("header");
        for chunk in chunks {
            out.extend(writer.chunk(chunk).expect("chunk"));
        }
        out.extend(writer.trailer().expect("trailer"));
        out
    }

    /// An archive of `chunks` and of the blobs `digests` of tenant `exported` in `store`, as
    /// an export writes them (a blob the store doesn't hold is left out).
    pub(super) async fn write_with_blobs(
        chunks: &[TableRows],
        store: &BlobStore,
        digests: &[&str],
    ) -> Vec<u8> {
        let (mut writer, mut out) = ArchiveWriter::start(&tenant(), 42).expect("header");
        for chunk in chunks {
            out.extend(writer.chunk(chunk).expect("chunk"));
        }
        for sha256 in digests {
            let opened = OutgoingBlob::open(store, "exported", (*sha256).to_owned()).await;
            let Some(mut blob) = opened.expect("opened") else {
                continue;
            };
            loop {
                let (line, last) = blob.next_line(&mut writer).await.expect("piece");
                out.extend(line);
                if last {
                    break;
                }
            }
        }
        out.extend(writer.trailer().expect("trailer"));
        out
    }

    /// What an archive read back holds.
    pub(super) struct Read {
        pub(super) tenant: ArchivedTenant,
        pub(super) created_ts: i64,
        pub(super) chunks: Vec<TableRows>,
        /// Each blob's digest and bytes, as kept by a blob store.
        pub(super) blobs: Vec<(String, Vec<u8>)>,
    }

    /// Reads an archive handed over in pieces of `piece` bytes, receiving its blobs into a
    /// blob store as an import does (the sizes from its media chunks).
    pub(super) async fn read(bytes: &[u8], piece: usize) -> Result<Read> {
        let dir = tempfile::tempdir().expect("dir");
        let store = BlobStore::open(dir.path()).expect("store");
        let mut source = read::tests::Pieces::new(bytes, piece);
        let (mut reader, tenant, created_ts) = ArchiveReader::open(&mut source).await?;
        let (mut chunks, mut blobs, mut sizes) = (Vec::new(), Vec::new(), HashMap::new());
        while let Some(entry) = reader.next().await? {
            match entry {
                Entry::Chunk(chunk) => {
                    for blob in media::blob_refs(&chunk).map_err(Error::InvalidParam)? {
                        sizes.insert(blob.sha256.to_owned(), blob.size);
                    }
                    chunks.push(chunk);
                }
                Entry::Blob(sha256) => {
                    let size = sizes
                        .get(&sha256)
                        .copied()
                        .ok_or_else(|| Error::InvalidParam(format!("unnamed blob {sha256}")))?;
                    let received = receive_blob(&mut reader, &store, &sha256, size).await?;
                    store.keep("imported", received).await?;
                    let kept = tokio::fs::read(store.path("imported", &sha256)?)
                        .await
                        .expect("kept bytes");
                    blobs.push((sha256, kept));
                }
            }
        }
        Ok(Read {
            tenant,
            created_ts,
            chunks,
            blobs,
        })
    }

    #[tokio::test]
    async fn archives_round_trip_in_chunks() {
        let bytes = write(&tenant(), &chunks());
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        // Header, one (empty) chunk of signing keys, three of users, trailer.
        assert_eq!(text.lines().count(), 6);
        assert!(text.ends_with('\n'));
        let header: Value =
            serde_json::from_str(text.lines().next().expect("header")).expect("header JSON");
        assert_eq!(header["version"], 2);
        let trailer: Value =
            serde_json::from_str(text.lines().last().expect("trailer")).expect("trailer JSON");
        assert_eq!(
            (
                trailer["tables"].as_u64(),
                trailer["rows"].as_u64(),
                trailer["blobs"].as_u64()
            ),
            (Some(2), Some(2500), Some(0))
        );
        // However the bytes arrive, the same chunks come out.
        for piece in [1, 7, 4096, bytes.len()] {
            let read = read(&bytes, piece).await.expect("read");
            assert_eq!(read.tenant, self::tenant());
            assert_eq!(read.created_ts, 42);
            assert_eq!(read.chunks, chunks(), "pieces of {piece}");
            assert!(read.blobs.is_empty());
        }
    }

    #[tokio::test]
    async fn media_travels_in_pieces_after_the_tables() {
        // Three pieces, the last a short one; a small blob; an empty one.
        let large: Vec<u8> = (0..2 * BLOB_PIECE_BYTES + 123)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let contents: [&[u8]; 3] = [&large, b"hello", b""];
        let (_dir, store) = blob_store(&contents).await;
        let digests: Vec<String> = contents.iter().map(|c| sha256(c)).collect();
        let gone = sha256(b"deleted since the snapshot");
        let mut named: Vec<(&str, u64)> = digests
            .iter()
            .zip(contents)
            .map(|(sha, c)| (sha.as_str(), c.len() as u64))
            .collect();
        named.push((&gone, 26));
        let mut all = chunks();
        all.push(media_chunk(&named));
        let order: Vec<&str> = named.iter().map(|(sha, _)| *sha).collect();
        let bytes = write_with_blobs(&all, &store, &order).await;

        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        // Header, five chunks, 3 + 1 + 1 blob lines, trailer: the missing blob left out.
        assert_eq!(lines.len(), 1 + 5 + 5 + 1);
        let blob_lines: Vec<Value> = lines[6..11]
            .iter()
            .map(|l| serde_json::from_str(l).expect("blob line"))
            .collect();
        let announced: Vec<(&str, bool)> = blob_lines
            .iter()
            .map(|l| (l["blob"].as_str().expect("blob"), l["last"] == true))
            .collect();
        assert_eq!(
            announced,
            [
                (digests[0].as_str(), false),
                (digests[0].as_str(), false),
                (digests[0].as_str(), true),
                (digests[1].as_str(), true),
                (digests[2].as_str(), true),
            ]
        );
        assert_eq!(blob_lines[4]["data"], "");
        assert!(lines.iter().all(|l| l.len() < (1 << 20) + 200));
        let trailer: Value = serde_json::from_str(lines[11]).expect("trailer");
        assert_eq!(trailer["blobs"], 3, "{trailer}");

        for piece in [7, 4096, bytes.len()] {
            let read = read(&bytes, piece).await.expect("read");
            assert_eq!(read.chunks, all, "pieces of {piece}");
            let expected: Vec<(String, Vec<u8>)> = digests
                .iter()
                .cloned()
                .zip(contents.iter().map(|c| c.to_vec()))
                .collect();
            assert!(read.blobs == expected, "pieces of {piece}");
        }
    }
}
