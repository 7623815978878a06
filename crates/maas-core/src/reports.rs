//! Reports (spec: Client-Server API, "Reporting content"): users report an event they can see,
//! a room, or a user to the tenant's admins, who list, read and delete them (Synapse: "Event
//! Reports API", "User Reports API"). Filed reports keep what Synapse keeps.

use ruma::events::StateEventType;
use ruma::{EventId, RoomId, UserId};
use serde_json::Value;

use crate::accounts::AuthedUser;
use crate::config::Bucket;
use crate::store::{NewReport, ReportKind, ReportQuery, ReportRecord};
use crate::{Error, Result, Tenant, now_ms};

/// Room and user reports a user may file (Synapse's `rc_reports`: one a second, five at once).
const REPORTS_PER_USER: Bucket = Bucket {
    per_second: 1.0,
    burst: 5,
};

/// The longest reason of a user report, in characters (Synapse refuses longer ones).
const MAX_USER_REPORT_REASON: usize = 1000;

/// An event report as admins list it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventReport {
    pub id: i64,
    pub received_ts: i64,
    pub room_id: String,
    pub event_id: String,
    /// Who filed it.
    pub user_id: String,
    pub reason: Option<String>,
    pub score: Option<i64>,
    /// The reported event's sender, while the event is stored.
    pub sender: Option<String>,
    /// The room's current canonical alias and name, while the room is known.
    pub canonical_alias: Option<String>,
    pub name: Option<String>,
}

/// A user report as admins read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserReport {
    pub id: i64,
    pub received_ts: i64,
    pub target_user_id: String,
    /// Who filed it.
    pub user_id: String,
    pub reason: Option<String>,
}

/// One page of a listing, and how many reports the listing selects in all.
#[derive(Clone, Debug)]
pub struct ReportPage<T> {
    pub reports: Vec<T>,
    pub total: u64,
}

/// What an admin asks of a listing: a page by offset, an order, and filters (the reporter's
/// and the room's or target's ID by a part of it, the event's sender exactly).
#[derive(Clone, Debug, Default)]
pub struct ReportListing {
    pub offset: u64,
    pub limit: u64,
    pub newest_first: bool,
    pub reporter: Option<String>,
    /// Event reports: a part of the room ID. User reports: a part of the target's ID.
    pub subject: Option<String>,
    /// Event reports only: the reported event's sender.
    pub event_sender: Option<String>,
}

pub struct Reports<'a> {
    tenant: &'a Tenant,
}

impl<'a> Reports<'a> {
    pub(crate) fn new(tenant: &'a Tenant) -> Self {
        Self { tenant }
    }

    /// `POST /rooms/{roomId}/report/{eventId}`: the event must exist, not be redacted, and be
    /// visible to the reporter; `404` otherwise, whichever it is.
    pub async fn report_event(
        &self,
        user: &AuthedUser,
        room_id: &RoomId,
        event_id: &EventId,
        reason: Option<String>,
        score: Option<i64>,
    ) -> Result<()> {
        let hidden = || {
            Error::NotFound(
                "Unable to report event: it does not exist or you aren't able to see it.".into(),
            )
        };
        let event = match self
            .tenant
            .rooms()
            .visible_event(&user.user_id, room_id, event_id)
            .await
        {
            Ok(event) => event,
            Err(Error::NotFound(_) | Error::Forbidden(_)) => return Err(hidden()),
            Err(e) => return Err(e),
        };
        if event.redacted_by.is_some() {
            return Err(hidden());
        }
        let report = NewReport {
            received_ts: now_ms(),
            kind: ReportKind::Event,
            room_id: Some(room_id.to_string()),
            event_id: Some(event_id.to_string()),
            target_user_id: None,
            reporter: user.user_id.to_string(),
            reason,
            score,
        };
        let id = self.tenant.store().insert_report(&report).await?;
        tracing::info!(report_id = id, %room_id, %event_id, "event reported");
        Ok(())
    }

    /// `POST /rooms/{roomId}/report`: any room the server knows, whether or not the reporter
    /// is in it; `404` for one it doesn't.
    pub async fn report_room(
        &self,
        user: &AuthedUser,
        room_id: &RoomId,
        reason: String,
    ) -> Result<()> {
        self.check_limit(user)?;
        if self.tenant.store().room(room_id.as_str()).await?.is_none() {
            return Err(Error::NotFound("Room does not exist".into()));
        }
        let report = NewReport {
            received_ts: now_ms(),
            kind: ReportKind::Room,
            room_id: Some(room_id.to_string()),
            event_id: None,
            target_user_id: None,
            reporter: user.user_id.to_string(),
            reason: Some(reason),
            score: None,
        };
        let id = self.tenant.store().insert_report(&report).await?;
        tracing::info!(report_id = id, %room_id, "room reported");
        Ok(())
    }

    /// `POST /users/{userId}/report`. A user of another server or one that doesn't exist is
    /// accepted and nothing is stored, as Synapse does, so that the answer tells nothing about
    /// who exists.
    pub async fn report_user(
        &self,
        user: &AuthedUser,
        target: &UserId,
        reason: String,
    ) -> Result<()> {
        self.check_limit(user)?;
        if reason.chars().count() > MAX_USER_REPORT_REASON {
            return Err(Error::BadJson(
                "Reason must be less than 1000 characters".into(),
            ));
        }
        if target.server_name() != self.tenant.server_name() {
            return Ok(());
        }
        if self
            .tenant
            .store()
            .user(target.localpart())
            .await?
            .is_none()
        {
            return Ok(());
        }
        let report = NewReport {
            received_ts: now_ms(),
            kind: ReportKind::User,
            room_id: None,
            event_id: None,
            target_user_id: Some(target.to_string()),
            reporter: user.user_id.to_string(),
            reason: Some(reason),
            score: None,
        };
        let id = self.tenant.store().insert_report(&report).await?;
        tracing::info!(report_id = id, %target, "user reported");
        Ok(())
    }

    fn check_limit(&self, user: &AuthedUser) -> Result<()> {
        let key = format!("{}/report/{}", self.tenant.id(), user.localpart);
        self.tenant.limiter().take(&key, REPORTS_PER_USER)
    }

    /// A page of the event reports `listing` selects.
    pub async fn event_reports(&self, listing: &ReportListing) -> Result<ReportPage<EventReport>> {
        let query = ReportQuery {
            kind: ReportKind::Event,
            reporter_contains: listing.reporter.clone(),
            room_contains: listing.subject.clone(),
            target_contains: None,
            event_sender: listing.event_sender.clone(),
            newest_first: listing.newest_first,
            offset: listing.offset,
            limit: listing.limit,
        };
        let (records, total) = self.tenant.store().reports(&query).await?;
        let mut reports = Vec::with_capacity(records.len());
        for record in records {
            reports.push(self.event_report_of(record).await?);
        }
        Ok(ReportPage { reports, total })
    }

    /// An event report with the reported event as stored (`None` once it is gone).
    pub async fn event_report(&self, id: i64) -> Result<Option<(EventReport, Option<Value>)>> {
        let store = self.tenant.store();
        let Some(record) = store.report(ReportKind::Event, id).await? else {
            return Ok(None);
        };
        let event_id = record.report.event_id.clone().unwrap_or_default();
        let event_json = match store.event(&event_id).await? {
            Some(event) => Some(serde_json::from_str(&event.pdu).map_err(|e| {
                Error::Internal(format!("stored event {event_id} is not JSON: {e}"))
            })?),
            None => None,
        };
        Ok(Some((self.event_report_of(record).await?, event_json)))
    }

    pub async fn delete_event_report(&self, id: i64) -> Result<bool> {
        let deleted = self
            .tenant
            .store()
            .delete_report(ReportKind::Event, id)
            .await?;
        if deleted {
            tracing::info!(report_id = id, "event report deleted by an admin");
        }
        Ok(deleted)
    }

    /// A page of the user reports `listing` selects.
    pub async fn user_reports(&self, listing: &ReportListing) -> Result<ReportPage<UserReport>> {
        let query = ReportQuery {
            kind: ReportKind::User,
            reporter_contains: listing.reporter.clone(),
            room_contains: None,
            target_contains: listing.subject.clone(),
            event_sender: None,
            newest_first: listing.newest_first,
            offset: listing.offset,
            limit: listing.limit,
        };
        let (records, total) = self.tenant.store().reports(&query).await?;
        let reports = records.into_iter().map(user_report_of).collect();
        Ok(ReportPage { reports, total })
    }

    pub async fn user_report(&self, id: i64) -> Result<Option<UserReport>> {
        let record = self.tenant.store().report(ReportKind::User, id).await?;
        Ok(record.map(user_report_of))
    }

    pub async fn delete_user_report(&self, id: i64) -> Result<bool> {
        let deleted = self
            .tenant
            .store()
            .delete_report(ReportKind::User, id)
            .await?;
        if deleted {
            tracing::info!(report_id = id, "user report deleted by an admin");
        }
        Ok(deleted)
    }

    async fn event_report_of(&self, record: ReportRecord) -> Result<EventReport> {
        let report = record.report;
        let room_id = report.room_id.unwrap_or_default();
        let (name, canonical_alias) = self.room_labels(&room_id).await?;
        Ok(EventReport {
            id: record.report_id,
            received_ts: report.received_ts,
            event_id: report.event_id.unwrap_or_default(),
            user_id: report.reporter,
            reason: report.reason,
            score: report.score,
            sender: record.event_sender,
            canonical_alias,
            name,
            room_id,
        })
    }

    /// The current name and canonical alias of a room; none for a room not known (purged).
    async fn room_labels(&self, room_id: &str) -> Result<(Option<String>, Option<String>)> {
        let store = self.tenant.store();
        let Some(room) = store.room(room_id).await? else {
            return Ok((None, None));
        };
        let cache = self.tenant.state_cache();
        let state = cache.group(store, room.state_group).await?;
        let field = async |kind: StateEventType, key: &str| -> Result<Option<String>> {
            let Some(id) = state.get(&(kind, String::new())) else {
                return Ok(None);
            };
            let content = cache.pdu(store, id).await?.map(|p| p.content_value());
            Ok(content.and_then(|c| c.get(key).and_then(Value::as_str).map(str::to_owned)))
        };
        let name = field(StateEventType::RoomName, "name").await?;
        let alias = field(StateEventType::RoomCanonicalAlias, "alias").await?;
        Ok((name, alias))
    }
}

fn user_report_of(record: ReportRecord) -> UserReport {
    let report = record.report;
    UserReport {
        id: record.report_id,
        received_ts: report.received_ts,
        target_user_id: report.target_user_id.unwrap_or_default(),
        user_id: report.reporter,
        reason: report.reason,
    }
}
