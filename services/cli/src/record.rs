//! `shiplog record`: append events to a running server, from flags, a file
//! or standard input, and print the receipts.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use clap::Args;
use serde_json::{Map, Value, json};

use crate::client::{Client, ClientError, ServerArgs};

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  shiplog record --type deployment.succeeded --actor ci-bot \\
      --data '{\"deploymentId\":\"d-42\",\"service\":\"checkout\",\"environment\":\"production\",\"artifact\":\"sha256:ab12\",\"version\":\"1.4.2\"}'
  shiplog record --file events.json      # one event, a JSON array (one atomic batch), or NDJSON
  cat events.ndjson | shiplog record --file -")]
pub struct RecordArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Read the event(s) from this file (`-` for standard input): a JSON
    /// object, a JSON array, or one JSON object per line; sent as one batch
    #[arg(long, short, value_name = "FILE", conflicts_with_all = ["event_type", "data"])]
    file: Option<PathBuf>,
    /// Event type, e.g. deployment.succeeded
    #[arg(long = "type", value_name = "TYPE", required_unless_present = "file")]
    event_type: Option<String>,
    /// The event's data: a JSON object, or @FILE to read it from a file
    #[arg(long, value_name = "JSON", required_unless_present = "file")]
    data: Option<String>,
    /// Who did it (a person or a pipeline)
    #[arg(long, env = "SHIPLOG_ACTOR", required_unless_present = "file")]
    actor: Option<String>,
    /// Where it happened, e.g. the CI run's URL
    #[arg(long, value_name = "URL")]
    source: Option<String>,
    /// Stream to append to [default: derived from the type and data]
    #[arg(long)]
    stream: Option<String>,
    /// The stream's version this event expects (-1: the stream must not exist)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    expected_version: Option<i64>,
    /// The event's id, the idempotency key [default: a new UUID]
    #[arg(long, value_name = "UUID")]
    id: Option<String>,
    /// When it happened, RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    occurred_at: Option<String>,
    /// A link to another event, REL=EVENT_ID (repeatable)
    #[arg(long = "link", value_name = "REL=ID")]
    links: Vec<String>,
    /// Attempts for transient failures (server unreachable, 503, 429); the
    /// event id stays the same, so a retry never records twice
    #[arg(long, default_value_t = 3, value_name = "N")]
    retries: u32,
}

pub fn run(args: RecordArgs) -> Result<ExitCode, String> {
    let body = match &args.file {
        Some(path) => read_events(path)?,
        None => event_from_flags(&args)?,
    };
    let client = Client::new(&args.server)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.post_json("/v1/events", &body) {
            Ok((_, receipts)) => {
                println!("{}", serde_json::to_string_pretty(&receipts).unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
            Err(err) if err.is_transient() && attempt <= args.retries => {
                // The server's Retry-After (rate limit), or a doubling backoff.
                let asked = match &err {
                    ClientError::Refused { body, .. } => body.get("retryAfterSeconds").and_then(Value::as_u64),
                    _ => None,
                };
                let backoff = Duration::from_millis(250 << attempt.min(5));
                let wait = asked.map_or(backoff, |s| Duration::from_secs(s.min(60)).max(backoff));
                eprintln!("warning: {err}; retrying in {} ms", wait.as_millis());
                std::thread::sleep(wait);
            }
            Err(ClientError::Refused { body, message, code, .. }) => {
                // Name the field when the message does not already.
                let hint = match body.get("field").and_then(Value::as_str) {
                    Some(f) if !message.contains(f) => format!(" (field `{f}`)"),
                    _ => String::new(),
                };
                return Err(format!("{code}: {message}{hint}"));
            }
            Err(err) => return Err(err.to_string()),
        }
    }
}

fn read_events(path: &PathBuf) -> Result<String, String> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{} holds no event; give a JSON object, an array, or NDJSON", path.display()));
    }
    if serde_json::from_str::<Value>(trimmed).is_ok() {
        return Ok(trimmed.to_owned());
    }
    // NDJSON: one event per line, sent as one batch.
    let mut events = Vec::new();
    for (n, line) in trimmed.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: not a JSON event: {e}", path.display(), n + 1))?;
        events.push(event);
    }
    serde_json::to_string(&events).map_err(|e| e.to_string())
}

fn event_from_flags(args: &RecordArgs) -> Result<String, String> {
    let data = args.data.as_deref().unwrap_or_default();
    let data_text = match data.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--data @{path}: cannot read it: {e}"))?,
        None => data.to_owned(),
    };
    let data: Value = serde_json::from_str(&data_text).map_err(|e| {
        format!("--data is not valid JSON ({e}); give an object such as '{{\"service\":\"checkout\"}}'")
    })?;
    if !data.is_object() {
        return Err("--data must be a JSON object, e.g. '{\"service\":\"checkout\"}'".into());
    }
    let mut event = Map::new();
    event.insert("id".into(), json!(args.id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string())));
    event.insert("type".into(), json!(args.event_type));
    event.insert(
        "occurredAt".into(),
        json!(args.occurred_at.clone().unwrap_or_else(|| Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true))),
    );
    event.insert("actor".into(), json!(args.actor));
    if let Some(source) = &args.source {
        event.insert("source".into(), json!(source));
    }
    if let Some(stream) = &args.stream {
        event.insert("stream".into(), json!(stream));
    }
    if let Some(v) = args.expected_version {
        event.insert("expectedVersion".into(), json!(v));
    }
    event.insert("data".into(), data);
    if !args.links.is_empty() {
        let mut links = Vec::new();
        for link in &args.links {
            let (rel, id) = link
                .split_once('=')
                .ok_or_else(|| format!("--link {link:?} must be REL=EVENT_ID, e.g. fixes=0192f0c4-…"))?;
            links.push(json!({"rel": rel, "id": id}));
        }
        event.insert("links".into(), Value::Array(links));
    }
    serde_json::to_string(&Value::Object(event)).map_err(|e| e.to_string())
}
