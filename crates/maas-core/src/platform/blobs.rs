//! The platform's blob store: media bytes as files named by their SHA-256 under
//! `<data_dir>/media`. Each tenant's references are hard links in a directory of its own, so the
//! file system counts them: identical bytes are stored once however many tenants hold them, a
//! tenant's files go with its directory, and no tenant can tell whether another holds a file
//! (an upload is received, hashed and linked the same way either way).
//!
//! Layout: `tmp/` (uploads being received), `blobs/<ab>/<sha256>` (one name per distinct
//! content: only for finding duplicates) and `tenants/<tenant id>/<ab>/<sha256>` (the
//! references every read goes through).

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Boxed errors of a body stream.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// More bytes came than the limit allows; nothing was kept.
    #[error("the content is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The bytes stopped coming (the client went away, or a deadline passed).
    #[error("the content did not arrive whole: {0}")]
    Body(BodyError),
    #[error("no such blob")]
    NotFound,
    #[error("blob store: {0}")]
    Io(#[from] io::Error),
}

pub struct BlobStore {
    root: PathBuf,
}

/// Bytes received into a temporary file, hashed, not yet anyone's; removed when dropped unless
/// a tenant keeps them.
pub struct Received {
    temp: TempFile,
    pub sha256: String,
    pub size: u64,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl BlobStore {
    /// The store under `root`, created if new; uploads a crash interrupted are removed.
    pub fn open(root: &Path) -> io::Result<Self> {
        let store = Self {
            root: root.to_path_buf(),
        };
        std::fs::create_dir_all(store.root.join("blobs"))?;
        std::fs::create_dir_all(store.root.join("tenants"))?;
        let tmp = store.root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(store)
    }

    /// Receives `body` into a temporary file, hashing it on the way, and refuses it as soon as
    /// it passes `limit` bytes. Only one chunk is in memory at a time.
    pub async fn receive<S, E>(&self, body: S, limit: u64) -> Result<Received, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let temp = self.temp_file();
        let mut file = tokio::fs::File::create(&temp.0).await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Body(e.into()))?;
            size = size.saturating_add(chunk.len() as u64);
            if size > limit {
                return Err(BlobError::TooLarge { limit });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        // The bytes must be on disk before a tenant's database says they exist.
        file.sync_all().await?;
        Ok(Received {
            temp,
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }

    /// Receives bytes already in memory (thumbnails, fetched remote media).
    pub async fn receive_bytes(&self, bytes: Bytes) -> Result<Received, BlobError> {
        let limit = bytes.len() as u64;
        let body = futures_util::stream::iter([Ok::<_, io::Error>(bytes)]);
        self.receive(body, limit).await
    }

    fn temp_file(&self) -> TempFile {
        let name: String = rand::thread_rng()
            .sample_iter(rand::distributions::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        TempFile(self.root.join("tmp").join(name))
    }

    /// Makes received bytes the tenant's: links them into its directory, reusing the stored
    /// copy of identical bytes when there is one.
    pub async fn keep(&self, tenant_id: &str, received: Received) -> Result<(), BlobError> {
        let reference = self.reference(tenant_id, &received.sha256)?;
        let shared = self.shared(&received.sha256)?;
        let temp = received.temp.0.clone();
        tokio::task::spawn_blocking(move || link_reference(&temp, &shared, &reference))
            .await
            .map_err(|e| io::Error::other(format!("blob link task failed: {e}")))??;
        drop(received);
        Ok(())
    }

    /// The file of one of the tenant's blobs, for reading.
    pub fn path(&self, tenant_id: &str, sha256: &str) -> Result<PathBuf, BlobError> {
        self.reference(tenant_id, sha256)
    }

    pub async fn open_blob(
        &self,
        tenant_id: &str,
        sha256: &str,
    ) -> Result<tokio::fs::File, BlobError> {
        let path = self.reference(tenant_id, sha256)?;
        tokio::fs::File::open(&path).await.map_err(not_found)
    }

    /// Drops the tenant's reference to `sha256`, and the bytes once no tenant holds them.
    pub async fn release(&self, tenant_id: &str, sha256: &str) -> Result<(), BlobError> {
        let reference = self.reference(tenant_id, sha256)?;
        match tokio::fs::remove_file(&reference).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.sweep(sha256).await
    }

    /// Removes every reference of a tenant, and the bytes no other tenant holds.
    pub async fn remove_tenant(&self, tenant_id: &str) -> Result<(), BlobError> {
        let dir = self.tenant_dir(tenant_id)?;
        let names = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || tenant_blobs(&dir)
        })
        .await
        .map_err(|e| io::Error::other(format!("blob listing task failed: {e}")))??;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        for sha256 in names {
            self.sweep(&sha256).await?;
        }
        Ok(())
    }

    /// Removes the shared name of `sha256` when it is the file's last: no tenant refers to it.
    /// A tenant linking it at the same moment keeps its own link, and so its bytes; the race
    /// only costs the next identical upload its deduplication.
    async fn sweep(&self, sha256: &str) -> Result<(), BlobError> {
        use std::os::unix::fs::MetadataExt;
        let shared = self.shared(sha256)?;
        let metadata = match tokio::fs::metadata(&shared).await {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if metadata.nlink() <= 1 {
            match tokio::fs::remove_file(&shared).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn tenant_dir(&self, tenant_id: &str) -> Result<PathBuf, BlobError> {
        let safe = !tenant_id.is_empty()
            && tenant_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !safe {
            return Err(BlobError::NotFound);
        }
        Ok(self.root.join("tenants").join(tenant_id))
    }

    fn reference(&self, tenant_id: &str, sha256: &str) -> Result<PathBuf, BlobError> {
        let shard = shard(sha256)?;
        Ok(self.tenant_dir(tenant_id)?.join(shard).join(sha256))
    }

    fn shared(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        let shard = shard(sha256)?;
        Ok(self.root.join("blobs").join(shard).join(sha256))
    }
}

/// The directory level of a blob: its first two hex digits. Anything but a SHA-256 in lower-case
/// hex names no blob, so no path can be made of stored or imported names.
fn shard(sha256: &str) -> Result<&str, BlobError> {
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return Err(BlobError::NotFound);
    }
    Ok(&sha256[..2])
}

fn not_found(e: io::Error) -> BlobError {
    if e.kind() == ErrorKind::NotFound {
        BlobError::NotFound
    } else {
        BlobError::Io(e)
    }
}

/// Links `reference` to the stored copy of the bytes, storing `temp` as that copy when there is
/// none. Retried a few times: the shared name may be swept between the two links.
fn link_reference(temp: &Path, shared: &Path, reference: &Path) -> io::Result<()> {
    if reference.exists() {
        return Ok(());
    }
    for dir in [shared.parent(), reference.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir)?;
    }
    for _ in 0..3 {
        match std::fs::hard_link(shared, reference) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match std::fs::hard_link(temp, shared) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    // Swept every time: keep the bytes under the tenant alone.
    std::fs::hard_link(temp, reference).or_else(|e| match e.kind() {
        ErrorKind::AlreadyExists => Ok(()),
        _ => Err(e),
    })
}

/// The names of the blobs in a tenant's directory.
fn tenant_blobs(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let shards = match std::fs::read_dir(dir) {
        Ok(shards) => shards,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    for shard in shards {
        for entry in std::fs::read_dir(shard?.path())? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    impl BlobStore {
        /// Whether the tenant holds the bytes `sha256`.
        async fn holds(&self, tenant_id: &str, sha256: &str) -> bool {
            match self.reference(tenant_id, sha256) {
                Ok(path) => tokio::fs::try_exists(path).await.unwrap_or(false),
                Err(_) => false,
            }
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + use<> {
        let parts: Vec<_> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures_util::stream::iter(parts)
    }

    #[tokio::test]
    async fn identical_bytes_are_stored_once_and_freed_with_the_last_reference() {
        let dir = tempfile::tempdir().expect("dir");
        let store = BlobStore::open(dir.path()).expect("store");
        let a = store
            .receive(chunks(&[b"hello ", b"world"]), 100)
            .await
            .expect("a");
        let sha = a.sha256.clone();
        assert_eq!(a.size, 11);
        assert_eq!(sha, hex::encode(Sha256::digest(b"hello world")));
        store.keep("t1", a).await.expect("kept");
        let b = store
            .receive_bytes(Bytes::from_static(b"hello world"))
            .await
            .expect("b");
        store.keep("t2", b).await.expect("kept");
        let shared = store.shared(&sha).expect("path");
        assert_eq!(std::fs::metadata(&shared).expect("shared").nlink(), 3);
        assert!(store.holds("t1", &sha).await && store.holds("t2", &sha).await);
        // Nothing is left in tmp once kept.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))
                .expect("tmp")
                .count(),
            0
        );

        store.release("t1", &sha).await.expect("released");
        assert!(!store.holds("t1", &sha).await);
        let bytes = tokio::fs::read(store.path("t2", &sha).expect("path"))
            .await
            .expect("read");
        assert_eq!(bytes, b"hello world");
        store.remove_tenant("t2").await.expect("removed");
        assert!(!shared.exists(), "the last reference took the bytes along");
    }

    #[tokio::test]
    async fn bytes_over_the_limit_leave_nothing_behind() {
        let dir = tempfile::tempdir().expect("dir");
        let store = BlobStore::open(dir.path()).expect("store");
        let refused = store.receive(chunks(&[b"12345", b"678"]), 6).await;
        assert!(matches!(refused, Err(BlobError::TooLarge { limit: 6 })));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))
                .expect("tmp")
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn a_body_that_fails_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("dir");
        let store = BlobStore::open(dir.path()).expect("store");
        let body = futures_util::stream::iter([
            Ok(Bytes::from_static(b"part")),
            Err(io::Error::other("client went away")),
        ]);
        assert!(matches!(
            store.receive(body, 100).await,
            Err(BlobError::Body(_))
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))
                .expect("tmp")
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn names_that_are_not_hashes_reach_no_file() {
        let dir = tempfile::tempdir().expect("dir");
        let store = BlobStore::open(dir.path()).expect("store");
        for bad in ["../../etc/passwd", "AB", &"A".repeat(64), ""] {
            assert!(
                matches!(store.path("t", bad), Err(BlobError::NotFound)),
                "{bad}"
            );
        }
        let sha = "a".repeat(64);
        assert!(matches!(store.path("../t", &sha), Err(BlobError::NotFound)));
        assert!(matches!(
            store.open_blob("t", &sha).await,
            Err(BlobError::NotFound)
        ));
    }
}
