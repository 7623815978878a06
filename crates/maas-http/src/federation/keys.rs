//! End-to-end encryption keys of the tenant's users for other servers (spec: Server-Server
//! API, "End-to-End Encryption"; ruma `keys`): `user/keys/query` and `user/keys/claim`.

use std::collections::BTreeMap;

use ruma::api::federation::keys::{claim_keys, get_keys};
use serde_json::Value;

use super::authentication::Origin;
use crate::client::convert::from_core;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_keys::v1::Request, _, _>(router, query_keys);
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
