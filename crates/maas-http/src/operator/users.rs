//! A tenant's users as the operator sees them: creating them (admins included), listing,
//! promoting, resetting passwords and deactivating.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use maas_core::accounts::Account;
use maas_core::{Platform, Tenant};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, TENANTS, op};
use crate::error::Result;
use crate::extract::{Path, Query};
use crate::routes::AppRouter;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    let users = format!("{TENANTS}/{{server_name}}/users");
    let user = format!("{users}/{{localpart}}");
    router
        .route(&users, get(list_users).post(create_user))
        .route(&user, get(show_user).patch(update_user))
        .route(&format!("{user}/reset_password"), post(reset_password))
        .route(&format!("{user}/deactivate"), post(deactivate_user))
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
