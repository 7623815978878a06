//! Device management (spec: "Device management"; ruma `device`): list, inspect, rename and delete
//! devices.

use ruma::api::client::device::{
    self, Device, delete_device, delete_devices, get_device, get_devices, update_device,
};
use ruma::{MilliSecondsSinceUnixEpoch, UInt};

use crate::context::Authed;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_devices::v3::Request, _, _>(router, get_devices);
    let router = route::<get_device::v3::Request, _, _>(router, get_device);
    let router = route::<update_device::v3::Request, _, _>(router, update_device);
    let router = route::<delete_device::v3::Request, _, _>(router, delete_device);
    route::<delete_devices::v3::Request, _, _>(router, delete_devices)
}

fn to_device(found: maas_core::accounts::Device) -> Device {
    let mut device = device::Device::new(found.device_id);
    device.display_name = found.display_name;
    device.last_seen_ip = found.last_seen_ip;
    device.last_seen_ts = found
        .last_seen_ts
        .and_then(|ts| UInt::try_from(ts).ok())
        .map(MilliSecondsSinceUnixEpoch);
    device
}

/// `GET /_matrix/client/v3/devices`
async fn get_devices(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    _: Ruma<get_devices::v3::Request>,
) -> Result<RumaResponse<get_devices::v3::Response>> {
    let devices = tenant.accounts().devices(&user).await?;
    Ok(get_devices::v3::Response::new(devices.into_iter().map(to_device).collect()).into())
}

/// `GET /_matrix/client/v3/devices/{deviceId}`
async fn get_device(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_device::v3::Request>,
) -> Result<RumaResponse<get_device::v3::Response>> {
    let device = tenant
        .accounts()
        .device(&user, req.device_id.as_str())
        .await?;
    Ok(get_device::v3::Response::new(to_device(device)).into())
}

/// `PUT /_matrix/client/v3/devices/{deviceId}`
async fn update_device(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<update_device::v3::Request>,
) -> Result<RumaResponse<update_device::v3::Response>> {
    tenant
        .accounts()
        .rename_device(&user, req.device_id.as_str(), req.display_name.as_deref())
        .await?;
    Ok(update_device::v3::Response::new().into())
}

/// `DELETE /_matrix/client/v3/devices/{deviceId}`
async fn delete_device(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_device::v3::Request>,
) -> Result<RumaResponse<delete_device::v3::Response>> {
    let ids = [req.device_id.to_string()];
    tenant
        .accounts()
        .delete_devices(&user, &ids, req.auth.as_ref())
        .await?;
    Ok(delete_device::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/delete_devices`
async fn delete_devices(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_devices::v3::Request>,
) -> Result<RumaResponse<delete_devices::v3::Response>> {
    let ids: Vec<String> = req.devices.iter().map(|d| d.to_string()).collect();
    tenant
        .accounts()
        .delete_devices(&user, &ids, req.auth.as_ref())
        .await?;
    Ok(delete_devices::v3::Response::new().into())
}
