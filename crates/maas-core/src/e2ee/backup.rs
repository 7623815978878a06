//! Server-side key backup (spec: "Server-side key backups"): backup versions with their
//! `auth_data`, and the encrypted room keys stored in them, with the spec's rules for which of
//! two copies of a session key is kept.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{E2ee, parse_json};
use crate::accounts::AuthedUser;
use crate::store::BackupKeyRecord;
use crate::{Error, Result};

/// The one backup algorithm of spec v1.15 (`POST /room_keys/version`'s `algorithm` enum). A
/// backup in an algorithm no client knows could never be restored, so others are refused.
pub const MEGOLM_BACKUP_V1: &str = "m.megolm_backup.v1.curve25519-aes-sha2";

/// A backup version as `GET /room_keys/version` shows it.
#[derive(Debug)]
pub struct BackupInfo {
    /// Decimal, increasing per user.
    pub version: String,
    pub algorithm: String,
    pub auth_data: Value,
    pub etag: String,
    pub count: u64,
}

/// One session's key as a client uploads it (spec: `KeyBackupData`), in a room.
#[derive(Debug, Clone)]
pub struct SessionKey {
    pub room_id: String,
    pub session_id: String,
    pub data: Value,
}

impl SessionKey {
    /// The key as stored, once its fields check out: the server keeps keys by them.
    fn record(self) -> Result<BackupKeyRecord> {
        let data = &self.data;
        let number = |field: &str| {
            data.get(field)
                .and_then(Value::as_u64)
                .ok_or_else(|| Error::BadJson(format!("{field} must be a non-negative integer")))
        };
        let first_message_index = number("first_message_index")?;
        let forwarded_count = number("forwarded_count")?;
        let is_verified = data
            .get("is_verified")
            .and_then(Value::as_bool)
            .ok_or_else(|| Error::BadJson("is_verified must be a boolean".into()))?;
        let session_data = data
            .get("session_data")
            .filter(|s| s.is_object())
            .ok_or_else(|| Error::BadJson("session_data must be an object".into()))?;
        Ok(BackupKeyRecord {
            room_id: self.room_id,
            session_id: self.session_id,
            first_message_index,
            forwarded_count,
            is_verified,
            session_data_json: session_data.to_string(),
        })
    }
}

/// `etag` and `count` after a change of keys.
#[derive(Debug)]
pub struct BackupState {
    pub etag: String,
    pub count: u64,
}

fn not_found() -> Error {
    Error::NotFound("Unknown backup version".into())
}

/// Whether `new` should replace `old` (spec: verified beats unverified, then the lower first
/// message index, then the lower forwarded count).
fn replaces(new: &BackupKeyRecord, old: &BackupKeyRecord) -> bool {
    if new.is_verified != old.is_verified {
        return new.is_verified;
    }
    if new.first_message_index != old.first_message_index {
        return new.first_message_index < old.first_message_index;
    }
    new.forwarded_count < old.forwarded_count
}

impl E2ee<'_> {
    /// `POST /room_keys/version`.
    pub async fn create_backup(
        &self,
        user: &AuthedUser,
        algorithm: &str,
        auth_data: &Value,
    ) -> Result<String> {
        if algorithm != MEGOLM_BACKUP_V1 {
            return Err(Error::InvalidParam(format!(
                "Unsupported backup algorithm {algorithm:?}; the only one is {MEGOLM_BACKUP_V1}"
            )));
        }
        if !auth_data.is_object() {
            return Err(Error::BadJson("auth_data must be an object".into()));
        }
        Ok(self
            .tenant
            .store()
            .create_backup_version(&user.localpart, algorithm, &auth_data.to_string())
            .await?)
    }

    /// `GET /room_keys/version[/{version}]`.
    pub async fn backup(&self, user: &AuthedUser, version: Option<&str>) -> Result<BackupInfo> {
        let store = self.tenant.store();
        let record = store
            .backup_version(&user.localpart, version)
            .await?
            .ok_or_else(not_found)?;
        let count = store
            .count_backup_keys(&user.localpart, &record.version)
            .await?;
        Ok(BackupInfo {
            auth_data: parse_json(&record.auth_data_json, "backup auth_data")?,
            version: record.version,
            algorithm: record.algorithm,
            etag: record.etag.to_string(),
            count,
        })
    }

    /// `PUT /room_keys/version/{version}`: only `auth_data` may change.
    pub async fn update_backup(
        &self,
        user: &AuthedUser,
        version: &str,
        algorithm: &str,
        auth_data: &Value,
        body_version: Option<&str>,
    ) -> Result<()> {
        let current = self.backup(user, Some(version)).await?;
        if body_version.is_some_and(|v| v != version) {
            return Err(Error::InvalidParam(
                "The version in the body doesn't match the path".into(),
            ));
        }
        if current.algorithm != algorithm {
            return Err(Error::InvalidParam(
                "The algorithm of a backup can't change".into(),
            ));
        }
        self.tenant
            .store()
            .update_backup_version(&user.localpart, version, &auth_data.to_string())
            .await?;
        Ok(())
    }

    /// `DELETE /room_keys/version/{version}`.
    pub async fn delete_backup(&self, user: &AuthedUser, version: &str) -> Result<()> {
        if !self
            .tenant
            .store()
            .delete_backup_version(&user.localpart, version)
            .await?
        {
            return Err(not_found());
        }
        Ok(())
    }

    /// Uploads go only to the current (latest) version.
    async fn writable(&self, user: &AuthedUser, version: &str) -> Result<()> {
        let store = self.tenant.store();
        let latest = store
            .backup_version(&user.localpart, None)
            .await?
            .ok_or_else(not_found)?;
        if latest.version != version {
            if store
                .backup_version(&user.localpart, Some(version))
                .await?
                .is_none()
            {
                return Err(not_found());
            }
            return Err(Error::WrongRoomKeysVersion(latest.version));
        }
        Ok(())
    }

    async fn state(&self, user: &AuthedUser, version: &str) -> Result<BackupState> {
        let info = self.backup(user, Some(version)).await?;
        Ok(BackupState {
            etag: info.etag,
            count: info.count,
        })
    }

    /// `PUT /room_keys/keys…`: keeps, per session, the better of the stored and new key.
    pub async fn put_backup_keys(
        &self,
        user: &AuthedUser,
        version: &str,
        keys: Vec<SessionKey>,
    ) -> Result<BackupState> {
        let keys = keys
            .into_iter()
            .map(SessionKey::record)
            .collect::<Result<Vec<_>>>()?;
        self.writable(user, version).await?;
        let store = self.tenant.store();
        let mut accepted = Vec::new();
        for key in keys {
            let existing = store
                .backup_keys(
                    &user.localpart,
                    version,
                    Some(&key.room_id),
                    Some(&key.session_id),
                )
                .await?;
            if existing.first().is_none_or(|old| replaces(&key, old)) {
                accepted.push(key);
            }
        }
        if !accepted.is_empty() {
            store
                .put_backup_keys(&user.localpart, version, &accepted)
                .await?;
        }
        self.state(user, version).await
    }

    /// `GET /room_keys/keys…`: `{rooms: {room: {sessions: {id: data}}}}`.
    pub async fn backup_keys(
        &self,
        user: &AuthedUser,
        version: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Value> {
        self.backup(user, Some(version)).await?;
        let keys = self
            .tenant
            .store()
            .backup_keys(&user.localpart, version, room_id, session_id)
            .await?;
        let mut rooms: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
        for key in keys {
            let data = json!({
                "first_message_index": key.first_message_index,
                "forwarded_count": key.forwarded_count,
                "is_verified": key.is_verified,
                "session_data": parse_json(&key.session_data_json, "backup session data")?,
            });
            rooms
                .entry(key.room_id)
                .or_default()
                .insert(key.session_id, data);
        }
        let rooms: serde_json::Map<String, Value> = rooms
            .into_iter()
            .map(|(room, sessions)| (room, json!({ "sessions": sessions })))
            .collect();
        Ok(json!({ "rooms": rooms }))
    }

    /// `DELETE /room_keys/keys…`.
    pub async fn delete_backup_keys(
        &self,
        user: &AuthedUser,
        version: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<BackupState> {
        self.backup(user, Some(version)).await?;
        self.tenant
            .store()
            .delete_backup_keys(&user.localpart, version, room_id, session_id)
            .await?;
        self.state(user, version).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(verified: bool, index: u64, forwarded: u64) -> BackupKeyRecord {
        BackupKeyRecord {
            room_id: "!r:x".into(),
            session_id: "s".into(),
            first_message_index: index,
            forwarded_count: forwarded,
            is_verified: verified,
            session_data_json: "{}".into(),
        }
    }

    #[test]
    fn the_spec_decides_which_key_is_kept() {
        assert!(replaces(&key(true, 5, 5), &key(false, 0, 0)));
        assert!(!replaces(&key(false, 0, 0), &key(true, 5, 5)));
        assert!(replaces(&key(false, 1, 9), &key(false, 2, 0)));
        assert!(replaces(&key(false, 1, 0), &key(false, 1, 1)));
        assert!(!replaces(&key(false, 1, 1), &key(false, 1, 1)));
    }
}
