//! Server notices (Synapse: "Server Notices"): messages from the homeserver itself to one of
//! its users, sent by a system account (`@notices:<server>`, Synapse's usual localpart) in a
//! private room per user, named "Server Notices" and tagged `m.server_notice` in the user's
//! account data. The room is made on the first notice and remembered; while the user is
//! joined to it or invited, later notices go there; once they left, the next notice makes a
//! new one, as Synapse does.
//!
//! The system account exists only to send: no password, no device, marked with Synapse's
//! `support` user type. A user who registered the localpart first is not taken for it.

use ruma::{OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, TransactionId, UserId};
use serde_json::{Map, Value, json};

use crate::accounts::AuthedUser;
use crate::rooms::{CreateRoom, EventDraft, Preset, Transaction, TxnEndpoint};
use crate::store::{StoreError, UserRecord};
use crate::{Error, Result, Tenant, now_ms};

/// The localpart of the system account that sends notices.
pub const NOTICES_LOCALPART: &str = "notices";
/// Synapse's default `server_notices.room_name`.
const ROOM_NAME: &str = "Server Notices";
/// The room tag that marks the room to clients (spec: "Server Notices").
const SERVER_NOTICE_TAG: &str = "m.server_notice";
/// The system account's user type: Synapse's for accounts that are not people.
const SYSTEM_USER_TYPE: &str = "support";

/// A notice: an event of any type, a state event when `state_key` is given.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Map<String, Value>,
}

pub struct ServerNotices<'a> {
    tenant: &'a Tenant,
}

impl Tenant {
    pub fn server_notices(&self) -> ServerNotices<'_> {
        ServerNotices { tenant: self }
    }
}

impl ServerNotices<'_> {
    /// `POST /_synapse/admin/v1/send_server_notice` (`txn`: the `PUT …/{txnId}` form, by
    /// `admin`): the event sent, once per admin's transaction.
    pub async fn send(
        &self,
        target: &UserId,
        notice: Notice,
        txn: Option<(&AuthedUser, &TransactionId)>,
    ) -> Result<OwnedEventId> {
        if target.server_name() != self.tenant.server_name() {
            return Err(Error::Unknown(
                "Server notices can only be sent to local users".into(),
            ));
        }
        if self
            .tenant
            .store()
            .user(target.localpart())
            .await?
            .is_none()
        {
            return Err(Error::NotFound("User not found".into()));
        }
        let sender = self.system_account().await?;
        let room_id = self.room_for(target, &sender).await?;
        let draft = match &notice.state_key {
            Some(state_key) => {
                EventDraft::state(&notice.event_type, state_key, notice.content.into())
            }
            None => EventDraft::message(&notice.event_type, Value::Object(notice.content)),
        };
        // An admin's transaction ids are theirs: the device part names the admin's device.
        let device: Option<OwnedDeviceId> =
            txn.map(|(admin, _)| format!("{}/{}", admin.localpart, admin.device_id).into());
        let txn = txn
            .zip(device.as_deref())
            .map(|((_, txn_id), device_id)| Transaction {
                device_id,
                txn_id,
                endpoint: TxnEndpoint::Send,
            });
        let event_id = self
            .tenant
            .rooms()
            .send(&sender, &room_id, draft, txn)
            .await?;
        tracing::info!(%target, %event_id, "server notice sent");
        Ok(event_id)
    }

    /// The system account, made on first use.
    async fn system_account(&self) -> Result<OwnedUserId> {
        let user_id =
            crate::accounts::usernames::user_id(NOTICES_LOCALPART, self.tenant.server_name())?;
        let store = self.tenant.store();
        let existing = match store.user(NOTICES_LOCALPART).await? {
            Some(user) => user,
            None => {
                let account = UserRecord {
                    localpart: NOTICES_LOCALPART.to_owned(),
                    password_hash: None,
                    user_type: Some(SYSTEM_USER_TYPE.to_owned()),
                    created_ts: now_ms(),
                    ..UserRecord::default()
                };
                // Not counted against `max_users`: the tenant's users didn't ask for it.
                match store.insert_user(&account, None).await {
                    Ok(_) => {
                        tracing::info!(%user_id, "server notices account created");
                        return Ok(user_id);
                    }
                    // Made at the same time by another notice.
                    Err(StoreError::Conflict(_)) => store
                        .user(NOTICES_LOCALPART)
                        .await?
                        .ok_or_else(|| Error::Internal("server notices account vanished".into()))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if !is_system_account(&existing) {
            tracing::warn!(%user_id, "server notices are off: the localpart is a user's account");
            return Err(Error::Unknown(
                "Server notices are not enabled on this server".into(),
            ));
        }
        Ok(user_id)
    }

    /// The user's notice room: the remembered one while the user is in it or invited (and
    /// the system account is joined), else a new one.
    async fn room_for(&self, target: &UserId, sender: &UserId) -> Result<OwnedRoomId> {
        let _making = self.tenant.admin_state().notice_rooms.lock().await;
        let store = self.tenant.store();
        if let Some(room_id) = store.server_notice_room(target.localpart()).await?
            && let Ok(room_id) = RoomId::parse(&room_id)
            && self.usable(&room_id, target, sender).await?
        {
            return Ok(room_id);
        }
        let room_id = self.make_room(target, sender).await?;
        store
            .set_server_notice_room(target.localpart(), room_id.as_str())
            .await?;
        Ok(room_id)
    }

    async fn usable(&self, room_id: &RoomId, target: &UserId, sender: &UserId) -> Result<bool> {
        let store = self.tenant.store();
        let membership = async |user: &UserId| -> Result<Option<String>> {
            let record = store.membership(room_id.as_str(), user.as_str()).await?;
            Ok(record.map(|m| m.membership))
        };
        let target_in = matches!(
            membership(target).await?.as_deref(),
            Some("join" | "invite")
        );
        Ok(target_in && membership(sender).await?.as_deref() == Some("join"))
    }

    /// A private room of the system account, where users may not speak (Synapse's
    /// `users_default: -10`), tagged for the user, who is invited.
    async fn make_room(&self, target: &UserId, sender: &UserId) -> Result<OwnedRoomId> {
        let mut power_levels = Map::new();
        power_levels.insert("users_default".into(), json!(-10));
        let request = CreateRoom {
            preset: Some(Preset::PrivateChat),
            name: Some(ROOM_NAME.to_owned()),
            power_level_content_override: Some(power_levels),
            ..CreateRoom::default()
        };
        let rooms = self.tenant.rooms();
        let room_id = rooms.create(sender, request).await?;
        // The tag is the user's own account data, written on their behalf.
        let as_target = AuthedUser {
            user_id: target.to_owned(),
            localpart: target.localpart().to_owned(),
            device_id: OwnedDeviceId::from("server-notices"),
            admin: false,
            guest: false,
        };
        self.tenant
            .user_data()
            .set_tag(
                &as_target,
                target,
                &room_id,
                SERVER_NOTICE_TAG,
                Some(json!({})),
            )
            .await?;
        rooms.invite(sender, &room_id, target, None, false).await?;
        tracing::info!(%target, %room_id, "server notices room created");
        Ok(room_id)
    }
}

/// The system account as this module makes it; an account a person registered under the
/// localpart has a password (or is no `support` account) and is not one.
fn is_system_account(user: &UserRecord) -> bool {
    user.password_hash.is_none()
        && !user.deactivated
        && user.user_type.as_deref() == Some(SYSTEM_USER_TYPE)
}
