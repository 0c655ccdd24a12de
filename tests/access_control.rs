//! Access control, as pipelines, auditors and admins meet it: every route
//! and GraphQL operation with no token, a role that may not and roles that
//! may; revoked tokens; who recorded what; the rate limit; the first admin
//! token; and that no secret ever reaches the log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{ADMIN_TOKEN, BIN, Server};
use serde_json::{Value, json};

const ALL: &[&str] = &["admin", "pipeline", "auditor"];
const RECORD: &[&str] = &["admin", "pipeline"];
const DECIDE: &[&str] = &["admin", "pipeline"];
const READ: &[&str] = &["admin", "pipeline", "auditor"];
const EXPORT: &[&str] = &["admin", "auditor"];
const PROVE: &[&str] = &["admin", "auditor"];
const ADMIN: &[&str] = &["admin"];

/// Who may call a route: anyone (public), or tokens of these roles.
#[derive(Clone, Copy)]
enum May {
    Public,
    Roles(&'static [&'static str]),
}

/// A raw request with this token: the status and the body as text.
fn call(server: &Server, token: Option<&str>, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut req = Server::bare_agent().request(method, &format!("{}{path}", server.url));
    if let Some(token) = token {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    let result = match body {
        Some(body) => req.set("Content-Type", "application/json").send_string(&body.to_string()),
        None => req.call(),
    };
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => (r.status(), r.into_string().unwrap()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["error"].as_str().or_else(|| v["errors"][0]["extensions"]["code"].as_str()).unwrap_or("").to_owned()
}

/// Refused by access control (rather than answered, well or with an error
/// of the request's own).
fn refused(status: u16, body: &str) -> bool {
    matches!(error_code(body).as_str(), "unauthenticated" | "forbidden") || status == 401
}

struct Roles {
    server: Server,
    tokens: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

fn start() -> Roles {
    let dir = tempfile::tempdir().unwrap();
    let policies = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let server = Server::start_with(&["--policies", policies.to_str().unwrap(), "--rate-limit", "0"]);
    let tokens = vec![
        ("admin", ADMIN_TOKEN.to_owned()),
        ("pipeline", server.token("ci-main", "pipeline")),
        ("auditor", server.token("audit-2026", "auditor")),
    ];
    Roles { server, tokens, _dir: dir }
}

/// Every route, with what it needs: the table the access policy must
/// honour, written from PRODUCT.md rather than read from the server.
#[test]
fn every_route_answers_401_403_or_serves_by_role() {
    let r = start();
    let s = &r.server;
    let (_, receipt) = s.post("/v1/events", &common::commit("abc1234"));
    let seq = receipt["seq"].as_u64().unwrap();
    let decision = json!({"principal": "u-1005", "action": "deploy",
        "resource": {"service": "checkout", "environment": "production", "artifact": "sha256:x"}});
    let cdevent: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/cdevents/ticket_created.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // Method, path, body, who may, and the status those who may get.
    let mut routes: Vec<(&str, String, Option<Value>, May, u16)> = vec![
        ("GET", "/healthz".into(), None, May::Public, 200),
        ("GET", "/readyz".into(), None, May::Public, 200),
        ("GET", "/metrics".into(), None, May::Public, 200),
        ("GET", "/graphql".into(), None, May::Public, 200),
        ("GET", "/".into(), None, May::Public, 200),
        ("GET", "/assets/app.js".into(), None, May::Public, 200),
        ("GET", "/assets/app.css".into(), None, May::Public, 200),
        // No webhook secret configured: the webhook itself says so.
        ("POST", "/v1/webhooks/github".into(), Some(json!({"zen": "hi"})), May::Public, 403),
        ("POST", "/v1/webhooks/gitlab".into(), Some(json!({})), May::Public, 403),
        ("POST", "/v1/events".into(), Some(Value::Null), May::Roles(RECORD), 201),
        ("GET", "/v1/events".into(), None, May::Roles(READ), 200),
        ("GET", "/v1/events?format=cdevents".into(), None, May::Roles(EXPORT), 200),
        ("GET", "/v1/streams/repo/shop/web".into(), None, May::Roles(READ), 200),
        ("POST", "/v1/cdevents".into(), Some(Value::Null), May::Roles(RECORD), 201),
        ("POST", "/v1/decisions".into(), Some(decision), May::Roles(DECIDE), 200),
        ("POST", "/v1/policies/reload".into(), Some(json!({})), May::Roles(ADMIN), 200),
        ("GET", "/v1/checkpoint".into(), None, May::Roles(PROVE), 200),
        ("GET", "/v1/checkpoint/key".into(), None, May::Roles(PROVE), 200),
        ("GET", format!("/v1/proofs/inclusion?seq={seq}&treeSize={}", seq + 1), None, May::Roles(PROVE), 200),
        ("GET", format!("/v1/proofs/consistency?from=1&to={}", seq + 1), None, May::Roles(PROVE), 200),
        ("GET", "/v1/tokens".into(), None, May::Roles(ADMIN), 200),
        ("POST", "/v1/tokens".into(), Some(Value::Null), May::Roles(ADMIN), 201),
        ("DELETE", "/v1/tokens/nobody".into(), None, May::Roles(ADMIN), 404),
        // Not a route, or not a method of it: still no answer without a token.
        ("GET", "/v1/no-such-route".into(), None, May::Roles(ALL), 404),
        ("PUT", "/v1/events".into(), None, May::Roles(ALL), 405),
        ("GET", "/v1/decisions".into(), None, May::Roles(ALL), 405),
    ];
    let mut n = 0;
    for (method, path, body, may, ok) in &mut routes {
        for (role, token) in &r.tokens {
            // A fresh body per call, so that appends and token creations
            // are never duplicates of one another.
            n += 1;
            let fresh = match (path.as_str(), &body) {
                ("/v1/events", Some(Value::Null)) => Some(common::commit(&format!("{n:07x}"))),
                ("/v1/cdevents", Some(Value::Null)) => {
                    let mut e = cdevent.clone();
                    e["context"]["id"] = json!(format!("access-{n}"));
                    Some(e)
                }
                ("/v1/tokens", Some(Value::Null)) => Some(json!({"name": format!("made-{n}"), "role": "auditor"})),
                (_, b) => (*b).clone(),
            };
            let (status, answer) = call(s, Some(token), method, path, fresh.as_ref());
            let expected = match may {
                May::Public => true,
                May::Roles(roles) => roles.contains(role),
            };
            if expected {
                assert!(!refused(status, &answer), "{role} {method} {path}: {status} {answer}");
                assert_eq!(status, *ok, "{role} {method} {path}: {answer}");
            } else {
                assert_eq!(status, 403, "{role} {method} {path}: {answer}");
                assert_eq!(error_code(&answer), "forbidden", "{role} {method} {path}");
                let v: Value = serde_json::from_str(&answer).unwrap();
                assert_eq!(v["role"], *role);
                assert!(v["message"].as_str().unwrap().contains("needs a token with the role"), "{answer}");
            }
        }
        let (status, answer) = call(s, None, method, path, body.as_ref().filter(|b| !b.is_null()));
        match may {
            May::Public => {
                assert!(!refused(status, &answer), "no token: {method} {path}: {status} {answer}");
                assert_eq!(status, *ok, "no token: {method} {path}: {answer}");
            }
            May::Roles(_) => {
                assert_eq!(status, 401, "no token: {method} {path}: {answer}");
                assert_eq!(error_code(&answer), "unauthenticated");
            }
        }
        // A token this server never issued is refused like no token.
        if let May::Roles(_) = may {
            let (status, answer) = call(s, Some("slt_not-a-token-of-this-server"), method, path, None);
            assert_eq!((status, error_code(&answer).as_str()), (401, "unauthenticated"), "{method} {path}");
        }
    }
    // 401s say how to authenticate.
    let resp = Server::bare_agent().get(&format!("{}/v1/events", s.url)).call();
    let Err(ureq::Error::Status(401, resp)) = resp else { panic!("expected a 401") };
    assert_eq!(resp.header("WWW-Authenticate"), Some("Bearer realm=\"shiplog\""));
}

/// Every GraphQL operation, by role.
#[test]
fn every_graphql_operation_answers_by_role() {
    let r = start();
    let s = &r.server;
    // Something for the queries to find: a commit, two versions deployed.
    assert_eq!(s.post("/v1/events", &common::commit("abc1234")).0, 201);
    for (n, version) in ["1.0.0", "1.1.0"].iter().enumerate() {
        let mut d = common::deployment("checkout");
        d["data"]["version"] = json!(version);
        d["data"]["deploymentId"] = json!(format!("d-{n}"));
        assert_eq!(s.post("/v1/events", &d).0, 201);
    }
    let operations: Vec<(&str, &str, &[&str])> = vec![
        ("dora", "{ dora { deployments } }", READ),
        ("pipeline", "{ pipeline { builds } }", READ),
        ("events", "{ events(first: 1) { nodes { seq } } }", READ),
        ("decisions", "{ decisions(first: 1) { nodes { seq } } }", READ),
        ("trace", "{ trace(commit: \"abc1234\") { commits { seq } } }", READ),
        ("deployment", "{ deployment(id: \"d-1\") { deploymentId } }", READ),
        ("deployments", "{ deployments(first: 1) { deploymentId } }", READ),
        (
            "releaseNotes",
            "{ releaseNotes(service: \"checkout\", fromVersion: \"1.0.0\", toVersion: \"1.1.0\") { service } }",
            READ,
        ),
        ("checkpoint", "{ checkpoint { size } }", PROVE),
        ("recordEvents", "mutation($e: JSON!) { recordEvents(events: $e) { seq } }", RECORD),
        (
            "decide",
            "mutation { decide(request: {principal: \"u-1005\", action: \"deploy\", resource: {service: \"checkout\", environment: \"production\", artifact: \"sha256:x\"}}) }",
            DECIDE,
        ),
    ];
    // The table covers every field of Query and Mutation in the checked-in
    // SDL (the subscription is covered in graphql_api.rs).
    let sdl = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/shiplog.graphql"),
    )
    .unwrap();
    let mut fields = BTreeSet::new();
    for root in ["type Query {", "type Mutation {"] {
        let body = &sdl[sdl.find(root).unwrap() + root.len()..];
        let body = &body[..body.find("\n}").unwrap()];
        let mut depth = 0i32;
        let mut in_doc = false;
        for line in body.lines() {
            let t = line.trim();
            if t.starts_with("\"\"\"") {
                in_doc = !(in_doc || (t.len() > 3 && t.ends_with("\"\"\"")));
                continue;
            }
            if in_doc || t.is_empty() {
                continue;
            }
            if depth == 0 {
                let name: String = t.chars().take_while(|c| c.is_alphanumeric()).collect();
                if !name.is_empty() {
                    fields.insert(name);
                }
            }
            depth += t.matches('(').count() as i32 - t.matches(')').count() as i32;
        }
    }
    let covered: BTreeSet<String> = operations.iter().map(|(f, _, _)| (*f).to_owned()).collect();
    assert_eq!(covered, fields, "every Query and Mutation field is in the table");

    for (n, (field, query, roles)) in operations.iter().enumerate() {
        let variables = json!({"e": common::commit(&format!("{n:07x}"))});
        let body = json!({"query": query, "variables": variables});
        let (status, answer) = call(s, None, "POST", "/graphql", Some(&body));
        assert_eq!((status, error_code(&answer).as_str()), (401, "unauthenticated"), "{field}: {answer}");
        for (role, token) in &r.tokens {
            let mut body = body.clone();
            body["variables"]["e"] = common::commit(&format!("{n:03x}{:04x}", role.len()));
            let (status, answer) = call(s, Some(token), "POST", "/graphql", Some(&body));
            if roles.contains(role) {
                let v: Value = serde_json::from_str(&answer).unwrap();
                assert_eq!(status, 200, "{role} {field}: {answer}");
                assert!(v.get("errors").is_none(), "{role} {field}: answered in full, without errors: {answer}");
            } else {
                assert_eq!(status, 403, "{role} {field}: {answer}");
                assert_eq!(error_code(&answer), "forbidden", "{role} {field}: {answer}");
            }
        }
    }
    // Part allowed, part refused: the allowed part is answered.
    let (_, pipeline) = &r.tokens[1];
    let (status, answer) = call(
        s,
        Some(pipeline),
        "POST",
        "/graphql",
        Some(&json!({"query": "{ dora { deployments } checkpoint { size } }"})),
    );
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(v["data"]["dora"]["deployments"].is_number(), "{answer}");
    assert_eq!(v["errors"][0]["extensions"]["code"], "forbidden", "{answer}");
}

/// A token records under its name; a revoked token is refused from then
/// on; the CLI makes, lists and revokes tokens; secrets stay out of the
/// ledger and the log.
#[test]
fn tokens_are_made_used_and_revoked_and_no_secret_is_logged() {
    let github_secret = "gh-webhook-secret-6f1d0c2a";
    let gitlab_token = "gl-hook-token-93b2e7f1";
    let server = Server::start_with(&[
        "--github-webhook-secret",
        github_secret,
        "--gitlab-webhook-token",
        gitlab_token,
        "--rate-limit",
        "0",
    ]);
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("token")
            .args(args)
            .args(["--server", &server.url])
            .env("SHIPLOG_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, out, err) = cli(&["create", "--role", "pipeline", "--name", "ci-main"]);
    assert_eq!(code, Some(0), "{err}");
    let secret = out.trim().to_owned();
    assert!(secret.starts_with("slt_") && !secret.contains(char::is_whitespace), "stdout is the secret alone: {out}");
    assert!(err.contains("shown this once"), "{err}");

    // The same name again, a bad role, a reserved name: refused, clearly.
    let (code, _, err) = cli(&["create", "--role", "pipeline", "--name", "ci-main"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("token_exists") && err.contains("revoke it first"), "{err}");
    let (status, body) = server.post("/v1/tokens", &json!({"name": "x", "role": "root"}));
    assert_eq!((status, body["field"].as_str()), (400, Some("role")), "{body}");
    let (status, body) = server.post("/v1/tokens", &json!({"name": "shiplog", "role": "admin"}));
    assert_eq!((status, body["field"].as_str()), (400, Some("name")), "{body}");

    // What the token records carries its name; server-only types are refused.
    let (status, receipt) = server.call_as(Some(&secret), "POST", "/v1/events", Some(&common::deployment("checkout")));
    assert_eq!(status, 201, "{receipt}");
    let recorded = server.client_events();
    let mine = recorded.iter().find(|e| e["seq"] == receipt["seq"]).unwrap();
    assert_eq!(mine["recordedBy"], "ci-main");
    let forged = common::event("token.created", json!({"name": "evil", "role": "admin", "secretSha256": "00"}));
    let (status, body) = server.call_as(Some(&secret), "POST", "/v1/events", Some(&forged));
    assert_eq!((status, body["error"].as_str()), (400, Some("server_only_type")), "{body}");

    // Listed without secrets; the ledger holds the events, never the secret.
    let (code, out, _) = cli(&["list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("ci-main") && out.contains("pipeline") && out.contains("live"), "{out}");
    let all = serde_json::to_string(&server.all_events()).unwrap();
    assert!(!all.contains(&secret) && !all.contains(ADMIN_TOKEN), "no secret in the ledger");
    let created: Vec<Value> = server.all_events().into_iter().filter(|e| e["type"] == "token.created").collect();
    assert_eq!(created.len(), 2, "the admin token and ci-main");
    assert_eq!(created[1]["data"]["name"], "ci-main");
    assert_eq!(created[1]["recordedBy"], "admin", "made by the admin token");
    assert_eq!(created[1]["data"]["secretSha256"].as_str().unwrap().len(), 64);

    // Revoked: refused from then on, and the refusal says so.
    let (code, out, err) = cli(&["revoke", "ci-main"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (status, body) = server.call_as(Some(&secret), "GET", "/v1/events", None);
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthenticated")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("revoked"), "{body}");
    let (code, _, err) = cli(&["revoke", "ci-main"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no live token"), "{err}");
    let (code, out, _) = cli(&["list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("revoked"), "{out}");
    // The name is free again, for a new secret.
    let (code, out, _) = cli(&["create", "--role", "auditor", "--name", "ci-main"]);
    assert_eq!(code, Some(0));
    let second = out.trim().to_owned();
    assert_ne!(second, secret);
    assert_eq!(call(&server, Some(&second), "GET", "/v1/checkpoint/key", None).0, 200, "an auditor proves");
    assert_eq!(server.call_as(Some(&secret), "GET", "/v1/events", None).0, 401, "the old secret stays revoked");

    // A restart keeps all of it: tokens live in the ledger.
    let data_dir = server.data_dir.clone();
    let mut server = server;
    server.signal(libc::SIGTERM);
    assert!(server.wait(30).success());
    let log_before = server.log();
    let keep = server; // the temporary directory lives as long as this
    let again = Server::start_in(
        &data_dir,
        &["--github-webhook-secret", github_secret, "--gitlab-webhook-token", gitlab_token],
    );
    assert_eq!(again.call_as(Some(&second), "GET", "/v1/events", None).0, 200);
    assert_eq!(again.call_as(Some(&secret), "GET", "/v1/events", None).0, 401);
    let created_again = again.all_events().iter().filter(|e| e["type"] == "token.created").count();
    assert_eq!(created_again, 3, "the same SHIPLOG_ADMIN_TOKEN is not recorded twice");

    // Webhooks signed with their secrets, and bad attempts, then the log.
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let signature = shiplog_core::ingest::github::sign(github_secret.as_bytes(), body);
    let (status, _) = again.post_with(
        "/v1/webhooks/github",
        &[
            ("X-GitHub-Event", "ping"),
            ("X-GitHub-Delivery", "d-1"),
            ("X-Hub-Signature-256", &signature),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    assert_eq!(status, 200);
    let (status, _) = again.post_with(
        "/v1/webhooks/gitlab",
        &[("X-Gitlab-Token", gitlab_token), ("X-Gitlab-Event", "System Hook")],
        b"{}",
    );
    assert!(status < 500);
    let (status, _) = again.call_as(Some("slt_guessing-a-token-0000000000000000"), "GET", "/v1/events", None);
    assert_eq!(status, 401);
    let log = format!("{log_before}{}", again.log());
    assert!(log.contains("token created") && log.contains("token revoked"), "the log says what happened");
    for secret in [ADMIN_TOKEN, &secret, &second, github_secret, gitlab_token, "slt_guessing-a-token"] {
        assert!(!log.contains(secret), "{secret:?} appears in the log");
    }
    drop(keep);
}

/// Per token: a burst, then 429 with Retry-After; other tokens go on.
#[test]
fn the_rate_limit_answers_429_with_retry_after() {
    let server = Server::start_with(&["--rate-limit", "2", "--rate-limit-burst", "5"]);
    let pipeline = server.token("ci-main", "pipeline");
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..8 {
        let resp = Server::bare_agent()
            .get(&format!("{}/v1/events?limit=1", server.url))
            .set("Authorization", &format!("Bearer {pipeline}"))
            .call();
        match resp {
            Ok(r) => statuses.push(r.status()),
            Err(ureq::Error::Status(status, r)) => {
                statuses.push(status);
                refusal.get_or_insert_with(|| (r.header("Retry-After").map(str::to_owned), r.into_string().unwrap()));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "the burst is served: {statuses:?}");
    assert!(statuses[5..].contains(&429), "then refused: {statuses:?}");
    let (retry_after, body) = refusal.unwrap();
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=1).contains(&secs), "at 2 per second, one second: {secs}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "rate_limited");
    assert!(v["message"].as_str().unwrap().contains("ci-main"), "{body}");
    // Another token has its own bucket; probes are never limited.
    let (status, _) = server.get("/v1/events?limit=1");
    assert_eq!(status, 200);
    for _ in 0..20 {
        assert_eq!(server.call_as(None, "GET", "/healthz", None).0, 200);
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(server.call_as(Some(&pipeline), "GET", "/v1/events?limit=1", None).0, 200, "refilled");
}

/// Without SHIPLOG_ADMIN_TOKEN, the first start makes an admin token and
/// prints it once; later starts do not; a bad SHIPLOG_ADMIN_TOKEN stops the
/// server with a message that says how to make a good one.
#[test]
fn the_first_admin_token_is_made_and_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start_env(dir.path(), &[], &[("SHIPLOG_ADMIN_TOKEN", None)]);
    let log = first.log();
    let line = log.lines().map(str::trim).find(|l| l.starts_with("slt_")).expect("the token is printed");
    let token = line.to_owned();
    assert_eq!(log.matches(&token).count(), 1, "printed once");
    assert_eq!(first.call_as(Some(&token), "GET", "/v1/tokens", None).0, 200);
    drop(first);
    let second = Server::start_env(dir.path(), &[], &[("SHIPLOG_ADMIN_TOKEN", None)]);
    assert_eq!(second.log().matches(&token).count(), 1, "not printed again");
    assert_eq!(second.call_as(Some(&token), "GET", "/v1/tokens", None).0, 200);
    drop(second);

    // A new SHIPLOG_ADMIN_TOKEN replaces the admin token of that name.
    let third = Server::start_in(dir.path(), &[]);
    assert_eq!(third.call_as(Some(ADMIN_TOKEN), "GET", "/v1/tokens", None).0, 200);
    assert_eq!(third.call_as(Some(&token), "GET", "/v1/tokens", None).0, 401, "the generated one is revoked");
    drop(third);

    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("SHIPLOG_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHIPLOG_ADMIN_TOKEN must be at least 32") && err.contains("openssl rand"), "{err}");
    assert!(!err.contains("short\""), "the value is not echoed");
}

/// A request that does not finish within --request-timeout (here, a body
/// that never arrives) is answered 503 `timeout` with Retry-After, and the
/// server goes on serving.
#[test]
fn a_request_that_takes_too_long_is_abandoned_with_503() {
    use std::io::{Read, Write};
    let server = Server::start_with(&["--request-timeout", "1"]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"timeout\"") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed without an answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900) && waited < std::time::Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(server.get("/v1/events").0, 200, "the server goes on");
    assert!(server.client_events().is_empty(), "nothing was recorded");
}
