//! Server-side key backups (spec: "Server-side key backups"; ruma `backup`): backup versions with
//! their algorithm and `auth_data`, and the encrypted room keys in them at three levels (all rooms,
//! one room, one session), each change answered with the backup's `etag` and `count`.

use std::collections::BTreeMap;

use maas_core::e2ee::backup::{BackupInfo, BackupState, SessionKey};
use ruma::UInt;
use ruma::api::client::backup::{
    BackupAlgorithm, KeyBackupData, add_backup_keys, add_backup_keys_for_room,
    add_backup_keys_for_session, create_backup_version, delete_backup_keys,
    delete_backup_keys_for_room, delete_backup_keys_for_session, delete_backup_version,
    get_backup_info, get_backup_keys, get_backup_keys_for_room, get_backup_keys_for_session,
    get_latest_backup_info, update_backup_version,
};
use ruma::serde::Raw;
use serde_json::{Value, json};

use super::convert::{from_core, raw_value, to_raw};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<create_backup_version::v3::Request, _, _>(router, create_backup_version);
    let router = route::<get_latest_backup_info::v3::Request, _, _>(router, get_latest_backup_info);
    let router = route::<get_backup_info::v3::Request, _, _>(router, get_backup_info);
    let router = route::<update_backup_version::v3::Request, _, _>(router, update_backup_version);
    let router = route::<delete_backup_version::v3::Request, _, _>(router, delete_backup_version);
    let router = route::<add_backup_keys::v3::Request, _, _>(router, add_backup_keys);
    let router =
        route::<add_backup_keys_for_room::v3::Request, _, _>(router, add_backup_keys_for_room);
    let router = route::<add_backup_keys_for_session::v3::Request, _, _>(
        router,
        add_backup_keys_for_session,
    );
    let router = route::<get_backup_keys::v3::Request, _, _>(router, get_backup_keys);
    let router =
        route::<get_backup_keys_for_room::v3::Request, _, _>(router, get_backup_keys_for_room);
    let router = route::<get_backup_keys_for_session::v3::Request, _, _>(
        router,
        get_backup_keys_for_session,
    );
    let router = route::<delete_backup_keys::v3::Request, _, _>(router, delete_backup_keys);
    let router = route::<delete_backup_keys_for_room::v3::Request, _, _>(
        router,
        delete_backup_keys_for_room,
    );
    route::<delete_backup_keys_for_session::v3::Request, _, _>(
        router,
        delete_backup_keys_for_session,
    )
}

/// The `algorithm` and `auth_data` of a version's body (the body may also carry `version`).
struct VersionBody {
    algorithm: String,
    auth_data: Value,
    version: Option<String>,
}

fn version_body<T>(raw: &Raw<T>) -> Result<VersionBody> {
    let body = raw_value(raw)?;
    let algorithm = body
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| HttpError::bad_json("algorithm must be a string"))?;
    let auth_data = body
        .get("auth_data")
        .filter(|a| a.is_object())
        .ok_or_else(|| HttpError::bad_json("auth_data must be an object"))?;
    let version = match body.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => return Err(HttpError::bad_json("version must be a string")),
    };
    Ok(VersionBody {
        algorithm: algorithm.to_owned(),
        auth_data: auth_data.clone(),
        version,
    })
}

fn count(count: u64) -> UInt {
    UInt::try_from(count).unwrap_or(UInt::MAX)
}

/// A backup version as `room_keys/version` shows it.
struct VersionInfo {
    /// `algorithm` and `auth_data`, as ruma's response types carry them.
    algorithm: Raw<BackupAlgorithm>,
    count: UInt,
    etag: String,
    version: String,
}

fn version_info(info: BackupInfo) -> Result<VersionInfo> {
    let algorithm = to_raw(&json!({
        "algorithm": info.algorithm,
        "auth_data": info.auth_data,
    }))?;
    Ok(VersionInfo {
        algorithm,
        count: count(info.count),
        etag: info.etag,
        version: info.version,
    })
}

/// The uploaded keys of one room's sessions, for core to check and keep.
fn sessions_of(
    room_id: &str,
    sessions: &BTreeMap<String, Raw<KeyBackupData>>,
) -> Result<Vec<SessionKey>> {
    sessions
        .iter()
        .map(|(session_id, data)| session_key(room_id, session_id, data))
        .collect()
}

fn session_key(room_id: &str, session_id: &str, data: &Raw<KeyBackupData>) -> Result<SessionKey> {
    Ok(SessionKey {
        room_id: room_id.to_owned(),
        session_id: session_id.to_owned(),
        data: raw_value(data)?,
    })
}

/// The `sessions` of one room in core's `{rooms: {room: {sessions}}}`, `null` when absent.
fn sessions_taken(keys: &mut Value, room_id: &str) -> Value {
    keys.get_mut("rooms")
        .and_then(|rooms| rooms.get_mut(room_id))
        .and_then(|room| room.get_mut("sessions"))
        .map(Value::take)
        .unwrap_or_default()
}

/// `etag` and `count` for a response.
fn state(state: BackupState) -> (String, UInt) {
    (state.etag, count(state.count))
}

/// `POST /_matrix/client/v3/room_keys/version`
async fn create_backup_version(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_backup_version::v3::Request>,
) -> Result<RumaResponse<create_backup_version::v3::Response>> {
    let body = version_body(&req.algorithm)?;
    let version = tenant
        .e2ee()
        .create_backup(&user, &body.algorithm, &body.auth_data)
        .await?;
    Ok(create_backup_version::v3::Response::new(version).into())
}

/// `GET /_matrix/client/v3/room_keys/version`
async fn get_latest_backup_info(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    _: Ruma<get_latest_backup_info::v3::Request>,
) -> Result<RumaResponse<get_latest_backup_info::v3::Response>> {
    let info = tenant.e2ee().backup(&user, None).await?;
    let VersionInfo {
        algorithm,
        count,
        etag,
        version,
    } = version_info(info)?;
    Ok(get_latest_backup_info::v3::Response::new(algorithm, count, etag, version).into())
}

/// `GET /_matrix/client/v3/room_keys/version/{version}`
async fn get_backup_info(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_backup_info::v3::Request>,
) -> Result<RumaResponse<get_backup_info::v3::Response>> {
    let info = tenant.e2ee().backup(&user, Some(&req.version)).await?;
    let VersionInfo {
        algorithm,
        count,
        etag,
        version,
    } = version_info(info)?;
    Ok(get_backup_info::v3::Response::new(algorithm, count, etag, version).into())
}

/// `PUT /_matrix/client/v3/room_keys/version/{version}`
async fn update_backup_version(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<update_backup_version::v3::Request>,
) -> Result<RumaResponse<update_backup_version::v3::Response>> {
    let body = version_body(&req.algorithm)?;
    tenant
        .e2ee()
        .update_backup(
            &user,
            &req.version,
            &body.algorithm,
            &body.auth_data,
            body.version.as_deref(),
        )
        .await?;
    Ok(update_backup_version::v3::Response::new().into())
}

/// `DELETE /_matrix/client/v3/room_keys/version/{version}`
async fn delete_backup_version(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_backup_version::v3::Request>,
) -> Result<RumaResponse<delete_backup_version::v3::Response>> {
    tenant.e2ee().delete_backup(&user, &req.version).await?;
    Ok(delete_backup_version::v3::Response::new().into())
}

/// `PUT /_matrix/client/v3/room_keys/keys`
async fn add_backup_keys(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<add_backup_keys::v3::Request>,
) -> Result<RumaResponse<add_backup_keys::v3::Response>> {
    let mut keys = Vec::new();
    for (room_id, room) in &req.rooms {
        keys.extend(sessions_of(room_id.as_str(), &room.sessions)?);
    }
    let result = tenant
        .e2ee()
        .put_backup_keys(&user, &req.version, keys)
        .await?;
    let (etag, count) = state(result);
    Ok(add_backup_keys::v3::Response::new(etag, count).into())
}

/// `PUT /_matrix/client/v3/room_keys/keys/{roomId}`
async fn add_backup_keys_for_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<add_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<add_backup_keys_for_room::v3::Response>> {
    let keys = sessions_of(req.room_id.as_str(), &req.sessions)?;
    let result = tenant
        .e2ee()
        .put_backup_keys(&user, &req.version, keys)
        .await?;
    let (etag, count) = state(result);
    Ok(add_backup_keys_for_room::v3::Response::new(etag, count).into())
}

/// `PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
async fn add_backup_keys_for_session(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<add_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<add_backup_keys_for_session::v3::Response>> {
    let key = session_key(req.room_id.as_str(), &req.session_id, &req.session_data)?;
    let result = tenant
        .e2ee()
        .put_backup_keys(&user, &req.version, vec![key])
        .await?;
    let (etag, count) = state(result);
    Ok(add_backup_keys_for_session::v3::Response::new(etag, count).into())
}

/// `GET /_matrix/client/v3/room_keys/keys`
async fn get_backup_keys(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_backup_keys::v3::Request>,
) -> Result<RumaResponse<get_backup_keys::v3::Response>> {
    let mut keys = tenant
        .e2ee()
        .backup_keys(&user, &req.version, None, None)
        .await?;
    let rooms = keys.get_mut("rooms").map(Value::take).unwrap_or_default();
    let rooms = match rooms {
        Value::Null => BTreeMap::new(),
        rooms => from_core(rooms, "backup rooms")?,
    };
    Ok(get_backup_keys::v3::Response::new(rooms).into())
}

/// `GET /_matrix/client/v3/room_keys/keys/{roomId}`
async fn get_backup_keys_for_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<get_backup_keys_for_room::v3::Response>> {
    let mut keys = tenant
        .e2ee()
        .backup_keys(&user, &req.version, Some(req.room_id.as_str()), None)
        .await?;
    // A room without keys has no sessions, which is not an error.
    let sessions = sessions_taken(&mut keys, req.room_id.as_str());
    let sessions = match sessions {
        Value::Null => BTreeMap::new(),
        sessions => from_core(sessions, "backup sessions")?,
    };
    Ok(get_backup_keys_for_room::v3::Response::new(sessions).into())
}

/// `GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
async fn get_backup_keys_for_session(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<get_backup_keys_for_session::v3::Response>> {
    let mut keys = tenant
        .e2ee()
        .backup_keys(
            &user,
            &req.version,
            Some(req.room_id.as_str()),
            Some(&req.session_id),
        )
        .await?;
    let data = sessions_taken(&mut keys, req.room_id.as_str())
        .get_mut(req.session_id.as_str())
        .map(Value::take);
    let Some(data) = data.filter(|d| !d.is_null()) else {
        return Err(maas_core::Error::NotFound("No backed-up key for this session".into()).into());
    };
    Ok(get_backup_keys_for_session::v3::Response::new(to_raw(&data)?).into())
}

/// `DELETE /_matrix/client/v3/room_keys/keys`
async fn delete_backup_keys(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_backup_keys::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys::v3::Response>> {
    let result = tenant
        .e2ee()
        .delete_backup_keys(&user, &req.version, None, None)
        .await?;
    let (etag, count) = state(result);
    Ok(delete_backup_keys::v3::Response::new(etag, count).into())
}

/// `DELETE /_matrix/client/v3/room_keys/keys/{roomId}`
async fn delete_backup_keys_for_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys_for_room::v3::Response>> {
    let result = tenant
        .e2ee()
        .delete_backup_keys(&user, &req.version, Some(req.room_id.as_str()), None)
        .await?;
    let (etag, count) = state(result);
    Ok(delete_backup_keys_for_room::v3::Response::new(etag, count).into())
}

/// `DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
async fn delete_backup_keys_for_session(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys_for_session::v3::Response>> {
    let result = tenant
        .e2ee()
        .delete_backup_keys(
            &user,
            &req.version,
            Some(req.room_id.as_str()),
            Some(&req.session_id),
        )
        .await?;
    let (etag, count) = state(result);
    Ok(delete_backup_keys_for_session::v3::Response::new(etag, count).into())
}
