//! Filters (spec: "Filtering") as clients send them, inline or uploaded: anything that isn't
//! a filter is refused, never a panic; what parses keeps accepting and refusing events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_core::filter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = filter::parse(text) {
        let _ = parsed.room.timeline.accepts("m.room.message", "@a:b");
        let _ = parsed.room.accepts_room("!r:b");
    }
    if let Ok(room_filter) = filter::parse_room_event_filter(text) {
        let _ = room_filter.accepts("m.room.member", "@a:b");
    }
    if let Ok(value) = serde_json::from_str(text) {
        let _ = filter::validate(&value);
    }
});
