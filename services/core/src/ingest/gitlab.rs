//! GitLab webhooks (`X-Gitlab-Token`): push, merge request, pipeline and
//! deployment hooks, mapped to ledger events.
//!
//! | hook (`X-Gitlab-Event`) | ledger events |
//! |---|---|
//! | `Push Hook` (to a branch) | one `commit.pushed` per commit |
//! | `Merge Request Hook` (`open`; `merge`) | `change.opened`; `change.merged`, its commits those pushed to the source branch |
//! | `Pipeline Hook` (`success`, `failed`, `canceled`) | `build.finished` |
//! | `Deployment Hook` (`running`; `success`; `failed`) | `deployment.started`; `deployment.succeeded`; `deployment.failed` |

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::github::Outcome;
use super::webhook::{Recorder, need_id, need_str, time_or};
use super::{IngestError, Lookup, at, commit_values, parse_time, str_at};

/// The `X-Gitlab-Event`s shiplog records something for.
pub const HOOKS: &[&str] = &["Push Hook", "Merge Request Hook", "Pipeline Hook", "Deployment Hook"];

/// Compare the `X-Gitlab-Token` header with the configured token in
/// constant time: their SHA-256 digests are compared, so neither the
/// token's content nor its length shows in the time taken.
pub fn token_matches(expected: &str, given: Option<&str>) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let Some(given) = given else { return false };
    let (a, b) = (Sha256::digest(expected.as_bytes()), Sha256::digest(given.as_bytes()));
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// Map one hook (`X-Gitlab-Event`, the JSON body).
pub fn map(
    kind: &str,
    payload: &Value,
    received_at: DateTime<Utc>,
    lookup: &dyn Lookup,
) -> Result<Outcome, IngestError> {
    if !payload.is_object() {
        return Err(IngestError::new("", "a GitLab webhook payload is a JSON object"));
    }
    let p = payload;
    let actor = str_at(p, &["user_username"])
        .or_else(|| str_at(p, &["user", "username"]))
        .or_else(|| str_at(p, &["user_name"]))
        .unwrap_or("gitlab")
        .to_owned();
    let mut cx = Recorder::new(
        "gitlab",
        str_at(p, &["project", "path_with_namespace"]).unwrap_or_default(),
        str_at(p, &["project", "web_url"]),
        actor,
    );
    let ignore = |why: String| Ok(Outcome::Ignored(why));
    match kind {
        "Push Hook" => {
            let git_ref = need_str(p, &["ref"])?;
            let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
                return ignore(format!("a push to {git_ref} is not recorded: only pushes to branches are"));
            };
            let commits = p.get("commits").and_then(Value::as_array).cloned().unwrap_or_default();
            if commits.is_empty() {
                return ignore("a push without commits (a new or deleted branch): nothing to record".to_owned());
            }
            let repo = need_str(p, &["project", "path_with_namespace"])?;
            let pushed_at =
                commits.iter().filter_map(|c| at(c, &["timestamp"]).and_then(parse_time)).max().unwrap_or(received_at);
            cx.pushes(&commits, repo, branch, pushed_at)?;
        }
        "Merge Request Hook" => {
            let mr = p.get("object_attributes").ok_or_else(|| IngestError::new("object_attributes", "is missing"))?;
            let repo = need_str(p, &["project", "path_with_namespace"])?;
            let number = mr
                .get("iid")
                .and_then(Value::as_u64)
                .ok_or_else(|| IngestError::new("object_attributes.iid", "is missing"))?;
            let action = str_at(mr, &["action"]).unwrap_or_default();
            match action {
                "open" | "reopen" => {
                    // Who reopens a merge request is not always who opened it.
                    let author = match action {
                        "reopen" => lookup.change_author(repo, number).unwrap_or_else(|| cx.actor.clone()),
                        _ => cx.actor.clone(),
                    };
                    let mut data = json!({"repo": repo, "number": number, "author": author});
                    if let Value::Object(d) = &mut data {
                        for (k, path) in [("title", "title"), ("targetBranch", "target_branch"), ("url", "url")] {
                            if let Some(v) = str_at(mr, &[path]) {
                                d.insert(k.into(), Value::String(v.to_owned()));
                            }
                        }
                    }
                    let number_text = number.to_string();
                    let when = str_at(mr, &["updated_at"]).unwrap_or_default();
                    let key: &[&str] = if action == "open" {
                        &["mr", &number_text, "open"]
                    } else {
                        &["mr", &number_text, "reopen", when]
                    };
                    cx.record(key, "change.opened", time_or(mr, &["created_at"], received_at), data, None)?;
                }
                "merge" => {
                    // A fast-forward merge has no merge commit: the merged
                    // head is the squash commit, else the last commit.
                    let merge_sha = str_at(mr, &["merge_commit_sha"])
                        .or_else(|| str_at(mr, &["squash_commit_sha"]))
                        .or_else(|| str_at(mr, &["last_commit", "id"]))
                        .ok_or_else(|| {
                            IngestError::new(
                                "object_attributes.merge_commit_sha",
                                "is missing, and so are squash_commit_sha and last_commit.id",
                            )
                        })?;
                    let source = str_at(mr, &["source_branch"]).unwrap_or_default();
                    let head = str_at(mr, &["last_commit", "id"]).unwrap_or_default();
                    let source_repo = str_at(mr, &["source", "path_with_namespace"]).unwrap_or(repo);
                    let commits = lookup.pushed_commits(source_repo, source, head, 0);
                    let note = commits.is_empty().then(|| {
                        format!("no pushes of {head} to {source_repo} {source} are recorded: this change's commits are unknown")
                    });
                    // The hook names who merged; who opened it is known
                    // from its `open` hook, if recorded.
                    let author = lookup
                        .change_author(repo, number)
                        .or_else(|| mr.get("author_id").and_then(Value::as_u64).map(|id| format!("gitlab-user-{id}")))
                        .unwrap_or_else(|| cx.actor.clone());
                    let data = json!({
                        "repo": repo, "number": number, "author": author, "mergedBy": cx.actor,
                        "mergeSha": merge_sha, "commits": commit_values(&commits), "targetBranch": str_at(mr, &["target_branch"]),
                    });
                    let data = match data {
                        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
                        v => v,
                    };
                    let at_time = time_or(mr, &["merged_at"], time_or(mr, &["updated_at"], received_at));
                    cx.record(&["mr", &number.to_string(), "merge"], "change.merged", at_time, data, note)?;
                }
                other => {
                    return ignore(format!("a merge request action {other:?} is not recorded; open and merge are"));
                }
            }
        }
        "Pipeline Hook" => {
            let pl = p.get("object_attributes").ok_or_else(|| IngestError::new("object_attributes", "is missing"))?;
            let status = need_str(pl, &["status"])?;
            let outcome = match status {
                "success" => "success",
                "failed" => "failure",
                "canceled" | "cancelled" | "skipped" => "cancelled",
                other => {
                    return ignore(format!("a pipeline in status {other:?} is not recorded; finished pipelines are"));
                }
            };
            let repo = need_str(p, &["project", "path_with_namespace"])?;
            let name = str_at(pl, &["name"]).unwrap_or("pipeline");
            let data = json!({
                "pipeline": format!("{repo}/{name}"),
                "runId": need_id(pl, &["id"])?,
                "sha": need_str(pl, &["sha"])?,
                "outcome": outcome,
            });
            let id = need_id(pl, &["id"])?;
            cx.record(
                &["pipeline", &id, status],
                "build.finished",
                time_or(pl, &["finished_at"], received_at),
                data,
                None,
            )?;
        }
        "Deployment Hook" => {
            let status = need_str(p, &["status"])?;
            let event_type = match status {
                "running" => "deployment.started",
                "success" => "deployment.succeeded",
                "failed" => "deployment.failed",
                other => return ignore(format!("a deployment in status {other:?} is not recorded")),
            };
            let repo = need_str(p, &["project", "path_with_namespace"])?;
            // The full SHA is the last part of the commit URL.
            let sha = str_at(p, &["commit_url"])
                .and_then(|u| u.rsplit('/').next())
                .filter(|s| s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit()))
                .or_else(|| str_at(p, &["short_sha"]))
                .ok_or_else(|| IngestError::new("commit_url", "names no commit"))?;
            let mut note = None;
            let deployment_id = need_id(p, &["deployment_id"])?;
            let mut data = json!({
                "deploymentId": format!("gitlab:{repo}:{deployment_id}"),
                // The project's path (its slug), as GitHub's repository name.
                "service": repo.rsplit('/').next().unwrap_or(repo),
                "environment": need_str(p, &["environment"])?,
                "artifact": format!("{repo}@{sha}"),
                "version": sha.chars().take(12).collect::<String>(),
            });
            if event_type == "deployment.succeeded" {
                let service = repo.rsplit('/').next().unwrap_or(repo);
                let environment = str_at(p, &["environment"]).unwrap_or_default();
                let commits = super::deployed_commits(lookup, repo, sha, str_at(p, &["ref"]), service, environment);
                match (Some(commits).filter(|c| !c.is_empty()), &mut data) {
                    (Some(c), Value::Object(d)) => {
                        d.insert("commits".into(), commit_values(&c));
                    }
                    _ => {
                        note = Some(format!(
                            "neither a merge nor a push of {sha} is recorded: the commits this deployment brought are unknown"
                        ));
                    }
                }
            }
            cx.record(
                &["deployment", &deployment_id, status],
                event_type,
                time_or(p, &["status_changed_at"], received_at),
                data,
                note,
            )?;
        }
        other => {
            return ignore(format!(
                "GitLab hook {other:?} is not recorded; push, merge request, pipeline and deployment hooks are"
            ));
        }
    }
    Ok(Outcome::Record(cx.out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches("s3cret", Some("s3cret")));
        assert!(!token_matches("s3cret", Some("s3cre")));
        assert!(!token_matches("s3cret", Some("s3cret!")));
        assert!(!token_matches("s3cret", Some("")));
        assert!(!token_matches("s3cret", None));
    }
}
