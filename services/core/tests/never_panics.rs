//! Property tests: whatever a client, a CI tool or a webhook sends, parsing
//! and mapping it return a value or an error, never a panic. Inputs are
//! arbitrary JSON built from the field names and values these parsers look
//! for (so that they reach deep), and real payloads with parts replaced by
//! arbitrary JSON.
//!
//! Run longer with `PROPTEST_CASES=100000 cargo test -p shiplog-core --test never_panics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shiplog_core::ingest::{NoLookup, cdevents, github, gitlab};
use shiplog_core::{Author, NewEvent};

const KEYS: &[&str] = &[
    "id",
    "type",
    "occurredAt",
    "actor",
    "source",
    "stream",
    "expectedVersion",
    "data",
    "links",
    "repo",
    "sha",
    "author",
    "authoredAt",
    "branch",
    "number",
    "commits",
    "service",
    "environment",
    "artifact",
    "version",
    "deploymentId",
    "context",
    "subject",
    "content",
    "specversion",
    "version",
    "timestamp",
    "customData",
    "shiplog",
    "artifactId",
    "repository",
    "full_name",
    "name",
    "pull_request",
    "merged",
    "merge_commit_sha",
    "head",
    "ref",
    "user",
    "login",
    "review",
    "state",
    "workflow_run",
    "head_sha",
    "conclusion",
    "run_attempt",
    "deployment",
    "deployment_status",
    "payload",
    "workflow_job_runs",
    "release",
    "tag_name",
    "object_attributes",
    "project",
    "path_with_namespace",
    "iid",
    "action",
    "status",
    "commit_url",
    "last_commit",
    "timestamp",
    "outcome",
    "testSuite",
    "pipelineName",
    "check_suite",
    "app",
    "slug",
    "approver",
    "links",
    "rel",
    "mergeSha",
    "mergedBy",
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "x",
    "2026-11-20T10:00:00Z",
    "2026-11-05 11:00:00 UTC",
    "2026-11-05 13:00:00 +0100",
    "not a time",
    "0.5.1",
    "0.4.1",
    "0.3.0",
    "dev.cdevents.service.deployed.0.3.0",
    "dev.cdevents.service.rolledback.0.3.0",
    "dev.cdevents.change.merged.0.3.0",
    "dev.cdevents.incident.detected.0.3.0",
    "dev.cdeventsx.tool-thing.happened.0.1.0",
    "dev.cdevents.",
    "deployment.succeeded",
    "commit.pushed",
    "change.merged",
    "cdevent.received",
    "refs/heads/main",
    "refs/tags/v1",
    "3333333333333333333333333333333333333333",
    "abc1234",
    "acme/payments",
    "success",
    "failure",
    "approved",
    "merge",
    "open",
    "production",
    "pkg:oci/app@sha256%3Aab",
    "pkg:%zz@%",
    "/event/source/123",
    "00000000-0000-0000-0000-000000000000",
    "é\u{0}\u{1f}",
    "https://example.org/a b",
];

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        "\\PC{0,40}".prop_map(Value::String),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<String, Value>>())
            }),
        ]
    })
}

fn fixture(dir: &str, name: &str) -> Value {
    let path = format!("{}/../../tests/fixtures/{dir}/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `base` with the value at one of its paths (chosen by `pick`) replaced by
/// `with`.
fn mutate(base: &Value, pick: usize, with: Value) -> Value {
    fn paths(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    here.push(k.clone());
                    paths(c, here, out);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    here.push(i.to_string());
                    paths(c, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    paths(base, &mut Vec::new(), &mut all);
    let path = &all[pick % all.len()];
    let mut out = base.clone();
    let pointer: String = path.iter().map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1"))).collect();
    if let Some(slot) = out.pointer_mut(&pointer) {
        *slot = with;
    }
    out
}

fn received() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
}

const GITHUB_FIXTURES: &[(&str, &str)] = &[
    ("push", "push"),
    ("pull_request", "pull_request.opened"),
    ("pull_request", "pull_request.closed"),
    ("pull_request_review", "pull_request_review.submitted"),
    ("workflow_run", "workflow_run.completed"),
    ("check_suite", "check_suite.completed"),
    ("deployment", "deployment.created"),
    ("deployment_status", "deployment_status.created"),
    ("deployment_review", "deployment_review.approved"),
    ("release", "release.published"),
];
const GITLAB_FIXTURES: &[(&str, &str)] = &[
    ("Push Hook", "push"),
    ("Merge Request Hook", "merge_request.open"),
    ("Merge Request Hook", "merge_request.merge"),
    ("Pipeline Hook", "pipeline"),
    ("Deployment Hook", "deployment.success"),
];
const CDEVENTS: &[&str] = &[
    "service_deployed",
    "service_rolledback",
    "change_merged",
    "incident_detected",
    "artifact_published",
    "testsuiterun_finished",
    "ticket_created",
    "build_finished",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn event_parsing(v in arb_json()) {
        let _ = NewEvent::parse(v.clone(), Author::Client);
        let _ = NewEvent::parse(v, Author::Server);
    }

    #[test]
    fn event_parsing_of_altered_events(pick in any::<usize>(), with in arb_json()) {
        let base = json!({"id": "0192e4a0-0000-7000-8000-000000000001", "type": "change.merged",
            "occurredAt": "2026-11-20T10:00:00Z", "actor": "u-1", "source": "https://ci",
            "data": {"repo": "a/b", "number": 3, "author": "x", "mergedBy": "y", "mergeSha": "abc1234",
                     "commits": [{"sha": "abc1234", "authoredAt": "2026-11-20T09:00:00Z"}]},
            "links": [{"rel": "fixes", "id": "0192e4a0-0000-7000-8000-000000000002"}]});
        let _ = NewEvent::parse(mutate(&base, pick, with), Author::Client);
    }

    #[test]
    fn cdevents(v in arb_json()) {
        if let Ok(ev) = cdevents::parse(v) {
            let _ = cdevents::to_ledger(&ev, &NoLookup);
        }
    }

    #[test]
    fn cdevents_altered(which in 0..CDEVENTS.len(), pick in any::<usize>(), with in arb_json()) {
        let v = mutate(&fixture("cdevents", CDEVENTS[which]), pick, with);
        if let Ok(ev) = cdevents::parse(v) {
            let _ = cdevents::to_ledger(&ev, &NoLookup);
        }
    }

    #[test]
    fn github(event in prop::sample::select(github::EVENTS), v in arb_json()) {
        let _ = github::map(event, &v, received(), &NoLookup);
    }

    #[test]
    fn github_altered(which in 0..GITHUB_FIXTURES.len(), pick in any::<usize>(), with in arb_json()) {
        let (event, name) = GITHUB_FIXTURES[which];
        let _ = github::map(event, &mutate(&fixture("github", name), pick, with), received(), &NoLookup);
    }

    #[test]
    fn github_signatures(secret in any::<Vec<u8>>(), body in any::<Vec<u8>>(), header in "\\PC{0,80}") {
        let _ = github::verify_signature(&secret, &body, Some(&header));
        prop_assert!(github::verify_signature(&secret, &body, Some(&github::sign(&secret, &body))).is_ok());
    }

    #[test]
    fn gitlab_altered(which in 0..GITLAB_FIXTURES.len(), pick in any::<usize>(), with in arb_json()) {
        let (kind, name) = GITLAB_FIXTURES[which];
        let _ = gitlab::map(kind, &mutate(&fixture("gitlab", name), pick, with), received(), &NoLookup);
    }

    #[test]
    fn canonical_json_is_stable(v in arb_json()) {
        // RFC 8785: canonical twice is canonical once, and parses back to
        // the same value.
        if let Ok(bytes) = shiplog_core::canonical::to_jcs(&v) {
            let back: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(shiplog_core::canonical::to_jcs(&back).unwrap(), bytes);
        }
    }
}
