//! The tenant's federation destinations as its admins see them (Synapse: "Federation API"):
//! the servers it shares rooms with or has something queued for, with the state of its
//! delivery to each (failures in a row and the wait before the next try, kept in memory by the
//! federation sender since the tenant loaded), the rooms it shares with each, and the reset of
//! a destination that keeps failing.

use std::cmp::Ordering;

use ruma::ServerName;

use crate::{Error, Result, Tenant};

/// One destination in Synapse's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationInfo {
    pub destination: String,
    /// When the last failed try was; 0 when the last try succeeded (or none was made).
    pub retry_last_ts: i64,
    /// Milliseconds from the last failed try to the next; 0 when not retrying.
    pub retry_interval: i64,
    /// When the failures in a row began; `None` while delivery succeeds.
    pub failure_ts: Option<i64>,
    /// The stream position of the newest PDU the destination took since the tenant loaded.
    pub last_successful_stream_ordering: Option<i64>,
}

/// What a destination listing sorts by (Synapse's `order_by`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DestinationOrder {
    #[default]
    Destination,
    RetryLastTs,
    RetryInterval,
    FailureTs,
    LastSuccessfulStreamOrdering,
}

/// A page of destinations by offset, in an order, filtered by a part of their names.
#[derive(Clone, Debug, Default)]
pub struct DestinationQuery {
    pub offset: u64,
    pub limit: u64,
    /// A part of the name, matched without case.
    pub name_contains: Option<String>,
    pub order: DestinationOrder,
    pub backwards: bool,
}

/// A room shared with a destination, and the stream position of its newest event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationRoomInfo {
    pub room_id: String,
    pub stream_ordering: i64,
}

pub struct Destinations<'a> {
    tenant: &'a Tenant,
}

impl Tenant {
    pub fn destinations(&self) -> Destinations<'_> {
        Destinations { tenant: self }
    }
}

impl Destinations<'_> {
    /// One page of the destinations `query` selects, and how many it selects.
    pub async fn list(&self, query: &DestinationQuery) -> Result<(Vec<DestinationInfo>, u64)> {
        let needle = query.name_contains.as_deref().map(str::to_lowercase);
        let mut all: Vec<DestinationInfo> = self
            .known()
            .await?
            .into_iter()
            .filter(|d| {
                needle
                    .as_deref()
                    .is_none_or(|n| d.to_lowercase().contains(n))
            })
            .map(|d| self.info(d))
            .collect();
        all.sort_by(|a, b| compare(a, b, query.order, query.backwards));
        let total = all.len() as u64;
        let page = all
            .into_iter()
            .skip(to_usize(query.offset))
            .take(to_usize(query.limit))
            .collect();
        Ok((page, total))
    }

    /// One destination; `None` when the tenant doesn't know it.
    pub async fn get(&self, destination: &str) -> Result<Option<DestinationInfo>> {
        let known = self.known().await?;
        Ok(known
            .into_iter()
            .find(|d| d == destination)
            .map(|d| self.info(d)))
    }

    /// A page of the rooms shared with a known destination, by room id (`backwards`:
    /// descending), and how many there are; `None` for an unknown destination.
    pub async fn rooms(
        &self,
        destination: &str,
        offset: u64,
        limit: u64,
        backwards: bool,
    ) -> Result<Option<(Vec<DestinationRoomInfo>, u64)>> {
        if self.get(destination).await?.is_none() {
            return Ok(None);
        }
        let mut rooms = self.tenant.store().destination_rooms(destination).await?;
        if backwards {
            rooms.reverse();
        }
        let total = rooms.len() as u64;
        let page = rooms
            .into_iter()
            .skip(to_usize(offset))
            .take(to_usize(limit))
            .map(|r| DestinationRoomInfo {
                room_id: r.room_id,
                stream_ordering: r.stream,
            })
            .collect();
        Ok(Some((page, total)))
    }

    /// Tries a failing destination again now (`404` for an unknown one, `400` for one whose
    /// delivery isn't failing).
    pub async fn reset(&self, destination: &str) -> Result<()> {
        let Some(info) = self.get(destination).await? else {
            return Err(Error::NotFound("Unknown destination".into()));
        };
        if info.retry_last_ts == 0 {
            return Err(Error::Unknown(
                "The retry timing does not need to be reset for this destination.".into(),
            ));
        }
        let name = ServerName::parse(destination)
            .map_err(|e| Error::Internal(format!("known destination {destination}: {e}")))?;
        self.tenant.sender().reset(self.tenant, &name);
        tracing::info!(%destination, "federation retry reset by an admin");
        Ok(())
    }

    /// Every destination the tenant knows, but itself.
    async fn known(&self) -> Result<Vec<String>> {
        let own = self.tenant.server_name().as_str();
        let mut known = self.tenant.store().known_destinations().await?;
        known.retain(|d| d != own && ServerName::parse(d).is_ok());
        Ok(known)
    }

    fn info(&self, destination: String) -> DestinationInfo {
        let status = ServerName::parse(&destination)
            .ok()
            .and_then(|name| self.tenant.sender().status(&name))
            .unwrap_or_default();
        DestinationInfo {
            destination,
            retry_last_ts: status.retry.retry_last_ts,
            retry_interval: status.retry.retry_interval,
            failure_ts: status.retry.failure_ts,
            last_successful_stream_ordering: status.last_sent_stream,
        }
    }
}

/// An offset or a page size as an index: past the end is an empty page.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Synapse's order: the column asked for (`NULL` after every value going forwards, as
/// PostgreSQL sorts), then the name ascending.
fn compare(
    a: &DestinationInfo,
    b: &DestinationInfo,
    order: DestinationOrder,
    backwards: bool,
) -> Ordering {
    let by_column = match order {
        DestinationOrder::Destination => a.destination.cmp(&b.destination),
        DestinationOrder::RetryLastTs => a.retry_last_ts.cmp(&b.retry_last_ts),
        DestinationOrder::RetryInterval => a.retry_interval.cmp(&b.retry_interval),
        DestinationOrder::FailureTs => nulls_last(a.failure_ts, b.failure_ts),
        DestinationOrder::LastSuccessfulStreamOrdering => nulls_last(
            a.last_successful_stream_ordering,
            b.last_successful_stream_ordering,
        ),
    };
    let by_column = if backwards {
        by_column.reverse()
    } else {
        by_column
    };
    by_column.then_with(|| a.destination.cmp(&b.destination))
}

fn nulls_last(a: Option<i64>, b: Option<i64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}
