//! Account validity (Synapse: "Account validity API"). maas has no account expiry: the
//! endpoint exists for the admin web app, and says so.

use axum::Json;
use axum::routing::post;
use serde_json::Value;

use super::super::auth::AdminUser;
use super::super::json::{JsonObject, bad_request};
use super::V1;
use crate::error::Result;
use crate::routes::AppRouter;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    router.route(
        &format!("{V1}/account_validity/validity"),
        post(renew_account_validity),
    )
}

/// `POST /_synapse/admin/v1/account_validity/validity`: maas has no account expiry, so there
/// is no validity to renew. Synapse without a validity period fails here (a `500`, or a row
/// nothing reads); this refuses clearly instead, changing nothing.
async fn renew_account_validity(_: AdminUser, JsonObject(body): JsonObject) -> Result<Json<Value>> {
    if !body.contains_key("user_id") {
        return Err(bad_request(
            "Missing property 'user_id' in the request body",
        ));
    }
    Err(bad_request(
        "Account validity is not enabled on this homeserver: accounts never expire",
    ))
}
