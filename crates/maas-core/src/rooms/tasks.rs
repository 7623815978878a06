//! Long admin operations on rooms (Synapse: scheduled tasks): deleting a room (its shutdown,
//! then its purge), purging a forgotten room, purging a room's history. Each is an
//! `admin_tasks` row, so its status outlives a restart, and runs in a task of its own on the
//! tenant. A restart (the tenant loading again) that finds a task `scheduled` or `active`
//! runs it again from its start: every step can be repeated, and a deletion's result so far
//! tells which members were handled already.

use std::time::Duration;

use ruma::{OwnedEventId, OwnedRoomId, RoomId, UserId};
use serde::Serialize;
use serde_json::{Value, json};

use super::Direction;
use super::admin::RoomAdmin;
use super::purge::{self, Purged, RoomPurge};
use super::redact_user::{self, REDACT_ALL_EVENTS};
use super::shutdown::{self, RoomDeletion, ShutdownOutcome};
use crate::store::{AdminTaskFilter, AdminTaskRecord};
use crate::tenants::WeakTenant;
use crate::{Error, Result, Tenant, now_ms, secrets};

/// Synapse's action names, which clients filter tasks by.
pub const SHUTDOWN_AND_PURGE_ROOM: &str = "shutdown_and_purge_room";
pub const PURGE_ROOM: &str = "purge_room";
pub const PURGE_HISTORY: &str = "purge_history";

/// The statuses a task can be filtered by: Synapse's, `cancelled` included (no task of
/// maas is ever cancelled, so it selects none).
const STATUSES: [&str; 5] = ["scheduled", "active", "complete", "cancelled", "failed"];

/// How long finished tasks are kept (Synapse keeps them a week).
const KEEP_FINISHED: Duration = Duration::from_secs(7 * 24 * 3600);

/// A task as the admin API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminTask {
    pub id: String,
    pub action: String,
    /// `scheduled`, `active`, `complete` or `failed`.
    pub status: String,
    /// When its status last changed.
    pub timestamp_ms: i64,
    pub resource_id: String,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// Which tasks to list (`GET /_synapse/admin/v1/scheduled_tasks`).
#[derive(Clone, Debug, Default)]
pub struct TaskQuery {
    pub action: Option<String>,
    pub resource_id: Option<String>,
    pub status: Option<String>,
    pub max_timestamp: Option<i64>,
}

/// Where a history purge stops: before this event (and the others at its depth), or before
/// the last event sent before this time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurgePoint {
    Event(OwnedEventId),
    Timestamp(i64),
}

impl RoomAdmin<'_> {
    /// The tenant's tasks `query` selects, oldest first.
    pub async fn tasks(&self, query: &TaskQuery) -> Result<Vec<AdminTask>> {
        if let Some(status) = &query.status
            && !STATUSES.contains(&status.as_str())
        {
            return Err(Error::InvalidParam(format!(
                "Query parameter \"status\" must be one of {STATUSES:?}"
            )));
        }
        let filter = AdminTaskFilter {
            actions: query.action.iter().cloned().collect(),
            resource_id: query.resource_id.clone(),
            statuses: query.status.iter().cloned().collect(),
            max_timestamp: query.max_timestamp,
        };
        let records = self.tenant.store().admin_tasks(&filter).await?;
        Ok(records.into_iter().map(task_of).collect())
    }

    /// One task by id.
    pub async fn task(&self, id: &str) -> Result<Option<AdminTask>> {
        Ok(self.tenant.store().admin_task(id).await?.map(task_of))
    }

    /// The deletions (and purges) of a room, oldest first.
    pub async fn deletions_of(&self, room_id: &RoomId) -> Result<Vec<AdminTask>> {
        let records = self.deletion_records(room_id, &[]).await?;
        Ok(records.into_iter().map(task_of).collect())
    }

    /// `DELETE /_synapse/admin/v2/rooms/{roomId}`: starts the room's deletion in the
    /// background; returns its id.
    pub async fn start_deletion(
        &self,
        requester: &UserId,
        room_id: &RoomId,
        deletion: RoomDeletion,
    ) -> Result<String> {
        self.check_deletion(room_id, &deletion).await?;
        let record = self
            .new_task(
                SHUTDOWN_AND_PURGE_ROOM,
                room_id,
                deletion.params(requester),
                None,
            )
            .await?;
        let id = record.task_id.clone();
        tokio::spawn(run_later(self.tenant.downgrade(), record));
        tracing::info!(%room_id, delete_id = %id, admin = %requester, "room deletion started");
        Ok(id)
    }

    /// `DELETE /_synapse/admin/v1/rooms/{roomId}`: deletes the room before answering (recorded
    /// as a task too, so that other work on the room sees it).
    pub async fn delete_now(
        &self,
        requester: &UserId,
        room_id: &RoomId,
        deletion: RoomDeletion,
    ) -> Result<ShutdownOutcome> {
        self.check_deletion(room_id, &deletion).await?;
        let record = self
            .new_task(
                SHUTDOWN_AND_PURGE_ROOM,
                room_id,
                deletion.params(requester),
                None,
            )
            .await?;
        tracing::info!(%room_id, admin = %requester, "room deletion started");
        let mut run = TaskRun {
            tenant: self.tenant,
            record,
        };
        if let Err(e) = delete_room(&mut run).await {
            run.finish(Err(e.to_string())).await?;
            return Err(e);
        }
        let result = run.record.result.clone();
        run.finish(Ok(None)).await?;
        Ok(result
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default())
    }

    /// `POST /_synapse/admin/v1/purge_history/{roomId}`: starts purging the room's history
    /// before `point` in the background; returns the purge's id.
    pub async fn start_history_purge(
        &self,
        room_id: &str,
        point: PurgePoint,
        delete_local_events: bool,
    ) -> Result<String> {
        let depth = self.purge_depth(room_id, &point).await?;
        // An event was found in it: the room id is one.
        let room_id = RoomId::parse(room_id)
            .map_err(|_| Error::NotFound("there is no event to be purged".into()))?;
        let room_id = &*room_id;
        let params = json!({
            "before_depth": depth,
            "delete_local_events": delete_local_events,
        });
        let record = self.new_task(PURGE_HISTORY, room_id, params, None).await?;
        let id = record.task_id.clone();
        tokio::spawn(run_later(self.tenant.downgrade(), record));
        tracing::info!(%room_id, purge_id = %id, "history purge started");
        Ok(id)
    }

    /// The depth a history purge stops at (Synapse: the topological part of its token).
    async fn purge_depth(&self, room_id: &str, point: &PurgePoint) -> Result<i64> {
        let store = self.tenant.store();
        match point {
            PurgePoint::Event(event_id) => {
                let event = store
                    .event(event_id.as_str())
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("Could not find event {event_id}")))?;
                if event.room_id != room_id {
                    return Err(Error::Unknown("Event is for wrong room.".into()));
                }
                Ok(event.depth)
            }
            PurgePoint::Timestamp(ts) => {
                let before = ts.saturating_sub(1);
                let event = store
                    .event_by_timestamp(room_id, before, Direction::Backward)
                    .await?;
                event
                    .map(|e| e.depth)
                    .ok_or_else(|| Error::NotFound("there is no event to be purged".into()))
            }
        }
    }

    /// Refuses a deletion while another is under way, or for a new room's creator of another
    /// server (Synapse's checks before it starts, in its order).
    async fn check_deletion(&self, room_id: &RoomId, deletion: &RoomDeletion) -> Result<()> {
        let active = self.deletion_records(room_id, &["active"]).await?;
        if !active.is_empty() {
            return Err(Error::Unknown(format!(
                "Purge already in progress for {room_id}"
            )));
        }
        if let Some(user) = &deletion.new_room_user_id
            && user.server_name() != self.tenant.server_name()
        {
            return Err(Error::Unknown(format!("User must be our own: {user}")));
        }
        Ok(())
    }

    async fn deletion_records(
        &self,
        room_id: &RoomId,
        statuses: &[&str],
    ) -> Result<Vec<AdminTaskRecord>> {
        let filter = AdminTaskFilter {
            actions: vec![PURGE_ROOM.into(), SHUTDOWN_AND_PURGE_ROOM.into()],
            resource_id: Some(room_id.to_string()),
            statuses: statuses.iter().map(|s| (*s).to_owned()).collect(),
            max_timestamp: None,
        };
        Ok(self.tenant.store().admin_tasks(&filter).await?)
    }

    /// Records a new task, `active` from the start (it starts at once) or `scheduled` to start
    /// at `due`, and lets tasks that ended long ago go.
    pub(super) async fn new_task(
        &self,
        action: &str,
        resource_id: &(impl AsRef<str> + ?Sized),
        params: Value,
        due: Option<i64>,
    ) -> Result<AdminTaskRecord> {
        let now = now_ms();
        let store = self.tenant.store();
        let keep_ms = i64::try_from(KEEP_FINISHED.as_millis()).unwrap_or(i64::MAX);
        store.prune_admin_tasks(now.saturating_sub(keep_ms)).await?;
        let record = AdminTaskRecord {
            task_id: secrets::random_alphanumeric(16),
            action: action.to_owned(),
            resource_id: resource_id.as_ref().to_owned(),
            status: if due.is_some() { "scheduled" } else { "active" }.into(),
            params: params.to_string(),
            result: None,
            error: None,
            created_ts: now,
            updated_ts: due.unwrap_or(now),
        };
        store.insert_admin_task(&record).await?;
        Ok(record)
    }
}

/// A task being run, and its record as stored.
pub(crate) struct TaskRun<'t> {
    tenant: &'t Tenant,
    record: AdminTaskRecord,
}

impl<'t> TaskRun<'t> {
    pub(super) fn tenant(&self) -> &'t Tenant {
        self.tenant
    }

    /// What the task stored as its result so far.
    pub(super) fn result(&self) -> Option<Value> {
        let result = self.record.result.as_deref()?;
        serde_json::from_str(result).ok()
    }

    pub(super) fn params(&self) -> Value {
        serde_json::from_str(&self.record.params).unwrap_or_default()
    }

    /// The room the task works on.
    fn room_id(&self) -> Result<OwnedRoomId> {
        RoomId::parse(&self.record.resource_id)
            .map_err(|_| Error::Internal(format!("task for {}", self.record.resource_id)))
    }

    /// Stores what the task did so far.
    pub(crate) async fn progress(&mut self, result: &impl Serialize) -> Result<()> {
        self.record.result = Some(
            serde_json::to_string(result)
                .map_err(|e| Error::Internal(format!("task result: {e}")))?,
        );
        self.record.updated_ts = now_ms();
        self.tenant.touch();
        Ok(self.tenant.store().update_admin_task(&self.record).await?)
    }

    /// Stores how the task ended: `complete` (with `result` when it has a new one) or
    /// `failed` with the error.
    async fn finish(mut self, outcome: std::result::Result<Option<Value>, String>) -> Result<()> {
        match outcome {
            Ok(result) => {
                self.record.status = "complete".into();
                if let Some(result) = result {
                    self.record.result = Some(result.to_string());
                }
            }
            Err(error) => {
                tracing::warn!(
                    task_id = %self.record.task_id,
                    action = %self.record.action,
                    room_id = %self.record.resource_id,
                    %error,
                    "admin task failed"
                );
                self.record.status = "failed".into();
                self.record.error = Some(error);
            }
        }
        self.record.updated_ts = now_ms();
        Ok(self.tenant.store().update_admin_task(&self.record).await?)
    }
}

/// Runs the tasks a previous run of the tenant left unfinished, in the background.
pub(crate) fn resume(tenant: &Tenant) {
    let weak = tenant.downgrade();
    tokio::spawn(async move {
        let Some(tenant) = weak.upgrade() else {
            return;
        };
        let filter = AdminTaskFilter {
            statuses: vec!["scheduled".into(), "active".into()],
            ..AdminTaskFilter::default()
        };
        let unfinished = match tenant.store().admin_tasks(&filter).await {
            Ok(tasks) => tasks,
            Err(e) => {
                tracing::warn!(error = %e, "unfinished admin tasks not read");
                return;
            }
        };
        for record in unfinished {
            tracing::info!(task_id = %record.task_id, action = %record.action, "admin task resumed");
            tokio::spawn(run_later(weak.clone(), record));
        }
    });
}

/// Schedules the purge of a room its last local member left, unless an admin deals with the
/// room, a purge of it is pending already, or a local user is in it again.
pub(crate) async fn schedule_forget(tenant: &Tenant, room_id: &RoomId) -> Result<()> {
    let settings = tenant.settings().rooms;
    if !settings.forget_empty_rooms {
        return Ok(());
    }
    let admin = tenant.rooms().admin();
    let tasks = admin.deletion_records(room_id, &[]).await?;
    let pending = |t: &AdminTaskRecord| matches!(t.status.as_str(), "scheduled" | "active");
    if tasks
        .iter()
        .any(|t| t.action == SHUTDOWN_AND_PURGE_ROOM || pending(t))
    {
        return Ok(());
    }
    if !purge::is_left_by_local_users(tenant, room_id).await? {
        return Ok(());
    }
    let delay_ms = settings.forget_empty_rooms_after_secs.saturating_mul(1000);
    let due = now_ms().saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
    let params = json!({ "force": false, "forgotten": true });
    let record = admin
        .new_task(PURGE_ROOM, room_id, params, Some(due))
        .await?;
    tracing::info!(%room_id, task_id = %record.task_id, due, "purge of a room its users left scheduled");
    tokio::spawn(run_later(tenant.downgrade(), record));
    Ok(())
}

/// Runs a task once it is due (a scheduled one's `updated_ts` is when), as its stored record
/// says then; a task that ended meanwhile (run by another start of the tenant) is left alone.
pub(super) async fn run_later(tenant: WeakTenant, record: AdminTaskRecord) {
    if record.status == "scheduled" {
        let wait = u64::try_from(record.updated_ts.saturating_sub(now_ms())).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let Some(tenant) = tenant.upgrade() else {
        return;
    };
    let current = match tenant.store().admin_task(&record.task_id).await {
        Ok(Some(current)) if matches!(current.status.as_str(), "scheduled" | "active") => current,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(task_id = %record.task_id, error = %e, "an admin task not read");
            return;
        }
    };
    if let Err(e) = run(&tenant, current).await {
        tracing::warn!(error = %e, "an admin task's status not stored");
    }
}

/// Runs a task to its end and stores how it ended.
async fn run(tenant: &Tenant, mut record: AdminTaskRecord) -> Result<()> {
    if record.status != "active" {
        record.status = "active".into();
        record.updated_ts = now_ms();
        tenant.store().update_admin_task(&record).await?;
    }
    let mut run = TaskRun { tenant, record };
    let outcome = match run.record.action.as_str() {
        SHUTDOWN_AND_PURGE_ROOM => delete_room(&mut run).await.map(|()| None),
        PURGE_ROOM => purge_forgotten(&run).await.map(|()| None),
        PURGE_HISTORY => purge_history(&run).await.map(|()| None),
        REDACT_ALL_EVENTS => redact_user::redact_all_events(&mut run).await,
        other => Err(Error::Internal(format!("unknown task action {other}"))),
    };
    run.finish(outcome.map_err(|e| e.to_string())).await
}

/// A room's deletion: its shutdown, then (unless told not to) its purge.
async fn delete_room(run: &mut TaskRun<'_>) -> Result<()> {
    let room_id = run.room_id()?;
    let params = run.params();
    let deletion = RoomDeletion::from_params(&params);
    let requester = params
        .get("requester_user_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut outcome: ShutdownOutcome = run
        .record
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default();
    run.progress(&outcome).await?;
    let tenant = run.tenant;
    shutdown::shut_down(tenant, &room_id, &requester, &deletion, &mut outcome, run).await?;
    if deletion.purge {
        let how = RoomPurge::Admin {
            force: deletion.force_purge,
        };
        purge::purge_room(tenant, &room_id, how).await?;
    }
    Ok(())
}

/// A room's purge: one its users left (which goes only if nothing changed that), or an
/// admin's.
async fn purge_forgotten(run: &TaskRun<'_>) -> Result<()> {
    let room_id = run.room_id()?;
    let force = run.params().get("force").and_then(Value::as_bool) == Some(true);
    let forgotten = run.params().get("forgotten").and_then(Value::as_bool) == Some(true);
    if !forgotten {
        purge::purge_room(run.tenant, &room_id, RoomPurge::Admin { force }).await?;
        return Ok(());
    }
    // The operator turned it off, or an admin's deletion decided about the room, meanwhile.
    if !run.tenant.settings().rooms.forget_empty_rooms {
        return Ok(());
    }
    let admin = run.tenant.rooms().admin();
    let tasks = admin.deletion_records(&room_id, &[]).await?;
    if tasks.iter().any(|t| t.action == SHUTDOWN_AND_PURGE_ROOM) {
        return Ok(());
    }
    if purge::purge_room(run.tenant, &room_id, RoomPurge::Forgotten).await? == Purged::Nothing {
        tracing::info!(%room_id, "a room its users left was kept: one of them is in it again");
    }
    Ok(())
}

async fn purge_history(run: &TaskRun<'_>) -> Result<()> {
    let room_id = run.room_id()?;
    let params = run.params();
    let depth = params
        .get("before_depth")
        .and_then(Value::as_i64)
        .ok_or_else(|| Error::Internal("Not enough parameters passed to _purge_history".into()))?;
    let delete_local = params.get("delete_local_events").and_then(Value::as_bool) == Some(true);
    purge::purge_history(run.tenant, &room_id, depth, delete_local).await?;
    Ok(())
}

fn task_of(record: AdminTaskRecord) -> AdminTask {
    AdminTask {
        result: record
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
        id: record.task_id,
        action: record.action,
        status: record.status,
        timestamp_ms: record.updated_ts,
        resource_id: record.resource_id,
        error: record.error,
    }
}
