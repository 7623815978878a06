//! Cross-signing (spec: "Cross-signing"): uploading a user's master, self-signing and
//! user-signing keys, and signatures made with them on devices and other users' master keys.

use ruma::UserId;
use ruma::api::client::uiaa::AuthData;
use serde_json::{Map, Value, json};

use super::{E2ee, has_valid_signature, merge_signatures, parse_json};
use crate::accounts::AuthedUser;
use crate::store::{CrossSigningKeyRecord, DeviceKeysRecord};
use crate::uia::UiaFlows;
use crate::{Error, Result, now_ms};

/// What `keys/device_signing/upload` carries.
#[derive(Debug, Default)]
pub struct SigningKeysUpload {
    pub master_key: Option<Value>,
    pub self_signing_key: Option<Value>,
    pub user_signing_key: Option<Value>,
}

/// The single ed25519 key of a cross-signing key object: `(key id, public key)`.
fn the_key(key: &Value) -> Option<(String, String)> {
    let keys = key.get("keys")?.as_object()?;
    let (id, value) = keys.iter().next()?;
    (keys.len() == 1 && id.starts_with("ed25519:"))
        .then(|| (id.clone(), value.as_str().unwrap_or_default().to_owned()))
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidParam(message.into())
}

fn check_shape(user: &UserId, key: &Value, usage: &str) -> Result<(String, String)> {
    if key.get("user_id").and_then(Value::as_str) != Some(user.as_str()) {
        return Err(invalid(format!("The {usage} key belongs to another user")));
    }
    let usages = key.get("usage").and_then(Value::as_array);
    if !usages.is_some_and(|u| u.iter().any(|v| v.as_str() == Some(usage))) {
        return Err(invalid(format!("The {usage} key must have usage {usage}")));
    }
    the_key(key)
        .ok_or_else(|| invalid(format!("The {usage} key must have exactly one ed25519 key")))
}

impl E2ee<'_> {
    async fn stored_keys(&self, localpart: &str) -> Result<Map<String, Value>> {
        let mut keys = Map::new();
        for record in self.tenant.store().cross_signing_keys(localpart).await? {
            keys.insert(
                record.key_type,
                parse_json(&record.key_json, "cross-signing key")?,
            );
        }
        Ok(keys)
    }

    /// Tells the servers sharing a room with our `user` their master and self-signing keys
    /// (`m.signing_key_update` EDU, spec: "Cross-signing"); the user-signing key stays here.
    async fn announce_signing_keys(&self, user: &UserId) -> Result<()> {
        let mut content = serde_json::json!({ "user_id": user });
        for key in self
            .tenant
            .store()
            .cross_signing_keys(user.localpart())
            .await?
        {
            let field = match key.key_type.as_str() {
                "master" => "master_key",
                "self_signing" => "self_signing_key",
                _ => continue,
            };
            content[field] = parse_json(&key.key_json, "cross-signing key")?;
        }
        let sent = self
            .tenant
            .sender()
            .send_edu_to_sharing(self.tenant, user, "m.signing_key_update", content)
            .await;
        if let Err(e) = sent {
            tracing::debug!(%user, error = %e, "signing keys not sent to other servers");
        }
        Ok(())
    }

    /// `POST /keys/device_signing/upload`. The first upload needs no user-interactive auth
    /// (MSC3967), nor does re-uploading the same keys; replacing keys does.
    pub async fn upload_signing_keys(
        &self,
        user: &AuthedUser,
        upload: SigningKeysUpload,
        auth: Option<&AuthData>,
    ) -> Result<()> {
        let stored = self.stored_keys(&user.localpart).await?;
        let uploads = [
            ("master", &upload.master_key),
            ("self_signing", &upload.self_signing_key),
            ("user_signing", &upload.user_signing_key),
        ];
        let replacing = uploads.iter().any(|(kind, key)| {
            key.as_ref()
                .is_some_and(|k| stored.get(*kind).is_some_and(|s| !same_key(s, k)))
        });
        let first = !stored.contains_key("master");
        let needs_auth = replacing
            || (!first
                && uploads
                    .iter()
                    .any(|(k, v)| v.is_some() && !stored.contains_key(*k)));
        if needs_auth && !self.replaceable_without_uia(&user.localpart).await? {
            let flows = UiaFlows::password(format!("device_signing:{}", user.localpart));
            self.tenant
                .uia()
                .authenticate(&flows, auth, Some(&user.localpart))
                .await?;
        }

        let master = match &upload.master_key {
            Some(key) => Some(key.clone()),
            None => stored.get("master").cloned(),
        };
        if let Some(key) = &upload.master_key {
            check_shape(&user.user_id, key, "master")?;
        }
        for (kind, key) in &uploads[1..] {
            let Some(key) = key else { continue };
            check_shape(&user.user_id, key, kind)?;
            let master = master
                .as_ref()
                .ok_or_else(|| Error::MissingParam("Upload a master key first".into()))?;
            let (master_id, master_key) =
                the_key(master).ok_or_else(|| invalid("Invalid master key"))?;
            if !has_valid_signature(key, user.user_id.as_str(), &master_id, &master_key) {
                return Err(Error::InvalidSignature(format!(
                    "The {kind} key is not signed by the master key"
                )));
            }
        }
        let store = self.tenant.store();
        let mut changed = false;
        for (kind, key) in uploads {
            let Some(key) = key else { continue };
            if stored.get(kind).is_some_and(|s| same_key(s, key)) {
                continue;
            }
            let record = CrossSigningKeyRecord {
                localpart: user.localpart.clone(),
                key_type: kind.to_owned(),
                key_json: key.to_string(),
            };
            store.set_cross_signing_key(&record).await?;
            if kind == "master" {
                // A new master key starts without the window an admin opened for the old one.
                store
                    .set_master_key_replaceable_before(&user.localpart, None)
                    .await?;
            }
            changed = true;
        }
        if changed {
            self.device_list_changed(&user.user_id).await?;
            self.announce_signing_keys(&user.user_id).await?;
        }
        Ok(())
    }

    /// `POST /_synapse/admin/v1/users/{userId}/_allow_cross_signing_replacement_without_uia`:
    /// the user may replace their cross-signing keys without user-interactive auth until the
    /// time returned (for `window_ms`); `None` when they have no master key.
    pub async fn allow_master_key_replacement(
        &self,
        localpart: &str,
        window_ms: i64,
    ) -> Result<Option<i64>> {
        let before = now_ms().saturating_add(window_ms);
        let store = self.tenant.store();
        let set = store
            .set_master_key_replaceable_before(localpart, Some(before))
            .await?;
        Ok(set.then_some(before))
    }

    /// Whether an admin's window for replacing the user's keys without auth is open.
    async fn replaceable_without_uia(&self, localpart: &str) -> Result<bool> {
        let store = self.tenant.store();
        let before = store.master_key_replaceable_before(localpart).await?;
        Ok(before.is_some_and(|before| now_ms() < before))
    }

    /// `POST /keys/signatures/upload`: returns `failures` per user and key.
    pub async fn upload_signatures(
        &self,
        user: &AuthedUser,
        signed: &Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        let mut failures = Map::new();
        for (target_user, objects) in signed {
            let Some(objects) = objects.as_object() else {
                continue;
            };
            for (key_id, object) in objects {
                if let Err(e) = self.add_signature(user, target_user, key_id, object).await {
                    let (errcode, error) = match &e {
                        Error::NotFound(m) => ("M_NOT_FOUND", m.clone()),
                        Error::InvalidParam(m) => ("M_INVALID_PARAM", m.clone()),
                        Error::InvalidSignature(m) => ("M_INVALID_SIGNATURE", m.clone()),
                        other => ("M_UNKNOWN", other.to_string()),
                    };
                    let entry = failures
                        .entry(target_user.clone())
                        .or_insert_with(|| json!({}));
                    entry[key_id.as_str()] = json!({ "errcode": errcode, "error": error });
                }
            }
        }
        Ok(failures)
    }

    /// Adds the uploader's signature on one key: their own device (by their self-signing key),
    /// their own master key (by one of their devices), or another user's master key (by their
    /// user-signing key).
    async fn add_signature(
        &self,
        user: &AuthedUser,
        target: &str,
        key_id: &str,
        object: &Value,
    ) -> Result<()> {
        let target_user =
            UserId::parse(target).map_err(|_| Error::NotFound(format!("Unknown user {target}")))?;
        if target_user.server_name() != self.tenant.server_name() {
            return Err(Error::NotFound(
                "Signing keys of other servers needs federation".into(),
            ));
        }
        let store = self.tenant.store();
        let mine = self.stored_keys(&user.localpart).await?;
        let signer = user.user_id.as_str();
        if *target_user == *user.user_id {
            if let Some(record) = store
                .device_keys(&user.localpart)
                .await?
                .into_iter()
                .find(|k| k.device_id == key_id)
            {
                let self_signing = mine
                    .get("self_signing")
                    .and_then(the_key)
                    .ok_or_else(|| invalid("No self-signing key"))?;
                if !has_valid_signature(object, signer, &self_signing.0, &self_signing.1) {
                    return Err(Error::InvalidSignature(
                        "Signature does not verify with the self-signing key".into(),
                    ));
                }
                let mut keys = parse_json(&record.keys_json, "device keys")?;
                if !same_signed_content(&keys, object) {
                    return Err(invalid(
                        "The signed object differs from the stored device keys",
                    ));
                }
                merge_signatures(&mut keys, &only_signer(object, signer));
                let record = DeviceKeysRecord {
                    keys_json: keys.to_string(),
                    ..record
                };
                store.set_device_keys(&record).await?;
                let stream = self.device_list_changed(&user.user_id).await?;
                self.announce_device(&user.user_id, &record.device_id, Some(&keys), stream)
                    .await;
                return Ok(());
            }
            let master = mine
                .get("master")
                .ok_or_else(|| Error::NotFound(format!("No key {key_id}")))?;
            if the_key(master).is_none_or(|(id, _)| id.trim_start_matches("ed25519:") != key_id) {
                return Err(Error::NotFound(format!("No key {key_id}")));
            }
            let devices = store.device_keys(&user.localpart).await?;
            let verified = devices.iter().any(|d| {
                let Ok(keys) = parse_json(&d.keys_json, "device keys") else {
                    return false;
                };
                let Some(key) = super::ed25519_key(&keys, &d.device_id) else {
                    return false;
                };
                has_valid_signature(object, signer, &format!("ed25519:{}", d.device_id), &key)
            });
            if !verified {
                return Err(Error::InvalidSignature(
                    "Signature does not verify with any of your devices".into(),
                ));
            }
            return self
                .store_master_signature(
                    &user.user_id,
                    &user.user_id,
                    master.clone(),
                    object,
                    signer,
                )
                .await;
        }
        let theirs = self.stored_keys(target_user.localpart()).await?;
        let master = theirs
            .get("master")
            .ok_or_else(|| Error::NotFound(format!("{target} has no master key")))?;
        if the_key(master).is_none_or(|(id, _)| id.trim_start_matches("ed25519:") != key_id) {
            return Err(Error::NotFound(format!("No key {key_id}")));
        }
        let user_signing = mine
            .get("user_signing")
            .and_then(the_key)
            .ok_or_else(|| invalid("No user-signing key"))?;
        if !has_valid_signature(object, signer, &user_signing.0, &user_signing.1) {
            return Err(Error::InvalidSignature(
                "Signature does not verify with the user-signing key".into(),
            ));
        }
        self.store_master_signature(&target_user, &user.user_id, master.clone(), object, signer)
            .await
    }

    /// Stores `signer`'s signature on `owner`'s master key: a change of the owner's keys for
    /// everyone when the owner signed it, of the signer's view of them only otherwise.
    async fn store_master_signature(
        &self,
        owner: &UserId,
        signer_user: &UserId,
        mut master: Value,
        object: &Value,
        signer: &str,
    ) -> Result<()> {
        merge_signatures(&mut master, &only_signer(object, signer));
        let record = CrossSigningKeyRecord {
            localpart: owner.localpart().to_owned(),
            key_type: "master".into(),
            key_json: master.to_string(),
        };
        self.tenant.store().set_cross_signing_key(&record).await?;
        if owner == signer_user {
            self.device_list_changed(owner).await?;
            return self.announce_signing_keys(owner).await;
        }
        self.signature_changed(signer_user, owner).await
    }
}

/// Whether two uploads of a cross-signing key are the same key (signatures may differ).
fn same_key(a: &Value, b: &Value) -> bool {
    ["user_id", "usage", "keys"]
        .iter()
        .all(|field| a.get(field) == b.get(field))
}

/// Whether a signed object is the stored key it claims to sign: equal but for `signatures`
/// and `unsigned`, which are not part of what a signature covers.
fn same_signed_content(stored: &Value, signed: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(object) = v.as_object_mut() {
            object.remove("signatures");
            object.remove("unsigned");
        }
        v
    };
    strip(stored) == strip(signed)
}

/// `object` with only `signer`'s signatures: nobody adds signatures in someone else's name.
fn only_signer(object: &Value, signer: &str) -> Value {
    let mut copy = object.clone();
    if let Some(signatures) = copy.get_mut("signatures").and_then(Value::as_object_mut) {
        signatures.retain(|s, _| s == signer);
    }
    copy
}
