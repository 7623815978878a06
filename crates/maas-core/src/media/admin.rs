//! What the operator and a tenant's admins do with its media: list it, delete it, quarantine
//! it (kept, served to no one), and purge cached remote media no one asked for since a date.

use ruma::UserId;

use super::{Media, check_media_id};
use crate::store::{MediaRecord, ThumbnailRecord};
use crate::{Error, Result};

/// Remote media removed per batch of a purge.
const PURGE_BATCH: u32 = 100;

/// Records read per store call by [`Media::all_of`].
const ALL_OF_BATCH: u32 = 1000;

/// The most uploads [`Media::all_of`] returns: it holds them in memory at once.
const ALL_OF_MAX: usize = 100_000;

/// One local upload, as administrators see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    pub media_id: String,
    pub mxc: String,
    pub uploader: String,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub size: u64,
    pub created_ts: i64,
    pub last_access_ts: i64,
    pub quarantined: bool,
    /// The id was created and its bytes have not come.
    pub pending: bool,
}

/// One piece of media, local or a cached copy of another server's, with what only a look at
/// that one piece tells (Synapse admin API: "Query a piece of media by ID").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDetails {
    /// The server that holds the original: the tenant's own for its uploads.
    pub origin: String,
    pub media_id: String,
    /// Who uploaded it; `None` for another server's media.
    pub uploader: Option<String>,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub size: u64,
    /// Uploaded, or, for another server's media, fetched into the cache.
    pub created_ts: i64,
    pub last_access_ts: i64,
    pub quarantined: bool,
    /// Lower-case hex SHA-256 of the bytes; `None` while an upload is pending.
    pub sha256: Option<String>,
    /// Stored since the tenant froze unauthenticated media: served by the authenticated
    /// endpoints only.
    pub authenticated: bool,
}

/// What a purge of the remote cache removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgedMedia {
    pub items: u64,
    pub bytes: u64,
}

impl Media<'_> {
    /// Local media, oldest first, after the cursor `from` (the `next` of an earlier page), at
    /// most `limit`; only `uploader`'s when given. Returns the page and the next cursor.
    pub async fn list(
        &self,
        uploader: Option<&UserId>,
        from: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<MediaInfo>, Option<String>)> {
        let cursor = from.map(parse_cursor).transpose()?;
        let records = self
            .tenant
            .store()
            .list_media(uploader.map(UserId::as_str), cursor.as_ref(), limit.max(1))
            .await?;
        let next = (records.len() == limit.max(1) as usize)
            .then(|| {
                records
                    .last()
                    .map(|r| format!("{}_{}", r.created_ts, r.media_id))
            })
            .flatten();
        let infos = records.into_iter().map(|r| self.info(r)).collect();
        Ok((infos, next))
    }

    /// Every upload of `uploader`, oldest first, at most the oldest [`ALL_OF_MAX`]: for the
    /// Synapse admin API, whose pages are offsets into orders the store has no index for.
    /// Beyond the bound the newer uploads are left out rather than the call refused, so that
    /// deleting page after page still reaches them.
    pub async fn all_of(&self, uploader: &UserId) -> Result<Vec<MediaInfo>> {
        let store = self.tenant.store();
        let mut all = Vec::new();
        let mut cursor = None;
        while all.len() < ALL_OF_MAX {
            let records = store
                .list_media(Some(uploader.as_str()), cursor.as_ref(), ALL_OF_BATCH)
                .await?;
            let done = records.len() < ALL_OF_BATCH as usize;
            cursor = records.last().map(|r| (r.created_ts, r.media_id.clone()));
            all.extend(records.into_iter().map(|r| self.info(r)));
            if done {
                break;
            }
        }
        all.truncate(ALL_OF_MAX);
        Ok(all)
    }

    /// One piece of media: the tenant's upload when `origin` is its server name, else its
    /// cached copy of another server's; `None` when there is none.
    pub async fn details(&self, origin: &str, media_id: &str) -> Result<Option<MediaDetails>> {
        check_media_id(media_id)?;
        let store = self.tenant.store();
        let details = if origin == self.tenant.server_name().as_str() {
            store.media(media_id).await?.map(|r| MediaDetails {
                origin: origin.to_owned(),
                authenticated: self.stored_frozen(r.created_ts),
                media_id: r.media_id,
                uploader: Some(r.uploader),
                content_type: r.content_type,
                file_name: r.file_name,
                size: r.size,
                created_ts: r.created_ts,
                last_access_ts: r.last_access_ts,
                quarantined: r.quarantined,
                sha256: r.sha256,
            })
        } else {
            store
                .remote_media(origin, media_id)
                .await?
                .map(|r| MediaDetails {
                    authenticated: self.stored_frozen(r.fetched_ts),
                    origin: r.origin,
                    media_id: r.media_id,
                    uploader: None,
                    content_type: r.content_type,
                    file_name: r.file_name,
                    size: r.size,
                    created_ts: r.fetched_ts,
                    last_access_ts: r.last_access_ts,
                    quarantined: r.quarantined,
                    sha256: Some(r.sha256),
                })
        };
        Ok(details)
    }

    /// Whether media stored at `stored_ts` came after the tenant's freeze of unauthenticated
    /// media (the same test downloads make).
    fn stored_frozen(&self, stored_ts: i64) -> bool {
        self.tenant
            .settings()
            .media
            .unauthenticated_frozen_ts
            .is_some_and(|frozen| stored_ts >= frozen)
    }

    /// Bytes of local media stored, by everyone or by `uploader`.
    pub async fn usage(&self, uploader: Option<&UserId>) -> Result<u64> {
        Ok(self
            .tenant
            .store()
            .media_usage(uploader.map(UserId::as_str))
            .await?)
    }

    /// Deletes local media with its thumbnails, or cached remote media when `origin` is
    /// another server; `false` when there was none.
    pub async fn delete(&self, origin: &str, media_id: &str) -> Result<bool> {
        check_media_id(media_id)?;
        let _references = self.tenant.media_references().lock().await;
        let store = self.tenant.store();
        let removed = if origin == self.tenant.server_name().as_str() {
            store
                .delete_media(media_id)
                .await?
                .map(|(media, thumbnails)| (media.sha256, thumbnails))
        } else {
            store
                .delete_remote_media(origin, media_id)
                .await?
                .map(|(media, thumbnails)| (Some(media.sha256), thumbnails))
        };
        let Some((sha256, thumbnails)) = removed else {
            return Ok(false);
        };
        self.release_all(sha256, &thumbnails).await?;
        Ok(true)
    }

    /// Quarantines media (or lifts it): kept for the administrators, served to no one.
    pub async fn quarantine(
        &self,
        origin: &str,
        media_id: &str,
        quarantined: bool,
    ) -> Result<bool> {
        check_media_id(media_id)?;
        let store = self.tenant.store();
        if origin == self.tenant.server_name().as_str() {
            return Ok(store.set_media_quarantined(media_id, quarantined).await?);
        }
        Ok(store
            .set_remote_media_quarantined(origin, media_id, quarantined)
            .await?)
    }

    /// Removes cached remote media last served before `before_ts` (quarantined media stays).
    pub async fn purge_remote(&self, before_ts: i64) -> Result<PurgedMedia> {
        let mut purged = PurgedMedia::default();
        loop {
            let batch = self
                .tenant
                .store()
                .remote_media_unused_since(before_ts, PURGE_BATCH)
                .await?;
            if batch.is_empty() {
                return Ok(purged);
            }
            for media in batch {
                if self.delete(&media.origin, &media.media_id).await? {
                    purged.items += 1;
                    purged.bytes += media.size;
                }
            }
        }
    }

    /// Removes pending uploads whose time ran out; returns how many.
    pub async fn expire_pending(&self) -> Result<u64> {
        Ok(self
            .tenant
            .store()
            .delete_expired_pending_media(crate::now_ms())
            .await?)
    }

    /// Releases the bytes of removed records that no other record names; with
    /// `media_references` held.
    async fn release_all(
        &self,
        sha256: Option<String>,
        thumbnails: &[ThumbnailRecord],
    ) -> Result<()> {
        let mut names: Vec<&str> = thumbnails.iter().map(|t| t.sha256.as_str()).collect();
        names.extend(sha256.as_deref());
        names.sort_unstable();
        names.dedup();
        for sha256 in names {
            self.release_unreferenced(sha256).await?;
        }
        Ok(())
    }

    fn info(&self, record: MediaRecord) -> MediaInfo {
        MediaInfo {
            mxc: self.mxc(&record.media_id).to_string(),
            pending: record.sha256.is_none(),
            media_id: record.media_id,
            uploader: record.uploader,
            content_type: record.content_type,
            file_name: record.file_name,
            size: record.size,
            created_ts: record.created_ts,
            last_access_ts: record.last_access_ts,
            quarantined: record.quarantined,
        }
    }
}

/// A listing cursor: `<created_ts>_<media_id>`.
fn parse_cursor(from: &str) -> Result<(i64, String)> {
    let invalid = || Error::InvalidParam(format!("Invalid media listing cursor {from:?}"));
    let (ts, media_id) = from.split_once('_').ok_or_else(invalid)?;
    let ts = ts.parse().map_err(|_| invalid())?;
    check_media_id(media_id).map_err(|_| invalid())?;
    Ok((ts, media_id.to_owned()))
}
