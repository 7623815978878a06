//! What a tenant's admins read about a user and do to their devices (Synapse's "User Admin
//! API"): devices, memberships, account data, counts of invites and joins, the user behind a
//! third-party id or external identity, and the user's own message rate.

use ruma::{OwnedUserId, UserId};

use super::admin::RateLimitOverride;
use super::{Accounts, Device, MAX_DEVICE_ID_LEN, MAX_DISPLAY_NAME_LEN};
use crate::store::{DeviceRecord, RateLimitOverrideRecord, StreamRange};
use crate::{Error, Result, now_ms};

impl Accounts<'_> {
    // ---- Devices, as an admin sees them --------------------------------------------------

    /// `GET /_synapse/admin/v2/users/{userId}/devices`.
    pub async fn devices_of(&self, localpart: &str) -> Result<Vec<Device>> {
        let devices = self.tenant.store().devices(localpart).await?;
        Ok(devices.into_iter().map(Device::from).collect())
    }

    /// `GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}`.
    pub async fn device_of(&self, localpart: &str, device_id: &str) -> Result<Option<Device>> {
        let device = self.tenant.store().device(localpart, device_id).await?;
        Ok(device.map(Device::from))
    }

    /// `PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}`: `None` changes nothing
    /// (and still wants the device to exist).
    pub async fn rename_device_of(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<()> {
        let not_found = || Error::NotFound("Not found".into());
        let Some(name) = display_name else {
            return self
                .device_of(localpart, device_id)
                .await?
                .map(|_| ())
                .ok_or_else(not_found);
        };
        if name.len() > MAX_DISPLAY_NAME_LEN {
            return Err(Error::InvalidParam(
                "Device display name is too long".into(),
            ));
        }
        let renamed = self
            .tenant
            .store()
            .set_device_display_name(localpart, device_id, Some(name))
            .await?;
        if !renamed {
            return Err(not_found());
        }
        Ok(())
    }

    /// `DELETE …/devices/{deviceId}` and `POST …/delete_devices`: devices the user doesn't
    /// have are no error, as in Synapse.
    pub async fn delete_devices_of(&self, localpart: &str, device_ids: &[String]) -> Result<()> {
        self.tenant
            .store()
            .delete_devices(localpart, device_ids)
            .await?;
        self.devices_changed(localpart).await
    }

    /// `POST /_synapse/admin/v2/users/{userId}/devices`: the device, unless it exists.
    pub async fn create_device_of(&self, localpart: &str, device_id: &str) -> Result<()> {
        if device_id.len() > MAX_DEVICE_ID_LEN {
            return Err(Error::InvalidParam("Invalid device_id".into()));
        }
        let now = now_ms();
        let device = DeviceRecord {
            localpart: localpart.to_owned(),
            device_id: device_id.to_owned(),
            display_name: None,
            last_seen_ts: None,
            last_seen_ip: None,
            created_ts: now,
        };
        if self.tenant.store().insert_device(&device).await? {
            self.tenant
                .e2ee()
                .device_list_changed(&self.user_id(localpart)?)
                .await?;
        }
        Ok(())
    }

    // ---- What an admin reads about a user ------------------------------------------------

    /// `GET /_synapse/admin/v1/users/{userId}/memberships`: every room's last membership.
    pub async fn memberships_of(&self, user_id: &UserId) -> Result<Vec<(String, String)>> {
        let memberships = self
            .tenant
            .store()
            .memberships_of_user(user_id.as_str())
            .await?;
        Ok(memberships
            .into_iter()
            .map(|m| (m.room_id, m.membership))
            .collect())
    }

    /// `GET /_synapse/admin/v1/users/{userId}/accountdata`: `(room, type, content)`, the room
    /// `None` for global account data.
    pub async fn account_data_of(
        &self,
        localpart: &str,
    ) -> Result<Vec<(Option<String>, String, serde_json::Value)>> {
        let all = StreamRange {
            after: 0,
            up_to: i64::MAX,
        };
        let records = self.tenant.store().account_data_in(localpart, all).await?;
        records
            .into_iter()
            .map(|r| {
                let content = serde_json::from_str(&r.content)
                    .map_err(|e| Error::Internal(format!("stored account data: {e}")))?;
                Ok((r.room_id, r.data_type, content))
            })
            .collect()
    }

    /// `GET /_synapse/admin/v1/users/{userId}/sent_invite_count`.
    pub async fn sent_invite_count(&self, user_id: &UserId, from_ts: i64) -> Result<u64> {
        Ok(self
            .tenant
            .store()
            .sent_invite_count(user_id.as_str(), from_ts)
            .await?)
    }

    /// `GET /_synapse/admin/v1/users/{userId}/cumulative_joined_room_count`.
    pub async fn joined_room_count_since(&self, user_id: &UserId, from_ts: i64) -> Result<u64> {
        Ok(self
            .tenant
            .store()
            .joined_room_count_since(user_id.as_str(), from_ts)
            .await?)
    }

    /// `GET /_synapse/admin/v1/threepid/{medium}/users/{address}`.
    pub async fn user_by_threepid(
        &self,
        medium: &str,
        address: &str,
    ) -> Result<Option<OwnedUserId>> {
        let owner = self
            .tenant
            .store()
            .user_by_threepid(medium, address)
            .await?;
        owner.map(|l| self.user_id(&l)).transpose()
    }

    /// `GET /_synapse/admin/v1/auth_providers/{provider}/users/{externalId}`.
    pub async fn user_by_external_id(
        &self,
        auth_provider: &str,
        external_id: &str,
    ) -> Result<Option<OwnedUserId>> {
        let owner = self
            .tenant
            .store()
            .user_by_external_id(auth_provider, external_id)
            .await?;
        owner.map(|l| self.user_id(&l)).transpose()
    }

    // ---- Rate limit overrides -------------------------------------------------------------

    pub async fn ratelimit_override(&self, localpart: &str) -> Result<Option<RateLimitOverride>> {
        let limit = self.tenant.store().ratelimit_override(localpart).await?;
        Ok(limit.map(|l| RateLimitOverride {
            messages_per_second: l.messages_per_second,
            burst_count: l.burst_count,
        }))
    }

    /// Sets (`Some`) or removes the user's own message rate; their next send obeys it.
    pub async fn set_ratelimit_override(
        &self,
        localpart: &str,
        limit: Option<RateLimitOverride>,
    ) -> Result<()> {
        let record = limit.map(|l| RateLimitOverrideRecord {
            messages_per_second: l.messages_per_second,
            burst_count: l.burst_count,
        });
        self.tenant
            .store()
            .set_ratelimit_override(localpart, record.as_ref())
            .await?;
        self.tenant.moderation().invalidate();
        Ok(())
    }
}
