//! The server side of end-to-end encryption (spec: Client-Server API, "End-to-End
//! Encryption"): storing and handing out device, one-time, fallback and cross-signing keys,
//! delivering to-device messages, telling clients whose devices changed, and key backup. The
//! server verifies signatures it can check but never sees a plaintext key or message.

pub mod backup;
pub mod cross_signing;
pub mod device_keys;
pub mod to_device;

use base64::Engine;
use ruma::CanonicalJsonValue;
use ruma::signatures::{to_canonical_json_string_for_signing, verify_canonical_json_bytes};
use ruma::{SigningKeyAlgorithm, UserId};
use serde_json::Value;

use crate::stream::Audience;
use crate::{Error, Result, Tenant};

pub struct E2ee<'a> {
    tenant: &'a Tenant,
}

impl Tenant {
    pub fn e2ee(&self) -> E2ee<'_> {
        E2ee { tenant: self }
    }
}

impl E2ee<'_> {
    /// Announces that `user`'s devices or keys changed: clients sharing a room with them
    /// learn it through `device_lists.changed`. Returns the change's stream position.
    pub(crate) async fn device_list_changed(&self, user: &UserId) -> Result<i64> {
        let audience = Audience::sharing(self.tenant.store(), user).await?;
        let mut writer = self.tenant.stream().writer().await;
        let stream = writer.next_for(audience).await?;
        self.tenant
            .store()
            .record_device_list_change(user.as_str(), stream)
            .await?;
        writer.publish(stream);
        Ok(stream)
    }

    /// Tells the servers sharing a room with our `user` that one of their devices changed
    /// (`m.device_list_update` EDU, spec: "Device management"), its keys included. An update
    /// names no previous one: a receiver applies it as it stands, or asks `user/devices`.
    pub(crate) async fn announce_device(
        &self,
        user: &UserId,
        device_id: &str,
        keys: Option<&Value>,
        stream: i64,
    ) {
        let mut content = serde_json::json!({
            "user_id": user,
            "device_id": device_id,
            "stream_id": stream,
            "prev_id": [],
            "deleted": keys.is_none(),
        });
        if let Some(keys) = keys {
            content["keys"] = keys.clone();
        }
        let sent = self
            .tenant
            .sender()
            .send_edu_to_sharing(self.tenant, user, "m.device_list_update", content)
            .await;
        if let Err(e) = sent {
            tracing::debug!(%user, error = %e, "device update not sent to other servers");
        }
    }
}

impl E2ee<'_> {
    /// Announces that `signer` signed `target`'s keys: a signature by a user-signing key is
    /// visible to its signer only, so only the signer's clients learn of it, through
    /// `device_lists.changed` naming `target`.
    pub(crate) async fn signature_changed(&self, signer: &UserId, target: &UserId) -> Result<()> {
        let mut writer = self.tenant.stream().writer().await;
        let stream = writer
            .next_for(Audience::Users(vec![signer.to_string()]))
            .await?;
        self.tenant
            .store()
            .record_signature_change(signer.as_str(), target.as_str(), stream)
            .await?;
        writer.publish(stream);
        Ok(())
    }
}

/// Decodes unpadded (or padded) standard base64, as keys and signatures are written.
fn unbase64(value: &str) -> Option<Vec<u8>> {
    let trimmed = value.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .ok()
}

/// Whether `object` carries a valid ed25519 signature by `signer` under `key_id` for the
/// base64 public key `public_key`.
pub(crate) fn has_valid_signature(
    object: &Value,
    signer: &str,
    key_id: &str,
    public_key: &str,
) -> bool {
    let Some(signature) = object
        .get("signatures")
        .and_then(|s| s.get(signer))
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
        .and_then(unbase64)
    else {
        return false;
    };
    let Some(key) = unbase64(public_key) else {
        return false;
    };
    let Ok(CanonicalJsonValue::Object(canonical)) = CanonicalJsonValue::try_from(object.clone())
    else {
        return false;
    };
    let Ok(message) = to_canonical_json_string_for_signing(&canonical) else {
        return false;
    };
    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        &key,
        &signature,
        message.as_bytes(),
    )
    .is_ok()
}

/// The ed25519 public key of a key object (`keys["ed25519:<id>"]`), with its key id.
pub(crate) fn ed25519_key(object: &Value, id: &str) -> Option<String> {
    object
        .get("keys")?
        .get(format!("ed25519:{id}"))?
        .as_str()
        .map(str::to_owned)
}

/// Merges the `signatures` of `from` into `into`.
pub(crate) fn merge_signatures(into: &mut Value, from: &Value) {
    let Some(new) = from.get("signatures").and_then(Value::as_object) else {
        return;
    };
    let Some(object) = into.as_object_mut() else {
        return;
    };
    let signatures = object
        .entry("signatures")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(signatures) = signatures.as_object_mut() else {
        return;
    };
    for (signer, sigs) in new {
        let entry = signatures
            .entry(signer.clone())
            .or_insert_with(|| Value::Object(Default::default()));
        if let (Some(entry), Some(sigs)) = (entry.as_object_mut(), sigs.as_object()) {
            for (key_id, sig) in sigs {
                entry.insert(key_id.clone(), sig.clone());
            }
        }
    }
}

fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::Internal(format!("stored {what} is not JSON: {e}")))
}
