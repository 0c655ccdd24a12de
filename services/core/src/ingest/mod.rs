//! Events from the tools pipelines already run: CDEvents, GitHub and GitLab
//! webhooks, turned into ledger events.
//!
//! Each integration is a pure function from what the tool sent (and, where
//! the tool does not say everything, what the ledger already knows, through
//! [`Lookup`]) to envelopes that then pass through [`NewEvent::parse`] like
//! any other event. Event ids are derived from the tool's own idempotency
//! key (a CDEvent's `context.source` + `context.id`, a webhook's delivery
//! id), so a redelivery records nothing twice.

pub mod cdevents;
pub mod github;
pub mod gitlab;
pub mod jsonschema;
mod webhook;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::data::CommitRef;
use crate::event::{Author, EventError, NewEvent, format_time};

/// What the ledger already knows, for an integration whose tool does not
/// send it: which commits a branch or a merge brought, who opened a change,
/// what is deployed where. The server answers from the DORA projection
/// (`delivery::Delivery`), which keeps these beside the deployments.
pub trait Lookup {
    /// Up to `count` commits pushed to `branch` of `repo`, oldest first,
    /// ending with `head` (all of them up to `head` when `count` is 0).
    fn pushed_commits(&self, repo: &str, branch: &str, head: &str, count: usize) -> Vec<CommitRef>;
    /// A commit pushed to `repo`, with the time it was authored.
    fn commit(&self, repo: &str, sha: &str) -> Option<CommitRef>;
    /// The commits a change merged as `merge_sha` brought.
    fn merged_commits(&self, repo: &str, merge_sha: &str) -> Option<Vec<CommitRef>>;
    /// Who opened change `number` of `repo`.
    fn change_author(&self, repo: &str, number: u64) -> Option<String>;
    /// The deployment running `service` in `environment` now: the latest
    /// that succeeded and was not rolled back.
    fn current_deployment(&self, service: &str, environment: &str) -> Option<Running>;
}

/// A deployment running somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub deployment_id: String,
    pub version: String,
    pub artifact: String,
}

/// The commits a successful deployment of `sha` (of `repo`, from `branch`)
/// brought to `service` in `environment`: those of the change merged as
/// `sha`, and those pushed to the branch since the SHA of the deployment
/// running there before (when both are recorded); failing both, the pushed
/// commit `sha` itself. The DORA rules count each commit once per
/// environment, at the deployment that first brought it.
pub(crate) fn deployed_commits(
    lookup: &dyn Lookup,
    repo: &str,
    sha: &str,
    branch: Option<&str>,
    service: &str,
    environment: &str,
) -> Vec<CommitRef> {
    let mut commits = lookup.merged_commits(repo, sha).unwrap_or_default();
    let previous = lookup.current_deployment(service, environment);
    if let (Some(branch), Some(prev)) = (branch, previous) {
        if let Some(since) = prev.artifact.strip_prefix(&format!("{repo}@")) {
            let pushed = lookup.pushed_commits(repo, branch, sha, 0);
            if let Some(pos) = pushed.iter().position(|c| c.sha.as_str().eq_ignore_ascii_case(since)) {
                for c in &pushed[pos + 1..] {
                    if !commits.iter().any(|x| x.sha == c.sha) {
                        commits.push(c.clone());
                    }
                }
            }
        }
    }
    if commits.is_empty() {
        commits.extend(lookup.commit(repo, sha));
    }
    commits
}

/// The ledger as it will be once a batch's earlier events are recorded: a
/// batch `[service.deployed X, service.rolledback X]` rolls back X.
pub struct BatchLookup<'a> {
    base: &'a dyn Lookup,
    deployed: Vec<(String, String, Running)>,
    rolled_back: Vec<String>,
}

impl<'a> BatchLookup<'a> {
    pub fn new(base: &'a dyn Lookup) -> Self {
        BatchLookup { base, deployed: Vec::new(), rolled_back: Vec::new() }
    }

    /// Take an event of the batch into account.
    pub fn add(&mut self, event: &NewEvent) {
        match &event.typed {
            crate::EventData::DeploymentSucceeded(d) => self.deployed.push((
                d.service.as_str().to_owned(),
                d.environment.as_str().to_owned(),
                Running {
                    deployment_id: d.deployment_id.as_str().to_owned(),
                    version: d.version.as_str().to_owned(),
                    artifact: d.artifact.as_str().to_owned(),
                },
            )),
            crate::EventData::DeploymentRolledBack(r) => self.rolled_back.push(r.deployment_id.as_str().to_owned()),
            _ => {}
        }
    }
}

impl Lookup for BatchLookup<'_> {
    fn pushed_commits(&self, repo: &str, branch: &str, head: &str, count: usize) -> Vec<CommitRef> {
        self.base.pushed_commits(repo, branch, head, count)
    }
    fn commit(&self, repo: &str, sha: &str) -> Option<CommitRef> {
        self.base.commit(repo, sha)
    }
    fn merged_commits(&self, repo: &str, merge_sha: &str) -> Option<Vec<CommitRef>> {
        self.base.merged_commits(repo, merge_sha)
    }
    fn change_author(&self, repo: &str, number: u64) -> Option<String> {
        self.base.change_author(repo, number)
    }
    fn current_deployment(&self, service: &str, environment: &str) -> Option<Running> {
        let live = |r: &Running| !self.rolled_back.contains(&r.deployment_id);
        let in_batch =
            self.deployed.iter().rev().filter(|(s, e, _)| s == service && e == environment).map(|(_, _, r)| r);
        match in_batch.clone().find(|r| live(r)) {
            Some(r) => Some(r.clone()),
            // Everything this batch deployed there is rolled back already:
            // what ran before is not known here.
            None if in_batch.count() > 0 => None,
            None => self.base.current_deployment(service, environment).filter(live),
        }
    }
}

/// A lookup that knows nothing (for tests and offline mapping).
pub struct NoLookup;

impl Lookup for NoLookup {
    fn pushed_commits(&self, _: &str, _: &str, _: &str, _: usize) -> Vec<CommitRef> {
        Vec::new()
    }
    fn commit(&self, _: &str, _: &str) -> Option<CommitRef> {
        None
    }
    fn merged_commits(&self, _: &str, _: &str) -> Option<Vec<CommitRef>> {
        None
    }
    fn change_author(&self, _: &str, _: u64) -> Option<String> {
        None
    }
    fn current_deployment(&self, _: &str, _: &str) -> Option<Running> {
        None
    }
}

/// An event an integration wants recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub event: NewEvent,
    /// Why it was recorded as it was, when that is not obvious (a CDEvent
    /// kept as `cdevent.received` although it has a native counterpart).
    pub note: Option<String>,
}

/// Why something sent by a tool was refused; `field` is where, in what the
/// tool sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("`{field}` ") })]
pub struct IngestError {
    pub field: String,
    pub message: String,
}

impl IngestError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        IngestError { field: field.into(), message: message.into() }
    }
}

/// A stable event id from an integration's idempotency key: a UUID
/// (version 8) made of the first 16 bytes of SHA-256 over the namespace and
/// the key's parts, each prefixed with its length.
pub fn derive_id(namespace: &str, parts: &[&str]) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"shiplog/");
    h.update(namespace.as_bytes());
    // Each part with its length, so that no two lists of parts hash alike.
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The idempotency fingerprint of what a tool sent: SHA-256 over the
/// integration's name, the key and the payload in canonical JSON. An
/// integration's events carry it as their digest, so a redelivery of the
/// same payload is a duplicate however the ledger has changed since (its
/// mapping may read the ledger), and the same key with another payload a
/// conflict.
pub fn fingerprint(namespace: &str, key: &str, payload: &Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    h.update([0u8]);
    match crate::canonical::to_jcs(payload) {
        Ok(bytes) => h.update(bytes),
        Err(_) => h.update(payload.to_string().as_bytes()),
    }
    h.finalize().into()
}

/// An envelope under construction.
pub(crate) struct Envelope {
    pub id: Uuid,
    pub event_type: &'static str,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub source: Option<String>,
    pub data: Map<String, Value>,
}

impl Envelope {
    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "type": self.event_type,
            "occurredAt": format_time(&self.occurred_at),
            "actor": self.actor,
            "data": Value::Object(self.data.clone()),
        });
        if let (Some(s), Value::Object(m)) = (&self.source, &mut v) {
            m.insert("source".to_owned(), Value::String(s.clone()));
        }
        v
    }

    /// Parse as the server: an integration may write `cdevent.received`
    /// and `data.cdevent`, which clients may not; it never makes the other
    /// server-only types.
    pub fn parse(&self) -> Result<NewEvent, EventError> {
        NewEvent::parse(self.to_value(), Author::Server)
    }
}

/// `%XX` escapes decoded (package URLs, CloudEvents binary-mode headers);
/// text that does not decode to UTF-8 is kept as it was.
pub fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// A value's string at a path of object keys.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    Some(cur)
}

pub(crate) fn commit_values(commits: &[CommitRef]) -> Value {
    Value::Array(
        commits.iter().map(|c| json!({"sha": c.sha.as_str(), "authoredAt": format_time(&c.authored_at)})).collect(),
    )
}

/// A time as tools write it: RFC 3339, GitLab's `2026-11-05 11:00:00 UTC`
/// or `2026-11-05 13:00:00 +0100`, or Unix seconds.
pub(crate) fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => n.as_i64().and_then(|s| DateTime::from_timestamp(s, 0)),
        Value::String(s) => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            if let Some(rest) = s.strip_suffix(" UTC") {
                return chrono::NaiveDateTime::parse_from_str(rest, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc());
            }
            DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z").ok().map(|t| t.with_timezone(&Utc))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derive_id("cdevents", &["/src", "1"]);
        assert_eq!(a, derive_id("cdevents", &["/src", "1"]));
        assert_ne!(a, derive_id("cdevents", &["/src1", ""]));
        assert_ne!(a, derive_id("github", &["/src", "1"]));
        assert_eq!(a.get_version_num(), 8);
    }

    #[test]
    fn tool_times() {
        let cases = [
            (json!("2026-11-02T11:30:00+01:00"), "2026-11-02T10:30:00Z"),
            (json!("2026-11-05 11:00:00 UTC"), "2026-11-05T11:00:00Z"),
            (json!("2026-11-05 13:00:00 +0100"), "2026-11-05T12:00:00Z"),
            (json!(1_793_000_000), "2026-10-26T07:33:20Z"),
        ];
        for (v, want) in cases {
            assert_eq!(parse_time(&v).map(|t| format_time(&t)).as_deref(), Some(want), "{v}");
        }
        assert_eq!(parse_time(&json!("yesterday")), None);
    }
}
