//! Server-side key backups: versions numbered per user, their session keys and etags. A
//! deleted version stays as a tombstone without keys, so its number is never handed out again;
//! versions are stored as integers and named by their canonical decimal form.

use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use super::missing;
use crate::sqlite::util::{begin_write, found, to_i64, to_u64};
use crate::{BackupKeyRecord, BackupVersionRecord, Result, StoreError};

/// `SELECT <every backup version column> FROM backup_versions <rest>`, as a `&'static str`.
macro_rules! select_versions {
    ($rest:literal) => {
        concat!(
            "SELECT localpart, version, algorithm, auth_data, etag FROM backup_versions ",
            $rest
        )
    };
}

pub(super) async fn create_backup_version(
    pool: &SqlitePool,
    localpart: &str,
    algorithm: &str,
    auth_data_json: &str,
) -> Result<String> {
    // Picking the number and inserting are one statement under the write lock, so concurrent
    // creations can't get the same number; tombstones count, so numbers are never reused.
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO backup_versions (localpart, version, algorithm, auth_data) \
         SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3 \
         FROM backup_versions WHERE localpart = ?1 \
         RETURNING version",
    )
    .bind(localpart)
    .bind(algorithm)
    .bind(auth_data_json)
    .fetch_one(pool)
    .await
    .map_err(|err| missing(err, || format!("user {localpart}")))?;
    Ok(version.to_string())
}

pub(super) async fn backup_version(
    pool: &SqlitePool,
    localpart: &str,
    version: Option<&str>,
) -> Result<Option<BackupVersionRecord>> {
    let row = match version {
        None => {
            sqlx::query(select_versions!(
                "WHERE localpart = ? AND deleted = 0 ORDER BY version DESC LIMIT 1"
            ))
            .bind(localpart)
            .fetch_optional(pool)
            .await?
        }
        Some(version) => {
            let Some(number) = parse_version(version) else {
                return Ok(None);
            };
            sqlx::query(select_versions!(
                "WHERE localpart = ? AND version = ? AND deleted = 0"
            ))
            .bind(localpart)
            .bind(number)
            .fetch_optional(pool)
            .await?
        }
    };
    row.as_ref().map(version_from_row).transpose()
}

pub(super) async fn update_backup_version(
    pool: &SqlitePool,
    localpart: &str,
    version: &str,
    auth_data_json: &str,
) -> Result<bool> {
    let Some(number) = parse_version(version) else {
        return Ok(false);
    };
    let updated = sqlx::query(
        "UPDATE backup_versions SET auth_data = ? \
         WHERE localpart = ? AND version = ? AND deleted = 0",
    )
    .bind(auth_data_json)
    .bind(localpart)
    .bind(number)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub(super) async fn delete_backup_version(
    pool: &SqlitePool,
    localpart: &str,
    version: &str,
) -> Result<bool> {
    let Some(number) = parse_version(version) else {
        return Ok(false);
    };
    let mut tx = begin_write(pool).await?;
    // Only the number has to survive; the user asked for the backup's data to go. Deleting
    // a deleted version again succeeds, as in Synapse: only never-created versions are unknown.
    let deleted = sqlx::query(
        "UPDATE backup_versions SET deleted = 1, auth_data = '{}' \
         WHERE localpart = ? AND version = ?",
    )
    .bind(localpart)
    .bind(number)
    .execute(&mut *tx)
    .await?;
    if deleted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM backup_keys WHERE localpart = ? AND version = ?")
        .bind(localpart)
        .bind(number)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn put_backup_keys(
    pool: &SqlitePool,
    localpart: &str,
    version: &str,
    keys: &[BackupKeyRecord],
) -> Result<()> {
    let not_found = || format!("backup version {version} of {localpart}");
    let number = parse_version(version).ok_or_else(|| StoreError::NotFound(not_found()))?;
    let mut tx = begin_write(pool).await?;
    // Checks that the version is live and bumps its etag in one statement; an empty upload
    // changes no key, so clients have no reason to fetch the keys again.
    let bumped = sqlx::query(
        "UPDATE backup_versions SET etag = etag + ? \
         WHERE localpart = ? AND version = ? AND deleted = 0",
    )
    .bind(i64::from(!keys.is_empty()))
    .bind(localpart)
    .bind(number)
    .execute(&mut *tx)
    .await?;
    found(bumped.rows_affected(), not_found)?;
    for key in keys {
        sqlx::query(
            "INSERT INTO backup_keys (localpart, version, room_id, session_id, \
                                      first_message_index, forwarded_count, is_verified, \
                                      session_data) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (localpart, version, room_id, session_id) DO UPDATE \
             SET first_message_index = excluded.first_message_index, \
                 forwarded_count = excluded.forwarded_count, \
                 is_verified = excluded.is_verified, \
                 session_data = excluded.session_data",
        )
        .bind(localpart)
        .bind(number)
        .bind(&key.room_id)
        .bind(&key.session_id)
        .bind(to_i64(key.first_message_index))
        .bind(to_i64(key.forwarded_count))
        .bind(key.is_verified)
        .bind(&key.session_data_json)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn backup_keys(
    pool: &SqlitePool,
    localpart: &str,
    version: &str,
    room_id: Option<&str>,
    session_id: Option<&str>,
) -> Result<Vec<BackupKeyRecord>> {
    let Some(number) = parse_version(version) else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, \
                session_data \
         FROM backup_keys \
         WHERE localpart = ?1 AND version = ?2 \
           AND (?3 IS NULL OR room_id = ?3) AND (?4 IS NULL OR session_id = ?4) \
         ORDER BY room_id, session_id",
    )
    .bind(localpart)
    .bind(number)
    .bind(room_id)
    .bind(session_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_from_row).collect()
}

pub(super) async fn delete_backup_keys(
    pool: &SqlitePool,
    localpart: &str,
    version: &str,
    room_id: Option<&str>,
    session_id: Option<&str>,
) -> Result<u64> {
    let not_found = || format!("backup version {version} of {localpart}");
    let number = parse_version(version).ok_or_else(|| StoreError::NotFound(not_found()))?;
    let mut tx = begin_write(pool).await?;
    let live = sqlx::query(
        "SELECT 1 FROM backup_versions WHERE localpart = ? AND version = ? AND deleted = 0",
    )
    .bind(localpart)
    .bind(number)
    .fetch_optional(&mut *tx)
    .await?;
    if live.is_none() {
        return Err(StoreError::NotFound(not_found()));
    }
    let deleted = sqlx::query(
        "DELETE FROM backup_keys \
         WHERE localpart = ?1 AND version = ?2 \
           AND (?3 IS NULL OR room_id = ?3) AND (?4 IS NULL OR session_id = ?4)",
    )
    .bind(localpart)
    .bind(number)
    .bind(room_id)
    .bind(session_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted > 0 {
        sqlx::query(
            "UPDATE backup_versions SET etag = etag + 1 WHERE localpart = ? AND version = ?",
        )
        .bind(localpart)
        .bind(number)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(deleted)
}

pub(super) async fn count_backup_keys(
    pool: &SqlitePool,
    localpart: &str,
    version: &str,
) -> Result<u64> {
    let Some(number) = parse_version(version) else {
        return Ok(0);
    };
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM backup_keys WHERE localpart = ? AND version = ?")
            .bind(localpart)
            .bind(number)
            .fetch_one(pool)
            .await?;
    to_u64(count, "backup key count")
}

/// Versions are handed out as decimal integers from 1; anything else ("01", "x", "0") names
/// no version.
fn parse_version(version: &str) -> Option<i64> {
    let number = version.parse::<i64>().ok()?;
    (number > 0 && number.to_string() == version).then_some(number)
}

fn version_from_row(row: &SqliteRow) -> Result<BackupVersionRecord> {
    let version: i64 = row.try_get("version")?;
    Ok(BackupVersionRecord {
        localpart: row.try_get("localpart")?,
        version: version.to_string(),
        algorithm: row.try_get("algorithm")?,
        auth_data_json: row.try_get("auth_data")?,
        etag: to_u64(row.try_get("etag")?, "backup etag")?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<BackupKeyRecord> {
    Ok(BackupKeyRecord {
        room_id: row.try_get("room_id")?,
        session_id: row.try_get("session_id")?,
        first_message_index: to_u64(row.try_get("first_message_index")?, "first_message_index")?,
        forwarded_count: to_u64(row.try_get("forwarded_count")?, "forwarded_count")?,
        is_verified: row.try_get("is_verified")?,
        session_data_json: row.try_get("session_data")?,
    })
}
