//! What a tenant stores for end-to-end encryption: device keys, one-time and fallback keys,
//! cross-signing keys, the device-list change log, to-device messages and server-side key
//! backups. The server never sees plaintext: keys and messages are opaque JSON to it.

use async_trait::async_trait;

use super::{Result, StreamRange, TxnRecord};

/// The signed `device_keys` object a device uploaded (signatures added by others merged in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKeysRecord {
    pub localpart: String,
    pub device_id: String,
    pub keys_json: String,
}

/// A one-time or fallback key: `key_id` is `<algorithm>:<id>`, `key_json` its value (a signed
/// key object or a bare string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneTimeKeyRecord {
    pub key_id: String,
    pub key_json: String,
}

/// Users whose devices or keys changed in a range of positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceListChanges {
    /// Each once, in byte order.
    pub users: Vec<String>,
    /// Whether `users` is every change of the range: `false` when changes the range starts
    /// in were pruned (a sync token older than the retention).
    pub complete: bool,
}

/// A cross-signing key of a local user: `master`, `self_signing` or `user_signing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossSigningKeyRecord {
    pub localpart: String,
    pub key_type: String,
    pub key_json: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToDeviceRecord {
    pub localpart: String,
    pub device_id: String,
    /// Position in the tenant's stream.
    pub stream: i64,
    pub sender: String,
    pub event_type: String,
    pub content_json: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupVersionRecord {
    pub localpart: String,
    /// Decimal, increasing per user.
    pub version: String,
    pub algorithm: String,
    pub auth_data_json: String,
    /// Changes whenever the keys of the backup change.
    pub etag: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupKeyRecord {
    pub room_id: String,
    pub session_id: String,
    pub first_message_index: u64,
    pub forwarded_count: u64,
    pub is_verified: bool,
    pub session_data_json: String,
}

#[async_trait]
pub trait E2eeStore: Send + Sync {
    // Device keys; removed with their device. Writes for a device that doesn't exist are
    // `NotFound`, here and for one-time and fallback keys.
    async fn set_device_keys(&self, keys: &DeviceKeysRecord) -> Result<()>;
    async fn device_keys(&self, localpart: &str) -> Result<Vec<DeviceKeysRecord>>;

    // One-time and fallback keys; removed with their device.
    /// Adds keys; a key id already stored with different content is a `Conflict` and nothing
    /// is written; the same key again is ignored.
    async fn add_one_time_keys(
        &self,
        localpart: &str,
        device_id: &str,
        keys: &[OneTimeKeyRecord],
    ) -> Result<()>;
    /// Unclaimed one-time keys per algorithm.
    async fn count_one_time_keys(
        &self,
        localpart: &str,
        device_id: &str,
    ) -> Result<Vec<(String, u64)>>;
    /// Takes one one-time key of `algorithm` (removing it; the oldest upload first, as MSC4225
    /// asks), else the device's fallback key of that algorithm (marking it used, keeping it);
    /// atomic.
    async fn claim_key(
        &self,
        localpart: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<OneTimeKeyRecord>>;
    /// Replaces the fallback key of each algorithm present in `keys`, as unused. Uploading the
    /// stored key again changes nothing: a retried upload must not make a used key look unused.
    async fn set_fallback_keys(
        &self,
        localpart: &str,
        device_id: &str,
        keys: &[OneTimeKeyRecord],
    ) -> Result<()>;
    /// Algorithms with an unused fallback key.
    async fn unused_fallback_key_types(
        &self,
        localpart: &str,
        device_id: &str,
    ) -> Result<Vec<String>>;

    // Cross-signing keys; `NotFound` for a user that doesn't exist.
    async fn set_cross_signing_key(&self, key: &CrossSigningKeyRecord) -> Result<()>;
    async fn cross_signing_keys(&self, localpart: &str) -> Result<Vec<CrossSigningKeyRecord>>;
    /// Sets (or with `None` clears) until when the user's master key may be replaced without
    /// user-interactive auth; `false` when the user has no master key.
    async fn set_master_key_replaceable_before(
        &self,
        localpart: &str,
        before_ms: Option<i64>,
    ) -> Result<bool>;
    /// Until when the user's master key may be replaced without user-interactive auth.
    async fn master_key_replaceable_before(&self, localpart: &str) -> Result<Option<i64>>;

    // Device list changes: which user's devices or keys changed at which stream position.
    async fn record_device_list_change(&self, user_id: &str, stream: i64) -> Result<()>;
    /// Users whose devices or keys changed in `range`, and whether the changes of the whole
    /// range are still there.
    async fn device_list_changes(&self, range: StreamRange) -> Result<DeviceListChanges>;
    /// `signer` signed `target`'s keys at `stream` (a change only the signer sees).
    async fn record_signature_change(&self, signer: &str, target: &str, stream: i64) -> Result<()>;
    /// The users whose keys `signer` signed in `range`, each once.
    async fn signature_changes(&self, signer: &str, range: StreamRange) -> Result<Vec<String>>;

    // To-device messages.
    /// Stores messages for delivery, at most once per sender transaction: `Ok(false)` when the
    /// transaction was already stored (and nothing is written). Messages for devices that don't
    /// exist are skipped; `NotFound` when the sending device doesn't exist.
    async fn insert_to_device(&self, txn: &TxnRecord, messages: &[ToDeviceRecord]) -> Result<bool>;
    /// Stores messages another server sent for our users (their transaction made them arrive
    /// once); messages for devices that don't exist are skipped.
    async fn insert_received_to_device(&self, messages: &[ToDeviceRecord]) -> Result<()>;
    /// Pending messages of a device with stream `<= up_to`, oldest first, at most `limit`.
    async fn to_device_messages(
        &self,
        localpart: &str,
        device_id: &str,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<ToDeviceRecord>>;
    /// Deletes a device's messages with stream `<= up_to` (acknowledged by a later `since`).
    async fn delete_to_device(&self, localpart: &str, device_id: &str, up_to: i64) -> Result<()>;

    // Server-side key backup. Writing keys to a version that doesn't exist (or was deleted) is
    // `NotFound`; reading them gives nothing.
    /// Returns the new version: "1", "2", … per user, never reused even after a deletion.
    async fn create_backup_version(
        &self,
        localpart: &str,
        algorithm: &str,
        auth_data_json: &str,
    ) -> Result<String>;
    /// A version, or the latest one when `version` is `None`; deleted versions are gone.
    async fn backup_version(
        &self,
        localpart: &str,
        version: Option<&str>,
    ) -> Result<Option<BackupVersionRecord>>;
    async fn update_backup_version(
        &self,
        localpart: &str,
        version: &str,
        auth_data_json: &str,
    ) -> Result<bool>;
    /// Deletes a version and all its keys; `false` only for a version that never existed
    /// (deleting a deleted version again succeeds).
    async fn delete_backup_version(&self, localpart: &str, version: &str) -> Result<bool>;
    /// Upserts keys by (room, session) and bumps the version's etag; one transaction.
    async fn put_backup_keys(
        &self,
        localpart: &str,
        version: &str,
        keys: &[BackupKeyRecord],
    ) -> Result<()>;
    /// Keys of a version, optionally of one room and one session.
    async fn backup_keys(
        &self,
        localpart: &str,
        version: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Vec<BackupKeyRecord>>;
    /// Deletes keys (all, of a room, or one session) and bumps the etag when any went.
    async fn delete_backup_keys(
        &self,
        localpart: &str,
        version: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<u64>;
    async fn count_backup_keys(&self, localpart: &str, version: &str) -> Result<u64>;
}
