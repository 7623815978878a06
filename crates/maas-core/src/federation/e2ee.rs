//! End-to-end encryption across servers (spec: Server-Server API, "End-to-End Encryption"):
//! the device and cross-signing keys and one-time keys of other servers' users, asked of
//! their servers for our clients' `keys/query` and `keys/claim`.

use std::collections::BTreeMap;
use std::time::Duration;

use ruma::ServerName;
use ruma::api::federation::keys::{claim_keys as claim, get_keys};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::e2ee::device_keys::KeysQueryResult;
use crate::{Error, Result, Tenant};

/// How long a client's key request waits for another server (the spec's default `timeout`).
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys `server` has for `users` (user id → wanted device ids, all when empty).
pub(crate) async fn query_keys(
    tenant: &Tenant,
    server: &ServerName,
    users: &BTreeMap<String, Vec<String>>,
) -> Result<KeysQueryResult> {
    let request = get_keys::v1::Request::new(convert(users)?);
    let send = tenant.federation().send_signed(tenant, server, request);
    let response = tokio::time::timeout(REMOTE_TIMEOUT, send)
        .await
        .map_err(|_| timed_out(server))??;
    Ok(KeysQueryResult {
        device_keys: object(&response.device_keys)?,
        master_keys: object(&response.master_keys)?,
        self_signing_keys: object(&response.self_signing_keys)?,
        ..KeysQueryResult::default()
    })
}

/// One-time keys claimed from `server` for `requested` (user id → device id → algorithm).
pub(crate) async fn claim_keys(
    tenant: &Tenant,
    server: &ServerName,
    requested: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Map<String, Value>> {
    let request = claim::v1::Request::new(convert(requested)?);
    let send = tenant.federation().send_signed(tenant, server, request);
    let response = tokio::time::timeout(REMOTE_TIMEOUT, send)
        .await
        .map_err(|_| timed_out(server))??;
    object(&response.one_time_keys)
}

/// Our string-keyed maps as ruma's typed ones (the ids were parsed by the client API).
fn convert<T: Serialize, U: DeserializeOwned>(value: &T) -> Result<U> {
    let json = serde_json::to_value(value).map_err(|e| Error::Internal(e.to_string()))?;
    serde_json::from_value(json)
        .map_err(|e| Error::InvalidParam(format!("Invalid key request: {e}")))
}

fn object<T: Serialize>(value: &T) -> Result<Map<String, Value>> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Ok(Map::new()),
        Err(e) => Err(Error::RemoteUnavailable(format!("keys answer: {e}"))),
    }
}

fn timed_out(server: &ServerName) -> Error {
    Error::RemoteUnavailable(format!("{server} did not answer in time"))
}
