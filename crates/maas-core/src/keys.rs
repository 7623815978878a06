//! The tenant's server signing keys (ed25519). Every tenant signs its events and federation
//! requests with a key of its own, created with the tenant.

use ruma::signatures::Ed25519KeyPair;

use crate::store::SigningKeyRecord;
use crate::{Error, Result, now_ms, secrets};

/// A new key pair with a random version, ready to store.
pub(crate) fn generate_signing_key() -> SigningKeyRecord {
    let pkcs8 = Ed25519KeyPair::generate();
    let version = format!("a_{}", secrets::random_alphanumeric(4));
    SigningKeyRecord {
        key_id: format!("ed25519:{version}"),
        pkcs8: pkcs8.to_vec(),
        created_ts: now_ms(),
    }
}

/// Loads a stored key into a key pair usable for signing.
pub(crate) fn key_pair(record: &SigningKeyRecord) -> Result<Ed25519KeyPair> {
    let version = record
        .key_id
        .strip_prefix("ed25519:")
        .ok_or_else(|| Error::Internal(format!("unsupported signing key {}", record.key_id)))?;
    Ed25519KeyPair::from_der(&record.pkcs8, version.to_owned())
        .map_err(|e| Error::Internal(format!("signing key {} is unreadable: {e}", record.key_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_loads_back() {
        let record = generate_signing_key();
        let pair = key_pair(&record).expect("key loads");
        assert_eq!(format!("ed25519:{}", pair.version()), record.key_id);
    }
}
