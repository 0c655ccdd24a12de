//! The ledger's HTTP API, end to end: a real `shiplog serve` process on port
//! 0 against a fresh store, spoken to as a pipeline or an auditor would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};

use common::{BIN, Server, commit, deployment, event};
use serde_json::{Value, json};

#[test]
fn an_event_is_appended_and_read_back() {
    let server = Server::start();
    let sent = deployment("checkout");
    let (status, receipt) = server.post("/v1/events", &sent);
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["id"], sent["id"]);
    let b = server.base;
    assert_eq!(receipt["seq"], b);
    assert_eq!(receipt["stream"], "deploy/checkout/production");
    assert_eq!(receipt["streamVersion"], 0);
    assert_eq!(receipt["duplicate"], false);

    let (status, batch) = server.post("/v1/events", &json!([commit("abcdef1"), commit("abcdef2")]));
    assert_eq!(status, 201);
    assert_eq!(
        batch.as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>(),
        [b + 1, b + 2]
    );

    let (status, page) = server.get(&format!("/v1/events?after={}", b - 1));
    assert_eq!(status, 200);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(page["nextAfter"], b + 2);
    let first = &events[0];
    for field in ["id", "type", "occurredAt", "actor", "source", "data"] {
        assert_eq!(first[field], sent[field], "field {field}");
    }
    assert_eq!(first["recordedAt"], receipt["recordedAt"]);
    assert_eq!(first["recordedBy"], "admin", "the token's name");

    let (_, page) = server.get(&format!("/v1/events?after={b}&type=commit.pushed&limit=1"));
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["events"][0]["seq"], b + 1);

    let (status, stream) = server.get("/v1/streams/repo/shop/web");
    assert_eq!(status, 200, "{stream}");
    assert_eq!(stream["version"], 1);
    assert_eq!(stream["events"].as_array().unwrap().len(), 2);
    assert_eq!(stream["nextFrom"], 2);

    let (status, ct, body) = server.get_text(&format!("/v1/events?after={}", b - 1), "application/x-ndjson");
    assert_eq!((status, ct.as_str()), (200, "application/x-ndjson"));
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [b, b + 1, b + 2]);

    let (status, body) = server.get("/v1/streams/deploy/nothing/here");
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

#[test]
fn a_retry_is_idempotent_and_a_reused_id_conflicts() {
    let server = Server::start();
    let sent = deployment("checkout");
    let (status, first) = server.post("/v1/events", &sent);
    assert_eq!(status, 201);
    let (status, retry) = server.post("/v1/events", &sent);
    assert_eq!(status, 200, "a pure retry records nothing new");
    assert_eq!(retry["duplicate"], true);
    for field in ["id", "seq", "stream", "streamVersion", "recordedAt"] {
        assert_eq!(retry[field], first[field], "the original receipt's {field}");
    }

    let mut other = sent.clone();
    other["data"]["version"] = json!("9.9.9");
    let (status, err) = server.post("/v1/events", &other);
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"], "id_conflict");
    assert_eq!(err["id"], sent["id"]);
    assert_eq!(server.client_events().len(), 1);
}

#[test]
fn a_stale_expected_version_is_a_conflict() {
    let server = Server::start();
    let mut first = deployment("checkout");
    first["expectedVersion"] = json!(-1);
    assert_eq!(server.post("/v1/events", &first).0, 201);

    let mut stale = deployment("checkout");
    stale["expectedVersion"] = json!(-1);
    let (status, err) = server.post("/v1/events", &stale);
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"], "version_conflict");
    assert_eq!(err["stream"], "deploy/checkout/production");
    assert_eq!(err["expectedVersion"], -1);
    assert_eq!(err["currentVersion"], 0);

    stale["expectedVersion"] = json!(0);
    let (status, receipt) = server.post("/v1/events", &stale);
    assert_eq!((status, receipt["streamVersion"].as_u64()), (201, Some(1)));
}

#[test]
fn a_batch_with_one_bad_event_records_nothing() {
    let server = Server::start();
    assert_eq!(server.post("/v1/events", &commit("abcdef0")).0, 201);

    let mut bad = commit("abcdef3");
    bad["data"].as_object_mut().unwrap().remove("authoredAt");
    let (status, err) = server.post("/v1/events", &json!([commit("abcdef1"), commit("abcdef2"), bad]));
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"], "invalid_event");
    assert_eq!(err["index"], 2);
    assert_eq!(err["field"], "data.authoredAt");

    let mut conflicting = commit("abcdef4");
    conflicting["expectedVersion"] = json!(7);
    let (status, err) = server.post("/v1/events", &json!([commit("abcdef5"), conflicting]));
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["index"], 1);

    let events = server.client_events();
    assert_eq!(events.len(), 1, "only the first, single event is recorded");
    let (_, receipt) = server.post("/v1/events", &commit("abcdef6"));
    assert_eq!(receipt["seq"], server.base + 1, "no gap where the failed batches were");
}

/// Given a request, the server answers with this status, error code and
/// (where one field is at fault) the field.
#[test]
fn bad_input_gets_a_clear_4xx() {
    let server = Server::start_with(&["--max-body-bytes", "4096", "--max-batch", "3"]);
    let valid = commit("abcdef1");
    let with = |key: &str, value: Value| {
        let mut e = commit("abcdef1");
        e[key] = value;
        e.to_string()
    };
    let big = json!([{"pad": "x".repeat(5000)}]).to_string();
    type Case<'a> = (&'a str, &'a str, String, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("not JSON", "application/json", "{oops".into(), 400, "invalid_json", None),
        ("not an object", "application/json", "42".into(), 400, "invalid_event", None),
        (
            "unknown type",
            "application/json",
            with("type", json!("deploy.done")),
            400,
            "unknown_event_type",
            Some("type"),
        ),
        (
            "server-only type",
            "application/json",
            with("type", json!("decision.recorded")),
            400,
            "server_only_type",
            Some("type"),
        ),
        (
            "missing actor",
            "application/json",
            {
                let mut e = valid.clone();
                e.as_object_mut().unwrap().remove("actor");
                e.to_string()
            },
            400,
            "invalid_event",
            Some("actor"),
        ),
        ("bad id", "application/json", with("id", json!("nope")), 400, "invalid_event", Some("id")),
        ("bad time", "application/json", with("occurredAt", json!("noon")), 400, "invalid_event", Some("occurredAt")),
        ("empty batch", "application/json", "[]".into(), 400, "empty_batch", None),
        (
            "batch over the limit",
            "application/json",
            json!([valid, valid, valid, valid]).to_string(),
            413,
            "batch_too_large",
            None,
        ),
        ("body over the limit", "application/json", big, 413, "body_too_large", None),
        ("not JSON content", "text/plain", valid.to_string(), 415, "unsupported_media_type", None),
    ];
    for (name, content_type, body, status, code, field) in cases {
        let (got, err) = server.post_raw("/v1/events", content_type, &body);
        assert_eq!(got, status, "{name}: {err}");
        assert_eq!(err["error"], code, "{name}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {err}");
        if let Some(field) = field {
            assert_eq!(err["field"], field, "{name}: {err}");
        }
    }
    let (_, err) = server.post_raw("/v1/events", "application/json", &with("type", json!("deploy.done")));
    assert!(err["validTypes"].as_array().unwrap().contains(&json!("deployment.succeeded")));

    for (path, code) in [
        ("/v1/events?limit=0", "invalid_query"),
        ("/v1/events?after=-5", "invalid_query"),
        ("/v1/events?type=nope", "invalid_query"),
        ("/v1/events?bogus=1", "invalid_query"),
        ("/v1/nothing", "not_found"),
    ] {
        let (status, err) = server.get(path);
        assert!((400..500).contains(&status), "{path}: {status}");
        assert_eq!(err["error"], code, "{path}: {err}");
    }
    assert!(server.client_events().is_empty(), "no bad input recorded anything");
    assert_eq!(server.get("/readyz").0, 200);
}

#[test]
fn concurrent_appenders_get_exactly_the_seqs_0_to_199() {
    let server = Arc::new(Server::start());
    let barrier = Arc::new(Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let server = Arc::clone(&server);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let (status, receipt) = server.post("/v1/events", &deployment(&format!("svc-{}", i % 10)));
                assert_eq!(status, 201, "{receipt}");
                receipt["seq"].as_u64().unwrap()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    seqs.sort_unstable();
    let b = server.base;
    assert_eq!(seqs, (b..b + 200).collect::<Vec<_>>());
    let stored: Vec<u64> = server.client_events().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(stored, (b..b + 200).collect::<Vec<_>>());
}

#[test]
fn a_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    for i in 0..5 {
        assert_eq!(server.post("/v1/events", &deployment(&format!("svc-{i}"))).0, 201);
    }
    let before = server.client_events();
    server.signal(libc::SIGTERM);
    assert!(server.wait(30).success(), "a SIGTERM stops the server cleanly");
    drop(server);

    let server = Server::start_in(dir.path(), &[]);
    assert_eq!(server.client_events(), before);
    let (_, receipt) = server.post("/v1/events", &deployment("svc-0"));
    assert_eq!((receipt["seq"].as_u64(), receipt["streamVersion"].as_u64()), (Some(server.base + 5), Some(1)));
}

/// Appenders hammer the server while it is stopped; returns the ids that
/// got a receipt.
fn hammer_until_stopped(server: &Server, signal: i32) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = server.url.clone();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (acked, stop, url) = (Arc::clone(&acked), Arc::clone(&stop), url.clone());
            std::thread::spawn(move || {
                let agent = Server::agent();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let event = if i % 2 == 0 {
                        deployment(&format!("svc-{i}"))
                    } else {
                        json!([commit("abcdef1"), commit("abcdef2"), commit("abcdef3")])
                    };
                    let ids: Vec<String> = match &event {
                        Value::Array(items) => items.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect(),
                        e => vec![e["id"].as_str().unwrap().to_owned()],
                    };
                    match agent
                        .post(&format!("{url}/v1/events"))
                        .set("Content-Type", "application/json")
                        .send_string(&event.to_string())
                    {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().extend(ids),
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        // Refused or cut off by the stopping server: not acknowledged.
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    server.signal(signal);
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the load was real: {} events acknowledged", acked.len());
    acked
}

fn assert_all_acknowledged_are_stored(server: &Server, acked: &[String]) {
    let events = server.all_events();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>(), "seqs are gap-free");
    let stored: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(id.as_str())).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost, e.g. {:?}", lost.len(), lost.first());
}

#[test]
fn sigkill_during_concurrent_appends_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let acked = hammer_until_stopped(&server, libc::SIGKILL);
    server.wait(10);
    drop(server);

    let server = Server::start_in(dir.path(), &[]);
    assert_eq!(server.get("/readyz").0, 200, "the store opens cleanly after a SIGKILL");
    assert_all_acknowledged_are_stored(&server, &acked);
    let (status, _) = server.post("/v1/events", &deployment("after-the-crash"));
    assert_eq!(status, 201);
}

#[test]
fn sigterm_lets_appends_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let acked = hammer_until_stopped(&server, libc::SIGTERM);
    let status = server.wait(30);
    assert!(status.success(), "graceful shutdown exits 0: {status:?}\n{}", server.log());
    assert!(server.log().contains("SIGTERM received"), "{}", server.log());
    drop(server);

    let server = Server::start_in(dir.path(), &[]);
    assert_all_acknowledged_are_stored(&server, &acked);
}

#[test]
fn shiplog_record_appends_from_flags_files_and_stdin() {
    let server = Server::start();
    let record = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(BIN)
            .arg("record")
            .args(["--server", &server.url])
            .args(args)
            .env("SHIPLOG_TOKEN", common::ADMIN_TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(pipe);
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };

    let data = r#"{"deploymentId":"d-42","service":"checkout","environment":"production","artifact":"sha256:ab12","version":"1.4.2"}"#;
    let (code, out, err) = record(&["--type", "deployment.succeeded", "--actor", "ci-bot", "--data", data], None);
    assert_eq!(code, Some(0), "{err}");
    let receipt: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (receipt["seq"].as_u64(), receipt["stream"].as_str()),
        (Some(server.base), Some("deploy/checkout/production"))
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, format!("{}\n{}\n", commit("abcdef1"), commit("abcdef2"))).unwrap();
    let (code, out, err) = record(&["--file", file.to_str().unwrap()], None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().len(), 2);

    let (code, _, err) = record(&["--file", "-"], Some(&commit("abcdef3").to_string()));
    assert_eq!(code, Some(0), "{err}");

    let (code, _, err) = record(&["--type", "commit.pushed", "--actor", "me", "--data", r#"{"repo":"r"}"#], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("invalid_event") && err.contains("data."), "names the field: {err}");

    let (code, _, err) = record(&["--type", "commit.pushed", "--actor", "me", "--data", "{not json"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("--data is not valid JSON"), "{err}");

    assert_eq!(server.client_events().len(), 4);
    let invalid = event("commit.pushed", json!({}));
    assert_eq!(server.post("/v1/events", &invalid).0, 400);
}
