//! Presence (spec: "Presence"; ruma `presence`): a user's own status, and reading another
//! user's (another server's as that server last told us).

use std::time::Duration;

use ruma::api::client::presence::{get_presence, set_presence};
use ruma::presence::PresenceState;
use serde_json::Value;

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<set_presence::v3::Request, _, _>(router, set_presence);
    route::<get_presence::v3::Request, _, _>(router, get_presence)
}

/// `PUT /_matrix/client/v3/presence/{userId}/status`
async fn set_presence(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_presence::v3::Request>,
) -> Result<RumaResponse<set_presence::v3::Response>> {
    tenant
        .set_presence(
            &user,
            &req.user_id,
            req.presence.as_str(),
            req.status_msg.as_deref(),
        )
        .await?;
    Ok(set_presence::v3::Response::new().into())
}

/// `GET /_matrix/client/v3/presence/{userId}/status`
async fn get_presence(
    ForTenant(tenant): ForTenant,
    _: Authed,
    Ruma(req): Ruma<get_presence::v3::Request>,
) -> Result<RumaResponse<get_presence::v3::Response>> {
    let content = tenant.presence_of(&req.user_id).await?;
    let state = content
        .get("presence")
        .and_then(Value::as_str)
        .unwrap_or("offline");
    let mut response = get_presence::v3::Response::new(PresenceState::from(state));
    response.status_msg = content
        .get("status_msg")
        .and_then(Value::as_str)
        .map(str::to_owned);
    response.currently_active = content.get("currently_active").and_then(Value::as_bool);
    response.last_active_ago = content
        .get("last_active_ago")
        .and_then(Value::as_u64)
        .map(Duration::from_millis);
    Ok(response.into())
}
