//! The admin API's reads of the whole homeserver and its one switch (Synapse: "Fetch Event",
//! "Statistics", "Background Updates", "List all media in a room"): an event by id whatever
//! the room, the users' media usage, the rooms taking the most database space, the media a
//! room's events name, and background updates, which maas doesn't have (it migrates its
//! schema at start-up), reported as Synapse reports none running.

use std::cmp::Ordering;

use ruma::{EventId, RoomId};
use serde_json::{Map, Value, json};

use crate::store::{Direction, StreamRange};
use crate::{Error, Result, Tenant};

/// Rooms the database statistics name, as Synapse (its ten largest).
const LARGEST_ROOMS: u32 = 10;
/// Events read at once when looking through a room for media.
const EVENTS_PER_READ: u32 = 100;

/// What the users' media statistics sort by (Synapse's `order_by`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserMediaOrder {
    #[default]
    UserId,
    Displayname,
    MediaLength,
    MediaCount,
}

/// Which users' media a statistics page counts, and which page.
#[derive(Clone, Debug, Default)]
pub struct UserMediaQuery {
    pub offset: u64,
    pub limit: u64,
    /// Only media created at or after this time (ms).
    pub from_ts: i64,
    /// Only media created at or before this time (ms).
    pub until_ts: Option<i64>,
    /// A part of the user's localpart or display name.
    pub search_term: Option<String>,
    pub order: UserMediaOrder,
    pub backwards: bool,
}

/// One user's local media in Synapse's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserMediaUsage {
    pub user_id: String,
    pub displayname: Option<String>,
    pub media_count: u64,
    pub media_length: u64,
}

/// The `mxc://` URIs a room's events name, the tenant's own and other servers'.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomMedia {
    pub local: Vec<String>,
    pub remote: Vec<String>,
}

pub struct ServerAdmin<'a> {
    tenant: &'a Tenant,
}

impl Tenant {
    pub fn server_admin(&self) -> ServerAdmin<'_> {
        ServerAdmin { tenant: self }
    }
}

impl ServerAdmin<'_> {
    /// `GET /_synapse/admin/v1/fetch_event/{eventId}`: the event as stored (its redacted
    /// form once redacted), with its id, whatever room it is in.
    pub async fn event(&self, event_id: &EventId) -> Result<Value> {
        let not_found = || Error::NotFound("Event not found".into());
        let record = self
            .tenant
            .store()
            .event(event_id.as_str())
            .await?
            .ok_or_else(not_found)?;
        let mut pdu: Map<String, Value> = serde_json::from_str(&record.pdu)
            .map_err(|e| Error::Internal(format!("stored event {event_id}: {e}")))?;
        pdu.insert("event_id".into(), json!(record.event_id));
        // Synapse's raw format carries `unsigned.age_ts`: when the event was sent, here.
        let unsigned = pdu
            .entry("unsigned")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(unsigned) = unsigned {
            unsigned
                .entry("age_ts")
                .or_insert_with(|| json!(record.origin_server_ts));
        }
        Ok(Value::Object(pdu))
    }

    /// `GET /_synapse/admin/v1/statistics/users/media`: a page and how many users match.
    pub async fn users_media(&self, query: &UserMediaQuery) -> Result<(Vec<UserMediaUsage>, u64)> {
        if query.until_ts.is_some_and(|until| until <= query.from_ts) {
            return Err(Error::InvalidParam(
                "Query parameter until_ts must be greater than from_ts.".into(),
            ));
        }
        if query.search_term.as_deref() == Some("") {
            return Err(Error::InvalidParam(
                "Query parameter search_term cannot be an empty string.".into(),
            ));
        }
        let store = self.tenant.store();
        let usage = store
            .media_usage_by_uploader(query.from_ts, query.until_ts)
            .await?;
        let mut users = Vec::with_capacity(usage.len());
        for uploader in usage {
            let localpart = crate::accounts::usernames::local_part_of(
                &uploader.uploader,
                self.tenant.server_name(),
            );
            let displayname = match &localpart {
                Some(localpart) => store.user(localpart).await?.and_then(|u| u.displayname),
                None => None,
            };
            let found = query.search_term.as_deref().is_none_or(|term| {
                localpart.as_deref().is_some_and(|l| l.contains(term))
                    || displayname.as_deref().is_some_and(|d| d.contains(term))
            });
            if found {
                users.push(UserMediaUsage {
                    user_id: uploader.uploader,
                    displayname,
                    media_count: uploader.count,
                    media_length: uploader.bytes,
                });
            }
        }
        users.sort_by(|a, b| compare_usage(a, b, query.order, query.backwards));
        let total = users.len() as u64;
        let page = users
            .into_iter()
            .skip(to_usize(query.offset))
            .take(to_usize(query.limit))
            .collect();
        Ok((page, total))
    }

    /// `GET /_synapse/admin/v1/statistics/database/rooms`: the largest rooms, largest first,
    /// by the bytes of their events (Synapse estimates the same from PostgreSQL's statistics).
    pub async fn largest_rooms(&self) -> Result<Vec<(String, u64)>> {
        let rooms = self.tenant.store().largest_rooms(LARGEST_ROOMS).await?;
        Ok(rooms.into_iter().map(|r| (r.room_id, r.bytes)).collect())
    }

    /// `GET /_synapse/admin/v1/room/{roomId}/media`: the media URIs of the room's events
    /// (`content.url` and `content.info.thumbnail_url`), newest event first; none for a room
    /// the tenant doesn't know, as Synapse.
    pub async fn room_media(&self, room_id: &RoomId) -> Result<RoomMedia> {
        let store = self.tenant.store();
        let own = self.tenant.server_name().as_str();
        let mut media = RoomMedia::default();
        let mut up_to = i64::MAX;
        loop {
            // Backfilled history has positions below zero.
            let range = StreamRange {
                after: i64::MIN,
                up_to,
            };
            let events = store
                .room_events(
                    room_id.as_str(),
                    range,
                    Direction::Backward,
                    EVENTS_PER_READ,
                )
                .await?;
            let Some(oldest) = events.last().map(|e| e.stream) else {
                return Ok(media);
            };
            for event in &events {
                for (server, media_id) in mxc_uris(&event.pdu) {
                    let uri = format!("mxc://{server}/{media_id}");
                    if server == own {
                        media.local.push(uri);
                    } else {
                        media.remote.push(uri);
                    }
                }
            }
            up_to = oldest - 1;
        }
    }

    /// Whether background updates run (Synapse's switch; maas has none to run).
    pub fn background_updates_enabled(&self) -> bool {
        self.tenant.admin_state().background_updates_enabled()
    }

    pub fn set_background_updates_enabled(&self, enabled: bool) {
        self.tenant
            .admin_state()
            .set_background_updates_enabled(enabled);
        tracing::info!(enabled, "background updates switched by an admin");
    }
}

/// The `(server, media id)` pairs of a stored PDU's `content.url` and
/// `content.info.thumbnail_url`.
fn mxc_uris(pdu: &str) -> Vec<(String, String)> {
    let content = serde_json::from_str::<Value>(pdu)
        .ok()
        .and_then(|pdu| pdu.get("content").cloned())
        .unwrap_or(Value::Null);
    let thumbnail = content
        .get("info")
        .and_then(|info| info.get("thumbnail_url"));
    [content.get("url"), thumbnail]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(parse_mxc)
        .collect()
}

/// Synapse's `MXC_REGEX`: `mxc://<server>/<media id>`, both parts non-empty.
fn parse_mxc(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("mxc://")?;
    let (server, media_id) = rest.split_once('/')?;
    (!server.is_empty() && !media_id.is_empty()).then(|| (server.to_owned(), media_id.to_owned()))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Synapse's order of the statistics, then the user id so that pages are stable.
fn compare_usage(
    a: &UserMediaUsage,
    b: &UserMediaUsage,
    order: UserMediaOrder,
    backwards: bool,
) -> Ordering {
    let by_column = match order {
        UserMediaOrder::UserId => a.user_id.cmp(&b.user_id),
        UserMediaOrder::Displayname => match (&a.displayname, &b.displayname) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
        UserMediaOrder::MediaLength => a.media_length.cmp(&b.media_length),
        UserMediaOrder::MediaCount => a.media_count.cmp(&b.media_count),
    };
    let by_column = if backwards {
        by_column.reverse()
    } else {
        by_column
    };
    by_column.then_with(|| a.user_id.cmp(&b.user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_uris_are_found_in_url_and_thumbnail() {
        let pdu =
            r#"{"content":{"url":"mxc://a.test/one","info":{"thumbnail_url":"mxc://b.test/two"}}}"#;
        assert_eq!(
            mxc_uris(pdu),
            [
                ("a.test".to_owned(), "one".to_owned()),
                ("b.test".to_owned(), "two".to_owned())
            ]
        );
        for pdu in [
            r#"{"content":{"url":"https://a.test/one"}}"#,
            r#"{"content":{"url":"mxc://a.test/"}}"#,
            r#"{"content":{"url":5,"info":"x"}}"#,
            r#"{}"#,
        ] {
            assert!(mxc_uris(pdu).is_empty(), "{pdu}");
        }
    }
}
