//! Background updates (Synapse: "Background Updates API"; `synapse_admin_api::
//! background_updates`). maas migrates its schema at start-up and has no background updates:
//! the status lists none running, the switch is kept (per tenant, in memory, as Synapse keeps
//! it per process), and the jobs Synapse knows are accepted with nothing to do, since what
//! they rebuild (room statistics, the user directory) maas reads live.

use axum::Json;
use axum::routing::{get, post};
use serde_json::{Value, json};
use synapse_admin_api::background_updates::status;

use super::auth::AdminUser;
use super::json::{JsonObject, bad_request, require};
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

const UPDATES: &str = "/_synapse/admin/v1/background_updates";

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<status::v1::Request, _, _>(router, background_update_status);
    router
        .route(
            &format!("{UPDATES}/enabled"),
            get(background_updates_enabled).post(enable_background_updates),
        )
        .route(&format!("{UPDATES}/start_job"), post(start_job))
}

/// `GET /_synapse/admin/v1/background_updates/status`
async fn background_update_status(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    _: Ruma<status::v1::Request>,
) -> RumaResponse<status::v1::Response> {
    let enabled = tenant.server_admin().background_updates_enabled();
    status::v1::Response::new(enabled, Default::default()).into()
}

/// `GET /_synapse/admin/v1/background_updates/enabled`
async fn background_updates_enabled(ForTenant(tenant): ForTenant, _: AdminUser) -> Json<Value> {
    Json(json!({ "enabled": tenant.server_admin().background_updates_enabled() }))
}

/// `POST /_synapse/admin/v1/background_updates/enabled`: `enabled` defaults to `true`.
async fn enable_background_updates(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let enabled = match body.get("enabled") {
        None => true,
        Some(Value::Bool(enabled)) => *enabled,
        Some(_) => return Err(bad_request("'enabled' parameter must be a boolean")),
    };
    tenant
        .server_admin()
        .set_background_updates_enabled(enabled);
    Ok(Json(json!({ "enabled": enabled })))
}

/// `POST /_synapse/admin/v1/background_updates/start_job`: Synapse's jobs, checked as Synapse
/// checks them.
async fn start_job(
    ForTenant(_): ForTenant,
    _: AdminUser,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    require(&body, &["job_name"])?;
    match body.get("job_name").and_then(Value::as_str) {
        Some("populate_stats_process_rooms" | "regenerate_directory") => {}
        Some("event_resign") => {
            if body
                .get("old_key")
                .is_some_and(|k| !k.is_null() && !k.is_string())
            {
                return Err(bad_request("'old_key' must be a string"));
            }
            if body
                .get("before_ts")
                .is_some_and(|t| !(t.is_null() || t.is_i64() || t.is_u64()))
            {
                return Err(bad_request("'before_ts' must be an integer"));
            }
        }
        _ => return Err(bad_request("Invalid job_name")),
    }
    Ok(Json(json!({})))
}
