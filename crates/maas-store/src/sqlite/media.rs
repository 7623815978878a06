//! `MediaStore` on a tenant's SQLite database (schema in `0015_media.sql`): local uploads,
//! cached remote media and thumbnails. Writes run on the tenant's writer, each in one
//! `BEGIN IMMEDIATE` transaction: SQLite's write lock then makes a quota's sums and the insert
//! they allow one step, as no other writer can get in between. Point lookups (every download
//! reads its record) run on the reader; listings too, off the runtime's workers when long.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, Row};

use super::SqliteTenantStore;
use super::raw;
use super::util::{to_i64, to_u64};
use crate::{
    MediaCursor, MediaInsert, MediaQuota, MediaRecord, MediaStore, PendingUpload, QuarantineMark,
    RemoteMediaRecord, Result, StoreError, ThumbnailRecord, UploadedBytes,
};

/// Every `media` column (`media_from_row` reads them by name).
macro_rules! media_columns {
    () => {
        "media_id, uploader, content_type, file_name, size, sha256, created_ts, \
         last_access_ts, expires_ts, quarantined"
    };
}

/// Every `remote_media` column.
macro_rules! remote_columns {
    () => {
        "origin, media_id, content_type, file_name, size, sha256, fetched_ts, last_access_ts, \
         quarantined"
    };
}

/// Every `media_thumbnails` column.
macro_rules! thumbnail_columns {
    () => {
        "origin, media_id, width, height, method, animated, content_type, size, sha256"
    };
}

/// `SELECT <every media column> FROM media <rest>`.
macro_rules! select_media {
    ($rest:literal) => {
        concat!("SELECT ", media_columns!(), " FROM media ", $rest)
    };
}

/// `SELECT` of the quarantine marks of `media` rows that are quarantined or protected, `$filter`
/// (a `WHERE` clause or nothing) narrowing the rows read.
macro_rules! select_marks {
    ($filter:literal) => {
        concat!(
            "SELECT media_id, quarantined_by, safe_from_quarantine FROM (SELECT * FROM media ",
            $filter,
            ") WHERE quarantined = 1 OR safe_from_quarantine = 1 ORDER BY media_id"
        )
    };
}

/// Bytes of the tenant's stored local media: pending uploads (no `sha256` yet) count nothing.
const TENANT_USAGE: &str = "SELECT COALESCE(SUM(size), 0) FROM media WHERE sha256 IS NOT NULL";
/// As `TENANT_USAGE`, of one uploader: a statement of its own, so that it reads the uploader's
/// index (`?1 IS NULL OR uploader = ?1` would read the whole table).
const USER_USAGE: &str =
    "SELECT COALESCE(SUM(size), 0) FROM media WHERE uploader = ? AND sha256 IS NOT NULL";

#[async_trait]
impl MediaStore for SqliteTenantStore {
    async fn insert_media(&self, media: &MediaRecord, quota: MediaQuota) -> Result<MediaInsert> {
        self.writer
            .write(|tx| {
                let answer = quota_answer(tx, &media.uploader, media.size, quota)?;
                if answer != MediaInsert::Stored {
                    // Nothing is stored either way, but a taken id is the better answer.
                    if media_exists(tx, &media.media_id)? {
                        return Err(media_conflict(&media.media_id));
                    }
                    return Ok(answer);
                }
                write_media(tx, media)?;
                Ok(MediaInsert::Stored)
            })
            .await
    }

    async fn insert_pending_media(&self, media: &MediaRecord) -> Result<()> {
        self.writer.write(|tx| write_media(tx, media)).await
    }

    async fn count_pending_media(&self, uploader: &str, now_ts: i64) -> Result<u64> {
        // A pending upload without an expiry never runs out (as in `complete_pending_media`).
        let count: i64 = self
            .reader
            .read(|db| {
                let count = db
                    .prepare_cached(
                        "SELECT COUNT(*) FROM media \
                         WHERE uploader = ? AND sha256 IS NULL \
                           AND (expires_ts IS NULL OR expires_ts >= ?)",
                    )?
                    .query_row((uploader, now_ts), |row| row.get(0))?;
                Ok(count)
            })
            .await?;
        to_u64(count, "pending media count")
    }

    async fn complete_pending_media(
        &self,
        media_id: &str,
        uploader: &str,
        bytes: &UploadedBytes,
        quota: MediaQuota,
        now_ts: i64,
    ) -> Result<PendingUpload> {
        self.writer
            .write(|tx| {
                let state = pending_state(tx, media_id)?;
                if let Some(refusal) = pending_refusal(state.as_ref(), uploader, now_ts) {
                    return Ok(refusal);
                }
                let answer = quota_answer(tx, uploader, bytes.size, quota)?;
                if answer != MediaInsert::Stored {
                    return Ok(quota_refusal(answer));
                }
                fill_pending(tx, media_id, bytes)?;
                Ok(PendingUpload::Stored)
            })
            .await
    }

    async fn delete_expired_pending_media(&self, now_ts: i64) -> Result<u64> {
        // Pending uploads are few (a user may hold only some at once): one statement.
        let deleted = self
            .writer
            .write(|tx| {
                let deleted = tx
                    .prepare_cached("DELETE FROM media WHERE sha256 IS NULL AND expires_ts < ?")?
                    .execute([now_ts])?;
                Ok(deleted)
            })
            .await?;
        Ok(count_of(deleted))
    }

    async fn media(&self, media_id: &str) -> Result<Option<MediaRecord>> {
        self.reader
            .read(|db| {
                db.prepare_cached(select_media!("WHERE media_id = ?"))?
                    .query_row([media_id], |row| Ok(media_from_row(row)))
                    .optional()?
                    .transpose()
            })
            .await
    }

    async fn touch_media(&self, media_id: &str, ts: i64) -> Result<()> {
        // Downloads finish in any order: the latest time stays.
        self.writer
            .write(|tx| {
                tx.prepare_cached(
                    "UPDATE media SET last_access_ts = MAX(last_access_ts, ?) WHERE media_id = ?",
                )?
                .execute((ts, media_id))?;
                Ok(())
            })
            .await
    }

    async fn delete_media(
        &self,
        media_id: &str,
    ) -> Result<Option<(MediaRecord, Vec<ThumbnailRecord>)>> {
        self.writer
            .write(|tx| {
                let Some(media) = delete_media_row(tx, media_id)? else {
                    return Ok(None);
                };
                let thumbnails = delete_local_thumbnails(tx, media_id)?;
                Ok(Some((media, thumbnails)))
            })
            .await
    }

    async fn set_media_quarantined(&self, media_id: &str, quarantined: bool) -> Result<bool> {
        self.writer
            .write(|tx| {
                let updated = tx
                    .prepare_cached(
                        "UPDATE media SET quarantined = ?, quarantined_by = NULL \
                         WHERE media_id = ?",
                    )?
                    .execute((quarantined, media_id))?;
                Ok(updated == 1)
            })
            .await
    }

    async fn quarantine_media_by(&self, media_id: &str, by: &str) -> Result<bool> {
        self.writer
            .write(|tx| {
                let updated = tx
                    .prepare_cached(
                        "UPDATE media SET quarantined = 1, quarantined_by = ? \
                         WHERE media_id = ? AND safe_from_quarantine = 0",
                    )?
                    .execute((by, media_id))?;
                Ok(updated == 1)
            })
            .await
    }

    async fn quarantine_uploads_by(&self, uploader: &str, by: &str) -> Result<u64> {
        self.writer
            .write(|tx| {
                let updated = tx
                    .prepare_cached(
                        "UPDATE media SET quarantined = 1, quarantined_by = ? \
                         WHERE uploader = ? AND quarantined = 0 AND safe_from_quarantine = 0",
                    )?
                    .execute((by, uploader))?;
                Ok(count_of(updated))
            })
            .await
    }

    async fn set_media_safe(&self, media_id: &str, safe: bool) -> Result<bool> {
        self.writer
            .write(|tx| {
                let updated = tx
                    .prepare_cached("UPDATE media SET safe_from_quarantine = ? WHERE media_id = ?")?
                    .execute((safe, media_id))?;
                Ok(updated == 1)
            })
            .await
    }

    async fn quarantine_marks(
        &self,
        uploader: Option<&str>,
        media_id: Option<&str>,
    ) -> Result<Vec<QuarantineMark>> {
        let (uploader, media_id) = (uploader.map(str::to_owned), media_id.map(str::to_owned));
        self.reader
            .read_many(usize::MAX, move |db| {
                marks(db, uploader.as_deref(), media_id.as_deref())
            })
            .await
    }

    async fn local_media_unused_since(
        &self,
        ts: i64,
        size_gt: u64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MediaRecord>> {
        let rows = usize::try_from(limit).unwrap_or(usize::MAX);
        let after = after.unwrap_or("").to_owned();
        self.reader
            .read_many(rows, move |db| {
                let mut statement = db.prepare_cached(select_media!(
                    "WHERE last_access_ts < ? AND size > ? AND media_id > ? \
                     AND sha256 IS NOT NULL AND quarantined = 0 AND safe_from_quarantine = 0 \
                     ORDER BY media_id LIMIT ?"
                ))?;
                let rows = statement.query((ts, to_i64(size_gt), &after, i64::from(limit)))?;
                raw::collect(rows, media_from_row)
            })
            .await
    }

    async fn avatar_uris(&self) -> Result<Vec<String>> {
        self.reader
            .read_many(usize::MAX, |db| {
                let mut statement = db.prepare_cached(
                    "SELECT avatar_url FROM users WHERE avatar_url IS NOT NULL \
                     UNION SELECT json_extract(pdu, '$.content.url') FROM events \
                     WHERE event_type = 'm.room.avatar' AND state_key = '' \
                     AND json_valid(pdu) \
                     AND json_type(pdu, '$.content.url') = 'text'",
                )?;
                let rows = statement.query(())?;
                raw::collect(rows, |row| Ok(row.get::<_, String>(0)?))
            })
            .await
    }

    async fn list_media(
        &self,
        uploader: Option<&str>,
        from: Option<&MediaCursor>,
        limit: u32,
    ) -> Result<Vec<MediaRecord>> {
        let rows = usize::try_from(limit).unwrap_or(usize::MAX);
        self.reader
            .read_many(rows, |db| list(db, uploader, from, limit))
            .await
    }

    async fn media_usage(&self, uploader: Option<&str>) -> Result<u64> {
        // A sum over every upload of the tenant (or the user): on the pool, whose connections
        // run on threads of their own, rather than on the caller's.
        let sum: i64 = match uploader {
            None => {
                sqlx::query_scalar(TENANT_USAGE)
                    .fetch_one(&self.pool)
                    .await?
            }
            Some(uploader) => {
                sqlx::query_scalar(USER_USAGE)
                    .bind(uploader)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        to_u64(sum, "media usage")
    }

    async fn remote_media(
        &self,
        origin: &str,
        media_id: &str,
    ) -> Result<Option<RemoteMediaRecord>> {
        self.reader
            .read(|db| {
                db.prepare_cached(concat!(
                    "SELECT ",
                    remote_columns!(),
                    " FROM remote_media WHERE origin = ? AND media_id = ?"
                ))?
                .query_row((origin, media_id), |row| Ok(remote_from_row(row)))
                .optional()?
                .transpose()
            })
            .await
    }

    async fn insert_remote_media(&self, media: &RemoteMediaRecord) -> Result<()> {
        self.writer.write(|tx| write_remote_media(tx, media)).await
    }

    async fn touch_remote_media(&self, origin: &str, media_id: &str, ts: i64) -> Result<()> {
        self.writer
            .write(|tx| {
                tx.prepare_cached(
                    "UPDATE remote_media SET last_access_ts = MAX(last_access_ts, ?) \
                     WHERE origin = ? AND media_id = ?",
                )?
                .execute((ts, origin, media_id))?;
                Ok(())
            })
            .await
    }

    async fn delete_remote_media(
        &self,
        origin: &str,
        media_id: &str,
    ) -> Result<Option<(RemoteMediaRecord, Vec<ThumbnailRecord>)>> {
        self.writer
            .write(|tx| {
                let Some(media) = delete_remote_row(tx, origin, media_id)? else {
                    return Ok(None);
                };
                let thumbnails = delete_remote_thumbnails(tx, origin, media_id)?;
                Ok(Some((media, thumbnails)))
            })
            .await
    }

    async fn set_remote_media_quarantined(
        &self,
        origin: &str,
        media_id: &str,
        quarantined: bool,
    ) -> Result<bool> {
        self.writer
            .write(|tx| {
                let updated = tx
                    .prepare_cached(
                        "UPDATE remote_media SET quarantined = ?, quarantined_by = NULL \
                         WHERE origin = ? AND media_id = ?",
                    )?
                    .execute((quarantined, origin, media_id))?;
                Ok(updated == 1)
            })
            .await
    }

    async fn quarantine_remote_media_by(
        &self,
        origin: &str,
        media_id: &str,
        by: &str,
    ) -> Result<bool> {
        self.writer
            .write(|tx| {
                let updated = tx
                    .prepare_cached(
                        "UPDATE remote_media SET quarantined = 1, quarantined_by = ? \
                         WHERE origin = ? AND media_id = ?",
                    )?
                    .execute((by, origin, media_id))?;
                Ok(updated == 1)
            })
            .await
    }

    async fn remote_media_quarantined_by(
        &self,
        origin: &str,
        media_id: &str,
    ) -> Result<Option<String>> {
        let (origin, media_id) = (origin.to_owned(), media_id.to_owned());
        self.reader
            .read(move |db| {
                let by = db
                    .prepare_cached(
                        "SELECT quarantined_by FROM remote_media WHERE origin = ? AND media_id = ?",
                    )?
                    .query_row((&origin, &media_id), |row| row.get::<_, Option<String>>(0))
                    .optional()?;
                Ok(by.flatten())
            })
            .await
    }

    async fn remote_media_unused_since(
        &self,
        ts: i64,
        limit: u32,
    ) -> Result<Vec<RemoteMediaRecord>> {
        let rows = usize::try_from(limit).unwrap_or(usize::MAX);
        self.reader
            .read_many(rows, |db| {
                let mut statement = db.prepare_cached(concat!(
                    "SELECT ",
                    remote_columns!(),
                    " FROM remote_media WHERE last_access_ts < ? AND quarantined = 0 \
                     ORDER BY last_access_ts, origin, media_id LIMIT ?"
                ))?;
                let rows = statement.query((ts, i64::from(limit)))?;
                raw::collect(rows, remote_from_row)
            })
            .await
    }

    async fn thumbnail(
        &self,
        origin: &str,
        media_id: &str,
        width: u32,
        height: u32,
        method: &str,
        animated: bool,
    ) -> Result<Option<ThumbnailRecord>> {
        let key = (
            origin,
            media_id,
            i64::from(width),
            i64::from(height),
            method,
            animated,
        );
        self.reader
            .read(|db| {
                db.prepare_cached(concat!(
                    "SELECT ",
                    thumbnail_columns!(),
                    " FROM media_thumbnails WHERE origin = ? AND media_id = ? \
                     AND width = ? AND height = ? AND method = ? AND animated = ?"
                ))?
                .query_row(key, |row| Ok(thumbnail_from_row(row)))
                .optional()?
                .transpose()
            })
            .await
    }

    async fn insert_thumbnail(&self, thumbnail: &ThumbnailRecord) -> Result<bool> {
        self.writer.write(|tx| write_thumbnail(tx, thumbnail)).await
    }

    async fn count_blob_references(&self, sha256: &str) -> Result<u64> {
        // Three lookups in the tables' digest indexes.
        let count: i64 = self
            .reader
            .read(|db| {
                let count = db
                    .prepare_cached(
                        "SELECT (SELECT COUNT(*) FROM media WHERE sha256 = ?1) \
                              + (SELECT COUNT(*) FROM remote_media WHERE sha256 = ?1) \
                              + (SELECT COUNT(*) FROM media_thumbnails WHERE sha256 = ?1)",
                    )?
                    .query_row([sha256], |row| row.get(0))?;
                Ok(count)
            })
            .await?;
        to_u64(count, "blob references")
    }

    async fn blob_references(&self, from: Option<&str>, limit: u32) -> Result<Vec<String>> {
        let rows = usize::try_from(limit).unwrap_or(usize::MAX);
        self.reader
            .read_many(rows, |db| {
                // Each table gives its first `limit` digests from its index; the first `limit`
                // of their union are among them. '' sorts before every digest.
                let mut statement = db.prepare_cached(
                    "SELECT sha256 FROM ( \
                         SELECT * FROM (SELECT DISTINCT sha256 FROM media \
                             WHERE sha256 > COALESCE(?1, '') ORDER BY sha256 LIMIT ?2) \
                         UNION \
                         SELECT * FROM (SELECT DISTINCT sha256 FROM remote_media \
                             WHERE sha256 > COALESCE(?1, '') ORDER BY sha256 LIMIT ?2) \
                         UNION \
                         SELECT * FROM (SELECT DISTINCT sha256 FROM media_thumbnails \
                             WHERE sha256 > COALESCE(?1, '') ORDER BY sha256 LIMIT ?2)) \
                     ORDER BY sha256 LIMIT ?2",
                )?;
                let rows = statement.query((from, i64::from(limit)))?;
                raw::collect(rows, |row| Ok(row.get(0)?))
            })
            .await
    }
}

/// Inserts a media row inside the caller's transaction; `Conflict` when the id exists.
fn write_media(tx: &Connection, media: &MediaRecord) -> Result<()> {
    tx.prepare_cached(concat!(
        "INSERT INTO media (",
        media_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))?
    .execute((
        &media.media_id,
        &media.uploader,
        &media.content_type,
        &media.file_name,
        to_i64(media.size),
        &media.sha256,
        media.created_ts,
        media.last_access_ts,
        media.expires_ts,
        media.quarantined,
    ))
    .map_err(|err| raw::conflict(err, || format!("media {}", media.media_id)))?;
    Ok(())
}

fn media_conflict(media_id: &str) -> StoreError {
    StoreError::Conflict(format!("media {media_id}"))
}

fn media_exists(tx: &Connection, media_id: &str) -> Result<bool> {
    let found = tx
        .prepare_cached("SELECT 1 FROM media WHERE media_id = ?")?
        .query_row([media_id], |_| Ok(()))
        .optional()?;
    Ok(found.is_some())
}

/// Whether `size` more bytes of `uploader`'s fit `quota`: `Stored` when they do, else the
/// quota they would exceed, the tenant's first. Run under the write lock, so that nothing is
/// stored between these sums and the write they allow.
fn quota_answer(
    tx: &Connection,
    uploader: &str,
    size: u64,
    quota: MediaQuota,
) -> Result<MediaInsert> {
    if let Some(limit) = quota.tenant_bytes
        && usage(tx, None)?.saturating_add(size) > limit
    {
        return Ok(MediaInsert::TenantQuotaExceeded);
    }
    if let Some(limit) = quota.user_bytes
        && usage(tx, Some(uploader))?.saturating_add(size) > limit
    {
        return Ok(MediaInsert::UserQuotaExceeded);
    }
    Ok(MediaInsert::Stored)
}

/// Bytes of stored local media (pending uploads have none yet), of `uploader` when given.
fn usage(tx: &Connection, uploader: Option<&str>) -> Result<u64> {
    let sum: i64 = match uploader {
        None => tx
            .prepare_cached(TENANT_USAGE)?
            .query_row([], |row| row.get(0))?,
        Some(uploader) => tx
            .prepare_cached(USER_USAGE)?
            .query_row([uploader], |row| row.get(0))?,
    };
    to_u64(sum, "media usage")
}

/// A quota refusal as the answer to a pending upload.
fn quota_refusal(answer: MediaInsert) -> PendingUpload {
    match answer {
        MediaInsert::Stored => PendingUpload::Stored,
        MediaInsert::TenantQuotaExceeded => PendingUpload::TenantQuotaExceeded,
        MediaInsert::UserQuotaExceeded => PendingUpload::UserQuotaExceeded,
    }
}

/// What decides whether a media id can still take its bytes.
struct PendingState {
    uploader: String,
    uploaded: bool,
    expires_ts: Option<i64>,
}

fn pending_state(tx: &Connection, media_id: &str) -> Result<Option<PendingState>> {
    let state = tx
        .prepare_cached(
            "SELECT uploader, sha256 IS NOT NULL, expires_ts FROM media WHERE media_id = ?",
        )?
        .query_row([media_id], |row| {
            Ok(PendingState {
                uploader: row.get(0)?,
                uploaded: row.get(1)?,
                expires_ts: row.get(2)?,
            })
        })
        .optional()?;
    Ok(state)
}

/// Why bytes can't be given to the media id, checked in this order: unknown (or expired while
/// pending), someone else's, uploaded already (expired or not); `None` when they can.
fn pending_refusal(
    state: Option<&PendingState>,
    uploader: &str,
    now_ts: i64,
) -> Option<PendingUpload> {
    let Some(state) = state else {
        return Some(PendingUpload::NotFound);
    };
    let expired = state.expires_ts.is_some_and(|expires| expires < now_ts);
    if !state.uploaded && expired {
        return Some(PendingUpload::NotFound);
    }
    if state.uploader != uploader {
        return Some(PendingUpload::NotUploader);
    }
    state.uploaded.then_some(PendingUpload::AlreadyUploaded)
}

fn fill_pending(tx: &Connection, media_id: &str, bytes: &UploadedBytes) -> Result<()> {
    tx.prepare_cached(
        "UPDATE media SET content_type = ?, file_name = ?, size = ?, sha256 = ?, \
                          expires_ts = NULL \
         WHERE media_id = ?",
    )?
    .execute((
        &bytes.content_type,
        &bytes.file_name,
        to_i64(bytes.size),
        &bytes.sha256,
        media_id,
    ))?;
    Ok(())
}

/// Local media after `from` in `(created_ts, media_id)` order, of `uploader` when given. One
/// statement per case, each a range of its own index (a condition such as `?1 IS NULL OR …`
/// would make SQLite scan from the start of the index on every page).
fn list(
    db: &Connection,
    uploader: Option<&str>,
    from: Option<&MediaCursor>,
    limit: u32,
) -> Result<Vec<MediaRecord>> {
    let limit = i64::from(limit);
    let mut statement;
    let rows = match (uploader, from) {
        (None, None) => {
            statement =
                db.prepare_cached(select_media!("ORDER BY created_ts, media_id LIMIT ?"))?;
            statement.query((limit,))?
        }
        (None, Some((ts, id))) => {
            statement = db.prepare_cached(select_media!(
                "WHERE (created_ts, media_id) > (?, ?) ORDER BY created_ts, media_id LIMIT ?"
            ))?;
            statement.query((ts, id, limit))?
        }
        (Some(uploader), None) => {
            statement = db.prepare_cached(select_media!(
                "WHERE uploader = ? ORDER BY created_ts, media_id LIMIT ?"
            ))?;
            statement.query((uploader, limit))?
        }
        (Some(uploader), Some((ts, id))) => {
            statement = db.prepare_cached(select_media!(
                "WHERE uploader = ? AND (created_ts, media_id) > (?, ?) \
                 ORDER BY created_ts, media_id LIMIT ?"
            ))?;
            statement.query((uploader, ts, id, limit))?
        }
    };
    raw::collect(rows, media_from_row)
}

/// The quarantined or protected rows among the tenant's, `uploader`'s or the one `media_id`.
fn marks(
    db: &Connection,
    uploader: Option<&str>,
    media_id: Option<&str>,
) -> Result<Vec<QuarantineMark>> {
    let mut statement;
    let rows = match (uploader, media_id) {
        (_, Some(media_id)) => {
            statement = db.prepare_cached(select_marks!(
                "WHERE media_id = ?1 AND (?2 IS NULL OR uploader = ?2)"
            ))?;
            statement.query((media_id, uploader))?
        }
        (Some(uploader), None) => {
            statement = db.prepare_cached(select_marks!("WHERE uploader = ?"))?;
            statement.query((uploader,))?
        }
        (None, None) => {
            statement = db.prepare_cached(select_marks!(""))?;
            statement.query(())?
        }
    };
    raw::collect(rows, |row| {
        Ok(QuarantineMark {
            media_id: row.get("media_id")?,
            quarantined_by: row.get("quarantined_by")?,
            safe_from_quarantine: row.get("safe_from_quarantine")?,
        })
    })
}

fn delete_media_row(tx: &Connection, media_id: &str) -> Result<Option<MediaRecord>> {
    tx.prepare_cached(concat!(
        "DELETE FROM media WHERE media_id = ? RETURNING ",
        media_columns!()
    ))?
    .query_row([media_id], |row| Ok(media_from_row(row)))
    .optional()?
    .transpose()
}

/// Removes the thumbnails of local media `media_id`. The store doesn't know the tenant's
/// server name, the origin of local thumbnails; they are the thumbnails of that id but of no
/// cached remote media of that id (the tenant never caches its own media as remote),
/// each checked by the primary key of `remote_media`.
fn delete_local_thumbnails(tx: &Connection, media_id: &str) -> Result<Vec<ThumbnailRecord>> {
    let mut statement = tx.prepare_cached(concat!(
        "DELETE FROM media_thumbnails AS t WHERE t.media_id = ?1 \
         AND NOT EXISTS (SELECT 1 FROM remote_media AS r \
                         WHERE r.origin = t.origin AND r.media_id = t.media_id) \
         RETURNING ",
        thumbnail_columns!()
    ))?;
    let rows = statement.query([media_id])?;
    Ok(sorted(raw::collect(rows, thumbnail_from_row)?))
}

fn write_remote_media(tx: &Connection, media: &RemoteMediaRecord) -> Result<()> {
    // Fetched again (after a purge, or concurrently): the new record replaces the old.
    tx.prepare_cached(concat!(
        "INSERT INTO remote_media (",
        remote_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (origin, media_id) DO UPDATE SET \
             content_type = excluded.content_type, file_name = excluded.file_name, \
             size = excluded.size, sha256 = excluded.sha256, fetched_ts = excluded.fetched_ts, \
             last_access_ts = excluded.last_access_ts, quarantined = excluded.quarantined"
    ))?
    .execute((
        &media.origin,
        &media.media_id,
        &media.content_type,
        &media.file_name,
        to_i64(media.size),
        &media.sha256,
        media.fetched_ts,
        media.last_access_ts,
        media.quarantined,
    ))?;
    Ok(())
}

fn delete_remote_row(
    tx: &Connection,
    origin: &str,
    media_id: &str,
) -> Result<Option<RemoteMediaRecord>> {
    tx.prepare_cached(concat!(
        "DELETE FROM remote_media WHERE origin = ? AND media_id = ? RETURNING ",
        remote_columns!()
    ))?
    .query_row((origin, media_id), |row| Ok(remote_from_row(row)))
    .optional()?
    .transpose()
}

fn delete_remote_thumbnails(
    tx: &Connection,
    origin: &str,
    media_id: &str,
) -> Result<Vec<ThumbnailRecord>> {
    let mut statement = tx.prepare_cached(concat!(
        "DELETE FROM media_thumbnails WHERE origin = ? AND media_id = ? RETURNING ",
        thumbnail_columns!()
    ))?;
    let rows = statement.query((origin, media_id))?;
    Ok(sorted(raw::collect(rows, thumbnail_from_row)?))
}

/// Inserts a thumbnail unless one of the same name exists (made concurrently): that one stays.
fn write_thumbnail(tx: &Connection, thumbnail: &ThumbnailRecord) -> Result<bool> {
    let inserted = tx
        .prepare_cached(concat!(
            "INSERT INTO media_thumbnails (",
            thumbnail_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (origin, media_id, width, height, method, animated) DO NOTHING"
        ))?
        .execute((
            &thumbnail.origin,
            &thumbnail.media_id,
            i64::from(thumbnail.width),
            i64::from(thumbnail.height),
            &thumbnail.method,
            thumbnail.animated,
            &thumbnail.content_type,
            to_i64(thumbnail.size),
            &thumbnail.sha256,
        ))?;
    Ok(inserted == 1)
}

/// Thumbnails in the order of their key: `RETURNING` gives rows in no defined order.
fn sorted(mut thumbnails: Vec<ThumbnailRecord>) -> Vec<ThumbnailRecord> {
    thumbnails.sort_by(|a, b| thumbnail_key(a).cmp(&thumbnail_key(b)));
    thumbnails
}

/// Rows a statement changed, as the trait counts them.
fn count_of(changed: usize) -> u64 {
    u64::try_from(changed).unwrap_or(u64::MAX)
}

/// The primary key of a thumbnail's row, and its order.
fn thumbnail_key(t: &ThumbnailRecord) -> (&str, &str, u32, u32, &str, bool) {
    (
        &t.origin,
        &t.media_id,
        t.width,
        t.height,
        &t.method,
        t.animated,
    )
}

fn media_from_row(row: &Row<'_>) -> Result<MediaRecord> {
    let media_id: String = row.get("media_id")?;
    Ok(MediaRecord {
        size: to_u64(row.get("size")?, &format!("size of media {media_id}"))?,
        uploader: row.get("uploader")?,
        content_type: row.get("content_type")?,
        file_name: row.get("file_name")?,
        sha256: row.get("sha256")?,
        created_ts: row.get("created_ts")?,
        last_access_ts: row.get("last_access_ts")?,
        expires_ts: row.get("expires_ts")?,
        quarantined: row.get("quarantined")?,
        media_id,
    })
}

fn remote_from_row(row: &Row<'_>) -> Result<RemoteMediaRecord> {
    let media_id: String = row.get("media_id")?;
    Ok(RemoteMediaRecord {
        size: to_u64(
            row.get("size")?,
            &format!("size of remote media {media_id}"),
        )?,
        origin: row.get("origin")?,
        content_type: row.get("content_type")?,
        file_name: row.get("file_name")?,
        sha256: row.get("sha256")?,
        fetched_ts: row.get("fetched_ts")?,
        last_access_ts: row.get("last_access_ts")?,
        quarantined: row.get("quarantined")?,
        media_id,
    })
}

fn thumbnail_from_row(row: &Row<'_>) -> Result<ThumbnailRecord> {
    Ok(ThumbnailRecord {
        origin: row.get("origin")?,
        media_id: row.get("media_id")?,
        width: dimension(row.get("width")?, "width")?,
        height: dimension(row.get("height")?, "height")?,
        method: row.get("method")?,
        animated: row.get("animated")?,
        content_type: row.get("content_type")?,
        size: to_u64(row.get("size")?, "size of thumbnail")?,
        sha256: row.get("sha256")?,
    })
}

/// A thumbnail's width or height, written from a `u32`.
fn dimension(value: i64, column: &str) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("thumbnail {column} out of range: {value}")))
}
