//! The homeserver logic of maas, free of HTTP: the platform that hosts many tenants, and per
//! tenant the concerns of the Matrix spec (accounts, user-interactive auth, …). Handlers in
//! `maas-http` call into this crate; this crate calls `maas-store`.

pub mod accounts;
mod admin_state;
mod cache;
pub mod config;
pub mod destinations;
pub mod e2ee;
mod error;
pub mod export;
pub mod federation;
pub mod filter;
pub(crate) mod keys;
pub mod maintenance;
pub mod media;
pub mod openid;
pub mod platform;
pub mod presence;
pub mod push;
pub mod quotas;
pub mod ratelimit;
pub mod registration_tokens;
pub mod reports;
pub mod rooms;
mod secrets;
pub mod server_admin;
pub mod server_notices;
pub mod shared_secret;
pub mod store;
pub mod stream;
pub mod sync;
pub mod tenants;
pub mod typing;
pub mod uia;
pub mod user_data;

pub use error::{Error, Result, UiaChallenge};
pub use platform::Platform;
pub use tenants::Tenant;

/// Milliseconds since the Unix epoch, the unit of every timestamp in Matrix.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
