//! Other servers' media (spec: Server-Server API, "Content repository"): fetched for our users
//! with `GET /_matrix/federation/v1/media/download/{mediaId}`, signed by the tenant, and kept
//! in the tenant's cache so the next download is local.

use std::time::Duration;

use bytes::Bytes;
use ruma::ServerName;
use ruma::api::federation::authenticated_media::{FileOrLocation, get_content};

use super::Media;
use crate::store::RemoteMediaRecord;
use crate::{Error, Result, now_ms};

/// How long the origin may take to have the bytes (it may wait for an upload of its own).
const REMOTE_WAIT: Duration = Duration::from_secs(20);

impl Media<'_> {
    /// Fetches `mxc://{origin}/{media_id}` and keeps it in the tenant's cache.
    pub(super) async fn fetch_remote(
        &self,
        origin: &ServerName,
        media_id: &str,
    ) -> Result<RemoteMediaRecord> {
        let mut request = get_content::v1::Request::new(media_id.to_owned());
        request.timeout_ms = REMOTE_WAIT;
        let response = self
            .tenant
            .federation()
            .send_signed(self.tenant, origin, request)
            .await?;
        let content = match response.content {
            FileOrLocation::File(content) => content,
            // A redirect would have us fetch an arbitrary URL; the origin can serve the bytes.
            _ => {
                return Err(Error::RemoteUnavailable(format!(
                    "{origin} redirected its media elsewhere, which is not followed"
                )));
            }
        };
        let limit = self.tenant.config().media.max_remote_bytes;
        if content.file.len() as u64 > limit {
            return Err(Error::RemoteTooLarge(format!(
                "The remote media is larger than {limit} bytes"
            )));
        }
        let received = self
            .blobs()?
            .receive_bytes(Bytes::from(content.file))
            .await?;
        let now = now_ms();
        let record = RemoteMediaRecord {
            origin: origin.to_string(),
            media_id: media_id.to_owned(),
            content_type: content.content_type,
            file_name: content.content_disposition.and_then(|d| d.filename),
            size: received.size,
            sha256: received.sha256.clone(),
            fetched_ts: now,
            last_access_ts: now,
            quarantined: false,
        };
        let store = self.tenant.store();
        self.keep_received(received, || store.insert_remote_media(&record))
            .await?;
        tracing::debug!(%origin, media_id, size = record.size, "remote media cached");
        Ok(record)
    }
}
