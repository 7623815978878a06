//! The tenant's signing keys as other servers see them (`GET /_matrix/key/v2/server`): the
//! current key, and the keys it replaced with the time each stopped being used, in a
//! document signed by the current key. Rotation adds a key; the old ones stay published so
//! the events and requests they signed still verify.

use std::sync::Arc;

use ruma::api::federation::discovery::{OldVerifyKey, ServerSigningKeys, VerifyKey};
use ruma::serde::{Base64, Raw};
use ruma::signatures::Ed25519KeyPair;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedServerSigningKeyId, ServerName, UInt};

use crate::store::SigningKeyRecord;
use crate::{Error, Result, keys, now_ms};

/// How long others may use our keys document before asking again. The spec caps what
/// others accept at 7 days; a day lets a rotation reach everyone within a day.
const VALIDITY_MS: i64 = 24 * 3600 * 1000;

/// The loaded keys of a tenant.
pub struct ServerKeys {
    /// Signs everything the tenant sends from now on.
    pub current: Arc<Ed25519KeyPair>,
    old: Vec<OldKey>,
}

struct OldKey {
    key_id: String,
    public: Vec<u8>,
    expired_ts: i64,
}

impl ServerKeys {
    /// The keys from their records, oldest first: the newest is current, and each older one
    /// expired when the next one was created.
    pub(crate) fn from_records(records: &[SigningKeyRecord]) -> Result<ServerKeys> {
        let (newest, older) = records
            .split_last()
            .ok_or_else(|| Error::Internal("tenant has no signing key".into()))?;
        let mut old = Vec::with_capacity(older.len());
        for (record, successor) in older.iter().zip(&records[1..]) {
            old.push(OldKey {
                key_id: record.key_id.clone(),
                public: keys::key_pair(record)?.public_key().to_vec(),
                expired_ts: successor.created_ts,
            });
        }
        Ok(ServerKeys {
            current: Arc::new(keys::key_pair(newest)?),
            old,
        })
    }

    /// The key id of the current key, `ed25519:<version>`.
    pub fn current_key_id(&self) -> String {
        format!("ed25519:{}", self.current.version())
    }

    /// The public key of `key_id`, current or old.
    pub fn public_key(&self, key_id: &str) -> Option<Vec<u8>> {
        if key_id == self.current_key_id() {
            return Some(self.current.public_key().to_vec());
        }
        let old = self.old.iter().find(|k| k.key_id == key_id)?;
        Some(old.public.clone())
    }

    /// The signed document `GET /_matrix/key/v2/server` answers with, valid for a day.
    pub fn document(&self, server_name: &ServerName) -> Result<Raw<ServerSigningKeys>> {
        let valid_until = millis(now_ms() + VALIDITY_MS);
        let mut document = ServerSigningKeys::new(server_name.to_owned(), valid_until);
        document.verify_keys.insert(
            key_id(&self.current_key_id())?,
            VerifyKey::new(Base64::new(self.current.public_key().to_vec())),
        );
        for old in &self.old {
            let key = OldVerifyKey::new(millis(old.expired_ts), Base64::new(old.public.clone()));
            document.old_verify_keys.insert(key_id(&old.key_id)?, key);
        }
        sign_document(&document, server_name, &self.current)
    }
}

/// Serialises `document` canonically and adds `server_name`'s signature with `key`; used for
/// our own keys and, as a notary, for the keys of others we vouch for.
pub(crate) fn sign_document(
    document: &ServerSigningKeys,
    server_name: &ServerName,
    key: &Ed25519KeyPair,
) -> Result<Raw<ServerSigningKeys>> {
    let ruma::CanonicalJsonValue::Object(mut object) =
        ruma::canonical_json::to_canonical_value(document)
            .map_err(|e| Error::Internal(format!("keys document: {e}")))?
    else {
        return Err(Error::Internal("keys document is not an object".into()));
    };
    ruma::signatures::sign_json(server_name.as_str(), key, &mut object)
        .map_err(|e| Error::Internal(format!("signing the keys document: {e}")))?;
    let json = serde_json::to_string(&object)
        .map_err(|e| Error::Internal(format!("keys document: {e}")))?;
    Raw::from_json_string(json).map_err(|e| Error::Internal(format!("keys document: {e}")))
}

fn key_id(id: &str) -> Result<OwnedServerSigningKeyId> {
    id.try_into()
        .map_err(|e| Error::Internal(format!("stored signing key id {id} is invalid: {e}")))
}

pub(crate) fn millis(ms: i64) -> MilliSecondsSinceUnixEpoch {
    MilliSecondsSinceUnixEpoch(UInt::try_from(ms.max(0)).unwrap_or(UInt::MAX))
}

#[cfg(test)]
mod tests {
    use ruma::signatures::{PublicKeyMap, verify_json};
    use ruma::{CanonicalJsonObject, server_name};

    use super::*;

    fn record(created_ts: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            created_ts,
            ..keys::generate_signing_key()
        }
    }

    #[test]
    fn the_document_is_signed_by_the_current_key_and_lists_old_ones() {
        let records = [record(1_000), record(2_000), record(3_000)];
        let keys = ServerKeys::from_records(&records).expect("keys");
        assert_eq!(keys.current_key_id(), records[2].key_id);
        let name = server_name!("a.test");
        let raw = keys.document(name).expect("document");
        let object: CanonicalJsonObject = serde_json::from_str(raw.json().get()).expect("json");
        let document: ServerSigningKeys = raw.deserialize().expect("keys document");
        assert_eq!(document.verify_keys.len(), 1);
        assert_eq!(document.old_verify_keys.len(), 2);
        let first = &document.old_verify_keys[records[0].key_id.as_str()];
        assert_eq!(
            first.expired_ts,
            millis(2_000),
            "expired when the next was made"
        );
        assert!(document.valid_until_ts > millis(now_ms()));

        let mut public = PublicKeyMap::new();
        let current = Base64::new(keys.current.public_key().to_vec());
        public.insert(
            "a.test".into(),
            [(keys.current_key_id(), current)].into_iter().collect(),
        );
        verify_json(&public, &object).expect("signed by the current key");
        // An old key's signature would not do.
        let mut stale = PublicKeyMap::new();
        let old = Base64::new(keys.public_key(&records[1].key_id).expect("old key"));
        stale.insert(
            "a.test".into(),
            [(keys.current_key_id(), old)].into_iter().collect(),
        );
        assert!(verify_json(&stale, &object).is_err());
    }

    #[test]
    fn no_key_is_an_error() {
        assert!(ServerKeys::from_records(&[]).is_err());
    }
}
