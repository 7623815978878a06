//! Reports of events, rooms and users by the tenant's users, the rooms their server notices go
//! to (tables in the `administration` migration), and the few reads of other tables that only
//! the admin API makes (federation destinations, rooms by size).

use async_trait::async_trait;

use super::Result;

/// What a report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    /// An event (`event_id` and `room_id` set).
    Event,
    /// A room (`room_id` set).
    Room,
    /// A user (`target_user_id` set).
    User,
}

impl ReportKind {
    /// The stored name (`reports.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Event => "event",
            ReportKind::Room => "room",
            ReportKind::User => "user",
        }
    }

    /// The kind of a stored name.
    pub fn from_stored(name: &str) -> Option<Self> {
        match name {
            "event" => Some(ReportKind::Event),
            "room" => Some(ReportKind::Room),
            "user" => Some(ReportKind::User),
            _ => None,
        }
    }
}

/// A report as it is filed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReport {
    pub received_ts: i64,
    pub kind: ReportKind,
    pub room_id: Option<String>,
    pub event_id: Option<String>,
    pub target_user_id: Option<String>,
    /// The user ID of who filed it.
    pub reporter: String,
    pub reason: Option<String>,
    /// `-100` (most offensive) to `0`, as the client sent it (event reports).
    pub score: Option<i64>,
}

/// A stored report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRecord {
    pub report_id: i64,
    pub report: NewReport,
    /// The sender of the reported event while the event is stored (event reports).
    pub event_sender: Option<String>,
}

/// Which reports of one kind a listing wants, and which page of them. The `…_contains`
/// filters match a part of the ID (Synapse's `LIKE '%…%'`), case-sensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportQuery {
    pub kind: ReportKind,
    pub reporter_contains: Option<String>,
    pub room_contains: Option<String>,
    pub target_contains: Option<String>,
    /// The reported event's sender, exactly.
    pub event_sender: Option<String>,
    /// Most recent first.
    pub newest_first: bool,
    pub offset: u64,
    pub limit: u64,
}

/// A room's share of the database: the bytes of its events' JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSize {
    pub room_id: String,
    pub bytes: u64,
}

/// The local media one user uploaded (Synapse: "users' media usage statistics").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploaderUsage {
    /// The uploader's user ID.
    pub uploader: String,
    pub count: u64,
    pub bytes: u64,
}

/// A room shared with a destination server, and the stream position of its newest event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationRoom {
    pub room_id: String,
    pub stream: i64,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores a report; returns its id (ids only grow).
    async fn insert_report(&self, report: &NewReport) -> Result<i64>;
    async fn report(&self, kind: ReportKind, report_id: i64) -> Result<Option<ReportRecord>>;
    /// A page of the reports `query` selects, in filing order (reversed when `newest_first`),
    /// and how many it selects in all.
    async fn reports(&self, query: &ReportQuery) -> Result<(Vec<ReportRecord>, u64)>;
    /// Whether there was such a report.
    async fn delete_report(&self, kind: ReportKind, report_id: i64) -> Result<bool>;

    /// The room in which the user `localpart` receives server notices.
    async fn server_notice_room(&self, localpart: &str) -> Result<Option<String>>;
    /// Remembers (or replaces) the user's server notice room.
    async fn set_server_notice_room(&self, localpart: &str, room_id: &str) -> Result<()>;

    /// The servers this tenant knows from room memberships or has queued something for, in
    /// order (its own server name among them when it has members).
    async fn known_destinations(&self) -> Result<Vec<String>>;
    /// The rooms in which a user of `destination` is joined, by room id.
    async fn destination_rooms(&self, destination: &str) -> Result<Vec<DestinationRoom>>;
    /// Per uploader, the stored uploads created from `from_ts` until `until_ts` (inclusive),
    /// by uploader.
    async fn media_usage_by_uploader(
        &self,
        from_ts: i64,
        until_ts: Option<i64>,
    ) -> Result<Vec<UploaderUsage>>;
    /// The `limit` rooms whose events take the most bytes, largest first.
    async fn largest_rooms(&self, limit: u32) -> Result<Vec<RoomSize>>;
}
