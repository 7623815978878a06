//! A tenant's registration tokens as the operator sees them: creating and listing them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use maas_core::Platform;
use maas_core::registration_tokens::TokenInfo;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, TENANTS, op};
use crate::error::Result;
use crate::extract::Path;
use crate::routes::AppRouter;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    router.route(
        &format!("{TENANTS}/{{server_name}}/registration_tokens"),
        get(list_tokens).post(create_token),
    )
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
