//! What an admin allows about a user's end-to-end encryption keys (Synapse: "Allow replacing
//! master cross-signing key without User-Interactive Auth").

use axum::Json;
use axum::routing::post;
use ruma::OwnedUserId;
use serde_json::{Value, json};

use super::super::auth::AdminUser;
use super::V1;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

/// How long the user may replace the key without auth (Synapse's period).
const REPLACEMENT_PERIOD_MS: i64 = 10 * 60 * 1000;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    router.route(
        &format!("{V1}/users/{{user_id}}/_allow_cross_signing_replacement_without_uia"),
        post(allow_cross_signing_replacement),
    )
}

/// `POST /_synapse/admin/v1/users/{userId}/_allow_cross_signing_replacement_without_uia`
async fn allow_cross_signing_replacement(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    let no_key = || {
        HttpError::new(
            http::StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            "User has no master cross-signing key",
        )
    };
    // Only this tenant's users have keys stored here.
    if user_id.server_name() != tenant.server_name() {
        return Err(no_key());
    }
    let before = tenant
        .e2ee()
        .allow_master_key_replacement(user_id.localpart(), REPLACEMENT_PERIOD_MS)
        .await?
        .ok_or_else(no_key)?;
    tracing::info!(%user_id, before, "master key replacement without auth allowed by an admin");
    Ok(Json(json!({ "updatable_without_uia_before_ms": before })))
}
