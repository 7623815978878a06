//! Canonical JSON (spec: appendices, "Canonical JSON"), what every PDU is hashed and signed
//! over: any input that parses must serialise to a form that parses back to the same value,
//! and serialising that again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruma::CanonicalJsonValue;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<CanonicalJsonValue>(data) else {
        return;
    };
    let once = value.to_string();
    let again: CanonicalJsonValue = serde_json::from_str(&once).expect("canonical form parses");
    assert_eq!(again, value);
    assert_eq!(again.to_string(), once, "the canonical form is a fixed point");
    if let CanonicalJsonValue::Object(object) = &value {
        assert_eq!(maas_core::rooms::pdu::canonical_json(object), once);
    }
});
