//! What the GitHub and GitLab mappings share: reading a payload's fields
//! with errors that name them, recording events under natural keys, and a
//! push's commits.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Envelope, IngestError, Ingested, at, derive_id, parse_time, str_at};

/// The digest of a webhook event: its id says everything, since the id is
/// derived from a natural key inside the payload. The same thing delivered
/// again is a duplicate, whatever else differs in the delivery.
fn natural_digest(id: Uuid) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"shiplog/webhook\0");
    h.update(id.as_bytes());
    h.finalize().into()
}

pub(crate) fn need<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value, IngestError> {
    at(v, path).filter(|x| !x.is_null()).ok_or_else(|| IngestError::new(path.join("."), "is missing"))
}

pub(crate) fn need_str<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, IngestError> {
    str_at(v, path).ok_or_else(|| IngestError::new(path.join("."), "is missing or not a non-empty string"))
}

pub(crate) fn need_u64(v: &Value, path: &[&str]) -> Result<u64, IngestError> {
    need(v, path)?.as_u64().ok_or_else(|| IngestError::new(path.join("."), "must be a non-negative integer"))
}

/// An id (a number, or a non-empty string) as text.
pub(crate) fn need_id(v: &Value, path: &[&str]) -> Result<String, IngestError> {
    match at(v, path) {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(IngestError::new(path.join("."), "is missing")),
    }
}

pub(crate) fn time_or(v: &Value, path: &[&str], fallback: DateTime<Utc>) -> DateTime<Utc> {
    at(v, path).and_then(parse_time).unwrap_or(fallback)
}

/// The events one delivery makes.
pub(crate) struct Recorder {
    /// `github` or `gitlab`: the namespace of the derived ids.
    namespace: &'static str,
    repo: String,
    source: Option<String>,
    pub actor: String,
    pub out: Vec<Ingested>,
}

impl Recorder {
    pub fn new(namespace: &'static str, repo: &str, source: Option<&str>, actor: String) -> Recorder {
        Recorder { namespace, repo: repo.to_owned(), source: source.map(str::to_owned), actor, out: Vec::new() }
    }

    /// Record an event whose identity is `key`, a natural key from inside
    /// the payload (a deployment status's id, a commit on a branch): the
    /// same thing delivered again, under any delivery id or by a second
    /// webhook, is the same event.
    pub fn record(
        &mut self,
        key: &[&str],
        event_type: &'static str,
        occurred_at: DateTime<Utc>,
        data: Value,
        note: Option<String>,
    ) -> Result<(), IngestError> {
        let data = match data {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let envelope = Envelope {
            id: derive_id(self.namespace, &[&[self.repo.as_str()], key].concat()),
            event_type,
            occurred_at,
            actor: self.actor.clone(),
            source: self.source.clone(),
            data,
        };
        let mut event = envelope.parse().map_err(|e| {
            IngestError::new(
                e.field().unwrap_or_default(),
                format!("the payload does not make a valid {event_type}: {e}"),
            )
        })?;
        event.digest = natural_digest(event.id);
        self.out.push(Ingested { event, note });
        Ok(())
    }

    /// One `commit.pushed` per commit of a push (`commits[]` with `id`,
    /// `author` and `timestamp`, as both GitHub and GitLab send them).
    pub fn pushes(
        &mut self,
        commits: &[Value],
        repo: &str,
        branch: &str,
        pushed_at: DateTime<Utc>,
    ) -> Result<(), IngestError> {
        for (i, c) in commits.iter().enumerate() {
            let field = |f: &str| format!("commits[{i}].{f}");
            let sha = str_at(c, &["id"]).ok_or_else(|| IngestError::new(field("id"), "is missing"))?;
            let author = str_at(c, &["author", "username"])
                .or_else(|| str_at(c, &["author", "name"]))
                .or_else(|| str_at(c, &["author", "email"]))
                .ok_or_else(|| IngestError::new(field("author"), "names nobody"))?;
            let authored = at(c, &["timestamp"])
                .and_then(parse_time)
                .ok_or_else(|| IngestError::new(field("timestamp"), "is missing or not a time"))?;
            let mut data = json!({
                "repo": repo, "sha": sha, "author": author,
                "authoredAt": super::format_time(&authored), "branch": branch,
            });
            if let (Some(m), Value::Object(d)) = (str_at(c, &["message"]), &mut data) {
                d.insert("message".into(), Value::String(m.chars().take(4096).collect()));
            }
            self.record(&["push", branch, sha], "commit.pushed", pushed_at, data, None)?;
        }
        Ok(())
    }
}
