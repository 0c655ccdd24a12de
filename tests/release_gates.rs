//! Release gates end to end: facts recorded as events through a real
//! server, decisions asked over HTTP and with `shiplog check`, every
//! decision in the ledger.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BIN, Server, event};
use serde_json::{Value, json};

fn repo_policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// A copy of the repository's policies whose production maintenance window
/// is always open (or never, with `open: false`), so tests do not depend
/// on the hour they run at.
fn policies(dir: &Path, open: bool) -> PathBuf {
    let target = dir.join("policies");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(repo_policies()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut entities: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_policies().join("entities.json")).unwrap()).unwrap();
    for e in entities.as_array_mut().unwrap() {
        if e["uid"]["id"] == "production" && e["uid"]["type"] == "Shiplog::Environment" {
            let days: Vec<&str> = if open { vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] } else { vec![] };
            e["attrs"]["maintenanceWindow"] = json!({"days": days, "start": "00:00", "end": "00:00"});
        }
    }
    std::fs::write(target.join("entities.json"), serde_json::to_string_pretty(&entities).unwrap()).unwrap();
    target
}

struct Gate {
    server: Server,
    _dir: tempfile::TempDir,
    policies: PathBuf,
}

fn start(open_window: bool) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies(dir.path(), open_window);
    let server = Server::start_with(&["--policies", policies.to_str().unwrap()]);
    Gate { server, _dir: dir, policies }
}

impl Gate {
    fn record(&self, kind: &str, data: Value) {
        let (status, body) = self.server.post("/v1/events", &event(kind, data));
        assert_eq!(status, 201, "{kind}: {body}");
    }

    fn decide(&self, principal: &str, action: &str, resource: Value, context: Value) -> Value {
        let (status, body) = self.server.post(
            "/v1/decisions",
            &json!({"principal": principal, "action": action, "resource": resource, "context": context}),
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Record what a ready artifact has: a staging deployment, passing
    /// tests, a clean scan.
    fn ready(&self, artifact: &str) {
        self.record("deployment.succeeded", json!({"deploymentId": format!("stg-{artifact}"), "service": "checkout", "environment": "staging", "artifact": artifact, "version": "1.0.0"}));
        self.record("tests.finished", json!({"artifact": artifact, "suite": "unit", "kind": "unit", "passed": 120, "failed": 0, "skipped": 0, "outcome": "success"}));
        self.record("scan.finished", json!({"artifact": artifact, "scanner": "trivy", "kind": "image", "critical": 0, "high": 1, "medium": 0, "low": 0}));
    }

    fn approve(&self, approver: &str, scope: &str, artifact: &str) {
        self.record("approval.granted", approval(approver, scope, artifact));
    }
}

fn approval(approver: &str, scope: &str, artifact: &str) -> Value {
    json!({"approver": approver, "scope": scope, "service": "checkout", "environment": "production", "artifact": artifact})
}

fn deploy(artifact: &str) -> Value {
    json!({"service": "checkout", "environment": "production", "artifact": artifact})
}

fn policies_of(decision: &Value) -> Vec<String> {
    decision["reasons"].as_array().unwrap().iter().map(|r| r["policy"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn production_deployments_need_staging_tests_scans_and_another_approver() {
    let g = start(true);
    g.ready("sha256:a1");
    g.approve("u-1002", "deployment", "sha256:a1");
    let d = g.decide("u-1005", "deploy", deploy("sha256:a1"), json!({}));
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(d["facts"]["stagingSucceeded"], true);
    assert_eq!(d["facts"]["approvedByOther"], true);

    // Never in staging, never tested, never scanned, approved by nobody.
    let d = g.decide("u-1005", "deploy", deploy("sha256:b2"), json!({}));
    assert_eq!(d["decision"], "deny");
    assert_eq!(
        policies_of(&d),
        [
            "production-deploy/approved",
            "production-deploy/no-critical-findings",
            "production-deploy/staging-first",
            "production-deploy/tests-passed"
        ]
    );
    assert!(d["reasons"][0]["advice"].as_str().unwrap().contains("approval.granted"), "{d}");

    // Approved only by the deployer; an approval for another artifact does not count.
    g.ready("sha256:c3");
    g.approve("u-1005", "deployment", "sha256:c3");
    g.approve("u-1002", "deployment", "sha256:other");
    let d = g.decide("u-1005", "deploy", deploy("sha256:c3"), json!({}));
    assert_eq!(policies_of(&d), ["production-deploy/approved"], "{d}");

    // A critical finding in the latest scan.
    g.record("scan.finished", json!({"artifact": "sha256:a1", "scanner": "trivy", "kind": "image", "critical": 1, "high": 0, "medium": 0, "low": 0}));
    let d = g.decide("u-1005", "deploy", deploy("sha256:a1"), json!({}));
    assert_eq!(policies_of(&d), ["production-deploy/no-critical-findings"], "{d}");

    // An engineer may not deploy to production at all.
    let d = g.decide("u-1001", "deploy", deploy("sha256:c3"), json!({}));
    assert!(policies_of(&d).contains(&"environment-access/production".to_owned()), "{d}");
}

#[test]
fn emergencies_need_another_tech_lead_and_a_rollback_plan_and_are_monitored() {
    let g = start(false);
    let artifact = "sha256:hotfix";
    g.record("tests.finished", json!({"artifact": artifact, "suite": "unit", "kind": "unit", "passed": 9, "failed": 0, "skipped": 0, "outcome": "success"}));
    g.record("scan.finished", json!({"artifact": artifact, "scanner": "trivy", "kind": "image", "critical": 0, "high": 0, "medium": 0, "low": 0}));
    let emergency = json!({"emergency": true, "rollbackPlan": "https://wiki.example.com/rollback/checkout"});

    // u-1002 is a tech lead, but approving their own emergency does not count.
    g.approve("u-1002", "emergency", artifact);
    let d = g.decide("u-1002", "deploy", deploy(artifact), emergency.clone());
    assert_eq!(d["decision"], "deny", "{d}");
    assert_eq!(policies_of(&d), ["emergency-deploy/tech-lead-approval", "production-deploy/approved"]);

    // Another tech lead approves: allowed outside the window, without staging, monitored.
    g.approve("u-1006", "emergency", artifact);
    let d = g.decide("u-1002", "deploy", deploy(artifact), emergency.clone());
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(d["obligations"], json!(["post-deploy-monitoring"]));
    assert_eq!(d["facts"]["inMaintenanceWindow"], false);

    // Without a rollback plan, refused.
    let d = g.decide("u-1002", "deploy", deploy(artifact), json!({"emergency": true}));
    assert_eq!(policies_of(&d), ["emergency-deploy/rollback-plan"]);

    // The tech lead revokes: the approval no longer counts.
    g.record("approval.revoked", approval("u-1006", "emergency", artifact));
    let d = g.decide("u-1002", "deploy", deploy(artifact), emergency);
    assert_eq!(d["decision"], "deny", "{d}");

    // Not an emergency, outside the window: refused for the window and staging.
    let d = g.decide("u-1002", "deploy", deploy(artifact), json!({}));
    assert!(policies_of(&d).contains(&"production-deploy/maintenance-window".to_owned()), "{d}");
}

#[test]
fn rollbacks_merges_infrastructure_canaries_and_migrations() {
    let g = start(false);
    let env = |e: &str| json!({"environment": e, "service": "checkout"});

    // Gate 6: on-call rolls back production outside the window, unapproved; an engineer cannot.
    assert_eq!(g.decide("u-1007", "rollback", env("production"), json!({}))["decision"], "allow");
    assert_eq!(policies_of(&g.decide("u-1001", "rollback", env("production"), json!({}))), ["rollback/who"]);

    // Gate 4: a review by someone other than the author, and CI green on the commit.
    g.record("change.opened", json!({"repo": "shop/web", "number": 42, "author": "u-1001"}));
    g.record("change.reviewed", json!({"repo": "shop/web", "number": 42, "reviewer": "u-1001", "state": "approved"}));
    let merge = json!({"repo": "shop/web", "number": 42, "sha": "abcdef1"});
    assert_eq!(
        policies_of(&g.decide("u-1001", "merge", merge.clone(), json!({}))),
        ["merge/ci-passed", "merge/reviewed"]
    );
    g.record("change.reviewed", json!({"repo": "shop/web", "number": 42, "reviewer": "u-1005", "state": "approved"}));
    g.record("tests.finished", json!({"sha": "abcdef1", "suite": "ci", "kind": "integration", "passed": 50, "failed": 0, "skipped": 0, "outcome": "success"}));
    assert_eq!(g.decide("u-1001", "merge", merge, json!({}))["decision"], "allow");

    // Gate 5: staging first, a DevOps review, an approval.
    let infra = json!({"environment": "production", "changeId": "tf-7"});
    assert_eq!(
        policies_of(&g.decide("u-1003", "apply-infra", infra.clone(), json!({}))),
        ["infrastructure/approved", "infrastructure/devops-review", "infrastructure/staging-first"]
    );
    g.record("infra.applied", json!({"changeId": "tf-7", "tool": "terraform", "environment": "staging", "add": 1, "change": 0, "destroy": 0, "outcome": "success"}));
    g.record("approval.granted", json!({"approver": "u-1008", "scope": "infra", "changeId": "tf-7"}));
    assert_eq!(g.decide("u-1003", "apply-infra", infra, json!({}))["decision"], "allow");

    // Gate 7: the recorded analysis decides; figures from the caller only when none is recorded.
    g.record(
        "canary.analyzed",
        json!({"deploymentId": "d-9", "errorRate": 0.02, "p95LatencyMs": 300, "verdict": "fail"}),
    );
    let canary = |id: &str| json!({"environment": "production", "service": "checkout", "deploymentId": id});
    let healthy = json!({"canary": {"errorRate": 0.001, "p95LatencyMs": 200}});
    assert_eq!(
        policies_of(&g.decide("u-1003", "promote-canary", canary("d-9"), healthy.clone())),
        ["canary/error-rate"]
    );
    assert_eq!(g.decide("u-1003", "promote-canary", canary("d-10"), healthy)["decision"], "allow");

    // Gate 8: contract only once expand is in production.
    let migration = |phase: &str| json!({"environment": "production", "service": "checkout", "migration": "orders-v2", "phase": phase});
    assert_eq!(
        policies_of(&g.decide("u-1005", "apply-migration", migration("contract"), json!({}))),
        ["migration/expand-before-contract"]
    );
    g.record(
        "migration.applied",
        json!({"service": "checkout", "environment": "production", "name": "orders-v2", "phase": "expand"}),
    );
    assert_eq!(g.decide("u-1005", "apply-migration", migration("contract"), json!({}))["decision"], "allow");
}

#[test]
fn every_decision_and_activation_is_in_the_ledger_and_bad_requests_are_refused() {
    let g = start(true);
    let d = g.decide("u-1005", "deploy", deploy("sha256:none"), json!({}));
    let recorded = g.server.all_events();
    let activation = recorded
        .iter()
        .find(|e| e["type"] == "policy.activated" && e["data"]["set"].is_null())
        .expect("policy.activated recorded at start");
    assert_eq!(activation["data"]["policySetHash"], d["policySetHash"]);
    let decision = recorded.iter().find(|e| e["type"] == "decision.recorded").unwrap();
    assert_eq!(decision["seq"], d["seq"]);
    assert_eq!(decision["data"]["decisionId"], d["decisionId"]);
    assert_eq!(decision["data"]["decision"], "deny");
    assert_eq!(decision["data"]["facts"], d["facts"]);
    assert_eq!(decision["recordedBy"], "admin", "recorded by the token that asked");

    let ask = |body: Value| g.server.post("/v1/decisions", &body);
    let cases = [
        (json!({"principal": "u-1005", "action": "ship-it", "resource": {}}), 400, "invalid_request", "action"),
        (
            json!({"principal": "nobody", "action": "deploy", "resource": deploy("a")}),
            400,
            "unknown_principal",
            "principal",
        ),
        (
            json!({"principal": "u-1005", "action": "deploy", "resource": {"environment": "production", "service": "checkout"}}),
            400,
            "invalid_request",
            "resource.artifact",
        ),
        (
            json!({"principal": "u-1005", "action": "deploy", "resource": deploy("a"), "context": {"stagingSucceeded": true}}),
            400,
            "invalid_request",
            "context",
        ),
        (
            json!({"principal": "u-1005", "action": "deploy", "resource": {"environment": "prod", "service": "checkout", "artifact": "a"}}),
            400,
            "invalid_request",
            "resource.environment",
        ),
        (
            json!({"principal": "u-1003", "action": "promote-canary", "resource": {"environment": "production", "deploymentId": "d"}, "context": {"canary": {"errorRate": -1.0, "p95LatencyMs": 5}}}),
            400,
            "invalid_request",
            "context.canary.errorRate",
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, err) = ask(body.clone());
        assert_eq!((got, err["error"].as_str()), (status, Some(code)), "{body}: {err}");
        assert!(err["field"].as_str().unwrap_or_default().starts_with(field), "{body}: {err}");
    }
    let (status, err) = g.server.post_raw("/v1/decisions", "application/json", "nope");
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_json")), "{err}");
    let after = g.server.all_events().len();
    assert_eq!(after, recorded.len(), "refused requests record nothing");
}

#[test]
fn shiplog_check_exits_0_on_allow_and_2_on_deny_with_the_advice() {
    let g = start(true);
    g.ready("sha256:ok");
    g.approve("u-1002", "deployment", "sha256:ok");
    let check = |artifact: &str, format: &str| {
        let out = Command::new(BIN)
            .args(["check", "--server", &g.server.url, "--principal", "u-1005", "--action", "deploy"])
            .args(["--service", "checkout", "--env", "production", "--artifact", artifact, "--format", format])
            .env("SHIPLOG_TOKEN", common::ADMIN_TOKEN)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, out, err) = check("sha256:ok", "text");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("ALLOWED"), "{out}");
    let (code, out, _) = check("sha256:unknown", "text");
    assert_eq!(code, Some(2));
    assert!(
        out.contains("DENIED")
            && out.contains("production-deploy/staging-first: ")
            && out.contains("deploy it to staging first"),
        "{out}"
    );
    let (code, out, _) = check("sha256:unknown", "github");
    assert_eq!(code, Some(2));
    assert!(out.lines().all(|l| l.starts_with("::error title=shiplog gate ")), "{out}");
    let (code, out, _) = check("sha256:unknown", "json");
    assert_eq!(code, Some(2));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["decision"], "deny");
}

#[test]
fn a_reload_takes_a_valid_set_and_refuses_an_invalid_one() {
    let g = start(true);
    let before = g.decide("u-1007", "rollback", json!({"environment": "production"}), json!({}));
    assert_eq!(before["decision"], "allow");

    std::fs::write(
        g.policies.join("99-typo.cedar"),
        "@id(\"typo\")\n@advice(\"x: y\")\nforbid (principal, action, resource)\nunless { context.emergncy };\n",
    )
    .unwrap();
    let (status, err) = g.server.post("/v1/policies/reload", &json!({}));
    assert_eq!((status, err["error"].as_str()), (422, Some("invalid_policy")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("99-typo.cedar:4:"), "{err}");
    let same = g.decide("u-1007", "rollback", json!({"environment": "production"}), json!({}));
    assert_eq!(
        (same["decision"].as_str(), &same["policySetHash"]),
        (Some("allow"), &before["policySetHash"]),
        "the old set keeps serving"
    );

    std::fs::write(g.policies.join("99-typo.cedar"), "@id(\"freeze\")\n@advice(\"Production is frozen: wait for the freeze to end.\")\nforbid (principal, action == Shiplog::Action::\"rollback\", resource == Shiplog::Environment::\"production\");\n").unwrap();
    let (status, body) = g.server.post("/v1/policies/reload", &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["policySetHash"], before["policySetHash"]);
    let after = g.decide("u-1007", "rollback", json!({"environment": "production"}), json!({}));
    assert_eq!(policies_of(&after), ["freeze"]);
    let activations = g
        .server
        .all_events()
        .iter()
        .filter(|e| e["type"] == "policy.activated" && e["data"]["set"] != "access")
        .count();
    assert_eq!(activations, 2);
}

#[test]
fn a_shadow_set_is_evaluated_and_recorded_but_never_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies(dir.path(), true);
    std::fs::create_dir_all(policies.join("shadow")).unwrap();
    for name in ["00-base.cedar", "06-rollback.cedar"] {
        std::fs::copy(policies.join(name), policies.join("shadow").join(name)).unwrap();
    }
    std::fs::write(
        policies.join("shadow/99-on-call-only.cedar"),
        "@id(\"rollback/on-call-only\")\n@advice(\"Trial: only on-call rolls back.\")\nforbid (principal, action == Shiplog::Action::\"rollback\", resource)\nunless { principal in Shiplog::Group::\"OnCall\" };\n",
    )
    .unwrap();
    let server = Server::start_with(&["--policies", policies.to_str().unwrap()]);
    let (status, d) = server.post(
        "/v1/decisions",
        &json!({"principal": "u-1005", "action": "rollback", "resource": {"environment": "production"}}),
    );
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["decision"], "allow", "the live set decides");
    assert_eq!(d["shadow"]["decision"], "deny");
    assert_eq!(d["shadow"]["agrees"], false);
    let recorded = server.all_events().into_iter().find(|e| e["type"] == "decision.recorded").unwrap();
    assert_eq!(recorded["data"]["shadow"]["reasons"][0]["policy"], "rollback/on-call-only");
    assert!(server.log().contains("the shadow policy set disagrees"));
}
