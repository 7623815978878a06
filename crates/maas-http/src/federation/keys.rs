//! End-to-end encryption keys of the tenant's users for other servers (spec: Server-Server
//! API, "End-to-End Encryption", "Device management"; ruma `keys`, `device`):
//! `user/keys/query`, `user/keys/claim` and `user/devices`.

use std::collections::BTreeMap;

use ruma::api::federation::device::get_devices;
use ruma::api::federation::keys::{claim_keys, get_keys};
use ruma::serde::Raw;
use ruma::{OwnedDeviceId, UInt};
use serde_json::Value;

use super::authentication::Origin;
use crate::client::convert::from_core;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_keys::v1::Request, _, _>(router, query_keys);
    let router = route::<get_devices::v1::Request, _, _>(router, user_devices);
    route::<claim_keys::v1::Request, _, _>(router, claim)
}

/// `POST /_matrix/federation/v1/user/keys/query`
async fn query_keys(
    ForTenant(tenant): ForTenant,
    Origin(_origin): Origin,
    Ruma(req): Ruma<get_keys::v1::Request>,
) -> Result<RumaResponse<get_keys::v1::Response>> {
    let wanted: BTreeMap<String, Vec<String>> = req
        .device_keys
        .iter()
        .map(|(user, devices)| {
            let devices = devices.iter().map(ToString::to_string).collect();
            (user.to_string(), devices)
        })
        .collect();
    let result = tenant.e2ee().query_for_server(&wanted).await?;
    let device_keys = from_core(Value::Object(result.device_keys), "device_keys")?;
    let mut response = get_keys::v1::Response::new(device_keys);
    response.master_keys = from_core(Value::Object(result.master_keys), "master_keys")?;
    response.self_signing_keys =
        from_core(Value::Object(result.self_signing_keys), "self_signing_keys")?;
    Ok(response.into())
}

/// `POST /_matrix/federation/v1/user/keys/claim`
async fn claim(
    ForTenant(tenant): ForTenant,
    Origin(_origin): Origin,
    Ruma(req): Ruma<claim_keys::v1::Request>,
) -> Result<RumaResponse<claim_keys::v1::Response>> {
    let requested: BTreeMap<String, BTreeMap<String, String>> = req
        .one_time_keys
        .iter()
        .map(|(user, devices)| {
            let devices = devices
                .iter()
                .map(|(device, algorithm)| (device.to_string(), algorithm.to_string()))
                .collect();
            (user.to_string(), devices)
        })
        .collect();
    let claimed = tenant.e2ee().claim_local(&requested).await?;
    let one_time_keys = from_core(Value::Object(claimed), "one_time_keys")?;
    Ok(claim_keys::v1::Response::new(one_time_keys).into())
}

/// `GET /_matrix/federation/v1/user/devices/{userId}`
async fn user_devices(
    ForTenant(tenant): ForTenant,
    Origin(_origin): Origin,
    Ruma(req): Ruma<get_devices::v1::Request>,
) -> Result<RumaResponse<get_devices::v1::Response>> {
    let found = tenant.e2ee().devices_for_server(&req.user_id).await?;
    let stream_id = UInt::try_from(found.stream_id).unwrap_or_default();
    let mut response = get_devices::v1::Response::new(req.user_id, stream_id);
    for device in found.devices {
        let keys: Raw<_> = from_core(device.keys, "device keys")?;
        let mut entry =
            get_devices::v1::UserDevice::new(OwnedDeviceId::from(device.device_id), keys);
        entry.device_display_name = device.display_name;
        response.devices.push(entry);
    }
    response.master_key = found
        .master_key
        .map(|key| from_core(key, "master_key"))
        .transpose()?;
    response.self_signing_key = found
        .self_signing_key
        .map(|key| from_core(key, "self_signing_key"))
        .transpose()?;
    Ok(response.into())
}
