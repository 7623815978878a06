//! The users part of the tenant store that only the admin API needs, on PostgreSQL: the
//! filtered user list, account states, third-party and external ids, rate limit overrides,
//! puppet tokens, and the counts of a user's invites and joins.

use sqlx::Row;
use sqlx::postgres::{PgArguments, PgRow, Postgres};

use super::super::util::{conflict, found, is_foreign_key_violation, to_i64, to_u64};
use super::{PostgresTenantStore, user_from_row};
use crate::{
    AccountStatesChange, DeviceRecord, ExternalIdRecord, ListedUserRecord, PuppetTokenRecord,
    RateLimitOverrideRecord, Result, StoreError, ThreepidRecord, UserListQuery, UserOrder,
};

/// A value bound to one `$n` of the user list's query.
enum Param {
    Text(String),
    Bool(bool),
    Int(i64),
}

/// Collects the user list's parameters and hands out their `$n` marks.
#[derive(Default)]
struct Params(Vec<Param>);

impl Params {
    fn mark(&mut self, param: Param) -> String {
        self.0.push(param);
        format!("${}", self.0.len())
    }
}

/// The `WHERE` clause of the user list; its parameters go to `params`.
fn list_filters(server_name: &str, query: &UserListQuery, params: &mut Params) -> String {
    let mut filters: Vec<String> = Vec::new();
    if let Some(name) = query.name.as_deref().filter(|n| !n.is_empty()) {
        // Backslash is PostgreSQL's default LIKE escape.
        let pattern = params.mark(Param::Text(contains_pattern(name)));
        filters.push(format!(
            "(u.localpart LIKE {pattern} OR lower(u.displayname) LIKE {pattern})"
        ));
    } else if let Some(user_id) = query.user_id.as_deref().filter(|n| !n.is_empty()) {
        let server = params.mark(Param::Text(server_name.to_owned()));
        let pattern = params.mark(Param::Text(contains_pattern(user_id)));
        filters.push(format!(
            "('@' || u.localpart || ':' || {server}::TEXT) LIKE {pattern}"
        ));
    }
    if !query.guests {
        filters.push("NOT u.guest".into());
    }
    if let Some(deactivated) = query.deactivated {
        let mark = params.mark(Param::Bool(deactivated));
        filters.push(format!("u.deactivated = {mark}"));
    }
    if !query.locked {
        filters.push("NOT u.locked".into());
    }
    if let Some(admins) = query.admins {
        let mark = params.mark(Param::Bool(admins));
        filters.push(format!("u.admin = {mark}"));
    }
    let (untyped, types): (Vec<&String>, Vec<&String>) =
        query.not_user_types.iter().partition(|t| t.is_empty());
    if !types.is_empty() {
        let marks = types
            .into_iter()
            .map(|t| params.mark(Param::Text(t.clone())))
            .collect::<Vec<_>>()
            .join(", ");
        // `NOT IN` is NULL (so false) for users without a type: kept only when asked.
        if untyped.is_empty() {
            filters.push(format!(
                "(u.user_type IS NULL OR u.user_type NOT IN ({marks}))"
            ));
        } else {
            filters.push(format!("u.user_type NOT IN ({marks})"));
        }
    } else if !untyped.is_empty() {
        filters.push("u.user_type IS NOT NULL".into());
    }
    if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    }
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

/// The column to sort by; text in byte order, as on SQLite, whatever the database's locale.
fn order_column(order: UserOrder) -> &'static str {
    match order {
        UserOrder::Name => "u.localpart",
        UserOrder::Displayname => "u.displayname COLLATE \"C\"",
        UserOrder::Guest => "u.guest",
        UserOrder::Admin => "u.admin",
        UserOrder::Deactivated => "u.deactivated",
        UserOrder::UserType => "u.user_type COLLATE \"C\"",
        UserOrder::AvatarUrl => "u.avatar_url COLLATE \"C\"",
        UserOrder::ShadowBanned => "u.shadow_banned",
        UserOrder::CreationTs => "u.created_ts",
        UserOrder::LastSeenTs => "d.last_seen_ts",
        UserOrder::Locked => "u.locked",
    }
}

/// The query `sql` (built here from fixed pieces and `$n` marks, never from input) with
/// `params` bound in order.
fn bound(sql: String, params: &Params) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for param in &params.0 {
        query = match param {
            Param::Text(text) => query.bind(text.as_str()),
            Param::Bool(b) => query.bind(*b),
            Param::Int(n) => query.bind(*n),
        };
    }
    query
}

fn puppet_token_from_row(row: &PgRow) -> Result<PuppetTokenRecord> {
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

impl PostgresTenantStore {
    pub(super) async fn users_page_impl(
        &self,
        server_name: &str,
        query: &UserListQuery,
    ) -> Result<(Vec<ListedUserRecord>, u64)> {
        let mut params = Params::default();
        let filters = list_filters(server_name, query, &mut params);
        let mut conn = self.schema.conn().await?;
        let count_sql = format!("SELECT count(*) FROM users u {filters}");
        let total: i64 = bound(count_sql, &params)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        // PostgreSQL's own order of NULLs (last going forwards), as Synapse's, spelled out so
        // that SQLite sorts the same.
        let direction = if query.descending {
            "DESC NULLS FIRST"
        } else {
            "ASC NULLS LAST"
        };
        let limit = params.mark(Param::Int(to_i64(query.limit)));
        let offset = params.mark(Param::Int(to_i64(query.from)));
        let sql = format!(
            "SELECT u.localpart, u.password_hash, u.admin, u.guest, u.deactivated, \
                    u.displayname, u.avatar_url, u.created_ts, u.locked, u.suspended, \
                    u.shadow_banned, u.erased, u.user_type, d.last_seen_ts AS last_seen \
             FROM users u \
             LEFT JOIN (SELECT localpart, max(last_seen_ts) AS last_seen_ts FROM devices \
                        GROUP BY localpart) d ON d.localpart = u.localpart \
             {filters} \
             ORDER BY {} {direction}, u.localpart ASC LIMIT {limit} OFFSET {offset}",
            order_column(query.order_by),
        );
        let rows = bound(sql, &params).fetch_all(&mut *conn).await?;
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
        let mut conn = self.schema.conn().await?;
        let last: Option<i64> =
            sqlx::query_scalar("SELECT max(last_seen_ts) FROM devices WHERE localpart = $1")
                .bind(localpart)
                .fetch_one(&mut *conn)
                .await?;
        Ok(last)
    }

    pub(super) async fn update_account_states_impl(
        &self,
        localpart: &str,
        change: &AccountStatesChange,
    ) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE users SET locked = COALESCE($1, locked), \
                              suspended = COALESCE($2, suspended), \
                              shadow_banned = COALESCE($3, shadow_banned), \
                              erased = COALESCE($4, erased), \
                              user_type = CASE WHEN $5 THEN $6::TEXT ELSE user_type END \
             WHERE localpart = $7",
        )
        .bind(change.locked)
        .bind(change.suspended)
        .bind(change.shadow_banned)
        .bind(change.erased)
        .bind(change.user_type.is_some())
        .bind(change.user_type.clone().flatten())
        .bind(localpart)
        .execute(&mut *conn)
        .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))
    }

    pub(super) async fn reactivate_user_impl(&self, localpart: &str) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        let updated = sqlx::query(
            "UPDATE users SET deactivated = FALSE, erased = FALSE WHERE localpart = $1",
        )
        .bind(localpart)
        .execute(&mut *conn)
        .await?;
        found(updated.rows_affected(), || format!("user {localpart}"))
    }

    pub(super) async fn replace_threepids_impl(
        &self,
        localpart: &str,
        threepids: &[ThreepidRecord],
    ) -> Result<()> {
        let mut tx = self.schema.begin().await?;
        let current: Vec<(String, String)> =
            sqlx::query_as("SELECT medium, address FROM user_threepids WHERE localpart = $1")
                .bind(localpart)
                .fetch_all(&mut *tx)
                .await?;
        let kept = |medium: &str, address: &str| {
            threepids
                .iter()
                .any(|t| t.medium == medium && t.address == address)
        };
        for (medium, address) in current.iter().filter(|(m, a)| !kept(m, a)) {
            sqlx::query("DELETE FROM user_threepids WHERE medium = $1 AND address = $2")
                .bind(medium)
                .bind(address)
                .execute(&mut *tx)
                .await?;
        }
        // One the user has already stays as it is; another user's moves to this one.
        for threepid in threepids {
            sqlx::query(
                "INSERT INTO user_threepids (medium, address, localpart, validated_ts, added_ts) \
                 VALUES ($1, $2, $3, $4, $5) \
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
        tx.commit().await
    }

    pub(super) async fn user_by_threepid_impl(
        &self,
        medium: &str,
        address: &str,
    ) -> Result<Option<String>> {
        let mut conn = self.schema.conn().await?;
        Ok(sqlx::query_scalar(
            "SELECT localpart FROM user_threepids WHERE medium = $1 AND address = $2",
        )
        .bind(medium)
        .bind(address)
        .fetch_optional(&mut *conn)
        .await?)
    }

    pub(super) async fn external_ids_impl(&self, localpart: &str) -> Result<Vec<ExternalIdRecord>> {
        let mut conn = self.schema.conn().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT auth_provider, external_id FROM user_external_ids WHERE localpart = $1 \
             ORDER BY auth_provider, external_id",
        )
        .bind(localpart)
        .fetch_all(&mut *conn)
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
        let mut tx = self.schema.begin().await?;
        sqlx::query("DELETE FROM user_external_ids WHERE localpart = $1")
            .bind(localpart)
            .execute(&mut *tx)
            .await?;
        for id in ids {
            sqlx::query(
                "INSERT INTO user_external_ids (auth_provider, external_id, localpart) \
                 VALUES ($1, $2, $3)",
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
        tx.commit().await
    }

    pub(super) async fn user_by_external_id_impl(
        &self,
        auth_provider: &str,
        external_id: &str,
    ) -> Result<Option<String>> {
        let mut conn = self.schema.conn().await?;
        Ok(sqlx::query_scalar(
            "SELECT localpart FROM user_external_ids \
             WHERE auth_provider = $1 AND external_id = $2",
        )
        .bind(auth_provider)
        .bind(external_id)
        .fetch_optional(&mut *conn)
        .await?)
    }

    pub(super) async fn ratelimit_override_impl(
        &self,
        localpart: &str,
    ) -> Result<Option<RateLimitOverrideRecord>> {
        let mut conn = self.schema.conn().await?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT messages_per_second, burst_count FROM ratelimit_overrides \
             WHERE localpart = $1",
        )
        .bind(localpart)
        .fetch_optional(&mut *conn)
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
        let mut conn = self.schema.conn().await?;
        let Some(limit) = limit else {
            sqlx::query("DELETE FROM ratelimit_overrides WHERE localpart = $1")
                .bind(localpart)
                .execute(&mut *conn)
                .await?;
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO ratelimit_overrides (localpart, messages_per_second, burst_count) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (localpart) DO UPDATE \
             SET messages_per_second = excluded.messages_per_second, \
                 burst_count = excluded.burst_count",
        )
        .bind(localpart)
        .bind(to_i64(limit.messages_per_second))
        .bind(to_i64(limit.burst_count))
        .execute(&mut *conn)
        .await
        .map_err(|err| unknown_user(err, localpart))?;
        Ok(())
    }

    pub(super) async fn sent_invite_count_impl(&self, user_id: &str, from_ts: i64) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events \
             WHERE event_type = 'm.room.member' AND sender = $1 AND state_key <> $1 \
               AND origin_server_ts >= $2 \
               AND (pdu::jsonb -> 'content' ->> 'membership') = 'invite'",
        )
        .bind(user_id)
        .bind(from_ts)
        .fetch_one(&mut *conn)
        .await?;
        to_u64(count, "invite count")
    }

    pub(super) async fn joined_room_count_since_impl(
        &self,
        user_id: &str,
        from_ts: i64,
    ) -> Result<u64> {
        let mut conn = self.schema.conn().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT room_id) FROM events \
             WHERE event_type = 'm.room.member' AND state_key = $1 AND origin_server_ts >= $2 \
               AND (pdu::jsonb -> 'content' ->> 'membership') = 'join'",
        )
        .bind(user_id)
        .bind(from_ts)
        .fetch_one(&mut *conn)
        .await?;
        to_u64(count, "joined room count")
    }

    pub(super) async fn insert_device_impl(&self, device: &DeviceRecord) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let inserted = sqlx::query(
            "INSERT INTO devices (localpart, device_id, display_name, last_seen_ts, \
                                  last_seen_ip, created_ts) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (localpart, device_id) DO NOTHING",
        )
        .bind(&device.localpart)
        .bind(&device.device_id)
        .bind(&device.display_name)
        .bind(device.last_seen_ts)
        .bind(&device.last_seen_ip)
        .bind(device.created_ts)
        .execute(&mut *conn)
        .await
        .map_err(|err| unknown_user(err, &device.localpart))?;
        Ok(inserted.rows_affected() == 1)
    }

    pub(super) async fn insert_puppet_token_impl(&self, token: &PuppetTokenRecord) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO puppet_tokens (token_hash, localpart, device_id, admin, \
                                        valid_until_ms, created_ts) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.token_hash)
        .bind(&token.localpart)
        .bind(&token.device_id)
        .bind(&token.admin)
        .bind(token.valid_until_ms)
        .bind(token.created_ts)
        .execute(&mut *conn)
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
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(
            "SELECT token_hash, localpart, device_id, admin, valid_until_ms, created_ts \
             FROM puppet_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(puppet_token_from_row).transpose()
    }

    pub(super) async fn delete_puppet_session_impl(
        &self,
        localpart: &str,
        device_id: &str,
    ) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query("DELETE FROM puppet_tokens WHERE localpart = $1 AND device_id = $2")
            .bind(localpart)
            .bind(device_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub(super) async fn delete_puppet_tokens_of_admin_impl(&self, admin: &str) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query("DELETE FROM puppet_tokens WHERE admin = $1")
            .bind(admin)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
