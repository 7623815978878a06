//! Tenants as the operator sees them: creating, listing, changing, suspending and deleting
//! them, and moving one between platforms as an archive (export, import).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use maas_core::Platform;
use maas_core::export::StreamSource;
use maas_core::platform::{NewTenant, TenantUpdate};
use maas_core::tenants::{
    MediaSettings, Quotas, RegistrationPolicy, RoomSettings, TenantInfo, TenantSettings,
};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{JsonBody, TENANTS, op};
use crate::error::{HttpError, Result};
use crate::routes::AppRouter;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    let tenant = format!("{TENANTS}/{{server_name}}");
    router
        .route(TENANTS, get(list_tenants).post(create_tenant))
        .route(
            &tenant,
            get(show_tenant).patch(update_tenant).delete(delete_tenant),
        )
        .route(&format!("{tenant}/export"), get(export_tenant))
        .route(&format!("{tenant}/rotate_key"), post(rotate_key))
}

async fn tenant_json(platform: &Platform, record: &TenantInfo) -> Result<Value> {
    let tenant = op(platform.tenant_by_server_name(&record.server_name).await)?;
    let user_count = op(tenant.accounts().count().await)?;
    let signing_key = op(tenant.server_keys().await)?.current_key_id();
    let usage = op(tenant.usage().await)?;
    let s = &record.settings;
    Ok(json!({
        "tenant_id": record.tenant_id,
        "server_name": record.server_name,
        "hosts": record.hosts,
        "registration": s.registration,
        "suspended": s.suspended,
        "allow_guests": s.allow_guests,
        "max_users": s.max_users,
        "client_base_url": s.client_base_url,
        "federation_server": s.federation_server,
        "tls_certificate": s.tls_certificate,
        "tls_key": s.tls_key,
        "media": {
            "max_upload_bytes": tenant.media().max_upload_bytes(),
            "quota_bytes": s.media.quota_bytes,
            "user_quota_bytes": s.media.user_quota_bytes,
            "url_previews": s.media.url_previews,
            "unauthenticated_frozen_ts": s.media.unauthenticated_frozen_ts,
            "usage_bytes": op(tenant.media().usage(None).await)?,
        },
        "rooms": {
            "forget_empty_rooms": s.rooms.forget_empty_rooms,
            "forget_empty_rooms_after_secs": s.rooms.forget_empty_rooms_after_secs,
        },
        "quotas": {
            "max_rooms": s.quotas.max_rooms,
            "max_storage_bytes": s.quotas.max_storage_bytes,
            "max_messages_per_second": s.quotas.max_messages_per_second,
        },
        "usage": {
            "users": usage.users,
            "rooms": usage.rooms,
            "database_bytes": usage.database_bytes,
            "media_bytes": usage.media_bytes,
            "storage_bytes": usage.storage_bytes(),
        },
        "created_ts": record.created_ts,
        "user_count": user_count,
        "signing_key": signing_key,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    server_name: String,
    hosts: Option<Vec<String>>,
    #[serde(default)]
    registration: RegistrationPolicy,
    #[serde(default)]
    allow_guests: bool,
    max_users: Option<u64>,
    max_rooms: Option<u64>,
    max_storage_bytes: Option<u64>,
    max_messages_per_second: Option<u32>,
    client_base_url: Option<String>,
    federation_server: Option<String>,
    admin_localpart: Option<String>,
}

/// `POST /_maas/operator/v1/tenants`
async fn create_tenant(
    State(platform): State<Arc<Platform>>,
    JsonBody(body): JsonBody<CreateTenant>,
) -> Result<Json<Value>> {
    let new = NewTenant {
        server_name: body.server_name,
        hosts: body.hosts,
        settings: TenantSettings {
            registration: body.registration,
            suspended: false,
            allow_guests: body.allow_guests,
            max_users: body.max_users,
            quotas: Quotas {
                max_rooms: body.max_rooms,
                max_storage_bytes: body.max_storage_bytes,
                max_messages_per_second: body.max_messages_per_second,
            },
            client_base_url: body.client_base_url,
            federation_server: body.federation_server,
            // Set with `PATCH`, which checks the files.
            tls_certificate: None,
            tls_key: None,
            // Generated for every new tenant.
            registration_shared_secret: None,
            media: MediaSettings::default(),
            rooms: RoomSettings::default(),
        },
        admin_localpart: body.admin_localpart,
    };
    let created = op(platform.create_tenant(new).await)?;
    tracing::info!(server_name = %created.record.server_name, "tenant created");
    let mut json = tenant_json(&platform, &created.record).await?;
    json["admin"] = json!({ "user_id": created.admin_user_id, "password": created.admin_password });
    Ok(Json(json))
}

/// `GET /_maas/operator/v1/tenants`
async fn list_tenants(State(platform): State<Arc<Platform>>) -> Result<Json<Value>> {
    let mut tenants = Vec::new();
    for record in platform.tenants() {
        tenants.push(tenant_json(&platform, &record).await?);
    }
    Ok(Json(json!({ "tenants": tenants })))
}

/// `GET /_maas/operator/v1/tenants/{server_name}`
async fn show_tenant(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Json<Value>> {
    let record = op(platform.tenant_by_server_name(&server_name).await)?.record();
    Ok(Json(tenant_json(&platform, &record).await?))
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchTenant {
    hosts: Option<Vec<String>>,
    registration: Option<RegistrationPolicy>,
    suspended: Option<bool>,
    allow_guests: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    max_users: Option<Option<u64>>,
    /// Rooms the tenant may hold; `null`: no quota.
    #[serde(default, deserialize_with = "nullable")]
    max_rooms: Option<Option<u64>>,
    /// Bytes of database and media together; `null`: no quota.
    #[serde(default, deserialize_with = "nullable")]
    max_storage_bytes: Option<Option<u64>>,
    /// Events the tenant's users may send per second together; `null`: no quota.
    #[serde(default, deserialize_with = "nullable")]
    max_messages_per_second: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    client_base_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    federation_server: Option<Option<String>>,
    /// Absolute paths of the tenant's PEM certificate chain and key, both or neither; `null`
    /// on both clears them.
    #[serde(default, deserialize_with = "nullable")]
    tls_certificate: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    tls_key: Option<Option<String>>,
    /// The tenant's largest upload (never above the platform's); `null`: the platform's.
    #[serde(default, deserialize_with = "nullable")]
    media_max_upload_bytes: Option<Option<u64>>,
    /// Bytes of media the tenant's users may store together; `null`: no quota.
    #[serde(default, deserialize_with = "nullable")]
    media_quota_bytes: Option<Option<u64>>,
    /// Bytes of media each user may store; `null`: no quota.
    #[serde(default, deserialize_with = "nullable")]
    media_user_quota_bytes: Option<Option<u64>>,
    url_previews: Option<bool>,
    freeze_unauthenticated_media: Option<bool>,
    /// Whether rooms the tenant's users all left are purged, and how long after.
    forget_empty_rooms: Option<bool>,
    forget_empty_rooms_after_secs: Option<u64>,
}

/// `PATCH /_maas/operator/v1/tenants/{server_name}`
async fn update_tenant(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
    JsonBody(body): JsonBody<PatchTenant>,
) -> Result<Json<Value>> {
    let update = TenantUpdate {
        hosts: body.hosts,
        registration: body.registration,
        suspended: body.suspended,
        allow_guests: body.allow_guests,
        max_users: body.max_users,
        max_rooms: body.max_rooms,
        max_storage_bytes: body.max_storage_bytes,
        max_messages_per_second: body.max_messages_per_second,
        client_base_url: body.client_base_url,
        federation_server: body.federation_server,
        tls_certificate: body.tls_certificate,
        tls_key: body.tls_key,
        media_max_upload_bytes: body.media_max_upload_bytes,
        media_quota_bytes: body.media_quota_bytes,
        media_user_quota_bytes: body.media_user_quota_bytes,
        url_previews: body.url_previews,
        freeze_unauthenticated_media: body.freeze_unauthenticated_media,
        forget_empty_rooms: body.forget_empty_rooms,
        forget_empty_rooms_after_secs: body.forget_empty_rooms_after_secs,
    };
    let record = op(platform.update_tenant(&server_name, update).await)?;
    tracing::info!(server_name = %record.server_name, "tenant updated");
    let mut json = tenant_json(&platform, &record).await?;
    // A quota below the users the tenant has is allowed (it removes nobody, and the operator
    // may mean to shrink the tenant), but the answer says what it does.
    let users = json["user_count"].as_u64().unwrap_or(0);
    if let Some(max) = record.settings.max_users
        && users > max
    {
        json["warnings"] = json!([format!(
            "the tenant has {users} users, more than max_users {max}: new users are refused until the quota is raised"
        )]);
    }
    Ok(Json(json))
}

/// `DELETE /_maas/operator/v1/tenants/{server_name}`
async fn delete_tenant(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Json<Value>> {
    op(platform.delete_tenant(&server_name).await)?;
    tracing::info!(%server_name, "tenant deleted");
    Ok(Json(json!({})))
}

/// `POST /_maas/operator/v1/tenants/{server_name}/rotate_key`: a new signing key signs from
/// now on; the old one stays published as expired (`old_verify_keys`).
async fn rotate_key(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Json<Value>> {
    let key_id = op(platform.rotate_signing_key(&server_name).await)?;
    Ok(Json(json!({"signing_key": key_id})))
}

/// `GET /_maas/operator/v1/tenants/{server_name}/export`
///
/// The archive is written as the store reads it (chunked, no `Content-Length`). The header and
/// the first table line are read before the status is sent, so a failure to start (an unknown
/// tenant, an unreadable database) is an error answer; a failure later cuts the archive off
/// before its trailer, which no import accepts.
async fn export_tenant(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Response> {
    let mut export = op(platform.export_tenant(&server_name).await)?;
    let mut first = Vec::new();
    for _ in 0..2 {
        match export.next_bytes().await {
            Some(bytes) => first.push(op(bytes)?),
            None => break,
        }
    }
    let rest = futures_util::stream::unfold(export, |mut export| async move {
        let bytes = export.next_bytes().await?;
        Some((bytes.map(Bytes::from), export))
    });
    let body =
        futures_util::stream::iter(first.into_iter().map(|b| Ok(Bytes::from(b)))).chain(rest);
    // Server names are host names, but the path segment is whatever the caller sent.
    let file: String = server_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    let disposition = format!("attachment; filename=\"{file}.maas-export.jsonl\"");
    let headers = [
        (
            http::header::CONTENT_TYPE,
            "application/x-ndjson".to_owned(),
        ),
        (http::header::CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, Body::from_stream(body)).into_response())
}

#[derive(Deserialize)]
pub(super) struct ImportQuery {
    replace: Option<String>,
}

/// `POST /_maas/operator/v1/import` (registered in `operator/mod.rs`)
///
/// The body is read as it arrives, without a size limit: core holds a line of it at a time.
pub(super) async fn import_tenant(
    State(platform): State<Arc<Platform>>,
    Query(query): Query<ImportQuery>,
    body: Body,
) -> Result<Response> {
    let replace = match query.replace.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(HttpError::invalid_param(format!(
                "replace must be true or false, not {other:?}"
            )));
        }
    };
    let mut source = StreamSource(body.into_data_stream());
    let record = match op(platform.import_tenant(&mut source, replace).await) {
        Ok(record) => record,
        Err(error) => return Ok(refused_import(error, source.0).await),
    };
    tracing::info!(
        server_name = %record.server_name,
        tenant_id = %record.tenant_id,
        replace,
        "tenant imported"
    );
    Ok(Json(tenant_json(&platform, &record).await?).into_response())
}

/// What of a refused import's body is still read, at most, before answering.
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The answer to a refused import, which may come before the body ended (a conflict is told
/// after the header). A connection can only carry the next request once this one's body was
/// read, so a short rest is read; after a longer one the connection is closed with the answer
/// (`Connection: close`), rather than read for nothing or left for a client to reuse.
async fn refused_import(error: HttpError, mut rest: BodyDataStream) -> Response {
    let drained = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0;
        while let Some(piece) = rest.next().await {
            read += piece.map_or(DRAIN_BYTES, |p| p.len());
            if read >= DRAIN_BYTES {
                return false;
            }
        }
        true
    })
    .await;
    let mut response = error.into_response();
    if drained != Ok(true) {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}
