//! The audit index: a projection that answers "which events?" without
//! touching the store. It keeps a small row per event (type, time, actor,
//! service, environment, stream) and, for the identifiers that tie events
//! together (commits, changes, artifacts, deployments, incidents), the
//! events that mention each. Searches and traces return `seq`s; the caller
//! fetches those events from the store by key.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::event::{EventData, EventType};
use crate::record::RecordedEvent;
use crate::symbols::{FastMap, Sym, Symbols};

const NONE: Sym = Sym::MAX;
/// The end of a list of postings.
const NO_POSTING: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Row {
    at: i64,
    actor: Sym,
    service: Sym,
    env: Sym,
    stream: Sym,
    /// Where this event's references start in `event_refs`.
    refs: u32,
    kind: EventType,
}

/// What an event mentions, and in which role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ref {
    Sha(Sym),
    /// The commit a change was merged as (indexed as a `Sha`).
    MergeSha(Sym),
    Change(Sym, u64),
    Artifact(Sym),
    /// A deployment or incident by its id.
    Id(Sym),
    /// The deployment or incident a deployment fixes, or the deployment an
    /// incident was caused by (indexed as an `Id`).
    Names(Sym),
}

impl Ref {
    /// The key under which the event is found.
    fn key(self) -> Ref {
        match self {
            Ref::MergeSha(s) => Ref::Sha(s),
            Ref::Names(s) => Ref::Id(s),
            other => other,
        }
    }
}

/// Which events to find; every given field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub stream: Option<String>,
    pub types: Vec<EventType>,
    pub actor: Option<String>,
    pub service: Option<String>,
    pub environment: Option<String>,
    /// `occurredAt` at or after this.
    pub from: Option<DateTime<Utc>>,
    /// `occurredAt` before this.
    pub to: Option<DateTime<Utc>>,
}

/// A page of search results: `seq`s in order, and whether more follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub seqs: Vec<u64>,
    pub has_next: bool,
}

/// A decision as the index keeps it, for `decisions(filter)`.
#[derive(Debug, Clone, Copy)]
struct DecisionRow {
    seq: u64,
    action: Sym,
    allowed: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionFilter {
    pub action: Option<String>,
    /// `Some(true)`: only allowed; `Some(false)`: only denied.
    pub allowed: Option<bool>,
    pub service: Option<String>,
    pub environment: Option<String>,
    pub artifact: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The chain of evidence around a commit or a deployment, as `seq`s per
/// kind of evidence, each in `seq` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub commits: Vec<u64>,
    pub changes: Vec<u64>,
    pub builds: Vec<u64>,
    pub tests: Vec<u64>,
    pub scans: Vec<u64>,
    pub artifacts: Vec<u64>,
    pub approvals: Vec<u64>,
    pub decisions: Vec<u64>,
    pub deployments: Vec<u64>,
    pub canaries: Vec<u64>,
    pub rollbacks: Vec<u64>,
    pub incidents: Vec<u64>,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self.all().is_empty()
    }

    /// Every event of the evidence, in `seq` order.
    pub fn all(&self) -> Vec<u64> {
        let set: BTreeSet<u64> = [
            &self.commits,
            &self.changes,
            &self.builds,
            &self.tests,
            &self.scans,
            &self.artifacts,
            &self.approvals,
            &self.decisions,
            &self.deployments,
            &self.canaries,
            &self.rollbacks,
            &self.incidents,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect();
        set.into_iter().collect()
    }
}

#[derive(Debug, Default, Clone)]
pub struct LedgerIndex {
    applied: Option<u64>,
    syms: Symbols,
    rows: Vec<Row>,
    event_refs: Vec<Ref>,
    /// The events that mention each key, as lists linked through one
    /// arena (no allocation per key): the newest posting of each key, and
    /// per posting its seq and the posting before it.
    heads: FastMap<Ref, u32>,
    postings: Vec<(u32, u32)>,
    artifact_service: FastMap<Sym, Sym>,
    decisions: Vec<DecisionRow>,
    /// Events arrived past the 32-bit addressing.
    full: bool,
}

impl LedgerIndex {
    pub fn new() -> LedgerIndex {
        LedgerIndex::default()
    }

    /// Whether events arrived past the index's 32-bit addressing (they are
    /// not indexed).
    pub fn is_full(&self) -> bool {
        self.full
    }

    pub fn applied(&self) -> Option<u64> {
        self.applied
    }

    /// Make room for `events` more events (a replay knows how many).
    pub fn reserve(&mut self, events: usize) {
        self.rows.reserve(events);
        self.event_refs.reserve(events.saturating_mul(2));
        self.postings.reserve(events.saturating_mul(2));
    }

    /// Events indexed.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Take the next event into account (in `seq` order; replays of events
    /// already applied are ignored). `data` is the event's typed data, when
    /// it parses.
    pub fn apply(&mut self, event: &RecordedEvent, data: Option<&EventData>) {
        if self.applied.is_some_and(|a| event.seq <= a) {
            return;
        }
        self.applied = Some(event.seq);
        // Rows and postings are addressed with 32 bits: past 4,294,967,294
        // events, later ones are not indexed (and `full` says so) rather
        // than indexed wrongly.
        if event.seq >= u64::from(u32::MAX) {
            self.full = true;
            return;
        }
        // Rows are addressed by seq, which is gap-free from 0; should the
        // log ever skip one, a placeholder keeps the addressing right.
        while (self.rows.len() as u64) < event.seq {
            let refs = self.event_refs.len() as u32;
            self.rows.push(Row {
                at: i64::MIN,
                actor: NONE,
                service: NONE,
                env: NONE,
                stream: NONE,
                refs,
                kind: EventType::FlagChanged,
            });
        }
        let refs_start = self.event_refs.len() as u32;
        let mut service: Option<&str> = None;
        let mut env: Option<&str> = None;
        let mut artifact: Option<&str> = None;
        let mut refs: Vec<Ref> = Vec::new();
        match data {
            Some(EventData::CommitPushed(c)) => refs.push(Ref::Sha(self.syms.intern(c.sha.as_str()))),
            Some(EventData::ChangeOpened(c)) => refs.push(Ref::Change(self.syms.intern(c.repo.as_str()), c.number)),
            Some(EventData::ChangeReviewed(c)) => refs.push(Ref::Change(self.syms.intern(c.repo.as_str()), c.number)),
            Some(EventData::ChangeMerged(c)) => {
                refs.push(Ref::Change(self.syms.intern(c.repo.as_str()), c.number));
                refs.push(Ref::MergeSha(self.syms.intern(c.merge_sha.as_str())));
                for commit in &c.commits {
                    refs.push(Ref::Sha(self.syms.intern(commit.sha.as_str())));
                }
            }
            Some(EventData::BuildStarted(b)) => refs.push(Ref::Sha(self.syms.intern(b.sha.as_str()))),
            Some(EventData::BuildFinished(b)) => {
                refs.push(Ref::Sha(self.syms.intern(b.sha.as_str())));
                artifact = b.artifact.as_ref().map(|a| a.as_str());
            }
            Some(EventData::TestsFinished(t)) => {
                if let Some(sha) = &t.sha {
                    refs.push(Ref::Sha(self.syms.intern(sha.as_str())));
                }
                artifact = t.artifact.as_ref().map(|a| a.as_str());
            }
            Some(EventData::ScanFinished(s)) => artifact = Some(s.artifact.as_str()),
            Some(EventData::ArtifactPublished(a)) => {
                let (art, svc) = (self.syms.intern(a.artifact.as_str()), self.syms.intern(a.service.as_str()));
                if let std::collections::hash_map::Entry::Vacant(slot) = self.artifact_service.entry(art) {
                    slot.insert(svc);
                    // Builds, tests and scans of the artifact recorded before
                    // it was published learn their service now.
                    for seq in self.mentions(Ref::Artifact(art)) {
                        if let Some(row) = self.rows.get_mut(seq as usize) {
                            if row.service == NONE {
                                row.service = svc;
                            }
                        }
                    }
                }
                for commit in &a.commits {
                    refs.push(Ref::Sha(self.syms.intern(commit.sha.as_str())));
                }
                artifact = Some(a.artifact.as_str());
                service = Some(a.service.as_str());
            }
            Some(EventData::ApprovalGranted(a) | EventData::ApprovalRevoked(a)) => {
                artifact = a.artifact.as_ref().map(|a| a.as_str());
                service = a.service.as_ref().map(|s| s.as_str());
                env = a.environment.as_ref().map(|e| e.as_str());
            }
            Some(
                EventData::DeploymentStarted(d) | EventData::DeploymentSucceeded(d) | EventData::DeploymentFailed(d),
            ) => {
                refs.push(Ref::Id(self.syms.intern(d.deployment_id.as_str())));
                if let Some(f) = &d.fixes {
                    refs.push(Ref::Names(self.syms.intern(f.as_str())));
                }
                for commit in d.commits.iter().flatten() {
                    refs.push(Ref::Sha(self.syms.intern(commit.sha.as_str())));
                }
                artifact = Some(d.artifact.as_str());
                service = Some(d.service.as_str());
                env = Some(d.environment.as_str());
            }
            Some(EventData::DeploymentRolledBack(r)) => {
                refs.push(Ref::Names(self.syms.intern(r.deployment_id.as_str())));
                service = Some(r.service.as_str());
                env = Some(r.environment.as_str());
            }
            Some(EventData::CanaryAnalyzed(c)) => {
                refs.push(Ref::Names(self.syms.intern(c.deployment_id.as_str())));
                service = c.service.as_ref().map(|s| s.as_str());
                env = c.environment.as_ref().map(|e| e.as_str());
            }
            Some(EventData::InfraPlanned(i) | EventData::InfraApplied(i)) => env = Some(i.environment.as_str()),
            Some(EventData::MigrationApplied(m)) => {
                service = Some(m.service.as_str());
                env = Some(m.environment.as_str());
            }
            Some(EventData::IncidentOpened(i)) => {
                refs.push(Ref::Id(self.syms.intern(i.incident_id.as_str())));
                if let Some(c) = &i.caused_by {
                    refs.push(Ref::Names(self.syms.intern(c.as_str())));
                }
                service = Some(i.service.as_str());
                env = Some(i.environment.as_str());
            }
            Some(EventData::IncidentResolved(i)) => {
                refs.push(Ref::Id(self.syms.intern(i.incident_id.as_str())));
                if let Some(c) = &i.caused_by {
                    refs.push(Ref::Names(self.syms.intern(c.as_str())));
                }
                service = Some(i.service.as_str());
                env = Some(i.environment.as_str());
            }
            Some(EventData::FlagChanged(f)) => env = Some(f.environment.as_str()),
            Some(EventData::DecisionRecorded(d)) => {
                let resource = d.request.get("resource").unwrap_or(&Value::Null);
                let field = |name: &str| resource.get(name).and_then(Value::as_str);
                service = field("service");
                env = field("environment");
                artifact = field("artifact");
                if let Some(id) = field("deploymentId") {
                    refs.push(Ref::Names(self.syms.intern(id)));
                }
                if let Some(sha) = field("sha") {
                    refs.push(Ref::Sha(self.syms.intern(sha)));
                }
                if let (Some(repo), Some(number)) = (field("repo"), resource.get("number").and_then(Value::as_u64)) {
                    refs.push(Ref::Change(self.syms.intern(repo), number));
                }
                let action = d.request.get("action").and_then(Value::as_str).unwrap_or("");
                let action = self.syms.intern(action);
                self.decisions.push(DecisionRow { seq: event.seq, action, allowed: d.decision.as_str() == "allow" });
            }
            _ => {}
        }
        let artifact = artifact.map(|a| self.syms.intern(a));
        if let Some(a) = artifact {
            refs.push(Ref::Artifact(a));
        }
        let service = match service {
            Some(s) => self.syms.intern(s),
            // Tests, scans and builds name an artifact, not a service.
            None => artifact.and_then(|a| self.artifact_service.get(&a).copied()).unwrap_or(NONE),
        };
        let env = env.map_or(NONE, |e| self.syms.intern(e));
        let seq = event.seq as u32;
        for r in &refs {
            let next = self.postings.len() as u32;
            let head = self.heads.entry(r.key()).or_insert(NO_POSTING);
            if *head != NO_POSTING && self.postings.get(*head as usize).is_some_and(|p| p.0 == seq) {
                continue;
            }
            self.postings.push((seq, *head));
            *head = next;
        }
        self.event_refs.extend(refs);
        let row = Row {
            at: event.occurred_at.timestamp_micros(),
            actor: self.syms.intern(&event.actor),
            service,
            env,
            stream: self.syms.intern(&event.stream),
            refs: refs_start,
            kind: event.event_type,
        };
        self.rows.push(row);
    }

    fn row_refs(&self, seq: u32) -> &[Ref] {
        let Some(row) = self.rows.get(seq as usize) else { return &[] };
        let end = self.rows.get(seq as usize + 1).map_or(self.event_refs.len(), |r| r.refs as usize);
        self.event_refs.get(row.refs as usize..end).unwrap_or_default()
    }

    fn kind(&self, seq: u32) -> Option<EventType> {
        self.rows.get(seq as usize).map(|r| r.kind)
    }

    /// Resolve a name for matching: `Ok(None)` when not filtered,
    /// `Err(())` when the name is unknown (nothing can match).
    fn resolve(&self, name: &Option<String>) -> Result<Option<Sym>, ()> {
        match name {
            None => Ok(None),
            Some(n) => self.syms.get(n).map(Some).ok_or(()),
        }
    }

    fn matcher(&self, filter: &EventFilter) -> Option<impl Fn(&Row) -> bool + '_> {
        let stream = self.resolve(&filter.stream).ok()?;
        let actor = self.resolve(&filter.actor).ok()?;
        let service = self.resolve(&filter.service).ok()?;
        let env = self.resolve(&filter.environment).ok()?;
        let from = filter.from.map(|t| t.timestamp_micros());
        let to = filter.to.map(|t| t.timestamp_micros());
        let types = filter.types.clone();
        Some(move |r: &Row| {
            r.actor != NONE
                && (types.is_empty() || types.contains(&r.kind))
                && stream.is_none_or(|s| r.stream == s)
                && actor.is_none_or(|a| r.actor == a)
                && service.is_none_or(|s| r.service == s)
                && env.is_none_or(|e| r.env == e)
                && from.is_none_or(|f| r.at >= f)
                && to.is_none_or(|t| r.at < t)
        })
    }

    /// The first `first` events after `after` that match, in `seq` order.
    pub fn search(&self, filter: &EventFilter, after: Option<u64>, first: usize) -> Page {
        let Some(matches) = self.matcher(filter) else { return Page { seqs: Vec::new(), has_next: false } };
        let start = after.map_or(0, |a| a.saturating_add(1)).min(self.rows.len() as u64) as usize;
        let mut seqs = Vec::with_capacity(first.min(1024));
        let mut has_next = false;
        for (i, row) in self.rows[start..].iter().enumerate() {
            if matches(row) {
                if seqs.len() == first {
                    has_next = true;
                    break;
                }
                seqs.push((start + i) as u64);
            }
        }
        Page { seqs, has_next }
    }

    /// How many events match.
    pub fn count(&self, filter: &EventFilter) -> u64 {
        match self.matcher(filter) {
            None => 0,
            Some(matches) => self.rows.iter().filter(|r| matches(r)).count() as u64,
        }
    }

    /// Decisions that match, in `seq` order, after `after`, at most `first`.
    pub fn decisions(&self, filter: &DecisionFilter, after: Option<u64>, first: usize) -> Page {
        let events = EventFilter {
            types: vec![EventType::DecisionRecorded],
            service: filter.service.clone(),
            environment: filter.environment.clone(),
            from: filter.from,
            to: filter.to,
            ..EventFilter::default()
        };
        let Some(matches) = self.matcher(&events) else { return Page { seqs: Vec::new(), has_next: false } };
        let Ok(action) = self.resolve(&filter.action) else { return Page { seqs: Vec::new(), has_next: false } };
        let Ok(artifact) = self.resolve(&filter.artifact) else { return Page { seqs: Vec::new(), has_next: false } };
        let start = self.decisions.partition_point(|d| after.is_some_and(|a| d.seq <= a));
        let mut seqs = Vec::new();
        let mut has_next = false;
        for d in &self.decisions[start..] {
            let Some(row) = self.rows.get(d.seq as usize) else { continue };
            let ok = matches(row)
                && action.is_none_or(|a| d.action == a)
                && filter.allowed.is_none_or(|w| d.allowed == w)
                && artifact.is_none_or(|a| self.row_refs(d.seq as u32).contains(&Ref::Artifact(a)));
            if ok {
                if seqs.len() == first {
                    has_next = true;
                    break;
                }
                seqs.push(d.seq);
            }
        }
        Page { seqs, has_next }
    }

    /// The events that mention `key`, in `seq` order.
    fn mentions(&self, key: Ref) -> Vec<u32> {
        let mut seqs = Vec::new();
        let mut at = self.heads.get(&key).copied().unwrap_or(NO_POSTING);
        while let Some(&(seq, previous)) = self.postings.get(at as usize) {
            seqs.push(seq);
            at = previous;
        }
        seqs.reverse();
        seqs
    }

    /// The evidence around a commit: the changes that merged it, their
    /// builds, tests and scans, the artifacts that contain it, their
    /// approvals and gate decisions, the deployments that shipped it, and
    /// what followed them (canaries, rollbacks, incidents, fixes).
    pub fn trace(&self, sha: &str) -> Evidence {
        let mut out = Walk::default();
        let Some(sha) = self.syms.get(sha) else { return Evidence::default() };
        let mut shas = vec![sha];
        for seq in self.mentions(Ref::Sha(sha)) {
            match self.kind(seq) {
                Some(EventType::CommitPushed) => out.commits.insert(seq),
                Some(EventType::ChangeMerged) => {
                    for r in self.row_refs(seq) {
                        match *r {
                            Ref::Change(repo, n) => self.change(&mut out, repo, n),
                            Ref::MergeSha(m) if m != sha => shas.push(m),
                            _ => {}
                        }
                    }
                    true
                }
                _ => false,
            };
        }
        let mut artifacts = Vec::new();
        for &s in &shas {
            for seq in self.mentions(Ref::Sha(s)) {
                self.classify(&mut out, seq, &mut artifacts);
            }
        }
        self.follow_artifacts(&mut out, artifacts);
        out.finish()
    }

    /// The evidence of one deployment (by `deploymentId`): its artifact's
    /// builds, tests, scans, approvals and commits (with their changes), the
    /// gate decisions, and what followed it. Empty when no event names it.
    pub fn deployment(&self, deployment_id: &str) -> Evidence {
        let mut out = Walk::default();
        let Some(id) = self.syms.get(deployment_id) else { return Evidence::default() };
        let mut artifacts = Vec::new();
        for seq in self.mentions(Ref::Id(id)) {
            self.classify(&mut out, seq, &mut artifacts);
        }
        self.follow_artifacts(&mut out, artifacts);
        // The commits it shipped, and the changes that merged them.
        let mut shas = Vec::new();
        for &seq in out.artifacts.iter().chain(out.deployments.iter()) {
            let own = self.row_refs(seq).contains(&Ref::Id(id));
            let published = self.kind(seq) == Some(EventType::ArtifactPublished);
            if own || published {
                shas.extend(
                    self.row_refs(seq).iter().filter_map(|r| if let Ref::Sha(s) = r { Some(*s) } else { None }),
                );
            }
        }
        for s in shas {
            for seq in self.mentions(Ref::Sha(s)) {
                match self.kind(seq) {
                    Some(EventType::CommitPushed) => {
                        out.commits.insert(seq);
                    }
                    Some(EventType::ChangeMerged) => {
                        for r in self.row_refs(seq) {
                            if let Ref::Change(repo, n) = *r {
                                self.change(&mut out, repo, n);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out.finish()
    }

    /// The change events (opened, reviewed, merged) of the changes that
    /// merged any of these commits, in `seq` order.
    pub fn changes_of(&self, shas: &[String]) -> Vec<u64> {
        let mut out = Walk::default();
        for sha in shas {
            let Some(s) = self.syms.get(sha) else { continue };
            for seq in self.mentions(Ref::Sha(s)) {
                if self.kind(seq) == Some(EventType::ChangeMerged) {
                    for r in self.row_refs(seq) {
                        if let Ref::Change(repo, n) = *r {
                            self.change(&mut out, repo, n);
                        }
                    }
                }
            }
        }
        out.changes.into_iter().map(u64::from).collect()
    }

    /// Approvals (granted and revoked) naming any of these artifacts.
    pub fn approvals_of(&self, artifacts: &[String]) -> Vec<u64> {
        let mut seqs: BTreeSet<u64> = BTreeSet::new();
        for a in artifacts {
            let Some(a) = self.syms.get(a) else { continue };
            for seq in self.mentions(Ref::Artifact(a)) {
                if matches!(self.kind(seq), Some(EventType::ApprovalGranted | EventType::ApprovalRevoked)) {
                    seqs.insert(u64::from(seq));
                }
            }
        }
        seqs.into_iter().collect()
    }

    fn change(&self, out: &mut Walk, repo: Sym, number: u64) {
        for seq in self.mentions(Ref::Change(repo, number)) {
            match self.kind(seq) {
                Some(EventType::DecisionRecorded) => out.decisions.insert(seq),
                _ => out.changes.insert(seq),
            };
        }
    }

    /// Put an event in its place in the evidence, noting artifacts to
    /// follow.
    fn classify(&self, out: &mut Walk, seq: u32, artifacts: &mut Vec<Sym>) {
        use EventType as T;
        let Some(kind) = self.kind(seq) else { return };
        match kind {
            T::CommitPushed => out.commits.insert(seq),
            T::ChangeOpened | T::ChangeReviewed | T::ChangeMerged => out.changes.insert(seq),
            T::BuildStarted | T::BuildFinished => {
                artifacts.extend(self.artifact_of(seq));
                out.builds.insert(seq)
            }
            T::TestsFinished => out.tests.insert(seq),
            T::ScanFinished => out.scans.insert(seq),
            T::ArtifactPublished => {
                artifacts.extend(self.artifact_of(seq));
                out.artifacts.insert(seq)
            }
            T::ApprovalGranted | T::ApprovalRevoked => out.approvals.insert(seq),
            T::DecisionRecorded => out.decisions.insert(seq),
            T::DeploymentStarted | T::DeploymentSucceeded | T::DeploymentFailed => {
                artifacts.extend(self.artifact_of(seq));
                out.deployments.insert(seq)
            }
            T::DeploymentRolledBack => out.rollbacks.insert(seq),
            T::CanaryAnalyzed => out.canaries.insert(seq),
            T::IncidentOpened | T::IncidentResolved => out.incidents.insert(seq),
            _ => false,
        };
    }

    fn artifact_of(&self, seq: u32) -> Option<Sym> {
        self.row_refs(seq).iter().find_map(|r| if let Ref::Artifact(a) = r { Some(*a) } else { None })
    }

    /// Follow artifacts to everything about them, then deployments to what
    /// followed them, then incidents to their resolution and fixes.
    fn follow_artifacts(&self, out: &mut Walk, mut artifacts: Vec<Sym>) {
        artifacts.sort_unstable();
        artifacts.dedup();
        let mut ignored = Vec::new();
        for a in artifacts {
            for seq in self.mentions(Ref::Artifact(a)) {
                self.classify(out, seq, &mut ignored);
            }
        }
        let ids = |set: &BTreeSet<u32>| -> Vec<Sym> {
            set.iter()
                .flat_map(|s| self.row_refs(*s).iter())
                .filter_map(|r| if let Ref::Id(i) = r { Some(*i) } else { None })
                .collect()
        };
        let deployments = ids(&out.deployments);
        for d in deployments {
            for seq in self.mentions(Ref::Id(d)) {
                self.classify(out, seq, &mut ignored);
            }
        }
        let incidents = ids(&out.incidents);
        for i in incidents {
            for seq in self.mentions(Ref::Id(i)) {
                self.classify(out, seq, &mut ignored);
            }
        }
    }
}

#[derive(Default)]
struct Walk {
    commits: BTreeSet<u32>,
    changes: BTreeSet<u32>,
    builds: BTreeSet<u32>,
    tests: BTreeSet<u32>,
    scans: BTreeSet<u32>,
    artifacts: BTreeSet<u32>,
    approvals: BTreeSet<u32>,
    decisions: BTreeSet<u32>,
    deployments: BTreeSet<u32>,
    canaries: BTreeSet<u32>,
    rollbacks: BTreeSet<u32>,
    incidents: BTreeSet<u32>,
}

impl Walk {
    fn finish(self) -> Evidence {
        let v = |s: BTreeSet<u32>| s.into_iter().map(u64::from).collect();
        Evidence {
            commits: v(self.commits),
            changes: v(self.changes),
            builds: v(self.builds),
            tests: v(self.tests),
            scans: v(self.scans),
            artifacts: v(self.artifacts),
            approvals: v(self.approvals),
            decisions: v(self.decisions),
            deployments: v(self.deployments),
            canaries: v(self.canaries),
            rollbacks: v(self.rollbacks),
            incidents: v(self.incidents),
        }
    }
}
