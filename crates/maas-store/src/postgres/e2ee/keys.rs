//! Device keys, one-time and fallback keys, cross-signing keys and the device-list change log.
//! A key's algorithm is stored in its own column, so claims and counts are index lookups
//! rather than prefix matches on key ids.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{device_name, missing};
use crate::postgres::util::{Schema, to_u64};
use crate::{
    CrossSigningKeyRecord, DeviceKeysRecord, DeviceListChanges, OneTimeKeyRecord, Result,
    StoreError, StreamRange,
};

pub(super) async fn set_device_keys(schema: &Schema, keys: &DeviceKeysRecord) -> Result<()> {
    let mut conn = schema.conn().await?;
    sqlx::query(
        "INSERT INTO device_keys (localpart, device_id, keys_json) VALUES ($1, $2, $3) \
         ON CONFLICT (localpart, device_id) DO UPDATE SET keys_json = excluded.keys_json",
    )
    .bind(&keys.localpart)
    .bind(&keys.device_id)
    .bind(&keys.keys_json)
    .execute(&mut *conn)
    .await
    .map_err(|err| missing(err, || device_name(&keys.localpart, &keys.device_id)))?;
    Ok(())
}

pub(super) async fn device_keys(schema: &Schema, localpart: &str) -> Result<Vec<DeviceKeysRecord>> {
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(
        "SELECT localpart, device_id, keys_json FROM device_keys \
         WHERE localpart = $1 ORDER BY device_id",
    )
    .bind(localpart)
    .fetch_all(&mut *conn)
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
    schema: &Schema,
    localpart: &str,
    device_id: &str,
    keys: &[OneTimeKeyRecord],
) -> Result<()> {
    // One statement per key, in upload order: the identity column numbers them as inserted,
    // and that number is the order claims hand them out in.
    let mut tx = schema.begin().await?;
    for key in keys {
        let inserted = sqlx::query(
            "INSERT INTO one_time_keys (localpart, device_id, algorithm, key_id, key_json) \
             VALUES ($1, $2, $3, $4, $5) \
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
             WHERE localpart = $1 AND device_id = $2 AND key_id = $3",
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
    tx.commit().await
}

pub(super) async fn count_one_time_keys(
    schema: &Schema,
    localpart: &str,
    device_id: &str,
) -> Result<Vec<(String, u64)>> {
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(
        "SELECT algorithm, COUNT(*) AS count FROM one_time_keys \
         WHERE localpart = $1 AND device_id = $2 GROUP BY algorithm ORDER BY algorithm",
    )
    .bind(localpart)
    .bind(device_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let algorithm: String = row.try_get("algorithm")?;
            let count = to_u64(row.try_get("count")?, "one-time key count")?;
            Ok((algorithm, count))
        })
        .collect()
}

pub(super) async fn claim_key(
    schema: &Schema,
    localpart: &str,
    device_id: &str,
    algorithm: &str,
) -> Result<Option<OneTimeKeyRecord>> {
    // One statement. SKIP LOCKED makes concurrent claims take different keys: without it, a
    // claim whose chosen key went to another claim would delete nothing and fall through to
    // the fallback key while other one-time keys were left. The fallback key is marked used
    // only when no one-time key was taken; an upload committed meanwhile is as if it came
    // after this claim.
    let mut conn = schema.conn().await?;
    let row = sqlx::query(
        "WITH one_time AS ( \
             DELETE FROM one_time_keys WHERE id = ( \
                 SELECT id FROM one_time_keys \
                 WHERE localpart = $1 AND device_id = $2 AND algorithm = $3 \
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING key_id, key_json \
         ), fallback AS ( \
             UPDATE fallback_keys SET used = TRUE \
             WHERE localpart = $1 AND device_id = $2 AND algorithm = $3 \
               AND NOT EXISTS (SELECT 1 FROM one_time) \
             RETURNING key_id, key_json \
         ) \
         SELECT key_id, key_json FROM one_time \
         UNION ALL SELECT key_id, key_json FROM fallback",
    )
    .bind(localpart)
    .bind(device_id)
    .bind(algorithm)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(key_from_row).transpose()
}

pub(super) async fn set_fallback_keys(
    schema: &Schema,
    localpart: &str,
    device_id: &str,
    keys: &[OneTimeKeyRecord],
) -> Result<()> {
    let mut tx = schema.begin().await?;
    for key in keys {
        // The same key again keeps its used mark: resetting it would tell the device its key
        // is still unused, and it would never replace a key others already hold.
        sqlx::query(
            "INSERT INTO fallback_keys (localpart, device_id, algorithm, key_id, key_json, used) \
             VALUES ($1, $2, $3, $4, $5, FALSE) \
             ON CONFLICT (localpart, device_id, algorithm) DO UPDATE \
             SET key_id = excluded.key_id, key_json = excluded.key_json, used = FALSE \
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
    tx.commit().await
}

pub(super) async fn unused_fallback_key_types(
    schema: &Schema,
    localpart: &str,
    device_id: &str,
) -> Result<Vec<String>> {
    let mut conn = schema.conn().await?;
    let algorithms = sqlx::query_scalar(
        "SELECT algorithm FROM fallback_keys \
         WHERE localpart = $1 AND device_id = $2 AND NOT used ORDER BY algorithm",
    )
    .bind(localpart)
    .bind(device_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(algorithms)
}

pub(super) async fn set_cross_signing_key(
    schema: &Schema,
    key: &CrossSigningKeyRecord,
) -> Result<()> {
    let mut conn = schema.conn().await?;
    sqlx::query(
        "INSERT INTO cross_signing_keys (localpart, key_type, key_json) VALUES ($1, $2, $3) \
         ON CONFLICT (localpart, key_type) DO UPDATE SET key_json = excluded.key_json",
    )
    .bind(&key.localpart)
    .bind(&key.key_type)
    .bind(&key.key_json)
    .execute(&mut *conn)
    .await
    .map_err(|err| missing(err, || format!("user {}", key.localpart)))?;
    Ok(())
}

pub(super) async fn cross_signing_keys(
    schema: &Schema,
    localpart: &str,
) -> Result<Vec<CrossSigningKeyRecord>> {
    let mut conn = schema.conn().await?;
    let rows = sqlx::query(
        "SELECT localpart, key_type, key_json FROM cross_signing_keys \
         WHERE localpart = $1 ORDER BY key_type",
    )
    .bind(localpart)
    .fetch_all(&mut *conn)
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
    schema: &Schema,
    user_id: &str,
    stream: i64,
) -> Result<()> {
    // Several changes of one user at one position are one change.
    let mut conn = schema.conn().await?;
    sqlx::query(
        "INSERT INTO device_list_changes (stream, user_id) VALUES ($1, $2) \
         ON CONFLICT (stream, user_id) DO NOTHING",
    )
    .bind(stream)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn device_list_changes(
    schema: &Schema,
    range: StreamRange,
) -> Result<DeviceListChanges> {
    let mut conn = schema.conn().await?;
    let users = sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM device_list_changes \
         WHERE stream > $1 AND stream <= $2 ORDER BY user_id",
    )
    .bind(range.after)
    .bind(range.up_to)
    .fetch_all(&mut *conn)
    .await?;
    // Read after the changes: a prune in between makes the answer incomplete, never wrongly
    // complete.
    let pruned_through: i64 =
        sqlx::query_scalar("SELECT device_lists_pruned_through FROM counters")
            .fetch_one(&mut *conn)
            .await?;
    Ok(DeviceListChanges {
        users,
        complete: range.after >= pruned_through,
    })
}

pub(super) async fn record_signature_change(
    schema: &Schema,
    signer: &str,
    target: &str,
    stream: i64,
) -> Result<()> {
    let mut conn = schema.conn().await?;
    sqlx::query(
        "INSERT INTO signature_changes (stream, signer, target) VALUES ($1, $2, $3) \
         ON CONFLICT (signer, stream, target) DO NOTHING",
    )
    .bind(stream)
    .bind(signer)
    .bind(target)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn signature_changes(
    schema: &Schema,
    signer: &str,
    range: StreamRange,
) -> Result<Vec<String>> {
    let mut conn = schema.conn().await?;
    let targets = sqlx::query_scalar(
        "SELECT DISTINCT target FROM signature_changes \
         WHERE signer = $1 AND stream > $2 AND stream <= $3 ORDER BY target",
    )
    .bind(signer)
    .bind(range.after)
    .bind(range.up_to)
    .fetch_all(&mut *conn)
    .await?;
    Ok(targets)
}

/// The algorithm of a key id `<algorithm>:<id>`; an id without ':' is all algorithm, so that
/// such a key can still be stored, counted and claimed under some name.
fn algorithm(key_id: &str) -> &str {
    key_id
        .split_once(':')
        .map_or(key_id, |(algorithm, _)| algorithm)
}

fn key_from_row(row: &PgRow) -> Result<OneTimeKeyRecord> {
    Ok(OneTimeKeyRecord {
        key_id: row.try_get("key_id")?,
        key_json: row.try_get("key_json")?,
    })
}
