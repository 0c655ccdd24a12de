//! The one way the end-to-end tests start shiplog: the real `shiplog serve`
//! binary, on port 0, against a fresh data directory, spoken to over HTTP.

#![allow(dead_code)]
// ureq's own error type, returned as its middleware must.
#![allow(clippy::result_large_err)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_shiplog");

/// The admin token every test server starts with (`SHIPLOG_ADMIN_TOKEN`);
/// [`Server::agent`] sends it unless a request names its own.
pub const ADMIN_TOKEN: &str = "slt_test-admin-token-0123456789abcdef0123";

pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    /// How many events the server recorded for itself before any client
    /// (the access policy's activation, the admin token, the gates'
    /// activation): the first client event's seq.
    pub base: u64,
    /// Keeps a fresh data directory alive for the test's duration.
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh, empty store.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// A server on a fresh store, with extra `serve` flags.
    pub fn start_with(args: &[&str]) -> Server {
        let temp = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(temp.path(), args);
        server._temp = Some(temp);
        server
    }

    /// A server on the store in `data_dir` (to restart on the same ledger).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Server {
        Self::start_env(data_dir, args, &[("SHIPLOG_ADMIN_TOKEN", Some(ADMIN_TOKEN))])
    }

    /// The same, with these environment variables set (`Some`) or removed.
    pub fn start_env(data_dir: &Path, args: &[&str], env: &[(&str, Option<&str>)]) -> Server {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("server.log")).unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(store_args(data_dir, args))
            .args(args)
            .env("SHIPLOG_LOG_FORMAT", "json")
            .env_remove("SHIPLOG_CONFIG");
        for (key, value) in env {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        let mut child =
            command.current_dir(data_dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("shiplog listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
                panic!("shiplog serve did not start within 30 s; its log:\n{log}");
            }
        };
        let mut server = Server { child, url, data_dir: data_dir.to_owned(), base: 0, _temp: None };
        // With the test admin token (when the server was given it).
        if Self::agent().get(&format!("{}/v1/events?limit=1", server.url)).call().is_ok() {
            server.base = server.all_events().iter().take_while(|e| is_bootstrap(e)).count() as u64;
        }
        server
    }

    /// Every event but those the server records for itself when it starts
    /// (policy activations, the admin token).
    pub fn client_events(&self) -> Vec<Value> {
        self.all_events().into_iter().filter(|e| !is_bootstrap(e)).collect()
    }

    /// An HTTP client that authenticates as the admin, unless a request
    /// sets its own `Authorization`.
    pub fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .middleware(|req: ureq::Request, next: ureq::MiddlewareNext<'_>| {
                let req = if req.header("Authorization").is_none() {
                    req.set("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
                } else {
                    req
                };
                next.handle(req)
            })
            .build()
    }

    /// An HTTP client that sends no token of its own.
    pub fn bare_agent() -> ureq::Agent {
        ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build()
    }

    /// A request with this token (or none): the status and the JSON answer.
    pub fn call_as(&self, token: Option<&str>, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = Self::bare_agent().request(method, &format!("{}{path}", self.url));
        if let Some(token) = token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        match body {
            Some(body) => answer(req.set("Content-Type", "application/json").send_string(&body.to_string())),
            None => answer(req.call()),
        }
    }

    /// Make a token with this role through the admin API; its secret.
    pub fn token(&self, name: &str, role: &str) -> String {
        let (status, body) = self.post("/v1/tokens", &json!({"name": name, "role": role}));
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, "application/json", &body.to_string())
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let req = Self::agent().post(&format!("{}{path}", self.url)).set("Content-Type", content_type);
        answer(req.send_string(body))
    }

    /// POST raw bytes with these headers.
    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        let mut req = Self::agent().post(&format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        answer(req.send_bytes(body))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        answer(Self::agent().get(&format!("{}{path}", self.url)).call())
    }

    pub fn get_text(&self, path: &str, accept: &str) -> (u16, String, String) {
        match Self::agent().get(&format!("{}{path}", self.url)).set("Accept", accept).call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                let ct = r.content_type().to_owned();
                (status, ct, r.into_string().unwrap())
            }
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// Every event in the ledger, in seq order.
    pub fn all_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = -1i64;
        loop {
            let (status, page) = self.get(&format!("/v1/events?after={after}&limit=10000"));
            assert_eq!(status, 200, "{page}");
            let events = page["events"].as_array().unwrap().clone();
            if events.is_empty() {
                return out;
            }
            after = events.last().unwrap()["seq"].as_i64().unwrap();
            out.extend(events);
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// Send a signal (`libc::SIGTERM`, `libc::SIGKILL`) to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Wait for the server to exit (after a signal), at most `secs` seconds.
    pub fn wait(&mut self, secs: u64) -> ExitStatus {
        for _ in 0..secs * 20 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("shiplog serve did not exit within {secs} s");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A fresh directory's database goes with it.
        if self._temp.is_some() {
            if let (Ok(url), Ok(name)) = (
                std::env::var(TEST_STORE),
                std::fs::read_to_string(self.data_dir.join(STORE_MARKER)).map(|u| database_of(&u)),
            ) {
                let _ = psql(&url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// Run the end-to-end tests against PostgreSQL instead of the embedded
/// store: `SHIPLOG_TEST_STORE=postgres://postgres@127.0.0.1:5432/test`. Each
/// data directory gets a database of its own on that server, made on the
/// first start and used again on restarts. `SHIPLOG_TEST_STORE=log` runs
/// them on the EventStoreDB code path (`--store log:DATA_DIR/log`).
pub const TEST_STORE: &str = "SHIPLOG_TEST_STORE";
const STORE_MARKER: &str = "test-store-url";

/// The `--store` a server in `data_dir` gets: none (SQLite in the data
/// directory) unless [`TEST_STORE`] names a PostgreSQL server, or the test
/// gave its own.
fn store_args(data_dir: &Path, args: &[&str]) -> Vec<String> {
    let Ok(server) = std::env::var(TEST_STORE) else { return Vec::new() };
    if args.iter().any(|a| a.starts_with("--store")) {
        return Vec::new();
    }
    if server == "log" {
        return vec!["--store".into(), format!("log:{}", data_dir.join("log").display())];
    }
    if !server.starts_with("postgres") {
        return Vec::new();
    }
    let marker = data_dir.join(STORE_MARKER);
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return vec!["--store".into(), url];
    }
    let name =
        format!("shiplog_e2e_{}_{}", std::process::id(), NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    psql(&server, &format!("CREATE DATABASE {name}")).unwrap();
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    std::fs::write(&marker, &url).unwrap();
    vec!["--store".into(), url]
}

static NEXT_DB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn database_of(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

/// The repository's gate policies in `dir/policies`, with `directory` (a
/// generated organisation's entities) as their directory; that folder.
pub fn policies_with_directory(dir: &Path, directory: &Path) -> Result<PathBuf, String> {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).map_err(|e| e.to_string())?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for entry in std::fs::read_dir(&repo).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let (Some(name), true) = (path.file_name(), path.extension().is_some_and(|e| e == "cedar")) {
            std::fs::copy(&path, policies.join(name)).map_err(|e| e.to_string())?;
        }
    }
    std::fs::copy(directory, policies.join("entities.json")).map_err(|e| e.to_string())?;
    Ok(policies)
}

/// Run one SQL command with `psql` against a PostgreSQL URL.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            let text = r.into_string().unwrap();
            let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
            (status, value)
        }
        Err(e) => panic!("request failed: {e}"),
    }
}

/// A valid event of `kind` with a fresh id.
pub fn event(kind: &str, data: Value) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": kind,
        "occurredAt": "2026-11-20T10:00:00Z",
        "actor": "u-1042",
        "source": "https://ci.example.com/runs/42",
        "data": data,
    })
}

pub fn deployment(service: &str) -> Value {
    event(
        "deployment.succeeded",
        json!({"deploymentId": uuid::Uuid::new_v4().to_string(), "service": service,
               "environment": "production", "artifact": "sha256:ab12", "version": "1.4.2"}),
    )
}

pub fn commit(sha: &str) -> Value {
    event(
        "commit.pushed",
        json!({"repo": "shop/web", "sha": sha, "author": "u-7", "authoredAt": "2026-11-19T08:00:00Z", "branch": "main"}),
    )
}

/// An event the server records for itself on start.
pub fn is_bootstrap(e: &Value) -> bool {
    e["recordedBy"] == "shiplog"
        && matches!(e["type"].as_str(), Some("policy.activated" | "token.created" | "token.revoked"))
}
