//! Key management (spec: "Key management API", "Cross-signing"; ruma `keys`): device, one-time and
//! fallback keys, who changed keys, and the cross-signing keys and signatures made with them.
//! Keys are opaque JSON objects to these handlers; core checks their shape and signatures.

use std::collections::BTreeMap;

use maas_core::e2ee::cross_signing::SigningKeysUpload;
use maas_core::e2ee::device_keys::KeysUpload;
use maas_core::sync::parse_token;
use ruma::api::client::keys::{
    claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys,
};
use ruma::serde::Raw;
use ruma::{OneTimeKeyAlgorithm, OwnedUserId, UInt};
use serde_json::{Map, Value};

use super::convert::{from_core, raw_value};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<upload_keys::v3::Request, _, _>(router, upload_keys);
    let router = route::<get_keys::v3::Request, _, _>(router, get_keys);
    let router = route::<claim_keys::v3::Request, _, _>(router, claim_keys);
    let router = route::<get_key_changes::v3::Request, _, _>(router, get_key_changes);
    let router = route::<upload_signing_keys::v3::Request, _, _>(router, upload_signing_keys);
    route::<upload_signatures::v3::Request, _, _>(router, upload_signatures)
}

/// Key ids → key objects of an upload, as JSON.
fn key_map<K: ToString, T>(keys: &BTreeMap<K, Raw<T>>) -> Result<Map<String, Value>> {
    keys.iter()
        .map(|(id, key)| Ok((id.to_string(), raw_value(key)?)))
        .collect()
}

/// A key object of an upload (device or cross-signing keys), as JSON.
fn optional_key<T>(key: Option<&Raw<T>>, what: &str) -> Result<Option<Value>> {
    let Some(key) = key else { return Ok(None) };
    let value = raw_value(key)?;
    if !value.is_object() {
        return Err(HttpError::bad_json(format!("{what} must be an object")));
    }
    Ok(Some(value))
}

/// `POST /_matrix/client/v3/keys/upload`
async fn upload_keys(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<upload_keys::v3::Request>,
) -> Result<RumaResponse<upload_keys::v3::Response>> {
    let upload = KeysUpload {
        device_keys: optional_key(req.device_keys.as_ref(), "device_keys")?,
        one_time_keys: key_map(&req.one_time_keys)?,
        fallback_keys: key_map(&req.fallback_keys)?,
    };
    let counts = tenant.e2ee().upload(&user, upload).await?;
    let counts = counts
        .into_iter()
        .map(|(algorithm, count)| {
            let count = UInt::try_from(count).unwrap_or(UInt::MAX);
            (OneTimeKeyAlgorithm::from(algorithm.as_str()), count)
        })
        .collect();
    Ok(upload_keys::v3::Response::new(counts).into())
}

/// `POST /_matrix/client/v3/keys/query`
async fn get_keys(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_keys::v3::Request>,
) -> Result<RumaResponse<get_keys::v3::Response>> {
    // Other servers are given the spec's default `timeout`, 10 s, whatever is asked.
    let wanted: BTreeMap<String, Vec<String>> = req
        .device_keys
        .iter()
        .map(|(user_id, devices)| {
            let devices = devices.iter().map(ToString::to_string).collect();
            (user_id.to_string(), devices)
        })
        .collect();
    let result = tenant.e2ee().query(&user, &wanted).await?;
    let mut response = get_keys::v3::Response::new();
    response.device_keys = from_core(Value::Object(result.device_keys), "device_keys")?;
    response.master_keys = from_core(Value::Object(result.master_keys), "master_keys")?;
    response.self_signing_keys =
        from_core(Value::Object(result.self_signing_keys), "self_signing_keys")?;
    response.user_signing_keys =
        from_core(Value::Object(result.user_signing_keys), "user_signing_keys")?;
    response.failures = result.failures.into_iter().collect();
    Ok(response.into())
}

/// `POST /_matrix/client/v3/keys/claim`
async fn claim_keys(
    ForTenant(tenant): ForTenant,
    Authed(_): Authed,
    Ruma(req): Ruma<claim_keys::v3::Request>,
) -> Result<RumaResponse<claim_keys::v3::Response>> {
    let requested: BTreeMap<String, BTreeMap<String, String>> = req
        .one_time_keys
        .iter()
        .map(|(user_id, devices)| {
            let devices = devices
                .iter()
                .map(|(device, algorithm)| (device.to_string(), algorithm.to_string()))
                .collect();
            (user_id.to_string(), devices)
        })
        .collect();
    let (claimed, failures) = tenant.e2ee().claim(&requested).await?;
    let mut response =
        claim_keys::v3::Response::new(from_core(Value::Object(claimed), "one_time_keys")?);
    response.failures = failures.into_iter().collect();
    Ok(response.into())
}

/// `GET /_matrix/client/v3/keys/changes`
async fn get_key_changes(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_key_changes::v3::Request>,
) -> Result<RumaResponse<get_key_changes::v3::Response>> {
    let (from, to) = (parse_token(&req.from)?, parse_token(&req.to)?);
    let (changed, left) = tenant.e2ee().changes(&user.user_id, from, to).await?;
    let user_ids = |ids: Vec<String>| -> Vec<OwnedUserId> {
        ids.into_iter()
            .filter_map(|id| OwnedUserId::try_from(id).ok())
            .collect()
    };
    Ok(get_key_changes::v3::Response::new(user_ids(changed), user_ids(left)).into())
}

/// `POST /_matrix/client/v3/keys/device_signing/upload`
async fn upload_signing_keys(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<upload_signing_keys::v3::Request>,
) -> Result<RumaResponse<upload_signing_keys::v3::Response>> {
    let upload = SigningKeysUpload {
        master_key: optional_key(req.master_key.as_ref(), "master_key")?,
        self_signing_key: optional_key(req.self_signing_key.as_ref(), "self_signing_key")?,
        user_signing_key: optional_key(req.user_signing_key.as_ref(), "user_signing_key")?,
    };
    tenant
        .e2ee()
        .upload_signing_keys(&user, upload, req.auth.as_ref())
        .await?;
    Ok(upload_signing_keys::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/keys/signatures/upload`
async fn upload_signatures(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<upload_signatures::v3::Request>,
) -> Result<RumaResponse<upload_signatures::v3::Response>> {
    let mut signed = Map::new();
    for (user_id, keys) in &req.signed_keys {
        let mut objects = Map::new();
        for (key_id, object) in keys {
            let object: Value = serde_json::from_str(object.get())
                .map_err(|e| HttpError::bad_json(e.to_string()))?;
            objects.insert(key_id.to_owned(), object);
        }
        signed.insert(user_id.to_string(), Value::Object(objects));
    }
    let failures = tenant.e2ee().upload_signatures(&user, &signed).await?;
    let mut response = upload_signatures::v3::Response::new();
    response.failures = from_core(Value::Object(failures), "failures")?;
    Ok(response.into())
}
