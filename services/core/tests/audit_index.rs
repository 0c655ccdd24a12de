//! The audit index: search with filters and pages, decisions, and the chain
//! of evidence from a commit (trace) or a deployment, on one small history
//! where every event has a label.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use shiplog_core::index::{DecisionFilter, EventFilter, LedgerIndex};
use shiplog_core::{EventData, EventType, RecordedEvent};

const SHA: &str = "aaaaaaa1";
const MERGE: &str = "bbbbbbb2";
const OTHER: &str = "ccccccc3";
const ART: &str = "sha256:1111";
const ART2: &str = "sha256:2222";

fn history() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let svc = |extra: Value| {
        let mut d = json!({"service": "checkout", "environment": "production"});
        d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        d
    };
    vec![
        (
            "push",
            "commit.pushed",
            "u-1",
            json!({"repo": "shop", "sha": SHA, "author": "u-1", "authoredAt": "2026-01-05T08:00:00Z", "branch": "feature"}),
        ),
        (
            "push-other",
            "commit.pushed",
            "u-2",
            json!({"repo": "shop", "sha": OTHER, "author": "u-2", "authoredAt": "2026-01-05T08:00:00Z", "branch": "x"}),
        ),
        ("opened", "change.opened", "u-1", json!({"repo": "shop", "number": 7, "author": "u-1"})),
        (
            "reviewed",
            "change.reviewed",
            "u-2",
            json!({"repo": "shop", "number": 7, "reviewer": "u-2", "state": "approved"}),
        ),
        (
            "merged",
            "change.merged",
            "u-2",
            json!({"repo": "shop", "number": 7, "author": "u-1", "mergedBy": "u-2", "mergeSha": MERGE,
            "commits": [{"sha": SHA, "authoredAt": "2026-01-05T08:00:00Z"}]}),
        ),
        ("build-start", "build.started", "ci", json!({"pipeline": "shop-ci", "runId": "r1", "sha": MERGE})),
        (
            "build",
            "build.finished",
            "ci",
            json!({"pipeline": "shop-ci", "runId": "r1", "sha": MERGE, "outcome": "success", "artifact": ART}),
        ),
        (
            "tests",
            "tests.finished",
            "ci",
            json!({"artifact": ART, "suite": "unit", "kind": "unit", "passed": 10, "failed": 0, "skipped": 0, "outcome": "success"}),
        ),
        (
            "scan",
            "scan.finished",
            "ci",
            json!({"artifact": ART, "scanner": "trivy", "kind": "image", "critical": 0, "high": 0, "medium": 1, "low": 2}),
        ),
        (
            "artifact",
            "artifact.published",
            "ci",
            json!({"artifact": ART, "service": "checkout", "version": "1.2.0",
            "commits": [{"sha": SHA, "authoredAt": "2026-01-05T08:00:00Z"}]}),
        ),
        (
            "artifact-other",
            "artifact.published",
            "ci",
            json!({"artifact": ART2, "service": "billing", "version": "3.0.0",
            "commits": [{"sha": OTHER, "authoredAt": "2026-01-05T08:00:00Z"}]}),
        ),
        (
            "approval",
            "approval.granted",
            "u-3",
            svc(json!({"approver": "u-3", "scope": "deployment", "artifact": ART})),
        ),
        (
            "decision",
            "decision.recorded",
            "ci",
            json!({"decisionId": "x1", "decision": "allow", "policySetHash": "h",
            "request": {"principal": "ci", "action": "deploy", "resource": {"service": "checkout", "environment": "production", "artifact": ART}}}),
        ),
        (
            "denied",
            "decision.recorded",
            "ci",
            json!({"decisionId": "x2", "decision": "deny", "policySetHash": "h",
            "request": {"principal": "ci", "action": "deploy", "resource": {"service": "billing", "environment": "production", "artifact": ART2}}}),
        ),
        (
            "deploy-start",
            "deployment.started",
            "ci",
            svc(json!({"deploymentId": "d1", "artifact": ART, "version": "1.2.0"})),
        ),
        (
            "deploy",
            "deployment.succeeded",
            "ci",
            svc(json!({"deploymentId": "d1", "artifact": ART, "version": "1.2.0"})),
        ),
        (
            "canary",
            "canary.analyzed",
            "ci",
            json!({"deploymentId": "d1", "errorRate": 0.001, "p95LatencyMs": 120.0, "verdict": "pass"}),
        ),
        (
            "deploy-other",
            "deployment.succeeded",
            "ci",
            json!({"deploymentId": "d9", "service": "billing", "environment": "production", "artifact": ART2, "version": "3.0.0"}),
        ),
        ("incident", "incident.opened", "u-4", svc(json!({"incidentId": "i1", "severity": "sev2", "causedBy": "d1"}))),
        (
            "fix",
            "deployment.succeeded",
            "ci",
            svc(
                json!({"deploymentId": "d2", "artifact": "sha256:3333", "version": "1.2.1", "fixes": "i1", "emergency": true}),
            ),
        ),
        ("resolved", "incident.resolved", "u-4", svc(json!({"incidentId": "i1"}))),
        (
            "rollback",
            "deployment.rolledback",
            "u-4",
            svc(json!({"deploymentId": "d1", "fromVersion": "1.2.0", "toVersion": "1.1.0"})),
        ),
    ]
}

fn index() -> (LedgerIndex, Vec<&'static str>) {
    let start: DateTime<Utc> = "2026-01-05T09:00:00Z".parse().unwrap();
    let mut index = LedgerIndex::new();
    let mut labels = Vec::new();
    for (seq, (label, kind, actor, data)) in history().into_iter().enumerate() {
        let event = RecordedEvent {
            seq: seq as u64,
            id: uuid::Uuid::new_v4(),
            event_type: EventType::parse(kind).unwrap(),
            stream: format!("s/{label}"),
            stream_version: 0,
            occurred_at: start + Duration::minutes(seq as i64),
            recorded_at: start,
            recorded_by: "test".into(),
            actor: actor.into(),
            source: None,
            data: data.clone(),
            links: Vec::new(),
            leaf_hash: None,
        };
        let typed = EventData::parse(event.event_type, data).unwrap_or_else(|e| panic!("{label}: {e}"));
        index.apply(&event, Some(&typed));
        labels.push(label);
    }
    (index, labels)
}

fn named(labels: &[&str], seqs: &[u64]) -> Vec<String> {
    seqs.iter().map(|s| labels[*s as usize].to_owned()).collect()
}

#[test]
fn trace_follows_a_commit_to_everything_after_it() {
    let (index, l) = index();
    let t = index.trace(SHA);
    assert_eq!(named(&l, &t.commits), ["push"]);
    assert_eq!(named(&l, &t.changes), ["opened", "reviewed", "merged"]);
    assert_eq!(named(&l, &t.builds), ["build-start", "build"]);
    assert_eq!(named(&l, &t.tests), ["tests"]);
    assert_eq!(named(&l, &t.scans), ["scan"]);
    assert_eq!(named(&l, &t.artifacts), ["artifact"]);
    assert_eq!(named(&l, &t.approvals), ["approval"]);
    assert_eq!(named(&l, &t.decisions), ["decision"]);
    assert_eq!(named(&l, &t.deployments), ["deploy-start", "deploy", "fix"]);
    assert_eq!(named(&l, &t.canaries), ["canary"]);
    assert_eq!(named(&l, &t.rollbacks), ["rollback"]);
    assert_eq!(named(&l, &t.incidents), ["incident", "resolved"]);
    assert!(index.trace("deadbee").is_empty(), "an unknown commit has no evidence");
}

#[test]
fn a_deployment_has_its_artifact_commits_changes_and_aftermath() {
    let (index, l) = index();
    let e = index.deployment("d1");
    assert_eq!(named(&l, &e.commits), ["push"]);
    assert_eq!(named(&l, &e.changes), ["opened", "reviewed", "merged"]);
    assert_eq!(named(&l, &e.builds), ["build"]);
    assert_eq!(named(&l, &e.tests), ["tests"]);
    assert_eq!(named(&l, &e.approvals), ["approval"]);
    assert_eq!(named(&l, &e.decisions), ["decision"]);
    assert_eq!(named(&l, &e.deployments), ["deploy-start", "deploy", "fix"]);
    assert_eq!(named(&l, &e.rollbacks), ["rollback"]);
    assert_eq!(named(&l, &e.incidents), ["incident", "resolved"]);
    assert!(!e.all().contains(&17), "another service's deployment is not evidence");
    assert!(index.deployment("nope").is_empty());
}

#[test]
fn search_filters_and_pages_in_seq_order() {
    let (index, l) = index();
    let deploys = EventFilter { types: vec![EventType::DeploymentSucceeded], ..EventFilter::default() };
    let page = index.search(&deploys, None, 2);
    assert_eq!(named(&l, &page.seqs), ["deploy", "deploy-other"]);
    assert!(page.has_next);
    let next = index.search(&deploys, page.seqs.last().copied(), 2);
    assert_eq!(named(&l, &next.seqs), ["fix"]);
    assert!(!next.has_next);
    assert_eq!(index.count(&deploys), 3);

    // Tests and scans belong to the service of their artifact.
    let checkout = EventFilter { service: Some("checkout".into()), ..EventFilter::default() };
    let seqs = index.search(&checkout, None, 100).seqs;
    assert!(named(&l, &seqs).contains(&"scan".to_owned()));
    assert!(!named(&l, &seqs).contains(&"deploy-other".to_owned()));

    let by_actor = EventFilter { actor: Some("u-4".into()), ..EventFilter::default() };
    assert_eq!(named(&l, &index.search(&by_actor, None, 10).seqs), ["incident", "resolved", "rollback"]);

    let from: DateTime<Utc> = "2026-01-05T09:02:00Z".parse().unwrap();
    let window = EventFilter { from: Some(from), to: Some(from + Duration::minutes(2)), ..EventFilter::default() };
    assert_eq!(named(&l, &index.search(&window, None, 10).seqs), ["opened", "reviewed"]);

    let unknown = EventFilter { service: Some("nope".into()), ..EventFilter::default() };
    assert!(index.search(&unknown, None, 10).seqs.is_empty());
    assert_eq!(index.count(&unknown), 0);
}

#[test]
fn decisions_filter_by_outcome_action_and_artifact() {
    let (index, l) = index();
    let all = index.decisions(&DecisionFilter::default(), None, 10);
    assert_eq!(named(&l, &all.seqs), ["decision", "denied"]);
    let denied = DecisionFilter { allowed: Some(false), ..DecisionFilter::default() };
    assert_eq!(named(&l, &index.decisions(&denied, None, 10).seqs), ["denied"]);
    let art = DecisionFilter { artifact: Some(ART.into()), action: Some("deploy".into()), ..DecisionFilter::default() };
    assert_eq!(named(&l, &index.decisions(&art, None, 10).seqs), ["decision"]);
    let merge = DecisionFilter { action: Some("merge".into()), ..DecisionFilter::default() };
    assert!(index.decisions(&merge, None, 10).seqs.is_empty());
}

#[test]
fn release_note_lookups() {
    let (index, l) = index();
    assert_eq!(named(&l, &index.changes_of(&[SHA.to_owned()])), ["opened", "reviewed", "merged"]);
    assert_eq!(named(&l, &index.approvals_of(&[ART.to_owned()])), ["approval"]);
}
