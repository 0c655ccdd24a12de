//! GitHub webhooks: the `X-Hub-Signature-256` check, and each event's
//! mapping to ledger events.
//!
//! | GitHub event (action) | ledger events |
//! |---|---|
//! | `push` (to a branch) | one `commit.pushed` per commit |
//! | `pull_request` (`opened`) | `change.opened` |
//! | `pull_request` (`closed`, merged) | `change.merged`, its commits those pushed to the head branch |
//! | `pull_request_review` (`submitted`) | `change.reviewed` |
//! | `workflow_run` (`completed`) | `build.started` (when it says when the run started), `build.finished` |
//! | `check_suite` (`completed`) | `build.finished` |
//! | `deployment` (`created`) | `deployment.started` |
//! | `deployment_status` (`success`; `failure`, `error`) | `deployment.succeeded` (with the commits the SHA brought); `deployment.failed` |
//! | `deployment_review` (`approved`) | `approval.granted` per environment |
//! | `release` (`published`) | `artifact.published` |
//!
//! Deployments name their artifact `{owner/repo}@{sha}` and their version
//! the SHA's first 12 digits, unless the deployment's `payload` sets
//! `service`, `artifact`, `version`, `emergency`, `rollbackPlan` or `fixes`.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::webhook::{Recorder, need, need_id, need_str, need_u64, time_or};
use super::{IngestError, Ingested, Lookup, at, commit_values, parse_time, str_at};

/// The `X-GitHub-Event`s shiplog records something for.
pub const EVENTS: &[&str] = &[
    "push",
    "pull_request",
    "pull_request_review",
    "workflow_run",
    "check_suite",
    "deployment",
    "deployment_status",
    "deployment_review",
    "release",
    "ping",
];

/// What a delivery amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Record(Vec<Ingested>),
    /// Nothing to record, and why.
    Ignored(String),
    /// GitHub's `ping`, sent when a webhook is created.
    Pong,
}

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing; configure the webhook's secret in GitHub")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not `sha256=` and 64 hexadecimal digits")]
    Malformed,
    #[error("the X-Hub-Signature-256 signature does not match the body; check the webhook secret")]
    Mismatch,
}

/// Check `X-Hub-Signature-256` (`sha256=` and the hex HMAC-SHA256 of the
/// body under the webhook secret), in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_sig = header.trim().strip_prefix("sha256=").ok_or(SignatureError::Malformed)?;
    let sig = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    if sig.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` header for a body (for clients and tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

fn conclusion(c: Option<&str>) -> &'static str {
    match c {
        Some("success") => "success",
        Some("cancelled" | "skipped" | "stale" | "neutral") => "cancelled",
        _ => "failure",
    }
}

/// Map one delivery (`X-GitHub-Event`, the JSON body).
/// `received_at` stands in for times a payload does not give.
pub fn map(
    event: &str,
    payload: &Value,
    received_at: DateTime<Utc>,
    lookup: &dyn Lookup,
) -> Result<Outcome, IngestError> {
    if event == "ping" {
        return Ok(Outcome::Pong);
    }
    if !payload.is_object() {
        return Err(IngestError::new("", "a GitHub webhook payload is a JSON object"));
    }
    let action = str_at(payload, &["action"]).unwrap_or_default();
    let ignore = |why: String| Ok(Outcome::Ignored(why));
    let actor = str_at(payload, &["sender", "login"])
        .or_else(|| str_at(payload, &["pusher", "name"]))
        .unwrap_or("github")
        .to_owned();
    let mut cx = Recorder::new(
        "github",
        str_at(payload, &["repository", "full_name"]).unwrap_or_default(),
        str_at(payload, &["repository", "html_url"]),
        actor,
    );
    let p = payload;
    match (event, action) {
        ("push", _) => {
            let git_ref = need_str(p, &["ref"])?;
            let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
                return ignore(format!(
                    "a push to {git_ref} is not recorded: only pushes to branches are (releases are recorded as `release` events)"
                ));
            };
            if p.get("deleted").and_then(Value::as_bool) == Some(true) {
                return ignore(format!("branch {branch} was deleted: nothing to record"));
            }
            let commits = p.get("commits").and_then(Value::as_array).cloned().unwrap_or_default();
            if commits.is_empty() {
                return ignore("a push without commits: nothing to record".to_owned());
            }
            let repo = need_str(p, &["repository", "full_name"])?;
            let pushed_at = at(p, &["repository", "pushed_at"])
                .and_then(parse_time)
                .or_else(|| at(p, &["head_commit", "timestamp"]).and_then(parse_time))
                .unwrap_or(received_at);
            cx.pushes(&commits, repo, branch, pushed_at)?;
        }
        ("pull_request", "opened") => {
            let pr = need(p, &["pull_request"])?;
            let repo = need_str(p, &["repository", "full_name"])?;
            let number = need_u64(p, &["pull_request", "number"])?;
            let mut data = json!({
                "repo": repo,
                "number": number,
                "author": need_str(pr, &["user", "login"])?,
            });
            if let Value::Object(d) = &mut data {
                for (k, path) in [("title", &["title"][..]), ("targetBranch", &["base", "ref"]), ("url", &["html_url"])]
                {
                    if let Some(v) = str_at(pr, path) {
                        d.insert(k.into(), Value::String(v.to_owned()));
                    }
                }
            }
            cx.record(
                &["pull_request", &number.to_string(), "opened"],
                "change.opened",
                time_or(pr, &["created_at"], received_at),
                data,
                None,
            )?;
        }
        ("pull_request", "closed") => {
            let pr = need(p, &["pull_request"])?;
            if pr.get("merged").and_then(Value::as_bool) != Some(true) {
                return ignore("the pull request was closed without merging: nothing to record".to_owned());
            }
            let repo = need_str(p, &["repository", "full_name"])?;
            let number = need_u64(p, &["pull_request", "number"])?;
            let merge_sha = need_str(pr, &["merge_commit_sha"])?;
            let head_repo = str_at(pr, &["head", "repo", "full_name"]).unwrap_or(repo);
            let head_ref = str_at(pr, &["head", "ref"]).unwrap_or_default();
            let head_sha = str_at(pr, &["head", "sha"]).unwrap_or_default();
            let count = pr.get("commits").and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
            let commits = lookup.pushed_commits(head_repo, head_ref, head_sha, count);
            let note = commits.is_empty().then(|| {
                format!("no pushes of {head_sha} to {head_repo} {head_ref} are recorded: this change's commits are unknown, so they count in no lead time")
            });
            let author = need_str(pr, &["user", "login"])?;
            let mut data = json!({
                "repo": repo,
                "number": number,
                "author": author,
                "mergedBy": str_at(pr, &["merged_by", "login"]).unwrap_or(&cx.actor),
                "mergeSha": merge_sha,
                "commits": commit_values(&commits),
            });
            if let (Some(b), Value::Object(d)) = (str_at(pr, &["base", "ref"]), &mut data) {
                d.insert("targetBranch".into(), Value::String(b.to_owned()));
            }
            cx.record(
                &["pull_request", &number.to_string(), "merged"],
                "change.merged",
                time_or(pr, &["merged_at"], received_at),
                data,
                note,
            )?;
        }
        ("pull_request_review", "submitted") => {
            let review = need(p, &["review"])?;
            let review_id = need_id(review, &["id"])?;
            let state = need_str(review, &["state"])?.to_ascii_lowercase();
            if !["approved", "changes_requested", "commented"].contains(&state.as_str()) {
                return ignore(format!("a review in state {state:?} is not recorded"));
            }
            let data = json!({
                "repo": need_str(p, &["repository", "full_name"])?,
                "number": need_u64(p, &["pull_request", "number"])?,
                "reviewer": need_str(review, &["user", "login"])?,
                "state": state,
                "author": str_at(p, &["pull_request", "user", "login"]),
            });
            let data = drop_nulls(data);
            cx.record(
                &["review", &review_id],
                "change.reviewed",
                time_or(review, &["submitted_at"], received_at),
                data,
                None,
            )?;
        }
        ("workflow_run", "completed") => {
            let run = need(p, &["workflow_run"])?;
            let repo = need_str(p, &["repository", "full_name"])?;
            let name = str_at(run, &["name"]).or_else(|| str_at(p, &["workflow", "name"])).unwrap_or("workflow");
            let pipeline = format!("{repo}/{name}");
            let id = need_id(run, &["id"])?;
            let run_id = match run.get("run_attempt").and_then(Value::as_u64) {
                Some(a) if a > 1 => format!("{id}.{a}"),
                _ => id,
            };
            let sha = need_str(run, &["head_sha"])?;
            if let Some(started) = at(run, &["run_started_at"]).and_then(parse_time) {
                cx.record(
                    &["workflow_run", &run_id, "started"],
                    "build.started",
                    started,
                    json!({"pipeline": pipeline, "runId": run_id, "sha": sha}),
                    None,
                )?;
            }
            let data = json!({
                "pipeline": pipeline, "runId": run_id, "sha": sha,
                "outcome": conclusion(str_at(run, &["conclusion"])),
            });
            cx.record(
                &["workflow_run", &run_id, "finished"],
                "build.finished",
                time_or(run, &["updated_at"], received_at),
                data,
                None,
            )?;
        }
        ("check_suite", "completed") => {
            let suite = need(p, &["check_suite"])?;
            let repo = need_str(p, &["repository", "full_name"])?;
            let app = str_at(suite, &["app", "slug"]).or_else(|| str_at(suite, &["app", "name"])).unwrap_or("checks");
            if app == "github-actions" {
                return ignore("the GitHub Actions check suite is recorded from its workflow_run".to_owned());
            }
            let id = need_id(suite, &["id"])?;
            let data = json!({
                "pipeline": format!("{repo}/{app}"),
                "runId": id,
                "sha": need_str(suite, &["head_sha"])?,
                "outcome": conclusion(str_at(suite, &["conclusion"])),
            });
            cx.record(
                &["check_suite", &id, "finished"],
                "build.finished",
                time_or(suite, &["updated_at"], received_at),
                data,
                None,
            )?;
        }
        ("deployment", "created") => {
            let d = need(p, &["deployment"])?;
            let (data, bad_payload) = deployment_data(p, d, None)?;
            cx.record(
                &["deployment", &deployment_id(d)?],
                "deployment.started",
                time_or(d, &["created_at"], received_at),
                data,
                bad_payload,
            )?;
        }
        ("deployment_status", _) => {
            let status = need(p, &["deployment_status"])?;
            let status_id = need_id(status, &["id"])?;
            let state = need_str(status, &["state"])?;
            let event_type = match state {
                "success" => "deployment.succeeded",
                "failure" | "error" => "deployment.failed",
                other => {
                    return ignore(format!(
                        "a deployment status of {other:?} is not recorded; success, failure and error are"
                    ));
                }
            };
            let d = need(p, &["deployment"])?;
            let repo = need_str(p, &["repository", "full_name"])?;
            let sha = need_str(d, &["sha"])?;
            let mut notes = Vec::new();
            let commits = if event_type == "deployment.succeeded" {
                let commits = deployed_commits(lookup, p, d, repo, sha)?;
                if commits.is_empty() {
                    notes.push(format!(
                        "neither a merged change nor a push of {sha} is recorded: the commits this deployment brought are unknown"
                    ));
                }
                Some(commits).filter(|c| !c.is_empty())
            } else {
                None
            };
            let (data, bad_payload) = deployment_data(p, d, commits.as_deref())?;
            notes.extend(bad_payload);
            let note = (!notes.is_empty()).then(|| notes.join("; "));
            cx.record(
                &["deployment_status", &status_id],
                event_type,
                time_or(status, &["created_at"], received_at),
                data,
                note,
            )?;
        }
        ("deployment_review", "approved") => {
            let repo = need_str(p, &["repository", "full_name"])?;
            let service = need_str(p, &["repository", "name"])?;
            let approver = str_at(p, &["approver", "login"]).unwrap_or(&cx.actor).to_owned();
            let run_id = need_id(p, &["workflow_run", "id"]).unwrap_or_default();
            // Approvals carry no time of their own; the run's last update is
            // when it was approved, else the delivery's arrival.
            let approved_at = at(p, &["workflow_run", "updated_at"]).and_then(parse_time).unwrap_or(received_at);
            let mut environments: Vec<String> = p
                .get("workflow_job_runs")
                .and_then(Value::as_array)
                .map(|runs| runs.iter().filter_map(|r| str_at(r, &["environment"]).map(str::to_owned)).collect())
                .unwrap_or_default();
            if let Some(e) = str_at(p, &["environment"]) {
                environments.push(e.to_owned());
            }
            environments.sort();
            environments.dedup();
            if environments.is_empty() {
                return Err(IngestError::new("workflow_job_runs", "names no environment to approve"));
            }
            let sha = str_at(p, &["workflow_run", "head_sha"]);
            for env in &environments {
                let mut data = json!({
                    "approver": approver, "scope": "deployment", "service": service, "environment": env,
                });
                if let Value::Object(d) = &mut data {
                    if let Some(sha) = sha {
                        d.insert("artifact".into(), Value::String(format!("{repo}@{sha}")));
                    }
                    if let Some(c) = str_at(p, &["comment"]) {
                        d.insert("comment".into(), Value::String(c.to_owned()));
                    }
                }
                cx.record(
                    &["deployment_review", &run_id, env, &approver],
                    "approval.granted",
                    approved_at,
                    data,
                    None,
                )?;
            }
        }
        ("deployment_review", other) => {
            return ignore(format!("a deployment review {other:?} is not recorded: only approvals are"));
        }
        ("release", "published") => {
            let release = need(p, &["release"])?;
            let release_id = need_id(release, &["id"])?;
            let repo = need_str(p, &["repository", "full_name"])?;
            let tag = need_str(release, &["tag_name"])?;
            let data = json!({
                "artifact": format!("{repo}@{tag}"),
                "service": need_str(p, &["repository", "name"])?,
                "version": tag,
                "commits": [],
            });
            let note = Some("a release names no commits: lead time comes from the deployments' commits".to_owned());
            cx.record(
                &["release", &release_id],
                "artifact.published",
                time_or(release, &["published_at"], received_at),
                data,
                note,
            )?;
        }
        (event, "") => return ignore(format!("GitHub event {event:?} is not recorded")),
        (event, action) => return ignore(format!("GitHub event {event:?} with action {action:?} is not recorded")),
    }
    Ok(Outcome::Record(cx.out))
}

fn deployment_id(d: &Value) -> Result<String, IngestError> {
    need_id(d, &["id"])
}

fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

/// The commits a successful GitHub deployment brought (see
/// `ingest::deployed_commits`), its service, environment and branch read
/// from the payload.
fn deployed_commits(
    lookup: &dyn Lookup,
    p: &Value,
    d: &Value,
    repo: &str,
    sha: &str,
) -> Result<Vec<crate::event::data::CommitRef>, IngestError> {
    let (service, environment) = deployment_place(p, d)?;
    let branch = str_at(d, &["ref"]).map(|r| r.strip_prefix("refs/heads/").unwrap_or(r));
    Ok(super::deployed_commits(lookup, repo, sha, branch, &service, &environment))
}

/// The payload a deployment's creator sent: an object, or JSON in a string.
fn deployment_payload(d: &Value) -> Value {
    match d.get("payload") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok().filter(Value::is_object).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// The service and environment a deployment is of.
fn deployment_place(p: &Value, d: &Value) -> Result<(String, String), IngestError> {
    let extra = deployment_payload(d);
    let service = match str_at(&extra, &["service"]).filter(|s| crate::name::Name::parse(*s).is_ok()) {
        Some(s) => s.to_owned(),
        None => need_str(p, &["repository", "name"])?.to_owned(),
    };
    let environment = str_at(d, &["environment"])
        .or_else(|| str_at(p, &["deployment_status", "environment"]))
        .ok_or_else(|| IngestError::new("deployment.environment", "is missing"))?;
    Ok((service, environment.to_owned()))
}

/// A deployment's data from a `deployment` object and its `payload`, and a
/// note naming the payload's fields that were not valid (they are left out;
/// the deployment is recorded without them).
fn deployment_data(
    p: &Value,
    d: &Value,
    commits: Option<&[crate::event::data::CommitRef]>,
) -> Result<(Value, Option<String>), IngestError> {
    let repo = need_str(p, &["repository", "full_name"])?;
    let sha = need_str(d, &["sha"])?;
    let id = deployment_id(d)?;
    let extra = deployment_payload(d);
    let (service, environment) = deployment_place(p, d)?;
    let mut data = json!({
        "deploymentId": format!("github:{repo}:{id}"),
        "service": service,
        "environment": environment,
        "artifact": format!("{repo}@{sha}"),
        "version": sha.chars().take(12).collect::<String>(),
    });
    if let Some(c) = commits {
        if let Value::Object(m) = &mut data {
            m.insert("commits".into(), commit_values(c));
        }
    }
    // Each optional field of the payload, kept only if the deployment is
    // still valid with it.
    let mut refused = Vec::new();
    for key in ["artifact", "version", "emergency", "rollbackPlan", "fixes", "strategy"] {
        let Some(v) = extra.get(key).filter(|v| !v.is_null()) else { continue };
        let mut candidate = data.clone();
        if let Value::Object(m) = &mut candidate {
            m.insert(key.into(), v.clone());
        }
        let probe = json!({"id": uuid::Uuid::nil(), "type": "deployment.succeeded",
            "occurredAt": "2000-01-01T00:00:00Z", "actor": "probe", "data": candidate.clone()});
        if crate::NewEvent::parse(probe, crate::Author::Server).is_ok() {
            data = candidate;
        } else {
            refused.push(key);
        }
    }
    let note = (!refused.is_empty()).then(|| {
        format!(
            "the deployment payload's {} {} not valid and left out",
            refused.join(", "),
            if refused.len() == 1 { "is" } else { "are" }
        )
    });
    Ok((data, note))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn signatures() {
        // GitHub's documented example: secret "It's a Secret to Everybody",
        // payload "Hello, World!".
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, body), header);
        assert_eq!(verify_signature(secret, body, Some(header)), Ok(()));
        assert_eq!(verify_signature(secret, b"Hello, World?", Some(header)), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(b"other", body, Some(header)), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(secret, body, None), Err(SignatureError::Missing));
        assert_eq!(verify_signature(secret, body, Some("sha1=abc")), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(secret, body, Some("sha256=zz")), Err(SignatureError::Malformed));
    }
}
