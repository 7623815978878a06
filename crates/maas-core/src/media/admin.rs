//! What the operator and a tenant's admins do with its media: list it, delete it, quarantine
//! it (kept, served to no one) one by one or by room or uploader, protect it from quarantine,
//! and purge cached remote media, or local media, no one asked for since a date.

use std::collections::{HashMap, HashSet};

use ruma::{RoomId, UserId};

use super::{Media, check_media_id};
use crate::store::{MediaRecord, QuarantineMark, ThumbnailRecord};
use crate::{Error, Result};

/// Local media removed per batch of a deletion of old media.
const DELETE_BATCH: u32 = 100;

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
    /// The admin who quarantined it; `None` when it isn't quarantined or no admin is known
    /// (quarantined by the operator, or before maas kept who).
    pub quarantined_by: Option<String>,
    pub safe_from_quarantine: bool,
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
    /// As [`MediaInfo::quarantined_by`].
    pub quarantined_by: Option<String>,
    /// Always `false` for another server's media, which can't be protected.
    pub safe_from_quarantine: bool,
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
        let marks = self.marks(uploader).await?;
        let infos = records.into_iter().map(|r| self.info(r, &marks)).collect();
        Ok((infos, next))
    }

    /// Every upload of `uploader`, oldest first, at most the oldest [`ALL_OF_MAX`]: for the
    /// Synapse admin API, whose pages are offsets into orders the store has no index for.
    /// Beyond the bound the newer uploads are left out rather than the call refused, so that
    /// deleting page after page still reaches them.
    pub async fn all_of(&self, uploader: &UserId) -> Result<Vec<MediaInfo>> {
        let store = self.tenant.store();
        let marks = self.marks(Some(uploader)).await?;
        let mut all = Vec::new();
        let mut cursor = None;
        while all.len() < ALL_OF_MAX {
            let records = store
                .list_media(Some(uploader.as_str()), cursor.as_ref(), ALL_OF_BATCH)
                .await?;
            let done = records.len() < ALL_OF_BATCH as usize;
            cursor = records.last().map(|r| (r.created_ts, r.media_id.clone()));
            all.extend(records.into_iter().map(|r| self.info(r, &marks)));
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
            let mark = store
                .quarantine_marks(None, Some(media_id))
                .await?
                .pop()
                .unwrap_or_default();
            store.media(media_id).await?.map(|r| MediaDetails {
                quarantined_by: mark.quarantined_by,
                safe_from_quarantine: mark.safe_from_quarantine,
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
            let quarantined_by = store.remote_media_quarantined_by(origin, media_id).await?;
            store
                .remote_media(origin, media_id)
                .await?
                .map(|r| MediaDetails {
                    quarantined_by,
                    safe_from_quarantine: false,
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

    /// Quarantines media in the name of the admin `by` (Synapse's by-id quarantine): local
    /// media unless it is protected, or the tenant's cached copy of another server's; `false`
    /// when there is no such media or it is protected.
    pub async fn quarantine_by(&self, origin: &str, media_id: &str, by: &UserId) -> Result<bool> {
        check_media_id(media_id)?;
        let store = self.tenant.store();
        if origin == self.tenant.server_name().as_str() {
            return Ok(store.quarantine_media_by(media_id, by.as_str()).await?);
        }
        Ok(store
            .quarantine_remote_media_by(origin, media_id, by.as_str())
            .await?)
    }

    /// Quarantines the media the room's events name, local (unless protected) and cached
    /// remote, in the name of `by`; returns how many pieces of media were quarantined (again,
    /// for those that were already, as Synapse counts them).
    pub async fn quarantine_room(&self, room_id: &RoomId, by: &UserId) -> Result<u64> {
        let media = self.tenant.server_admin().room_media(room_id).await?;
        let uris: HashSet<&String> = media.local.iter().chain(&media.remote).collect();
        let mut count = 0;
        for uri in uris {
            let Some((origin, media_id)) = uri
                .strip_prefix("mxc://")
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            // An id no media of this tenant can have names nothing to quarantine.
            if check_media_id(media_id).is_err() {
                continue;
            }
            if self.quarantine_by(origin, media_id, by).await? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Quarantines `uploader`'s uploads that are neither quarantined nor protected, in the
    /// name of `by`; returns how many.
    pub async fn quarantine_uploads(&self, uploader: &UserId, by: &UserId) -> Result<u64> {
        Ok(self
            .tenant
            .store()
            .quarantine_uploads_by(uploader.as_str(), by.as_str())
            .await?)
    }

    /// Protects local media from quarantine by admins, or lifts that; `false` when there is no
    /// such media.
    pub async fn protect(&self, media_id: &str, safe: bool) -> Result<bool> {
        check_media_id(media_id)?;
        Ok(self.tenant.store().set_media_safe(media_id, safe).await?)
    }

    /// Deletes local media last served before `before_ts` and larger than `size_gt` bytes,
    /// sparing quarantined, protected and pending media, and, when `keep_avatars`, media used
    /// as a user's or a room's avatar; returns the ids deleted.
    pub async fn delete_unused_local(
        &self,
        before_ts: i64,
        size_gt: u64,
        keep_avatars: bool,
    ) -> Result<Vec<String>> {
        let store = self.tenant.store();
        let avatars: HashSet<String> = if keep_avatars {
            store.avatar_uris().await?.into_iter().collect()
        } else {
            HashSet::new()
        };
        let mut deleted = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let batch = store
                .local_media_unused_since(before_ts, size_gt, after.as_deref(), DELETE_BATCH)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(deleted);
            };
            after = Some(last.media_id.clone());
            for media in batch {
                if avatars.contains(&self.mxc(&media.media_id).to_string()) {
                    continue;
                }
                let own = self.tenant.server_name().as_str();
                if self.delete(own, &media.media_id).await? {
                    deleted.push(media.media_id);
                }
            }
        }
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

    /// The quarantine marks of the tenant's or `uploader`'s local media, by media id.
    async fn marks(&self, uploader: Option<&UserId>) -> Result<HashMap<String, QuarantineMark>> {
        let marks = self
            .tenant
            .store()
            .quarantine_marks(uploader.map(UserId::as_str), None)
            .await?;
        Ok(marks.into_iter().map(|m| (m.media_id.clone(), m)).collect())
    }

    fn info(&self, record: MediaRecord, marks: &HashMap<String, QuarantineMark>) -> MediaInfo {
        let mark = marks.get(&record.media_id);
        MediaInfo {
            quarantined_by: mark.and_then(|m| m.quarantined_by.clone()),
            safe_from_quarantine: mark.is_some_and(|m| m.safe_from_quarantine),
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
