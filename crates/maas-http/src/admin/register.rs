//! Registration with the tenant's shared secret (Synapse: "Shared-Secret Registration";
//! `synapse_admin_api::register_users`), unauthenticated: the secret is the credential. The
//! nonce uses the crate's types; the registration reads its body itself, since Synapse checks
//! each field apart (and `synapse_admin_api`'s request wants fields Synapse leaves optional).

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::routing::post;
use serde_json::{Value, json};
use synapse_admin_api::register_users::shared_secret_register_nonce;

use super::json::{JsonObject, bad_request};
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, method_filter};
use crate::ruma::{Ruma, RumaResponse};

const REGISTER: &str = "/_synapse/admin/v1/register";

pub fn routes(router: AppRouter) -> AppRouter {
    let nonce_method = method_filter(&http::Method::GET);
    router.route(
        REGISTER,
        post(register).on(nonce_method, shared_secret_register_nonce),
    )
}

/// `GET /_synapse/admin/v1/register`
async fn shared_secret_register_nonce(
    ForTenant(tenant): ForTenant,
    _: Ruma<shared_secret_register_nonce::v1::Request>,
) -> RumaResponse<shared_secret_register_nonce::v1::Response> {
    shared_secret_register_nonce::v1::Response::new(tenant.shared_secret().nonce()).into()
}

/// `POST /_synapse/admin/v1/register`: as Synapse, a tenant without a secret says so before
/// the body is read.
async fn register(ForTenant(tenant): ForTenant, req: Request) -> Result<Json<Value>> {
    let registration = tenant.shared_secret();
    if !registration.enabled() {
        return Err(bad_request("Shared secret registration is not enabled"));
    }
    let JsonObject(body) = JsonObject::from_request(req, &()).await?;
    let registered = registration.register(&body).await?;
    let mut answer = json!({
        "user_id": registered.user_id,
        "home_server": tenant.server_name(),
    });
    if let Some(session) = registered.session {
        answer["access_token"] = json!(session.access_token);
        answer["device_id"] = json!(session.device_id);
    }
    Ok(Json(answer))
}
