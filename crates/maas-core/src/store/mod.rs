//! The storage contract of maas: the traits a backend implements and the plain records that
//! cross them. Core defines what it needs of storage; `maas-store` implements it for SQLite and
//! PostgreSQL, and the binary picks one, so core never names a backend.

mod admin;
mod archive;
mod e2ee;
mod federation;
mod media;
mod push;
mod records;
mod reports;
mod retention;
mod rooms;
mod sync;
mod usage;

use std::sync::Arc;

pub use admin::*;
pub use archive::*;
use async_trait::async_trait;
pub use e2ee::*;
pub use federation::*;
pub use media::*;
pub use push::*;
pub use records::*;
pub use reports::*;
pub use retention::*;
pub use rooms::*;
pub use sync::*;
pub use usage::*;

// Domain types the control plane stores as they are.
pub use crate::tenants::{RegistrationPolicy, TenantInfo, TenantSettings};
// The admin's user list query, which the store answers as it is.
pub use crate::accounts::{UserListQuery, UserOrder};

/// A backend's own failure (database driver, file system), kept as its source.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Errors every backend maps its own failures to.
///
/// Deliberately not a `std::error::Error` itself: that lets every backend's own errors convert
/// with `?` through the one blanket `From` below (the pattern of `anyhow::Error`), although
/// neither the trait nor their types belong to the backend's crate.
#[derive(Debug)]
pub enum StoreError {
    /// A unique key (server name, host, localpart, token …) is already taken.
    Conflict(String),
    NotFound(String),
    /// Stored data doesn't read back as what was written.
    Corrupt(String),
    /// A schema migration failed.
    Migration(BackendError),
    /// The database or the file system failed.
    Backend(BackendError),
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StoreError {
    fn from(err: E) -> Self {
        StoreError::Backend(Box::new(err))
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Conflict(what) => write!(f, "already exists: {what}"),
            StoreError::NotFound(what) => write!(f, "not found: {what}"),
            StoreError::Corrupt(what) => write!(f, "stored data is corrupt: {what}"),
            StoreError::Migration(err) => write!(f, "migration failed: {err}"),
            StoreError::Backend(err) => write!(f, "database error: {err}"),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A storage backend: where the control plane lives and how tenant databases are opened.
#[async_trait]
pub trait Backend: Send + Sync {
    fn control(&self) -> Arc<dyn ControlStore>;
    /// Opens (creating and migrating when new) the database of one tenant.
    async fn open_tenant(&self, tenant_id: &str) -> Result<Arc<dyn TenantStore>>;
    /// Removes every byte a tenant stored. The tenant's store must have been closed.
    async fn destroy_tenant(&self, tenant_id: &str) -> Result<()>;
    /// Closes the control plane cleanly (checkpoints, pool shutdown).
    async fn close(&self);
}

/// The platform's own records: tenants and the host names they answer on.
#[async_trait]
pub trait ControlStore: Send + Sync {
    async fn tenants(&self) -> Result<Vec<TenantInfo>>;
    async fn tenant(&self, tenant_id: &str) -> Result<Option<TenantInfo>>;
    async fn tenant_by_server_name(&self, server_name: &str) -> Result<Option<TenantInfo>>;
    /// Fails with `Conflict` when the server name or one of the hosts is taken.
    async fn insert_tenant(&self, tenant: &TenantInfo) -> Result<()>;
    /// Replaces the settings and hosts of an existing tenant; `Conflict` on a taken host.
    async fn update_tenant(&self, tenant: &TenantInfo) -> Result<()>;
    async fn delete_tenant(&self, tenant_id: &str) -> Result<()>;
    /// Marks (`true`) or clears whether the tenant has events queued for other servers; a
    /// tenant that no longer exists is no error.
    async fn set_federation_pending(&self, tenant_id: &str, pending: bool) -> Result<()>;
    /// The tenants marked as having events queued for other servers.
    async fn federation_pending(&self) -> Result<Vec<String>>;
}

/// Everything one tenant (one homeserver) stores; its rooms through `RoomStore`.
#[async_trait]
pub trait TenantStore:
    RoomStore
    + E2eeStore
    + PushStore
    + SyncStore
    + RetentionStore
    + FederationStore
    + MediaStore
    + AdminStore
    + ReportStore
    + UsageStore
    + Send
    + Sync
{
    // Server signing keys.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()>;

    // Users.
    /// Inserts a user unless the localpart is taken (`Conflict`) or the tenant already has
    /// `max_users` users (`Ok(false)`); the count and the insert are one atomic step.
    async fn insert_user(&self, user: &UserRecord, max_users: Option<u64>) -> Result<bool>;
    async fn user(&self, localpart: &str) -> Result<Option<UserRecord>>;
    /// Users ordered by localpart, starting after `from` (exclusive), at most `limit`.
    async fn users(&self, from: Option<&str>, limit: u32) -> Result<Vec<UserRecord>>;
    /// Active, non-guest users whose localpart or display name contains `term`
    /// (case-insensitive), ordered by localpart, at most `limit`.
    async fn search_users(&self, term: &str, limit: u32) -> Result<Vec<UserRecord>>;
    async fn count_users(&self) -> Result<u64>;
    async fn set_password_hash(&self, localpart: &str, hash: Option<&str>) -> Result<()>;
    async fn set_admin(&self, localpart: &str, admin: bool) -> Result<()>;
    /// Marks the user deactivated and removes their devices, tokens (puppet tokens too, of and
    /// by them), third-party ids and profile.
    async fn deactivate_user(&self, localpart: &str) -> Result<()>;
    async fn set_displayname(&self, localpart: &str, name: Option<&str>) -> Result<()>;
    async fn set_avatar_url(&self, localpart: &str, url: Option<&str>) -> Result<()>;
    async fn threepids(&self, localpart: &str) -> Result<Vec<ThreepidRecord>>;
    /// One page of the admin's user list (`server_name` makes the full user ids that
    /// `query.user_id` is matched against) and how many users match in all.
    async fn users_page(
        &self,
        server_name: &str,
        query: &UserListQuery,
    ) -> Result<(Vec<ListedUserRecord>, u64)>;
    /// When one of the user's devices was last seen.
    async fn last_seen_ts(&self, localpart: &str) -> Result<Option<i64>>;
    /// Sets the account states an admin controls.
    async fn update_account_states(
        &self,
        localpart: &str,
        change: &AccountStatesChange,
    ) -> Result<()>;
    /// Undoes a deactivation (and an erasure); the user needs a password set to log in again.
    async fn reactivate_user(&self, localpart: &str) -> Result<()>;
    /// Makes `threepids` the user's third-party ids; one another user had moves to this one,
    /// as Synapse does.
    async fn replace_threepids(&self, localpart: &str, threepids: &[ThreepidRecord]) -> Result<()>;
    /// The localpart of the user with this third-party id.
    async fn user_by_threepid(&self, medium: &str, address: &str) -> Result<Option<String>>;
    async fn external_ids(&self, localpart: &str) -> Result<Vec<ExternalIdRecord>>;
    /// Makes `ids` the user's external ids, in one transaction; `Conflict` (and nothing
    /// changed) when another user has one of them.
    async fn replace_external_ids(&self, localpart: &str, ids: &[ExternalIdRecord]) -> Result<()>;
    /// The localpart of the user with this identity at `auth_provider`.
    async fn user_by_external_id(
        &self,
        auth_provider: &str,
        external_id: &str,
    ) -> Result<Option<String>>;
    async fn ratelimit_override(&self, localpart: &str) -> Result<Option<RateLimitOverrideRecord>>;
    /// Sets (`Some`) or removes the user's own message rate limit.
    async fn set_ratelimit_override(
        &self,
        localpart: &str,
        limit: Option<&RateLimitOverrideRecord>,
    ) -> Result<()>;
    /// Invites sent by `user_id` (a full user id) at or after `from_ts`.
    async fn sent_invite_count(&self, user_id: &str, from_ts: i64) -> Result<u64>;
    /// Rooms `user_id` joined at or after `from_ts`, whether or not they are still in them.
    async fn joined_room_count_since(&self, user_id: &str, from_ts: i64) -> Result<u64>;

    // Devices and access tokens.
    /// Creates the device if it is new (keeping its display name otherwise), removes the tokens
    /// it had and stores the new token: one transaction.
    async fn start_session(&self, device: &DeviceRecord, token: &AccessTokenRecord) -> Result<()>;
    async fn device(&self, localpart: &str, device_id: &str) -> Result<Option<DeviceRecord>>;
    async fn devices(&self, localpart: &str) -> Result<Vec<DeviceRecord>>;
    async fn set_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        name: Option<&str>,
    ) -> Result<bool>;
    async fn touch_device(&self, localpart: &str, device_id: &str, ts: i64, ip: &str)
    -> Result<()>;
    /// Deletes the devices and their tokens; returns the ids that existed.
    async fn delete_devices(&self, localpart: &str, device_ids: &[String]) -> Result<Vec<String>>;
    /// Deletes every device of the user except `keep`, with their tokens.
    async fn delete_devices_except(&self, localpart: &str, keep: Option<&str>) -> Result<()>;
    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessTokenRecord>>;
    /// Creates the device unless the user has it already; `false` then.
    async fn insert_device(&self, device: &DeviceRecord) -> Result<bool>;
    async fn insert_puppet_token(&self, token: &PuppetTokenRecord) -> Result<()>;
    async fn puppet_token(&self, token_hash: &str) -> Result<Option<PuppetTokenRecord>>;
    /// Ends the puppet session `device_id` of the user (its logout).
    async fn delete_puppet_session(&self, localpart: &str, device_id: &str) -> Result<()>;
    /// Ends every puppet session the admin took (the admin's logout everywhere).
    async fn delete_puppet_tokens_of_admin(&self, admin: &str) -> Result<()>;

    // User-interactive authentication sessions.
    async fn insert_uia_session(&self, session: &UiaSessionRecord) -> Result<()>;
    async fn uia_session(&self, session_id: &str) -> Result<Option<UiaSessionRecord>>;
    async fn update_uia_session(&self, session: &UiaSessionRecord) -> Result<()>;
    async fn delete_uia_session(&self, session_id: &str) -> Result<()>;
    async fn delete_uia_sessions_before(&self, created_before_ts: i64) -> Result<()>;

    // Registration tokens (MSC3231).
    /// `Conflict` when the token exists.
    async fn insert_registration_token(&self, token: &RegistrationTokenRecord) -> Result<()>;
    async fn registration_token(&self, token: &str) -> Result<Option<RegistrationTokenRecord>>;
    async fn registration_tokens(&self) -> Result<Vec<RegistrationTokenRecord>>;
    /// Live UIA sessions (created at or after `since_ts`) holding this token, not yet finished.
    async fn pending_registration_token_uses(&self, token: &str, since_ts: i64) -> Result<u64>;
    /// Counts one completed registration if the token is still valid at `now_ts`; atomic.
    async fn complete_registration_token_use(&self, token: &str, now_ts: i64) -> Result<bool>;
    /// Sets the limits of a token: each `Some` replaces its field (`Some(None)`: no limit);
    /// false when there is no such token.
    async fn update_registration_token(
        &self,
        token: &str,
        uses_allowed: Option<Option<u64>>,
        expiry_time: Option<Option<i64>>,
    ) -> Result<bool>;
    /// False when there was no such token.
    async fn delete_registration_token(&self, token: &str) -> Result<bool>;

    // Export and import (`archive`).
    /// Hands every table to `sink` in `TENANT_TABLES` order, read in one consistent snapshot,
    /// in chunks of at most `EXPORT_CHUNK_ROWS` rows and about `EXPORT_CHUNK_BYTES`; every
    /// table gets at least one chunk, so that an empty table still records its columns. The
    /// snapshot is held until the last chunk is taken.
    async fn export_tables(&self, sink: &mut dyn ChunkSink) -> Result<()>;
    /// Starts writing exported rows into this freshly migrated tenant database, in one
    /// transaction: nothing is visible before `TableImport::commit`.
    async fn begin_import(&self) -> Result<Box<dyn TableImport>>;

    /// Closes the database cleanly.
    async fn close(&self);

    /// Whether `persist_events` does its work on the calling thread, blocking it briefly and
    /// never for a flush to disk (SQLite without `durable`). Such commits are cheapest run
    /// back to back on a thread that may block, rather than handed off by the async runtime
    /// one at a time.
    fn commits_inline(&self) -> bool {
        false
    }
}
