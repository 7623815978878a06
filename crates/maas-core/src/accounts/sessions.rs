//! The in-memory cache of valid access tokens: most requests authenticate without touching
//! the database. Any change that can end a session or change who a token stands for
//! (logout, device deletion, deactivation, admin changes) invalidates it once stored.

use super::AuthedUser;
use crate::cache::GuardedLru;

/// Tokens cached per tenant at most; the least recently used go first.
const CACHED_SESSIONS: usize = 4096;

/// A cached token: who it stands for and when its device was last recorded as seen.
#[derive(Clone)]
pub(crate) struct CachedSession {
    pub(crate) user: AuthedUser,
    pub(crate) last_seen_ts: i64,
    pub(crate) last_seen_ip: String,
}

/// Keyed by the token's hash.
pub(crate) type SessionCache = GuardedLru<String, CachedSession>;

pub(crate) fn session_cache() -> SessionCache {
    GuardedLru::new(CACHED_SESSIONS)
}
