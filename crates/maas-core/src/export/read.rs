//! Reading an archive as it arrives: line by line, each line checked (format, version, known
//! tables in order, row shapes, blobs after the tables and each whole) and hashed, the
//! trailer's checksum and counts compared once it comes. Every refusal is `InvalidParam` with
//! what is wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::media::{BlobLine, is_sha256};
use super::{ArchivedTenant, Chunk, FORMAT, Header, READ_VERSIONS, Trailer, VERSION};
use crate::platform::blobs::{BlobError, BlobStore, Received};
use crate::store::{TENANT_TABLES, TableRows};
use crate::{Error, Result};

/// Longest header line: a tenant record is a few hundred bytes.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Longest table line. This server writes chunks of about `EXPORT_CHUNK_BYTES`; archives of
/// earlier versions cut chunks by rows only (1000 events of up to 64 KiB, escaped), so the
/// limit leaves room for those while still bounding what a hostile body makes us hold.
const MAX_LINE_BYTES: usize = 128 << 20;

/// Longest line once the blobs began: only blob lines and the trailer follow, and this server
/// writes blob lines of about 1 MiB (`BLOB_PIECE_BYTES` in base64); room is left for pieces up
/// to three times that.
const MAX_BLOB_LINE_BYTES: usize = 4 << 20;

/// Where an archive being imported comes from: its bytes as they arrive.
#[async_trait::async_trait]
pub trait ArchiveSource: Send {
    /// The next bytes, in pieces of any size; `None` at the end. An error is the transport's
    /// (the connection broke).
    async fn next_bytes(&mut self) -> std::io::Result<Option<Vec<u8>>>;
}

/// A stream of byte pieces (a request body) as an archive source.
pub struct StreamSource<S>(pub S);

#[async_trait::async_trait]
impl<S, B, E> ArchiveSource for StreamSource<S>
where
    S: Stream<Item = std::result::Result<B, E>> + Unpin + Send,
    B: AsRef<[u8]>,
    E: std::error::Error + Send + Sync + 'static,
{
    async fn next_bytes(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        match self.0.next().await {
            None => Ok(None),
            Some(Ok(piece)) => Ok(Some(piece.as_ref().to_vec())),
            Some(Err(e)) => Err(std::io::Error::other(e)),
        }
    }
}

fn refuse(message: impl Into<String>) -> Error {
    Error::InvalidParam(message.into())
}

/// One line as read.
enum Line {
    /// Up to (without) its newline.
    Whole(Vec<u8>),
    /// The bytes after the last newline, at the end of the archive.
    Unterminated(Vec<u8>),
    /// A line that grew past the limit, without its end: how long it was when refused.
    TooLong(usize),
}

/// Splits what a source hands out into lines, holding at most one line and one piece.
struct Lines<'s> {
    source: &'s mut dyn ArchiveSource,
    buf: Vec<u8>,
    /// `buf[..start]` was handed out already.
    start: usize,
    /// `buf[start..scanned]` holds no newline.
    scanned: usize,
    ended: bool,
}

impl<'s> Lines<'s> {
    fn new(source: &'s mut dyn ArchiveSource) -> Self {
        Self {
            source,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            ended: false,
        }
    }

    /// The next line, `None` at the end; `TooLong` once it grows past `max` bytes.
    async fn next(&mut self, max: usize) -> Result<Option<Line>> {
        loop {
            if let Some(at) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
                let end = self.scanned + at;
                let line = self.buf[self.start..end].to_vec();
                self.start = end + 1;
                self.scanned = self.start;
                return Ok(Some(Line::Whole(line)));
            }
            self.scanned = self.buf.len();
            let pending = self.buf.len() - self.start;
            if pending > max {
                return Ok(Some(Line::TooLong(pending)));
            }
            if self.ended {
                let rest = self.buf.split_off(self.start);
                self.buf.clear();
                (self.start, self.scanned) = (0, 0);
                return Ok((!rest.is_empty()).then_some(Line::Unterminated(rest)));
            }
            // What was handed out goes before more comes in: one copy of the rest per piece.
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
            match self.source.next_bytes().await {
                Ok(Some(piece)) => self.buf.extend_from_slice(&piece),
                Ok(None) => self.ended = true,
                Err(e) => {
                    return Err(refuse(format!(
                        "The archive could not be read to its end: {e}"
                    )));
                }
            }
        }
    }

    /// Whether anything follows.
    async fn at_end(&mut self) -> Result<bool> {
        Ok(self.next(0).await?.is_none())
    }
}

/// What an archive holds after its header, as it comes.
pub(crate) enum Entry {
    Chunk(TableRows),
    /// The start of a blob, named by its SHA-256 as announced (not checked: whoever keeps the
    /// bytes hashes them, see [`receive_blob`]); its bytes come from
    /// [`ArchiveReader::blob_data`].
    Blob(String),
}

/// An archive being read: its lines come out as chunks and blobs, each checked.
pub(crate) struct ArchiveReader<'s> {
    lines: Lines<'s>,
    hasher: Sha256,
    /// The header's.
    version: u64,
    /// Of the last line read; the header is line 1.
    line_no: usize,
    /// The table of the last chunk (its place in `TENANT_TABLES`) and its columns.
    current: Option<(usize, Vec<String>)>,
    tables: u64,
    rows: u64,
    /// Whether a blob line came: only blob lines and the trailer may follow.
    in_blobs: bool,
    /// The blob being read.
    blob: Option<IncomingBlob>,
    /// Blobs whose last piece was read.
    blobs: u64,
    done: bool,
}

/// A blob being read, a piece at a time.
struct IncomingBlob {
    sha256: String,
    /// Its first piece, read with the line that began it and not handed out yet.
    first: Option<Vec<u8>>,
    /// Whether its last piece was read.
    ended: bool,
}

impl<'s> ArchiveReader<'s> {
    /// Reads and checks the header: the reader, the archived tenant and when the archive was
    /// written.
    pub(crate) async fn open(
        source: &'s mut dyn ArchiveSource,
    ) -> Result<(ArchiveReader<'s>, ArchivedTenant, i64)> {
        let mut lines = Lines::new(source);
        let line = match lines.next(MAX_HEADER_BYTES).await? {
            None => return Err(refuse("The archive is empty")),
            Some(Line::TooLong(_)) => {
                return Err(refuse(
                    "Not a maas tenant export: its first line is longer than any header",
                ));
            }
            Some(Line::Unterminated(bytes)) => return Err(header_cut_off(&bytes)),
            Some(Line::Whole(line)) => line,
        };
        let header = read_header(&line)?;
        let mut hasher = Sha256::new();
        hasher.update(&line);
        hasher.update(b"\n");
        let reader = ArchiveReader {
            lines,
            hasher,
            version: header.version,
            line_no: 1,
            current: None,
            tables: 0,
            rows: 0,
            in_blobs: false,
            blob: None,
            blobs: 0,
            done: false,
        };
        Ok((reader, header.tenant, header.created_ts))
    }

    /// The next chunk or blob, or `None` once the trailer was read and agreed with everything
    /// before it (and nothing follows it). What is left unread of a blob is read past (its
    /// lines checked and hashed, its bytes dropped).
    pub(crate) async fn next(&mut self) -> Result<Option<Entry>> {
        while self.blob.is_some() {
            self.blob_data().await?;
        }
        if self.done {
            return Ok(None);
        }
        let line = match self.next_line().await? {
            Next::Trailer(trailer) => {
                self.finish(&trailer).await?;
                return Ok(None);
            }
            Next::Line(line) => line,
        };
        // A chunk's first key is unknown to a blob line, so this fails at once for chunks.
        let blob_line = serde_json::from_slice::<BlobLine>(&line);
        if let Ok(piece) = blob_line {
            return self.start_blob(&piece).map(Some);
        }
        let chunk: Chunk = match serde_json::from_slice(&line) {
            Ok(chunk) => chunk,
            Err(e) if self.in_blobs => {
                let e = blob_line.err().map_or(e.to_string(), |b| b.to_string());
                return Err(refuse(format!(
                    "The archive is corrupted: line {} is not a piece of media ({e})",
                    self.line_no
                )));
            }
            Err(e) => {
                return Err(refuse(format!(
                    "The archive is corrupted: line {} is not a table chunk ({e})",
                    self.line_no
                )));
            }
        };
        self.check_chunk(&chunk)?;
        self.rows += chunk.rows.len() as u64;
        Ok(Some(Entry::Chunk(TableRows {
            table: chunk.table,
            columns: chunk.columns,
            rows: chunk.rows,
        })))
    }

    /// The next piece of the blob the last [`Entry::Blob`] began, decoded; `None` after its
    /// last piece. Only the piece is held: a blob of any size passes through in pieces of
    /// about 768 KiB.
    pub(crate) async fn blob_data(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(blob) = &mut self.blob else {
            return Ok(None);
        };
        if let Some(first) = blob.first.take() {
            return Ok(Some(first));
        }
        if blob.ended {
            self.blob = None;
            return Ok(None);
        }
        let line = match self.next_line().await? {
            Next::Line(line) => line,
            Next::Trailer(trailer) => {
                // The archive ends here either way (so `check_rest` reads no further): a
                // checksum that doesn't match is the likelier cause, and told first.
                self.done = true;
                self.check_checksum(&trailer)?;
                return Err(refuse(format!(
                    "The archive is corrupted: its end marker comes before the last piece of \
                     blob {}",
                    self.blob.as_ref().map_or("", |b| b.sha256.as_str())
                )));
            }
        };
        let piece = serde_json::from_slice::<BlobLine>(&line).map_err(|e| {
            refuse(format!(
                "The archive is corrupted: line {} is not a piece of media ({e})",
                self.line_no
            ))
        })?;
        let data = self.decode(&piece)?;
        let Some(blob) = &mut self.blob else {
            return Ok(None);
        };
        if piece.blob != blob.sha256 {
            return Err(refuse(format!(
                "The archive is corrupted: line {} begins blob {} before the last piece of blob {}",
                self.line_no, piece.blob, blob.sha256
            )));
        }
        if piece.last {
            blob.ended = true;
            self.blobs += 1;
        }
        Ok(Some(data))
    }

    /// The first line of a blob.
    fn start_blob(&mut self, piece: &BlobLine) -> Result<Entry> {
        if self.version < 2 {
            return Err(refuse(format!(
                "The archive is corrupted: line {} holds media, which an archive of version {} \
                 cannot",
                self.line_no, self.version
            )));
        }
        if !is_sha256(piece.blob) {
            return Err(refuse(format!(
                "The archive is corrupted: line {} names blob {:?}, which is not a SHA-256",
                self.line_no, piece.blob
            )));
        }
        let data = self.decode(piece)?;
        self.in_blobs = true;
        if piece.last {
            self.blobs += 1;
        }
        self.blob = Some(IncomingBlob {
            sha256: piece.blob.to_owned(),
            first: Some(data),
            ended: piece.last,
        });
        Ok(Entry::Blob(piece.blob.to_owned()))
    }

    fn decode(&self, piece: &BlobLine) -> Result<Vec<u8>> {
        STANDARD.decode(piece.data).map_err(|e| {
            refuse(format!(
                "The archive is corrupted: line {} holds media that is not base64 ({e})",
                self.line_no
            ))
        })
    }

    /// Reads the rest without looking into its lines, to tell whether the archive is whole:
    /// its refusal when it is truncated or its checksum doesn't match, `Ok` otherwise. For an
    /// archive refused midway (rows the database won't take), where a damaged line is the more
    /// likely cause and the more useful answer.
    pub(crate) async fn check_rest(&mut self) -> Result<()> {
        while !self.done {
            if let Next::Trailer(trailer) = self.next_line().await? {
                self.check_checksum(&trailer)?;
                self.done = true;
            }
        }
        Ok(())
    }

    /// The next line, hashed, or the trailer (not hashed).
    async fn next_line(&mut self) -> Result<Next> {
        let max = if self.in_blobs {
            MAX_BLOB_LINE_BYTES
        } else {
            MAX_LINE_BYTES
        };
        let line = match self.lines.next(max).await? {
            None if self.line_no == 1 => {
                return Err(refuse(
                    "The archive is truncated: it has nothing after its header",
                ));
            }
            None => {
                return Err(refuse(
                    "The archive is truncated: it does not end with its end marker",
                ));
            }
            Some(Line::Unterminated(_)) => {
                return Err(refuse(
                    "The archive is truncated: its last line is incomplete",
                ));
            }
            Some(Line::TooLong(len)) => {
                return Err(refuse(format!(
                    "The archive is corrupted: line {} is longer than {max} bytes ({len} so far)",
                    self.line_no + 1
                )));
            }
            Some(Line::Whole(line)) => line,
        };
        self.line_no += 1;
        // Only the trailer parses as one: the first key of a chunk or a blob line is unknown
        // to it.
        if let Ok(trailer) = serde_json::from_slice::<Trailer>(&line)
            && trailer.end
        {
            return Ok(Next::Trailer(trailer));
        }
        self.hasher.update(&line);
        self.hasher.update(b"\n");
        Ok(Next::Line(line))
    }

    /// A chunk's table is known and comes in order, before any blob, its columns are those of
    /// the table's earlier chunks, and each row has a value per column.
    fn check_chunk(&mut self, chunk: &Chunk) -> Result<()> {
        let line_no = self.line_no;
        if self.in_blobs {
            return Err(refuse(format!(
                "The archive is corrupted: line {line_no} holds rows of {} after media; tables \
                 come first",
                chunk.table
            )));
        }
        let Some(at) = TENANT_TABLES.iter().position(|t| *t == chunk.table) else {
            return Err(refuse(format!(
                "The archive holds table {:?}, which this server does not know \
                 (written by a newer maas?)",
                chunk.table
            )));
        };
        match &self.current {
            Some((current, columns)) if *current == at => {
                if *columns != chunk.columns {
                    return Err(refuse(format!(
                        "The archive is corrupted: line {line_no} changes the columns of {}",
                        chunk.table
                    )));
                }
            }
            // Tables are imported as they come, parents before children.
            Some((current, _)) if *current > at => {
                return Err(refuse(format!(
                    "The archive is corrupted: line {line_no} holds rows of {} after those of \
                     {}; tables come in the order this server writes them",
                    chunk.table, TENANT_TABLES[*current]
                )));
            }
            _ => {
                self.current = Some((at, chunk.columns.clone()));
                self.tables += 1;
            }
        }
        if let Some(row) = chunk.rows.iter().find(|r| r.len() != chunk.columns.len()) {
            return Err(refuse(format!(
                "The archive is corrupted: line {line_no} has a row of {} values for {} columns",
                row.len(),
                chunk.columns.len()
            )));
        }
        Ok(())
    }

    /// The trailer agrees with the lines before it, and ends the archive.
    async fn finish(&mut self, trailer: &Trailer) -> Result<()> {
        if self.tables == 0 {
            return Err(refuse("The archive is truncated: it has no tables"));
        }
        self.check_checksum(trailer)?;
        if trailer.tables != self.tables || trailer.rows != self.rows {
            return Err(refuse(format!(
                "The archive is corrupted: it holds {} tables and {} rows, its end marker says \
                 {} and {}",
                self.tables, self.rows, trailer.tables, trailer.rows
            )));
        }
        if trailer.blobs != self.blobs {
            return Err(refuse(format!(
                "The archive is corrupted: it holds {} blobs, its end marker says {}",
                self.blobs, trailer.blobs
            )));
        }
        if !self.lines.at_end().await? {
            return Err(refuse(format!(
                "The archive is corrupted: something follows its end marker (line {})",
                self.line_no
            )));
        }
        self.done = true;
        Ok(())
    }

    fn check_checksum(&self, trailer: &Trailer) -> Result<()> {
        let sha256 = hex::encode(self.hasher.clone().finalize());
        if !sha256.eq_ignore_ascii_case(&trailer.sha256) {
            return Err(refuse(
                "The archive is corrupted: its SHA-256 does not match the one it was written with",
            ));
        }
        Ok(())
    }
}

/// Receives the blob `sha256` the reader's last [`Entry::Blob`] began into `blobs`, a piece at
/// a time: the bytes, not yet any tenant's, once they hash to `sha256` and are the `size`
/// bytes the media records give them. A blob larger than that is refused as soon as it passes
/// it.
pub(crate) async fn receive_blob(
    reader: &mut ArchiveReader<'_>,
    blobs: &BlobStore,
    sha256: &str,
    size: u64,
) -> Result<Received> {
    let pieces = futures_util::stream::try_unfold(reader, |reader| async move {
        let data = reader.blob_data().await?;
        Ok::<_, Error>(data.map(|data| (Bytes::from(data), reader)))
    });
    let received = blobs.receive(pieces, size).await.map_err(|e| match e {
        // The reader's refusal, as it was.
        BlobError::Body(e) => match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(e) => Error::Internal(format!("receiving blob {sha256}: {e}")),
        },
        BlobError::TooLarge { .. } => refuse(format!(
            "The archive disagrees with itself: blob {sha256} is larger than the {size} bytes \
             its media records say"
        )),
        other => other.into(),
    })?;
    if received.sha256 != sha256 {
        return Err(refuse(format!(
            "The archive is corrupted: the bytes of blob {sha256} have SHA-256 {}",
            received.sha256
        )));
    }
    if received.size != size {
        return Err(refuse(format!(
            "The archive disagrees with itself: blob {sha256} holds {} bytes, its media records \
             say {size}",
            received.size
        )));
    }
    Ok(received)
}

/// A line after the header.
enum Next {
    Line(Vec<u8>),
    Trailer(Trailer),
}

/// Why an archive ending inside its first line is refused: "truncated" for what began as an
/// archive of ours.
fn header_cut_off(bytes: &[u8]) -> Error {
    let ours = format!("{{\"format\":\"{FORMAT}\"");
    if bytes.starts_with(ours.as_bytes()) || ours.as_bytes().starts_with(bytes) {
        return refuse("The archive is truncated: it ends inside its header");
    }
    match read_header(bytes) {
        Err(e) => e,
        Ok(_) => refuse("The archive is truncated: it has nothing after its header"),
    }
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
        Some(version) if READ_VERSIONS.contains(&version) => {}
        Some(other) => {
            return Err(refuse(format!(
                "Unsupported archive version {other}; this server reads versions 1 to {VERSION}"
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
pub(crate) mod tests {
    use serde_json::json;

    use super::super::tests::{chunks, media_chunk, read, sha256, tenant, write};
    use super::super::{ArchiveWriter, ChunkRef, json_line};
    use super::*;

    /// An archive handed over `piece` bytes at a time.
    pub(crate) struct Pieces<'a> {
        rest: &'a [u8],
        piece: usize,
    }

    impl<'a> Pieces<'a> {
        pub(crate) fn new(bytes: &'a [u8], piece: usize) -> Self {
            Self { rest: bytes, piece }
        }
    }

    #[async_trait::async_trait]
    impl ArchiveSource for Pieces<'_> {
        async fn next_bytes(&mut self) -> std::io::Result<Option<Vec<u8>>> {
            if self.rest.is_empty() {
                return Ok(None);
            }
            let (piece, rest) = self.rest.split_at(self.piece.min(self.rest.len()));
            self.rest = rest;
            Ok(Some(piece.to_vec()))
        }
    }

    async fn message(bytes: &[u8]) -> String {
        match read(bytes, 100).await {
            Err(Error::InvalidParam(m)) => m,
            Err(other) => panic!("wrong error {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[tokio::test]
    async fn damaged_archives_are_refused() {
        let bytes = write(&tenant(), &chunks());
        assert!(message(b"").await.contains("empty"));
        assert!(
            message(b"PK\x03\x04")
                .await
                .starts_with("Not a maas tenant export")
        );
        assert!(
            message(b"{\"format\":\"other\"}\n")
                .await
                .starts_with("Not a maas")
        );
        let v3 = b"{\"format\":\"maas-tenant-export\",\"version\":3}\n";
        assert!(message(v3).await.contains("version 3"));
        for cut in [bytes.len() - 1, bytes.len() - 30, bytes.len() / 2, 300, 20] {
            assert!(
                message(&bytes[..cut]).await.contains("truncated"),
                "cut at {cut}"
            );
        }
        // A whole line missing: the trailer's checksum no longer matches.
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(2);
        let dropped = format!("{}\n", lines.join("\n"));
        assert!(message(dropped.as_bytes()).await.contains("corrupted"));
        // One byte flipped inside a row.
        let at = text.find("u1234").expect("row");
        let mut flipped = bytes.clone();
        flipped[at + 1] = b'9';
        assert!(message(&flipped).await.contains("SHA-256"));
        // Anything after the end marker.
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"{}\n");
        assert!(message(&longer).await.contains("follows its end marker"));
    }

    #[tokio::test]
    async fn unknown_or_unordered_tables_are_refused_even_with_a_good_checksum() {
        let mut bad = chunks();
        bad[1].table = "sqlite_master".into();
        assert!(
            message(&write(&tenant(), &bad))
                .await
                .contains("sqlite_master")
        );
        // Users, then signing keys: a child table before its parent.
        let mut unordered = chunks();
        unordered.rotate_left(1);
        let refused = message(&write(&tenant(), &unordered)).await;
        assert!(
            refused.contains("signing_keys after those of users"),
            "{refused}"
        );
        let mut columns = chunks();
        columns[2].columns.reverse();
        assert!(
            message(&write(&tenant(), &columns))
                .await
                .contains("changes the columns of users")
        );
    }

    #[tokio::test]
    async fn a_line_longer_than_any_chunk_is_refused_without_holding_it() {
        struct Endless;
        #[async_trait::async_trait]
        impl ArchiveSource for Endless {
            async fn next_bytes(&mut self) -> std::io::Result<Option<Vec<u8>>> {
                Ok(Some(vec![b'x'; 1 << 20]))
            }
        }
        let header = write(&tenant(), &[]);
        let header = &header[..header.iter().position(|b| *b == b'\n').expect("line") + 1];
        struct Then<'a>(Option<&'a [u8]>, Endless);
        #[async_trait::async_trait]
        impl ArchiveSource for Then<'_> {
            async fn next_bytes(&mut self) -> std::io::Result<Option<Vec<u8>>> {
                match self.0.take() {
                    Some(first) => Ok(Some(first.to_vec())),
                    None => self.1.next_bytes().await,
                }
            }
        }
        let mut source = Then(Some(header), Endless);
        let (mut reader, _, _) = ArchiveReader::open(&mut source).await.expect("header");
        match reader.next().await {
            Err(Error::InvalidParam(m)) => assert!(m.contains("longer than"), "{m}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        let mut endless = Endless;
        match ArchiveReader::open(&mut endless).await {
            Err(Error::InvalidParam(m)) => assert!(m.contains("longer than any header"), "{m}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    /// What an archive is made of after its header, in the order given.
    enum Part<'a> {
        Chunk(TableRows),
        /// A piece of a blob: its digest, bytes, and whether it is the last.
        Piece(&'a str, &'a [u8], bool),
    }

    /// An archive of `parts` with a good checksum and counts.
    fn archive(parts: Vec<Part<'_>>) -> Vec<u8> {
        let (mut writer, mut out) = ArchiveWriter::start(&tenant(), 42).expect("header");
        for part in parts {
            out.extend(match part {
                Part::Chunk(chunk) => writer.chunk(&chunk).expect("chunk"),
                Part::Piece(sha256, data, last) => {
                    writer.blob_piece(sha256, data, last).expect("piece")
                }
            });
        }
        out.extend(writer.trailer().expect("trailer"));
        out
    }

    /// `chunks()`, the media table naming `named`, then `pieces`.
    fn with_media<'a>(named: &[(&str, u64)], pieces: Vec<Part<'a>>) -> Vec<Part<'a>> {
        let mut parts: Vec<Part> = chunks().into_iter().map(Part::Chunk).collect();
        parts.push(Part::Chunk(media_chunk(named)));
        parts.extend(pieces);
        parts
    }

    #[tokio::test]
    async fn blobs_must_be_whole_and_what_they_claim() {
        let hello = sha256(b"hello");
        let other = sha256(b"other");
        let named = [(hello.as_str(), 5), (other.as_str(), 5)];
        let good = archive(with_media(
            &named,
            vec![Part::Piece(&hello, b"hello", true)],
        ));
        let read = read(&good, 100).await.expect("read");
        assert_eq!(read.blobs, [(hello.clone(), b"hello".to_vec())]);

        let refused = [
            // Bytes that aren't the ones the blob is named by.
            (vec![Part::Piece(&hello, b"jello", true)], "have SHA-256"),
            // A blob that isn't done before the next begins, or before the end.
            (
                vec![
                    Part::Piece(&hello, b"hel", false),
                    Part::Piece(&other, b"other", true),
                ],
                "before the last piece of blob",
            ),
            (
                vec![Part::Piece(&hello, b"hel", false)],
                "end marker comes before the last piece",
            ),
            // A name no blob can have.
            (
                vec![Part::Piece("../../etc/passwd", b"", true)],
                "not a SHA-256",
            ),
            // Tables come before media.
            (
                vec![
                    Part::Piece(&hello, b"hello", true),
                    Part::Chunk(media_chunk(&[])),
                ],
                "rows of media after media",
            ),
        ];
        for (pieces, words) in refused {
            let refused = message(&archive(with_media(&named, pieces))).await;
            assert!(refused.contains(words), "{refused:?} lacks {words:?}");
        }
        // More or fewer bytes than the media records say.
        for (size, words) in [(3, "larger than the 3 bytes"), (9, "holds 5 bytes")] {
            let bytes = archive(with_media(
                &[(&hello, size)],
                vec![Part::Piece(&hello, b"hello", true)],
            ));
            let refused = message(&bytes).await;
            assert!(refused.contains(words), "{refused:?} lacks {words:?}");
        }
        // Data that isn't base64, with a good checksum.
        let text = String::from_utf8(good.clone()).expect("utf-8");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.pop();
        let at = lines.len() - 1;
        lines[at] = lines[at].replace(&STANDARD.encode(b"hello"), "not base64!");
        let refused = message(&with_checksum(&lines, 1)).await;
        assert!(refused.contains("not base64"), "{refused}");
        // A trailer counting another number of blobs.
        lines[at] = text.lines().nth(at).expect("blob line").to_owned();
        let refused = message(&with_checksum(&lines, 2)).await;
        assert!(refused.contains("holds 1 blobs"), "{refused}");
    }

    /// `lines` and a trailer with their checksum, the counts of `chunks()` and a media chunk
    /// of three rows, and `blobs`.
    fn with_checksum(lines: &[String], blobs: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        let trailer = json!({"end": true, "tables": 3, "rows": 2503, "blobs": blobs,
                             "sha256": sha256(&out)});
        out.extend(json_line(&trailer).expect("trailer"));
        out
    }

    /// An archive of version 1, as servers before media wrote them, with `extra` lines after
    /// its chunks.
    fn version_1(extra: &[String]) -> Vec<u8> {
        let header = json!({"format": FORMAT, "version": 1, "created_ts": 42,
                            "tenant": tenant()});
        let mut out = json_line(&header).expect("header");
        let chunks = chunks();
        for chunk in &chunks {
            let line = json_line(&ChunkRef {
                table: &chunk.table,
                columns: &chunk.columns,
                rows: &chunk.rows,
            });
            out.extend(line.expect("chunk"));
        }
        for line in extra {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        let trailer = json!({"end": true, "tables": 2, "rows": 2500, "sha256": sha256(&out)});
        out.extend(json_line(&trailer).expect("trailer"));
        out
    }

    #[tokio::test]
    async fn archives_of_version_1_are_still_read_and_hold_no_media() {
        let read = read(&version_1(&[]), 4096).await.expect("read");
        assert_eq!(read.chunks, chunks());
        assert!(read.blobs.is_empty());
        let blob = json!({"blob": sha256(b""), "data": "", "last": true}).to_string();
        let refused = message(&version_1(&[blob])).await;
        assert!(refused.contains("version 1"), "{refused}");
    }

    #[tokio::test]
    async fn lines_after_the_first_blob_are_held_to_a_blob_line() {
        let hello = sha256(b"hello");
        let start = archive(with_media(
            &[(&hello, 5)],
            vec![Part::Piece(&hello, b"hello", true)],
        ));
        // Everything but the trailer, then a line without end.
        let cut = start[..start.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .expect("trailer")
            + 1;
        let mut bytes = start[..cut].to_vec();
        bytes.extend(vec![b'x'; MAX_BLOB_LINE_BYTES + 10]);
        let refused = message(&bytes).await;
        assert!(
            refused.contains(&format!("longer than {MAX_BLOB_LINE_BYTES}")),
            "{refused}"
        );
    }
}
