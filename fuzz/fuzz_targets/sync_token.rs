//! Sync tokens (`s<position>`) come back from clients in `since`, `from`, `to` and `at`:
//! anything else is refused; a token the server wrote reads back as its position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_core::sync::{parse_token, token};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(position) = parse_token(text) {
        assert_eq!(parse_token(&token(position)).ok(), Some(position));
    }
});
