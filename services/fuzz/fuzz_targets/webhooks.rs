//! Any bytes as a GitHub or GitLab delivery of any kind (the first byte
//! picks it): the mappings return, never panic.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use shiplog_core::ingest::{NoLookup, github, gitlab};

const GITHUB: &[&str] = &[
    "push",
    "pull_request",
    "pull_request_review",
    "workflow_run",
    "check_suite",
    "deployment",
    "deployment_status",
    "deployment_review",
    "release",
    "ping",
];
const GITLAB: &[&str] = &["Push Hook", "Merge Request Hook", "Pipeline Hook", "Deployment Hook"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let _ = github::verify_signature(b"secret", rest, std::str::from_utf8(rest).ok());
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
    let Some(now) = chrono::Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).single() else { return };
    let i = usize::from(pick);
    if i % 2 == 0 {
        let _ = github::map(GITHUB[(i / 2) % GITHUB.len()], &value, now, &NoLookup);
    } else {
        let _ = gitlab::map(GITLAB[(i / 2) % GITLAB.len()], &value, now, &NoLookup);
    }
});
