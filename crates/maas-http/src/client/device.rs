//! Device management (spec: "Device management"; ruma `device`): list, inspect, rename and delete
//! devices.

use axum::Json;
use ruma::api::client::device::{
    delete_device, delete_devices, get_device, get_devices, update_device,
};
use serde::Serialize;

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

/// A device as the spec's `Device` object. ruma 0.16's `Device` writes `"display_name": null`
/// and `"last_seen_ip": null` for a device without them, where the spec's fields are optional
/// strings: absent, never null. So the two device reads answer with this instead.
#[derive(Serialize)]
struct DeviceJson {
    device_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen_ts: Option<u64>,
}

impl From<maas_core::accounts::Device> for DeviceJson {
    fn from(found: maas_core::accounts::Device) -> Self {
        Self {
            device_id: found.device_id.to_string(),
            display_name: found.display_name,
            last_seen_ip: found.last_seen_ip,
            last_seen_ts: found.last_seen_ts.and_then(|ts| u64::try_from(ts).ok()),
        }
    }
}

#[derive(Serialize)]
struct DevicesJson {
    devices: Vec<DeviceJson>,
}

/// `GET /_matrix/client/v3/devices`
async fn get_devices(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    _: Ruma<get_devices::v3::Request>,
) -> Result<Json<DevicesJson>> {
    let devices = tenant.accounts().devices(&user).await?;
    let devices = devices.into_iter().map(DeviceJson::from).collect();
    Ok(Json(DevicesJson { devices }))
}

/// `GET /_matrix/client/v3/devices/{deviceId}`
async fn get_device(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_device::v3::Request>,
) -> Result<Json<DeviceJson>> {
    let device = tenant
        .accounts()
        .device(&user, req.device_id.as_str())
        .await?;
    Ok(Json(device.into()))
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
