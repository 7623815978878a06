//! The tenant's media as its admins see it (Synapse: "Media Admin API", and "User media" of the
//! "User Admin API"): listing and deleting a user's uploads, one piece of media by id,
//! quarantine (by id or of a user's uploads) and protection from it, the deletion of old local
//! media and the purge of cached remote media. `synapse_admin_api` has no types for
//! these, so requests and responses are written here after Synapse's documentation and
//! behaviour (status codes and errcodes included).

use std::cmp::Ordering;

use axum::Json;
use axum::routing::{get, post};
use http::StatusCode;
use maas_core::media::MediaInfo;
use maas_core::{Error, Tenant};
use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::AdminUser;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::{Path, Query};
use crate::routes::AppRouter;

const V1: &str = "/_synapse/admin/v1";

/// Uploads listed (or deleted) per request unless `limit` says otherwise, as Synapse.
const DEFAULT_LIMIT: u64 = 100;

/// Synapse refuses a `before_ts` below this as a timestamp given in seconds by mistake (it is
/// December 1970 in milliseconds, the year 2920 in seconds).
const MIN_BEFORE_TS: i64 = 30_000_000_000;

pub fn routes(router: AppRouter) -> AppRouter {
    router
        .route(
            &format!("{V1}/users/{{user_id}}/media"),
            get(list_user_media).delete(delete_user_media),
        )
        .route(
            &format!("{V1}/media/{{server_name}}/{{media_id}}"),
            get(media_info).delete(delete_media),
        )
        .route(
            &format!("{V1}/media/quarantine/{{server_name}}/{{media_id}}"),
            post(quarantine_media),
        )
        .route(
            &format!("{V1}/media/unquarantine/{{server_name}}/{{media_id}}"),
            post(unquarantine_media),
        )
        .route(&format!("{V1}/purge_media_cache"), post(purge_media_cache))
        .route(
            &format!("{V1}/user/{{user_id}}/media/quarantine"),
            post(quarantine_user_media),
        )
        .route(
            &format!("{V1}/media/protect/{{media_id}}"),
            post(protect_media),
        )
        .route(
            &format!("{V1}/media/unprotect/{{media_id}}"),
            post(unprotect_media),
        )
        .route(&format!("{V1}/media/delete"), post(delete_old_media))
        .route(
            &format!("{V1}/media/{{server_name}}/delete"),
            post(delete_old_media_of),
        )
}

/// What Synapse sorts a user's media by (`order_by`).
#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OrderBy {
    MediaId,
    UploadName,
    #[default]
    CreatedTs,
    LastAccessTs,
    MediaLength,
    MediaType,
    QuarantinedBy,
    SafeFromQuarantine,
}

/// `dir`: `f`orwards (ascending) or `b`ackwards.
#[derive(Clone, Copy, Default, PartialEq, Eq, Deserialize)]
enum Dir {
    #[default]
    #[serde(rename = "f")]
    Forwards,
    #[serde(rename = "b")]
    Backwards,
}

/// The query of both `/users/{userId}/media` endpoints. Unknown parameters are ignored, as
/// Synapse does (clients may pass `access_token` here).
#[derive(Deserialize)]
struct UserMediaQuery {
    /// An offset into the sorted list (Synapse's `next_token`).
    from: Option<u64>,
    limit: Option<u64>,
    order_by: Option<OrderBy>,
    dir: Option<Dir>,
}

impl UserMediaQuery {
    /// The order asked for: newest first when neither `order_by` nor `dir` is given (Synapse
    /// keeps that for compatibility), else `created_ts` and forwards for what is missing.
    fn order(&self) -> (OrderBy, Dir) {
        match (self.order_by, self.dir) {
            (None, None) => (OrderBy::CreatedTs, Dir::Backwards),
            (order_by, dir) => (order_by.unwrap_or_default(), dir.unwrap_or_default()),
        }
    }

    /// The offset and the page size, in `usize` (saturating: an offset past the end is an
    /// empty page, not an error).
    fn window(&self) -> (usize, usize) {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        (
            to_usize(self.from.unwrap_or(0)),
            to_usize(self.limit.unwrap_or(DEFAULT_LIMIT)),
        )
    }
}

/// A user's upload as Synapse lists it.
#[derive(Serialize)]
struct UserMedia {
    created_ts: i64,
    last_access_ts: i64,
    media_id: String,
    /// `null` while the bytes of an upload made in two steps have not come (Synapse's column is
    /// empty then too).
    media_length: Option<u64>,
    media_type: Option<String>,
    quarantined_by: Option<String>,
    safe_from_quarantine: bool,
    upload_name: Option<String>,
}

impl UserMedia {
    fn new(info: MediaInfo, server_name: &str) -> Self {
        UserMedia {
            created_ts: info.created_ts,
            last_access_ts: info.last_access_ts,
            media_length: (!info.pending).then_some(info.size),
            media_type: info.content_type,
            quarantined_by: quarantined_by(info.quarantined, info.quarantined_by, server_name),
            safe_from_quarantine: info.safe_from_quarantine,
            upload_name: info.file_name,
            media_id: info.media_id,
        }
    }

    /// Synapse's order: by the column asked for (`NULL` after every value going forwards, as
    /// PostgreSQL sorts it), then always by ascending `media_id`, so that pages are stable.
    fn compare(&self, other: &Self, order_by: OrderBy, dir: Dir) -> Ordering {
        let by_column = match order_by {
            OrderBy::MediaId => Ordering::Equal,
            OrderBy::UploadName => nulls_last(&self.upload_name, &other.upload_name),
            OrderBy::CreatedTs => self.created_ts.cmp(&other.created_ts),
            OrderBy::LastAccessTs => self.last_access_ts.cmp(&other.last_access_ts),
            OrderBy::MediaLength => nulls_last(&self.media_length, &other.media_length),
            OrderBy::MediaType => nulls_last(&self.media_type, &other.media_type),
            OrderBy::QuarantinedBy => nulls_last(&self.quarantined_by, &other.quarantined_by),
            OrderBy::SafeFromQuarantine => {
                self.safe_from_quarantine.cmp(&other.safe_from_quarantine)
            }
        };
        let by_column = if dir == Dir::Backwards {
            by_column.reverse()
        } else {
            by_column
        };
        by_column.then_with(|| self.media_id.cmp(&other.media_id))
    }
}

fn nulls_last<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Synapse names the admin who quarantined media. Where no admin is known (the operator
/// quarantined it, or it was before maas kept who) the tenant's server name stands for "this
/// server" (a string, so clients that test it for `null` still see the quarantine).
fn quarantined_by(quarantined: bool, by: Option<String>, server_name: &str) -> Option<String> {
    quarantined.then(|| by.unwrap_or_else(|| server_name.to_owned()))
}

/// One page of `user_id`'s uploads in the order and window `query` asks for, and how many
/// uploads there are in all. Synapse's paging is by offset over any order, the store's by
/// cursor over creation, so the user's whole list is read and sorted here.
async fn user_media_page(
    tenant: &Tenant,
    user_id: &UserId,
    query: &UserMediaQuery,
) -> Result<(Vec<UserMedia>, usize)> {
    let server_name = tenant.server_name().as_str();
    // Synapse's errcode here (and for remote media below) is `M_UNKNOWN`: its error is raised
    // without one.
    if user_id.server_name() != server_name {
        return Err(Error::Unknown("Can only look up local users".into()).into());
    }
    match tenant.accounts().user(user_id.localpart()).await {
        Ok(_) => {}
        Err(Error::NotFound(_)) => return Err(Error::NotFound("Unknown user".into()).into()),
        Err(e) => return Err(e.into()),
    }
    let all = tenant.media().all_of(user_id).await?;
    let total = all.len();
    let mut media: Vec<UserMedia> = all
        .into_iter()
        .map(|info| UserMedia::new(info, server_name))
        .collect();
    let (order_by, dir) = query.order();
    media.sort_by(|a, b| a.compare(b, order_by, dir));
    let (start, limit) = query.window();
    let page = media.into_iter().skip(start).take(limit).collect();
    Ok((page, total))
}

/// `GET /_synapse/admin/v1/users/{userId}/media`
async fn list_user_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    Query(query): Query<UserMediaQuery>,
) -> Result<Json<Value>> {
    let (media, total) = user_media_page(&tenant, &user_id, &query).await?;
    let (start, limit) = query.window();
    // As Synapse: a next page when the window ends before the list does (so `start` is below
    // `total`, and the sum can't overflow).
    let next_token = (start.saturating_add(limit) < total).then(|| start + media.len());
    let mut body = json!({ "media": media, "total": total });
    if let Some(next_token) = next_token {
        body["next_token"] = json!(next_token);
    }
    Ok(Json(body))
}

/// `DELETE /_synapse/admin/v1/users/{userId}/media`: the page the same query would list.
async fn delete_user_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    Query(query): Query<UserMediaQuery>,
) -> Result<Json<Value>> {
    let (page, _) = user_media_page(&tenant, &user_id, &query).await?;
    let server_name = tenant.server_name().as_str();
    let media = tenant.media();
    let mut deleted = Vec::with_capacity(page.len());
    for item in page {
        // Gone meanwhile (deleted concurrently) is not deleted by this request.
        if media.delete(server_name, &item.media_id).await? {
            deleted.push(item.media_id);
        }
    }
    tracing::info!(%user_id, count = deleted.len(), "user media deleted by an admin");
    Ok(Json(
        json!({ "total": deleted.len(), "deleted_media": deleted }),
    ))
}

/// `GET /_synapse/admin/v1/media/{serverName}/{mediaId}`: an upload of the tenant or its cached
/// copy of another server's media.
async fn media_info(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((server_name, media_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let Some(media) = tenant.media().details(&server_name, &media_id).await? else {
        return Err(unknown_media());
    };
    let local = media.uploader.is_some();
    let own = tenant.server_name().as_str();
    // Synapse's fields, `null` where maas has no such thing: the origin of local media, a
    // file id apart from the content hash, URL-preview caches, and (for remote media, which
    // can't be protected) `safe_from_quarantine`.
    let quarantined_by = quarantined_by(media.quarantined, media.quarantined_by, own);
    Ok(Json(json!({
        "media_info": {
            "media_origin": (!local).then_some(&media.origin),
            "user_id": media.uploader,
            "media_id": media.media_id,
            "media_type": media.content_type,
            "media_length": media.sha256.is_some().then_some(media.size),
            "upload_name": media.file_name,
            "created_ts": media.created_ts,
            "filesystem_id": null,
            "url_cache": null,
            "last_access_ts": media.last_access_ts,
            "quarantined_by": quarantined_by,
            "authenticated": media.authenticated,
            "safe_from_quarantine": local.then_some(media.safe_from_quarantine),
            "sha256": media.sha256,
        }
    })))
}

/// `DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}`: local media only, as Synapse
/// (cached remote media goes with `purge_media_cache`).
async fn delete_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((server_name, media_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    if server_name != tenant.server_name().as_str() {
        return Err(Error::Unknown("Can only delete local media".into()).into());
    }
    if !tenant.media().delete(&server_name, &media_id).await? {
        return Err(unknown_media());
    }
    tracing::info!(%media_id, "media deleted by an admin");
    Ok(Json(json!({ "deleted_media": [media_id], "total": 1 })))
}

/// `POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}`: local media or the
/// tenant's cached copy of another server's, in the admin's name. Like Synapse, `{}` whether or
/// not there was such media, or it is protected (then it stays as it is); the body, `{}`, is
/// not read.
async fn quarantine_media(
    ForTenant(tenant): ForTenant,
    AdminUser(admin): AdminUser,
    Path((server_name, media_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    tenant
        .media()
        .quarantine_by(&server_name, &media_id, &admin.user_id)
        .await?;
    tracing::info!(%server_name, %media_id, "media quarantined by an admin");
    Ok(Json(json!({})))
}

/// `POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}`: as `quarantine`.
async fn unquarantine_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((server_name, media_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    tenant
        .media()
        .quarantine(&server_name, &media_id, false)
        .await?;
    tracing::info!(%server_name, %media_id, "media released from quarantine by an admin");
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct PurgeQuery {
    /// Required: a missing one is `400 M_MISSING_PARAM` (the extractor's "missing field").
    before_ts: i64,
}

/// `POST /_synapse/admin/v1/purge_media_cache?before_ts=`: cached remote media not served since
/// then goes (it is fetched again when asked for).
async fn purge_media_cache(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Query(query): Query<PurgeQuery>,
) -> Result<Json<Value>> {
    if query.before_ts < 0 {
        let message = "Query parameter before_ts must be a positive integer.";
        return Err(HttpError::invalid_param(message));
    }
    if query.before_ts < MIN_BEFORE_TS {
        let message = "Query parameter before_ts you provided is from the year 1970. \
                       Double check that you are providing a timestamp in milliseconds.";
        return Err(HttpError::invalid_param(message));
    }
    let purged = tenant.media().purge_remote(query.before_ts).await?;
    Ok(Json(json!({ "deleted": purged.items })))
}

/// `POST /_synapse/admin/v1/user/{userId}/media/quarantine`: the user's uploads not yet
/// quarantined nor protected. As Synapse, the user is not looked up: another server's user, or
/// one the tenant doesn't know, has nothing quarantined (and a user id that doesn't parse
/// names no one).
async fn quarantine_user_media(
    ForTenant(tenant): ForTenant,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let count = match UserId::parse(&user_id) {
        Ok(user_id) if user_id.server_name() == tenant.server_name().as_str() => {
            tenant
                .media()
                .quarantine_uploads(&user_id, &admin.user_id)
                .await?
        }
        _ => 0,
    };
    tracing::info!(%user_id, count, "user media quarantined by an admin");
    Ok(Json(json!({ "num_quarantined": count })))
}

/// `POST /_synapse/admin/v1/media/protect/{mediaId}`: local media, kept from admins'
/// quarantines.
async fn protect_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(media_id): Path<String>,
) -> Result<Json<Value>> {
    set_protected(&tenant, &media_id, true).await
}

/// `POST /_synapse/admin/v1/media/unprotect/{mediaId}`
async fn unprotect_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(media_id): Path<String>,
) -> Result<Json<Value>> {
    set_protected(&tenant, &media_id, false).await
}

/// Unknown media is Synapse's failed single-row update: `404` with `M_UNKNOWN`, "No row found"
/// (an id that can't be one is unknown too).
async fn set_protected(tenant: &Tenant, media_id: &str, safe: bool) -> Result<Json<Value>> {
    let found = match tenant.media().protect(media_id, safe).await {
        Ok(found) => found,
        Err(Error::NotFound(_) | Error::InvalidParam(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if !found {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "M_UNKNOWN",
            "No row found",
        ));
    }
    tracing::info!(%media_id, safe, "media protection changed by an admin");
    Ok(Json(json!({})))
}

/// The query of the deletion of old local media.
#[derive(Deserialize)]
struct DeleteOldQuery {
    /// Required: a missing one is `400 M_MISSING_PARAM`.
    before_ts: i64,
    size_gt: Option<i64>,
    /// `true` or `false` only, as Synapse's boolean parameters.
    keep_profiles: Option<bool>,
}

/// `POST /_synapse/admin/v1/media/delete?before_ts=&size_gt=&keep_profiles=`
async fn delete_old_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Query(query): Query<DeleteOldQuery>,
) -> Result<Json<Value>> {
    delete_old(&tenant, query).await
}

/// `POST /_synapse/admin/v1/media/{serverName}/delete?before_ts=&…`: the older form, for the
/// tenant's own server name only.
async fn delete_old_media_of(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(server_name): Path<String>,
    Query(query): Query<DeleteOldQuery>,
) -> Result<Json<Value>> {
    check_before_ts(query.before_ts)?;
    if server_name != tenant.server_name().as_str() {
        return Err(Error::Unknown("Can only delete local media".into()).into());
    }
    delete_old(&tenant, query).await
}

/// Local media last served before `before_ts` and larger than `size_gt` goes, but for
/// quarantined and protected media and, unless `keep_profiles=false`, avatars.
async fn delete_old(tenant: &Tenant, query: DeleteOldQuery) -> Result<Json<Value>> {
    check_before_ts(query.before_ts)?;
    let size_gt = non_negative("size_gt", query.size_gt.unwrap_or(0))?;
    let keep_profiles = query.keep_profiles.unwrap_or(true);
    let deleted = tenant
        .media()
        .delete_unused_local(query.before_ts, size_gt, keep_profiles)
        .await?;
    tracing::info!(count = deleted.len(), "old local media deleted by an admin");
    Ok(Json(
        json!({ "deleted_media": deleted, "total": deleted.len() }),
    ))
}

/// Synapse's checks of `before_ts` where its parser takes no negative number.
fn check_before_ts(before_ts: i64) -> Result<()> {
    non_negative("before_ts", before_ts)?;
    if before_ts < MIN_BEFORE_TS {
        let message = "Query parameter before_ts you provided is from the year 1970. \
                       Double check that you are providing a timestamp in milliseconds.";
        return Err(HttpError::invalid_param(message));
    }
    Ok(())
}

/// An integer query parameter as Synapse's parser takes it: `400 M_INVALID_PARAM` below zero.
fn non_negative(name: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        HttpError::invalid_param(format!(
            "Query parameter '{name}' must be a non-negative integer"
        ))
    })
}

fn unknown_media() -> HttpError {
    Error::NotFound("Unknown media".into()).into()
}
