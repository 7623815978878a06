//! Per-user data (spec: Client-Server API, "Client config", "Receipts", "Fully read markers",
//! "Room tagging", "Filtering"): account data, receipts, read markers, tags and stored
//! filters. Every change takes a stream position so sync delivers it.

use ruma::{EventId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::accounts::{AuthedUser, usernames};
use crate::store::{AccountDataRecord, ReceiptRecord};
use crate::stream::Audience;
use crate::{Error, Result, Tenant, filter, now_ms};

/// Account data types the server manages itself; clients can't set them directly.
const SERVER_MANAGED: &[&str] = &["m.fully_read", "m.push_rules"];

pub struct UserData<'a> {
    tenant: &'a Tenant,
}

/// A receipt about to be stored.
struct Receipt<'a> {
    receipt_type: &'a str,
    event_id: &'a EventId,
    thread_id: Option<&'a str>,
    ts: i64,
}

impl Tenant {
    pub fn user_data(&self) -> UserData<'_> {
        UserData { tenant: self }
    }
}

fn ensure_self(user: &AuthedUser, target: &UserId) -> Result<()> {
    if user.user_id != target {
        return Err(Error::Forbidden("You can only access your own data".into()));
    }
    Ok(())
}

impl UserData<'_> {
    async fn ensure_in_room(&self, user: &UserId, room_id: &RoomId) -> Result<()> {
        let membership = self
            .tenant
            .store()
            .membership(room_id.as_str(), user.as_str())
            .await?;
        if membership.is_none_or(|m| m.membership != "join") {
            return Err(Error::Forbidden(format!("You are not joined to {room_id}")));
        }
        Ok(())
    }

    /// `PUT /user/{userId}/account_data/{type}` and the per-room variant.
    pub async fn set_account_data(
        &self,
        user: &AuthedUser,
        target: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
        content: Value,
    ) -> Result<()> {
        ensure_self(user, target)?;
        if SERVER_MANAGED.contains(&data_type) {
            return Err(Error::BadJson(format!(
                "Cannot set {data_type} through this API"
            )));
        }
        if !content.is_object() {
            return Err(Error::BadJson(
                "Account data content must be an object".into(),
            ));
        }
        if let Some(room_id) = room_id {
            self.ensure_known_room(room_id).await?;
        }
        self.store_account_data(&user.localpart, room_id, data_type, &content)
            .await
    }

    async fn ensure_known_room(&self, room_id: &RoomId) -> Result<()> {
        if self.tenant.store().room(room_id.as_str()).await?.is_none() {
            return Err(Error::NotFound("Room not found".into()));
        }
        Ok(())
    }

    async fn store_account_data(
        &self,
        localpart: &str,
        room_id: Option<&RoomId>,
        data_type: &str,
        content: &Value,
    ) -> Result<()> {
        let owner = usernames::user_id(localpart, self.tenant.server_name())?;
        let mut writer = self.tenant.stream().writer().await;
        let stream = writer
            .next_for(Audience::Users(vec![owner.to_string()]))
            .await?;
        let record = AccountDataRecord {
            localpart: localpart.to_owned(),
            room_id: room_id.map(|r| r.to_string()),
            data_type: data_type.to_owned(),
            content: content.to_string(),
            stream,
        };
        self.tenant.store().set_account_data(&record).await?;
        writer.publish(stream);
        Ok(())
    }

    /// `GET /user/{userId}/account_data/{type}` and the per-room variant.
    pub async fn account_data(
        &self,
        user: &AuthedUser,
        target: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
    ) -> Result<Value> {
        ensure_self(user, target)?;
        let room = room_id.map(|r| r.as_str());
        let record = self
            .tenant
            .store()
            .account_data(&user.localpart, room, data_type)
            .await?;
        let record = record.ok_or_else(|| Error::NotFound("Account data not found".into()))?;
        serde_json::from_str(&record.content)
            .map_err(|e| Error::Internal(format!("stored account data: {e}")))
    }

    /// `GET /user/{userId}/rooms/{roomId}/tags`.
    pub async fn tags(
        &self,
        user: &AuthedUser,
        target: &UserId,
        room_id: &RoomId,
    ) -> Result<Map<String, Value>> {
        ensure_self(user, target)?;
        let record = self
            .tenant
            .store()
            .account_data(&user.localpart, Some(room_id.as_str()), "m.tag")
            .await?;
        let content: Value = record
            .and_then(|r| serde_json::from_str(&r.content).ok())
            .unwrap_or_else(|| json!({ "tags": {} }));
        Ok(content
            .get("tags")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default())
    }

    /// `PUT` / `DELETE /user/{userId}/rooms/{roomId}/tags/{tag}` (`info: None` deletes).
    pub async fn set_tag(
        &self,
        user: &AuthedUser,
        target: &UserId,
        room_id: &RoomId,
        tag: &str,
        info: Option<Value>,
    ) -> Result<()> {
        let mut tags = self.tags(user, target, room_id).await?;
        match info {
            Some(info) if info.is_object() => {
                tags.insert(tag.to_owned(), info);
            }
            Some(_) => return Err(Error::BadJson("Tag info must be an object".into())),
            None => {
                tags.remove(tag);
            }
        }
        self.ensure_known_room(room_id).await?;
        self.store_account_data(
            &user.localpart,
            Some(room_id),
            "m.tag",
            &json!({ "tags": tags }),
        )
        .await
    }

    /// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`.
    pub async fn receipt(
        &self,
        user: &AuthedUser,
        room_id: &RoomId,
        receipt_type: &str,
        event_id: &EventId,
        thread_id: Option<&str>,
    ) -> Result<()> {
        self.ensure_in_room(&user.user_id, room_id).await?;
        if receipt_type == "m.fully_read" {
            return self.fully_read(user, room_id, event_id).await;
        }
        if !matches!(receipt_type, "m.read" | "m.read.private") {
            return Err(Error::InvalidParam(format!(
                "Unknown receipt type {receipt_type}"
            )));
        }
        self.ensure_event_in_room(room_id, event_id).await?;
        let receipt = Receipt {
            receipt_type,
            event_id,
            thread_id,
            ts: now_ms(),
        };
        let public = receipt_type == "m.read";
        let ts = receipt.ts;
        self.record_receipt(&user.user_id, room_id, receipt).await?;
        if public {
            // Private receipts stay on this server (spec: "Private read receipts").
            self.tell_other_servers(&user.user_id, room_id, event_id, thread_id, ts)
                .await;
        }
        Ok(())
    }

    /// Sends our user's read receipt to the room's other servers (`m.receipt` EDU).
    async fn tell_other_servers(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        event_id: &EventId,
        thread_id: Option<&str>,
        ts: i64,
    ) {
        let mut data = serde_json::json!({ "ts": ts });
        if let Some(thread_id) = thread_id {
            data["thread_id"] = serde_json::json!(thread_id);
        }
        let content = serde_json::json!({
            room_id.as_str(): {
                "m.read": {
                    user_id.as_str(): { "data": data, "event_ids": [event_id] },
                },
            },
        });
        if let Err(e) = self
            .tenant
            .sender()
            .send_edu_to_room(self.tenant, room_id, "m.receipt", content)
            .await
        {
            tracing::debug!(%room_id, error = %e, "receipt not sent to other servers");
        }
    }

    /// A read receipt another server sent for one of its users (`m.receipt` EDU), who must be
    /// joined to the room, for an event of the room.
    pub(crate) async fn remote_read_receipt(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        event_id: &EventId,
        thread_id: Option<&str>,
        ts: i64,
    ) -> Result<()> {
        self.ensure_in_room(user_id, room_id).await?;
        self.ensure_event_in_room(room_id, event_id).await?;
        let receipt = Receipt {
            receipt_type: "m.read",
            event_id,
            thread_id,
            ts,
        };
        self.record_receipt(user_id, room_id, receipt).await
    }

    /// Stores a receipt and tells the room's members.
    async fn record_receipt(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        receipt: Receipt<'_>,
    ) -> Result<()> {
        let mut writer = self.tenant.stream().writer().await;
        let audience = Audience::Room {
            room_id: room_id.to_string(),
            user: None,
        };
        let stream = writer.next_for(audience).await?;
        let record = ReceiptRecord {
            room_id: room_id.to_string(),
            user_id: user_id.to_string(),
            receipt_type: receipt.receipt_type.to_owned(),
            thread_id: receipt.thread_id.map(str::to_owned),
            event_id: receipt.event_id.to_string(),
            ts: receipt.ts,
            stream,
        };
        self.tenant.store().set_receipt(&record).await?;
        writer.publish(stream);
        Ok(())
    }

    async fn ensure_event_in_room(&self, room_id: &RoomId, event_id: &EventId) -> Result<()> {
        let event = self.tenant.store().event(event_id.as_str()).await?;
        if event.is_none_or(|e| e.room_id != room_id.as_str()) {
            return Err(Error::NotFound("Event not found in this room".into()));
        }
        Ok(())
    }

    /// The `m.fully_read` marker, as room account data.
    async fn fully_read(
        &self,
        user: &AuthedUser,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<()> {
        self.ensure_event_in_room(room_id, event_id).await?;
        let content = json!({ "event_id": event_id });
        self.store_account_data(&user.localpart, Some(room_id), "m.fully_read", &content)
            .await
    }

    /// `POST /rooms/{roomId}/read_markers`.
    pub async fn read_markers(
        &self,
        user: &AuthedUser,
        room_id: &RoomId,
        fully_read: Option<&EventId>,
        read: Option<&EventId>,
        read_private: Option<&EventId>,
    ) -> Result<()> {
        self.ensure_in_room(&user.user_id, room_id).await?;
        if let Some(event_id) = fully_read {
            self.fully_read(user, room_id, event_id).await?;
        }
        if let Some(event_id) = read {
            self.receipt(user, room_id, "m.read", event_id, None)
                .await?;
        }
        if let Some(event_id) = read_private {
            self.receipt(user, room_id, "m.read.private", event_id, None)
                .await?;
        }
        Ok(())
    }

    /// `POST /user/{userId}/filter`.
    pub async fn create_filter(
        &self,
        user: &AuthedUser,
        target: &UserId,
        definition: &Value,
    ) -> Result<String> {
        ensure_self(user, target)?;
        filter::validate(definition)?;
        Ok(self
            .tenant
            .store()
            .insert_filter(&user.localpart, &definition.to_string())
            .await?)
    }

    /// `GET /user/{userId}/filter/{filterId}`.
    pub async fn filter(
        &self,
        user: &AuthedUser,
        target: &UserId,
        filter_id: &str,
    ) -> Result<Value> {
        ensure_self(user, target)?;
        let stored = self
            .tenant
            .store()
            .filter(&user.localpart, filter_id)
            .await?;
        let stored = stored.ok_or_else(|| Error::NotFound("No such filter".into()))?;
        serde_json::from_str(&stored).map_err(|e| Error::Internal(format!("stored filter: {e}")))
    }

    /// A sync filter given inline (JSON) or by id.
    pub async fn sync_filter(
        &self,
        user: &AuthedUser,
        given: Option<&str>,
    ) -> Result<filter::Filter> {
        match given {
            None => Ok(filter::Filter::default()),
            Some(json) if json.trim_start().starts_with('{') => filter::parse(json),
            Some(id) => {
                let stored = self.tenant.store().filter(&user.localpart, id).await?;
                let stored = stored.ok_or_else(|| Error::NotFound("No such filter".into()))?;
                filter::parse(&stored)
            }
        }
    }
}
