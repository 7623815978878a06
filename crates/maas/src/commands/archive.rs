//! `maas tenant export` and `maas tenant import`: a tenant's archive streamed between a file
//! and the server, never held whole, with the rows and bytes so far shown on stderr when it is
//! a terminal (and nothing when it is not, so scripts and logs stay clean).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::json;
use tokio::io::AsyncReadExt as _;

use super::output::print_json;
use super::tenant::{Tenant, render_tenant};
use super::{Ctx, tenant_path};
use crate::cli::{TenantExportArgs, TenantImportArgs};

/// How much of the file an import reads at a time.
const READ_PIECE: usize = 256 * 1024;

/// How often the progress line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(200);

/// The end marker of an archive: what `export` reports.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArchiveEnd {
    end: bool,
    tables: u64,
    rows: u64,
    sha256: String,
}

/// The number of rows of a table line, counted without keeping them.
#[derive(Default)]
struct RowCount(u64);

impl<'de> Deserialize<'de> for RowCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> Visitor<'de> for Counter {
            type Value = RowCount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RowCount, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(RowCount(n))
            }
        }
        deserializer.deserialize_seq(Counter)
    }
}

/// What a table line tells the progress display.
#[derive(Deserialize)]
struct ChunkRows {
    #[serde(default)]
    table: Option<IgnoredAny>,
    #[serde(default)]
    rows: RowCount,
}

/// Splits the archive passing through into lines, as far as the progress display and the
/// summary need: rows so far, and the last line (the end marker). Holds one line at most.
#[derive(Default)]
struct LineTally {
    partial: Vec<u8>,
    last: Vec<u8>,
    rows: u64,
    bytes: u64,
}

impl LineTally {
    fn feed(&mut self, mut piece: &[u8]) {
        self.bytes += piece.len() as u64;
        while let Some(at) = piece.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&piece[..at]);
            piece = &piece[at + 1..];
            self.line_done();
        }
        self.partial.extend_from_slice(piece);
    }

    fn line_done(&mut self) {
        if let Ok(ChunkRows {
            table: Some(_),
            rows,
        }) = serde_json::from_slice(&self.partial)
        {
            self.rows += rows.0;
        }
        self.last = std::mem::take(&mut self.partial);
    }

    /// The end marker, once the archive ended with one.
    fn end(&self) -> anyhow::Result<ArchiveEnd> {
        serde_json::from_slice::<ArchiveEnd>(&self.last)
            .ok()
            .filter(|end| end.end && self.partial.is_empty())
            .context("the server's archive ended without its end marker")
    }
}

/// The progress line on stderr, when stderr is a terminal.
struct Progress {
    verb: &'static str,
    what: String,
    total: Option<u64>,
    shown: Option<Instant>,
    on: bool,
}

impl Progress {
    fn new(verb: &'static str, what: String, total: Option<u64>) -> Self {
        Self {
            verb,
            what,
            total,
            shown: None,
            on: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, tally: &LineTally) {
        if !self.on || self.shown.is_some_and(|at| at.elapsed() < REDRAW) {
            return;
        }
        self.shown = Some(Instant::now());
        eprint!("\r\x1b[K{}", self.line(tally));
    }

    fn line(&self, tally: &LineTally) -> String {
        let size = match self.total {
            Some(total) if total > 0 => format!(
                "{} of {} ({}%)",
                mib(tally.bytes),
                mib(total),
                tally.bytes * 100 / total
            ),
            _ => mib(tally.bytes),
        };
        format!("{} {}: {} rows, {size}", self.verb, self.what, tally.rows)
    }

    /// Leaves the last state on its line (or says what happens next) and moves on.
    fn done(&mut self, tally: &LineTally, next: Option<&str>) {
        if self.on {
            let next = next.map(|n| format!(" — {n}")).unwrap_or_default();
            eprintln!("\r\x1b[K{}{next}", self.line(tally));
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(super) async fn export(ctx: &Ctx, args: TenantExportArgs) -> anyhow::Result<()> {
    let path = format!("{}/export", tenant_path(&args.server_name));
    let mut response = ctx.client.get_stream(&path).await?;
    let to_stdout = args.out.as_os_str() == "-";
    let mut out = if to_stdout {
        Output::Stdout
    } else {
        Output::file(&args.out)?
    };
    let mut progress = Progress::new("Exporting", args.server_name.clone(), None);
    let mut tally = LineTally::default();
    let received = async {
        while let Some(piece) = response.chunk().await.context("the archive was cut off")? {
            out.write(&piece)?;
            tally.feed(&piece);
            progress.update(&tally);
        }
        tally.end()
    }
    .await;
    progress.done(&tally, None);
    let end = match received {
        Ok(end) => end,
        Err(e) => {
            out.discard();
            return Err(e);
        }
    };
    out.finish()?;
    let summary = json!({
        "server_name": args.server_name,
        "file": args.out.display().to_string(),
        "bytes": tally.bytes,
        "tables": end.tables,
        "rows": end.rows,
        "sha256": end.sha256,
    });
    if ctx.json && !to_stdout {
        print_json(&summary);
    } else {
        let text = format!(
            "Exported tenant {} to {} ({} tables, {} rows, {} bytes)\n",
            args.server_name,
            args.out.display(),
            end.tables,
            end.rows,
            tally.bytes
        );
        // With the archive on stdout, the summary must not mix into it.
        if to_stdout {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    Ok(())
}

/// Where an export goes: stdout, or a private temporary file next to the target, renamed into
/// place once complete, so a failed export never leaves a partial file where a complete one is
/// expected.
enum Output {
    Stdout,
    File {
        file: std::fs::File,
        tmp: PathBuf,
        path: PathBuf,
    },
}

impl Output {
    /// Opens the temporary file owner-only (archives hold password hashes and signing keys).
    fn file(path: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut name = path
            .file_name()
            .with_context(|| format!("{} is not a file name", path.display()))?
            .to_os_string();
        name.push(format!(".partial-{}", std::process::id()));
        let tmp = path.with_file_name(name);
        let _ = std::fs::remove_file(&tmp); // left over by a crashed export with our pid
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Output::File {
            file,
            tmp,
            path: path.to_owned(),
        })
    }

    fn write(&mut self, piece: &[u8]) -> anyhow::Result<()> {
        match self {
            Output::Stdout => std::io::stdout()
                .lock()
                .write_all(piece)
                .context("cannot write the archive to stdout"),
            Output::File { file, path, .. } => file
                .write_all(piece)
                .with_context(|| format!("cannot write {}", path.display())),
        }
    }

    /// Makes the archive durable and puts it in place.
    fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout => std::io::stdout()
                .lock()
                .flush()
                .context("cannot write the archive to stdout"),
            Output::File { file, tmp, path } => {
                let done = file.sync_all().and_then(|()| std::fs::rename(&tmp, &path));
                if let Err(error) = done {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(error).with_context(|| format!("cannot write {}", path.display()));
                }
                Ok(())
            }
        }
    }

    fn discard(self) {
        if let Output::File { tmp, .. } = self {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

pub(super) async fn import(ctx: &Ctx, args: TenantImportArgs) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let total = file.metadata().await.ok().map(|m| m.len());
    let what = args.file.display().to_string();
    let state = (
        file,
        LineTally::default(),
        Progress::new("Importing", what, total),
    );
    // The file goes up a piece at a time; the server answers once it committed (or refused).
    let body = futures_util::stream::unfold(Some(state), |state| async move {
        let (mut file, mut tally, mut progress) = state?;
        let mut piece = vec![0u8; READ_PIECE];
        match file.read(&mut piece).await {
            Ok(0) => {
                progress.done(&tally, Some("waiting for the server to check and store it"));
                None
            }
            Ok(n) => {
                piece.truncate(n);
                tally.feed(&piece);
                progress.update(&tally);
                Some((Ok(piece), Some((file, tally, progress))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let path = format!("/import?replace={}", args.replace);
    let answer = ctx
        .client
        .post_stream(
            &path,
            reqwest::Body::wrap_stream(body),
            "application/x-ndjson",
        )
        .await?;
    ctx.print(&answer, |tenant: Tenant| {
        format!(
            "Imported tenant {} from {}\n{}",
            tenant.server_name,
            args.file.display(),
            render_tenant(&tenant)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_rows_and_keeps_the_end_marker() {
        let archive = concat!(
            "{\"format\":\"x\",\"tenant\":{\"rows\":[1]}}\n",
            "{\"table\":\"t\",\"columns\":[\"a\"],\"rows\":[[1],[2]]}\n",
            "{\"table\":\"u\",\"columns\":[],\"rows\":[]}\n",
            "{\"end\":true,\"tables\":2,\"rows\":2,\"sha256\":\"ab\"}\n"
        )
        .as_bytes();
        // However the pieces fall.
        for piece in [1, 5, archive.len()] {
            let mut tally = LineTally::default();
            for part in archive.chunks(piece) {
                tally.feed(part);
            }
            assert_eq!((tally.rows, tally.bytes), (2, archive.len() as u64));
            let end = tally.end().expect("end");
            assert_eq!((end.tables, end.rows, end.sha256.as_str()), (2, 2, "ab"));
        }
        let mut cut = LineTally::default();
        cut.feed(&archive[..archive.len() - 5]);
        assert!(cut.end().is_err());
        let mut no_end = LineTally::default();
        no_end.feed(&archive[..archive.len() - 48]);
        assert!(no_end.end().is_err());
    }

    #[test]
    fn exports_are_written_whole_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, b"old").expect("old file");
        let mut out = Output::file(&path).expect("open");
        out.write(b"new\n").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        out.finish().expect("finish");
        assert_eq!(std::fs::read(&path).expect("read"), b"new\n");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        // A failed export leaves the old file and no partial one.
        let mut out = Output::file(&path).expect("open");
        out.write(b"half").expect("write");
        out.discard();
        assert_eq!(std::fs::read(&path).expect("read"), b"new\n");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        let missing = dir.path().join("no/such/dir/a.jsonl");
        assert!(Output::file(&missing).is_err());
    }
}
