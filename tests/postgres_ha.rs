//! Two shiplog processes on one PostgreSQL database, under concurrent load;
//! one is killed (SIGKILL) mid-load. Every event that got a receipt is in
//! the ledger, seqs are gap-free, and the checkpoints either process signed
//! form one consistent chain. Also: the database going away (through a
//! relay the test cuts) and coming back; a ledger moved there and back.
//!
//! Needs PostgreSQL (`SHIPLOG_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): without one it says SKIPPED
//! and passes, except under `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, BIN, Server, psql};
use serde_json::Value;

fn postgres() -> Option<String> {
    let url = std::env::var("SHIPLOG_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match psql(&url, "SELECT 1") {
        Ok(_) => Some(url),
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no PostgreSQL at {url}: {e}");
            eprintln!(
                "SKIPPED postgres_ha: no PostgreSQL at {url} ({}); start it, or set SHIPLOG_TEST_PG_URL, and run \
                 `cargo test -p shiplog --test postgres_ha`",
                e.trim()
            );
            None
        }
    }
}

struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn new(server: &str, test: &str) -> Database {
        let name = format!("shiplog_ha_{test}_{}", std::process::id());
        psql(server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        psql(server, &format!("CREATE DATABASE {name}")).unwrap();
        let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
        Database { server: server.to_owned(), url: format!("{base}/{name}"), name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn shiplog(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env("SHIPLOG_TOKEN", ADMIN_TOKEN).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn two_processes_share_one_ledger_and_losing_one_loses_nothing_acknowledged() {
    let Some(pg) = postgres() else { return };
    let db = Database::new(&pg, "kill");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_in(dir_a.path(), &["--store", &db.url]);
    // One signing key for both: the checkpoints are the ledger's, not a process's.
    let key = dir_a.path().join("checkpoint.key");
    let b = Server::start_in(dir_b.path(), &["--store", &db.url, "--checkpoint-key", key.to_str().unwrap()]);
    let (status, _, before) = b.get_text("/v1/checkpoint", "text/plain");
    assert_eq!(status, 200, "{before}");

    // Eight clients, each sending batches of 5 events to either process in
    // turn; what got a 201 is acknowledged, with its seqs.
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let urls = [a.url.clone(), b.url.clone()];
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (acked, stop, urls) = (Arc::clone(&acked), Arc::clone(&stop), urls.clone());
            std::thread::spawn(move || {
                let agent = Server::agent();
                let mut n = 0usize;
                let mut refused = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let batch: Vec<Value> =
                        (0..5).map(|_| common::deployment(&format!("svc-{}", (c + n) % 5))).collect();
                    let url = &urls[n % 2];
                    match agent.post(&format!("{url}/v1/events")).send_json(Value::Array(batch.clone())) {
                        Ok(r) if r.status() == 201 => {
                            let body: Value = r.into_json().unwrap();
                            let mut acked = acked.lock().unwrap();
                            for receipt in body.as_array().unwrap() {
                                acked.insert(
                                    receipt["id"].as_str().unwrap().to_owned(),
                                    receipt["seq"].as_u64().unwrap(),
                                );
                            }
                        }
                        // The killed process: no receipt, so nothing was promised.
                        _ => refused += 1,
                    }
                }
                refused
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    let mut a = a;
    a.signal(libc::SIGKILL);
    a.wait(10);
    let killed_at = acked.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let refused: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    assert!(killed_at > 50, "the load ran before the kill: {killed_at} events");
    assert!(acked.len() > killed_at, "the survivor kept taking appends: {} then {}", killed_at, acked.len());
    assert!(refused > 0, "some requests went to the killed process");

    // Every acknowledged event is there, at its seq; seqs are gap-free.
    let events = b.all_events();
    let by_id: HashMap<&str, u64> =
        events.iter().map(|e| (e["id"].as_str().unwrap(), e["seq"].as_u64().unwrap())).collect();
    for (id, seq) in &acked {
        assert_eq!(by_id.get(id.as_str()), Some(seq), "acknowledged event {id} at seq {seq}");
    }
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "gap-free");

    // The checkpoints both processes signed are one chain: the log only grew
    // since the first, and an export verifies against the shared key.
    let work = tempfile::tempdir().unwrap();
    let (kept, pubkey, export) =
        (work.path().join("kept.checkpoint"), work.path().join("shiplog.pub"), work.path().join("ledger.ndjson"));
    std::fs::write(&kept, &before).unwrap();
    std::fs::write(&pubkey, b.get_text("/v1/checkpoint/key", "text/plain").2).unwrap();
    // Wait for a checkpoint that covers the last append.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.get_text("/v1/checkpoint", "text/plain").2.contains(&format!("\n{}\n", seqs.len())) {
        assert!(Instant::now() < deadline, "no checkpoint covers all {} events", seqs.len());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) =
        shiplog(&["verify", "--server", &b.url, "--since", kept.to_str().unwrap(), "--key", pubkey.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = shiplog(&["export", "--server", &b.url, "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = shiplog(&["verify", export.to_str().unwrap(), "--key", pubkey.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{} events", seqs.len())), "{out}");

    // How fresh the survivor's view of the shared ledger is, for alerting.
    let (_, _, metrics) = b.get_text("/metrics", "text/plain");
    let age: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("shiplog_store_follow_age_seconds "))
        .expect("the follow age is in /metrics")
        .parse()
        .unwrap();
    assert!(age < 5.0, "the tip was last confirmed {age} s ago");

    // A process that starts now reads the same ledger and checks it.
    let dir_c = tempfile::tempdir().unwrap();
    let c = Server::start_in(dir_c.path(), &["--store", &db.url, "--checkpoint-key", key.to_str().unwrap()]);
    assert_eq!(c.get("/readyz").0, 200);
    assert_eq!(c.all_events().len(), seqs.len());
}

#[test]
fn a_generated_ledger_migrated_to_postgres_serves_the_same_history() {
    let Some(pg) = postgres() else { return };
    let db = Database::new(&pg, "migrate");
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = shiplog(&[
        "generate",
        "--services",
        "3",
        "--days",
        "20",
        "--seed",
        "5",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // A server signs a checkpoint of it, so there is one to carry over.
    let sqlite_server = Server::start_in(dir.path(), &[]);
    let before = sqlite_server.all_events();
    let (_, _, checkpoint) = sqlite_server.get_text("/v1/checkpoint", "text/plain");
    drop(sqlite_server);

    let ledger = dir.path().join("ledger.db");
    let from = format!("sqlite:{}", ledger.display());
    let (code, out, err) = shiplog(&["migrate", "--from", &from, "--to", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("copied {} events", before.len())) && out.contains("roots match"), "{out}");
    assert!(out.contains("checkpoint at size"), "{out}");

    // Into a database that holds a ledger: refused.
    let (code, _, err) = shiplog(&["migrate", "--from", &from, "--to", &db.url]);
    assert_eq!(code, 1);
    assert!(err.contains("already holds a ledger"), "{err}");

    // The same history, record for record, served from PostgreSQL with the same key.
    let pg_dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("checkpoint.key");
    let server = Server::start_in(pg_dir.path(), &["--store", &db.url, "--checkpoint-key", key.to_str().unwrap()]);
    assert_eq!(server.get("/readyz").0, 200);
    let after = server.all_events();
    assert_eq!(after[..before.len()], before[..], "every record, leaf hash included");
    let (_, _, note) = server.get_text("/v1/checkpoint", "text/plain");
    let size = |n: &str| n.lines().nth(1).unwrap().parse::<u64>().unwrap();
    assert!(size(&note) >= size(&checkpoint), "{note}");
    drop(server);

    // And back again, into a new SQLite file: the same records, served.
    let back_dir = tempfile::tempdir().unwrap();
    let back = back_dir.path().join("ledger.db");
    let to = format!("sqlite:{}", back.display());
    let (code, out, err) = shiplog(&["migrate", "--from", &db.url, "--to", &to]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("roots match") && out.contains("checkpoint at size"), "{out}");
    let (code, _, err) = shiplog(&["migrate", "--from", &db.url, "--to", &to]);
    assert_eq!(code, 1);
    assert!(err.contains("the file exists"), "{err}");
    let server = Server::start_in(back_dir.path(), &["--checkpoint-key", key.to_str().unwrap()]);
    assert_eq!(server.get("/readyz").0, 200);
    let again = server.all_events();
    assert_eq!(again[..after.len()], after[..], "every record, leaf hash included, after two copies");
}

/// A TCP relay to PostgreSQL that a test can cut (every connection closed,
/// new ones refused) and restore: the database "going away" without
/// stopping the server other tests share.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn to(target: &str) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (target, up2, open2) = (target.to_owned(), Arc::clone(&up), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else { continue };
                let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                {
                    let mut open = open2.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Relay { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn with_the_database_away_appends_get_503_and_readiness_fails_then_it_recovers_by_itself() {
    let Some(pg) = postgres() else { return };
    let db = Database::new(&pg, "away");
    let relay = Relay::to("127.0.0.1:5432");
    let url = db.url.replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port), 1);
    assert_ne!(url, db.url, "the test database is on 127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &["--store", &url]);
    let (status, body) = server.post("/v1/events", &common::deployment("checkout"));
    assert_eq!(status, 201, "{body}");

    relay.cut();
    let started = Instant::now();
    let answer = Server::agent()
        .post(&format!("{}/v1/events", server.url))
        .set("Content-Type", "application/json")
        .send_string(&common::deployment("checkout").to_string());
    let Err(ureq::Error::Status(503, response)) = answer else { panic!("expected 503, got {answer:?}") };
    assert!(response.header("Retry-After").is_some(), "503 without Retry-After");
    let body: Value = response.into_json().unwrap();
    assert_eq!(body["error"], "store_unavailable", "{body}");
    assert!(started.elapsed() < Duration::from_secs(30), "answered after {:?}", started.elapsed());
    assert_eq!(server.get("/readyz").0, 503);
    assert_eq!(server.get("/healthz").0, 200, "alive, only not ready");

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "not ready again 30 s after the database came back");
        std::thread::sleep(Duration::from_millis(250));
    }
    let (status, body) = server.post("/v1/events", &common::deployment("checkout"));
    assert_eq!(status, 201, "{body}");
    // The refused append left nothing; the others are there, gap-free.
    let events = server.client_events();
    assert_eq!(events.len(), 2);
    let seqs: Vec<u64> = server.all_events().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
}
