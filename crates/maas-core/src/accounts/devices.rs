//! Device management (spec: Client-Server API, "Device management"): a user's devices, their
//! names, and deleting them behind user-interactive auth.

use ruma::api::client::uiaa::AuthData;

use super::{Accounts, AuthedUser, Device, MAX_DISPLAY_NAME_LEN};
use crate::uia::UiaFlows;
use crate::{Error, Result};

impl Accounts<'_> {
    /// `GET /devices`.
    pub async fn devices(&self, user: &AuthedUser) -> Result<Vec<Device>> {
        let devices = self.tenant.store().devices(&user.localpart).await?;
        Ok(devices.into_iter().map(Device::from).collect())
    }

    /// `GET /devices/{deviceId}`.
    pub async fn device(&self, user: &AuthedUser, device_id: &str) -> Result<Device> {
        self.tenant
            .store()
            .device(&user.localpart, device_id)
            .await?
            .map(Device::from)
            .ok_or_else(|| Error::NotFound("Device not found".into()))
    }

    /// `PUT /devices/{deviceId}`.
    pub async fn rename_device(
        &self,
        user: &AuthedUser,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<()> {
        if display_name.is_some_and(|n| n.len() > MAX_DISPLAY_NAME_LEN) {
            return Err(Error::InvalidParam(
                "Device display name is too long".into(),
            ));
        }
        let store = self.tenant.store();
        if !store
            .set_device_display_name(&user.localpart, device_id, display_name)
            .await?
        {
            return Err(Error::NotFound("Device not found".into()));
        }
        Ok(())
    }

    /// `DELETE /devices/{deviceId}` and `POST /delete_devices`: after the user confirms their
    /// password, the devices and their access tokens go.
    pub async fn delete_devices(
        &self,
        user: &AuthedUser,
        device_ids: &[String],
        auth: Option<&AuthData>,
    ) -> Result<()> {
        let flows = UiaFlows::password(format!("delete_devices:{}", user.localpart));
        self.tenant
            .uia()
            .authenticate(&flows, auth, Some(&user.localpart))
            .await?;
        self.tenant
            .store()
            .delete_devices(&user.localpart, device_ids)
            .await?;
        self.devices_changed(&user.localpart).await
    }
}
