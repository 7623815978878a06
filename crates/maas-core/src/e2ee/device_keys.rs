//! Device keys (spec: "Key management API"): `keys/upload`, `keys/query`, `keys/claim` and
//! `keys/changes` for the tenant's own users. Users of other servers come with federation;
//! until then they are reported under `failures`.

use std::collections::{BTreeMap, HashSet};

use ruma::{OwnedServerName, UserId};
use serde_json::{Map, Value, json};

use super::{E2ee, ed25519_key, has_valid_signature, parse_json};
use crate::accounts::AuthedUser;
use crate::store::{
    DeviceKeysRecord, MembershipRecord, OneTimeKeyRecord, StreamRange, TenantStore,
};
use crate::{Error, Result, federation};

/// What `keys/upload` carries, as JSON objects.
#[derive(Debug, Default)]
pub struct KeysUpload {
    pub device_keys: Option<Value>,
    pub one_time_keys: Map<String, Value>,
    pub fallback_keys: Map<String, Value>,
}

/// `keys/query` results.
#[derive(Debug, Default)]
pub struct KeysQueryResult {
    pub device_keys: Map<String, Value>,
    pub master_keys: Map<String, Value>,
    pub self_signing_keys: Map<String, Value>,
    pub user_signing_keys: Map<String, Value>,
    pub failures: Map<String, Value>,
}

/// A user's devices as another server asks for them (`user/devices`).
pub struct UserDevices {
    /// Where the user's device list stands: the tenant's stream position.
    pub stream_id: i64,
    pub devices: Vec<UserDevice>,
    pub master_key: Option<Value>,
    pub self_signing_key: Option<Value>,
}

pub struct UserDevice {
    pub device_id: String,
    pub keys: Value,
    pub display_name: Option<String>,
}

/// How a server that could not be asked is reported under `failures`.
fn unavailable(error: &Error) -> Value {
    json!({ "errcode": "M_UNAVAILABLE", "error": error.to_string() })
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidParam(message.into())
}

impl E2ee<'_> {
    /// `POST /keys/upload`: returns the counts of unclaimed one-time keys per algorithm.
    pub async fn upload(
        &self,
        user: &AuthedUser,
        upload: KeysUpload,
    ) -> Result<BTreeMap<String, u64>> {
        let store = self.tenant.store();
        let device_id = user.device_id.as_str();
        let existing = store.device_keys(&user.localpart).await?;
        let existing = existing.into_iter().find(|k| k.device_id == device_id);
        let signing_key = match &upload.device_keys {
            Some(keys) => Some(self.check_device_keys(user, keys)?),
            None => match &existing {
                Some(record) => {
                    ed25519_key(&parse_json(&record.keys_json, "device keys")?, device_id)
                }
                None => None,
            },
        };
        let one_time = self.check_keys(user, &upload.one_time_keys, signing_key.as_deref())?;
        let fallback = self.check_keys(user, &upload.fallback_keys, signing_key.as_deref())?;

        if let Some(keys) = &upload.device_keys {
            let changed = match &existing {
                Some(record) => parse_json(&record.keys_json, "device keys")? != *keys,
                None => true,
            };
            if changed {
                let record = DeviceKeysRecord {
                    localpart: user.localpart.clone(),
                    device_id: device_id.to_owned(),
                    keys_json: keys.to_string(),
                };
                store.set_device_keys(&record).await?;
                let stream = self.device_list_changed(&user.user_id).await?;
                self.announce_device(&user.user_id, device_id, Some(keys), stream)
                    .await;
            }
        }
        if !one_time.is_empty() {
            store
                .add_one_time_keys(&user.localpart, device_id, &one_time)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict(what) => {
                        invalid(format!("One-time key already exists: {what}"))
                    }
                    other => other.into(),
                })?;
        }
        if !fallback.is_empty() {
            store
                .set_fallback_keys(&user.localpart, device_id, &fallback)
                .await?;
        }
        Ok(store
            .count_one_time_keys(&user.localpart, device_id)
            .await?
            .into_iter()
            .collect())
    }

    /// Checks uploaded device keys: this user's, this device's, self-signed. Returns the
    /// device's ed25519 key.
    fn check_device_keys(&self, user: &AuthedUser, keys: &Value) -> Result<String> {
        if keys.get("user_id").and_then(Value::as_str) != Some(user.user_id.as_str()) {
            return Err(invalid(
                "device_keys.user_id does not match the logged-in user",
            ));
        }
        if keys.get("device_id").and_then(Value::as_str) != Some(user.device_id.as_str()) {
            return Err(invalid(
                "device_keys.device_id does not match the logged-in device",
            ));
        }
        if !keys.get("algorithms").is_some_and(Value::is_array) {
            return Err(invalid("device_keys.algorithms must be an array"));
        }
        let ed25519 = ed25519_key(keys, user.device_id.as_str())
            .ok_or_else(|| invalid("device_keys must carry the device's ed25519 key"))?;
        let key_id = format!("ed25519:{}", user.device_id);
        if !has_valid_signature(keys, user.user_id.as_str(), &key_id, &ed25519) {
            return Err(invalid("device_keys are not validly signed by the device"));
        }
        Ok(ed25519)
    }

    /// Checks one-time or fallback keys: `<algorithm>:<id>` ids, signed ones verified.
    fn check_keys(
        &self,
        user: &AuthedUser,
        keys: &Map<String, Value>,
        signing_key: Option<&str>,
    ) -> Result<Vec<OneTimeKeyRecord>> {
        let key_id = format!("ed25519:{}", user.device_id);
        keys.iter()
            .map(|(id, key)| {
                let Some((algorithm, name)) = id.split_once(':') else {
                    return Err(invalid(format!("Key id {id} is not <algorithm>:<id>")));
                };
                if algorithm.is_empty() || name.is_empty() {
                    return Err(invalid(format!("Key id {id} is not <algorithm>:<id>")));
                }
                if algorithm.starts_with("signed_") {
                    let valid = signing_key.is_some_and(|k| {
                        has_valid_signature(key, user.user_id.as_str(), &key_id, k)
                    });
                    if !valid {
                        return Err(invalid(format!(
                            "Key {id} is not validly signed by the device"
                        )));
                    }
                }
                Ok(OneTimeKeyRecord {
                    key_id: id.clone(),
                    key_json: key.to_string(),
                })
            })
            .collect()
    }

    /// `POST /keys/query`: the keys of local users from the store, those of other servers'
    /// users from their servers (a server that fails is reported under `failures`).
    pub async fn query(
        &self,
        requester: &AuthedUser,
        users: &BTreeMap<String, Vec<String>>,
    ) -> Result<KeysQueryResult> {
        let mut result = KeysQueryResult::default();
        let mut remote: BTreeMap<OwnedServerName, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (user_id, wanted) in users {
            let Ok(user) = UserId::parse(user_id.as_str()) else {
                continue;
            };
            if user.server_name() != self.tenant.server_name() {
                remote
                    .entry(user.server_name().to_owned())
                    .or_default()
                    .insert(user_id.clone(), wanted.clone());
                continue;
            }
            self.local_keys(&user, wanted, Some(&requester.user_id), &mut result)
                .await?;
        }
        let asked = remote.iter().map(|(server, users)| async move {
            let answer = federation::e2ee::query_keys(self.tenant, server, users).await;
            (server, answer)
        });
        for (server, answer) in futures_util::future::join_all(asked).await {
            match answer {
                Ok(keys) => {
                    result.device_keys.extend(keys.device_keys);
                    result.master_keys.extend(keys.master_keys);
                    result.self_signing_keys.extend(keys.self_signing_keys);
                }
                Err(e) => {
                    result.failures.insert(server.to_string(), unavailable(&e));
                }
            }
        }
        Ok(result)
    }

    /// Another server's `user/keys/query`: the keys of this tenant's users only, and never a
    /// user-signing key (only its owner sees that).
    pub async fn query_for_server(
        &self,
        users: &BTreeMap<String, Vec<String>>,
    ) -> Result<KeysQueryResult> {
        let mut result = KeysQueryResult::default();
        for (user_id, wanted) in users {
            let Ok(user) = UserId::parse(user_id.as_str()) else {
                continue;
            };
            if user.server_name() == self.tenant.server_name() {
                self.local_keys(&user, wanted, None, &mut result).await?;
            }
        }
        Ok(result)
    }

    /// Another server's `user/devices/{userId}`: a local user's devices that have keys, and
    /// their master and self-signing keys; `M_NOT_FOUND` for anyone else.
    pub async fn devices_for_server(&self, user: &UserId) -> Result<UserDevices> {
        let known = user.server_name() == self.tenant.server_name()
            && self.tenant.store().user(user.localpart()).await?.is_some();
        if !known {
            return Err(Error::NotFound(format!("Unknown user {user}")));
        }
        let mut result = KeysQueryResult::default();
        self.local_keys(user, &[], None, &mut result).await?;
        let devices = match result.device_keys.remove(user.as_str()) {
            Some(Value::Object(devices)) => devices,
            _ => Map::new(),
        };
        let devices = devices
            .into_iter()
            .map(|(device_id, mut keys)| {
                let display_name = keys["unsigned"]["device_display_name"]
                    .as_str()
                    .map(str::to_owned);
                if let Some(keys) = keys.as_object_mut() {
                    keys.remove("unsigned");
                }
                UserDevice {
                    device_id,
                    keys,
                    display_name,
                }
            })
            .collect();
        Ok(UserDevices {
            stream_id: self.tenant.stream().current(),
            devices,
            master_key: result.master_keys.remove(user.as_str()),
            self_signing_key: result.self_signing_keys.remove(user.as_str()),
        })
    }

    /// The device keys (`wanted` devices, all when empty) and cross-signing keys of a local
    /// user, as `requester` may see them (`None`: another server).
    async fn local_keys(
        &self,
        user: &UserId,
        wanted: &[String],
        requester: Option<&UserId>,
        result: &mut KeysQueryResult,
    ) -> Result<()> {
        let store = self.tenant.store();
        let user_id = user.to_string();
        let devices = store.devices(user.localpart()).await?;
        let mut device_map = Map::new();
        for record in store.device_keys(user.localpart()).await? {
            if !wanted.is_empty() && !wanted.contains(&record.device_id) {
                continue;
            }
            let mut keys = parse_json(&record.keys_json, "device keys")?;
            if let Some(device) = devices.iter().find(|d| d.device_id == record.device_id)
                && let Some(name) = &device.display_name
            {
                keys["unsigned"] = json!({ "device_display_name": name });
            }
            device_map.insert(record.device_id, keys);
        }
        result
            .device_keys
            .insert(user_id.clone(), Value::Object(device_map));
        let viewer = requester.map_or("", |r| r.as_str());
        for key in store.cross_signing_keys(user.localpart()).await? {
            let mut value = parse_json(&key.key_json, "cross-signing key")?;
            visible_signatures(&mut value, user.as_str(), viewer);
            match key.key_type.as_str() {
                "master" => result.master_keys.insert(user_id.clone(), value),
                "self_signing" => result.self_signing_keys.insert(user_id.clone(), value),
                "user_signing" if requester == Some(user) => {
                    result.user_signing_keys.insert(user_id.clone(), value)
                }
                _ => None,
            };
        }
        Ok(())
    }

    /// `POST /keys/claim`: one key per requested device, of local users from the store, of
    /// other servers' users from their servers.
    pub async fn claim(
        &self,
        requested: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<(Map<String, Value>, Map<String, Value>)> {
        let mut failures = Map::new();
        let mut remote: BTreeMap<OwnedServerName, BTreeMap<String, BTreeMap<String, String>>> =
            BTreeMap::new();
        let mut local = BTreeMap::new();
        for (user_id, devices) in requested {
            let Ok(user) = UserId::parse(user_id.as_str()) else {
                continue;
            };
            if user.server_name() == self.tenant.server_name() {
                local.insert(user_id.clone(), devices.clone());
            } else {
                remote
                    .entry(user.server_name().to_owned())
                    .or_default()
                    .insert(user_id.clone(), devices.clone());
            }
        }
        let mut claimed = self.claim_local(&local).await?;
        let asked = remote.iter().map(|(server, users)| async move {
            (
                server,
                federation::e2ee::claim_keys(self.tenant, server, users).await,
            )
        });
        for (server, answer) in futures_util::future::join_all(asked).await {
            match answer {
                Ok(keys) => claimed.extend(keys),
                Err(e) => {
                    failures.insert(server.to_string(), unavailable(&e));
                }
            }
        }
        Ok((claimed, failures))
    }

    /// One key per requested device of this tenant's users (for clients and other servers).
    pub async fn claim_local(
        &self,
        requested: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Map<String, Value>> {
        let mut claimed = Map::new();
        let store = self.tenant.store();
        for (user_id, devices) in requested {
            let Ok(user) = UserId::parse(user_id.as_str()) else {
                continue;
            };
            if user.server_name() != self.tenant.server_name() {
                continue;
            }
            let mut user_keys = Map::new();
            for (device_id, algorithm) in devices {
                if let Some(key) = store
                    .claim_key(user.localpart(), device_id, algorithm)
                    .await?
                {
                    let value = parse_json(&key.key_json, "one-time key")?;
                    user_keys.insert(device_id.clone(), json!({ key.key_id: value }));
                }
            }
            claimed.insert(user_id.clone(), Value::Object(user_keys));
        }
        Ok(claimed)
    }

    /// `GET /keys/changes`: users whose devices changed between two sync tokens, and users
    /// who stopped sharing a room with the requester (stream positions `from` < … <= `to`).
    pub async fn changes(
        &self,
        user: &UserId,
        from: i64,
        to: i64,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let range = StreamRange {
            after: from,
            up_to: to,
        };
        device_list_delta(self, user, range).await
    }
}

/// Signatures on a user's cross-signing key that the requester may see: the owner's own and
/// the requester's.
fn visible_signatures(key: &mut Value, owner: &str, requester: &str) {
    if let Some(signatures) = key.get_mut("signatures").and_then(Value::as_object_mut) {
        signatures.retain(|signer, _| signer == owner || signer == requester);
    }
}

/// `device_lists` of sync and `keys/changes`. `changed`: users sharing a room with `user`
/// whose devices changed in range, or who came to share a room in range, and users whose keys
/// `user` signed in range (only the signer sees such a signature); `left`: users who
/// stopped sharing every room in range. Only rooms with events in range are looked at, so the
/// cost follows what changed, not how many rooms the user is in.
pub(crate) async fn device_list_delta(
    e2ee: &E2ee<'_>,
    user: &UserId,
    range: StreamRange,
) -> Result<(Vec<String>, Vec<String>)> {
    let store = e2ee.tenant.store();
    let memberships = store.memberships_of_user(user.as_str()).await?;
    let with_events = store
        .rooms_with_events(&joined_rooms(&memberships), range)
        .await?;
    device_list_delta_of(e2ee, user, range, &memberships, &with_events).await
}

/// [`device_list_delta`] with the user's current memberships and their joined rooms with
/// events in range already read (sync has them).
pub(crate) async fn device_list_delta_of(
    e2ee: &E2ee<'_>,
    user: &UserId,
    range: StreamRange,
    memberships: &[MembershipRecord],
    with_events: &[String],
) -> Result<(Vec<String>, Vec<String>)> {
    let store = e2ee.tenant.store();
    let joined = joined_rooms(memberships);
    // Everyone in a room the user's own membership changed in came or went for them; in the
    // other rooms with events, only those whose membership changed in range.
    let mine_changed: HashSet<&str> = memberships
        .iter()
        .filter(|m| m.stream > range.after && m.stream <= range.up_to)
        .map(|m| m.room_id.as_str())
        .collect();
    let others: Vec<String> = with_events
        .iter()
        .filter(|room| !mine_changed.contains(room.as_str()))
        .cloned()
        .collect();
    let (device_changes, changes, signed) = tokio::try_join!(
        store.device_list_changes(range),
        store.membership_changes_in(&others, range),
        store.signature_changes(user.as_str(), range),
    )?;
    let device_changes = if device_changes.complete {
        device_changes.users
    } else {
        // The token is older than the retention of device list changes: which devices
        // changed since is not known any more, so everyone sharing a room may have changed.
        // Clients then query their keys again: more work, never a missed change.
        members_of(store, &joined).await?
    };
    let mut moved = changes;
    for room_id in mine_changed {
        moved.extend(store.room_members(room_id, None).await?);
    }
    moved.retain(|member| member.user_id != user.as_str());
    // Who of everyone concerned shares a room with the user: one read for all of them.
    let asked: Vec<String> = device_changes
        .iter()
        .filter(|u| u.as_str() != user.as_str())
        .chain(moved.iter().map(|m| &m.user_id))
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let sharing: HashSet<String> = if asked.is_empty() || joined.is_empty() {
        HashSet::new()
    } else {
        store
            .users_joined_to_any(&asked, &joined)
            .await?
            .into_iter()
            .collect()
    };
    let mut changed: HashSet<String> = device_changes
        .into_iter()
        .filter(|other| other == user.as_str() || sharing.contains(other))
        .collect();
    // The user's own signatures of others changed those users for the user alone.
    changed.extend(signed);
    let mut left = HashSet::new();
    for member in moved {
        if sharing.contains(&member.user_id) {
            changed.insert(member.user_id);
        } else if matches!(member.membership.as_str(), "join" | "leave" | "ban") {
            left.insert(member.user_id);
        }
    }
    let mut changed: Vec<String> = changed.into_iter().collect();
    let mut left: Vec<String> = left.into_iter().filter(|u| !changed.contains(u)).collect();
    changed.sort();
    left.sort();
    Ok((changed, left))
}

/// Everyone joined to one of `rooms`, each once.
async fn members_of(store: &dyn TenantStore, rooms: &[String]) -> Result<Vec<String>> {
    let mut members = HashSet::new();
    for room_id in rooms {
        let joined = store.room_members(room_id, Some("join")).await?;
        members.extend(joined.into_iter().map(|m| m.user_id));
    }
    Ok(members.into_iter().collect())
}

/// The rooms of `memberships` that are joins.
pub(crate) fn joined_rooms(memberships: &[MembershipRecord]) -> Vec<String> {
    memberships
        .iter()
        .filter(|m| m.membership == "join")
        .map(|m| m.room_id.clone())
        .collect()
}
