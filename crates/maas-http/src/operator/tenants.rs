//! Tenants as the operator sees them: creating, listing, changing, suspending and deleting
//! them, and moving one between platforms as an archive (export, import).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maas_core::Platform;
use maas_core::platform::{NewTenant, TenantUpdate};
use maas_core::tenants::{RegistrationPolicy, TenantInfo, TenantSettings};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{JsonBody, TENANTS, op};
use crate::error::{HttpError, Result};
use crate::routes::AppRouter;
use crate::ruma::read_body;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    let tenant = format!("{TENANTS}/{{server_name}}");
    router
        .route(TENANTS, get(list_tenants).post(create_tenant))
        .route(
            &tenant,
            get(show_tenant).patch(update_tenant).delete(delete_tenant),
        )
        .route(&format!("{tenant}/export"), get(export_tenant))
}

async fn tenant_json(platform: &Platform, record: &TenantInfo) -> Result<Value> {
    let tenant = op(platform.tenant_by_server_name(&record.server_name).await)?;
    let user_count = op(tenant.accounts().count().await)?;
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
        "created_ts": record.created_ts,
        "user_count": user_count,
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
            client_base_url: body.client_base_url,
            federation_server: body.federation_server,
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
    #[serde(default, deserialize_with = "nullable")]
    client_base_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    federation_server: Option<Option<String>>,
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
        client_base_url: body.client_base_url,
        federation_server: body.federation_server,
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

/// Tenant archives are far larger than JSON requests; this bounds the memory an import takes.
const IMPORT_LIMIT_BYTES: usize = 1 << 30;

/// `GET /_maas/operator/v1/tenants/{server_name}/export`
async fn export_tenant(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Response> {
    let archive = op(platform.export_tenant(&server_name).await)?;
    tracing::info!(%server_name, bytes = archive.len(), "tenant exported");
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
    Ok((headers, archive).into_response())
}

#[derive(Deserialize)]
pub(super) struct ImportQuery {
    replace: Option<String>,
}

/// `POST /_maas/operator/v1/import` (registered in `operator/mod.rs`)
pub(super) async fn import_tenant(
    State(platform): State<Arc<Platform>>,
    Query(query): Query<ImportQuery>,
    body: axum::body::Body,
) -> Result<Json<Value>> {
    let replace = match query.replace.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(HttpError::invalid_param(format!(
                "replace must be true or false, not {other:?}"
            )));
        }
    };
    let archive = read_body(body, IMPORT_LIMIT_BYTES).await?;
    let record = op(platform.import_tenant(&archive, replace).await)?;
    tracing::info!(
        server_name = %record.server_name,
        tenant_id = %record.tenant_id,
        replace,
        "tenant imported"
    );
    Ok(Json(tenant_json(&platform, &record).await?))
}
