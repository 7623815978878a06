//! The users part of the tenant store that only the admin API needs, on SQLite: the filtered
//! user list, account states, third-party and external ids, rate limit overrides, puppet
//! tokens, and the counts of a user's invites and joins.

use sqlx::Row;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};

use super::super::util::{begin_write, conflict, found, is_foreign_key_violation, to_i64, to_u64};
use super::{SqliteTenantStore, user_from_row};
use crate::{
    AccountStatesChange, DeviceRecord, ExternalIdRecord, ListedUserRecord, PuppetTokenRecord,
    RateLimitOverrideRecord, Result, StoreError, ThreepidRecord, UserListQuery, UserOrder,
};

/// A value bound to one `?` of the user list's query.
enum Param {
    Text(String),
    Bool(bool),
    Int(i64),
}

/// The `WHERE` clause of the user list and its parameters, in order.
fn list_filters(server_name: &str, query: &UserListQuery) -> (String, Vec<Param>) {
    let mut filters: Vec<String> = Vec::new();
    let mut params = Vec::new();
    if let Some(name) = query.name.as_deref().filter(|n| !n.is_empty()) {
        filters.push(
            "(u.localpart LIKE ? ESCAPE '\\' OR lower(u.displayname) LIKE ? ESCAPE '\\')".into(),
        );
        let pattern = contains_pattern(name);
        params.push(Param::Text(pattern.clone()));
        params.push(Param::Text(pattern));
    } else if let Some(user_id) = query.user_id.as_deref().filter(|n| !n.is_empty()) {
        filters.push("('@' || u.localpart || ':' || ?) LIKE ? ESCAPE '\\'".into());
        params.push(Param::Text(server_name.to_owned()));
        params.push(Param::Text(contains_pattern(user_id)));
    }
    if !query.guests {
        filters.push("u.guest = 0".into());
    }
    if let Some(deactivated) = query.deactivated {
        filters.push("u.deactivated = ?".into());
        params.push(Param::Bool(deactivated));
    }
    if !query.locked {
        filters.push("u.locked = 0".into());
    }
    if let Some(admins) = query.admins {
        filters.push("u.admin = ?".into());
        params.push(Param::Bool(admins));
    }
    let (untyped, types): (Vec<&String>, Vec<&String>) =
        query.not_user_types.iter().partition(|t| t.is_empty());
    if !types.is_empty() {
        let marks = vec!["?"; types.len()].join(", ");
        // `NOT IN` is NULL (so false) for users without a type: kept only when asked.
        if untyped.is_empty() {
            filters.push(format!(
                "(u.user_type IS NULL OR u.user_type NOT IN ({marks}))"
            ));
        } else {
            filters.push(format!("u.user_type NOT IN ({marks})"));
        }
        params.extend(types.into_iter().map(|t| Param::Text(t.clone())));
    } else if !untyped.is_empty() {
        filters.push("u.user_type IS NOT NULL".into());
    }
    let clause = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    (clause, params)
}

/// `%term%` for a case-insensitive `LIKE`, with the term's wildcards matched literally.
fn contains_pattern(term: &str) -> String {
    let escaped = term
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn order_column(order: UserOrder) -> &'static str {
    match order {
        UserOrder::Name => "u.localpart",
        UserOrder::Displayname => "u.displayname",
        UserOrder::Guest => "u.guest",
        UserOrder::Admin => "u.admin",
        UserOrder::Deactivated => "u.deactivated",
        UserOrder::UserType => "u.user_type",
        UserOrder::AvatarUrl => "u.avatar_url",
        UserOrder::ShadowBanned => "u.shadow_banned",
        UserOrder::CreationTs => "u.created_ts",
        UserOrder::LastSeenTs => "d.last_seen_ts",
        UserOrder::Locked => "u.locked",
    }
}

/// The query `sql` (built here from fixed pieces and `?` marks, never from input) with
/// `params` bound in order.
fn bound<'q>(sql: String, params: &'q [Param]) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text.as_str()),
            Param::Bool(b) => query.bind(*b),
            Param::Int(n) => query.bind(*n),
        };
    }
    query
}

fn puppet_token_from_row(row: &SqliteRow) -> Result<PuppetTokenRecord> {
    Ok(PuppetTokenRecord {
        token_hash: row.try_get("token_hash")?,
        localpart: row.try_get("localpart")?,
        device_id: row.try_get("device_id")?,
        admin: row.try_get("admin")?,
        valid_until_ms: row.try_get("valid_until_ms")?,
        created_ts: row.try_get("created_ts")?,
    })
}

/// A write that names a user who doesn't exist is `NotFound`, not a database error.
fn unknown_user(err: sqlx::Error, localpart: &str) -> StoreError {
    if is_foreign_key_violation(&err) {
        StoreError::NotFound(format!("user {localpart}"))
    } else {
        err.into()
    }
}

impl SqliteTenantStore {
    pub(super) async fn users_page_impl(
        &self,
        server_name: &str,
        query: &UserListQuery,
    ) -> Result<(Vec<ListedUserRecord>, u64)> {
        let (filters, mut params) = list_filters(server_name, query);
        let count_sql = format!("SELECT COUNT(*) FROM users u {filters}");
        let total: i64 = bound(count_sql, &params)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        // NULLs last going forwards and first going backwards, as PostgreSQL (and so Synapse)
        // sorts them.
        let direction = if query.descending {
            "DESC NULLS FIRST"
        } else {
            "ASC NULLS LAST"
        };
        let sql = format!(
            "SELECT u.localpart, u.password_hash, u.admin, u.guest, u.deactivated, \
                    u.displayname, u.avatar_url, u.created_ts, u.locked, u.suspended, \
                    u.shadow_banned, u.erased, u.user_type, d.last_seen_ts AS last_seen \
             FROM users u \
             LEFT JOIN (SELECT localpart, MAX(last_seen_ts) AS last_seen_ts FROM devices \
                        GROUP BY localpart) d ON d.localpart = u.localpart \
             {filters} \
             ORDER BY {} {direction}, u.localpart ASC LIMIT ? OFFSET ?",
            order_column(query.order_by),
        );
        params.push(Param::Int(to_i64(query.limit)));
        params.push(Param::Int(to_i64(query.from)));
        let rows = bound(sql, &params).fetch_all(&self.pool).await?;
        let users = rows
            .iter()
            .map(|row| {
                Ok(ListedUserRecord {
                    user: user_from_row(row)?,
                    last_seen_ts: row.try_get("last_seen")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((users, to_u64(total, "user count")?))
    }

    pub(super) async fn last_seen_ts_impl(&self, localpart: &str) -> Result<Option<i64>> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(last_seen_ts) FROM devices WHERE localpart = ?")
                .bind(localpart)
                .fetch_one(&self.pool)
                .await?;
        Ok(last)
    }

    pub(super) async fn update_account_states_impl(
        &self,
        localpart: &str,
        change: &AccountStatesChange,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE users SET locked = COALESCE(?1, locked), \
                              suspended = COALESCE(?2, suspended), \
                              shadow_banned = COALESCE(?3, shadow_banned), \
                              erased = COALESCE(?4, erased), \
                              user_type = CASE WHEN ?5 THEN ?6 ELSE user_type END \
             WHERE localpart = ?7",
        )
        .bind(change.locked)
        .bind(change.suspended)
        .bind(change.shadow_banned)
        .bind(change.erased)
        .bind(change.user_type.is_some())
        .bind(change.user_type.clone().flatten())
        .bind(localpart)
        .execute(&self.pool)
        .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))
    }

    pub(super) async fn reactivate_user_impl(&self, localpart: &str) -> Result<()> {
        let updated =
            sqlx::query("UPDATE users SET deactivated = 0, erased = 0 WHERE localpart = ?")
                .bind(localpart)
                .execute(&self.pool)
                .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))
    }

    pub(super) async fn replace_threepids_impl(
        &self,
        localpart: &str,
        threepids: &[ThreepidRecord],
    ) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let current: Vec<(String, String)> =
            sqlx::query_as("SELECT medium, address FROM user_threepids WHERE localpart = ?")
                .bind(localpart)
                .fetch_all(&mut *tx)
                .await?;
        let kept = |medium: &str, address: &str| {
            threepids
                .iter()
                .any(|t| t.medium == medium && t.address == address)
        };
        for (medium, address) in current.iter().filter(|(m, a)| !kept(m, a)) {
            sqlx::query("DELETE FROM user_threepids WHERE medium = ? AND address = ?")
                .bind(medium)
                .bind(address)
                .execute(&mut *tx)
                .await?;
        }
        // One the user has already stays as it is; another user's moves to this one.
        for threepid in threepids {
            sqlx::query(
                "INSERT INTO user_threepids (medium, address, localpart, validated_ts, added_ts) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (medium, address) DO UPDATE \
                 SET localpart = excluded.localpart, validated_ts = excluded.validated_ts, \
                     added_ts = excluded.added_ts \
                 WHERE user_threepids.localpart <> excluded.localpart",
            )
            .bind(&threepid.medium)
            .bind(&threepid.address)
            .bind(localpart)
            .bind(threepid.validated_ts)
            .bind(threepid.added_ts)
            .execute(&mut *tx)
            .await
            .map_err(|err| unknown_user(err, localpart))?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn user_by_threepid_impl(
        &self,
        medium: &str,
        address: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT localpart FROM user_threepids WHERE medium = ? AND address = ?",
        )
        .bind(medium)
        .bind(address)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub(super) async fn external_ids_impl(&self, localpart: &str) -> Result<Vec<ExternalIdRecord>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT auth_provider, external_id FROM user_external_ids WHERE localpart = ? \
             ORDER BY auth_provider, external_id",
        )
        .bind(localpart)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(auth_provider, external_id)| ExternalIdRecord {
                auth_provider,
                external_id,
            })
            .collect())
    }

    pub(super) async fn replace_external_ids_impl(
        &self,
        localpart: &str,
        ids: &[ExternalIdRecord],
    ) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query("DELETE FROM user_external_ids WHERE localpart = ?")
            .bind(localpart)
            .execute(&mut *tx)
            .await?;
        for id in ids {
            sqlx::query(
                "INSERT INTO user_external_ids (auth_provider, external_id, localpart) \
                 VALUES (?, ?, ?)",
            )
            .bind(&id.auth_provider)
            .bind(&id.external_id)
            .bind(localpart)
            .execute(&mut *tx)
            .await
            .map_err(|err| {
                if is_foreign_key_violation(&err) {
                    return unknown_user(err, localpart);
                }
                conflict(err, || {
                    format!("external id {} of {}", id.external_id, id.auth_provider)
                })
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn user_by_external_id_impl(
        &self,
        auth_provider: &str,
        external_id: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT localpart FROM user_external_ids WHERE auth_provider = ? AND external_id = ?",
        )
        .bind(auth_provider)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub(super) async fn ratelimit_override_impl(
        &self,
        localpart: &str,
    ) -> Result<Option<RateLimitOverrideRecord>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT messages_per_second, burst_count FROM ratelimit_overrides \
             WHERE localpart = ?",
        )
        .bind(localpart)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(rate, burst)| {
            Ok(RateLimitOverrideRecord {
                messages_per_second: to_u64(rate, "messages_per_second")?,
                burst_count: to_u64(burst, "burst_count")?,
            })
        })
        .transpose()
    }

    pub(super) async fn set_ratelimit_override_impl(
        &self,
        localpart: &str,
        limit: Option<&RateLimitOverrideRecord>,
    ) -> Result<()> {
        let Some(limit) = limit else {
            sqlx::query("DELETE FROM ratelimit_overrides WHERE localpart = ?")
                .bind(localpart)
                .execute(&self.pool)
                .await?;
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO ratelimit_overrides (localpart, messages_per_second, burst_count) \
             VALUES (?, ?, ?) \
             ON CONFLICT (localpart) DO UPDATE \
             SET messages_per_second = excluded.messages_per_second, \
                 burst_count = excluded.burst_count",
        )
        .bind(localpart)
        .bind(to_i64(limit.messages_per_second))
        .bind(to_i64(limit.burst_count))
        .execute(&self.pool)
        .await
        .map_err(|err| unknown_user(err, localpart))?;
        Ok(())
    }

    pub(super) async fn sent_invite_count_impl(&self, user_id: &str, from_ts: i64) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events \
             WHERE event_type = 'm.room.member' AND sender = ?1 AND state_key <> ?1 \
               AND origin_server_ts >= ?2 \
               AND json_extract(pdu, '$.content.membership') = 'invite'",
        )
        .bind(user_id)
        .bind(from_ts)
        .fetch_one(&self.pool)
        .await?;
        to_u64(count, "invite count")
    }

    pub(super) async fn joined_room_count_since_impl(
        &self,
        user_id: &str,
        from_ts: i64,
    ) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT room_id) FROM events \
             WHERE event_type = 'm.room.member' AND state_key = ?1 AND origin_server_ts >= ?2 \
               AND json_extract(pdu, '$.content.membership') = 'join'",
        )
        .bind(user_id)
        .bind(from_ts)
        .fetch_one(&self.pool)
        .await?;
        to_u64(count, "joined room count")
    }

    pub(super) async fn insert_device_impl(&self, device: &DeviceRecord) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO devices (localpart, device_id, display_name, last_seen_ts, \
                                  last_seen_ip, created_ts) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (localpart, device_id) DO NOTHING",
        )
        .bind(&device.localpart)
        .bind(&device.device_id)
        .bind(&device.display_name)
        .bind(device.last_seen_ts)
        .bind(&device.last_seen_ip)
        .bind(device.created_ts)
        .execute(&self.pool)
        .await
        .map_err(|err| unknown_user(err, &device.localpart))?;
        Ok(inserted.rows_affected() == 1)
    }

    pub(super) async fn insert_puppet_token_impl(&self, token: &PuppetTokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO puppet_tokens (token_hash, localpart, device_id, admin, \
                                        valid_until_ms, created_ts) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.token_hash)
        .bind(&token.localpart)
        .bind(&token.device_id)
        .bind(&token.admin)
        .bind(token.valid_until_ms)
        .bind(token.created_ts)
        .execute(&self.pool)
        .await
        .map_err(|err| {
            if is_foreign_key_violation(&err) {
                return unknown_user(err, &token.localpart);
            }
            conflict(err, || "access token".to_owned())
        })?;
        Ok(())
    }

    pub(super) async fn puppet_token_impl(
        &self,
        token_hash: &str,
    ) -> Result<Option<PuppetTokenRecord>> {
        let row = sqlx::query(
            "SELECT token_hash, localpart, device_id, admin, valid_until_ms, created_ts \
             FROM puppet_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(puppet_token_from_row).transpose()
    }

    pub(super) async fn delete_puppet_session_impl(
        &self,
        localpart: &str,
        device_id: &str,
    ) -> Result<()> {
        sqlx::query("DELETE FROM puppet_tokens WHERE localpart = ? AND device_id = ?")
            .bind(localpart)
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn delete_puppet_tokens_of_admin_impl(&self, admin: &str) -> Result<()> {
        sqlx::query("DELETE FROM puppet_tokens WHERE admin = ?")
            .bind(admin)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
