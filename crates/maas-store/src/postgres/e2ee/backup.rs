//! Server-side key backups: versions numbered per user, their session keys and etags. A
//! deleted version stays as a tombstone without keys, so its number is never handed out again;
//! versions are stored as integers and named by their canonical decimal form.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::missing;
use crate::postgres::util::{Schema, found, to_i64, to_u64};
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
    schema: &Schema,
    localpart: &str,
    algorithm: &str,
    auth_data_json: &str,
) -> Result<String> {
    let mut tx = schema.begin().await?;
    // Creations for one user take turns on the user's row, so each one's MAX sees the number
    // the one before it took (each statement reads what is committed when it starts). The
    // lock doesn't conflict with the key-share locks of foreign key checks.
    let user = sqlx::query("SELECT 1 FROM users WHERE localpart = $1 FOR NO KEY UPDATE")
        .bind(localpart)
        .fetch_optional(&mut *tx)
        .await?;
    if user.is_none() {
        return Err(StoreError::NotFound(format!("user {localpart}")));
    }
    // Tombstones count, so numbers are never reused.
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO backup_versions (localpart, version, algorithm, auth_data) \
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3 \
         FROM backup_versions WHERE localpart = $1 \
         RETURNING version",
    )
    .bind(localpart)
    .bind(algorithm)
    .bind(auth_data_json)
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| missing(err, || format!("user {localpart}")))?;
    tx.commit().await?;
    Ok(version.to_string())
}

pub(super) async fn backup_version(
    schema: &Schema,
    localpart: &str,
    version: Option<&str>,
) -> Result<Option<BackupVersionRecord>> {
    let mut conn = schema.conn().await?;
    let row = match version {
        None => {
            sqlx::query(select_versions!(
                "WHERE localpart = $1 AND NOT deleted ORDER BY version DESC LIMIT 1"
            ))
            .bind(localpart)
            .fetch_optional(&mut *conn)
            .await?
        }
        Some(version) => {
            let Some(number) = parse_version(version) else {
                return Ok(None);
            };
            sqlx::query(select_versions!(
                "WHERE localpart = $1 AND version = $2 AND NOT deleted"
            ))
            .bind(localpart)
            .bind(number)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    row.as_ref().map(version_from_row).transpose()
}

pub(super) async fn update_backup_version(
    schema: &Schema,
    localpart: &str,
    version: &str,
    auth_data_json: &str,
) -> Result<bool> {
    let Some(number) = parse_version(version) else {
        return Ok(false);
    };
    let mut conn = schema.conn().await?;
    let updated = sqlx::query(
        "UPDATE backup_versions SET auth_data = $1 \
         WHERE localpart = $2 AND version = $3 AND NOT deleted",
    )
    .bind(auth_data_json)
    .bind(localpart)
    .bind(number)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub(super) async fn delete_backup_version(
    schema: &Schema,
    localpart: &str,
    version: &str,
) -> Result<bool> {
    let Some(number) = parse_version(version) else {
        return Ok(false);
    };
    let mut tx = schema.begin().await?;
    // Only the number has to survive; the user asked for the backup's data to go. Deleting
    // a deleted version again succeeds, as in Synapse: only never-created versions are unknown.
    // The update locks the version row, so a key upload either committed before (and its keys
    // go below) or finds the version deleted.
    let deleted = sqlx::query(
        "UPDATE backup_versions SET deleted = TRUE, auth_data = '{}' \
         WHERE localpart = $1 AND version = $2",
    )
    .bind(localpart)
    .bind(number)
    .execute(&mut *tx)
    .await?;
    if deleted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM backup_keys WHERE localpart = $1 AND version = $2")
        .bind(localpart)
        .bind(number)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn put_backup_keys(
    schema: &Schema,
    localpart: &str,
    version: &str,
    keys: &[BackupKeyRecord],
) -> Result<()> {
    let not_found = || format!("backup version {version} of {localpart}");
    let number = parse_version(version).ok_or_else(|| StoreError::NotFound(not_found()))?;
    let mut tx = schema.begin().await?;
    // Checks that the version is live and bumps its etag in one statement, which also locks
    // the version against a concurrent deletion until the keys are in; an empty upload
    // changes no key, so clients have no reason to fetch the keys again.
    let bumped = sqlx::query(
        "UPDATE backup_versions SET etag = etag + $1 \
         WHERE localpart = $2 AND version = $3 AND NOT deleted",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
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
    tx.commit().await
}

pub(super) async fn backup_keys(
    schema: &Schema,
    localpart: &str,
    version: &str,
    room_id: Option<&str>,
    session_id: Option<&str>,
) -> Result<Vec<BackupKeyRecord>> {
    let Some(number) = parse_version(version) else {
        return Ok(Vec::new());
    };
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(
        "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, \
                session_data \
         FROM backup_keys \
         WHERE localpart = $1 AND version = $2 \
           AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4) \
         ORDER BY room_id, session_id",
    )
    .bind(localpart)
    .bind(number)
    .bind(room_id)
    .bind(session_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(key_from_row).collect()
}

pub(super) async fn delete_backup_keys(
    schema: &Schema,
    localpart: &str,
    version: &str,
    room_id: Option<&str>,
    session_id: Option<&str>,
) -> Result<u64> {
    let not_found = || format!("backup version {version} of {localpart}");
    let number = parse_version(version).ok_or_else(|| StoreError::NotFound(not_found()))?;
    let mut tx = schema.begin().await?;
    // Locked like an upload does, so the deletion and the etag bump see one state of the
    // version; the lock doesn't conflict with the key-share locks of foreign key checks.
    let live = sqlx::query(
        "SELECT 1 FROM backup_versions WHERE localpart = $1 AND version = $2 AND NOT deleted \
         FOR NO KEY UPDATE",
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
         WHERE localpart = $1 AND version = $2 \
           AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)",
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
            "UPDATE backup_versions SET etag = etag + 1 WHERE localpart = $1 AND version = $2",
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
    schema: &Schema,
    localpart: &str,
    version: &str,
) -> Result<u64> {
    let Some(number) = parse_version(version) else {
        return Ok(0);
    };
    let mut conn = schema.conn().await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM backup_keys WHERE localpart = $1 AND version = $2",
    )
    .bind(localpart)
    .bind(number)
    .fetch_one(&mut *conn)
    .await?;
    to_u64(count, "backup key count")
}

/// Versions are handed out as decimal integers from 1; anything else ("01", "x", "0") names
/// no version.
fn parse_version(version: &str) -> Option<i64> {
    let number = version.parse::<i64>().ok()?;
    (number > 0 && number.to_string() == version).then_some(number)
}

fn version_from_row(row: &PgRow) -> Result<BackupVersionRecord> {
    let version: i64 = row.try_get("version")?;
    Ok(BackupVersionRecord {
        localpart: row.try_get("localpart")?,
        version: version.to_string(),
        algorithm: row.try_get("algorithm")?,
        auth_data_json: row.try_get("auth_data")?,
        etag: to_u64(row.try_get("etag")?, "backup etag")?,
    })
}

fn key_from_row(row: &PgRow) -> Result<BackupKeyRecord> {
    Ok(BackupKeyRecord {
        room_id: row.try_get("room_id")?,
        session_id: row.try_get("session_id")?,
        first_message_index: to_u64(row.try_get("first_message_index")?, "first_message_index")?,
        forwarded_count: to_u64(row.try_get("forwarded_count")?, "forwarded_count")?,
        is_verified: row.try_get("is_verified")?,
        session_data_json: row.try_get("session_data")?,
    })
}
