//! PDUs as another server sends them: parsing, event ids per room version, the auth rules
//! and signature verification must refuse what is malformed, never panic.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use libfuzzer_sys::fuzz_target;
use maas_core::rooms::auth;
use maas_core::rooms::pdu::{Pdu, event_id_of, room_id_from_create};
use maas_core::rooms::state::RoomState;
use ruma::{CanonicalJsonObject, CanonicalJsonValue, RoomId, RoomVersionId};

const VERSIONS: [RoomVersionId; 4] = [
    RoomVersionId::V1,
    RoomVersionId::V6,
    RoomVersionId::V11,
    RoomVersionId::V12,
];

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<CanonicalJsonObject>(data) else {
        return;
    };
    for version in VERSIONS {
        let Some(rules) = version.rules() else {
            continue;
        };
        let Ok(event_id) = event_id_of(&json, &rules) else {
            continue;
        };
        let room_id = match json.get("room_id") {
            Some(CanonicalJsonValue::String(id)) => RoomId::parse(id).ok(),
            _ => room_id_from_create(&event_id).ok(),
        };
        let Some(room_id) = room_id else {
            continue;
        };
        let Ok(pdu) = Pdu::from_json(event_id, &room_id, json.clone()) else {
            continue;
        };
        let _ = auth::check(&rules, &pdu, &RoomState::new(), &HashMap::new());
        let keys = BTreeMap::new();
        let _ = ruma::signatures::verify_event(&keys, &json, &rules);
    }
});
