//! Any bytes as an event a client sends: parsing returns, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shiplog_core::{Author, NewEvent};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = NewEvent::parse(value.clone(), Author::Client);
        let _ = NewEvent::parse(value, Author::Server);
    }
});
