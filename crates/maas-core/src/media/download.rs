//! Downloads (spec: `GET /_matrix/client/v1/media/download/…` and the deprecated
//! `/_matrix/media/v3/download/…`): the tenant's own media, waiting a while for bytes still to
//! come, and other servers' media, fetched once and kept.

use std::time::Duration;

use ruma::ServerName;
use tokio::time::Instant;

use super::{Media, check_media_id};
use crate::store::{MediaRecord, RemoteMediaRecord};
use crate::{Error, Result, now_ms};

/// The longest a download waits for bytes still to come, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A download is recorded as an access at most this often, so reading media isn't writing.
const ACCESS_GRANULARITY_MS: i64 = 10 * 60 * 1000;

/// How a download was asked for.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// Through the authenticated endpoints (or federation); the deprecated unauthenticated
    /// ones see only media from before the tenant's freeze.
    pub authenticated: bool,
    /// Whether other servers' media may be fetched (`allow_remote`).
    pub allow_remote: bool,
    /// How long to wait for bytes still to come (`timeout_ms`).
    pub wait: Duration,
}

/// Bytes to serve and what they are.
#[derive(Debug)]
pub struct Content {
    pub file: tokio::fs::File,
    pub size: u64,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
}

/// Media found for serving, local or cached: where its bytes are and what they are.
pub(super) struct Source {
    pub origin: String,
    pub media_id: String,
    pub sha256: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    /// Uploaded, or fetched into the cache: what the freeze goes by.
    pub stored_ts: i64,
    pub remote: bool,
}

impl Media<'_> {
    /// The bytes of `mxc://{server_name}/{media_id}`.
    pub async fn download(
        &self,
        server_name: &ServerName,
        media_id: &str,
        access: Access,
    ) -> Result<Content> {
        let source = self.source(server_name, media_id, access).await?;
        self.content(&source).await
    }

    /// Finds media for serving: local (waiting for pending bytes) or remote (fetched when not
    /// cached), refusing what is quarantined or frozen for this kind of access.
    pub(super) async fn source(
        &self,
        server_name: &ServerName,
        media_id: &str,
        access: Access,
    ) -> Result<Source> {
        check_media_id(media_id)?;
        let source = if self.is_local(server_name) {
            self.local_source(media_id, access.wait).await?
        } else if access.allow_remote {
            self.remote_source(server_name, media_id).await?
        } else {
            return Err(not_found());
        };
        if !access.authenticated && self.frozen(source.stored_ts) {
            return Err(not_found());
        }
        Ok(source)
    }

    pub(super) async fn content(&self, source: &Source) -> Result<Content> {
        let file = self
            .blobs()?
            .open_blob(&self.tenant_id(), &source.sha256)
            .await?;
        Ok(Content {
            file,
            size: source.size,
            content_type: source.content_type.clone(),
            file_name: source.file_name.clone(),
        })
    }

    /// Whether the deprecated endpoints may no longer serve media stored at `stored_ts`.
    fn frozen(&self, stored_ts: i64) -> bool {
        self.tenant
            .settings()
            .media
            .unauthenticated_frozen_ts
            .is_some_and(|frozen| stored_ts >= frozen)
    }

    /// Local media, its bytes waited for up to `wait` when the id was created and they have
    /// not come yet (`504 M_NOT_YET_UPLOADED` after that).
    async fn local_source(&self, media_id: &str, wait: Duration) -> Result<Source> {
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        loop {
            // Registered before reading, so an upload finishing in between still wakes us.
            let uploaded = self.tenant.media_uploaded().notified();
            let record = self.tenant.store().media(media_id).await?;
            let Some(record) = record.filter(|r| !r.quarantined) else {
                return Err(not_found());
            };
            if let Some(source) = self.local_ready(&record).await? {
                return Ok(source);
            }
            if record.expires_ts.is_some_and(|expires| expires < now_ms()) {
                return Err(not_found());
            }
            if tokio::time::timeout_at(deadline, uploaded).await.is_err() {
                return Err(Error::NotYetUploaded);
            }
        }
    }

    async fn local_ready(&self, record: &MediaRecord) -> Result<Option<Source>> {
        let Some(sha256) = &record.sha256 else {
            return Ok(None);
        };
        let now = now_ms();
        if now - record.last_access_ts > ACCESS_GRANULARITY_MS {
            self.tenant
                .store()
                .touch_media(&record.media_id, now)
                .await?;
        }
        Ok(Some(Source {
            origin: self.tenant.server_name().to_string(),
            media_id: record.media_id.clone(),
            sha256: sha256.clone(),
            size: record.size,
            content_type: record.content_type.clone(),
            file_name: record.file_name.clone(),
            stored_ts: record.created_ts,
            remote: false,
        }))
    }

    async fn remote_source(&self, origin: &ServerName, media_id: &str) -> Result<Source> {
        let cached = self
            .tenant
            .store()
            .remote_media(origin.as_str(), media_id)
            .await?;
        let record = match cached {
            Some(record) if record.quarantined => return Err(not_found()),
            Some(record) => {
                self.touch_remote(&record).await?;
                record
            }
            None => self.fetch_remote(origin, media_id).await?,
        };
        Ok(Source {
            origin: record.origin,
            media_id: record.media_id,
            sha256: record.sha256,
            size: record.size,
            content_type: record.content_type,
            file_name: record.file_name,
            stored_ts: record.fetched_ts,
            remote: true,
        })
    }

    async fn touch_remote(&self, record: &RemoteMediaRecord) -> Result<()> {
        let now = now_ms();
        if now - record.last_access_ts > ACCESS_GRANULARITY_MS {
            self.tenant
                .store()
                .touch_remote_media(&record.origin, &record.media_id, now)
                .await?;
        }
        Ok(())
    }

    /// `GET /_matrix/federation/v1/media/download/{mediaId}`: this tenant's own media for
    /// another server (authenticated by its signature, so no freeze applies).
    pub async fn for_federation(&self, media_id: &str, wait: Duration) -> Result<Content> {
        let access = Access {
            authenticated: true,
            allow_remote: false,
            wait,
        };
        let server_name = self.tenant.server_name().to_owned();
        self.download(&server_name, media_id, access).await
    }
}

pub(super) fn not_found() -> Error {
    Error::NotFound("Unknown media".into())
}
