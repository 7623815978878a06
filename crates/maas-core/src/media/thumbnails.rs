//! Thumbnails of a tenant's media, local or cached (spec: "Thumbnails"): made on the first
//! request at the spec's suggested size nearest above the one asked for, kept like any media,
//! and served from then on. Making them ([`super::thumbnail`]) runs off the async threads.

use ruma::ServerName;

use super::Media;
use super::download::{Access, Content, Source};
use super::thumbnail::{self, Limits, Outcome, Request, ThumbnailError};
use crate::store::ThumbnailRecord;
use crate::{Error, Result};

impl Media<'_> {
    /// A thumbnail of `mxc://{server_name}/{media_id}` at least as large as `request` asks
    /// (or the original, when it is smaller than that).
    pub async fn thumbnail(
        &self,
        server_name: &ServerName,
        media_id: &str,
        request: Request,
        access: Access,
    ) -> Result<Content> {
        let source = self.source(server_name, media_id, access).await?;
        let (width, height) = thumbnail::standard_size(&request);
        let sized = Request {
            width,
            height,
            ..request
        };
        let kept = self
            .kept_thumbnail(&source.origin, &source.media_id, &sized)
            .await?;
        let record = match kept {
            Some(record) => record,
            None => self.make_thumbnail(&source, sized).await?,
        };
        let file = self
            .blobs()?
            .open_blob(&self.tenant_id(), &record.sha256)
            .await?;
        Ok(Content {
            file,
            size: record.size,
            content_type: Some(record.content_type),
            file_name: None,
        })
    }

    async fn kept_thumbnail(
        &self,
        origin: &str,
        media_id: &str,
        request: &Request,
    ) -> Result<Option<ThumbnailRecord>> {
        Ok(self
            .tenant
            .store()
            .thumbnail(
                origin,
                media_id,
                request.width,
                request.height,
                request.method.as_str(),
                request.animated,
            )
            .await?)
    }

    /// Makes and keeps the thumbnail of `source` at `request`'s (standard) size. When the
    /// original is already small enough, the record names the original's bytes.
    async fn make_thumbnail(&self, source: &Source, request: Request) -> Result<ThumbnailRecord> {
        let path = self.blobs()?.path(&self.tenant_id(), &source.sha256)?;
        let config = &self.tenant.config().media;
        let limits = Limits {
            max_pixels: config.max_thumbnail_pixels,
            max_frames: config.max_thumbnail_frames,
            ..Limits::default()
        };
        let content_type = source.content_type.clone();
        let turn = self.tenant.thumbnail_turn().await?;
        // Requests for the same thumbnail queue behind the one making it: they serve its.
        if let Some(made) = self
            .kept_thumbnail(&source.origin, &source.media_id, &request)
            .await?
        {
            return Ok(made);
        }
        let made = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let bytes = std::fs::read(&path)?;
            Ok::<_, std::io::Error>(thumbnail::make(
                &bytes,
                content_type.as_deref(),
                &request,
                &limits,
            ))
        })
        .await
        .map_err(|e| Error::Internal(format!("thumbnail task failed: {e}")))?
        .map_err(|e| Error::Internal(format!("reading media for a thumbnail: {e}")))?;
        let mut record = ThumbnailRecord {
            origin: source.origin.clone(),
            media_id: source.media_id.clone(),
            width: request.width,
            height: request.height,
            method: request.method.as_str().to_owned(),
            animated: request.animated,
            content_type: source
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: source.size,
            sha256: source.sha256.clone(),
        };
        let thumbnail = match made.map_err(|e| refusal(e, source.remote))? {
            Outcome::Original => {
                self.tenant.store().insert_thumbnail(&record).await?;
                return Ok(record);
            }
            Outcome::Thumbnail(thumbnail) => thumbnail,
        };
        let received = self
            .blobs()?
            .receive_bytes(bytes::Bytes::from(thumbnail.bytes))
            .await?;
        record.content_type = thumbnail.content_type.to_owned();
        record.size = received.size;
        record.sha256 = received.sha256.clone();
        let store = self.tenant.store();
        let inserted = self
            .keep_received(received, || store.insert_thumbnail(&record))
            .await?;
        if inserted {
            return Ok(record);
        }
        // Made at the same time by another request: serve the one that was kept.
        self.kept_thumbnail(&record.origin, &record.media_id, &request)
            .await?
            .ok_or_else(|| Error::Internal("a kept thumbnail went missing".into()))
    }
}

/// The spec's answers for media that can't be thumbnailed: `400 M_UNKNOWN` for what isn't an
/// image we read, `413 M_TOO_LARGE` for an image too large (`502` for another server's).
fn refusal(error: ThumbnailError, remote: bool) -> Error {
    match error {
        ThumbnailError::TooLarge { width, height } => {
            let message = format!("The image is too large to thumbnail ({width}x{height})");
            if remote {
                Error::RemoteTooLarge(message)
            } else {
                Error::TooLarge(message)
            }
        }
        ThumbnailError::Unsupported | ThumbnailError::Decode(_) => {
            Error::Unknown("Cannot generate a thumbnail of this media".into())
        }
    }
}
