//! Send-to-device messaging (spec: "Send-to-Device messaging"): messages queued per device,
//! delivered through sync and deleted once a later `since` acknowledges them.

use std::collections::BTreeMap;

use ruma::{OwnedServerName, UserId};
use serde_json::{Map, Value, json};

use super::{E2ee, parse_json};
use crate::accounts::AuthedUser;
use crate::store::{ToDeviceRecord, TxnRecord};
use crate::stream::Audience;
use crate::{Error, Result, secrets};

/// What the messages of one send share.
struct Message<'a> {
    stream: i64,
    sender: &'a UserId,
    event_type: &'a str,
}

/// Messages one sync carries at most; more wait for the next sync.
pub(crate) const MAX_PER_SYNC: u32 = 100;

impl E2ee<'_> {
    /// `PUT /sendToDevice/{eventType}/{txnId}`: `messages` maps user → device id (or `*`) →
    /// content. Idempotent per sending device and transaction id. Messages for users of other
    /// servers go to their servers (`m.direct_to_device` EDU).
    pub async fn send_to_device(
        &self,
        sender: &AuthedUser,
        event_type: &str,
        txn_id: &str,
        messages: &Map<String, Value>,
    ) -> Result<()> {
        let mut writer = self.tenant.stream().writer().await;
        let recipients = messages.keys().cloned().collect();
        let stream = writer.next_for(Audience::Users(recipients)).await?;
        let mut records = Vec::new();
        let mut remote: BTreeMap<OwnedServerName, Map<String, Value>> = BTreeMap::new();
        for (user_id, devices) in messages {
            let Ok(user) = UserId::parse(user_id.as_str()) else {
                return Err(Error::InvalidParam(format!("Invalid user id {user_id}")));
            };
            let Some(devices) = devices.as_object() else {
                return Err(Error::BadJson(
                    "messages must map devices to contents".into(),
                ));
            };
            if user.server_name() != self.tenant.server_name() {
                remote
                    .entry(user.server_name().to_owned())
                    .or_default()
                    .insert(user_id.clone(), Value::Object(devices.clone()));
                continue;
            }
            let message = Message {
                stream,
                sender: &sender.user_id,
                event_type,
            };
            records.extend(self.records_for(&message, &user, devices).await?);
        }
        let txn = TxnRecord {
            localpart: sender.localpart.clone(),
            device_id: sender.device_id.to_string(),
            // The path names the event type (spec: "Transaction identifiers").
            scope: serde_json::to_string(&["sendToDevice", event_type]).unwrap_or_default(),
            txn_id: txn_id.to_owned(),
        };
        let new = self.tenant.store().insert_to_device(&txn, &records).await?;
        writer.publish(stream);
        if new {
            for (server, messages) in remote {
                let content = json!({
                    "sender": sender.user_id,
                    "type": event_type,
                    "message_id": secrets::random_alphanumeric(24),
                    "messages": messages,
                });
                self.tenant
                    .sender()
                    .send_edu(self.tenant, &server, "m.direct_to_device", content)
                    .await?;
            }
        }
        Ok(())
    }

    /// Messages another server's user sent to our users (an `m.direct_to_device` EDU of
    /// `origin`); users of other servers and unknown devices are skipped.
    pub(crate) async fn receive_to_device(
        &self,
        sender: &UserId,
        event_type: &str,
        messages: &Map<String, Value>,
    ) -> Result<()> {
        let mut writer = self.tenant.stream().writer().await;
        let recipients = messages.keys().cloned().collect();
        let stream = writer.next_for(Audience::Users(recipients)).await?;
        let message = Message {
            stream,
            sender,
            event_type,
        };
        let mut records = Vec::new();
        for (user_id, devices) in messages {
            let (Ok(user), Some(devices)) = (UserId::parse(user_id.as_str()), devices.as_object())
            else {
                continue;
            };
            if user.server_name() == self.tenant.server_name() {
                records.extend(self.records_for(&message, &user, devices).await?);
            }
        }
        self.tenant
            .store()
            .insert_received_to_device(&records)
            .await?;
        writer.publish(stream);
        Ok(())
    }

    /// The stored form of a message to our `user`'s `devices` (ids, or `*` for all of them).
    async fn records_for(
        &self,
        message: &Message<'_>,
        user: &UserId,
        devices: &Map<String, Value>,
    ) -> Result<Vec<ToDeviceRecord>> {
        let known = self.tenant.store().devices(user.localpart()).await?;
        let mut records = Vec::new();
        for (device_id, content) in devices {
            let targets = known
                .iter()
                .filter(|d| device_id == "*" || d.device_id == *device_id);
            for target in targets {
                records.push(ToDeviceRecord {
                    localpart: user.localpart().to_owned(),
                    device_id: target.device_id.clone(),
                    stream: message.stream,
                    sender: message.sender.to_string(),
                    event_type: message.event_type.to_owned(),
                    content_json: content.to_string(),
                });
            }
        }
        Ok(records)
    }

    /// To-device events for a syncing device: acknowledges (deletes) what was delivered up to
    /// `since`, then returns what is pending up to `up_to`, and the position delivered up to.
    pub(crate) async fn to_device_for_sync(
        &self,
        user: &AuthedUser,
        since: Option<i64>,
        up_to: i64,
    ) -> Result<(Vec<Value>, i64)> {
        let store = self.tenant.store();
        let device = user.device_id.as_str();
        let mut messages = store
            .to_device_messages(&user.localpart, device, up_to, MAX_PER_SYNC + 1)
            .await?;
        // Messages come oldest first. Deleting only when some were delivered keeps the usual
        // sync (nothing to acknowledge) from taking the database's write lock.
        if let Some(since) = since
            && messages.first().is_some_and(|m| m.stream <= since)
        {
            store
                .delete_to_device(&user.localpart, device, since)
                .await?;
            messages = store
                .to_device_messages(&user.localpart, device, up_to, MAX_PER_SYNC + 1)
                .await?;
        }
        // Messages of one send share a position: never cut a position in half.
        let delivered_up_to = if messages.len() > MAX_PER_SYNC as usize {
            let cut = messages[MAX_PER_SYNC as usize].stream;
            cut - 1
        } else {
            up_to
        };
        let events = messages
            .into_iter()
            .filter(|m| m.stream <= delivered_up_to)
            .map(|m| {
                Ok(json!({
                    "type": m.event_type,
                    "sender": m.sender,
                    "content": parse_json(&m.content_json, "to-device content")?,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((events, delivered_up_to))
    }
}
