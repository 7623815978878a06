//! The TLS certificates of the federation listener: a tenant's own (file paths in its
//! settings) and the platform's default (`federation.tls_certificate`). Reads a PEM chain and
//! its private key, checks that they belong together, and caches them, reading them again when
//! their files change, so a renewed certificate is served without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};

use crate::config::FederationConfig;
use crate::store::TenantSettings;
use crate::{Error, Result};

/// How long a cached certificate is served before its files are looked at again: an operator
/// replacing them waits at most this long, and a handshake costs no file system access in
/// between.
pub const RECHECK: Duration = Duration::from_secs(2);

/// A cached certificate unused this long is forgotten (its tenant was deleted or changed
/// files), so the cache holds what handshakes ask for, not every certificate ever seen.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// A PEM certificate chain file (leaf first) and the PEM file of its private key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertificateFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl CertificateFiles {
    /// The tenant's own certificate, when its settings name one.
    pub fn of_tenant(settings: &TenantSettings) -> Option<CertificateFiles> {
        let (certificate, key) = (
            settings.tls_certificate.as_ref()?,
            settings.tls_key.as_ref()?,
        );
        Some(CertificateFiles {
            certificate: PathBuf::from(certificate),
            key: PathBuf::from(key),
        })
    }

    /// The platform's default certificate (`federation.tls_certificate` and `tls_key`), when
    /// both are set.
    pub fn platform_default(config: &FederationConfig) -> Option<CertificateFiles> {
        Some(CertificateFiles {
            certificate: config.tls_certificate.clone()?,
            key: config.tls_key.clone()?,
        })
    }

    /// Loads the platform's default certificate, if it has one: a start with a broken one
    /// would fail every handshake that names no tenant. The refusal names the configuration
    /// key and the file.
    pub fn check_platform_default(config: &FederationConfig) -> std::result::Result<(), String> {
        match Self::platform_default(config) {
            // Core names the tenant setting (`tls_key /path: …`); here it is configuration.
            Some(files) => files
                .load()
                .map(|_| ())
                .map_err(|e| format!("federation.{e}")),
            None => Ok(()),
        }
    }

    /// Reads both files and checks that they hold a certificate chain and the private key of
    /// its first certificate. A refusal is `InvalidParam` naming the setting and the file
    /// (`tls_certificate /path: …`); it never quotes the files' contents.
    pub fn load(&self) -> Result<CertifiedKey> {
        let chain = read_chain(&self.certificate)?;
        let key = read_key(&self.key)?;
        let provider = aws_lc_rs::default_provider();
        let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
            invalid(
                "tls_key",
                &self.key,
                &format!("not a usable private key ({e})"),
            )
        })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            // A key type whose public half the provider can't derive: nothing to compare.
            Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
            Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                Err(Error::InvalidParam(format!(
                    "tls_key {} is not the private key of the certificate in {}",
                    self.key.display(),
                    self.certificate.display()
                )))
            }
            Err(e) => Err(invalid(
                "tls_certificate",
                &self.certificate,
                &format!("not a usable certificate ({e})"),
            )),
        }
    }
}

fn invalid(setting: &str, path: &Path, why: &str) -> Error {
    Error::InvalidParam(format!("{setting} {}: {why}", path.display()))
}

fn read(setting: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| invalid(setting, path, &format!("cannot read it ({e})")))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read("tls_certificate", path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid("tls_certificate", path, &format!("not PEM ({e})")))?;
    if chain.is_empty() {
        return Err(invalid("tls_certificate", path, "holds no PEM certificate"));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read("tls_key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        invalid(
            "tls_key",
            path,
            "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })
}

/// What an operator's change asks of a tenant's certificate: `None` leaves it, `Some(None)`
/// clears it, `Some(Some(files))` sets it. Both paths change together, and are absolute: a
/// relative one would be read from the server's working directory, which a restart may change.
pub fn requested(
    certificate: &Option<Option<String>>,
    key: &Option<Option<String>>,
) -> Result<Option<Option<CertificateFiles>>> {
    let files = match (certificate, key) {
        (None, None) => return Ok(None),
        (Some(None), Some(None)) => return Ok(Some(None)),
        (Some(Some(certificate)), Some(Some(key))) => CertificateFiles {
            certificate: PathBuf::from(certificate),
            key: PathBuf::from(key),
        },
        _ => {
            return Err(Error::InvalidParam(
                "tls_certificate and tls_key are set together, or cleared together (both null)"
                    .into(),
            ));
        }
    };
    for (setting, path) in [
        ("tls_certificate", &files.certificate),
        ("tls_key", &files.key),
    ] {
        if !path.is_absolute() {
            return Err(invalid(setting, path, "must be an absolute path"));
        }
    }
    Ok(Some(Some(files)))
}

/// Loads `files` off the runtime's workers, as a check before they are stored.
pub async fn verify(files: CertificateFiles) -> Result<()> {
    tokio::task::spawn_blocking(move || files.load().map(drop))
        .await
        .map_err(|e| Error::Internal(format!("certificate check failed: {e}")))?
}

/// What tells that a file was replaced or rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    /// A replacement by rename is a new inode, even within the clock's granularity.
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// The stamps of both files of a pair; `None` for a file that can't be looked at.
type Stamps = (Option<FileStamp>, Option<FileStamp>);

fn stamps(files: &CertificateFiles) -> Stamps {
    (FileStamp::of(&files.certificate), FileStamp::of(&files.key))
}

struct Entry {
    /// The last pair that loaded; kept while a replacement is incomplete or broken.
    key: Option<Arc<CertifiedKey>>,
    /// The files as they were when last read, whether that worked or not.
    stamps: Stamps,
    checked: Instant,
    used: Instant,
}

/// Parsed certificates by their files, read again when the files change (looked at no more
/// than every `recheck`). One per listener; shared by its handshakes.
pub struct CertificateCache {
    recheck: Duration,
    entries: Mutex<HashMap<CertificateFiles, Entry>>,
}

impl CertificateCache {
    pub fn new(recheck: Duration) -> Self {
        Self {
            recheck,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The certificate of `files`, or `None` when they never loaded. Files that changed are
    /// read again; while the new ones don't load (a key not yet replaced along with its
    /// certificate), the last good pair is served.
    pub fn get(&self, files: &CertificateFiles) -> Option<Arc<CertifiedKey>> {
        let now = Instant::now();
        let cached = {
            let mut entries = self.entries.lock();
            match entries.get_mut(files) {
                Some(entry) if now.duration_since(entry.checked) < self.recheck => {
                    entry.used = now;
                    return entry.key.clone();
                }
                Some(entry) => Some((entry.stamps.clone(), entry.key.clone())),
                None => None,
            }
        };
        // The file system is looked at without the lock held: other handshakes carry on.
        let stamps = stamps(files);
        let key = match cached {
            Some((before, key)) if before == stamps => key,
            Some((_, previous)) => reload(files, previous),
            None => reload(files, None),
        };
        let mut entries = self.entries.lock();
        if !entries.contains_key(files) {
            entries.retain(|_, entry| now.duration_since(entry.used) < FORGET_AFTER);
        }
        let entry = Entry {
            key: key.clone(),
            stamps,
            checked: now,
            used: now,
        };
        entries.insert(files.clone(), entry);
        key
    }
}

/// Reads `files` again; when that fails, says so once (the stamps keep it from being tried
/// again until the files change) and keeps `previous`.
fn reload(
    files: &CertificateFiles,
    previous: Option<Arc<CertifiedKey>>,
) -> Option<Arc<CertifiedKey>> {
    match files.load() {
        Ok(key) => {
            if previous.is_some() {
                let certificate = files.certificate.display();
                tracing::info!(%certificate, "TLS certificate reloaded");
            }
            Some(Arc::new(key))
        }
        Err(error) => {
            let kept = previous.is_some();
            tracing::warn!(
                certificate = %files.certificate.display(),
                %error,
                keeps_previous = kept,
                "cannot load a TLS certificate"
            );
            previous
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    /// A self-signed certificate for `name` and its key, as PEM.
    fn pem_pair(name: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    fn write_pair(dir: &Path, stem: &str, (cert, key): &(String, String)) -> CertificateFiles {
        let files = CertificateFiles {
            certificate: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.certificate, cert).expect("write certificate");
        std::fs::write(&files.key, key).expect("write key");
        files
    }

    /// Replaces a file as operators and ACME clients do: a new file renamed into place.
    fn replace(path: &Path, contents: &str) {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, contents).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.end_entity_cert().expect("leaf").to_vec()
    }

    fn message(result: Result<CertifiedKey>) -> String {
        match result {
            Err(Error::InvalidParam(message)) => message,
            Err(other) => panic!("not InvalidParam: {other:?}"),
            Ok(_) => panic!("loaded"),
        }
    }

    #[test]
    fn a_matching_pair_loads_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = write_pair(dir.path(), "a", &pem_pair("a.test"));
        assert!(good.load().is_ok());

        let missing = CertificateFiles {
            certificate: dir.path().join("nope.crt"),
            key: good.key.clone(),
        };
        let error = message(missing.load());
        assert!(
            error.starts_with("tls_certificate ") && error.contains("nope.crt"),
            "{error}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("write");
        let error = message(
            CertificateFiles {
                certificate: garbage.clone(),
                key: good.key.clone(),
            }
            .load(),
        );
        assert!(
            error.contains("garbage.pem") && error.contains("no PEM certificate"),
            "{error}"
        );
        let error = message(
            CertificateFiles {
                certificate: good.certificate.clone(),
                key: garbage,
            }
            .load(),
        );
        assert!(
            error.starts_with("tls_key ") && error.contains("garbage.pem"),
            "{error}"
        );

        // Another certificate's key.
        let other = write_pair(dir.path(), "b", &pem_pair("b.test"));
        let error = message(
            CertificateFiles {
                certificate: good.certificate.clone(),
                key: other.key.clone(),
            }
            .load(),
        );
        assert!(error.contains("is not the private key"), "{error}");
        assert!(
            error.contains("b.key") && error.contains("a.crt"),
            "{error}"
        );
        // The refusal names files, never their contents.
        assert!(!error.contains("BEGIN"), "{error}");
    }

    #[test]
    fn both_paths_change_together_and_are_absolute() {
        let set = |c: &str, k: &str| (Some(Some(c.to_owned())), Some(Some(k.to_owned())));
        assert_eq!(requested(&None, &None).expect("nothing"), None);
        assert_eq!(
            requested(&Some(None), &Some(None)).expect("cleared"),
            Some(None)
        );
        let (c, k) = set("/etc/a.crt", "/etc/a.key");
        let files = requested(&c, &k)
            .expect("set")
            .expect("change")
            .expect("files");
        assert_eq!(files.key, PathBuf::from("/etc/a.key"));
        for (c, k) in [
            (Some(Some("/etc/a.crt".to_owned())), None),
            (None, Some(Some("/etc/a.key".to_owned()))),
            (Some(Some("/etc/a.crt".to_owned())), Some(None)),
            (Some(None), None),
        ] {
            assert!(
                matches!(requested(&c, &k), Err(Error::InvalidParam(_))),
                "{c:?} {k:?}"
            );
        }
        let (c, k) = set("a.crt", "/etc/a.key");
        let error = requested(&c, &k).expect_err("relative");
        assert!(error.to_string().contains("a.crt"), "{error}");
    }

    #[test]
    fn the_cache_reloads_replaced_files_and_keeps_the_last_good_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = pem_pair("a.test");
        let files = write_pair(dir.path(), "a", &first);
        let cache = CertificateCache::new(Duration::ZERO);
        let served = cache.get(&files).expect("loaded");

        // The certificate replaced, its key not yet: the old pair is served meanwhile.
        let second = pem_pair("a.test");
        replace(&files.certificate, &second.0);
        let meanwhile = cache.get(&files).expect("kept");
        assert_eq!(leaf(&meanwhile), leaf(&served));
        replace(&files.key, &second.1);
        let renewed = cache.get(&files).expect("renewed");
        assert_ne!(leaf(&renewed), leaf(&served));

        // Files that never loaded give nothing.
        let missing = CertificateFiles {
            certificate: dir.path().join("x.crt"),
            key: dir.path().join("x.key"),
        };
        assert!(cache.get(&missing).is_none());
        assert!(cache.get(&missing).is_none());
    }

    #[test]
    fn the_cache_looks_at_files_only_after_its_recheck_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_pair(dir.path(), "a", &pem_pair("a.test"));
        let cache = CertificateCache::new(Duration::from_secs(3600));
        let served = cache.get(&files).expect("loaded");
        let next = pem_pair("a.test");
        replace(&files.certificate, &next.0);
        replace(&files.key, &next.1);
        assert_eq!(leaf(&cache.get(&files).expect("cached")), leaf(&served));
    }
}
