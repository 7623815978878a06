//! One tenant's database on SQLite. Multi-statement changes run in `BEGIN IMMEDIATE`
//! transactions; tokens hang off devices and devices off users with ON DELETE CASCADE, so
//! removing a device can't leave a token that still logs in.

mod admin_users;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use super::util::{
    begin_write, conflict, found, from_json, is_foreign_key_violation, to_i64, to_json, to_u64,
};
use crate::{
    AccessTokenRecord, AccountStatesChange, ChunkSink, DeviceRecord, ExternalIdRecord,
    ListedUserRecord, PuppetTokenRecord, RateLimitOverrideRecord, RegistrationTokenRecord, Result,
    SigningKeyRecord, StoreError, TableImport, TenantStore, ThreepidRecord, UiaSessionRecord,
    UserListQuery, UserRecord,
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

/// One tenant's `homeserver.db`.
pub struct SqliteTenantStore {
    /// Shared with the `RoomStore` implementation in `super::rooms`.
    pub(super) pool: SqlitePool,
    /// Event batches and the other writes of several statements.
    pub(super) writer: Arc<super::raw::Direct>,
    /// Point lookups on the send path.
    pub(super) reader: Arc<super::raw::Direct>,
    pub(super) checkpoints: super::checkpoint::Checkpoints,
}

impl SqliteTenantStore {
    pub(super) fn new(
        pool: SqlitePool,
        writer: Arc<super::raw::Direct>,
        reader: Arc<super::raw::Direct>,
    ) -> Self {
        Self {
            pool,
            writer,
            reader,
            checkpoints: Default::default(),
        }
    }

    /// Sets one nullable profile or account column of an existing user.
    async fn update_user(
        &self,
        sql: &'static str,
        localpart: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let updated = sqlx::query(sql)
            .bind(value)
            .bind(localpart)
            .execute(&self.pool)
            .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))
    }
}

#[async_trait]
impl TenantStore for SqliteTenantStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(
            "SELECT key_id, pkcs8, created_ts FROM signing_keys ORDER BY created_ts, key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(signing_key_from_row).collect()
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        sqlx::query("INSERT INTO signing_keys (key_id, pkcs8, created_ts) VALUES (?, ?, ?)")
            .bind(&key.key_id)
            .bind(&key.pkcs8)
            .bind(key.created_ts)
            .execute(&self.pool)
            .await
            .map_err(|err| conflict(err, || format!("signing key {}", key.key_id)))?;
        Ok(())
    }

    async fn insert_user(&self, user: &UserRecord, max_users: Option<u64>) -> Result<bool> {
        let mut tx = begin_write(&self.pool).await?;
        // Counting and inserting in one statement, under the write lock, so that concurrent
        // registrations can't overshoot the quota.
        let inserted = sqlx::query(
            "INSERT INTO users (localpart, password_hash, admin, guest, deactivated, \
                                displayname, avatar_url, created_ts, locked, suspended, \
                                shadow_banned, erased, user_type) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?11, ?12, ?13, ?14 \
             WHERE ?9 IS NULL OR (SELECT COUNT(*) FROM users) < ?9",
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
        // Nothing inserted: the tenant is full, but a taken name is the better answer.
        let taken = sqlx::query("SELECT 1 FROM users WHERE localpart = ?")
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
        let row = sqlx::query(select_users!("WHERE localpart = ?"))
            .bind(localpart)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, from: Option<&str>, limit: u32) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(select_users!(
            "WHERE ?1 IS NULL OR localpart > ?1 ORDER BY localpart LIMIT ?2"
        ))
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn search_users(&self, term: &str, limit: u32) -> Result<Vec<UserRecord>> {
        // LIKE wildcards in the term are matched literally.
        let escaped = term
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{}%", escaped.to_lowercase());
        let rows = sqlx::query(select_users!(
            "WHERE deactivated = 0 AND guest = 0 \
             AND (localpart LIKE ?1 ESCAPE '\\' OR lower(displayname) LIKE ?1 ESCAPE '\\') \
             ORDER BY localpart LIMIT ?2"
        ))
        .bind(pattern)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn count_users(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        to_u64(count, "user count")
    }

    async fn set_password_hash(&self, localpart: &str, hash: Option<&str>) -> Result<()> {
        self.update_user(
            "UPDATE users SET password_hash = ? WHERE localpart = ?",
            localpart,
            hash,
        )
        .await
    }

    async fn set_admin(&self, localpart: &str, admin: bool) -> Result<()> {
        let updated = sqlx::query("UPDATE users SET admin = ? WHERE localpart = ?")
            .bind(admin)
            .bind(localpart)
            .execute(&self.pool)
            .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))
    }

    async fn deactivate_user(&self, localpart: &str) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query(
            "UPDATE users SET deactivated = 1, password_hash = NULL, displayname = NULL, \
                              avatar_url = NULL \
             WHERE localpart = ?",
        )
        .bind(localpart)
        .execute(&mut *tx)
        .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))?;
        // The tokens go with the devices (ON DELETE CASCADE).
        for sql in [
            "DELETE FROM devices WHERE localpart = ?",
            "DELETE FROM user_threepids WHERE localpart = ?",
            "DELETE FROM puppet_tokens WHERE localpart = ?1 OR admin = ?1",
        ] {
            sqlx::query(sql).bind(localpart).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_displayname(&self, localpart: &str, name: Option<&str>) -> Result<()> {
        self.update_user(
            "UPDATE users SET displayname = ? WHERE localpart = ?",
            localpart,
            name,
        )
        .await
    }

    async fn set_avatar_url(&self, localpart: &str, url: Option<&str>) -> Result<()> {
        self.update_user(
            "UPDATE users SET avatar_url = ? WHERE localpart = ?",
            localpart,
            url,
        )
        .await
    }

    async fn threepids(&self, localpart: &str) -> Result<Vec<ThreepidRecord>> {
        let rows = sqlx::query(
            "SELECT medium, address, validated_ts, added_ts FROM user_threepids \
             WHERE localpart = ? ORDER BY added_ts, medium, address",
        )
        .bind(localpart)
        .fetch_all(&self.pool)
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
        let mut tx = begin_write(&self.pool).await?;
        // A known device keeps its name; it only gets the new one if it had none.
        sqlx::query(
            "INSERT INTO devices (localpart, device_id, display_name, last_seen_ts, \
                                  last_seen_ip, created_ts) \
             VALUES (?, ?, ?, ?, ?, ?) \
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
        sqlx::query("DELETE FROM access_tokens WHERE localpart = ? AND device_id = ?")
            .bind(&device.localpart)
            .bind(&device.device_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO access_tokens (token_hash, localpart, device_id, created_ts) \
             VALUES (?, ?, ?, ?)",
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
        tx.commit().await?;
        Ok(())
    }

    async fn device(&self, localpart: &str, device_id: &str) -> Result<Option<DeviceRecord>> {
        let row = sqlx::query(
            "SELECT localpart, device_id, display_name, last_seen_ts, last_seen_ip, created_ts \
             FROM devices WHERE localpart = ? AND device_id = ?",
        )
        .bind(localpart)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn devices(&self, localpart: &str) -> Result<Vec<DeviceRecord>> {
        let rows = sqlx::query(
            "SELECT localpart, device_id, display_name, last_seen_ts, last_seen_ip, created_ts \
             FROM devices WHERE localpart = ? ORDER BY device_id",
        )
        .bind(localpart)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    async fn set_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        name: Option<&str>,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE devices SET display_name = ? WHERE localpart = ? AND device_id = ?",
        )
        .bind(name)
        .bind(localpart)
        .bind(device_id)
        .execute(&self.pool)
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
        sqlx::query(
            "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ? \
             WHERE localpart = ? AND device_id = ?",
        )
        .bind(ts)
        .bind(ip)
        .bind(localpart)
        .bind(device_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_devices(&self, localpart: &str, device_ids: &[String]) -> Result<Vec<String>> {
        let mut tx = begin_write(&self.pool).await?;
        let mut deleted = Vec::new();
        for device_id in device_ids {
            let result = sqlx::query("DELETE FROM devices WHERE localpart = ? AND device_id = ?")
                .bind(localpart)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            if result.rows_affected() == 1 {
                deleted.push(device_id.clone());
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn delete_devices_except(&self, localpart: &str, keep: Option<&str>) -> Result<()> {
        sqlx::query("DELETE FROM devices WHERE localpart = ?1 AND (?2 IS NULL OR device_id <> ?2)")
            .bind(localpart)
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessTokenRecord>> {
        let row = sqlx::query(
            "SELECT token_hash, localpart, device_id, created_ts FROM access_tokens \
             WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
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
        sqlx::query(
            "INSERT INTO uia_sessions (session_id, purpose, completed, registration_token, \
                                       created_ts) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&session.session_id)
        .bind(&session.purpose)
        .bind(to_json(&session.completed, "completed UIA stages")?)
        .bind(&session.registration_token)
        .bind(session.created_ts)
        .execute(&self.pool)
        .await
        .map_err(|err| conflict(err, || format!("UIA session {}", session.session_id)))?;
        Ok(())
    }

    async fn uia_session(&self, session_id: &str) -> Result<Option<UiaSessionRecord>> {
        let row = sqlx::query(
            "SELECT session_id, purpose, completed, registration_token, created_ts \
             FROM uia_sessions WHERE session_id = ?",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(uia_session_from_row).transpose()
    }

    async fn update_uia_session(&self, session: &UiaSessionRecord) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE uia_sessions SET purpose = ?, completed = ?, registration_token = ?, \
                                     created_ts = ? \
             WHERE session_id = ?",
        )
        .bind(&session.purpose)
        .bind(to_json(&session.completed, "completed UIA stages")?)
        .bind(&session.registration_token)
        .bind(session.created_ts)
        .bind(&session.session_id)
        .execute(&self.pool)
        .await?;
        found(updated.rows_affected(), || {
            format!("UIA session {}", session.session_id)
        })
    }

    async fn delete_uia_session(&self, session_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM uia_sessions WHERE session_id = ?")
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_uia_sessions_before(&self, created_before_ts: i64) -> Result<()> {
        sqlx::query("DELETE FROM uia_sessions WHERE created_ts < ?")
            .bind(created_before_ts)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_registration_token(&self, token: &RegistrationTokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO registration_tokens (token, uses_allowed, completed, expiry_time, \
                                              created_ts) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&token.token)
        .bind(token.uses_allowed.map(to_i64))
        .bind(to_i64(token.completed))
        .bind(token.expiry_time)
        .bind(token.created_ts)
        .execute(&self.pool)
        .await
        .map_err(|err| conflict(err, || format!("registration token {}", token.token)))?;
        Ok(())
    }

    async fn registration_token(&self, token: &str) -> Result<Option<RegistrationTokenRecord>> {
        let row = sqlx::query(
            "SELECT token, uses_allowed, completed, expiry_time, created_ts \
             FROM registration_tokens WHERE token = ?",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(registration_token_from_row).transpose()
    }

    async fn registration_tokens(&self) -> Result<Vec<RegistrationTokenRecord>> {
        let rows = sqlx::query(
            "SELECT token, uses_allowed, completed, expiry_time, created_ts \
             FROM registration_tokens ORDER BY created_ts, token",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(registration_token_from_row).collect()
    }

    async fn pending_registration_token_uses(&self, token: &str, since_ts: i64) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM uia_sessions WHERE registration_token = ? AND created_ts >= ?",
        )
        .bind(token)
        .bind(since_ts)
        .fetch_one(&self.pool)
        .await?;
        to_u64(count, "pending registration token uses")
    }

    async fn complete_registration_token_use(&self, token: &str, now_ts: i64) -> Result<bool> {
        // Check and count in one statement, so that two registrations can't both take the
        // last use.
        let updated = sqlx::query(
            "UPDATE registration_tokens SET completed = completed + 1 \
             WHERE token = ? \
               AND (uses_allowed IS NULL OR completed < uses_allowed) \
               AND (expiry_time IS NULL OR expiry_time > ?)",
        )
        .bind(token)
        .bind(now_ts)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn update_registration_token(
        &self,
        token: &str,
        uses_allowed: Option<Option<u64>>,
        expiry_time: Option<Option<i64>>,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE registration_tokens \
             SET uses_allowed = CASE WHEN ?1 THEN ?2 ELSE uses_allowed END, \
                 expiry_time = CASE WHEN ?3 THEN ?4 ELSE expiry_time END \
             WHERE token = ?5",
        )
        .bind(uses_allowed.is_some())
        .bind(uses_allowed.flatten().map(to_i64))
        .bind(expiry_time.is_some())
        .bind(expiry_time.flatten())
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn delete_registration_token(&self, token: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM registration_tokens WHERE token = ?")
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn export_tables(&self, sink: &mut dyn ChunkSink) -> Result<()> {
        self.export_tables_impl(sink).await
    }

    async fn begin_import(&self) -> Result<Box<dyn TableImport>> {
        self.begin_import_impl().await
    }

    async fn close(&self) {
        self.writer.close();
        self.reader.close();
        self.pool.close().await;
    }

    fn commits_inline(&self) -> bool {
        !self.writer.durable()
    }
}

fn signing_key_from_row(row: &SqliteRow) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        key_id: row.try_get("key_id")?,
        pkcs8: row.try_get("pkcs8")?,
        created_ts: row.try_get("created_ts")?,
    })
}

fn user_from_row(row: &SqliteRow) -> Result<UserRecord> {
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

fn threepid_from_row(row: &SqliteRow) -> Result<ThreepidRecord> {
    Ok(ThreepidRecord {
        medium: row.try_get("medium")?,
        address: row.try_get("address")?,
        validated_ts: row.try_get("validated_ts")?,
        added_ts: row.try_get("added_ts")?,
    })
}

fn device_from_row(row: &SqliteRow) -> Result<DeviceRecord> {
    Ok(DeviceRecord {
        localpart: row.try_get("localpart")?,
        device_id: row.try_get("device_id")?,
        display_name: row.try_get("display_name")?,
        last_seen_ts: row.try_get("last_seen_ts")?,
        last_seen_ip: row.try_get("last_seen_ip")?,
        created_ts: row.try_get("created_ts")?,
    })
}

fn access_token_from_row(row: &SqliteRow) -> Result<AccessTokenRecord> {
    Ok(AccessTokenRecord {
        token_hash: row.try_get("token_hash")?,
        localpart: row.try_get("localpart")?,
        device_id: row.try_get("device_id")?,
        created_ts: row.try_get("created_ts")?,
    })
}

fn uia_session_from_row(row: &SqliteRow) -> Result<UiaSessionRecord> {
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

fn registration_token_from_row(row: &SqliteRow) -> Result<RegistrationTokenRecord> {
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
