//! Ingestion end to end: CDEvents (every conformance example, through the
//! CloudEvents binding too), export as CDEvents, and GitHub and GitLab
//! webhooks with payloads shaped as those services document them, through
//! a real server on port 0 against a fresh store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::Server;
use serde_json::{Value, json};
use shiplog_core::ingest::github::sign;

fn fixtures(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(dir)
}

fn fixture(dir: &str, name: &str) -> Value {
    let path = fixtures(dir).join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cdevent_examples() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(fixtures("cdevents"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().to_owned(), p))
        .map(|(n, p)| (n, serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What each conformance example is recorded as, sent in name order (the
/// rest: `cdevent.received`). The rollback comes after `service_deployed`
/// of the same service and environment, which it rolls back.
fn expected_type(name: &str) -> &'static str {
    match name {
        "service_rolledback" => "deployment.rolledback",
        "service_deployed" | "service_upgraded" => "deployment.succeeded",
        "incident_detected" | "incident_reported" => "incident.opened",
        "incident_resolved" => "incident.resolved",
        _ => "cdevent.received",
    }
}

#[test]
fn every_cdevents_conformance_example_is_recorded() {
    let server = Server::start();
    let examples = cdevent_examples();
    assert_eq!(examples.len(), 45);
    // The examples share context ids; the first is sent as it is, the
    // others with their file name added to the id, as distinct events.
    let mut sent = Vec::new();
    for (i, (name, mut example)) in examples.into_iter().enumerate() {
        if i > 0 {
            let id = example["context"]["id"].as_str().unwrap().to_owned();
            example["context"]["id"] = json!(format!("{id}-{name}"));
        }
        let (status, receipt) = server.post("/v1/cdevents", &example);
        assert_eq!(status, 201, "{name}: {receipt}");
        assert_eq!(receipt["type"], expected_type(&name), "{name}: {receipt}");
        assert_eq!(receipt["duplicate"], false);
        sent.push((name, example, receipt));
    }
    let events = server.client_events();
    assert_eq!(events.len(), 45);
    for (name, example, receipt) in &sent {
        let e = events.iter().find(|e| e["seq"] == receipt["seq"]).unwrap();
        assert_eq!(e["type"], receipt["type"], "{name}");
        assert_eq!(e["data"]["cdevent"], *example, "{name}: the CDEvent is kept whole");
        assert_eq!(e["source"], example["context"]["source"], "{name}");
        if e["type"] == "cdevent.received" {
            assert_eq!(e["data"]["cdeventType"], example["context"]["type"], "{name}");
        }
    }

    // Sent again: the same event, recorded once (200, the original receipt).
    let (name, example, receipt) = &sent[3];
    let (status, again) = server.post("/v1/cdevents", example);
    assert_eq!(status, 200, "{name}: {again}");
    assert_eq!((again["seq"].clone(), again["duplicate"].clone()), (receipt["seq"].clone(), json!(true)));

    // The same source and id with other content is a conflict.
    let mut changed = example.clone();
    changed["subject"]["id"] = json!("someone-else");
    let (status, body) = server.post("/v1/cdevents", &changed);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "id_conflict");

    // The deployments fed the projections: DORA counts them.
    let (status, body) = server.post(
        "/graphql",
        &json!({"query": "{ dora(filter: {environment: \"test123\", from: \"2023-03-01T00:00:00Z\", to: \"2023-04-01T00:00:00Z\"}) { deployments failedDeployments } }"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["dora"], json!({"deployments": 2, "failedDeployments": 1}), "{body}");
    assert_eq!(server.client_events().len(), 45);
}

#[test]
fn a_batch_and_the_cloudevents_binding() {
    let server = Server::start();
    let mut deployed = fixture("cdevents", "service_deployed");
    let mut incident = fixture("cdevents", "incident_detected");
    incident["context"]["id"] = json!("inc-1");

    // A JSON array of CDEvents: all or nothing.
    let mut broken = fixture("cdevents", "service_upgraded");
    broken["subject"]["content"].as_object_mut().unwrap().remove("environment");
    let (status, body) = server.post("/v1/cdevents", &json!([deployed, broken]));
    assert_eq!(status, 400, "{body}");
    assert_eq!((body["field"].as_str(), body["index"].as_u64()), (Some("subject.content.environment"), Some(1)));
    assert!(server.client_events().is_empty(), "a refused batch records nothing");
    let (status, body) = server.post("/v1/cdevents", &json!([deployed, incident]));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 2);

    // Structured mode: the CDEvent is the CloudEvent's data.
    deployed["context"]["id"] = json!("d-structured");
    let ce = |cd: &Value| {
        json!({"specversion": "1.0", "id": cd["context"]["id"], "source": cd["context"]["source"],
               "type": cd["context"]["type"], "datacontenttype": "application/json", "data": cd})
    };
    let (status, body) =
        server.post_raw("/v1/cdevents", "application/cloudevents+json; charset=utf-8", &ce(&deployed).to_string());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["type"], "deployment.succeeded");

    // Attributes that contradict the CDEvent are refused.
    let mut lying = ce(&deployed);
    lying["id"] = json!("another-id");
    let (status, body) = server.post_raw("/v1/cdevents", "application/cloudevents+json", &lying.to_string());
    assert_eq!((status, body["field"].as_str()), (400, Some("id")), "{body}");

    // Batch mode.
    let mut a = deployed.clone();
    a["context"]["id"] = json!("d-batch-1");
    let mut b = deployed.clone();
    b["context"]["id"] = json!("d-batch-2");
    let (status, body) =
        server.post_raw("/v1/cdevents", "application/cloudevents-batch+json", &json!([ce(&a), ce(&b)]).to_string());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 2);

    // Binary mode: attributes in ce-* headers, the CDEvent in the body.
    deployed["context"]["id"] = json!("d-binary");
    let (status, body) = server.post_with(
        "/v1/cdevents",
        &[
            ("Content-Type", "application/json"),
            ("ce-specversion", "1.0"),
            ("ce-id", "d-binary"),
            ("ce-source", "/event/source/123"),
            ("ce-type", "dev.cdevents.service.deployed.0.3.0"),
        ],
        deployed.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{body}");

    // A native event through the binding, on /v1/events: binary mode, with
    // the actor as an extension attribute.
    let data = json!({"repo": "shop/web", "sha": "abc1234", "author": "u-7",
                      "authoredAt": "2026-11-19T08:00:00Z", "branch": "main"});
    let headers = [
        ("Content-Type", "application/json"),
        ("ce-specversion", "1.0"),
        ("ce-id", "push-1"),
        ("ce-source", "https://ci.example.com"),
        ("ce-type", "commit.pushed"),
        ("ce-time", "2026-11-19T08:01:00Z"),
        ("ce-actor", "u-7"),
    ];
    let (status, body) = server.post_with("/v1/events", &headers, data.to_string().as_bytes());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["type"], "commit.pushed");
    let (status, body) = server.post_with("/v1/events", &headers[..6], data.to_string().as_bytes());
    assert_eq!((status, body["field"].as_str()), (400, Some("actor")), "{body}");
    // Structured mode, a UUID id kept as the event's id.
    let id = uuid::Uuid::new_v4().to_string();
    let structured = json!({"specversion": "1.0", "id": id, "source": "https://ci.example.com",
        "type": "dev.shiplog.commit.pushed", "time": "2026-11-19T08:02:00Z", "actor": "u-7",
        "data": {"repo": "shop/web", "sha": "def5678", "author": "u-7", "authoredAt": "2026-11-19T08:00:00Z", "branch": "main"}});
    let (status, body) = server.post_raw("/v1/events", "application/cloudevents+json", &structured.to_string());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], id);
    // A CDEvent sent to /v1/events through the binding is a CDEvent still.
    deployed["context"]["id"] = json!("d-via-events");
    let (status, body) = server.post_raw("/v1/events", "application/cloudevents+json", &ce(&deployed).to_string());
    assert_eq!((status, body["type"].as_str()), (201, Some("deployment.succeeded")), "{body}");

    let (status, body) = server.post_raw("/v1/cdevents", "text/plain", "hello");
    assert_eq!((status, body["error"].as_str()), (415, Some("unsupported_media_type")), "{body}");
    let (status, body) = server.post_raw("/v1/cdevents", "application/json", "{\"context\": ");
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_json")), "{body}");
    let (status, body) = server.post("/v1/cdevents", &json!({"context": {"specversion": "0.3.0"}}));
    assert_eq!((status, body["field"].as_str()), (400, Some("context.specversion")), "{body}");
}

#[test]
fn oversized_bodies_are_refused() {
    let server = Server::start_with(&[
        "--max-body-bytes",
        "4096",
        "--max-webhook-body-bytes",
        "4096",
        "--github-webhook-secret",
        "s3cret",
    ]);
    let mut big = fixture("cdevents", "service_deployed");
    big["customData"] = json!({"padding": "x".repeat(8000)});
    let (status, body) = server.post("/v1/cdevents", &big);
    assert_eq!((status, body["error"].as_str()), (413, Some("body_too_large")), "{body}");
    let payload = json!({"zen": "x".repeat(8000)}).to_string();
    let sig = sign(b"s3cret", payload.as_bytes());
    let (status, body) = server.post_with(
        "/v1/webhooks/github",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "ping"),
            ("X-GitHub-Delivery", "d-1"),
            ("X-Hub-Signature-256", &sig),
        ],
        payload.as_bytes(),
    );
    assert_eq!((status, body["error"].as_str()), (413, Some("body_too_large")), "{body}");
    assert!(server.client_events().is_empty());
}

/// Ledger events exported as CDEvents are valid CDEvents another shiplog
/// takes back as the same events.
#[test]
fn the_ledger_exports_as_cdevents() {
    let server = Server::start();
    let natives = vec![
        common::commit("abc1234"),
        common::deployment("checkout"),
        common::event(
            "incident.opened",
            json!({"incidentId": "inc-9", "service": "checkout", "environment": "production", "severity": "sev2"}),
        ),
        common::event(
            "flag.changed",
            json!({"flag": "new-cart", "environment": "production", "from": false, "to": true}),
        ),
    ];
    let (status, _) = server.post("/v1/events", &json!(natives));
    assert_eq!(status, 201);
    let cd = fixture("cdevents", "ticket_created");
    assert_eq!(server.post("/v1/cdevents", &cd).0, 201);

    let (status, page) = server.get(&format!("/v1/events?format=cdevents&limit=100&after={}", server.base - 1));
    assert_eq!(status, 200, "{page}");
    let exported = page["events"].as_array().unwrap().clone();
    assert_eq!(exported.len(), 5);
    assert_eq!(exported[4], cd, "a CDEvent received is exported as received");
    assert_eq!(exported[1]["context"]["type"], "dev.cdevents.service.deployed.0.3.0");
    assert_eq!(exported[3]["context"]["type"], "dev.cdeventsx.shiplog-flag.changed.0.1.0");
    let (status, _, text) = server.get_text("/v1/events?format=cdevents", "application/x-ndjson");
    assert_eq!(status, 200);
    assert_eq!(text.lines().count(), 5 + server.base as usize, "the whole ledger");
    let (status, body) = server.get("/v1/events?format=xml");
    assert_eq!((status, body["field"].as_str()), (400, Some("format")));

    let other = Server::start();
    let (status, body) = other.post("/v1/cdevents", &json!(exported));
    assert_eq!(status, 201, "{body}");
    let types: Vec<&str> = body.as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["commit.pushed", "deployment.succeeded", "incident.opened", "flag.changed", "cdevent.received"]);
    let imported = other.client_events();
    for (original, copy) in natives.iter().zip(&imported) {
        for (k, v) in original["data"].as_object().unwrap() {
            assert_eq!(&copy["data"][k], v, "{k}");
        }
        assert_eq!(copy["actor"], original["actor"]);
    }
}

struct GitHub<'a> {
    server: &'a Server,
    secret: &'a str,
}

impl GitHub<'_> {
    fn deliver(&self, event: &str, delivery: &str, payload: &Value) -> (u16, Value) {
        let body = payload.to_string();
        let sig = sign(self.secret.as_bytes(), body.as_bytes());
        self.server.post_with(
            "/v1/webhooks/github",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", delivery),
                ("X-Hub-Signature-256", &sig),
                ("User-Agent", "GitHub-Hookshot/abc123"),
            ],
            body.as_bytes(),
        )
    }

    fn fixture(&self, event: &str, variant: &str, delivery: &str) -> (u16, Value) {
        let name = if variant.is_empty() { event.to_owned() } else { format!("{event}.{variant}") };
        self.deliver(event, delivery, &fixture("github", &name))
    }
}

fn types(body: &Value) -> Vec<String> {
    body["recorded"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn github_push_to_deployment_gives_a_lead_time() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--github-webhook-secret", "It's a Secret"];
    let mut first = Server::start_in(dir.path(), &args);
    let gh = GitHub { server: &first, secret: "It's a Secret" };

    let (status, body) = gh.fixture("ping", "", "p-1");
    assert_eq!((status, &body), (200, &json!({"pong": true})));

    let (status, body) = gh.fixture("push", "", "d-push");
    assert_eq!(status, 201, "{body}");
    assert_eq!(types(&body), ["commit.pushed", "commit.pushed"]);
    let (status, body) = gh.fixture("pull_request", "opened", "d-open");
    assert_eq!((status, types(&body)), (201, vec!["change.opened".to_owned()]), "{body}");
    let (status, body) = gh.fixture("pull_request_review", "submitted", "d-review");
    assert_eq!((status, types(&body)), (201, vec!["change.reviewed".to_owned()]), "{body}");
    let (status, body) = gh.fixture("pull_request", "closed", "d-merge");
    assert_eq!((status, types(&body)), (201, vec!["change.merged".to_owned()]), "{body}");
    let (status, body) = gh.fixture("workflow_run", "completed", "d-ci");
    assert_eq!((status, types(&body)), (201, vec!["build.started".to_owned(), "build.finished".to_owned()]), "{body}");
    let (status, body) = gh.fixture("check_suite", "completed", "d-checks");
    assert_eq!((status, types(&body)), (201, vec!["build.finished".to_owned()]), "{body}");
    let (status, body) = gh.fixture("release", "published", "d-release");
    assert_eq!((status, types(&body)), (201, vec!["artifact.published".to_owned()]), "{body}");
    // A restart between the merge and the deployment: what the deployment
    // looks up (the merge's commits) is rebuilt from the log.
    first.signal(libc::SIGTERM);
    first.wait(30);
    drop(first);
    let server = Server::start_in(dir.path(), &args);
    let gh = GitHub { server: &server, secret: "It's a Secret" };
    let (status, body) = gh.fixture("deployment", "created", "d-deploy");
    assert_eq!((status, types(&body)), (201, vec!["deployment.started".to_owned()]), "{body}");
    let (status, body) = gh.fixture("deployment_review", "approved", "d-approve");
    assert_eq!((status, types(&body)), (201, vec!["approval.granted".to_owned()]), "{body}");
    let (status, body) = gh.fixture("deployment_status", "created", "d-status");
    assert_eq!((status, types(&body)), (201, vec!["deployment.succeeded".to_owned()]), "{body}");
    let (status, body) = gh.fixture("deployment_status", "failure", "d-status-2");
    assert_eq!((status, types(&body)), (201, vec!["deployment.failed".to_owned()]), "{body}");

    // What was recorded.
    let events = server.client_events();
    let find = |t: &str| events.iter().find(|e| e["type"] == t).unwrap().clone();
    let merged = find("change.merged");
    assert_eq!(merged["data"]["repo"], "acme/payments");
    assert_eq!(merged["data"]["number"], 42);
    assert_eq!(merged["data"]["mergeSha"], "3333333333333333333333333333333333333333");
    let shas: Vec<&str> =
        merged["data"]["commits"].as_array().unwrap().iter().map(|c| c["sha"].as_str().unwrap()).collect();
    assert_eq!(shas, ["1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"]);
    let deployed = find("deployment.succeeded");
    assert_eq!(deployed["data"]["service"], "payments");
    assert_eq!(deployed["data"]["environment"], "production");
    assert_eq!(deployed["data"]["deploymentId"], "github:acme/payments:9001");
    assert_eq!(deployed["data"]["artifact"], "acme/payments@3333333333333333333333333333333333333333");
    assert_eq!(deployed["data"]["commits"].as_array().unwrap().len(), 2);
    let review = find("change.reviewed");
    assert_eq!(
        (review["data"]["reviewer"].as_str(), review["data"]["state"].as_str()),
        (Some("bob"), Some("approved"))
    );
    let approval = find("approval.granted");
    assert_eq!(approval["data"]["approver"], "dave");
    assert_eq!(approval["data"]["environment"], "production");
    let build = find("build.finished");
    assert_eq!((build["data"]["outcome"].as_str(), build["data"]["runId"].as_str()), (Some("success"), Some("7001")));
    assert_eq!(find("commit.pushed")["data"]["authoredAt"], "2026-11-02T09:00:00Z");
    assert_eq!(find("commit.pushed")["recordedBy"], "webhook:github");

    // The lead time, from the GitHub events alone: the deployment at
    // 2026-11-03T10:20Z brought commits authored 2026-11-02 at 09:00 and
    // 10:30 UTC: 91,200 s and 85,800 s, median 88,500 s.
    let (status, body) = server.post(
        "/graphql",
        &json!({"query": "{ dora(filter: {service: \"payments\", environment: \"production\", from: \"2026-11-01T00:00:00Z\", to: \"2026-11-08T00:00:00Z\"}) { deployments leadTime { median count } } }"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["dora"]["deployments"], 1, "{body}");
    assert_eq!(body["data"]["dora"]["leadTime"], json!({"median": 88500.0, "count": 2}), "{body}");

    // A redelivery (GitHub's "Redeliver") records nothing new; nor does the
    // same signed payload replayed under another delivery id.
    let before = server.client_events().len();
    for delivery in ["d-status", "d-status-replayed"] {
        let (status, body) = gh.fixture("deployment_status", "created", delivery);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["recorded"][0]["duplicate"], true);
        assert_eq!(body["recorded"][0]["type"], "deployment.succeeded");
    }
    let (status, body) = gh.fixture("push", "", "d-push-again");
    assert_eq!((status, body["recorded"][1]["duplicate"].as_bool()), (200, Some(true)), "{body}");
    assert_eq!(server.client_events().len(), before);
}

#[test]
fn github_deliveries_that_are_not_recorded() {
    let secret = "It's a Secret";
    let server = Server::start_with(&["--github-webhook-secret", secret]);
    let gh = GitHub { server: &server, secret };

    for (event, variant) in [("issues", "opened"), ("pull_request", "labeled"), ("pull_request", "closed-unmerged")] {
        let (status, body) = gh.fixture(event, variant, &format!("d-{event}-{variant}"));
        assert_eq!(status, 202, "{event} {variant}: {body}");
        assert_eq!(body["ignored"], true);
        assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()), "{body}");
    }

    // A wrong signature, none, or a malformed one: 401, and nothing recorded.
    let body = fixture("github", "push").to_string();
    let wrong = sign(b"not the secret", body.as_bytes());
    for sig in [Some(wrong.as_str()), None, Some("sha256=zz"), Some("sha1=0123")] {
        let mut headers =
            vec![("Content-Type", "application/json"), ("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-x")];
        if let Some(sig) = sig {
            headers.push(("X-Hub-Signature-256", sig));
        }
        let (status, answer) = server.post_with("/v1/webhooks/github", &headers, body.as_bytes());
        assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_signature")), "{sig:?}: {answer}");
    }
    // A body changed after signing.
    let sig = sign(secret.as_bytes(), body.as_bytes());
    let tampered = body.replace("alice", "mallory");
    let (status, _) = server.post_with(
        "/v1/webhooks/github",
        &[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-y"), ("X-Hub-Signature-256", &sig)],
        tampered.as_bytes(),
    );
    assert_eq!(status, 401);
    assert!(server.client_events().is_empty(), "refused deliveries record nothing");

    // Signed, but not JSON: 400.
    let junk = b"{not json";
    let sig = sign(secret.as_bytes(), junk);
    let (status, answer) = server.post_with(
        "/v1/webhooks/github",
        &[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-z"), ("X-Hub-Signature-256", &sig)],
        junk,
    );
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_json")), "{answer}");

    // Odd payloads for every event shiplog maps: never a 5xx.
    let events = shiplog_core::ingest::github::EVENTS.iter().copied().chain(["star"]);
    let odd = [
        json!({}),
        json!([]),
        json!(null),
        json!({"action": "opened"}),
        json!({"action": "closed", "pull_request": {"merged": true}}),
        json!({"action": "completed", "workflow_run": {"id": "x", "head_sha": 5}}),
        json!({"action": "created", "deployment_status": {"state": "success"}, "deployment": {}}),
        json!({"action": "approved", "workflow_job_runs": [{}]}),
        json!({"ref": "refs/heads/main", "commits": [{"id": "zz"}], "repository": {"full_name": "a/b"}}),
    ];
    for event in events {
        for (i, payload) in odd.iter().enumerate() {
            let (status, answer) = gh.deliver(event, &format!("odd-{event}-{i}"), payload);
            assert!(status < 500, "{event} {payload}: {status} {answer}");
            assert!(status == 200 || status == 202 || status == 400, "{event} {payload}: {status} {answer}");
        }
    }
    assert!(server.client_events().is_empty());

    // Form-encoded deliveries (GitHub's other content type) are read too.
    let payload = fixture("github", "push").to_string();
    let form = format!("payload={}", urlencode(&payload));
    let sig = sign(secret.as_bytes(), form.as_bytes());
    let (status, answer) = server.post_with(
        "/v1/webhooks/github",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "d-form"),
            ("X-Hub-Signature-256", &sig),
        ],
        form.as_bytes(),
    );
    assert_eq!(status, 201, "{answer}");

    // Without a configured secret the webhook is off.
    let plain = Server::start();
    let (status, answer) = plain.post_with("/v1/webhooks/github", &[("X-GitHub-Event", "ping")], b"{}");
    assert_eq!((status, answer["error"].as_str()), (403, Some("webhook_disabled")), "{answer}");
    assert!(!server.log().contains(secret), "the secret is never logged");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn gitlab_hooks() {
    let token = "gl-token-1";
    let server = Server::start_with(&["--gitlab-webhook-token", token]);
    let hook = |kind: &str, name: &str, key: &str, token: &str| {
        server.post_with(
            "/v1/webhooks/gitlab",
            &[
                ("Content-Type", "application/json"),
                ("X-Gitlab-Event", kind),
                ("X-Gitlab-Token", token),
                ("X-Gitlab-Event-UUID", key),
            ],
            fixture("gitlab", name).to_string().as_bytes(),
        )
    };
    let (status, body) = hook("Push Hook", "push", "k-push", token);
    assert_eq!((status, types(&body)), (201, vec!["commit.pushed".to_owned(), "commit.pushed".to_owned()]), "{body}");
    let (status, body) = hook("Merge Request Hook", "merge_request.open", "k-open", token);
    assert_eq!((status, types(&body)), (201, vec!["change.opened".to_owned()]), "{body}");
    let (status, body) = hook("Merge Request Hook", "merge_request.merge", "k-merge", token);
    assert_eq!((status, types(&body)), (201, vec!["change.merged".to_owned()]), "{body}");
    let (status, body) = hook("Pipeline Hook", "pipeline", "k-pipe", token);
    assert_eq!((status, types(&body)), (201, vec!["build.finished".to_owned()]), "{body}");
    let (status, body) = hook("Deployment Hook", "deployment.success", "k-dep", token);
    assert_eq!((status, types(&body)), (201, vec!["deployment.succeeded".to_owned()]), "{body}");
    let (status, body) = hook("Deployment Hook", "deployment.failed", "k-dep-2", token);
    assert_eq!((status, types(&body)), (201, vec!["deployment.failed".to_owned()]), "{body}");

    let events = server.client_events();
    let merged = events.iter().find(|e| e["type"] == "change.merged").unwrap();
    assert_eq!(merged["data"]["repo"], "acme/ledger-api");
    assert_eq!(merged["data"]["number"], 7);
    let opened = events.iter().find(|e| e["type"] == "change.opened").unwrap();
    assert_eq!(merged["data"]["author"], opened["data"]["author"], "the merge names who opened it");
    let deployed = events.iter().find(|e| e["type"] == "deployment.succeeded").unwrap();
    assert_eq!(deployed["data"]["environment"], "production");
    assert_eq!(deployed["data"]["service"], "ledger-api");

    // Again: nothing new. A wrong token: 401. An unknown hook: 202.
    let (status, _) = hook("Push Hook", "push", "k-push", token);
    assert_eq!(status, 200);
    let (status, body) = hook("Push Hook", "push", "k-push-2", "wrong");
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_signature")), "{body}");
    let (status, body) = hook("Issue Hook", "push", "k-issue", token);
    assert_eq!((status, body["ignored"].as_bool()), (202, Some(true)), "{body}");
    assert_eq!(server.client_events().len(), events.len());
    assert!(!server.log().contains(token), "the token is never logged");

    // No token; a body that is not JSON; odd payloads: 401, 400, never 5xx.
    let (status, _) = server.post_with("/v1/webhooks/gitlab", &[("X-Gitlab-Event", "Push Hook")], b"{}");
    assert_eq!(status, 401);
    let (status, body) = server.post_with(
        "/v1/webhooks/gitlab",
        &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", token)],
        b"<xml/>",
    );
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_json")), "{body}");
    for kind in ["Push Hook", "Merge Request Hook", "Pipeline Hook", "Deployment Hook", "Tag Push Hook"] {
        for payload in [
            json!({}),
            json!([]),
            json!({"ref": "refs/heads/main", "commits": [{"id": "zz"}], "project": {"path_with_namespace": "a/b"}}),
            json!({"object_attributes": {"iid": 1, "action": "merge"}, "project": {"path_with_namespace": "a/b"}}),
            json!({"object_attributes": {"status": "success"}}),
            json!({"status": "success", "project": {"path_with_namespace": "a/b"}, "commit_url": "x"}),
        ] {
            let (status, body) = server.post_with(
                "/v1/webhooks/gitlab",
                &[("X-Gitlab-Event", kind), ("X-Gitlab-Token", token)],
                payload.to_string().as_bytes(),
            );
            assert!([200, 202, 400].contains(&status), "{kind} {payload}: {status} {body}");
        }
    }
    // A fast-forward merge names no merge commit: the last commit stands in.
    let mut ff = fixture("gitlab", "merge_request.merge");
    ff["object_attributes"]["iid"] = json!(8);
    ff["object_attributes"]["merge_commit_sha"] = Value::Null;
    let (status, body) = server.post_with(
        "/v1/webhooks/gitlab",
        &[("X-Gitlab-Event", "Merge Request Hook"), ("X-Gitlab-Token", token)],
        ff.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let merged =
        server.client_events().into_iter().find(|e| e["type"] == "change.merged" && e["data"]["number"] == 8).unwrap();
    assert_eq!(merged["data"]["mergeSha"], ff["object_attributes"]["last_commit"]["id"]);

    let plain = Server::start();
    let (status, body) = plain.post_with("/v1/webhooks/gitlab", &[("X-Gitlab-Token", token)], b"{}");
    assert_eq!((status, body["error"].as_str()), (403, Some("webhook_disabled")), "{body}");
}

#[test]
fn more_of_the_cloudevents_binding_and_cdevents() {
    let server = Server::start();
    let deployed = fixture("cdevents", "service_deployed");
    let ce = |cd: &Value| json!({"specversion": "1.0", "id": cd["context"]["id"], "source": cd["context"]["source"], "type": cd["context"]["type"]});
    // data_base64 holding the CDEvent.
    use base64::Engine;
    let mut b64 = ce(&deployed);
    b64["data_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(deployed.to_string()));
    let (status, body) = server.post_raw("/v1/cdevents", "application/cloudevents+json", &b64.to_string());
    assert_eq!((status, body["type"].as_str()), (201, Some("deployment.succeeded")), "{body}");
    // Both data and data_base64: refused.
    let mut both = b64.clone();
    both["data"] = deployed.clone();
    let (status, body) = server.post_raw("/v1/cdevents", "application/cloudevents+json", &both.to_string());
    assert_eq!((status, body["field"].as_str()), (400, Some("data_base64")), "{body}");
    // Binary mode with data that is not JSON: 415.
    let (status, body) = server.post_with(
        "/v1/cdevents",
        &[
            ("Content-Type", "text/plain"),
            ("ce-specversion", "1.0"),
            ("ce-id", "x"),
            ("ce-source", "/s"),
            ("ce-type", "dev.cdevents.service.deployed.0.3.0"),
        ],
        b"hello",
    );
    assert_eq!((status, body["error"].as_str()), (415, Some("unsupported_media_type")), "{body}");

    // A batch mixing a native event and a CDEvent; an error names its index.
    let native = json!({"specversion": "1.0", "id": uuid::Uuid::new_v4().to_string(), "source": "/ci", "type": "commit.pushed",
        "time": "2026-11-19T08:02:00Z", "actor": "u-7",
        "data": {"repo": "shop/web", "sha": "abc1234", "author": "u-7", "authoredAt": "2026-11-19T08:00:00Z", "branch": "main"}});
    let mut other = deployed.clone();
    other["context"]["id"] = json!("d-mixed");
    let mut cd = ce(&other);
    cd["data"] = other.clone();
    let mut broken = cd.clone();
    broken["data"]["context"]["timestamp"] = json!("soon");
    let (status, body) =
        server.post_raw("/v1/events", "application/cloudevents-batch+json", &json!([native, broken]).to_string());
    assert_eq!(
        (status, body["index"].as_u64(), body["field"].as_str()),
        (400, Some(1), Some("context.timestamp")),
        "{body}"
    );
    let (status, body) =
        server.post_raw("/v1/events", "application/cloudevents-batch+json", &json!([native, cd]).to_string());
    assert_eq!(status, 201, "{body}");
    let types: Vec<&str> = body.as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["commit.pushed", "deployment.succeeded"]);

    // A deployment and its rollback in one batch: the rollback names it.
    let mut d = fixture("cdevents", "service_deployed");
    d["context"]["id"] = json!("d-then-rolled-back");
    d["subject"]["id"] = json!("billing");
    let mut r = fixture("cdevents", "service_rolledback");
    r["context"]["id"] = json!("r-1");
    r["subject"]["id"] = json!("billing");
    let (status, body) = server.post("/v1/cdevents", &json!([d, r]));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body[1]["type"], "deployment.rolledback", "{body}");
    let events = server.client_events();
    let rollback = events.iter().find(|e| e["type"] == "deployment.rolledback").unwrap();
    assert_eq!(rollback["data"]["deploymentId"], "d-then-rolled-back");

    // v0.4 and custom types through the server.
    let v04 = json!({
        "context": {"version": "0.4.1", "id": "v04-1", "source": "argocd", "type": "dev.cdevents.service.deployed.0.2.0", "timestamp": "2024-01-15T10:40:00Z"},
        "subject": {"id": "payments", "source": "argocd", "type": "service", "content": {"environment": {"id": "production"}, "artifactId": "pkg:oci/payments@v2.1.0"}}
    });
    let (status, body) = server.post("/v1/cdevents", &v04);
    assert_eq!((status, body["type"].as_str()), (201, Some("deployment.succeeded")), "{body}");
    let custom = json!({
        "context": {"specversion": "0.5.1", "id": "q-1", "source": "/registry", "type": "dev.cdeventsx.myregistry-quota.exceeded.0.1.0", "timestamp": "2024-01-15T10:40:00Z"},
        "subject": {"id": "heavy_user", "content": {"limit": "50Tb"}}
    });
    let (status, body) = server.post("/v1/cdevents", &custom);
    assert_eq!((status, body["type"].as_str()), (201, Some("cdevent.received")), "{body}");

    // customData.shiplog completes a change; a bad value there is a 400
    // naming it.
    let mut merged = fixture("cdevents", "change_merged");
    merged["context"]["id"] = json!("m-1");
    merged["customData"] = json!({"shiplog": {"number": 42, "author": "alice", "mergedBy": "bob", "mergeSha": "3333333",
        "commits": [{"sha": "1111111", "authoredAt": "2023-03-19T10:00:00Z"}]}});
    let (status, body) = server.post("/v1/cdevents", &merged);
    assert_eq!((status, body["type"].as_str()), (201, Some("change.merged")), "{body}");
    merged["context"]["id"] = json!("m-2");
    merged["customData"]["shiplog"]["commits"][0]["authoredAt"] = json!("yesterday");
    let (status, body) = server.post("/v1/cdevents", &merged);
    assert_eq!((status, body["field"].as_str()), (400, Some("customData.shiplog.commits[0].authoredAt")), "{body}");

    // Clients cannot pass events off as received CDEvents.
    let forged = common::event(
        "cdevent.received",
        json!({"cdeventType": "dev.cdevents.x.y.0.1.0", "subject": "s", "cdevent": {}}),
    );
    let (status, body) = server.post("/v1/events", &forged);
    assert_eq!((status, body["error"].as_str()), (400, Some("server_only_type")), "{body}");
    let mut forged = common::deployment("checkout");
    forged["data"]["cdevent"] = fixture("cdevents", "service_deployed");
    let (status, body) = server.post("/v1/events", &forged);
    assert_eq!((status, body["field"].as_str()), (400, Some("data.cdevent")), "{body}");
}
