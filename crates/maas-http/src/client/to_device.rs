//! Send-to-device messaging (spec: "Send-to-Device messaging"; ruma `to_device`): messages to other
//! users' devices, delivered through their sync; idempotent per device and transaction id.

use ruma::api::client::to_device::send_event_to_device;
use serde_json::{Map, Value};

use super::convert::raw_value;
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<send_event_to_device::v3::Request, _, _>(router, send_event_to_device)
}

/// `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
async fn send_event_to_device(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<send_event_to_device::v3::Request>,
) -> Result<RumaResponse<send_event_to_device::v3::Response>> {
    let mut messages = Map::new();
    for (user_id, devices) in &req.messages {
        let mut contents = Map::new();
        for (device, content) in devices {
            let content = raw_value(content)?;
            if !content.is_object() {
                return Err(HttpError::bad_json("Message contents must be objects"));
            }
            contents.insert(device.to_string(), content);
        }
        messages.insert(user_id.to_string(), Value::Object(contents));
    }
    tenant
        .e2ee()
        .send_to_device(
            &user,
            &req.event_type.to_string(),
            req.txn_id.as_str(),
            &messages,
        )
        .await?;
    Ok(send_event_to_device::v3::Response::new().into())
}
