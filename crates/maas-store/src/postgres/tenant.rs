//! One tenant's database on PostgreSQL: a schema of the shared database. Multi-statement
//! changes run in transactions; tokens hang off devices and devices off users with ON DELETE
//! CASCADE, so removing a device can't leave a token that still logs in.

mod admin_users;

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use super::util::{
    Schema, conflict, found, from_json, is_foreign_key_violation, to_i64, to_json, to_u64,
};
use crate::{
    AccessTokenRecord, AccountStatesChange, DeviceRecord, ExternalIdRecord, ListedUserRecord,
    PuppetTokenRecord, RateLimitOverrideRecord, RegistrationTokenRecord, Result, SigningKeyRecord,
    StoreError, TenantStore, ThreepidRecord, UiaSessionRecord, UserListQuery, UserRecord,
};

/// `SELECT <every user column> FROM users <rest>`, as a `&'static str`.
macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT localpart, password_hash, admin, guest, deactivated, displayname, \
                    avatar_url, created_ts, locked, suspended, shadow_banned, erased, \
                    user_type FROM users ",
            $rest
        )
    };
}

/// A tenant's store: its schema, reached through the shared pool.
pub struct PostgresTenantStore {
    /// Shared with the other trait implementations in `super::{rooms, e2ee, push}`.
    pub(super) schema: Schema,
}

impl PostgresTenantStore {
    pub(super) fn new(pool: PgPool, schema: String, max_connections: u32) -> Self {
        Self {
            schema: Schema::new(pool, schema, max_connections),
        }
    }

    /// Sets one nullable profile or account column of an existing user.
    async fn update_user(
        &self,
        sql: &'static str,
        localpart: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(sql)
            .bind(value)
            .bind(localpart)
            .execute(&mut *conn)
            .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))
    }
}

#[async_trait]
impl TenantStore for PostgresTenantStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT key_id, pkcs8, created_ts FROM signing_keys ORDER BY created_ts, key_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(signing_key_from_row).collect()
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query("INSERT INTO signing_keys (key_id, pkcs8, created_ts) VALUES ($1, $2, $3)")
            .bind(&key.key_id)
            .bind(&key.pkcs8)
            .bind(key.created_ts)
            .execute(&mut *conn)
            .await
            .map_err(|err| conflict(err, || format!("signing key {}", key.key_id)))?;
        Ok(())
    }

    async fn insert_user(&self, user: &UserRecord, max_users: Option<u64>) -> Result<bool> {
        let mut tx = self.schema.begin().await?;
        if max_users.is_some() {
            // Under READ COMMITTED two registrations could both count `max - 1` users and both
            // insert. This lock mode conflicts with itself and with every writer of `users`, but
            // not with readers: the count below sees every user committed before it, and no one
            // can insert until this transaction ends.
            sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO users (localpart, password_hash, admin, guest, deactivated, \
                                displayname, avatar_url, created_ts, locked, suspended, \
                                shadow_banned, erased, user_type) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $10, $11, $12, $13, $14 \
             WHERE $9::BIGINT IS NULL OR (SELECT count(*) FROM users) < $9",
        )
        .bind(&user.localpart)
        .bind(&user.password_hash)
        .bind(user.admin)
        .bind(user.guest)
        .bind(user.deactivated)
        .bind(&user.displayname)
        .bind(&user.avatar_url)
        .bind(user.created_ts)
        .bind(max_users.map(to_i64))
        .bind(user.locked)
        .bind(user.suspended)
        .bind(user.shadow_banned)
        .bind(user.erased)
        .bind(&user.user_type)
        .execute(&mut *tx)
        .await
        .map_err(|err| conflict(err, || format!("user {}", user.localpart)))?;
        if inserted.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(true);
        }
        // Nothing inserted: the tenant is full, but a taken name is the better answer. The
        // transaction wrote nothing; dropping it rolls back and releases the lock.
        let taken = sqlx::query("SELECT 1 FROM users WHERE localpart = $1")
            .bind(&user.localpart)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(StoreError::Conflict(format!("user {}", user.localpart)));
        }
        Ok(false)
    }

    async fn user(&self, localpart: &str) -> Result<Option<UserRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(select_users!("WHERE localpart = $1"))
            .bind(localpart)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, from: Option<&str>, limit: u32) -> Result<Vec<UserRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(select_users!(
            "WHERE $1::TEXT IS NULL OR localpart > $1 ORDER BY localpart LIMIT $2"
        ))
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn search_users(&self, term: &str, limit: u32) -> Result<Vec<UserRecord>> {
        // LIKE wildcards in the term are matched literally. Backslash is PostgreSQL's default
        // LIKE escape, so no ESCAPE clause (whose literal would depend on
        // `standard_conforming_strings`) is needed.
        let escaped = term
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(select_users!(
            "WHERE NOT deactivated AND NOT guest \
             AND (localpart ILIKE $1 OR displayname ILIKE $1) \
             ORDER BY localpart LIMIT $2"
        ))
        .bind(pattern)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn count_users(&self) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&mut *conn)
            .await?;
        to_u64(count, "user count")
    }

    async fn set_password_hash(&self, localpart: &str, hash: Option<&str>) -> Result<()> {
        self.update_user(
            "UPDATE users SET password_hash = $1 WHERE localpart = $2",
            localpart,
            hash,
        )
        .await
    }

    async fn set_admin(&self, localpart: &str, admin: bool) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query("UPDATE users SET admin = $1 WHERE localpart = $2")
            .bind(admin)
            .bind(localpart)
            .execute(&mut *conn)
            .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))
    }

    async fn deactivate_user(&self, localpart: &str) -> Result<()> {
        let mut tx = self.schema.begin().await?;
        let updated = sqlx::query(
            "UPDATE users SET deactivated = TRUE, password_hash = NULL, displayname = NULL, \
                              avatar_url = NULL \
             WHERE localpart = $1",
        )
        .bind(localpart)
        .execute(&mut *tx)
        .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))?;
        // The tokens go with the devices (ON DELETE CASCADE).
        for sql in [
            "DELETE FROM devices WHERE localpart = $1",
            "DELETE FROM user_threepids WHERE localpart = $1",
            "DELETE FROM puppet_tokens WHERE localpart = $1 OR admin = $1",
        ] {
            sqlx::query(sql).bind(localpart).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    async fn set_displayname(&self, localpart: &str, name: Option<&str>) -> Result<()> {
        self.update_user(
            "UPDATE users SET displayname = $1 WHERE localpart = $2",
            localpart,
            name,
        )
        .await
    }

    async fn set_avatar_url(&self, localpart: &str, url: Option<&str>) -> Result<()> {
        self.update_user(
            "UPDATE users SET avatar_url = $1 WHERE localpart = $2",
            localpart,
            url,
        )
        .await
    }

    async fn threepids(&self, localpart: &str) -> Result<Vec<ThreepidRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT medium, address, validated_ts, added_ts FROM user_threepids \
             WHERE localpart = $1 ORDER BY added_ts, medium, address",
        )
        .bind(localpart)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(threepid_from_row).collect()
    }

    async fn users_page(
        &self,
        server_name: &str,
        query: &UserListQuery,
    ) -> Result<(Vec<ListedUserRecord>, u64)> {
        self.users_page_impl(server_name, query).await
    }

    async fn last_seen_ts(&self, localpart: &str) -> Result<Option<i64>> {
        self.last_seen_ts_impl(localpart).await
    }

    async fn update_account_states(
        &self,
        localpart: &str,
        change: &AccountStatesChange,
    ) -> Result<()> {
        self.update_account_states_impl(localpart, change).await
    }

    async fn reactivate_user(&self, localpart: &str) -> Result<()> {
        self.reactivate_user_impl(localpart).await
    }

    async fn replace_threepids(&self, localpart: &str, threepids: &[ThreepidRecord]) -> Result<()> {
        self.replace_threepids_impl(localpart, threepids).await
    }

    async fn user_by_threepid(&self, medium: &str, address: &str) -> Result<Option<String>> {
        self.user_by_threepid_impl(medium, address).await
    }

    async fn external_ids(&self, localpart: &str) -> Result<Vec<ExternalIdRecord>> {
        self.external_ids_impl(localpart).await
    }

    async fn replace_external_ids(&self, localpart: &str, ids: &[ExternalIdRecord]) -> Result<()> {
        self.replace_external_ids_impl(localpart, ids).await
    }

    async fn user_by_external_id(
        &self,
        auth_provider: &str,
        external_id: &str,
    ) -> Result<Option<String>> {
        self.user_by_external_id_impl(auth_provider, external_id)
            .await
    }

    async fn ratelimit_override(&self, localpart: &str) -> Result<Option<RateLimitOverrideRecord>> {
        self.ratelimit_override_impl(localpart).await
    }

    async fn set_ratelimit_override(
        &self,
        localpart: &str,
        limit: Option<&RateLimitOverrideRecord>,
    ) -> Result<()> {
        self.set_ratelimit_override_impl(localpart, limit).await
    }

    async fn sent_invite_count(&self, user_id: &str, from_ts: i64) -> Result<u64> {
        self.sent_invite_count_impl(user_id, from_ts).await
    }

    async fn joined_room_count_since(&self, user_id: &str, from_ts: i64) -> Result<u64> {
        self.joined_room_count_since_impl(user_id, from_ts).await
    }

    async fn start_session(&self, device: &DeviceRecord, token: &AccessTokenRecord) -> Result<()> {
        let mut tx = self.schema.begin().await?;
        // A known device keeps its name; it only gets the new one if it had none.
        sqlx::query(
            "INSERT INTO devices (localpart, device_id, display_name, last_seen_ts, \
                                  last_seen_ip, created_ts) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (localpart, device_id) DO UPDATE \
             SET display_name = COALESCE(devices.display_name, excluded.display_name)",
        )
        .bind(&device.localpart)
        .bind(&device.device_id)
        .bind(&device.display_name)
        .bind(device.last_seen_ts)
        .bind(&device.last_seen_ip)
        .bind(device.created_ts)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            if is_foreign_key_violation(&err) {
                StoreError::NotFound(format!("user {}", device.localpart))
            } else {
                err.into()
            }
        })?;
        sqlx::query("DELETE FROM access_tokens WHERE localpart = $1 AND device_id = $2")
            .bind(&device.localpart)
            .bind(&device.device_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO access_tokens (token_hash, localpart, device_id, created_ts) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.token_hash)
        .bind(&token.localpart)
        .bind(&token.device_id)
        .bind(token.created_ts)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            if is_foreign_key_violation(&err) {
                StoreError::NotFound(format!("device {} of {}", token.device_id, token.localpart))
            } else {
                conflict(err, || "access token".to_owned())
            }
        })?;
        tx.commit().await
    }

    async fn device(&self, localpart: &str, device_id: &str) -> Result<Option<DeviceRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(
            "SELECT localpart, device_id, display_name, last_seen_ts, last_seen_ip, created_ts \
             FROM devices WHERE localpart = $1 AND device_id = $2",
        )
        .bind(localpart)
        .bind(device_id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn devices(&self, localpart: &str) -> Result<Vec<DeviceRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT localpart, device_id, display_name, last_seen_ts, last_seen_ip, created_ts \
             FROM devices WHERE localpart = $1 ORDER BY device_id",
        )
        .bind(localpart)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    async fn set_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        name: Option<&str>,
    ) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE devices SET display_name = $1 WHERE localpart = $2 AND device_id = $3",
        )
        .bind(name)
        .bind(localpart)
        .bind(device_id)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn touch_device(
        &self,
        localpart: &str,
        device_id: &str,
        ts: i64,
        ip: &str,
    ) -> Result<()> {
        // A device deleted meanwhile is no error: there is nothing left to mark as seen.
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "UPDATE devices SET last_seen_ts = $1, last_seen_ip = $2 \
             WHERE localpart = $3 AND device_id = $4",
        )
        .bind(ts)
        .bind(ip)
        .bind(localpart)
        .bind(device_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn delete_devices(&self, localpart: &str, device_ids: &[String]) -> Result<Vec<String>> {
        // One statement for the whole list; RETURNING says which existed. The answer keeps the
        // caller's order and names each device once, however often it was listed.
        let mut conn = self.schema.conn().await?;
        let mut deleted: HashSet<String> = sqlx::query_scalar(
            "DELETE FROM devices WHERE localpart = $1 AND device_id = ANY($2) \
             RETURNING device_id",
        )
        .bind(localpart)
        .bind(device_ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        Ok(device_ids
            .iter()
            .filter(|id| deleted.remove(id.as_str()))
            .cloned()
            .collect())
    }

    async fn delete_devices_except(&self, localpart: &str, keep: Option<&str>) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "DELETE FROM devices WHERE localpart = $1 AND ($2::TEXT IS NULL OR device_id <> $2)",
        )
        .bind(localpart)
        .bind(keep)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessTokenRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(
            "SELECT token_hash, localpart, device_id, created_ts FROM access_tokens \
             WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(access_token_from_row).transpose()
    }

    async fn insert_device(&self, device: &DeviceRecord) -> Result<bool> {
        self.insert_device_impl(device).await
    }

    async fn insert_puppet_token(&self, token: &PuppetTokenRecord) -> Result<()> {
        self.insert_puppet_token_impl(token).await
    }

    async fn puppet_token(&self, token_hash: &str) -> Result<Option<PuppetTokenRecord>> {
        self.puppet_token_impl(token_hash).await
    }

    async fn delete_puppet_session(&self, localpart: &str, device_id: &str) -> Result<()> {
        self.delete_puppet_session_impl(localpart, device_id).await
    }

    async fn delete_puppet_tokens_of_admin(&self, admin: &str) -> Result<()> {
        self.delete_puppet_tokens_of_admin_impl(admin).await
    }

    async fn insert_uia_session(&self, session: &UiaSessionRecord) -> Result<()> {
        let completed = to_json(&session.completed, "completed UIA stages")?;
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO uia_sessions (session_id, purpose, completed, registration_token, \
                                       created_ts) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.session_id)
        .bind(&session.purpose)
        .bind(completed)
        .bind(&session.registration_token)
        .bind(session.created_ts)
        .execute(&mut *conn)
        .await
        .map_err(|err| conflict(err, || format!("UIA session {}", session.session_id)))?;
        Ok(())
    }

    async fn uia_session(&self, session_id: &str) -> Result<Option<UiaSessionRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(
            "SELECT session_id, purpose, completed, registration_token, created_ts \
             FROM uia_sessions WHERE session_id = $1",
        )
        .bind(session_id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(uia_session_from_row).transpose()
    }

    async fn update_uia_session(&self, session: &UiaSessionRecord) -> Result<()> {
        let completed = to_json(&session.completed, "completed UIA stages")?;
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE uia_sessions SET purpose = $1, completed = $2, registration_token = $3, \
                                     created_ts = $4 \
             WHERE session_id = $5",
        )
        .bind(&session.purpose)
        .bind(completed)
        .bind(&session.registration_token)
        .bind(session.created_ts)
        .bind(&session.session_id)
        .execute(&mut *conn)
        .await?;
        found(updated.rows_affected(), || {
            format!("UIA session {}", session.session_id)
        })
    }

    async fn delete_uia_session(&self, session_id: &str) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query("DELETE FROM uia_sessions WHERE session_id = $1")
            .bind(session_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn delete_uia_sessions_before(&self, created_before_ts: i64) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query("DELETE FROM uia_sessions WHERE created_ts < $1")
            .bind(created_before_ts)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn insert_registration_token(&self, token: &RegistrationTokenRecord) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO registration_tokens (token, uses_allowed, completed, expiry_time, \
                                              created_ts) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.token)
        .bind(token.uses_allowed.map(to_i64))
        .bind(to_i64(token.completed))
        .bind(token.expiry_time)
        .bind(token.created_ts)
        .execute(&mut *conn)
        .await
        .map_err(|err| conflict(err, || format!("registration token {}", token.token)))?;
        Ok(())
    }

    async fn registration_token(&self, token: &str) -> Result<Option<RegistrationTokenRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(
            "SELECT token, uses_allowed, completed, expiry_time, created_ts \
             FROM registration_tokens WHERE token = $1",
        )
        .bind(token)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(registration_token_from_row).transpose()
    }

    async fn registration_tokens(&self) -> Result<Vec<RegistrationTokenRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT token, uses_allowed, completed, expiry_time, created_ts \
             FROM registration_tokens ORDER BY created_ts, token",
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(registration_token_from_row).collect()
    }

    async fn pending_registration_token_uses(&self, token: &str, since_ts: i64) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM uia_sessions WHERE registration_token = $1 AND created_ts >= $2",
        )
        .bind(token)
        .bind(since_ts)
        .fetch_one(&mut *conn)
        .await?;
        to_u64(count, "pending registration token uses")
    }

    async fn complete_registration_token_use(&self, token: &str, now_ts: i64) -> Result<bool> {
        // Check and count in one statement: a concurrent UPDATE of the same row waits for this
        // one and then re-checks the conditions against the new row, so two registrations can't
        // both take the last use.
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE registration_tokens SET completed = completed + 1 \
             WHERE token = $1 \
               AND (uses_allowed IS NULL OR completed < uses_allowed) \
               AND (expiry_time IS NULL OR expiry_time > $2)",
        )
        .bind(token)
        .bind(now_ts)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn update_registration_token(
        &self,
        token: &str,
        uses_allowed: Option<Option<u64>>,
        expiry_time: Option<Option<i64>>,
    ) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE registration_tokens \
             SET uses_allowed = CASE WHEN $1 THEN $2 ELSE uses_allowed END, \
                 expiry_time = CASE WHEN $3 THEN $4 ELSE expiry_time END \
             WHERE token = $5",
        )
        .bind(uses_allowed.is_some())
        .bind(uses_allowed.flatten().map(to_i64))
        .bind(expiry_time.is_some())
        .bind(expiry_time.flatten())
        .bind(token)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn delete_registration_token(&self, token: &str) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let deleted = sqlx::query("DELETE FROM registration_tokens WHERE token = $1")
            .bind(token)
            .execute(&mut *conn)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn export_tables(&self, sink: &mut dyn crate::ChunkSink) -> Result<()> {
        self.export_tables_impl(sink).await
    }

    async fn begin_import(&self) -> Result<Box<dyn crate::TableImport>> {
        self.begin_import_impl().await
    }

    /// Nothing to do: the pool is shared by every tenant and closed with the backend, and
    /// connections go back to it after each call.
    async fn close(&self) {}
}

fn signing_key_from_row(row: &PgRow) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        key_id: row.try_get("key_id")?,
        pkcs8: row.try_get("pkcs8")?,
        created_ts: row.try_get("created_ts")?,
    })
}

fn user_from_row(row: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        localpart: row.try_get("localpart")?,
        password_hash: row.try_get("password_hash")?,
        admin: row.try_get("admin")?,
        guest: row.try_get("guest")?,
        deactivated: row.try_get("deactivated")?,
        displayname: row.try_get("displayname")?,
        avatar_url: row.try_get("avatar_url")?,
        created_ts: row.try_get("created_ts")?,
        locked: row.try_get("locked")?,
        suspended: row.try_get("suspended")?,
        shadow_banned: row.try_get("shadow_banned")?,
        erased: row.try_get("erased")?,
        user_type: row.try_get("user_type")?,
    })
}

fn threepid_from_row(row: &PgRow) -> Result<ThreepidRecord> {
    Ok(ThreepidRecord {
        medium: row.try_get("medium")?,
        address: row.try_get("address")?,
        validated_ts: row.try_get("validated_ts")?,
        added_ts: row.try_get("added_ts")?,
    })
}

fn device_from_row(row: &PgRow) -> Result<DeviceRecord> {
    Ok(DeviceRecord {
        localpart: row.try_get("localpart")?,
        device_id: row.try_get("device_id")?,
        display_name: row.try_get("display_name")?,
        last_seen_ts: row.try_get("last_seen_ts")?,
        last_seen_ip: row.try_get("last_seen_ip")?,
        created_ts: row.try_get("created_ts")?,
    })
}

fn access_token_from_row(row: &PgRow) -> Result<AccessTokenRecord> {
    Ok(AccessTokenRecord {
        token_hash: row.try_get("token_hash")?,
        localpart: row.try_get("localpart")?,
        device_id: row.try_get("device_id")?,
        created_ts: row.try_get("created_ts")?,
    })
}

fn uia_session_from_row(row: &PgRow) -> Result<UiaSessionRecord> {
    let session_id: String = row.try_get("session_id")?;
    let completed: String = row.try_get("completed")?;
    Ok(UiaSessionRecord {
        completed: from_json(&completed, &format!("stages of UIA session {session_id}"))?,
        session_id,
        purpose: row.try_get("purpose")?,
        registration_token: row.try_get("registration_token")?,
        created_ts: row.try_get("created_ts")?,
    })
}

fn registration_token_from_row(row: &PgRow) -> Result<RegistrationTokenRecord> {
    let uses_allowed: Option<i64> = row.try_get("uses_allowed")?;
    Ok(RegistrationTokenRecord {
        token: row.try_get("token")?,
        uses_allowed: uses_allowed
            .map(|n| to_u64(n, "uses_allowed"))
            .transpose()?,
        completed: to_u64(row.try_get("completed")?, "completed")?,
        expiry_time: row.try_get("expiry_time")?,
        created_ts: row.try_get("created_ts")?,
    })
}
