//! `MediaStore` on a tenant's PostgreSQL schema (tables in `0014_media.sql`): local uploads,
//! cached remote media and thumbnails. Changes of several statements run in one transaction;
//! a quota's sums and the write they allow are serialised by a lock (see `lock_quota`).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};

use super::PostgresTenantStore;
use super::util::{conflict, to_i64, to_u64};
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
            ") m WHERE quarantined OR safe_from_quarantine ORDER BY media_id"
        )
    };
}

/// The first key of the advisory lock that serialises quota-checked uploads (the second is
/// the tenant's `media` table): "mdqt", apart from whatever else takes advisory locks.
const QUOTA_LOCK_CLASS: i32 = 0x6d64_7174;

/// Bytes of the tenant's stored local media: pending uploads (no `sha256` yet) count nothing.
/// `SUM` of BIGINT is NUMERIC; a sum past BIGINT fails rather than wrapping.
const TENANT_USAGE: &str =
    "SELECT COALESCE(SUM(size), 0)::BIGINT FROM media WHERE sha256 IS NOT NULL";
/// As `TENANT_USAGE`, of one uploader: a statement of its own, so that its plan reads the
/// uploader's index (a generic plan of `$1 IS NULL OR uploader = $1` reads the whole table).
const USER_USAGE: &str = "SELECT COALESCE(SUM(size), 0)::BIGINT FROM media \
                          WHERE uploader = $1 AND sha256 IS NOT NULL";

#[async_trait]
impl MediaStore for PostgresTenantStore {
    async fn insert_media(&self, media: &MediaRecord, quota: MediaQuota) -> Result<MediaInsert> {
        let mut tx = self.schema.begin().await?;
        lock_quota(&mut tx, quota).await?;
        let answer = quota_answer(&mut tx, &media.uploader, media.size, quota).await?;
        if answer != MediaInsert::Stored {
            // Nothing is stored either way (dropping the transaction rolls it back), but a
            // taken id is the better answer.
            if media_exists(&mut tx, &media.media_id).await? {
                return Err(StoreError::Conflict(format!("media {}", media.media_id)));
            }
            return Ok(answer);
        }
        write_media(&mut tx, media).await?;
        tx.commit().await?;
        Ok(MediaInsert::Stored)
    }

    async fn insert_pending_media(&self, media: &MediaRecord) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        write_media(&mut conn, media).await
    }

    async fn count_pending_media(&self, uploader: &str, now_ts: i64) -> Result<u64> {
        // A pending upload without an expiry never runs out (as in `complete_pending_media`).
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM media \
             WHERE uploader = $1 AND sha256 IS NULL \
               AND (expires_ts IS NULL OR expires_ts >= $2)",
        )
        .bind(uploader)
        .bind(now_ts)
        .fetch_one(&mut *conn)
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
        let mut tx = self.schema.begin().await?;
        // The quota lock before the row's, in the order `insert_media` takes them too.
        lock_quota(&mut tx, quota).await?;
        let state = pending_state(&mut tx, media_id).await?;
        if let Some(refusal) = pending_refusal(state.as_ref(), uploader, now_ts) {
            return Ok(refusal);
        }
        let answer = quota_answer(&mut tx, uploader, bytes.size, quota).await?;
        if answer != MediaInsert::Stored {
            return Ok(quota_refusal(answer));
        }
        fill_pending(&mut tx, media_id, bytes).await?;
        tx.commit().await?;
        Ok(PendingUpload::Stored)
    }

    async fn delete_expired_pending_media(&self, now_ts: i64) -> Result<u64> {
        // Pending uploads are few (a user may hold only some at once): one statement.
        let mut conn = self.schema.conn().await?;
        let deleted = sqlx::query("DELETE FROM media WHERE sha256 IS NULL AND expires_ts < $1")
            .bind(now_ts)
            .execute(&mut *conn)
            .await?;
        Ok(deleted.rows_affected())
    }

    async fn media(&self, media_id: &str) -> Result<Option<MediaRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(select_media!("WHERE media_id = $1"))
            .bind(media_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(media_from_row).transpose()
    }

    async fn touch_media(&self, media_id: &str, ts: i64) -> Result<()> {
        // Downloads finish in any order: the latest time stays.
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "UPDATE media SET last_access_ts = GREATEST(last_access_ts, $1) WHERE media_id = $2",
        )
        .bind(ts)
        .bind(media_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn delete_media(
        &self,
        media_id: &str,
    ) -> Result<Option<(MediaRecord, Vec<ThumbnailRecord>)>> {
        let mut tx = self.schema.begin().await?;
        let row = sqlx::query(concat!(
            "DELETE FROM media WHERE media_id = $1 RETURNING ",
            media_columns!()
        ))
        .bind(media_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let media = media_from_row(&row)?;
        let thumbnails = delete_local_thumbnails(&mut tx, media_id).await?;
        tx.commit().await?;
        Ok(Some((media, thumbnails)))
    }

    async fn set_media_quarantined(&self, media_id: &str, quarantined: bool) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE media SET quarantined = $1, quarantined_by = NULL WHERE media_id = $2",
        )
        .bind(quarantined)
        .bind(media_id)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn quarantine_media_by(&self, media_id: &str, by: &str) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE media SET quarantined = TRUE, quarantined_by = $1 \
             WHERE media_id = $2 AND NOT safe_from_quarantine",
        )
        .bind(by)
        .bind(media_id)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn quarantine_uploads_by(&self, uploader: &str, by: &str) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE media SET quarantined = TRUE, quarantined_by = $1 \
             WHERE uploader = $2 AND NOT quarantined AND NOT safe_from_quarantine",
        )
        .bind(by)
        .bind(uploader)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected())
    }

    async fn set_media_safe(&self, media_id: &str, safe: bool) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query("UPDATE media SET safe_from_quarantine = $1 WHERE media_id = $2")
            .bind(safe)
            .bind(media_id)
            .execute(&mut *conn)
            .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn quarantine_marks(
        &self,
        uploader: Option<&str>,
        media_id: Option<&str>,
    ) -> Result<Vec<QuarantineMark>> {
        let mut conn = self.schema.conn().await?;
        // One statement per case, so that each plan reads the index it can.
        let query = match (uploader, media_id) {
            (_, Some(media_id)) => sqlx::query(select_marks!(
                "WHERE media_id = $1 AND ($2::TEXT IS NULL OR uploader = $2)"
            ))
            .bind(media_id)
            .bind(uploader),
            (Some(uploader), None) => {
                sqlx::query(select_marks!("WHERE uploader = $1")).bind(uploader)
            }
            (None, None) => sqlx::query(select_marks!("")),
        };
        let rows = query.fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|row| {
                Ok(QuarantineMark {
                    media_id: row.try_get("media_id")?,
                    quarantined_by: row.try_get("quarantined_by")?,
                    safe_from_quarantine: row.try_get("safe_from_quarantine")?,
                })
            })
            .collect()
    }

    async fn local_media_unused_since(
        &self,
        ts: i64,
        size_gt: u64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MediaRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(select_media!(
            "WHERE last_access_ts < $1 AND size > $2 AND media_id > $3 \
             AND sha256 IS NOT NULL AND NOT quarantined AND NOT safe_from_quarantine \
             ORDER BY media_id LIMIT $4"
        ))
        .bind(ts)
        .bind(to_i64(size_gt))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(media_from_row).collect()
    }

    async fn avatar_uris(&self) -> Result<Vec<String>> {
        let mut conn = self.schema.conn().await?;
        // `json`, not `jsonb`: it takes any text the PDU's canonical JSON may hold.
        let uris: Vec<String> = sqlx::query_scalar(
            "SELECT avatar_url FROM users WHERE avatar_url IS NOT NULL \
             UNION SELECT uri FROM (SELECT pdu::json -> 'content' ->> 'url' AS uri FROM events \
             WHERE event_type = 'm.room.avatar' AND state_key = '') avatars \
             WHERE uri IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(uris)
    }

    async fn list_media(
        &self,
        uploader: Option<&str>,
        from: Option<&MediaCursor>,
        limit: u32,
    ) -> Result<Vec<MediaRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = list(&mut conn, uploader, from, i64::from(limit)).await?;
        rows.iter().map(media_from_row).collect()
    }

    async fn media_usage(&self, uploader: Option<&str>) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        usage(&mut conn, uploader).await
    }

    async fn remote_media(
        &self,
        origin: &str,
        media_id: &str,
    ) -> Result<Option<RemoteMediaRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            remote_columns!(),
            " FROM remote_media WHERE origin = $1 AND media_id = $2"
        ))
        .bind(origin)
        .bind(media_id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(remote_from_row).transpose()
    }

    async fn insert_remote_media(&self, media: &RemoteMediaRecord) -> Result<()> {
        // Fetched again (after a purge, or concurrently): the new record replaces the old.
        let mut conn = self.schema.conn().await?;
        sqlx::query(concat!(
            "INSERT INTO remote_media (",
            remote_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (origin, media_id) DO UPDATE SET \
                 content_type = excluded.content_type, file_name = excluded.file_name, \
                 size = excluded.size, sha256 = excluded.sha256, \
                 fetched_ts = excluded.fetched_ts, last_access_ts = excluded.last_access_ts, \
                 quarantined = excluded.quarantined"
        ))
        .bind(&media.origin)
        .bind(&media.media_id)
        .bind(&media.content_type)
        .bind(&media.file_name)
        .bind(to_i64(media.size))
        .bind(&media.sha256)
        .bind(media.fetched_ts)
        .bind(media.last_access_ts)
        .bind(media.quarantined)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn touch_remote_media(&self, origin: &str, media_id: &str, ts: i64) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "UPDATE remote_media SET last_access_ts = GREATEST(last_access_ts, $1) \
             WHERE origin = $2 AND media_id = $3",
        )
        .bind(ts)
        .bind(origin)
        .bind(media_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn delete_remote_media(
        &self,
        origin: &str,
        media_id: &str,
    ) -> Result<Option<(RemoteMediaRecord, Vec<ThumbnailRecord>)>> {
        let mut tx = self.schema.begin().await?;
        let row = sqlx::query(concat!(
            "DELETE FROM remote_media WHERE origin = $1 AND media_id = $2 RETURNING ",
            remote_columns!()
        ))
        .bind(origin)
        .bind(media_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let media = remote_from_row(&row)?;
        let rows = sqlx::query(concat!(
            "DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2 RETURNING ",
            thumbnail_columns!()
        ))
        .bind(origin)
        .bind(media_id)
        .fetch_all(&mut *tx)
        .await?;
        let thumbnails = thumbnails_from_rows(&rows)?;
        tx.commit().await?;
        Ok(Some((media, thumbnails)))
    }

    async fn set_remote_media_quarantined(
        &self,
        origin: &str,
        media_id: &str,
        quarantined: bool,
    ) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE remote_media SET quarantined = $1, quarantined_by = NULL \
             WHERE origin = $2 AND media_id = $3",
        )
        .bind(quarantined)
        .bind(origin)
        .bind(media_id)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn quarantine_remote_media_by(
        &self,
        origin: &str,
        media_id: &str,
        by: &str,
    ) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE remote_media SET quarantined = TRUE, quarantined_by = $1 \
             WHERE origin = $2 AND media_id = $3",
        )
        .bind(by)
        .bind(origin)
        .bind(media_id)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn remote_media_quarantined_by(
        &self,
        origin: &str,
        media_id: &str,
    ) -> Result<Option<String>> {
        let mut conn = self.schema.conn().await?;
        let by: Option<Option<String>> = sqlx::query_scalar(
            "SELECT quarantined_by FROM remote_media WHERE origin = $1 AND media_id = $2",
        )
        .bind(origin)
        .bind(media_id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(by.flatten())
    }

    async fn remote_media_unused_since(
        &self,
        ts: i64,
        limit: u32,
    ) -> Result<Vec<RemoteMediaRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            remote_columns!(),
            " FROM remote_media WHERE last_access_ts < $1 AND NOT quarantined \
             ORDER BY last_access_ts, origin, media_id LIMIT $2"
        ))
        .bind(ts)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(remote_from_row).collect()
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
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            thumbnail_columns!(),
            " FROM media_thumbnails WHERE origin = $1 AND media_id = $2 \
             AND width = $3 AND height = $4 AND method = $5 AND animated = $6"
        ))
        .bind(origin)
        .bind(media_id)
        .bind(i64::from(width))
        .bind(i64::from(height))
        .bind(method)
        .bind(animated)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(thumbnail_from_row).transpose()
    }

    async fn insert_thumbnail(&self, thumbnail: &ThumbnailRecord) -> Result<bool> {
        // One made concurrently under the same name stays as it is.
        let mut conn = self.schema.conn().await?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO media_thumbnails (",
            thumbnail_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (origin, media_id, width, height, method, animated) DO NOTHING"
        ))
        .bind(&thumbnail.origin)
        .bind(&thumbnail.media_id)
        .bind(i64::from(thumbnail.width))
        .bind(i64::from(thumbnail.height))
        .bind(&thumbnail.method)
        .bind(thumbnail.animated)
        .bind(&thumbnail.content_type)
        .bind(to_i64(thumbnail.size))
        .bind(&thumbnail.sha256)
        .execute(&mut *conn)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn count_blob_references(&self, sha256: &str) -> Result<u64> {
        // Three lookups in the tables' digest indexes.
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM media WHERE sha256 = $1) \
                  + (SELECT COUNT(*) FROM remote_media WHERE sha256 = $1) \
                  + (SELECT COUNT(*) FROM media_thumbnails WHERE sha256 = $1)",
        )
        .bind(sha256)
        .fetch_one(&mut *conn)
        .await?;
        to_u64(count, "blob references")
    }

    async fn blob_references(&self, from: Option<&str>, limit: u32) -> Result<Vec<String>> {
        // Each table gives its first `limit` digests from its index; the first `limit` of their
        // union are among them. '' sorts before every digest.
        let mut conn = self.schema.conn().await?;
        let digests = sqlx::query_scalar(
            "SELECT sha256 FROM ( \
                 (SELECT DISTINCT sha256 FROM media \
                  WHERE sha256 > COALESCE($1::text, '') ORDER BY sha256 LIMIT $2) \
                 UNION \
                 (SELECT DISTINCT sha256 FROM remote_media \
                  WHERE sha256 > COALESCE($1::text, '') ORDER BY sha256 LIMIT $2) \
                 UNION \
                 (SELECT DISTINCT sha256 FROM media_thumbnails \
                  WHERE sha256 > COALESCE($1::text, '') ORDER BY sha256 LIMIT $2)) AS digests \
             ORDER BY sha256 LIMIT $2",
        )
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        Ok(digests)
    }
}

/// Inserts a media row; `Conflict` when the id exists.
async fn write_media(conn: &mut PgConnection, media: &MediaRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO media (",
        media_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&media.media_id)
    .bind(&media.uploader)
    .bind(&media.content_type)
    .bind(&media.file_name)
    .bind(to_i64(media.size))
    .bind(&media.sha256)
    .bind(media.created_ts)
    .bind(media.last_access_ts)
    .bind(media.expires_ts)
    .bind(media.quarantined)
    .execute(&mut *conn)
    .await
    .map_err(|err| conflict(err, || format!("media {}", media.media_id)))?;
    Ok(())
}

async fn media_exists(conn: &mut PgConnection, media_id: &str) -> Result<bool> {
    let found = sqlx::query("SELECT 1 FROM media WHERE media_id = $1")
        .bind(media_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Serialises the tenant's quota-checked uploads until the transaction ends, when `quota`
/// limits anything. Under READ COMMITTED two uploads could otherwise each sum the usage before
/// the other's write and both fit. After the lock every statement takes a new snapshot, so the
/// sums see every upload committed before. An advisory lock rather than `LOCK TABLE media`:
/// that would also hold up every download's `touch_media` and every deletion for the length
/// of the sums, though those never raise the usage. Keyed by the `media` table's oid, which
/// differs between the tenants' schemas in the shared database, so tenants never wait on each
/// other.
async fn lock_quota(conn: &mut PgConnection, quota: MediaQuota) -> Result<()> {
    if quota.tenant_bytes.is_none() && quota.user_bytes.is_none() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1, 'media'::regclass::oid::int4)")
        .bind(QUOTA_LOCK_CLASS)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether `size` more bytes of `uploader`'s fit `quota`: `Stored` when they do, else the
/// quota they would exceed, the tenant's first. The caller holds the quota lock.
async fn quota_answer(
    conn: &mut PgConnection,
    uploader: &str,
    size: u64,
    quota: MediaQuota,
) -> Result<MediaInsert> {
    if let Some(limit) = quota.tenant_bytes
        && usage(conn, None).await?.saturating_add(size) > limit
    {
        return Ok(MediaInsert::TenantQuotaExceeded);
    }
    if let Some(limit) = quota.user_bytes
        && usage(conn, Some(uploader)).await?.saturating_add(size) > limit
    {
        return Ok(MediaInsert::UserQuotaExceeded);
    }
    Ok(MediaInsert::Stored)
}

/// Bytes of stored local media, of `uploader` when given.
async fn usage(conn: &mut PgConnection, uploader: Option<&str>) -> Result<u64> {
    let sum: i64 = match uploader {
        None => {
            sqlx::query_scalar(TENANT_USAGE)
                .fetch_one(&mut *conn)
                .await?
        }
        Some(uploader) => {
            sqlx::query_scalar(USER_USAGE)
                .bind(uploader)
                .fetch_one(&mut *conn)
                .await?
        }
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

/// The media id's state, its row locked until the transaction ends: a second completion of
/// the same id waits here, then sees the bytes the first gave.
async fn pending_state(conn: &mut PgConnection, media_id: &str) -> Result<Option<PendingState>> {
    let row = sqlx::query(
        "SELECT uploader, sha256 IS NOT NULL AS uploaded, expires_ts FROM media \
         WHERE media_id = $1 FOR UPDATE",
    )
    .bind(media_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(PendingState {
        uploader: row.try_get("uploader")?,
        uploaded: row.try_get("uploaded")?,
        expires_ts: row.try_get("expires_ts")?,
    }))
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

async fn fill_pending(
    conn: &mut PgConnection,
    media_id: &str,
    bytes: &UploadedBytes,
) -> Result<()> {
    sqlx::query(
        "UPDATE media SET content_type = $1, file_name = $2, size = $3, sha256 = $4, \
                          expires_ts = NULL \
         WHERE media_id = $5",
    )
    .bind(&bytes.content_type)
    .bind(&bytes.file_name)
    .bind(to_i64(bytes.size))
    .bind(&bytes.sha256)
    .bind(media_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Local media after `from` in `(created_ts, media_id)` order, of `uploader` when given. One
/// statement per case, each a range of its own index, whatever plan PostgreSQL keeps.
async fn list(
    conn: &mut PgConnection,
    uploader: Option<&str>,
    from: Option<&MediaCursor>,
    limit: i64,
) -> Result<Vec<PgRow>> {
    let rows = match (uploader, from) {
        (None, None) => {
            sqlx::query(select_media!("ORDER BY created_ts, media_id LIMIT $1"))
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
        }
        (None, Some((ts, id))) => {
            sqlx::query(select_media!(
                "WHERE (created_ts, media_id) > ($1, $2) \
                 ORDER BY created_ts, media_id LIMIT $3"
            ))
            .bind(ts)
            .bind(id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
        (Some(uploader), None) => {
            sqlx::query(select_media!(
                "WHERE uploader = $1 ORDER BY created_ts, media_id LIMIT $2"
            ))
            .bind(uploader)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
        (Some(uploader), Some((ts, id))) => {
            sqlx::query(select_media!(
                "WHERE uploader = $1 AND (created_ts, media_id) > ($2, $3) \
                 ORDER BY created_ts, media_id LIMIT $4"
            ))
            .bind(uploader)
            .bind(ts)
            .bind(id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    Ok(rows)
}

/// Removes the thumbnails of local media `media_id`. The store doesn't know the tenant's
/// server name, the origin of local thumbnails; they are the thumbnails of that id but of no
/// cached remote media of that id (the tenant never caches its own media as remote),
/// each checked by the primary key of `remote_media`.
async fn delete_local_thumbnails(
    conn: &mut PgConnection,
    media_id: &str,
) -> Result<Vec<ThumbnailRecord>> {
    let rows = sqlx::query(concat!(
        "DELETE FROM media_thumbnails AS t WHERE t.media_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM remote_media AS r \
                         WHERE r.origin = t.origin AND r.media_id = t.media_id) \
         RETURNING ",
        thumbnail_columns!()
    ))
    .bind(media_id)
    .fetch_all(&mut *conn)
    .await?;
    thumbnails_from_rows(&rows)
}

/// Thumbnails in the order of their key: `RETURNING` gives rows in no defined order.
fn thumbnails_from_rows(rows: &[PgRow]) -> Result<Vec<ThumbnailRecord>> {
    let mut thumbnails = rows
        .iter()
        .map(thumbnail_from_row)
        .collect::<Result<Vec<_>>>()?;
    thumbnails.sort_by(|a, b| thumbnail_key(a).cmp(&thumbnail_key(b)));
    Ok(thumbnails)
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

fn media_from_row(row: &PgRow) -> Result<MediaRecord> {
    let media_id: String = row.try_get("media_id")?;
    Ok(MediaRecord {
        size: to_u64(row.try_get("size")?, &format!("size of media {media_id}"))?,
        uploader: row.try_get("uploader")?,
        content_type: row.try_get("content_type")?,
        file_name: row.try_get("file_name")?,
        sha256: row.try_get("sha256")?,
        created_ts: row.try_get("created_ts")?,
        last_access_ts: row.try_get("last_access_ts")?,
        expires_ts: row.try_get("expires_ts")?,
        quarantined: row.try_get("quarantined")?,
        media_id,
    })
}

fn remote_from_row(row: &PgRow) -> Result<RemoteMediaRecord> {
    let media_id: String = row.try_get("media_id")?;
    Ok(RemoteMediaRecord {
        size: to_u64(
            row.try_get("size")?,
            &format!("size of remote media {media_id}"),
        )?,
        origin: row.try_get("origin")?,
        content_type: row.try_get("content_type")?,
        file_name: row.try_get("file_name")?,
        sha256: row.try_get("sha256")?,
        fetched_ts: row.try_get("fetched_ts")?,
        last_access_ts: row.try_get("last_access_ts")?,
        quarantined: row.try_get("quarantined")?,
        media_id,
    })
}

fn thumbnail_from_row(row: &PgRow) -> Result<ThumbnailRecord> {
    Ok(ThumbnailRecord {
        origin: row.try_get("origin")?,
        media_id: row.try_get("media_id")?,
        width: dimension(row.try_get("width")?, "width")?,
        height: dimension(row.try_get("height")?, "height")?,
        method: row.try_get("method")?,
        animated: row.try_get("animated")?,
        content_type: row.try_get("content_type")?,
        size: to_u64(row.try_get("size")?, "size of thumbnail")?,
        sha256: row.try_get("sha256")?,
    })
}

/// A thumbnail's width or height, written from a `u32`.
fn dimension(value: i64, column: &str) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("thumbnail {column} out of range: {value}")))
}
