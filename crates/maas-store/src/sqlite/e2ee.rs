//! `E2eeStore` on a tenant's SQLite database (schema in `0004_e2ee.sql`). The trait methods
//! forward to one submodule per concern: keys and device lists, to-device messages, key backups.
//! Keys and messages hang off their device by foreign key, so device deletion needs no code here.

mod backup;
mod keys;
mod to_device;

use async_trait::async_trait;

use super::SqliteTenantStore;
use super::util::is_foreign_key_violation;
use crate::{
    BackupKeyRecord, BackupVersionRecord, CrossSigningKeyRecord, DeviceKeysRecord,
    DeviceListChanges, E2eeStore, OneTimeKeyRecord, Result, StoreError, StreamRange,
    ToDeviceRecord, TxnRecord,
};

#[async_trait]
impl E2eeStore for SqliteTenantStore {
    async fn set_device_keys(&self, keys: &DeviceKeysRecord) -> Result<()> {
        keys::set_device_keys(&self.pool, keys).await
    }

    async fn device_keys(&self, localpart: &str) -> Result<Vec<DeviceKeysRecord>> {
        keys::device_keys(&self.pool, localpart).await
    }

    async fn add_one_time_keys(
        &self,
        localpart: &str,
        device_id: &str,
        keys: &[OneTimeKeyRecord],
    ) -> Result<()> {
        keys::add_one_time_keys(&self.pool, localpart, device_id, keys).await
    }

    async fn count_one_time_keys(
        &self,
        localpart: &str,
        device_id: &str,
    ) -> Result<Vec<(String, u64)>> {
        keys::count_one_time_keys(&self.reader, localpart, device_id).await
    }

    async fn claim_key(
        &self,
        localpart: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<OneTimeKeyRecord>> {
        keys::claim_key(&self.pool, localpart, device_id, algorithm).await
    }

    async fn set_fallback_keys(
        &self,
        localpart: &str,
        device_id: &str,
        keys: &[OneTimeKeyRecord],
    ) -> Result<()> {
        keys::set_fallback_keys(&self.pool, localpart, device_id, keys).await
    }

    async fn unused_fallback_key_types(
        &self,
        localpart: &str,
        device_id: &str,
    ) -> Result<Vec<String>> {
        keys::unused_fallback_key_types(&self.reader, localpart, device_id).await
    }

    async fn set_cross_signing_key(&self, key: &CrossSigningKeyRecord) -> Result<()> {
        keys::set_cross_signing_key(&self.pool, key).await
    }

    async fn cross_signing_keys(&self, localpart: &str) -> Result<Vec<CrossSigningKeyRecord>> {
        keys::cross_signing_keys(&self.pool, localpart).await
    }

    async fn set_master_key_replaceable_before(
        &self,
        localpart: &str,
        before_ms: Option<i64>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE cross_signing_keys SET replaceable_without_uia_before_ms = ? \
             WHERE localpart = ? AND key_type = 'master'",
        )
        .bind(before_ms)
        .bind(localpart)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn master_key_replaceable_before(&self, localpart: &str) -> Result<Option<i64>> {
        let before: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT replaceable_without_uia_before_ms FROM cross_signing_keys \
             WHERE localpart = ? AND key_type = 'master'",
        )
        .bind(localpart)
        .fetch_optional(&self.pool)
        .await?;
        Ok(before.flatten())
    }

    async fn record_device_list_change(&self, user_id: &str, stream: i64) -> Result<()> {
        keys::record_device_list_change(&self.pool, user_id, stream).await
    }

    async fn device_list_changes(&self, range: StreamRange) -> Result<DeviceListChanges> {
        keys::device_list_changes(&self.reader, range).await
    }

    async fn record_signature_change(&self, signer: &str, target: &str, stream: i64) -> Result<()> {
        keys::record_signature_change(&self.pool, signer, target, stream).await
    }

    async fn signature_changes(&self, signer: &str, range: StreamRange) -> Result<Vec<String>> {
        keys::signature_changes(&self.reader, signer, range).await
    }

    async fn insert_to_device(&self, txn: &TxnRecord, messages: &[ToDeviceRecord]) -> Result<bool> {
        to_device::insert_to_device(&self.pool, txn, messages).await
    }

    async fn insert_received_to_device(&self, messages: &[ToDeviceRecord]) -> Result<()> {
        to_device::insert_received_to_device(&self.pool, messages).await
    }

    async fn to_device_messages(
        &self,
        localpart: &str,
        device_id: &str,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<ToDeviceRecord>> {
        to_device::to_device_messages(&self.reader, localpart, device_id, up_to, limit).await
    }

    async fn delete_to_device(&self, localpart: &str, device_id: &str, up_to: i64) -> Result<()> {
        to_device::delete_to_device(&self.pool, localpart, device_id, up_to).await
    }

    async fn create_backup_version(
        &self,
        localpart: &str,
        algorithm: &str,
        auth_data_json: &str,
    ) -> Result<String> {
        backup::create_backup_version(&self.pool, localpart, algorithm, auth_data_json).await
    }

    async fn backup_version(
        &self,
        localpart: &str,
        version: Option<&str>,
    ) -> Result<Option<BackupVersionRecord>> {
        backup::backup_version(&self.pool, localpart, version).await
    }

    async fn update_backup_version(
        &self,
        localpart: &str,
        version: &str,
        auth_data_json: &str,
    ) -> Result<bool> {
        backup::update_backup_version(&self.pool, localpart, version, auth_data_json).await
    }

    async fn delete_backup_version(&self, localpart: &str, version: &str) -> Result<bool> {
        backup::delete_backup_version(&self.pool, localpart, version).await
    }

    async fn put_backup_keys(
        &self,
        localpart: &str,
        version: &str,
        keys: &[BackupKeyRecord],
    ) -> Result<()> {
        backup::put_backup_keys(&self.pool, localpart, version, keys).await
    }

    async fn backup_keys(
        &self,
        localpart: &str,
        version: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Vec<BackupKeyRecord>> {
        backup::backup_keys(&self.pool, localpart, version, room_id, session_id).await
    }

    async fn delete_backup_keys(
        &self,
        localpart: &str,
        version: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<u64> {
        backup::delete_backup_keys(&self.pool, localpart, version, room_id, session_id).await
    }

    async fn count_backup_keys(&self, localpart: &str, version: &str) -> Result<u64> {
        backup::count_backup_keys(&self.pool, localpart, version).await
    }
}

/// A row written for an owner (device, user, backup version) that doesn't exist is
/// `NotFound(what)`; other errors stay as they are.
fn missing(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if is_foreign_key_violation(&err) {
        StoreError::NotFound(what())
    } else {
        err.into()
    }
}

/// How errors name a device.
fn device_name(localpart: &str, device_id: &str) -> String {
    format!("device {device_id} of {localpart}")
}
