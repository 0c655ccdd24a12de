//! Given an event as a client sends it, when it is parsed at the edge, then
//! it is accepted into a named stream, or refused with the field at fault.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use shiplog_core::{Author, EventError, NewEvent};

fn base(kind: &str, data: Value) -> Value {
    json!({
        "id": "0192f0c4-1c2d-7a3b-9c4d-5e6f7a8b9c0d",
        "type": kind,
        "occurredAt": "2026-11-20T10:00:00Z",
        "actor": "u-1042",
        "source": "https://ci.example.com/runs/42",
        "data": data,
    })
}

fn with(mut event: Value, key: &str, value: Value) -> Value {
    event[key] = value;
    event
}

fn without(mut event: Value, key: &str) -> Value {
    event.as_object_mut().unwrap().remove(key);
    event
}

fn deployment() -> Value {
    json!({"deploymentId": "d-1", "service": "checkout", "environment": "production",
           "artifact": "sha256:abc", "version": "1.4.2", "strategy": "blue-green"})
}

enum Then {
    Stream(&'static str),
    Refused { field: &'static str, says: &'static str },
}

#[test]
fn events_are_parsed_at_the_edge() {
    use Then::*;
    let commit = json!({"repo": "shop/web", "sha": "A1B2C3D4E5F6", "author": "u-1", "authoredAt": "2026-11-19T08:00:00+01:00", "branch": "main"});
    let cases: Vec<(&str, Value, Then)> = vec![
        ("a commit lands in its repository's stream", base("commit.pushed", commit.clone()), Stream("repo/shop/web")),
        (
            "a deployment lands in deploy/service/environment",
            base("deployment.succeeded", deployment()),
            Stream("deploy/checkout/production"),
        ),
        (
            "a client-named stream is kept",
            with(base("deployment.succeeded", deployment()), "stream", json!("custom/stream")),
            Stream("custom/stream"),
        ),
        (
            "a change lands in change/repo/number",
            base("change.opened", json!({"repo": "shop/web", "number": 7, "author": "u-1"})),
            Stream("change/shop/web/7"),
        ),
        (
            "tests of an artifact land in the artifact's stream",
            base(
                "tests.finished",
                json!({"artifact": "sha256:abc", "suite": "unit", "kind": "unit", "passed": 10, "failed": 0, "skipped": 1, "outcome": "success"}),
            ),
            Stream("artifact/sha256:abc"),
        ),
        (
            "tests of a bare commit land in the commit's stream",
            base(
                "tests.finished",
                json!({"sha": "abcdef1", "suite": "unit", "kind": "unit", "passed": 10, "failed": 0, "skipped": 1, "outcome": "success"}),
            ),
            Stream("commit/abcdef1"),
        ),
        (
            "an incident lands in its own stream",
            base(
                "incident.opened",
                json!({"incidentId": "INC-7", "service": "checkout", "environment": "production", "severity": "sev2"}),
            ),
            Stream("incident/INC-7"),
        ),
        (
            "extra data fields are welcome",
            base(
                "flag.changed",
                json!({"flag": "new-cart", "environment": "production", "from": false, "to": true, "ticket": "OPS-1"}),
            ),
            Stream("flag/production/new-cart"),
        ),
        (
            "an unknown type lists the valid ones",
            base("deploy.done", json!({})),
            Refused { field: "type", says: "valid types are: commit.pushed, change.opened" },
        ),
        (
            "a server-only type is refused",
            base("decision.recorded", json!({})),
            Refused { field: "type", says: "written by the server only" },
        ),
        (
            "a missing data field is named",
            base("commit.pushed", json!({"repo": "shop/web", "sha": "abcdef1", "author": "u-1", "branch": "main"})),
            Refused { field: "data.authoredAt", says: "is missing" },
        ),
        (
            "a nested missing field is named with its path",
            base(
                "change.merged",
                json!({"repo": "r", "number": 1, "author": "a", "mergedBy": "b", "mergeSha": "abcdef1", "commits": [{"sha": "abcdef1"}]}),
            ),
            Refused { field: "data.commits[0].authoredAt", says: "is missing" },
        ),
        (
            "a malformed field is named",
            base("commit.pushed", with(commit.clone(), "sha", json!("not-a-sha"))),
            Refused { field: "data.sha", says: "hexadecimal commit SHA" },
        ),
        (
            "an enum field lists its values",
            base("deployment.succeeded", with(deployment(), "strategy", json!("yolo"))),
            Refused { field: "data.strategy", says: "blue-green" },
        ),
        (
            "the id must be a UUID",
            with(base("commit.pushed", commit.clone()), "id", json!("42")),
            Refused { field: "id", says: "must be a UUID" },
        ),
        (
            "occurredAt must be RFC 3339",
            with(base("commit.pushed", commit.clone()), "occurredAt", json!("yesterday")),
            Refused { field: "occurredAt", says: "RFC 3339" },
        ),
        (
            "a time past the year 9999 in UTC is refused",
            with(base("commit.pushed", commit.clone()), "occurredAt", json!("9999-12-31T23:59:59-01:00")),
            Refused { field: "occurredAt", says: "years 1 and 9999" },
        ),
        (
            "actor is required",
            without(base("commit.pushed", commit.clone()), "actor"),
            Refused { field: "actor", says: "missing field" },
        ),
        (
            "data must be an object",
            with(base("commit.pushed", commit.clone()), "data", json!([1])),
            Refused { field: "data", says: "must be an object, got an array" },
        ),
        (
            "a typo in the envelope is caught",
            with(base("commit.pushed", commit.clone()), "expectedversion", json!(3)),
            Refused { field: "expectedversion", says: "unknown field" },
        ),
        (
            "expectedVersion below -1 is refused",
            with(base("commit.pushed", commit.clone()), "expectedVersion", json!(-2)),
            Refused { field: "expectedVersion", says: "-1 (no stream yet)" },
        ),
        (
            "links need a UUID id",
            with(base("commit.pushed", commit.clone()), "links", json!([{"rel": "fixes", "id": "x"}])),
            Refused { field: "links[0].id", says: "UUID" },
        ),
        (
            "tests name an artifact or a sha",
            base(
                "tests.finished",
                json!({"suite": "unit", "kind": "unit", "passed": 1, "failed": 0, "skipped": 0, "outcome": "success"}),
            ),
            Refused { field: "data.artifact", says: "`artifact` or the `sha`" },
        ),
        (
            "canary error rate is a fraction",
            base(
                "canary.analyzed",
                json!({"deploymentId": "d", "errorRate": 3.5, "p95LatencyMs": 120, "verdict": "pass"}),
            ),
            Refused { field: "data.errorRate", says: "fraction between 0 and 1" },
        ),
        (
            "an empty service name is refused",
            base("deployment.succeeded", with(deployment(), "service", json!(""))),
            Refused { field: "data.service", says: "must not be empty" },
        ),
    ];

    for (name, input, then) in cases {
        let got = NewEvent::parse(input, Author::Client);
        match (then, got) {
            (Stream(want), Ok(event)) => assert_eq!(event.stream.as_str(), want, "{name}"),
            (Refused { field, says }, Err(err)) => {
                assert_eq!(err.field().as_deref(), Some(field), "{name}: {err}");
                assert!(err.to_string().contains(says), "{name}: {err:?} should say {says:?}");
            }
            (Stream(want), Err(err)) => panic!("{name}: expected stream {want}, refused: {err}"),
            (Refused { field, .. }, Ok(event)) => panic!("{name}: expected refusal on {field}, got {event:?}"),
        }
    }
}

#[test]
fn the_server_may_write_its_own_types() {
    let event = base(
        "decision.recorded",
        json!({"decisionId": "dec-1", "decision": "allow", "request": {}, "policySetHash": "abc"}),
    );
    let parsed = NewEvent::parse(event, Author::Server).unwrap();
    assert_eq!(parsed.stream.as_str(), "decisions");
}

#[test]
fn the_content_digest_ignores_key_order_and_expected_version() {
    let a = base("deployment.succeeded", deployment());
    let b: Value = serde_json::from_str(
        r#"{"data": {"version": "1.4.2", "strategy": "blue-green", "service": "checkout", "environment": "production", "deploymentId": "d-1", "artifact": "sha256:abc"},
            "actor": "u-1042", "occurredAt": "2026-11-20T11:00:00+01:00", "type": "deployment.succeeded",
            "source": "https://ci.example.com/runs/42", "id": "0192F0C4-1C2D-7A3B-9C4D-5E6F7A8B9C0D", "expectedVersion": 4}"#,
    )
    .unwrap();
    let c = with(a.clone(), "actor", json!("u-2"));
    let [a, b, c] = [a, b, c].map(|e| NewEvent::parse(e, Author::Client).unwrap().digest);
    assert_eq!(a, b, "same event, other spelling");
    assert_ne!(a, c, "another actor is another event");
}

#[test]
fn a_non_object_is_refused() {
    let err = NewEvent::parse(json!("hello"), Author::Client).unwrap_err();
    assert_eq!(err, EventError::NotAnObject("a string"));
}
