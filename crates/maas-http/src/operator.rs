//! The operator API (`/_maas/operator/v1`): the hosting provider's control of the platform —
//! tenants, their users and registration tokens. Not tenant-scoped; its own bearer token.

use std::sync::Arc;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maas_core::accounts::Account;
use maas_core::platform::{NewTenant, TenantUpdate};
use maas_core::registration_tokens::TokenInfo;
use maas_core::tenants::{RegistrationPolicy, TenantInfo, TenantSettings};
use maas_core::{Platform, Tenant};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::error::{HttpError, Result};
use crate::ruma::read_body;

type OpRouter = Router<Arc<Platform>>;

pub fn routes() -> OpRouter {
    let base = "/_maas/operator/v1/tenants";
    Router::new()
        .route(base, get(list_tenants).post(create_tenant))
        .route(&format!("{base}/import"), post(import_tenant))
        .route(
            &format!("{base}/{{server_name}}"),
            get(show_tenant).patch(update_tenant).delete(delete_tenant),
        )
        .route(
            &format!("{base}/{{server_name}}/export"),
            get(export_tenant),
        )
        .route(
            &format!("{base}/{{server_name}}/users"),
            get(list_users).post(create_user),
        )
        .route(
            &format!("{base}/{{server_name}}/users/{{localpart}}"),
            get(show_user).patch(update_user),
        )
        .route(
            &format!("{base}/{{server_name}}/users/{{localpart}}/reset_password"),
            post(reset_password),
        )
        .route(
            &format!("{base}/{{server_name}}/users/{{localpart}}/deactivate"),
            post(deactivate_user),
        )
        .route(
            &format!("{base}/{{server_name}}/registration_tokens"),
            get(list_tokens).post(create_token),
        )
}

/// Admits only requests bearing the operator token.
pub async fn require_operator(
    State(platform): State<Arc<Platform>>,
    req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return HttpError::missing_token().into_response();
    };
    if !platform.is_operator_token(token.trim()) {
        return HttpError::unknown_token().into_response();
    }
    let span = tracing::info_span!("operator", method = %req.method(), path = %req.uri().path());
    let _entered = span.enter();
    tracing::info!("operator request");
    drop(_entered);
    next.run(req).await
}

/// A JSON body parsed with Matrix errors (`M_NOT_JSON`, `M_BAD_JSON`, `M_TOO_LARGE`).
struct JsonBody<T>(T);

impl<T: DeserializeOwned> FromRequest<Arc<Platform>> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, platform: &Arc<Platform>) -> Result<Self> {
        let limit = platform.config().limits.max_request_bytes;
        let bytes = read_body(req.into_body(), limit).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| HttpError::not_json())?;
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| HttpError::bad_json(e.to_string()))
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn op<T>(result: maas_core::Result<T>) -> Result<T> {
    result.map_err(|e| HttpError::from(e).for_operator())
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
    Ok(Json(tenant_json(&platform, &record).await?))
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
struct ImportQuery {
    replace: Option<String>,
}

/// `POST /_maas/operator/v1/tenants/import`
async fn import_tenant(
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

fn user_json(tenant: &Tenant, user: &Account) -> Value {
    json!({
        "user_id": format!("@{}:{}", user.localpart, tenant.server_name()),
        "localpart": user.localpart,
        "admin": user.admin,
        "deactivated": user.deactivated,
        "guest": user.guest,
        "displayname": user.displayname,
        "created_ts": user.created_ts,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    localpart: String,
    password: Option<String>,
    #[serde(default)]
    admin: bool,
    displayname: Option<String>,
}

/// `POST /_maas/operator/v1/tenants/{server_name}/users`
async fn create_user(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let accounts = tenant.accounts();
    let created = op(accounts
        .create_user(
            &body.localpart,
            body.password.as_deref(),
            body.admin,
            body.displayname.as_deref(),
        )
        .await)?;
    let mut json = user_json(&tenant, &created.account);
    if let Some(password) = created.generated_password {
        json["password"] = Value::String(password);
    }
    Ok(Json(json))
}

#[derive(Deserialize)]
struct UserPage {
    from: Option<String>,
    limit: Option<u32>,
}

/// `GET /_maas/operator/v1/tenants/{server_name}/users`
async fn list_users(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
    Query(page): Query<UserPage>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let users = op(tenant.accounts().users(page.from.as_deref(), limit).await)?;
    let mut json =
        json!({ "users": users.iter().map(|u| user_json(&tenant, u)).collect::<Vec<_>>() });
    if users.len() == limit as usize
        && let Some(last) = users.last()
    {
        json["next_from"] = Value::String(last.localpart.clone());
    }
    Ok(Json(json))
}

/// `GET /_maas/operator/v1/tenants/{server_name}/users/{localpart}`
async fn show_user(
    State(platform): State<Arc<Platform>>,
    Path((server_name, localpart)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let user = op(tenant.accounts().user(&localpart).await)?;
    Ok(Json(user_json(&tenant, &user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUser {
    admin: Option<bool>,
}

/// `PATCH /_maas/operator/v1/tenants/{server_name}/users/{localpart}`
async fn update_user(
    State(platform): State<Arc<Platform>>,
    Path((server_name, localpart)): Path<(String, String)>,
    JsonBody(body): JsonBody<PatchUser>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let accounts = tenant.accounts();
    let user = match body.admin {
        Some(admin) => op(accounts.set_admin(&localpart, admin).await)?,
        None => op(accounts.user(&localpart).await)?,
    };
    Ok(Json(user_json(&tenant, &user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetPassword {
    password: Option<String>,
    logout_devices: Option<bool>,
}

/// `POST /_maas/operator/v1/tenants/{server_name}/users/{localpart}/reset_password`
async fn reset_password(
    State(platform): State<Arc<Platform>>,
    Path((server_name, localpart)): Path<(String, String)>,
    JsonBody(body): JsonBody<ResetPassword>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let logout = body.logout_devices.unwrap_or(true);
    let generated = op(tenant
        .accounts()
        .reset_password(&localpart, body.password.as_deref(), logout)
        .await)?;
    let mut json = json!({ "user_id": format!("@{localpart}:{}", tenant.server_name()) });
    if let Some(password) = generated {
        json["password"] = Value::String(password);
    }
    Ok(Json(json))
}

/// `POST /_maas/operator/v1/tenants/{server_name}/users/{localpart}/deactivate`
async fn deactivate_user(
    State(platform): State<Arc<Platform>>,
    Path((server_name, localpart)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let user = op(tenant.accounts().deactivate_user(&localpart).await)?;
    Ok(Json(user_json(&tenant, &user)))
}

fn token_json(info: &TokenInfo) -> Value {
    json!({
        "token": info.token,
        "uses_allowed": info.uses_allowed,
        "pending": info.pending,
        "completed": info.completed,
        "expiry_time": info.expiry_time,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    token: Option<String>,
    uses_allowed: Option<u64>,
    expiry_time: Option<i64>,
}

/// `POST /_maas/operator/v1/tenants/{server_name}/registration_tokens`
async fn create_token(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let tokens = tenant.registration_tokens();
    let info = op(tokens
        .create(body.token, body.uses_allowed, body.expiry_time)
        .await)?;
    Ok(Json(token_json(&info)))
}

/// `GET /_maas/operator/v1/tenants/{server_name}/registration_tokens`
async fn list_tokens(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    let infos = op(tenant.registration_tokens().list().await)?;
    Ok(Json(
        json!({ "registration_tokens": infos.iter().map(token_json).collect::<Vec<_>>() }),
    ))
}
