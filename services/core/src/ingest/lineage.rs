//! The projection behind [`Lookup`]: which commits were pushed where, what
//! each merge brought, who opened each change, and what is deployed where.
//! Webhooks that do not carry these facts (GitHub's `pull_request` lists no
//! commits, its `deployment_status` only a SHA) take them from here.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Lookup;
use crate::event::data::CommitRef;
use crate::name::Sha;
use crate::symbols::FastMap;
use crate::{EventData, RecordedEvent};

type Key = (Arc<str>, Arc<str>);
/// A commit and when it was authored.
type Pushed = (Arc<str>, DateTime<Utc>);
/// A deployment's id and version.
type Running = (Arc<str>, Arc<str>);

fn key(a: &str, b: &str) -> Key {
    (Arc::from(a), Arc::from(b))
}

#[derive(Debug, Default, Clone)]
pub struct Lineage {
    applied: Option<u64>,
    /// Commits pushed per (repo, branch), in the order they were pushed.
    pushes: FastMap<Key, Vec<Pushed>>,
    /// When each pushed commit was authored, per (repo, sha).
    authored: FastMap<Key, DateTime<Utc>>,
    /// The commits each merge brought, per (repo, merge sha).
    merges: FastMap<Key, Vec<CommitRef>>,
    authors: FastMap<(Arc<str>, u64), Arc<str>>,
    /// Successful deployments per (service, environment), in order: (id, version).
    deployments: FastMap<Key, Vec<Running>>,
    rolled_back: FastMap<Arc<str>, ()>,
}

impl Lineage {
    pub fn new() -> Lineage {
        Lineage::default()
    }

    /// The seq of the last event applied.
    pub fn applied(&self) -> Option<u64> {
        self.applied
    }

    /// Take the next event into account (events in `seq` order; one
    /// already applied is ignored).
    pub fn apply(&mut self, event: &RecordedEvent, data: Option<&EventData>) {
        if self.applied.is_some_and(|a| event.seq <= a) {
            return;
        }
        self.applied = Some(event.seq);
        match data {
            Some(EventData::CommitPushed(c)) => {
                let sha: Arc<str> = Arc::from(c.sha.as_str());
                let list = self.pushes.entry(key(c.repo.as_str(), c.branch.as_str())).or_default();
                if !list.iter().rev().take(64).any(|(s, _)| *s == sha) {
                    list.push((Arc::clone(&sha), c.authored_at));
                }
                self.authored.entry((Arc::from(c.repo.as_str()), sha)).or_insert(c.authored_at);
            }
            Some(EventData::ChangeOpened(c)) => {
                self.authors
                    .entry((Arc::from(c.repo.as_str()), c.number))
                    .or_insert_with(|| Arc::from(c.author.as_str()));
            }
            Some(EventData::ChangeMerged(c)) => {
                self.authors
                    .entry((Arc::from(c.repo.as_str()), c.number))
                    .or_insert_with(|| Arc::from(c.author.as_str()));
                self.merges.entry(key(c.repo.as_str(), c.merge_sha.as_str())).or_insert_with(|| c.commits.clone());
            }
            Some(EventData::DeploymentSucceeded(d)) => {
                self.deployments
                    .entry(key(d.service.as_str(), d.environment.as_str()))
                    .or_default()
                    .push((Arc::from(d.deployment_id.as_str()), Arc::from(d.version.as_str())));
            }
            Some(EventData::DeploymentRolledBack(r)) => {
                self.rolled_back.insert(Arc::from(r.deployment_id.as_str()), ());
            }
            _ => {}
        }
    }
}

fn commit_ref(sha: &str, authored_at: DateTime<Utc>) -> Option<CommitRef> {
    Some(CommitRef { sha: Sha::parse(sha).ok()?, authored_at })
}

impl Lookup for Lineage {
    fn pushed_commits(&self, repo: &str, branch: &str, head: &str, count: usize) -> Vec<CommitRef> {
        let Some(list) = self.pushes.get(&key(repo, branch)) else { return Vec::new() };
        let Some(end) = list.iter().rposition(|(s, _)| s.eq_ignore_ascii_case(head)) else { return Vec::new() };
        let start = if count == 0 { 0 } else { (end + 1).saturating_sub(count) };
        list[start..=end].iter().filter_map(|(s, t)| commit_ref(s, *t)).collect()
    }

    fn commit(&self, repo: &str, sha: &str) -> Option<CommitRef> {
        let t = self.authored.get(&key(repo, sha))?;
        commit_ref(sha, *t)
    }

    fn merged_commits(&self, repo: &str, merge_sha: &str) -> Option<Vec<CommitRef>> {
        self.merges.get(&key(repo, merge_sha)).cloned()
    }

    fn change_author(&self, repo: &str, number: u64) -> Option<String> {
        self.authors.get(&(Arc::from(repo), number)).map(|a| a.to_string())
    }

    fn current_deployment(&self, service: &str, environment: &str) -> Option<(String, String)> {
        self.deployments
            .get(&key(service, environment))?
            .iter()
            .rev()
            .find(|(id, _)| !self.rolled_back.contains_key(id))
            .map(|(id, v)| (id.to_string(), v.to_string()))
    }
}
