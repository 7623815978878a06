//! Redacting a user's events in bulk (Synapse: `redact_all_events`): an admin task that
//! redacts the user's messages, encrypted messages and joins, room by room, newest first,
//! and records the events it could not redact with why.

use std::collections::BTreeMap;

use ruma::{OwnedEventId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::admin::RoomAdmin;
use super::tasks::{AdminTask, TaskRun, run_later};
use super::{EventDraft, not_joined};
use crate::store::EventRecord;
use crate::{Error, Result, Tenant};

/// Synapse's action name of the task.
pub const REDACT_ALL_EVENTS: &str = "redact_all_events";

/// What Synapse redacts of a user (of their memberships, only joins).
const REDACTED_TYPES: [&str; 3] = ["m.room.member", "m.room.message", "m.room.encrypted"];

/// The user's events looked at per room when the admin sets no limit (Synapse's default).
const DEFAULT_LIMIT: u32 = 1000;

/// What an admin asks of a user's redaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRedaction {
    /// The rooms to redact in; none: every room the user is joined to or banned from.
    pub rooms: Vec<String>,
    /// Given to every redaction.
    pub reason: Option<String>,
    /// The user's newest events looked at per room.
    pub limit: Option<u32>,
    /// The admin redacts even a local user's events (who otherwise redacts their own).
    pub use_admin: bool,
    /// Only events sent at or after this time (ms).
    pub after_ts: Option<i64>,
    /// Only events sent at or before this time (ms).
    pub before_ts: Option<i64>,
}

/// What a redaction task did so far: the events it could not redact, with the error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionOutcome {
    pub failed_redactions: BTreeMap<String, String>,
}

impl RoomAdmin<'_> {
    /// `POST /_synapse/admin/v1/user/{userId}/redact`: starts redacting `user`'s events in the
    /// background; returns the task's id.
    pub async fn start_user_redaction(
        &self,
        requester: &UserId,
        user: &UserId,
        redaction: UserRedaction,
    ) -> Result<String> {
        let rooms = if redaction.rooms.is_empty() {
            self.rooms_to_redact_in(user).await?
        } else {
            redaction.rooms
        };
        let params = json!({
            "user_id": user,
            "requester_user_id": requester,
            "rooms": rooms,
            "reason": redaction.reason,
            "limit": redaction.limit,
            "use_admin": redaction.use_admin,
            "after_ts": redaction.after_ts,
            "before_ts": redaction.before_ts,
        });
        let record = self
            .new_task(REDACT_ALL_EVENTS, user.as_str(), params, None)
            .await?;
        let id = record.task_id.clone();
        tokio::spawn(run_later(self.tenant.downgrade(), record));
        tracing::info!(%user, redact_id = %id, admin = %requester, "redaction of a user's events started");
        Ok(id)
    }

    /// A redaction task by id (`GET /_synapse/admin/v1/user/redact_status/{redactId}`).
    pub async fn user_redaction(&self, id: &str) -> Result<Option<AdminTask>> {
        let task = self.task(id).await?;
        Ok(task.filter(|t| t.action == REDACT_ALL_EVENTS))
    }

    /// The rooms the user is joined to or banned from (Synapse's choice for "all rooms").
    async fn rooms_to_redact_in(&self, user: &UserId) -> Result<Vec<String>> {
        let memberships = self
            .tenant
            .store()
            .memberships_of_user(user.as_str())
            .await?;
        Ok(memberships
            .into_iter()
            .filter(|m| matches!(m.membership.as_str(), "join" | "ban"))
            .map(|m| m.room_id)
            .collect())
    }
}

/// Runs a redaction task; a resumed one starts again from its outcome so far (events
/// redacted already are not found again).
pub(super) async fn redact_all_events(run: &mut TaskRun<'_>) -> Result<Option<Value>> {
    let params = run.params();
    let job = Job::from_params(&params)?;
    let mut outcome: RedactionOutcome = run
        .result()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    let rooms: Vec<String> = params
        .get("rooms")
        .and_then(Value::as_array)
        .map(|rooms| {
            rooms
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for room in rooms {
        let Ok(room_id) = RoomId::parse(&room) else {
            // Not a room id: it has none of the user's events.
            continue;
        };
        for event in job.events_in(run.tenant(), &room_id).await? {
            let event_id = event.event_id.clone();
            match job.redact(run.tenant(), &room_id, &event).await {
                Ok(()) => {
                    if outcome.failed_redactions.remove(&event_id).is_none() {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::info!(%room_id, %event_id, error = %e, "an event of a user not redacted");
                    outcome.failed_redactions.insert(event_id, e.to_string());
                }
            }
            run.progress(&outcome).await?;
        }
    }
    let result = serde_json::to_value(&outcome)
        .map_err(|e| Error::Internal(format!("redaction result: {e}")))?;
    Ok(Some(result))
}

/// A redaction task's parameters, read back.
struct Job {
    user: ruma::OwnedUserId,
    requester: ruma::OwnedUserId,
    reason: Option<String>,
    limit: u32,
    use_admin: bool,
    after_ts: Option<i64>,
    before_ts: Option<i64>,
}

impl Job {
    fn from_params(params: &Value) -> Result<Self> {
        let user_of = |key: &str| {
            params
                .get(key)
                .and_then(Value::as_str)
                .and_then(|u| UserId::parse(u).ok())
                .ok_or_else(|| Error::Internal(format!("redaction task without {key}")))
        };
        let limit = params
            .get("limit")
            .and_then(Value::as_u64)
            .and_then(|l| u32::try_from(l).ok())
            .filter(|l| *l > 0)
            .unwrap_or(DEFAULT_LIMIT);
        Ok(Self {
            user: user_of("user_id")?,
            requester: user_of("requester_user_id")?,
            reason: params
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
            limit,
            use_admin: params.get("use_admin").and_then(Value::as_bool) == Some(true),
            after_ts: params.get("after_ts").and_then(Value::as_i64),
            before_ts: params.get("before_ts").and_then(Value::as_i64),
        })
    }

    /// The user's events of the room to redact, newest first.
    async fn events_in(&self, tenant: &Tenant, room_id: &RoomId) -> Result<Vec<EventRecord>> {
        let store = tenant.store();
        let ids = store
            .unredacted_events_of_sender(
                room_id.as_str(),
                self.user.as_str(),
                &REDACTED_TYPES,
                (self.after_ts, self.before_ts),
                self.limit,
            )
            .await?;
        let mut events = store.events(&ids).await?;
        events.retain(is_redacted_kind);
        events.sort_by_key(|e| std::cmp::Reverse(e.stream));
        Ok(events)
    }

    /// Sends the event's redaction: a local user redacts their own events while still joined
    /// (as Synapse puppets them); otherwise, or when asked, the requesting admin does, which
    /// the room's power levels must allow.
    async fn redact(&self, tenant: &Tenant, room_id: &RoomId, event: &EventRecord) -> Result<()> {
        let event_id = OwnedEventId::try_from(event.event_id.as_str())
            .map_err(|e| Error::Internal(format!("stored event id {}: {e}", event.event_id)))?;
        let mut content = Map::new();
        // Room versions 11 and later read `redacts` in the content, older ones at the top.
        content.insert("redacts".into(), Value::String(event_id.to_string()));
        if let Some(reason) = &self.reason {
            content.insert("reason".into(), Value::String(reason.clone()));
        }
        let mut draft = EventDraft::message("m.room.redaction", Value::Object(content));
        draft.redacts = Some(event_id);
        let puppet = !self.use_admin
            && self.user.server_name() == tenant.server_name()
            && is_joined(tenant, room_id, &self.user).await?;
        let sender = if puppet { &self.user } else { &self.requester };
        send_unthrottled(tenant, sender, room_id, draft).await
    }
}

/// Of a user's memberships, only joins are redacted (their profile data in the room).
fn is_redacted_kind(event: &EventRecord) -> bool {
    if event.event_type != "m.room.member" {
        return true;
    }
    let pdu: Value = serde_json::from_str(&event.pdu).unwrap_or_default();
    pdu.pointer("/content/membership").and_then(Value::as_str) == Some("join")
}

async fn is_joined(tenant: &Tenant, room_id: &RoomId, user: &UserId) -> Result<bool> {
    let membership = tenant
        .store()
        .membership(room_id.as_str(), user.as_str())
        .await?;
    Ok(membership.is_some_and(|m| m.membership == "join"))
}

/// Sends an admin's redaction through the pipeline (the auth rules and the power to redact
/// apply), without the rate limits and quotas of a user's own sends: Synapse sends these
/// unthrottled, and a shadow-ban or suspension of the puppeted user must not drop them.
async fn send_unthrottled(
    tenant: &Tenant,
    sender: &UserId,
    room_id: &RoomId,
    draft: EventDraft,
) -> Result<()> {
    let rooms = tenant.rooms();
    let mut writer = tenant.room_locks().lock(room_id).await;
    let joined = match tenant.room_heads().get(tenant, &writer).await {
        Ok((head, _)) => head.is_joined(sender),
        Err(Error::NotFound(_)) => false,
        Err(other) => return Err(other),
    };
    if !joined {
        return Err(not_joined(room_id));
    }
    rooms.append(&mut writer, sender, draft, None).await?;
    writer.finish().await
}
