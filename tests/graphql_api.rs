//! The GraphQL API through a real server: DORA figures for a history whose
//! answers are worked out by hand, paging, traces, deployments, decisions,
//! release notes, the checkpoint, errors and limits, and the live feed over
//! a WebSocket (graphql-transport-ws).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

fn repo_policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn gql(server: &Server, query: &str, variables: Value) -> Value {
    let (status, body) = server.post("/graphql", &json!({"query": query, "variables": variables}));
    assert_eq!(status, 200, "{body}");
    body
}

/// The data of a query that must succeed.
fn data(server: &Server, query: &str, variables: Value) -> Value {
    let body = gql(server, query, variables);
    assert!(body.get("errors").is_none_or(Value::is_null), "{query}: {body}");
    body["data"].clone()
}

fn at(kind: &str, time: &str, actor: &str, data: Value) -> Value {
    let mut e = common::event(kind, data);
    e["occurredAt"] = json!(time);
    e["actor"] = json!(actor);
    e
}

fn record(server: &Server, events: Vec<Value>) {
    let (status, body) = server.post("/v1/events", &Value::Array(events));
    assert_eq!(status, 201, "{body}");
}

const A: &str = "aaaaaaa1";
const B: &str = "bbbbbbb2";
const C: &str = "ccccccc3";

/// Checkout and billing in January 2026 (checkout and billing belong to the
/// team "payments" in policies/entities.json; search to "discovery").
///
/// - c1 (Mon 5th 12:00) ships A (authored 10:00): lead 2 h. Rolled back
///   at 12:30: failed, recovered in 30 min.
/// - c2 (Tue 6th 12:00) ships A again and B (authored 6th 06:00): only B
///   counts, lead 6 h. An incident without cause at 20:00 is attributed to
///   it (within 24 h, before the next deployment); resolved 22:00: 10 h.
/// - c3 (Wed 7th 09:00), emergency, fixes the incident: rework.
/// - b1 billing (Thu 8th 10:00) ships C via its artifact (authored 7th
///   10:00): lead 24 h. An incident caused by it is never resolved.
fn delivery_history(server: &Server) {
    let svc = |service: &str, id: &str, version: &str, artifact: &str, extra: Value| {
        let mut d = json!({"deploymentId": id, "service": service, "environment": "production",
                           "artifact": artifact, "version": version});
        d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        d
    };
    record(
        server,
        vec![
            at(
                "commit.pushed",
                "2026-01-05T10:00:00Z",
                "u-1001",
                json!({"repo": "shop", "sha": A, "author": "u-1001", "authoredAt": "2026-01-05T10:00:00Z", "branch": "main"}),
            ),
            at(
                "change.opened",
                "2026-01-05T10:05:00Z",
                "u-1001",
                json!({"repo": "shop", "number": 1, "author": "u-1001"}),
            ),
            at(
                "change.reviewed",
                "2026-01-05T10:10:00Z",
                "u-1002",
                json!({"repo": "shop", "number": 1, "reviewer": "u-1002", "state": "approved"}),
            ),
            at(
                "change.merged",
                "2026-01-05T10:20:00Z",
                "u-1002",
                json!({"repo": "shop", "number": 1, "author": "u-1001", "mergedBy": "u-1002", "mergeSha": A, "commits": [{"sha": A, "authoredAt": "2026-01-05T10:00:00Z"}]}),
            ),
            at(
                "build.started",
                "2026-01-05T10:30:00Z",
                "ci",
                json!({"pipeline": "checkout-ci", "runId": "1", "sha": A}),
            ),
            at(
                "build.finished",
                "2026-01-05T10:40:00Z",
                "ci",
                json!({"pipeline": "checkout-ci", "runId": "1", "sha": A, "outcome": "success", "artifact": "sha256:c1"}),
            ),
            at(
                "artifact.published",
                "2026-01-05T10:41:00Z",
                "ci",
                json!({"artifact": "sha256:c1", "service": "checkout", "version": "1.0.1", "commits": [{"sha": A, "authoredAt": "2026-01-05T10:00:00Z"}]}),
            ),
            at(
                "approval.granted",
                "2026-01-05T11:00:00Z",
                "u-1002",
                json!({"approver": "u-1002", "scope": "deployment", "service": "checkout", "environment": "production", "artifact": "sha256:c1"}),
            ),
            at(
                "deployment.started",
                "2026-01-05T11:50:00Z",
                "ci",
                svc("checkout", "c1", "1.0.1", "sha256:c1", json!({})),
            ),
            at(
                "deployment.succeeded",
                "2026-01-05T12:00:00Z",
                "ci",
                svc("checkout", "c1", "1.0.1", "sha256:c1", json!({})),
            ),
            at(
                "deployment.rolledback",
                "2026-01-05T12:30:00Z",
                "u-1002",
                json!({"deploymentId": "c1", "service": "checkout", "environment": "production", "fromVersion": "1.0.1", "toVersion": "1.0.0"}),
            ),
            at(
                "deployment.succeeded",
                "2026-01-06T12:00:00Z",
                "ci",
                svc(
                    "checkout",
                    "c2",
                    "1.0.2",
                    "sha256:c2",
                    json!({"commits": [
                {"sha": A, "authoredAt": "2026-01-05T10:00:00Z"}, {"sha": B, "authoredAt": "2026-01-06T06:00:00Z"}]}),
                ),
            ),
            at(
                "incident.opened",
                "2026-01-06T20:00:00Z",
                "u-1003",
                json!({"incidentId": "inc-1", "service": "checkout", "environment": "production", "severity": "sev2"}),
            ),
            at(
                "incident.resolved",
                "2026-01-06T22:00:00Z",
                "u-1003",
                json!({"incidentId": "inc-1", "service": "checkout", "environment": "production"}),
            ),
            at(
                "deployment.succeeded",
                "2026-01-07T09:00:00Z",
                "ci",
                svc(
                    "checkout",
                    "c3",
                    "1.0.3",
                    "sha256:c3",
                    json!({"emergency": true, "rollbackPlan": "redeploy 1.0.2", "fixes": "inc-1", "commits": []}),
                ),
            ),
            at(
                "artifact.published",
                "2026-01-07T11:00:00Z",
                "ci",
                json!({"artifact": "sha256:b1", "service": "billing", "version": "2.0.0", "commits": [{"sha": C, "authoredAt": "2026-01-07T10:00:00Z"}]}),
            ),
            at(
                "deployment.failed",
                "2026-01-08T09:00:00Z",
                "ci",
                svc("billing", "b0", "2.0.0", "sha256:b1", json!({})),
            ),
            at(
                "deployment.succeeded",
                "2026-01-08T10:00:00Z",
                "ci",
                svc("billing", "b1", "2.0.0", "sha256:b1", json!({})),
            ),
            at(
                "incident.opened",
                "2026-01-08T11:00:00Z",
                "u-1003",
                json!({"incidentId": "inc-2", "service": "billing", "environment": "production", "severity": "sev1", "causedBy": "b1"}),
            ),
        ],
    );
}

const DORA: &str = "query($f: DoraFilter) { dora(filter: $f) {
    deployments deploymentFrequency leadTime { median p90 count } changeFailRate failedDeployments
    recoveryTime { median p90 count } unrecoveredFailures reworkRate
    bands { deploymentFrequency leadTime changeFailRate recoveryTime }
    trend { start end deployments failedDeployments } } }";

#[test]
fn dora_figures_follow_the_definitions() {
    let server = Server::start_with(&["--policies", repo_policies().to_str().unwrap()]);
    delivery_history(&server);
    let week = json!({"from": "2026-01-05T00:00:00Z", "to": "2026-01-12T00:00:00Z"});

    let all = &data(&server, DORA, json!({"f": week}))["dora"];
    assert_eq!(all["deployments"], 4, "{all}");
    assert!((all["deploymentFrequency"].as_f64().unwrap() - 4.0 / 7.0).abs() < 1e-12);
    // Leads: A 2 h, B 6 h, C 24 h.
    assert_eq!(all["leadTime"], json!({"median": 21600.0, "p90": 73440.0, "count": 3}));
    // c1 (rollback), c2 (incident by time), b1 (caused): 3 of 4.
    assert_eq!(all["failedDeployments"], 3);
    assert_eq!(all["changeFailRate"], 0.75);
    // c1 in 30 min (its rollback); c2 at the earlier of the incident's
    // resolution (10 h) and the fix c3 (21 h); b1 never.
    assert_eq!(all["recoveryTime"], json!({"median": 18900.0, "p90": 32580.0, "count": 2}));
    assert_eq!(all["unrecoveredFailures"], 1);
    assert_eq!(all["reworkRate"], 0.25);
    assert_eq!(
        all["bands"],
        json!({"deploymentFrequency": "HIGH", "leadTime": "ELITE", "changeFailRate": "LOW", "recoveryTime": "HIGH"})
    );

    let team = &data(
        &server,
        DORA,
        json!({"f": {"team": "payments", "from": "2026-01-05T00:00:00Z", "to": "2026-01-12T00:00:00Z"}}),
    )["dora"];
    assert_eq!(team["deployments"], 4);
    let checkout = &data(
        &server,
        DORA,
        json!({"f": {"service": "checkout", "from": "2026-01-05T00:00:00Z", "to": "2026-01-12T00:00:00Z", "bucket": "DAY"}}),
    )["dora"];
    assert_eq!(checkout["deployments"], 3);
    assert_eq!(checkout["leadTime"]["count"], 2);
    let per_day: Vec<i64> =
        checkout["trend"].as_array().unwrap().iter().map(|t| t["deployments"].as_i64().unwrap()).collect();
    assert_eq!(per_day, [1, 1, 1, 0, 0, 0, 0]);
    let discovery = &data(
        &server,
        DORA,
        json!({"f": {"team": "discovery", "from": "2026-01-05T00:00:00Z", "to": "2026-01-12T00:00:00Z"}}),
    )["dora"];
    assert_eq!(discovery["deployments"], 0);
    assert_eq!(discovery["changeFailRate"], Value::Null);

    // A 1-hour attribution window leaves the 20:00 incident unattributed.
    let short = &data(
        &server,
        DORA,
        json!({"f": {"from": "2026-01-05T00:00:00Z", "to": "2026-01-12T00:00:00Z", "attributionWindowHours": 1}}),
    )["dora"];
    assert_eq!(short["failedDeployments"], 2);

    let pipeline = &data(
        &server,
        "query($f: DoraFilter) { pipeline(filter: $f) { builds buildSuccessRate buildDuration { median count } timeToDeploy { median count } deploymentAttempts failedAttempts attemptFailureRate } }",
        json!({"f": week}),
    )["pipeline"];
    assert_eq!(
        pipeline,
        &json!({"builds": 1, "buildSuccessRate": 1.0, "buildDuration": {"median": 600.0, "count": 1},
                "timeToDeploy": {"median": 600.0, "count": 1}, "deploymentAttempts": 5, "failedAttempts": 1,
                "attemptFailureRate": 0.2})
    );

    let recent = &data(
        &server,
        "{ deployments(filter: {service: \"checkout\", from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\"}) { deploymentId failed rolledBack recoveryTime leadTime { count } } }",
        json!({}),
    )["deployments"];
    assert_eq!(recent[0]["deploymentId"], "c3");
    assert_eq!(
        recent[2],
        json!({"deploymentId": "c1", "failed": true, "rolledBack": true, "recoveryTime": 1800.0, "leadTime": {"count": 1}})
    );

    let notes = &data(
        &server,
        "{ releaseNotes(service: \"checkout\", fromVersion: \"1.0.1\", toVersion: \"1.0.3\") { commits deployments { deploymentId } } }",
        json!({}),
    )["releaseNotes"];
    assert_eq!(notes["commits"], json!([B]));
    assert_eq!(notes["deployments"], json!([{"deploymentId": "c2"}, {"deploymentId": "c3"}]));
    let unknown = gql(
        &server,
        "{ releaseNotes(service: \"checkout\", fromVersion: \"1.0.0\", toVersion: \"1.0.1\") { commits } }",
        json!({}),
    );
    assert_eq!(error_code(&unknown), "invalid_query", "{unknown}");
}

#[test]
fn trace_and_deployment_evidence() {
    let server = Server::start_with(&["--policies", repo_policies().to_str().unwrap()]);
    delivery_history(&server);
    let (status, decision) = server.post(
        "/v1/decisions",
        &json!({"principal": "u-1001", "action": "deploy", "resource": {"service": "checkout", "environment": "production", "artifact": "sha256:c1"}}),
    );
    assert_eq!(status, 200, "{decision}");

    let types = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
    };
    let q = "query($sha: String!) { trace(commit: $sha) { commits { type } changes { type } builds { type }
        artifacts { type } approvals { type } decisions { type data } deployments { type data } rollbacks { type } incidents { type } } }";
    let t = &data(&server, q, json!({"sha": A}))["trace"];
    assert_eq!(types(&t["commits"]), ["commit.pushed"]);
    assert_eq!(types(&t["changes"]), ["change.opened", "change.reviewed", "change.merged"]);
    assert_eq!(types(&t["builds"]), ["build.started", "build.finished"]);
    assert_eq!(types(&t["artifacts"]), ["artifact.published"]);
    assert_eq!(types(&t["approvals"]), ["approval.granted"]);
    assert_eq!(types(&t["decisions"]), ["decision.recorded"]);
    assert_eq!(t["decisions"][0]["data"]["decision"], decision["decision"]);
    let ids: Vec<&str> =
        t["deployments"].as_array().unwrap().iter().map(|d| d["data"]["deploymentId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c1", "c1", "c2"], "A shipped with c1 and again with c2");
    assert_eq!(types(&t["rollbacks"]), ["deployment.rolledback"]);
    assert_eq!(types(&t["incidents"]), Vec::<String>::new(), "the incident has no cause recorded");

    let d = &data(
        &server,
        "{ deployment(id: \"b1\") { summary { version failed commits leadTime { median } } evidence { artifacts { type } incidents { type } deployments { type } } } }",
        json!({}),
    )["deployment"];
    assert_eq!(
        d["summary"],
        json!({"version": "2.0.0", "failed": true, "commits": [C], "leadTime": {"median": 86400.0}})
    );
    assert_eq!(types(&d["evidence"]["incidents"]), ["incident.opened"]);
    // The failed attempt b0 deployed the same artifact: evidence too.
    assert_eq!(types(&d["evidence"]["deployments"]), ["deployment.failed", "deployment.succeeded"]);
    assert_eq!(data(&server, "{ deployment(id: \"nope\") { deploymentId } }", json!({}))["deployment"], Value::Null);

    let decisions = &data(
        &server,
        "{ decisions(filter: {allowed: false, service: \"checkout\"}) { edges { node { data } } } }",
        json!({}),
    )["decisions"];
    let allowed = decision["decision"] == "allow";
    assert_eq!(decisions["edges"].as_array().unwrap().len(), usize::from(!allowed));
}

#[test]
fn events_are_paged_in_seq_order_with_filters() {
    let server = Server::start();
    delivery_history(&server);
    let q = "query($f: EventFilter, $after: String) { events(filter: $f, first: 3, after: $after) {
        totalCount edges { cursor node { seq type actor } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = &data(&server, q, json!({"f": {"service": "checkout"}, "after": after}))["events"];
        assert_eq!(page["totalCount"], 10);
        for e in page["edges"].as_array().unwrap() {
            seen.push(e["node"]["seq"].as_u64().unwrap());
        }
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 10);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "seq order, no repeats: {seen:?}");

    let incidents = &data(
        &server,
        "{ events(filter: {types: [\"incident.opened\"], actor: \"u-1003\", from: \"2026-01-08T00:00:00Z\"}) { nodes { data } } }",
        json!({}),
    )["events"];
    assert_eq!(incidents["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(incidents["nodes"][0]["data"]["incidentId"], "inc-2");

    let cp = &data(&server, "{ checkpoint { size rootHash note verifierKey intact projectedSeq } }", json!({}))["checkpoint"];
    assert_eq!(cp["size"], 19 + server.base);
    assert_eq!(cp["intact"], true);
    assert!(cp["note"].as_str().unwrap().contains(cp["rootHash"].as_str().unwrap()));
}

fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("").to_owned()
}

#[test]
fn bad_queries_get_errors_with_codes_and_limits_hold() {
    let server = Server::start();
    let bad_type = gql(&server, "{ events(filter: {types: [\"deploy.done\"]}) { totalCount } }", json!({}));
    assert_eq!(error_code(&bad_type), "invalid_query", "{bad_type}");
    assert!(bad_type["errors"][0]["message"].as_str().unwrap().contains("deployment.succeeded"));

    let big_page = gql(&server, "{ events(first: 501) { totalCount } }", json!({}));
    assert_eq!(error_code(&big_page), "invalid_query");
    let cursor = gql(&server, "{ events(after: \"x\") { totalCount } }", json!({}));
    assert_eq!(error_code(&cursor), "invalid_query");
    let window = gql(
        &server,
        "{ dora(filter: {from: \"2026-02-01T00:00:00Z\", to: \"2026-01-01T00:00:00Z\"}) { deployments } }",
        json!({}),
    );
    assert_eq!(error_code(&window), "invalid_query");
    let buckets = gql(
        &server,
        "{ dora(filter: {from: \"2000-01-01T00:00:00Z\", to: \"2026-01-01T00:00:00Z\", bucket: DAY}) { deployments } }",
        json!({}),
    );
    assert!(buckets["errors"][0]["message"].as_str().unwrap().contains("buckets"), "{buckets}");
    let no_directory = gql(&server, "{ dora(filter: {team: \"payments\"}) { deployments } }", json!({}));
    assert_eq!(error_code(&no_directory), "gates_unavailable");

    // The deepest queries the API needs are well within the limit.
    let deep = "{ deployment(id: \"x\") { summary { leadTime { median } } evidence { deployments { data } } } }";
    assert!(gql(&server, deep, json!({})).get("errors").is_none());
    let nested = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(10),
        "} ".repeat(10)
    );
    let too_deep = gql(&server, &nested, json!({}));
    assert!(too_deep["errors"][0]["message"].as_str().unwrap().contains("too deep"), "{too_deep}");
    assert_eq!(error_code(&too_deep), "invalid_query");

    let unknown = gql(&server, "{ nope }", json!({}));
    assert!(unknown["errors"][0]["message"].as_str().unwrap().contains("nope"));
    assert_eq!(error_code(&unknown), "invalid_query");
    let (status, body) = server.post_raw("/graphql", "application/json", "{not json");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_json");

    let (status, ct, page) = server.get_text("/graphql", "text/html");
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/html") && page.contains("GraphiQL"));
}

// ------------------------------------------------ a minimal WebSocket client

struct Ws(TcpStream);

impl Ws {
    fn connect(url: &str) -> Ws {
        let addr = url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = format!(
            "GET /graphql HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.to_lowercase().contains("sec-websocket-protocol: graphql-transport-ws"), "{head}");
        Ws(stream)
    }

    fn send(&mut self, message: &Value) {
        let payload = message.to_string().into_bytes();
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![0x81u8];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).unwrap();
    }

    /// The opcode of the next frame (0x1 text, 0x8 close).
    fn next_opcode(&mut self) -> u8 {
        let mut h = [0u8; 2];
        self.0.read_exact(&mut h).unwrap();
        h[0] & 0x0f
    }

    /// The next text message (pings are skipped).
    fn recv(&mut self) -> Value {
        loop {
            let mut h = [0u8; 2];
            self.0.read_exact(&mut h).unwrap();
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                self.0.read_exact(&mut b).unwrap();
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.0.read_exact(&mut b).unwrap();
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0u8; len as usize];
            self.0.read_exact(&mut payload).unwrap();
            if h[0] & 0x0f == 0x1 {
                return serde_json::from_slice(&payload).unwrap();
            }
        }
    }
}

#[test]
fn the_subscription_streams_new_events_as_they_are_recorded() {
    let server = Server::start();
    // Without a token, the connection is closed.
    let mut refused = Ws::connect(&server.url);
    refused.send(&json!({"type": "connection_init", "payload": {}}));
    assert_eq!(refused.next_opcode(), 0x8, "a close frame");
    let mut ws = Ws::connect(&server.url);
    ws.send(
        &json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {}", common::ADMIN_TOKEN)}}),
    );
    assert_eq!(ws.recv()["type"], "connection_ack");
    ws.send(&json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription { events(filter: {types: [\"deployment.succeeded\"], service: \"checkout\"}) { seq type data } }"}}));
    std::thread::sleep(Duration::from_millis(300));
    record(&server, vec![common::commit("abcdef1"), common::deployment("billing"), common::deployment("checkout")]);
    let next = ws.recv();
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "1");
    let event = &next["payload"]["data"]["events"];
    assert_eq!(event["type"], "deployment.succeeded");
    assert_eq!(event["data"]["service"], "checkout");
    assert_eq!(event["seq"], server.base + 2, "the commit and billing's deployment were filtered out");
}

#[test]
fn mutations_record_events_and_ask_the_gates_as_rest_does() {
    let server = Server::start_with(&["--policies", repo_policies().to_str().unwrap()]);
    let record = "mutation($e: JSON!) { recordEvents(events: $e) { seq stream duplicate leafHash } }";
    let commit = common::commit("abcdef2");
    let first = &data(&server, record, json!({"e": [commit.clone()]}))["recordEvents"];
    assert_eq!(first[0]["duplicate"], false);
    assert_eq!(first[0]["leafHash"].as_str().unwrap().len(), 64);
    let again = &data(&server, record, json!({"e": commit}))["recordEvents"];
    assert_eq!(again[0]["duplicate"], true);
    assert_eq!(again[0]["seq"], first[0]["seq"]);

    let bad = gql(&server, record, json!({"e": {"type": "deployment.succeeded"}}));
    assert!(bad["data"].is_null(), "{bad}");
    assert!(!error_code(&bad).is_empty(), "{bad}");
    let server_only = gql(&server, record, json!({"e": common::event("decision.recorded", json!({}))}));
    assert_eq!(error_code(&server_only), "server_only_type", "{server_only}");

    let decide = "mutation($r: JSON!) { decide(request: $r) }";
    let answer = &data(
        &server,
        decide,
        json!({"r": {"principal": "u-1001", "action": "deploy",
        "resource": {"service": "checkout", "environment": "production", "artifact": "sha256:never-staged"}}}),
    )["decide"];
    assert_eq!(answer["decision"], "deny", "{answer}");
    let recorded = &data(&server, "{ decisions { nodes { data } } }", json!({}))["decisions"]["nodes"];
    assert_eq!(recorded[0]["data"]["decisionId"], answer["decisionId"]);
    let unknown = gql(&server, decide, json!({"r": {"principal": "nobody", "action": "deploy"}}));
    assert_eq!(error_code(&unknown), "unknown_principal", "{unknown}");
}
