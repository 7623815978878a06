//! A tenant's registration shared secret (Synapse's `registration_shared_secret`, per tenant):
//! shown to the operator, replaced by a new random one, or removed, which disables
//! registration with it. Kept off the tenant's own listing, so that showing tenants shows no
//! credential.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use maas_core::Platform;
use maas_core::shared_secret::SharedSecret;
use maas_core::tenants::TenantInfo;
use serde_json::{Value, json};

use super::{TENANTS, op};
use crate::error::Result;
use crate::extract::Path;
use crate::routes::AppRouter;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    router.route(
        &format!("{TENANTS}/{{server_name}}/shared_secret"),
        get(show_secret).post(replace_secret).delete(remove_secret),
    )
}

fn secret_json(record: &TenantInfo) -> Value {
    let secret = record.settings.registration_shared_secret.as_ref();
    json!({ "registration_shared_secret": secret.map(SharedSecret::expose) })
}

/// `GET /_maas/operator/v1/tenants/{server_name}/shared_secret`
async fn show_secret(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Json<Value>> {
    let tenant = op(platform.tenant_by_server_name(&server_name).await)?;
    Ok(Json(secret_json(&tenant.record())))
}

/// `POST /_maas/operator/v1/tenants/{server_name}/shared_secret`: a new secret; the old one
/// no longer registers anyone.
async fn replace_secret(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Json<Value>> {
    let secret = Some(SharedSecret::generate());
    let record = op(platform
        .set_registration_shared_secret(&server_name, secret)
        .await)?;
    tracing::info!(server_name = %record.server_name, "registration shared secret replaced");
    Ok(Json(secret_json(&record)))
}

/// `DELETE /_maas/operator/v1/tenants/{server_name}/shared_secret`: shared-secret registration
/// off until a new secret is made.
async fn remove_secret(
    State(platform): State<Arc<Platform>>,
    Path(server_name): Path<String>,
) -> Result<Json<Value>> {
    let record = op(platform
        .set_registration_shared_secret(&server_name, None)
        .await)?;
    tracing::info!(server_name = %record.server_name, "registration shared secret removed");
    Ok(Json(secret_json(&record)))
}
