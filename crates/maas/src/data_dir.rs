//! The small files maas keeps next to its databases: `serve.lock` (held by the one server using
//! the directory), `operator.token` (the generated operator API secret) and `server.json`
//! (where a running server listens). The server writes them, the CLI reads them; all writes
//! are atomic so a reader never sees half a file.

use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::settings::{LOCK_FILE, OPERATOR_TOKEN_FILE, SERVER_INFO_FILE};

/// Contents of `server.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The public listener: the Matrix APIs.
    pub url: String,
    /// The operator API's listener; the same as `url` when they share one. Absent in the
    /// files of servers from before the operator API had a listener of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_url: Option<String>,
    /// The federation listener (`https://…` with TLS); the same as `url` when federation is
    /// served on the public listener. Absent in the files of servers from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_url: Option<String>,
    /// The metrics listener (`GET /metrics`), when `metrics.listen` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    pub pid: u32,
}

impl ServerInfo {
    /// Where the CLI finds the operator API.
    pub fn operator_url(&self) -> &str {
        self.operator_url.as_deref().unwrap_or(&self.url)
    }
}

/// The exclusive lock on a data directory, held from start-up to exit by the one server that
/// uses it. Two servers on one directory would both write the same tenant databases (a room's
/// DAG forks) and overwrite each other's `server.json`.
///
/// It is an advisory `flock` on `serve.lock`: the kernel releases it when the process ends,
/// however it ends (`kill -9` included), so it never goes stale and the file is never
/// deleted (deleting a lock file lets a third process lock a new file while the first still
/// holds the old one). The file holds the holder's pid, to name it in the refusal.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the data directory's lock, or says which server holds it.
pub fn lock(dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false) // the holder's pid stays readable until we hold the lock
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = read_pid(&mut file)
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            bail!(
                "another maas serve{holder} uses data dir {}; stop it first, or start this one with another --data-dir",
                dir.display()
            );
        }
        Err(TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(DataDirLock { _file: file })
}

/// The pid in a lock file; `None` while its holder is still writing it.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Creates the data directory (owner-only: it holds password hashes and secrets).
pub fn create(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

pub fn operator_token_path(dir: &Path) -> PathBuf {
    dir.join(OPERATOR_TOKEN_FILE)
}

pub fn server_info_path(dir: &Path) -> PathBuf {
    dir.join(SERVER_INFO_FILE)
}

/// Reads `<dir>/operator.token`, generating it first when absent.
pub fn ensure_operator_token(dir: &Path) -> anyhow::Result<String> {
    let path = operator_token_path(dir);
    if let Some(token) = read_operator_token(&path)? {
        warn_if_readable_by_others(&path);
        return Ok(token);
    }
    let token = generate_token();
    match write_new_file(&path, &format!("{token}\n"), 0o600) {
        Ok(()) => Ok(token),
        // Another process created it between our read and write: theirs wins.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            read_operator_token(&path)?.context("operator token file appeared empty")
        }
        Err(error) => Err(error).with_context(|| format!("cannot write {}", path.display())),
    }
}

/// `None` when the file does not exist; an empty file is an error, not a new token, so a
/// damaged file never silently changes the secret clients use.
pub fn read_operator_token(path: &Path) -> anyhow::Result<Option<String>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "{} is empty; delete it to generate a new operator token",
            path.display()
        );
    }
    Ok(Some(token.to_owned()))
}

/// 32 random bytes, hex-encoded.
fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn warn_if_readable_by_others(path: &Path) {
    let Ok(meta) = fs::metadata(path) else { return };
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "operator token file is accessible by other users; chmod 600 it");
    }
}

/// Creates `path` with `contents` and `mode`, failing with `AlreadyExists` if it exists. The
/// data goes to a temporary file first and is hard-linked into place, so the file appears
/// complete or not at all, and never clobbers a concurrent writer's file.
fn write_new_file(path: &Path, contents: &str, mode: u32) -> io::Result<()> {
    let tmp = write_temp_file(path, contents, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked
}

/// Replaces `path` atomically with `contents`.
fn replace_file(path: &Path, contents: &str, mode: u32) -> io::Result<()> {
    let tmp = write_temp_file(path, contents, mode)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

fn write_temp_file(path: &Path, contents: &str, mode: u32) -> io::Result<PathBuf> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let _ = fs::remove_file(&tmp); // left over by a crashed process with our pid
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(tmp)
}

/// The URL clients should use for a bound address: a wildcard address is reachable locally
/// through loopback, and `0.0.0.0` is not a valid destination everywhere.
pub fn local_url(addr: SocketAddr) -> String {
    local_url_with("http", addr)
}

/// [`local_url`] with another scheme (`https` for a TLS listener).
pub fn local_url_with(scheme: &str, addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        let loopback = match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        addr.set_ip(loopback);
    }
    format!("{scheme}://{addr}")
}

pub fn write_server_info(dir: &Path, info: &ServerInfo) -> anyhow::Result<()> {
    let path = server_info_path(dir);
    let json = serde_json::to_string(info)?;
    replace_file(&path, &format!("{json}\n"), 0o644)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `None` when no server has announced itself in `dir`.
pub fn read_server_info(dir: &Path) -> anyhow::Result<Option<ServerInfo>> {
    let path = server_info_path(dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    let info =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    Ok(Some(info))
}

/// Removes `server.json`, but only if it is still ours. The data directory's lock keeps a
/// second server out while we run, so this is a second line of defence: someone may have
/// replaced the file by hand, or a copy of the directory may be in use.
pub fn remove_server_info(dir: &Path) {
    let Ok(Some(info)) = read_server_info(dir) else {
        return;
    };
    if info.pid != std::process::id() {
        return;
    }
    if let Err(error) = fs::remove_file(server_info_path(dir)) {
        tracing::warn!(%error, "cannot remove server.json");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_token_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ensure_operator_token(dir.path()).expect("generate");
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = fs::metadata(operator_token_path(dir.path()))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ensure_operator_token(dir.path()).expect("reread"), first);
        let leftovers = fs::read_dir(dir.path()).expect("ls").count();
        assert_eq!(leftovers, 1, "temporary file left behind");
    }

    #[test]
    fn existing_token_is_trimmed_and_empty_one_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = operator_token_path(dir.path());
        fs::write(&path, "  secret\n").expect("write");
        assert_eq!(ensure_operator_token(dir.path()).expect("read"), "secret");
        fs::write(&path, "\n").expect("write");
        assert!(ensure_operator_token(dir.path()).is_err());
    }

    #[test]
    fn server_info_round_trips_and_is_removed_only_by_its_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_server_info(dir.path()).expect("read"), None);
        let other = ServerInfo {
            url: "http://127.0.0.1:1".into(),
            operator_url: Some("http://127.0.0.1:3".into()),
            federation_url: Some("https://127.0.0.1:4".into()),
            metrics_url: Some("http://127.0.0.1:5".into()),
            pid: std::process::id() + 1,
        };
        write_server_info(dir.path(), &other).expect("write");
        remove_server_info(dir.path());
        assert_eq!(read_server_info(dir.path()).expect("read"), Some(other));

        let ours = ServerInfo {
            url: "http://127.0.0.1:2".into(),
            operator_url: None,
            federation_url: None,
            metrics_url: None,
            pid: std::process::id(),
        };
        write_server_info(dir.path(), &ours).expect("write");
        assert_eq!(read_server_info(dir.path()).expect("read"), Some(ours));
        remove_server_info(dir.path());
        assert_eq!(read_server_info(dir.path()).expect("read"), None);
    }

    #[test]
    fn the_lock_is_exclusive_names_its_holder_and_dies_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = lock(dir.path()).expect("first lock");
        // flock locks belong to the open file, so a second open in this process conflicts as
        // another process would.
        let error = lock(dir.path()).expect_err("second lock");
        let expected = format!(
            "another maas serve (pid {}) uses data dir {}",
            std::process::id(),
            dir.path().display()
        );
        assert!(error.to_string().starts_with(&expected), "{error}");
        drop(held);
        let again = lock(dir.path()).expect("lock after release");
        drop(again);
        assert!(dir.path().join(LOCK_FILE).exists(), "the lock file is kept");
    }

    #[test]
    fn server_info_without_an_operator_url_shares_the_public_one() {
        let info: ServerInfo =
            serde_json::from_str(r#"{"url": "http://127.0.0.1:8008", "pid": 1}"#).expect("old");
        assert_eq!(info.operator_url(), "http://127.0.0.1:8008");
    }

    #[test]
    fn wildcard_addresses_become_loopback_urls() {
        let url = |s: &str| local_url(s.parse().expect("addr"));
        assert_eq!(url("0.0.0.0:8008"), "http://127.0.0.1:8008");
        assert_eq!(url("[::]:8008"), "http://[::1]:8008");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80");
        let https = local_url_with("https", "0.0.0.0:8448".parse().expect("addr"));
        assert_eq!(https, "https://127.0.0.1:8448");
    }
}
