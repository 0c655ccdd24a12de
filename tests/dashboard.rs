//! The dashboard, end to end, in headless Chromium: a server seeded by the
//! history generator, a person signing in with an auditor token by keyboard,
//! the delivery figures compared with the GraphQL API's own answer, search
//! and paging, a deployment's evidence with its gate decision, the live
//! feed, and a screenshot of each view.
//!
//! A plain program (`harness = false`), so that it can say SKIPPED when
//! Chromium is not installed (`apt-get install chromium chromium-driver`),
//! except under `CI=true`, where it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const FROM: &str = "2025-01-01";
const TO: &str = "2025-03-01";

fn main() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let chromium = find(&["SHIPLOG_CHROMIUM"], &["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["SHIPLOG_CHROMEDRIVER"], &["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        if ci {
            eprintln!(
                "dashboard: FAILED: Chromium and ChromeDriver are required under CI=true (apt-get install chromium chromium-driver)"
            );
            std::process::exit(1);
        }
        println!(
            "\ndashboard: SKIPPED (no chromium and chromedriver on PATH).\n  \
             Install them with `apt-get install chromium chromium-driver` (or point SHIPLOG_CHROMIUM and\n  \
             SHIPLOG_CHROMEDRIVER at them) and run `cargo test -p shiplog --test dashboard`.\n"
        );
        return;
    };
    match run(&chromium, &driver) {
        Ok(shots) => println!("dashboard: ok; screenshots in {}", shots.display()),
        Err(e) => {
            eprintln!("dashboard: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

fn find(env: &[&str], names: &[&str]) -> Option<PathBuf> {
    for var in env {
        if let Ok(p) = std::env::var(var) {
            return Some(PathBuf::from(p)).filter(|p| p.is_file());
        }
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A WebDriver session on headless Chromium through ChromeDriver.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    fn start(chromium: &Path, driver: &Path) -> Result<Browser, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start chromedriver: {e}"))?;
        let base = format!("http://127.0.0.1:{port}");
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = agent.get(&format!("{base}/status")).call().ok().and_then(|r| r.into_json::<Value>().ok());
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                break;
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not become ready within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Browser { driver, base, session: String::new(), agent };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1366,900", "--no-first-run", "--disable-extensions"]
            }
        }}});
        let created = browser.post("/session", &caps)?;
        browser.session = created["sessionId"].as_str().ok_or(format!("no session: {created}"))?.to_owned();
        Ok(browser)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        match self.agent.post(&url).send_json(body.clone()) {
            Ok(r) => Ok(r.into_json::<Value>().map_err(|e| e.to_string())?["value"].clone()),
            Err(ureq::Error::Status(code, r)) => {
                Err(format!("WebDriver {path}: {code} {}", r.into_string().unwrap_or_default()))
            }
            Err(e) => Err(format!("WebDriver {path}: {e}")),
        }
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        match self.agent.get(&url).call() {
            Ok(r) => Ok(r.into_json::<Value>().map_err(|e| e.to_string())?["value"].clone()),
            Err(e) => Err(format!("WebDriver {path}: {e}")),
        }
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn goto(&self, url: &str) -> Result<(), String> {
        self.post(&self.s("/url"), &json!({"url": url})).map(|_| ())
    }

    /// Run `script` (a function body; `arguments` are `args`) in the page.
    fn exec(&self, script: &str, args: Value) -> Result<Value, String> {
        self.post(&self.s("/execute/sync"), &json!({"script": script, "args": args}))
    }

    /// Wait until `script` returns something truthy; that value.
    fn wait(&self, what: &str, script: &str) -> Result<Value, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.exec(script, json!([]))?;
            let truthy = !matches!(&v, Value::Null | Value::Bool(false))
                && v != json!("")
                && v != json!(0)
                && !v.as_array().is_some_and(Vec::is_empty);
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let text =
                    self.exec("return document.body ? document.body.innerText.slice(0, 2000) : ''", json!([]))?;
                return Err(format!("timed out waiting for {what}; the page says:\n{}", text.as_str().unwrap_or("")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn find(&self, css: &str) -> Result<String, String> {
        let v = self.post(&self.s("/element"), &json!({"using": "css selector", "value": css}))?;
        v[ELEMENT].as_str().map(str::to_owned).ok_or_else(|| format!("no element {css}: {v}"))
    }

    /// Type into an element as a keyboard would (`\u{E007}` is Enter).
    fn keys(&self, css: &str, text: &str) -> Result<(), String> {
        let id = self.find(css)?;
        self.post(&self.s(&format!("/element/{id}/clear")), &json!({})).ok();
        self.post(&self.s(&format!("/element/{id}/value")), &json!({"text": text})).map(|_| ())
    }

    /// Set a form field's value as a date picker would, with the events a
    /// user's choice fires (typing into `<input type=date>` depends on the
    /// browser's locale).
    fn set_value(&self, css: &str, value: &str) -> Result<(), String> {
        let done = self.exec(
            "const e = document.querySelector(arguments[0]); if (!e) return false; e.value = arguments[1]; \
             e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); \
             return e.value === arguments[1];",
            json!([css, value]),
        )?;
        if done != json!(true) {
            return Err(format!("cannot set {css} to {value:?}"));
        }
        Ok(())
    }

    fn click(&self, css: &str) -> Result<(), String> {
        let id = self.find(css)?;
        self.post(&self.s(&format!("/element/{id}/click")), &json!({})).map(|_| ())
    }

    fn screenshot(&self, path: &Path) -> Result<(), String> {
        use base64::Engine as _;
        let png = self.get(&self.s("/screenshot"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().ok_or("no screenshot")?)
            .map_err(|e| e.to_string())?;
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.agent.delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn graphql(server: &Server, token: &str, query: &str, variables: Value) -> Result<Value, String> {
    let (status, body) =
        server.call_as(Some(token), "POST", "/graphql", Some(&json!({"query": query, "variables": variables})));
    if status != 200 || body.get("errors").is_some() {
        return Err(format!("GraphQL answered {status}: {body}"));
    }
    Ok(body["data"].clone())
}

fn run(chromium: &Path, driver: &Path) -> Result<PathBuf, String> {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data_dir = dir.path().join("data");
    let directory = dir.path().join("entities.json");
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    let status = Command::new(common::BIN)
        .args(["generate", "--services", "6", "--days", "60", "--seed", "7", "--data-dir"])
        .arg(&data_dir)
        .arg("--directory")
        .arg(&directory)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("shiplog generate failed: {status}"));
    }
    // The gates with the generated directory, so a decision can be asked.
    let policies = common::policies_with_directory(dir.path(), &directory)?;
    let server = Server::start_in(&data_dir, &["--policies", policies.to_str().unwrap()]);
    let auditor = server.token("dashboard-auditor", "auditor");

    let browser = Browser::start(chromium, driver)?;
    scenario(&server, &browser, &auditor, &directory, &shots)?;
    Ok(shots)
}

fn scenario(server: &Server, b: &Browser, auditor: &str, directory: &Path, shots: &Path) -> Result<(), String> {
    // Sign in with the keyboard: type the token, press Enter.
    b.goto(&format!("{}/", server.url))?;
    b.wait("the sign-in form", "return document.getElementById('signin-form') !== null")?;
    b.screenshot(&shots.join("sign-in.png"))?;
    b.keys("#token", &format!("{auditor}\u{E007}"))?;

    // Delivery: the figures shown are the API's.
    b.goto(&format!("{}/#/delivery", server.url))?;
    b.wait("the delivery form", "return document.getElementById('delivery-form') !== null")?;
    b.set_value("#f-from", FROM)?;
    b.set_value("#f-to", TO)?;
    b.keys("#f-environment", "production")?;
    b.click("#delivery-apply")?;
    b.wait(
        "the delivery figures",
        "const v = document.getElementById('delivery-view'); return v && v.dataset.loaded === 'true' && document.querySelectorAll('[data-figure]').length === 5",
    )?;
    let shown = b.exec(
        "const o = {}; document.querySelectorAll('[data-figure]').forEach(e => o[e.dataset.figure] = [e.dataset.value, e.dataset.band]); return o;",
        json!([]),
    )?;
    let api = graphql(
        server,
        auditor,
        "query($f: DoraFilter) { dora(filter: $f) { deploymentFrequency leadTime { median } changeFailRate recoveryTime { median } reworkRate bands { deploymentFrequency leadTime changeFailRate recoveryTime } } }",
        json!({"f": dashboard_filter()}),
    )?["dora"]
        .clone();
    let expect = [
        ("deploymentFrequency", &api["deploymentFrequency"], &api["bands"]["deploymentFrequency"]),
        ("leadTimeMedian", &api["leadTime"]["median"], &api["bands"]["leadTime"]),
        ("changeFailRate", &api["changeFailRate"], &api["bands"]["changeFailRate"]),
        ("recoveryTimeMedian", &api["recoveryTime"]["median"], &api["bands"]["recoveryTime"]),
        ("reworkRate", &api["reworkRate"], &Value::Null),
    ];
    for (figure, value, band) in expect {
        let (v, bd) = (&shown[figure][0], &shown[figure][1]);
        let api_value = match value {
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let shown_value = v.as_str().unwrap_or("");
        let same = match (shown_value.parse::<f64>(), api_value.parse::<f64>()) {
            (Ok(a), Ok(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            _ => shown_value == api_value,
        };
        if !same {
            return Err(format!("{figure}: the dashboard shows {shown_value:?}, the API says {api_value:?}"));
        }
        if let Some(band) = band.as_str() {
            if bd.as_str() != Some(band) {
                return Err(format!("{figure}: the dashboard's band {bd}, the API's {band:?}"));
            }
        }
    }
    if api["deploymentFrequency"].as_f64().unwrap_or(0.0) <= 0.0 {
        return Err(format!("the generated history deployed nothing in the period: {api}"));
    }
    let rows = b.exec("return document.querySelectorAll('tr[data-deployment-id]').length", json!([]))?;
    if rows.as_u64().unwrap_or(0) == 0 {
        return Err("no recent deployments listed".into());
    }
    fits_a_laptop(b, "delivery")?;
    b.screenshot(&shots.join("delivery.png"))?;

    // A production deployment, and a gate decision about its artifact.
    let deployment = graphql(
        server,
        auditor,
        "query($f: DoraFilter) { deployments(filter: $f, first: 1) { deploymentId service artifact } }",
        json!({"f": dashboard_filter()}),
    )?["deployments"][0]
        .clone();
    let principal = first_user(directory)?;
    let (status, decision) = server.post(
        "/v1/decisions",
        &json!({"principal": principal, "action": "deploy", "resource": {
            "service": deployment["service"], "environment": "production", "artifact": deployment["artifact"]}}),
    );
    if status != 200 {
        return Err(format!("the decision answered {status}: {decision}"));
    }
    let decision_id = decision["decisionId"].as_str().unwrap().to_owned();
    let id = deployment["deploymentId"].as_str().unwrap().to_owned();
    let evidence = graphql(
        server,
        auditor,
        "query($id: String!) { deployment(id: $id) { evidence { decisions { seq } } } }",
        json!({"id": id}),
    )?;
    if evidence["deployment"]["evidence"]["decisions"].as_array().is_none_or(Vec::is_empty) {
        return Err(format!("the API links no decision to {id}: {evidence}"));
    }
    b.goto(&format!("{}/#/deployment/{}", server.url, urlencode(&id)))?;
    b.wait(
        "the deployment page",
        "const v = document.getElementById('deployment-view'); return v && v.dataset.loaded === 'true'",
    )?;
    let reasons = b.wait(
        "the gate decision",
        &format!("const d = document.querySelector('[data-decision-id=\"{decision_id}\"]'); return d && d.innerText"),
    )?;
    let first_reason = decision["reasons"][0]["advice"].as_str().unwrap_or("");
    if !first_reason.is_empty() && !reasons.as_str().unwrap_or("").contains(first_reason) {
        return Err(format!("the decision's reason {first_reason:?} is not shown: {reasons}"));
    }
    fits_a_laptop(b, "deployment")?;
    b.screenshot(&shots.join("deployment.png"))?;

    // Audit: search, then page forward and back.
    b.goto(&format!("{}/#/audit", server.url))?;
    b.wait("the audit form", "return document.getElementById('audit-form') !== null")?;
    b.keys("#a-service", deployment["service"].as_str().unwrap())?;
    b.click("#audit-search")?;
    let first_page = b.wait(
        "the first page of results",
        "const v = document.getElementById('audit-view'); if (!v || v.dataset.loaded !== 'true') return null; \
         const s = [...document.querySelectorAll('tr[data-seq]')].map(r => Number(r.dataset.seq)); return s.length ? s : null",
    )?;
    let first: Vec<u64> = serde_json::from_value(first_page).map_err(|e| e.to_string())?;
    let api_first = graphql(
        server,
        auditor,
        "query($f: EventFilter, $n: Int) { events(filter: $f, first: $n) { nodes { seq } } }",
        json!({"f": {"service": deployment["service"]}, "n": first.len()}),
    )?;
    let api_seqs: Vec<u64> =
        api_first["events"]["nodes"].as_array().unwrap().iter().map(|n| n["seq"].as_u64().unwrap()).collect();
    if api_seqs != first {
        return Err(format!("the first page shows {first:?}; the API's is {api_seqs:?}"));
    }
    b.click("#next-page")?;
    let second = b.wait(
        "the second page",
        &format!(
            "const s = [...document.querySelectorAll('tr[data-seq]')].map(r => Number(r.dataset.seq)); \
             return document.getElementById('audit-view').dataset.loaded === 'true' && s.length && s[0] > {} ? s : null",
            first.last().unwrap()
        ),
    )?;
    fits_a_laptop(b, "audit")?;
    b.screenshot(&shots.join("audit.png"))?;
    b.click("#prev-page")?;
    b.wait(
        "the first page again",
        &format!("const s = [...document.querySelectorAll('tr[data-seq]')].map(r => Number(r.dataset.seq)); return s[0] === {}", first[0]),
    )?;
    let verification = b.wait(
        "the verification panel",
        "const v = document.getElementById('verification'); return v && v.dataset.size ? [v.dataset.size, v.dataset.intact] : null",
    )?;
    if verification[1] != "true" {
        return Err(format!("the ledger's integrity is not shown as intact: {verification}; second page {second}"));
    }

    // Live: a new event appears without reloading.
    b.goto(&format!("{}/#/live", server.url))?;
    b.wait("the live feed", "const s = document.getElementById('live-status'); return s && /live/i.test(s.innerText)")?;
    let (status, receipt) = server.post("/v1/events", &common::deployment("checkout"));
    if status != 201 {
        return Err(format!("recording answered {status}: {receipt}"));
    }
    let seq = receipt["seq"].as_u64().unwrap();
    b.wait(
        "the new event in the live feed",
        &format!("return document.querySelector('#live-table tr[data-seq=\"{seq}\"]') !== null"),
    )?;
    fits_a_laptop(b, "live")?;
    b.screenshot(&shots.join("live.png"))?;
    Ok(())
}

/// The filter the dashboard sends for the delivery form as filled in above.
fn dashboard_filter() -> Value {
    json!({"environment": "production", "from": format!("{FROM}T00:00:00Z"), "to": format!("{TO}T00:00:00Z")})
}

/// The view reads on a 1366-pixel laptop screen: nothing, page or table,
/// scrolls sideways.
fn fits_a_laptop(b: &Browser, view: &str) -> Result<(), String> {
    let wide = b.exec(
        "const out = []; const d = document.documentElement; \
         if (d.scrollWidth > d.clientWidth + 1) out.push('the page is ' + d.scrollWidth + ' px wide'); \
         document.querySelectorAll('.table-wrap').forEach(w => { if (w.scrollWidth > w.clientWidth + 1) \
           out.push((w.getAttribute('aria-label') || 'a table') + ' is ' + w.scrollWidth + ' px in ' + w.clientWidth); }); \
         return out;",
        json!([]),
    )?;
    match wide.as_array() {
        Some(a) if a.is_empty() => Ok(()),
        _ => Err(format!("the {view} view scrolls sideways on a laptop screen: {wide}")),
    }
}

fn first_user(directory: &Path) -> Result<String, String> {
    let entities: Value = serde_json::from_str(&std::fs::read_to_string(directory).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    entities
        .as_array()
        .and_then(|a| a.iter().find(|e| e["uid"]["type"] == "Shiplog::User"))
        .and_then(|e| e["uid"]["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| "the directory has no user".into())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
