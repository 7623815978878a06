//! Device keys, one-time and fallback keys, cross-signing keys and the device-list change log.
//! A key's algorithm is stored in its own column, so claims and counts are index lookups
//! rather than prefix matches on key ids.

use std::sync::Arc;

use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use super::{device_name, missing};
use crate::sqlite::raw::Direct;
use crate::sqlite::util::{begin_write, to_u64};
use crate::{
    CrossSigningKeyRecord, DeviceKeysRecord, DeviceListChanges, OneTimeKeyRecord, Result,
    StoreError, StreamRange,
};

pub(super) async fn set_device_keys(pool: &SqlitePool, keys: &DeviceKeysRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO device_keys (localpart, device_id, keys_json) VALUES (?, ?, ?) \
         ON CONFLICT (localpart, device_id) DO UPDATE SET keys_json = excluded.keys_json",
    )
    .bind(&keys.localpart)
    .bind(&keys.device_id)
    .bind(&keys.keys_json)
    .execute(pool)
    .await
    .map_err(|err| missing(err, || device_name(&keys.localpart, &keys.device_id)))?;
    Ok(())
}

pub(super) async fn device_keys(
    pool: &SqlitePool,
    localpart: &str,
) -> Result<Vec<DeviceKeysRecord>> {
    let rows = sqlx::query(
        "SELECT localpart, device_id, keys_json FROM device_keys \
         WHERE localpart = ? ORDER BY device_id",
    )
    .bind(localpart)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DeviceKeysRecord {
                localpart: row.try_get("localpart")?,
                device_id: row.try_get("device_id")?,
                keys_json: row.try_get("keys_json")?,
            })
        })
        .collect()
}

pub(super) async fn add_one_time_keys(
    pool: &SqlitePool,
    localpart: &str,
    device_id: &str,
    keys: &[OneTimeKeyRecord],
) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    for key in keys {
        let inserted = sqlx::query(
            "INSERT INTO one_time_keys (localpart, device_id, algorithm, key_id, key_json) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (localpart, device_id, key_id) DO NOTHING",
        )
        .bind(localpart)
        .bind(device_id)
        .bind(algorithm(&key.key_id))
        .bind(&key.key_id)
        .bind(&key.key_json)
        .execute(&mut *tx)
        .await
        .map_err(|err| missing(err, || device_name(localpart, device_id)))?;
        if inserted.rows_affected() == 1 {
            continue;
        }
        // A client that didn't get the answer to an upload sends the same keys again; only a
        // different key under a known id is an error. Returning drops (rolls back) `tx`.
        let stored: Option<String> = sqlx::query_scalar(
            "SELECT key_json FROM one_time_keys \
             WHERE localpart = ? AND device_id = ? AND key_id = ?",
        )
        .bind(localpart)
        .bind(device_id)
        .bind(&key.key_id)
        .fetch_optional(&mut *tx)
        .await?;
        if stored.as_deref() != Some(key.key_json.as_str()) {
            return Err(StoreError::Conflict(format!("one-time key {}", key.key_id)));
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Read straight on the tenant's direct reader: every sync of the device asks.
pub(super) async fn count_one_time_keys(
    reader: &Arc<Direct>,
    localpart: &str,
    device_id: &str,
) -> Result<Vec<(String, u64)>> {
    reader
        .read(|db| {
            let mut statement = db.prepare_cached(
                "SELECT algorithm, COUNT(*) FROM one_time_keys \
                 WHERE localpart = ? AND device_id = ? GROUP BY algorithm ORDER BY algorithm",
            )?;
            let rows = statement.query_map((localpart, device_id), |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut counts = Vec::new();
            for row in rows {
                let (algorithm, count) = row?;
                counts.push((algorithm, to_u64(count, "one-time key count")?));
            }
            Ok(counts)
        })
        .await
}

pub(super) async fn claim_key(
    pool: &SqlitePool,
    localpart: &str,
    device_id: &str,
    algorithm: &str,
) -> Result<Option<OneTimeKeyRecord>> {
    // Under the write lock, so two claims can't take the same key, and an upload can't slip
    // in between finding no one-time key and handing out the fallback key.
    let mut tx = begin_write(pool).await?;
    let mut row = sqlx::query(
        "DELETE FROM one_time_keys WHERE id = \
           (SELECT id FROM one_time_keys \
            WHERE localpart = ? AND device_id = ? AND algorithm = ? ORDER BY id LIMIT 1) \
         RETURNING key_id, key_json",
    )
    .bind(localpart)
    .bind(device_id)
    .bind(algorithm)
    .fetch_optional(&mut *tx)
    .await?;
    if row.is_none() {
        // The used mark tells the device (through sync) to upload a new fallback key.
        row = sqlx::query(
            "UPDATE fallback_keys SET used = 1 \
             WHERE localpart = ? AND device_id = ? AND algorithm = ? \
             RETURNING key_id, key_json",
        )
        .bind(localpart)
        .bind(device_id)
        .bind(algorithm)
        .fetch_optional(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    row.as_ref().map(key_from_row).transpose()
}

pub(super) async fn set_fallback_keys(
    pool: &SqlitePool,
    localpart: &str,
    device_id: &str,
    keys: &[OneTimeKeyRecord],
) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    for key in keys {
        // The same key again keeps its used mark: resetting it would tell the device its key
        // is still unused, and it would never replace a key others already hold.
        sqlx::query(
            "INSERT INTO fallback_keys (localpart, device_id, algorithm, key_id, key_json, used) \
             VALUES (?, ?, ?, ?, ?, 0) \
             ON CONFLICT (localpart, device_id, algorithm) DO UPDATE \
             SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0 \
             WHERE fallback_keys.key_id <> excluded.key_id \
                OR fallback_keys.key_json <> excluded.key_json",
        )
        .bind(localpart)
        .bind(device_id)
        .bind(algorithm(&key.key_id))
        .bind(&key.key_id)
        .bind(&key.key_json)
        .execute(&mut *tx)
        .await
        .map_err(|err| missing(err, || device_name(localpart, device_id)))?;
    }
    tx.commit().await?;
    Ok(())
}

/// Read straight on the tenant's direct reader: every sync of the device asks.
pub(super) async fn unused_fallback_key_types(
    reader: &Arc<Direct>,
    localpart: &str,
    device_id: &str,
) -> Result<Vec<String>> {
    reader
        .read(|db| {
            let mut statement = db.prepare_cached(
                "SELECT algorithm FROM fallback_keys \
                 WHERE localpart = ? AND device_id = ? AND used = 0 ORDER BY algorithm",
            )?;
            let algorithms = statement.query_map((localpart, device_id), |row| row.get(0))?;
            Ok(algorithms.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
}

pub(super) async fn set_cross_signing_key(
    pool: &SqlitePool,
    key: &CrossSigningKeyRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO cross_signing_keys (localpart, key_type, key_json) VALUES (?, ?, ?) \
         ON CONFLICT (localpart, key_type) DO UPDATE SET key_json = excluded.key_json",
    )
    .bind(&key.localpart)
    .bind(&key.key_type)
    .bind(&key.key_json)
    .execute(pool)
    .await
    .map_err(|err| missing(err, || format!("user {}", key.localpart)))?;
    Ok(())
}

pub(super) async fn cross_signing_keys(
    pool: &SqlitePool,
    localpart: &str,
) -> Result<Vec<CrossSigningKeyRecord>> {
    let rows = sqlx::query(
        "SELECT localpart, key_type, key_json FROM cross_signing_keys \
         WHERE localpart = ? ORDER BY key_type",
    )
    .bind(localpart)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CrossSigningKeyRecord {
                localpart: row.try_get("localpart")?,
                key_type: row.try_get("key_type")?,
                key_json: row.try_get("key_json")?,
            })
        })
        .collect()
}

pub(super) async fn record_device_list_change(
    pool: &SqlitePool,
    user_id: &str,
    stream: i64,
) -> Result<()> {
    // Several changes of one user at one position are one change.
    sqlx::query(
        "INSERT INTO device_list_changes (stream, user_id) VALUES (?, ?) \
         ON CONFLICT (stream, user_id) DO NOTHING",
    )
    .bind(stream)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Read straight on the tenant's direct reader: every incremental sync asks, and the range
/// of the primary key it reads is usually empty.
pub(super) async fn device_list_changes(
    reader: &Arc<Direct>,
    range: StreamRange,
) -> Result<DeviceListChanges> {
    reader
        .read(|db| {
            let mut statement = db.prepare_cached(
                "SELECT DISTINCT user_id FROM device_list_changes \
                 WHERE stream > ? AND stream <= ? ORDER BY user_id",
            )?;
            let users = statement.query_map((range.after, range.up_to), |row| row.get(0))?;
            let users = users.collect::<rusqlite::Result<Vec<String>>>()?;
            // Read after the changes: a prune in between makes the answer incomplete, never
            // wrongly complete.
            let pruned_through: i64 = db
                .prepare_cached("SELECT device_lists_pruned_through FROM counters")?
                .query_row([], |row| row.get(0))?;
            Ok(DeviceListChanges {
                users,
                complete: range.after >= pruned_through,
            })
        })
        .await
}

pub(super) async fn record_signature_change(
    pool: &SqlitePool,
    signer: &str,
    target: &str,
    stream: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO signature_changes (stream, signer, target) VALUES (?, ?, ?) \
         ON CONFLICT (signer, stream, target) DO NOTHING",
    )
    .bind(stream)
    .bind(signer)
    .bind(target)
    .execute(pool)
    .await?;
    Ok(())
}

/// Read on the tenant's direct reader: every sync of the signer asks.
pub(super) async fn signature_changes(
    reader: &Arc<Direct>,
    signer: &str,
    range: StreamRange,
) -> Result<Vec<String>> {
    reader
        .read(|db| {
            let mut statement = db.prepare_cached(
                "SELECT DISTINCT target FROM signature_changes \
                 WHERE signer = ? AND stream > ? AND stream <= ? ORDER BY target",
            )?;
            let targets =
                statement.query_map((signer, range.after, range.up_to), |row| row.get(0))?;
            Ok(targets.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
}

/// The algorithm of a key id `<algorithm>:<id>`; an id without ':' is all algorithm, so that
/// such a key can still be stored, counted and claimed under some name.
fn algorithm(key_id: &str) -> &str {
    key_id
        .split_once(':')
        .map_or(key_id, |(algorithm, _)| algorithm)
}

fn key_from_row(row: &SqliteRow) -> Result<OneTimeKeyRecord> {
    Ok(OneTimeKeyRecord {
        key_id: row.try_get("key_id")?,
        key_json: row.try_get("key_json")?,
    })
}
