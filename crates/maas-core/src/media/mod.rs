//! The content repository (spec: Client-Server API, "Content repository"): a tenant's uploads,
//! the other servers' media it fetches and keeps, and thumbnails of both. The bytes go to the
//! platform's blob store (`platform::blobs`); the tenant's database says what they are.

mod admin;
mod download;
pub mod preview;
mod previews;
mod remote;
pub mod thumbnail;
mod thumbnails;
mod upload;

pub use admin::{MediaDetails, MediaInfo, PurgedMedia};
pub use download::{Access, Content};
pub use upload::Upload;

use ruma::{OwnedMxcUri, ServerName};

use crate::platform::blobs::{BlobError, BlobStore};
use crate::store::MediaQuota;
use crate::{Error, Result, Tenant, secrets};

/// Characters of a media id we make: 24 alphanumerics are about 143 bits, unguessable.
const MEDIA_ID_LENGTH: usize = 24;

/// The content repository of one tenant.
pub struct Media<'t> {
    tenant: &'t Tenant,
}

impl Tenant {
    pub fn media(&self) -> Media<'_> {
        Media { tenant: self }
    }
}

impl<'t> Media<'t> {
    /// The largest upload this tenant accepts (`m.upload.size` of `/config`): the tenant's
    /// bound, never above the platform's.
    pub fn max_upload_bytes(&self) -> u64 {
        let platform = self.tenant.config().media.max_upload_bytes;
        self.tenant
            .settings()
            .media
            .max_upload_bytes
            .map_or(platform, |own| own.min(platform))
    }

    /// How long an upload's body may take to arrive.
    pub fn upload_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.tenant.config().media.upload_timeout_secs.max(1))
    }

    fn quota(&self) -> MediaQuota {
        let settings = self.tenant.settings().media;
        MediaQuota {
            tenant_bytes: settings.quota_bytes,
            user_bytes: settings.user_quota_bytes,
        }
    }

    fn blobs(&self) -> Result<&'t BlobStore> {
        self.tenant.blobs()
    }

    fn tenant_id(&self) -> String {
        self.tenant.id()
    }

    fn is_local(&self, server_name: &ServerName) -> bool {
        server_name == self.tenant.server_name()
    }

    fn mxc(&self, media_id: &str) -> OwnedMxcUri {
        OwnedMxcUri::from(format!("mxc://{}/{media_id}", self.tenant.server_name()))
    }
}

/// A `multipart/mixed` boundary: random, so no file's bytes can end a part early.
pub fn boundary() -> String {
    secrets::random_alphanumeric(32)
}

fn new_media_id() -> String {
    secrets::random_alphanumeric(MEDIA_ID_LENGTH)
}

/// Refuses a media id outside the spec's alphabet (`A-Za-z0-9_-`): ids name files and URLs, so
/// nothing else may pass (spec: "Security considerations" of the content repository).
pub(crate) fn check_media_id(media_id: &str) -> Result<()> {
    let valid = !media_id.is_empty()
        && media_id.len() <= 255
        && media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::NotFound("Unknown media".into()))
    }
}

impl From<BlobError> for Error {
    fn from(err: BlobError) -> Self {
        match err {
            BlobError::TooLarge { limit } => {
                Error::TooLarge(format!("The content is larger than {limit} bytes"))
            }
            BlobError::Body(e) if is_timeout(e.as_ref()) => {
                Error::RequestTimeout("The content did not arrive in time".into())
            }
            BlobError::Body(e) => Error::BadJson(format!("The content did not arrive whole: {e}")),
            BlobError::NotFound => Error::Internal("media bytes are missing".into()),
            BlobError::Io(e) => Error::Internal(format!("media store: {e}")),
        }
    }
}

/// Whether a body failed because its deadline passed: the HTTP edge says so with an
/// `io::ErrorKind::TimedOut` somewhere in the chain.
fn is_timeout(mut err: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        match err.source() {
            Some(source) => err = source,
            None => return false,
        }
    }
}
