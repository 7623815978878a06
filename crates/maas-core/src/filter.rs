//! Event filters (spec: Client-Server API, "Filtering"): the subset of the filter language the
//! server applies when building sync responses and message pages.

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// Timeline events per room in a sync unless a filter says otherwise.
pub const DEFAULT_TIMELINE_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 1000;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub room: RoomFilter,
    pub account_data: EventFilter,
    pub presence: EventFilter,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoomFilter {
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub include_leave: bool,
    pub timeline: RoomEventFilter,
    pub state: RoomEventFilter,
    pub ephemeral: RoomEventFilter,
    pub account_data: RoomEventFilter,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    pub limit: Option<u32>,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoomEventFilter {
    pub limit: Option<u32>,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub lazy_load_members: bool,
    pub include_redundant_members: bool,
}

/// Matches `value` against a filter pattern, where `*` stands for any run of characters.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            let Some(tail) = value.strip_prefix(prefix) else {
                return false;
            };
            if rest.is_empty() {
                return true;
            }
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

fn allowed(value: &str, only: &Option<Vec<String>>, not: &[String]) -> bool {
    if not.iter().any(|p| glob(p, value)) {
        return false;
    }
    only.as_ref()
        .is_none_or(|only| only.iter().any(|p| glob(p, value)))
}

impl RoomEventFilter {
    pub fn limit_or(&self, default: u32) -> u32 {
        self.limit.unwrap_or(default).clamp(1, MAX_LIMIT)
    }

    pub fn accepts(&self, event_type: &str, sender: &str) -> bool {
        allowed(event_type, &self.types, &self.not_types)
            && allowed(sender, &self.senders, &self.not_senders)
    }
}

impl EventFilter {
    pub fn accepts_type(&self, event_type: &str) -> bool {
        allowed(event_type, &self.types, &self.not_types)
    }
}

impl RoomFilter {
    pub fn accepts_room(&self, room_id: &str) -> bool {
        allowed(room_id, &self.rooms, &self.not_rooms)
    }
}

/// Parses a filter definition; bad shapes are the client's error.
pub fn parse(json: &str) -> Result<Filter> {
    serde_json::from_str(json).map_err(|e| Error::BadJson(format!("Invalid filter: {e}")))
}

pub fn parse_room_event_filter(json: &str) -> Result<RoomEventFilter> {
    serde_json::from_str(json).map_err(|e| Error::BadJson(format!("Invalid filter: {e}")))
}

/// Checks a filter definition a client uploads: a JSON object the filter language accepts.
pub fn validate(value: &Value) -> Result<()> {
    if !value.is_object() {
        return Err(Error::BadJson("A filter is a JSON object".into()));
    }
    serde_json::from_value::<Filter>(value.clone())
        .map(|_| ())
        .map_err(|e| Error::BadJson(format!("Invalid filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_spec() {
        assert!(glob("m.*", "m.room.message"));
        assert!(glob("m.room.message", "m.room.message"));
        assert!(!glob("m.room", "m.room.message"));
        assert!(glob("*.message", "m.room.message"));
    }

    #[test]
    fn not_types_win_over_types() {
        let f = RoomEventFilter {
            types: Some(vec!["m.*".into()]),
            not_types: vec!["m.room.member".into()],
            ..Default::default()
        };
        assert!(f.accepts("m.room.message", "@a:b"));
        assert!(!f.accepts("m.room.member", "@a:b"));
        assert!(!f.accepts("org.custom", "@a:b"));
    }
}
