//! A tenant's media as the operator sees it: listing uploads, deleting and quarantining media,
//! and purging the cache of other servers' media.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::{delete, get, post};
use maas_core::Platform;
use maas_core::media::MediaInfo;
use ruma::OwnedUserId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, TENANTS, op};
use crate::error::{HttpError, Result};
use crate::extract::{Path, Query};
use crate::routes::AppRouter;

/// Uploads listed per page unless asked otherwise, and at most.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    let media = format!("{TENANTS}/{{server_name}}/media");
    router
        .route(&media, get(list_media))
        .route(&format!("{media}/purge_remote"), post(purge_remote))
        .route(
            &format!("{media}/{{origin}}/{{media_id}}"),
            delete(delete_media),
        )
        .route(
            &format!("{media}/{{origin}}/{{media_id}}/quarantine"),
            post(quarantine_media),
        )
}

fn media_json(info: &MediaInfo) -> Value {
    json!({
        "media_id": info.media_id,
        "content_uri": info.mxc,
        "uploader": info.uploader,
        "content_type": info.content_type,
        "file_name": info.file_name,
        "size": info.size,
        "created_ts": info.created_ts,
        "last_access_ts": info.last_access_ts,
        "quarantined": info.quarantined,
        "pending": info.pending,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    user_id: Option<OwnedUserId>,
    from: Option<String>,
    limit: Option<u32>,
}

/// `GET /_maas/operator/v1/tenants/{server_name}/media`: uploads, oldest first, `next` to go on.
async fn list_media(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let media = tenant.media();
    let (page, next) = op(media
        .list(query.user_id.as_deref(), query.from.as_deref(), limit)
        .await)?;
    let usage = op(media.usage(query.user_id.as_deref()).await)?;
    Ok(Json(json!({
        "media": page.iter().map(media_json).collect::<Vec<_>>(),
        "next": next,
        "usage_bytes": usage,
    })))
}

/// `DELETE /_maas/operator/v1/tenants/{server_name}/media/{origin}/{media_id}`: the tenant's
/// upload (`origin` its server name) or cached remote media, with its thumbnails.
async fn delete_media(
    State(platform): State<Arc<Platform>>,
    Path((server_name, origin, media_id)): Path<(String, String, String)>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    if !op(tenant.media().delete(&origin, &media_id).await)? {
        return Err(unknown_media());
    }
    tracing::info!(%server_name, %origin, %media_id, "media deleted by the operator");
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Quarantine {
    quarantined: bool,
}

/// `POST /_maas/operator/v1/tenants/{server_name}/media/{origin}/{media_id}/quarantine`
async fn quarantine_media(
    State(platform): State<Arc<Platform>>,
    Path((server_name, origin, media_id)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Quarantine>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let media = tenant.media();
    if !op(media.quarantine(&origin, &media_id, body.quarantined).await)? {
        return Err(unknown_media());
    }
    Ok(Json(json!({ "quarantined": body.quarantined })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purge {
    before_ts: i64,
}

/// `POST /_maas/operator/v1/tenants/{server_name}/media/purge_remote`: cached remote media not
/// served since `before_ts` goes (it is fetched again when asked for).
async fn purge_remote(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
    JsonBody(body): JsonBody<Purge>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let purged = op(tenant.media().purge_remote(body.before_ts).await)?;
    Ok(Json(
        json!({ "deleted": purged.items, "deleted_bytes": purged.bytes }),
    ))
}

fn unknown_media() -> HttpError {
    HttpError::new(http::StatusCode::NOT_FOUND, "M_NOT_FOUND", "Unknown media")
}
