//! Delivery performance: the DORA metrics and the pipeline figures beside
//! them, computed from a projection of the ledger.
//!
//! [`Delivery`] is fed every event in `seq` order ([`Delivery::apply`]) and
//! keeps only what the figures need, indexed so that a query over a year of
//! an organisation's deployments touches those deployments and nothing else.
//! The definitions follow PRODUCT.md, "DORA metrics", to the letter:
//!
//! - A deployment is a `deployment.succeeded`; its time is its `occurredAt`.
//!   Two `deployment.succeeded` with one `deploymentId` are one deployment
//!   (the first recorded). Rollbacks are not deployments.
//! - Lead time counts each commit once per environment, at the deployment
//!   that first brought it there (by `occurredAt`, then `seq`). A
//!   deployment's commits are its own `commits`, else those of its
//!   artifact's first `artifact.published`.
//! - A deployment D failed when it was rolled back, when an incident names it
//!   in `causedBy`, when a later deployment `fixes` it, or when an incident
//!   without `causedBy` opened on its service and environment after D, no
//!   later than D + the attribution window, and before the next deployment
//!   there.
//! - D recovered at the earliest of: its rollback, a later deployment that
//!   fixes D or an incident attributed to D, the resolution of an incident
//!   attributed to D. Recovery may fall after the query's window: the ledger
//!   as a whole says whether and when D recovered.
//!
//! Everything here is pure: time comes in as arguments.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::event::EventData;
use crate::event::data::{CommitRef, Deployment, Outcome};
use crate::record::RecordedEvent;
use crate::stats::Summary;
use crate::symbols::{FastMap, Sym, Symbols};

/// Microseconds since the Unix epoch: PostgreSQL's time resolution.
type Micros = i64;

const MICROS_PER_SEC: f64 = 1_000_000.0;
const MICROS_PER_DAY: f64 = 86_400.0 * MICROS_PER_SEC;

fn micros(t: &DateTime<Utc>) -> Micros {
    t.timestamp_micros()
}

fn secs(m: Micros) -> f64 {
    m as f64 / MICROS_PER_SEC
}

/// A commit as deployed: which, and when it was authored.
type Commit = (Sym, Micros);

#[derive(Debug, Clone)]
struct Deploy {
    seq: u64,
    id: Arc<str>,
    service: Sym,
    env: Sym,
    at: Micros,
    started: Option<Micros>,
    emergency: bool,
    fixes: Option<Arc<str>>,
    artifact: Arc<str>,
    version: Arc<str>,
    /// `None` until known: the deployment names no commits and its
    /// artifact's `artifact.published` has not been recorded yet.
    commits: Option<Vec<Commit>>,
    /// The commits that first reached the environment with this deployment.
    first: Vec<Commit>,
    /// Failure and recovery evidence that does not depend on the
    /// attribution window (refreshed whenever evidence naming D arrives).
    rollback: Option<Micros>,
    fixed_at: Option<Micros>,
    caused: bool,
    caused_recovery: Option<Micros>,
}

#[derive(Debug, Clone)]
struct Incident {
    id: Arc<str>,
    opened: Micros,
    caused_by: Option<Arc<str>>,
    resolved: Option<Micros>,
}

#[derive(Debug, Clone)]
struct Artifact {
    service: Sym,
    commits: Vec<Commit>,
}

#[derive(Debug, Clone, Copy)]
struct Build {
    pipeline: Sym,
    at: Micros,
    outcome: Outcome,
    started: Option<Micros>,
}

/// A build run: when it started, and its finished build (index).
type Run = (Option<Micros>, Option<u32>);

/// The projection behind the DORA and pipeline figures.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    applied: Option<u64>,
    syms: Symbols,
    deploys: Vec<Deploy>,
    by_id: FastMap<Arc<str>, u32>,
    /// Deployments per environment, and per service and environment, in
    /// time order (`occurredAt`, then `seq`).
    by_env: FastMap<Sym, Vec<u32>>,
    by_service_env: FastMap<(Sym, Sym), Vec<u32>>,
    /// The deployment that first brought a commit to an environment.
    first_arrival: FastMap<(Sym, Sym), u32>,
    artifacts: FastMap<Arc<str>, Artifact>,
    /// Deployments waiting for their artifact's commits.
    pending: FastMap<Arc<str>, Vec<u32>>,
    rollbacks: FastMap<Arc<str>, Micros>,
    /// Times of the deployments that fix a deployment or an incident.
    fixes: FastMap<Arc<str>, Vec<Micros>>,
    incidents: Vec<Incident>,
    incident_by_id: FastMap<Arc<str>, u32>,
    /// The earliest `incident.resolved` per incident, also of incidents
    /// whose opening is not recorded yet.
    resolutions: FastMap<Arc<str>, Micros>,
    caused: FastMap<Arc<str>, Vec<u32>>,
    /// Incidents without `causedBy`, per service and environment, by time.
    uncaused: FastMap<(Sym, Sym), Vec<u32>>,
    /// `deployment.started` times not yet matched with their success.
    started: FastMap<Arc<str>, Micros>,
    /// `deployment.failed` per environment: (time, service), by time.
    failed_attempts: FastMap<Sym, Vec<(Micros, Sym)>>,
    builds: Vec<Build>,
    /// Build runs by (pipeline, run id): the start, and the finished build.
    runs: FastMap<(Sym, Arc<str>), Run>,
    /// Which service a pipeline builds, learnt from its published artifacts.
    pipeline_service: FastMap<Sym, Sym>,
    build_artifact: FastMap<Arc<str>, Sym>,
    /// For integrations whose tools do not say it (`ingest::Lookup`):
    /// commits pushed per (repo, branch), in the order pushed; the commits
    /// each merge brought, per (repo, merge sha); who opened each change
    /// not merged yet. Kept for [`LOOKUP_WINDOW_DAYS`] of event time.
    pushes: FastMap<(Sym, Sym), std::collections::VecDeque<Commit>>,
    merges: FastMap<(Sym, Sym), Vec<Commit>>,
    authors: FastMap<(Sym, u64), Sym>,
    /// What was added to the three above, oldest first, to forget it when
    /// it leaves the window.
    lookup_log: std::collections::VecDeque<(Micros, Remembered)>,
    newest: Micros,
}

/// How long the facts integrations look up are kept, in days of event
/// time: a pull request merged, or a SHA deployed, this long after its
/// commits were pushed still finds them.
pub const LOOKUP_WINDOW_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy)]
enum Remembered {
    Push(Sym, Sym),
    Merge(Sym, Sym),
    Author(Sym, u64),
}

/// What integrations read from the ledger (see `ingest::Lookup`).
impl crate::ingest::Lookup for Delivery {
    fn pushed_commits(&self, repo: &str, branch: &str, head: &str, count: usize) -> Vec<CommitRef> {
        let key = (self.syms.get(repo), self.syms.get(branch));
        let (Some(repo), Some(branch)) = key else { return Vec::new() };
        let Some(list) = self.pushes.get(&(repo, branch)) else { return Vec::new() };
        let Some(end) = list.iter().rposition(|(s, _)| self.syms.name(*s).eq_ignore_ascii_case(head)) else {
            return Vec::new();
        };
        let start = if count == 0 { 0 } else { (end + 1).saturating_sub(count) };
        list.range(start..=end).filter_map(|c| self.commit_ref(*c)).collect()
    }

    fn commit(&self, repo: &str, sha: &str) -> Option<CommitRef> {
        let (repo, sha) = (self.syms.get(repo)?, self.syms.get(sha)?);
        let found = self
            .pushes
            .iter()
            .filter(|((r, _), _)| *r == repo)
            .find_map(|(_, list)| list.iter().find(|(s, _)| *s == sha).copied())?;
        self.commit_ref(found)
    }

    fn merged_commits(&self, repo: &str, merge_sha: &str) -> Option<Vec<CommitRef>> {
        let list = self.merges.get(&(self.syms.get(repo)?, self.syms.get(merge_sha)?))?;
        Some(list.iter().filter_map(|c| self.commit_ref(*c)).collect())
    }

    fn change_author(&self, repo: &str, number: u64) -> Option<String> {
        let author = self.authors.get(&(self.syms.get(repo)?, number))?;
        Some(self.syms.name(*author).to_owned())
    }

    fn current_deployment(&self, service: &str, environment: &str) -> Option<crate::ingest::Running> {
        let list = self.by_service_env.get(&(self.syms.get(service)?, self.syms.get(environment)?))?;
        list.iter().rev().map(|d| &self.deploys[*d as usize]).find(|d| !self.rollbacks.contains_key(&d.id)).map(|d| {
            crate::ingest::Running {
                deployment_id: d.id.to_string(),
                version: d.version.to_string(),
                artifact: d.artifact.to_string(),
            }
        })
    }
}

impl Delivery {
    pub fn new() -> Delivery {
        Delivery::default()
    }

    /// The seq of the last event applied.
    pub fn applied(&self) -> Option<u64> {
        self.applied
    }

    /// Number of deployments known (in every environment).
    pub fn deployment_count(&self) -> usize {
        self.deploys.len()
    }

    /// Take the next event into account. Events come in `seq` order; an
    /// event already applied is ignored, so replays are idempotent.
    pub fn apply(&mut self, event: &RecordedEvent, data: &EventData) {
        if self.applied.is_some_and(|a| event.seq <= a) {
            return;
        }
        self.applied = Some(event.seq);
        let at = micros(&event.occurred_at);
        if at > self.newest {
            self.newest = at;
            self.forget_before(at - LOOKUP_WINDOW_DAYS * 86_400 * 1_000_000);
        }
        match data {
            EventData::DeploymentSucceeded(d) => self.deployed(event.seq, at, d),
            EventData::DeploymentStarted(d) => self.started_at(d.deployment_id.as_str(), at),
            EventData::DeploymentFailed(d) => {
                let (service, env) = (self.syms.intern(d.service.as_str()), self.syms.intern(d.environment.as_str()));
                let list = self.failed_attempts.entry(env).or_default();
                let pos = list.partition_point(|(t, _)| *t <= at);
                list.insert(pos, (at, service));
            }
            EventData::DeploymentRolledBack(r) => {
                let target: Arc<str> = Arc::from(r.deployment_id.as_str());
                let earliest = self.rollbacks.entry(Arc::clone(&target)).or_insert(at);
                *earliest = (*earliest).min(at);
                self.refresh_by_name(&target);
            }
            EventData::ArtifactPublished(a) => {
                let key: Arc<str> = Arc::from(a.artifact.as_str());
                if self.artifacts.contains_key(&key) {
                    return;
                }
                let service = self.syms.intern(a.service.as_str());
                let commits = self.commits(&a.commits);
                self.artifacts.insert(Arc::clone(&key), Artifact { service, commits });
                if let Some(pipeline) = self.build_artifact.get(&key).copied() {
                    self.pipeline_service.entry(pipeline).or_insert(service);
                }
                for d in self.pending.remove(&key).unwrap_or_default() {
                    let commits = self.artifacts.get(&key).map(|a| a.commits.clone()).unwrap_or_default();
                    self.arrive(d, commits);
                }
            }
            EventData::IncidentOpened(i) => {
                let id: Arc<str> = Arc::from(i.incident_id.as_str());
                if self.incident_by_id.contains_key(&id) {
                    return;
                }
                let index = self.incidents.len() as u32;
                let caused_by = i.caused_by.as_ref().map(|c| Arc::<str>::from(c.as_str()));
                self.incidents.push(Incident {
                    id: Arc::clone(&id),
                    opened: at,
                    caused_by: caused_by.clone(),
                    resolved: self.resolutions.get(&id).copied(),
                });
                self.incident_by_id.insert(id, index);
                match caused_by {
                    Some(d) => {
                        self.caused.entry(Arc::clone(&d)).or_default().push(index);
                        self.refresh_by_name(&d);
                    }
                    None => {
                        let key = (self.syms.intern(i.service.as_str()), self.syms.intern(i.environment.as_str()));
                        let incidents = &self.incidents;
                        let list = self.uncaused.entry(key).or_default();
                        let pos = list.partition_point(|x| incidents[*x as usize].opened <= at);
                        list.insert(pos, index);
                    }
                }
            }
            EventData::IncidentResolved(r) => {
                let earliest = self.resolutions.entry(Arc::from(r.incident_id.as_str())).or_insert(at);
                *earliest = (*earliest).min(at);
                let Some(index) = self.incident_by_id.get(r.incident_id.as_str()).copied() else { return };
                let incident = &mut self.incidents[index as usize];
                incident.resolved = Some(incident.resolved.map_or(at, |t| t.min(at)));
                if let Some(d) = incident.caused_by.clone() {
                    self.refresh_by_name(&d);
                }
            }
            EventData::BuildStarted(b) => {
                let key = (self.syms.intern(b.pipeline.as_str()), Arc::<str>::from(b.run_id.as_str()));
                let run = self.runs.entry(key).or_insert((None, None));
                run.0 = Some(run.0.map_or(at, |t| t.min(at)));
                if let Some(build) = run.1 {
                    self.builds[build as usize].started = run.0;
                }
            }
            EventData::BuildFinished(b) => {
                let pipeline = self.syms.intern(b.pipeline.as_str());
                let key = (pipeline, Arc::<str>::from(b.run_id.as_str()));
                let index = self.builds.len() as u32;
                let run = self.runs.entry(key).or_insert((None, None));
                if run.1.is_some() {
                    return; // the same run reported twice
                }
                run.1 = Some(index);
                self.builds.push(Build { pipeline, at, outcome: b.outcome, started: run.0 });
                if let Some(artifact) = &b.artifact {
                    let artifact: Arc<str> = Arc::from(artifact.as_str());
                    if let Some(a) = self.artifacts.get(&artifact) {
                        self.pipeline_service.entry(pipeline).or_insert(a.service);
                    }
                    self.build_artifact.insert(artifact, pipeline);
                }
            }
            EventData::CommitPushed(c) => {
                let key = (self.syms.intern(c.repo.as_str()), self.syms.intern(c.branch.as_str()));
                let commit = (self.syms.intern(c.sha.as_str()), micros(&c.authored_at));
                let list = self.pushes.entry(key).or_default();
                if !list.iter().rev().take(64).any(|(s, _)| *s == commit.0) {
                    list.push_back(commit);
                    self.lookup_log.push_back((at, Remembered::Push(key.0, key.1)));
                }
            }
            EventData::ChangeOpened(c) => {
                let key = (self.syms.intern(c.repo.as_str()), c.number);
                if !self.authors.contains_key(&key) {
                    let author = self.syms.intern(c.author.as_str());
                    self.authors.insert(key, author);
                    self.lookup_log.push_back((at, Remembered::Author(key.0, key.1)));
                }
            }
            EventData::ChangeMerged(c) => {
                let repo = self.syms.intern(c.repo.as_str());
                // Who opened it was needed to record its merge; no more.
                self.authors.remove(&(repo, c.number));
                let merge = self.syms.intern(c.merge_sha.as_str());
                if !self.merges.contains_key(&(repo, merge)) {
                    let commits = self.commits(&c.commits);
                    self.merges.insert((repo, merge), commits);
                    self.lookup_log.push_back((at, Remembered::Merge(repo, merge)));
                }
            }
            _ => {}
        }
    }

    /// Forget the looked-up facts added before `limit` (event time).
    fn forget_before(&mut self, limit: Micros) {
        while let Some(&(t, what)) = self.lookup_log.front() {
            if t >= limit {
                break;
            }
            self.lookup_log.pop_front();
            match what {
                Remembered::Push(repo, branch) => {
                    if let Some(list) = self.pushes.get_mut(&(repo, branch)) {
                        list.pop_front();
                        if list.is_empty() {
                            self.pushes.remove(&(repo, branch));
                        }
                    }
                }
                Remembered::Merge(repo, merge) => {
                    self.merges.remove(&(repo, merge));
                }
                Remembered::Author(repo, number) => {
                    self.authors.remove(&(repo, number));
                }
            }
        }
    }

    fn commit_ref(&self, (sha, at): Commit) -> Option<CommitRef> {
        Some(CommitRef {
            sha: crate::name::Sha::parse(self.syms.name(sha)).ok()?,
            authored_at: DateTime::from_timestamp_micros(at)?,
        })
    }

    fn commits(&mut self, commits: &[CommitRef]) -> Vec<Commit> {
        commits.iter().map(|c| (self.syms.intern(c.sha.as_str()), micros(&c.authored_at))).collect()
    }

    fn started_at(&mut self, id: &str, at: Micros) {
        if let Some(d) = self.by_id.get(id).copied() {
            let d = &mut self.deploys[d as usize];
            d.started = Some(d.started.map_or(at, |t| t.min(at)));
        } else {
            let t = self.started.entry(Arc::from(id)).or_insert(at);
            *t = (*t).min(at);
        }
    }

    fn deployed(&mut self, seq: u64, at: Micros, d: &Deployment) {
        let id: Arc<str> = Arc::from(d.deployment_id.as_str());
        if self.by_id.contains_key(&id) {
            return;
        }
        let index = self.deploys.len() as u32;
        let (service, env) = (self.syms.intern(d.service.as_str()), self.syms.intern(d.environment.as_str()));
        let artifact: Arc<str> = Arc::from(d.artifact.as_str());
        let fixes = d.fixes.as_ref().map(|f| Arc::<str>::from(f.as_str()));
        self.deploys.push(Deploy {
            seq,
            id: Arc::clone(&id),
            service,
            env,
            at,
            started: self.started.remove(&id),
            emergency: d.emergency,
            fixes: fixes.clone(),
            artifact: Arc::clone(&artifact),
            version: Arc::from(d.version.as_str()),
            commits: None,
            first: Vec::new(),
            rollback: None,
            fixed_at: None,
            caused: false,
            caused_recovery: None,
        });
        self.by_id.insert(Arc::clone(&id), index);
        let deploys = &self.deploys;
        for list in [self.by_env.entry(env).or_default(), self.by_service_env.entry((service, env)).or_default()] {
            let pos = list.partition_point(|x| {
                let other = &deploys[*x as usize];
                (other.at, other.seq) <= (at, seq)
            });
            list.insert(pos, index);
        }
        // The commits: its own, else its artifact's (perhaps later).
        if let Some(commits) = &d.commits {
            let commits = self.commits(commits);
            self.arrive(index, commits);
        } else if let Some(a) = self.artifacts.get(&artifact) {
            let commits = a.commits.clone();
            self.arrive(index, commits);
        } else {
            self.pending.entry(artifact).or_default().push(index);
        }
        // What this deployment fixes: a deployment, or an incident
        // (and through it, the deployment that caused the incident).
        if let Some(target) = fixes {
            self.fixes.entry(Arc::clone(&target)).or_default().push(at);
            self.refresh_by_name(&target);
            if let Some(cause) =
                self.incident_by_id.get(&target).and_then(|i| self.incidents[*i as usize].caused_by.clone())
            {
                self.refresh_by_name(&cause);
            }
        }
        self.refresh(index);
    }

    /// Record the commits of deployment `d`, and which of them reach its
    /// environment first with it.
    fn arrive(&mut self, d: u32, commits: Vec<Commit>) {
        let (env, at, seq) = {
            let dep = &self.deploys[d as usize];
            (dep.env, dep.at, dep.seq)
        };
        for &(sha, authored) in &commits {
            match self.first_arrival.get(&(env, sha)).copied() {
                None => {
                    self.first_arrival.insert((env, sha), d);
                    self.deploys[d as usize].first.push((sha, authored));
                }
                Some(e) if e != d => {
                    let earlier = &self.deploys[e as usize];
                    if (at, seq) < (earlier.at, earlier.seq) {
                        self.deploys[e as usize].first.retain(|(s, _)| *s != sha);
                        self.first_arrival.insert((env, sha), d);
                        self.deploys[d as usize].first.push((sha, authored));
                    }
                }
                Some(_) => {}
            }
        }
        self.deploys[d as usize].commits = Some(commits);
    }

    fn refresh_by_name(&mut self, id: &str) {
        if let Some(d) = self.by_id.get(id).copied() {
            self.refresh(d);
        }
    }

    /// Recompute the window-independent failure evidence of deployment `d`.
    fn refresh(&mut self, d: u32) {
        let (id, at) = {
            let dep = &self.deploys[d as usize];
            (Arc::clone(&dep.id), dep.at)
        };
        let rollback = self.rollbacks.get(&id).copied();
        let fixed_at = self.later_fix(&id, at);
        let mut caused = false;
        let mut caused_recovery: Option<Micros> = None;
        for i in self.caused.get(&id).map(Vec::as_slice).unwrap_or_default() {
            caused = true;
            let incident = &self.incidents[*i as usize];
            for t in [incident.resolved, self.later_fix(&incident.id, at)].into_iter().flatten() {
                caused_recovery = Some(caused_recovery.map_or(t, |r| r.min(t)));
            }
        }
        let dep = &mut self.deploys[d as usize];
        dep.rollback = rollback;
        dep.fixed_at = fixed_at;
        dep.caused = caused;
        dep.caused_recovery = caused_recovery;
    }

    /// The earliest deployment after `after` that fixes `target`.
    fn later_fix(&self, target: &str, after: Micros) -> Option<Micros> {
        self.fixes.get(target)?.iter().copied().filter(|t| *t > after).min()
    }

    /// Resolve a scope's names; `None` when a name is unknown to the ledger
    /// (the scope then holds nothing).
    fn scope_lists(&self, scope: &Scope) -> Vec<&[u32]> {
        let Some(env) = self.syms.get(&scope.environment) else { return Vec::new() };
        match &scope.services {
            None => self.by_env.get(&env).map(|l| vec![l.as_slice()]).unwrap_or_default(),
            Some(services) => services
                .iter()
                .filter_map(|s| self.syms.get(s))
                .filter_map(|s| self.by_service_env.get(&(s, env)))
                .map(Vec::as_slice)
                .collect(),
        }
    }

    /// Deployments of the scope with `from ≤ at < to`, in time order.
    fn deployments_in(&self, scope: &Scope, from: Micros, to: Micros) -> Vec<u32> {
        let lists = self.scope_lists(scope);
        let mut out = Vec::new();
        for list in &lists {
            let lo = list.partition_point(|d| self.deploys[*d as usize].at < from);
            let hi = list.partition_point(|d| self.deploys[*d as usize].at < to);
            out.extend_from_slice(&list[lo..hi]);
        }
        if lists.len() > 1 {
            out.sort_unstable_by_key(|d| {
                let dep = &self.deploys[*d as usize];
                (dep.at, dep.seq)
            });
        }
        out
    }

    /// Judge one deployment: failed, and if so when it recovered.
    fn judge(&self, d: u32, window: Micros) -> Judged {
        let dep = &self.deploys[d as usize];
        let mut failed = dep.rollback.is_some() || dep.caused || dep.fixed_at.is_some();
        let mut recovered: Option<Micros> = None;
        for t in [dep.rollback, dep.fixed_at, dep.caused_recovery].into_iter().flatten() {
            recovered = Some(recovered.map_or(t, |r| r.min(t)));
        }
        // Incidents without a cause, attributed by time.
        if let Some(list) = self.uncaused.get(&(dep.service, dep.env)) {
            let limit = dep.at.saturating_add(window);
            let lo = list.partition_point(|i| self.incidents[*i as usize].opened <= dep.at);
            let hi = list.partition_point(|i| self.incidents[*i as usize].opened <= limit);
            if lo < hi {
                let next = self.next_deployment(d);
                for i in &list[lo..hi] {
                    let incident = &self.incidents[*i as usize];
                    if next.is_some_and(|n| incident.opened >= n) {
                        break;
                    }
                    failed = true;
                    for t in [incident.resolved, self.later_fix(&incident.id, dep.at)].into_iter().flatten() {
                        recovered = Some(recovered.map_or(t, |r| r.min(t)));
                    }
                }
            }
        }
        Judged {
            at: dep.at,
            failed,
            recovery: if failed { recovered.map(|r| secs((r - dep.at).max(0))) } else { None },
            rework: dep.emergency || dep.fixes.is_some(),
        }
    }

    /// The time of the next deployment on the same service and environment.
    fn next_deployment(&self, d: u32) -> Option<Micros> {
        let dep = &self.deploys[d as usize];
        let list = self.by_service_env.get(&(dep.service, dep.env))?;
        let pos = list.partition_point(|x| {
            let o = &self.deploys[*x as usize];
            (o.at, o.seq) <= (dep.at, dep.seq)
        });
        list.get(pos).map(|x| self.deploys[*x as usize].at)
    }

    /// The DORA figures of a scope and window, with their bands and trend.
    pub fn dora(&self, query: &DoraQuery) -> Result<Dora, QueryError> {
        query.check()?;
        let (from, to) = (micros(&query.from), micros(&query.to));
        let window = query.attribution_window.num_microseconds().unwrap_or(i64::MAX);
        let deployments = self.deployments_in(&query.scope, from, to);
        let judged: Vec<Judged> = deployments.iter().map(|d| self.judge(*d, window)).collect();
        let figures = self.figures(&deployments, &judged, from, to);
        let trend = match query.bucket {
            None => Vec::new(),
            Some(bucket) => buckets(query.from, query.to, bucket)
                .into_iter()
                .map(|(start, end)| {
                    let (s, e) = (micros(&start), micros(&end));
                    let lo = judged.partition_point(|j| j.at < s);
                    let hi = judged.partition_point(|j| j.at < e);
                    let figures = self.figures(&deployments[lo..hi], &judged[lo..hi], s, e);
                    TrendPoint { start, end, bands: Bands::of(&figures), figures }
                })
                .collect(),
        };
        Ok(Dora { bands: Bands::of(&figures), figures, trend })
    }

    fn figures(&self, deployments: &[u32], judged: &[Judged], from: Micros, to: Micros) -> Figures {
        let n = deployments.len() as u64;
        let days = (to - from) as f64 / MICROS_PER_DAY;
        let mut leads = Vec::new();
        for d in deployments {
            let dep = &self.deploys[*d as usize];
            leads.extend(dep.first.iter().map(|(_, authored)| secs(dep.at - authored)));
        }
        let failed = judged.iter().filter(|j| j.failed).count() as u64;
        let mut recoveries: Vec<f64> = judged.iter().filter_map(|j| j.recovery).collect();
        let rework = judged.iter().filter(|j| j.rework).count() as u64;
        let ratio = |k: u64| if n == 0 { None } else { Some(k as f64 / n as f64) };
        Figures {
            deployments: n,
            deployment_frequency: if days > 0.0 { n as f64 / days } else { 0.0 },
            lead_time: Summary::of(&mut leads),
            change_fail_rate: ratio(failed),
            failed_deployments: failed,
            unrecovered_failures: failed - recoveries.len() as u64,
            recovery_time: Summary::of(&mut recoveries),
            rework_rate: ratio(rework),
        }
    }

    /// Build success rate and duration, time to deploy and the deployment
    /// attempt failure rate, for a scope and window.
    pub fn pipeline(&self, scope: &Scope, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Pipeline, QueryError> {
        if from >= to {
            return Err(QueryError::EmptyWindow);
        }
        let (f, t) = (micros(&from), micros(&to));
        let services: Option<Vec<Sym>> =
            scope.services.as_ref().map(|s| s.iter().filter_map(|name| self.syms.get(name)).collect());
        let in_scope = |service: Option<Sym>| match (&services, service) {
            (None, _) => true,
            (Some(list), Some(s)) => list.contains(&s),
            (Some(_), None) => false,
        };
        // Builds (not per environment): the service a pipeline builds is
        // learnt from the artifacts it published.
        let (mut finished, mut succeeded) = (0u64, 0u64);
        let mut durations = Vec::new();
        for b in self.builds.iter().filter(|b| b.at >= f && b.at < t) {
            if !in_scope(self.pipeline_service.get(&b.pipeline).copied()) || b.outcome == Outcome::Cancelled {
                continue;
            }
            finished += 1;
            if b.outcome == Outcome::Success {
                succeeded += 1;
            }
            if let Some(s) = b.started {
                durations.push(secs((b.at - s).max(0)));
            }
        }
        let deployments = self.deployments_in(scope, f, t);
        let mut to_deploy: Vec<f64> = deployments
            .iter()
            .filter_map(|d| {
                let dep = &self.deploys[*d as usize];
                dep.started.map(|s| secs((dep.at - s).max(0)))
            })
            .collect();
        let failed_attempts = match self.syms.get(&scope.environment).and_then(|e| self.failed_attempts.get(&e)) {
            None => 0,
            Some(list) => {
                let lo = list.partition_point(|(at, _)| *at < f);
                let hi = list.partition_point(|(at, _)| *at < t);
                list[lo..hi].iter().filter(|(_, s)| in_scope(Some(*s))).count() as u64
            }
        };
        let attempts = deployments.len() as u64 + failed_attempts;
        Ok(Pipeline {
            builds: finished,
            build_success_rate: if finished == 0 { None } else { Some(succeeded as f64 / finished as f64) },
            build_duration: Summary::of(&mut durations),
            time_to_deploy: Summary::of(&mut to_deploy),
            deployment_attempts: attempts,
            failed_attempts,
            attempt_failure_rate: if attempts == 0 { None } else { Some(failed_attempts as f64 / attempts as f64) },
        })
    }

    /// The deployments of a scope and window, newest first, at most `limit`.
    pub fn recent(
        &self,
        scope: &Scope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        window: Duration,
        limit: usize,
    ) -> Vec<DeploymentSummary> {
        let window = window.num_microseconds().unwrap_or(i64::MAX);
        self.deployments_in(scope, micros(&from), micros(&to))
            .into_iter()
            .rev()
            .take(limit)
            .map(|d| self.summary(d, window))
            .collect()
    }

    /// One deployment, by its `deploymentId`, judged with `window`.
    pub fn deployment(&self, id: &str, window: Duration) -> Option<DeploymentSummary> {
        let d = self.by_id.get(id).copied()?;
        Some(self.summary(d, window.num_microseconds().unwrap_or(i64::MAX)))
    }

    fn summary(&self, d: u32, window: Micros) -> DeploymentSummary {
        let dep = &self.deploys[d as usize];
        let judged = self.judge(d, window);
        let mut leads: Vec<f64> = dep.first.iter().map(|(_, a)| secs(dep.at - a)).collect();
        DeploymentSummary {
            seq: dep.seq,
            deployment_id: dep.id.to_string(),
            service: self.syms.name(dep.service).to_owned(),
            environment: self.syms.name(dep.env).to_owned(),
            artifact: dep.artifact.to_string(),
            version: dep.version.to_string(),
            at: DateTime::from_timestamp_micros(dep.at).unwrap_or_default(),
            emergency: dep.emergency,
            fixes: dep.fixes.as_ref().map(ToString::to_string),
            commits: dep.commits.as_ref().map(|c| c.iter().map(|(s, _)| self.syms.name(*s).to_owned()).collect()),
            lead_time: Summary::of(&mut leads),
            failed: judged.failed,
            rolled_back: dep.rollback.is_some(),
            recovery_time: judged.recovery,
        }
    }

    /// The deployments of a service and environment after the one that
    /// deployed `from_version`, up to and including the one that deployed
    /// `to_version` (the first deployment of each version), in time order.
    pub fn between_versions(
        &self,
        service: &str,
        environment: &str,
        from_version: &str,
        to_version: &str,
    ) -> Result<Vec<DeploymentSummary>, QueryError> {
        let key = (self.syms.get(service), self.syms.get(environment));
        let list = match key {
            (Some(s), Some(e)) => self.by_service_env.get(&(s, e)).map(Vec::as_slice).unwrap_or_default(),
            _ => &[],
        };
        let find = |version: &str| list.iter().position(|d| &*self.deploys[*d as usize].version == version);
        let from = find(from_version).ok_or_else(|| QueryError::UnknownVersion(from_version.to_owned()))?;
        let to = find(to_version).ok_or_else(|| QueryError::UnknownVersion(to_version.to_owned()))?;
        if to <= from {
            return Err(QueryError::VersionOrder { from: from_version.to_owned(), to: to_version.to_owned() });
        }
        Ok(list[from + 1..=to].iter().map(|d| self.summary(*d, DEFAULT_ATTRIBUTION_MICROS)).collect())
    }

    /// The commits that first reached the environment with a deployment.
    pub fn first_commits(&self, deployment_id: &str) -> Vec<String> {
        self.by_id
            .get(deployment_id)
            .map(|d| self.deploys[*d as usize].first.iter().map(|(s, _)| self.syms.name(*s).to_owned()).collect())
            .unwrap_or_default()
    }

    /// Every service and environment that has a deployment.
    pub fn services(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .by_service_env
            .keys()
            .map(|(s, e)| (self.syms.name(*s).to_owned(), self.syms.name(*e).to_owned()))
            .collect();
        out.sort();
        out
    }
}

const DEFAULT_ATTRIBUTION_MICROS: Micros = 24 * 3600 * 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Judged {
    at: Micros,
    failed: bool,
    recovery: Option<f64>,
    rework: bool,
}

/// Which deployments a figure is about: an environment and either every
/// service or a set of them (a team is the set of its services).
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub environment: String,
    pub services: Option<Vec<String>>,
}

/// Trend buckets, in UTC: days, ISO weeks (from Monday) or calendar months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    Week,
    Month,
}

/// Most buckets one trend may have.
pub const MAX_BUCKETS: usize = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub struct DoraQuery {
    pub scope: Scope,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket: Option<Bucket>,
    pub attribution_window: Duration,
}

impl DoraQuery {
    /// The default attribution window: 24 hours.
    pub fn default_attribution_window() -> Duration {
        Duration::hours(24)
    }

    fn check(&self) -> Result<(), QueryError> {
        if self.from >= self.to {
            return Err(QueryError::EmptyWindow);
        }
        if self.attribution_window < Duration::zero() {
            return Err(QueryError::NegativeAttribution);
        }
        if let Some(b) = self.bucket {
            if buckets(self.from, self.to, b).len() > MAX_BUCKETS {
                return Err(QueryError::TooManyBuckets);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("the window is empty: `from` must be before `to`")]
    EmptyWindow,
    #[error("the attribution window cannot be negative")]
    NegativeAttribution,
    #[error("the trend would have more than {MAX_BUCKETS} buckets; choose a larger bucket or a shorter window")]
    TooManyBuckets,
    #[error("no deployment of version {0:?} in that service and environment")]
    UnknownVersion(String),
    #[error("version {to:?} was not deployed after version {from:?}")]
    VersionOrder { from: String, to: String },
}

/// The DORA figures of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub deployments: u64,
    /// Deployments per day.
    pub deployment_frequency: f64,
    /// Seconds from a commit's authoring to its first deployment here.
    pub lead_time: Summary,
    /// Failed deployments / deployments; `None` without deployments.
    pub change_fail_rate: Option<f64>,
    pub failed_deployments: u64,
    /// Seconds from a failed deployment to its recovery.
    pub recovery_time: Summary,
    pub unrecovered_failures: u64,
    /// Emergency or fixing deployments / deployments.
    pub rework_rate: Option<f64>,
}

/// DORA 2023 performance bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Elite,
    High,
    Medium,
    Low,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bands {
    pub deployment_frequency: Band,
    pub lead_time: Option<Band>,
    pub change_fail_rate: Option<Band>,
    pub recovery_time: Option<Band>,
}

const HOUR: f64 = 3_600.0;
const DAY: f64 = 24.0 * HOUR;

impl Bands {
    pub fn of(f: &Figures) -> Bands {
        let per_day = f.deployment_frequency;
        Bands {
            deployment_frequency: if per_day >= 1.0 {
                Band::Elite
            } else if per_day >= 1.0 / 7.0 {
                Band::High
            } else if per_day >= 1.0 / 30.0 {
                Band::Medium
            } else {
                Band::Low
            },
            lead_time: f.lead_time.median.map(|s| {
                if s < DAY {
                    Band::Elite
                } else if s <= 7.0 * DAY {
                    Band::High
                } else if s <= 30.0 * DAY {
                    Band::Medium
                } else {
                    Band::Low
                }
            }),
            change_fail_rate: f.change_fail_rate.map(|r| {
                if r <= 0.05 {
                    Band::Elite
                } else if r <= 0.10 {
                    Band::High
                } else if r <= 0.15 {
                    Band::Medium
                } else {
                    Band::Low
                }
            }),
            recovery_time: f.recovery_time.median.map(|s| {
                if s < HOUR {
                    Band::Elite
                } else if s < DAY {
                    Band::High
                } else if s <= 7.0 * DAY {
                    Band::Medium
                } else {
                    Band::Low
                }
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrendPoint {
    /// The bucket, clipped to the query's window: `[start, end)`.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(flatten)]
    pub figures: Figures,
    pub bands: Bands,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dora {
    #[serde(flatten)]
    pub figures: Figures,
    pub bands: Bands,
    pub trend: Vec<TrendPoint>,
}

/// The pipeline figures the seed documents track beside DORA.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    /// Builds finished with success or failure (cancelled ones excluded).
    pub builds: u64,
    pub build_success_rate: Option<f64>,
    /// Seconds from `build.started` to `build.finished`, same run.
    pub build_duration: Summary,
    /// Seconds from `deployment.started` to `deployment.succeeded`.
    pub time_to_deploy: Summary,
    /// Succeeded and failed deployments.
    pub deployment_attempts: u64,
    pub failed_attempts: u64,
    pub attempt_failure_rate: Option<f64>,
}

/// A deployment as the figures see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSummary {
    pub seq: u64,
    pub deployment_id: String,
    pub service: String,
    pub environment: String,
    pub artifact: String,
    pub version: String,
    pub at: DateTime<Utc>,
    pub emergency: bool,
    pub fixes: Option<String>,
    /// Its commits (its own or its artifact's); `None` while unknown.
    pub commits: Option<Vec<String>>,
    /// Lead time of the commits that first reached the environment here.
    pub lead_time: Summary,
    pub failed: bool,
    pub rolled_back: bool,
    pub recovery_time: Option<f64>,
}

/// The buckets covering `[from, to)`, each clipped to it.
pub fn buckets(from: DateTime<Utc>, to: DateTime<Utc>, bucket: Bucket) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut start = truncate(from, bucket);
    while start < to && out.len() <= MAX_BUCKETS {
        let end = next(start, bucket);
        out.push((start.max(from), end.min(to)));
        start = end;
    }
    out
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn truncate(t: DateTime<Utc>, bucket: Bucket) -> DateTime<Utc> {
    let day = t.date_naive();
    match bucket {
        Bucket::Day => midnight(day),
        Bucket::Week => midnight(day - Duration::days(i64::from(day.weekday().num_days_from_monday()))),
        Bucket::Month => midnight(day.with_day(1).unwrap_or(day)),
    }
}

fn next(start: DateTime<Utc>, bucket: Bucket) -> DateTime<Utc> {
    match bucket {
        Bucket::Day => start + Duration::days(1),
        Bucket::Week => start + Duration::days(7),
        Bucket::Month => {
            let d = start.date_naive();
            let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
            midnight(NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d))
        }
    }
}
