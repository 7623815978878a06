//! What a tenant keeps about media (spec: Client-Server API, "Content repository"): the
//! metadata of its own uploads, of other servers' media it cached, and of thumbnails. The bytes
//! themselves live in the platform's blob store, named by their SHA-256; these records are the
//! tenant's references to them.

use async_trait::async_trait;

use super::Result;

/// One piece of media uploaded to this tenant (`mxc://<server name>/<media_id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRecord {
    pub media_id: String,
    /// The user who uploaded it (or created its id, for an upload still to come).
    pub uploader: String,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    /// Bytes; 0 while the upload is pending.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes; `None` while the upload is pending (MSC2246: the
    /// id was created and its bytes have not come yet).
    pub sha256: Option<String>,
    pub created_ts: i64,
    /// When the bytes were last served (for cleanup of unused media); `created_ts` at first.
    pub last_access_ts: i64,
    /// A pending upload's bytes must arrive before this time (`unused_expires_at`).
    pub expires_ts: Option<i64>,
    pub quarantined: bool,
}

/// Another server's media this tenant fetched and keeps (`mxc://<origin>/<media_id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteMediaRecord {
    pub origin: String,
    pub media_id: String,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub size: u64,
    pub sha256: String,
    /// When the cache was filled: what the freeze of unauthenticated media goes by.
    pub fetched_ts: i64,
    pub last_access_ts: i64,
    pub quarantined: bool,
}

/// A thumbnail made of local (`origin` is the tenant's server name) or remote media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThumbnailRecord {
    pub origin: String,
    pub media_id: String,
    /// The size asked for (one of the sizes thumbnails are made at), which with `method` and
    /// `animated` names the thumbnail; the image itself may be smaller.
    pub width: u32,
    pub height: u32,
    /// `crop` or `scale`.
    pub method: String,
    pub animated: bool,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

/// Bounds on what a user's upload may bring the tenant's stored media to, in bytes of local
/// media (pending uploads count as nothing; cached remote media counts for no one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaQuota {
    pub tenant_bytes: Option<u64>,
    pub user_bytes: Option<u64>,
}

/// What became of an upload's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaInsert {
    Stored,
    /// The tenant's quota would be exceeded; nothing was stored.
    TenantQuotaExceeded,
    /// The uploader's quota would be exceeded; nothing was stored.
    UserQuotaExceeded,
}

/// Why bytes could not be given to a pending upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingUpload {
    Stored,
    TenantQuotaExceeded,
    UserQuotaExceeded,
    /// No such media id, or its time ran out (`expires_ts` before now).
    NotFound,
    /// Someone else created the id.
    NotUploader,
    /// The bytes came already (`M_CANNOT_OVERWRITE_MEDIA`).
    AlreadyUploaded,
}

/// A local upload's bytes and metadata, for `complete_pending_media`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedBytes {
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub size: u64,
    pub sha256: String,
}

/// What the admin API says of a piece of local media's quarantine: who quarantined it (`None`
/// when it isn't, or when no admin is known: before these were kept, or by the operator) and
/// whether it is protected from quarantine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuarantineMark {
    pub media_id: String,
    pub quarantined_by: Option<String>,
    pub safe_from_quarantine: bool,
}

/// Where a listing of media starts: after this `(created_ts, media_id)`, ordered by both.
pub type MediaCursor = (i64, String);

#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores the metadata of a whole upload (`sha256` set) unless it would exceed `quota`;
    /// the sums and the insert are one atomic step. `Conflict` when the media id exists.
    async fn insert_media(&self, media: &MediaRecord, quota: MediaQuota) -> Result<MediaInsert>;
    /// Stores a pending upload (`sha256` `None`, `expires_ts` set); `Conflict` when the id
    /// exists.
    async fn insert_pending_media(&self, media: &MediaRecord) -> Result<()>;
    /// Pending uploads of `uploader` that have not expired at `now_ts`.
    async fn count_pending_media(&self, uploader: &str, now_ts: i64) -> Result<u64>;
    /// Gives a pending upload its bytes, checking owner, expiry at `now_ts` and `quota` in the
    /// same atomic step; nothing changes unless the answer is `Stored`.
    async fn complete_pending_media(
        &self,
        media_id: &str,
        uploader: &str,
        bytes: &UploadedBytes,
        quota: MediaQuota,
        now_ts: i64,
    ) -> Result<PendingUpload>;
    /// Pending uploads whose time ran out before `now_ts`, removed; returns how many.
    async fn delete_expired_pending_media(&self, now_ts: i64) -> Result<u64>;

    async fn media(&self, media_id: &str) -> Result<Option<MediaRecord>>;
    /// Records that the media was served at `ts`; an unknown id is no error.
    async fn touch_media(&self, media_id: &str, ts: i64) -> Result<()>;
    /// Removes the media and its thumbnails; returns the record and the thumbnails' records,
    /// or `None` when there was no such media.
    async fn delete_media(
        &self,
        media_id: &str,
    ) -> Result<Option<(MediaRecord, Vec<ThumbnailRecord>)>>;
    /// Sets or clears the quarantine flag, whoever is protected, naming no admin; `false` when
    /// there is no such media.
    async fn set_media_quarantined(&self, media_id: &str, quarantined: bool) -> Result<bool>;
    /// Quarantines the media in the name of the admin `by`, unless it is protected; `false`
    /// when there is no such media or it is protected.
    async fn quarantine_media_by(&self, media_id: &str, by: &str) -> Result<bool>;
    /// Quarantines, in the name of `by`, every upload of `uploader` that is neither
    /// quarantined nor protected; returns how many.
    async fn quarantine_uploads_by(&self, uploader: &str, by: &str) -> Result<u64>;
    /// Protects the media from quarantine, or lifts the protection; `false` when there is no
    /// such media.
    async fn set_media_safe(&self, media_id: &str, safe: bool) -> Result<bool>;
    /// The marks of local media that is quarantined or protected: the tenant's, or
    /// `uploader`'s, or the one piece `media_id` (both given: that piece if it is theirs).
    async fn quarantine_marks(
        &self,
        uploader: Option<&str>,
        media_id: Option<&str>,
    ) -> Result<Vec<QuarantineMark>>;
    /// Local media last served before `ts`, larger than `size_gt` bytes, neither quarantined nor
    /// protected nor pending, ordered by media id after `after`, at most `limit`: what a
    /// deletion of old media removes.
    async fn local_media_unused_since(
        &self,
        ts: i64,
        size_gt: u64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MediaRecord>>;
    /// The `mxc://` URIs used as avatars: users' profile avatars and those of the rooms'
    /// `m.room.avatar` events (any of them, not only the current one).
    async fn avatar_uris(&self) -> Result<Vec<String>>;
    /// Local media ordered by `(created_ts, media_id)`, after `from`, at most `limit`; only
    /// `uploader`'s when given.
    async fn list_media(
        &self,
        uploader: Option<&str>,
        from: Option<&MediaCursor>,
        limit: u32,
    ) -> Result<Vec<MediaRecord>>;
    /// Bytes of local media stored: the tenant's, or `uploader`'s when given.
    async fn media_usage(&self, uploader: Option<&str>) -> Result<u64>;

    async fn remote_media(&self, origin: &str, media_id: &str)
    -> Result<Option<RemoteMediaRecord>>;
    /// Keeps fetched remote media; a record that exists already is replaced.
    async fn insert_remote_media(&self, media: &RemoteMediaRecord) -> Result<()>;
    async fn touch_remote_media(&self, origin: &str, media_id: &str, ts: i64) -> Result<()>;
    /// As `delete_media`, for cached remote media.
    async fn delete_remote_media(
        &self,
        origin: &str,
        media_id: &str,
    ) -> Result<Option<(RemoteMediaRecord, Vec<ThumbnailRecord>)>>;
    /// As `set_media_quarantined`, for cached remote media (which can't be protected).
    async fn set_remote_media_quarantined(
        &self,
        origin: &str,
        media_id: &str,
        quarantined: bool,
    ) -> Result<bool>;
    /// As `quarantine_media_by`, for cached remote media.
    async fn quarantine_remote_media_by(
        &self,
        origin: &str,
        media_id: &str,
        by: &str,
    ) -> Result<bool>;
    /// Who quarantined the cached remote media; `None` as for `QuarantineMark`.
    async fn remote_media_quarantined_by(
        &self,
        origin: &str,
        media_id: &str,
    ) -> Result<Option<String>>;
    /// Cached remote media last served before `ts` (and not quarantined), oldest first, at
    /// most `limit`: what a purge of the cache removes.
    async fn remote_media_unused_since(
        &self,
        ts: i64,
        limit: u32,
    ) -> Result<Vec<RemoteMediaRecord>>;

    /// The thumbnail of `(origin, media_id)` made for exactly this size, method and animation.
    async fn thumbnail(
        &self,
        origin: &str,
        media_id: &str,
        width: u32,
        height: u32,
        method: &str,
        animated: bool,
    ) -> Result<Option<ThumbnailRecord>>;
    /// Keeps a thumbnail; one that exists already (made concurrently) is left as it is and
    /// `false` returned.
    async fn insert_thumbnail(&self, thumbnail: &ThumbnailRecord) -> Result<bool>;

    /// How many records (local media, remote media, thumbnails) name the bytes `sha256`: the
    /// blob store keeps the bytes while this is not zero.
    async fn count_blob_references(&self, sha256: &str) -> Result<u64>;
    /// Every distinct `sha256` the tenant's records name, in order, after `from`, at most
    /// `limit`: what an export carries.
    async fn blob_references(&self, from: Option<&str>, limit: u32) -> Result<Vec<String>>;
}
