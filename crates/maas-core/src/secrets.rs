//! Random secrets and their hashes: access tokens, generated passwords, ids. Access tokens
//! are kept only as SHA-256 digests, so a leaked database holds no usable token.

use base64::Engine;
use rand::{Rng, distributions::Alphanumeric};
use sha2::{Digest, Sha256};

/// A 256-bit random access token, URL-safe.
pub fn new_access_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "mat_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The digest under which a token is stored and looked up. Looking up by digest means the
/// secret itself is never compared byte by byte, so timing reveals nothing about it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn random_alphanumeric(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Device ids in the style clients are used to: ten upper-case letters.
pub fn new_device_id() -> String {
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| char::from(b'A' + rng.gen_range(0..26)))
        .collect()
}

pub fn new_password() -> String {
    random_alphanumeric(24)
}

pub fn new_tenant_id() -> String {
    let bytes: [u8; 8] = rand::random();
    format!("t{}", hex::encode(bytes))
}
