//! Any JSON through RFC 8785 canonicalisation: it returns, and canonical
//! JSON parsed and canonicalised again is the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(bytes) = shiplog_core::canonical::to_jcs(&value) {
        let back: serde_json::Value = serde_json::from_slice(&bytes).expect("canonical JSON parses");
        assert_eq!(shiplog_core::canonical::to_jcs(&back).ok(), Some(bytes), "canonical JSON is stable");
    }
});
