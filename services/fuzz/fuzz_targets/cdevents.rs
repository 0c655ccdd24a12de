//! Any bytes as a CDEvent: validation and mapping return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shiplog_core::ingest::{NoLookup, cdevents};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(event) = cdevents::parse(value) {
            let _ = cdevents::to_ledger(&event, &NoLookup);
        }
    }
});
