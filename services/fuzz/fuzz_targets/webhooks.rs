//! Any bytes as a GitHub or GitLab delivery of any kind (the first byte
//! picks it): the mappings return, never panic.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use shiplog_core::ingest::{NoLookup, github, gitlab};


fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let _ = github::verify_signature(b"secret", rest, std::str::from_utf8(rest).ok());
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
    let Some(now) = chrono::Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).single() else { return };
    let i = usize::from(pick);
    if i % 2 == 0 {
        let _ = github::map(github::EVENTS[(i / 2) % github::EVENTS.len()], &value, now, &NoLookup);
    } else {
        let _ = gitlab::map(gitlab::HOOKS[(i / 2) % gitlab::HOOKS.len()], &value, now, &NoLookup);
    }
});
