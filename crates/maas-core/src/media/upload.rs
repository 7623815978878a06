//! Uploads (spec: `POST /_matrix/media/v3/upload`, and MSC2246's `POST /_matrix/media/v1/create`
//! with `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`): the bytes stream into the blob
//! store, then the tenant records them within its quotas, or keeps nothing.

use bytes::Bytes;
use futures_util::Stream;
use ruma::{OwnedMxcUri, ServerName, UserId};

use crate::accounts::AuthedUser;

use super::{Media, check_media_id, new_media_id};
use crate::platform::blobs::{BodyError, Received};
use crate::store::{MediaInsert, MediaRecord, PendingUpload, UploadedBytes};
use crate::{Error, Result, now_ms};

/// Retry hint when a user holds as many pending uploads as allowed: about when a client that
/// keeps uploading will have finished one.
const PENDING_RETRY_MS: u64 = 10_000;

/// What the client says of the bytes it sends (`Content-Type`, `filename`).
#[derive(Clone, Debug, Default)]
pub struct Upload<'a> {
    pub content_type: Option<&'a str>,
    pub file_name: Option<&'a str>,
}

impl Media<'_> {
    /// `POST /upload`: stores the body as new media of `uploader`.
    pub async fn upload<S, E>(
        &self,
        uploader: &AuthedUser,
        upload: Upload<'_>,
        body: S,
    ) -> Result<OwnedMxcUri>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        self.take_upload_turn(uploader)?;
        self.tenant.check_storage_quota().await?;
        let uploader = &uploader.user_id;
        let received = self.blobs()?.receive(body, self.max_upload_bytes()).await?;
        let record = stored_record(uploader, &upload, &received);
        let quota = self.quota();
        let store = self.tenant.store();
        let inserted = self
            .keep_received(received, || store.insert_media(&record, quota))
            .await?;
        quota_outcome(inserted, self)?;
        Ok(self.mxc(&record.media_id))
    }

    /// `POST /create`: a media id whose bytes come later, within `media.pending_upload_secs`;
    /// returns it with the time they must arrive by.
    pub async fn create(&self, uploader: &AuthedUser) -> Result<(OwnedMxcUri, i64)> {
        self.take_upload_turn(uploader)?;
        let uploader = &uploader.user_id;
        let config = &self.tenant.config().media;
        let now = now_ms();
        let pending = self
            .tenant
            .store()
            .count_pending_media(uploader.as_str(), now)
            .await?;
        if pending >= config.max_pending_uploads {
            return Err(Error::LimitExceeded {
                retry_after_ms: PENDING_RETRY_MS,
            });
        }
        let expires = now.saturating_add(
            i64::try_from(config.pending_upload_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        );
        let record = MediaRecord {
            media_id: new_media_id(),
            uploader: uploader.to_string(),
            content_type: None,
            file_name: None,
            size: 0,
            sha256: None,
            created_ts: now,
            last_access_ts: now,
            expires_ts: Some(expires),
            quarantined: false,
        };
        self.tenant.store().insert_pending_media(&record).await?;
        Ok((self.mxc(&record.media_id), expires))
    }

    /// `PUT /upload/{serverName}/{mediaId}`: the bytes of a media id made with `create`.
    pub async fn upload_pending<S, E>(
        &self,
        uploader: &AuthedUser,
        server_name: &ServerName,
        media_id: &str,
        upload: Upload<'_>,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        self.refuse_guest(uploader)?;
        let uploader = &uploader.user_id;
        if !self.is_local(server_name) {
            return Err(unknown_pending());
        }
        check_media_id(media_id)?;
        // Told before the body is read: a wrong id costs no upload.
        self.check_pending(uploader, media_id).await?;
        self.tenant.check_storage_quota().await?;
        let received = self.blobs()?.receive(body, self.max_upload_bytes()).await?;
        let bytes = UploadedBytes {
            content_type: upload.content_type.map(str::to_owned),
            file_name: upload.file_name.map(str::to_owned),
            size: received.size,
            sha256: received.sha256.clone(),
        };
        let quota = self.quota();
        let store = self.tenant.store();
        let user = uploader.as_str();
        let outcome = self
            .keep_received(received, || {
                store.complete_pending_media(media_id, user, &bytes, quota, now_ms())
            })
            .await?;
        match outcome {
            PendingUpload::Stored => Ok(()),
            PendingUpload::TenantQuotaExceeded => {
                quota_outcome(MediaInsert::TenantQuotaExceeded, self)
            }
            PendingUpload::UserQuotaExceeded => quota_outcome(MediaInsert::UserQuotaExceeded, self),
            PendingUpload::NotFound => Err(unknown_pending()),
            PendingUpload::NotUploader => Err(not_uploader()),
            PendingUpload::AlreadyUploaded => Err(Error::CannotOverwriteMedia),
        }
    }

    async fn check_pending(&self, uploader: &UserId, media_id: &str) -> Result<()> {
        let Some(record) = self.tenant.store().media(media_id).await? else {
            return Err(unknown_pending());
        };
        if record.uploader != uploader.as_str() {
            return Err(not_uploader());
        }
        if record.sha256.is_some() {
            return Err(Error::CannotOverwriteMedia);
        }
        if record.expires_ts.is_some_and(|expires| expires < now_ms()) {
            return Err(unknown_pending());
        }
        Ok(())
    }

    /// Refuses guests (they may read media, not store it, as in Synapse), then takes a turn
    /// of the user's upload rate.
    pub(super) fn take_upload_turn(&self, uploader: &AuthedUser) -> Result<()> {
        self.refuse_guest(uploader)?;
        let uploader = &uploader.user_id;
        let key = format!("{}/upload/{uploader}", self.tenant.id());
        let bucket = self.tenant.config().rate_limits.upload_per_user;
        self.tenant.limiter().take(&key, bucket)
    }

    fn refuse_guest(&self, user: &AuthedUser) -> Result<()> {
        if user.guest {
            return Err(Error::GuestAccessForbidden);
        }
        Ok(())
    }

    /// Links received bytes into the tenant, then has `record` say what they are; when the
    /// record is refused (a quota, an id taken), the bytes go again unless another record
    /// names them. Bytes come first so that no reader ever finds a record without its bytes.
    pub(super) async fn keep_received<T, F, Fut>(&self, received: Received, record: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::store::Result<T>>,
        T: Stored,
    {
        let sha256 = received.sha256.clone();
        let tenant_id = self.tenant_id();
        let blobs = self.blobs()?;
        let _references = self.tenant.media_references().lock().await;
        blobs.keep(&tenant_id, received).await?;
        let outcome = record().await;
        let kept = matches!(&outcome, Ok(o) if o.stored());
        if !kept {
            self.release_unreferenced(&sha256).await?;
        } else {
            self.tenant.media_uploaded().notify_waiters();
        }
        outcome.map_err(Error::from)
    }

    /// Releases the tenant's reference to `sha256` unless a record still names it; called
    /// with `media_references` held.
    pub(super) async fn release_unreferenced(&self, sha256: &str) -> Result<()> {
        if self.tenant.store().count_blob_references(sha256).await? == 0 {
            self.blobs()?.release(&self.tenant_id(), sha256).await?;
        }
        Ok(())
    }
}

/// The record of a whole upload of `received`, made now under a new media id.
pub(super) fn stored_record(
    uploader: &UserId,
    upload: &Upload<'_>,
    received: &Received,
) -> MediaRecord {
    let now = now_ms();
    MediaRecord {
        media_id: new_media_id(),
        uploader: uploader.to_string(),
        content_type: upload.content_type.map(str::to_owned),
        file_name: upload.file_name.map(str::to_owned),
        size: received.size,
        sha256: Some(received.sha256.clone()),
        created_ts: now,
        last_access_ts: now,
        expires_ts: None,
        quarantined: false,
    }
}

/// Whether a store answer means the record was kept.
pub(super) trait Stored {
    fn stored(&self) -> bool;
}

impl Stored for MediaInsert {
    fn stored(&self) -> bool {
        *self == MediaInsert::Stored
    }
}

impl Stored for PendingUpload {
    fn stored(&self) -> bool {
        *self == PendingUpload::Stored
    }
}

impl Stored for () {
    fn stored(&self) -> bool {
        true
    }
}

impl Stored for bool {
    fn stored(&self) -> bool {
        *self
    }
}

/// The spec's answers to a quota: the homeserver's own storage is a resource limit (with
/// where to ask for more), a user's share is `403 M_FORBIDDEN` as the upload endpoints say.
fn quota_outcome(inserted: MediaInsert, media: &Media<'_>) -> Result<()> {
    match inserted {
        MediaInsert::Stored => Ok(()),
        MediaInsert::TenantQuotaExceeded => Err(media
            .tenant
            .resource_limit("This homeserver has used all of its media storage")),
        MediaInsert::UserQuotaExceeded => Err(Error::Forbidden(
            "You have used all of your media storage quota".into(),
        )),
    }
}

fn unknown_pending() -> Error {
    Error::NotFound("Unknown or expired media id".into())
}

fn not_uploader() -> Error {
    Error::Forbidden("This media id was created by another user".into())
}
