//! The facts release gates decide from, as the ledger records them: which
//! artifacts succeeded in staging, their tests and scans, approvals in force,
//! canary analyses, migrations, infrastructure changes, reviews.
//!
//! A projection: fed every event in `seq` order ([`GateFacts::apply`]),
//! rebuilt by replaying the log, never a second source of truth. Questions
//! that depend on the directory (is this approver a tech lead?) take it as a
//! function, so the projection stays pure.

use crate::symbols::{FastMap, FastSet, Sym, Symbols};

use crate::event::EventData;
use crate::event::data::{Approval, ApprovalScope, MigrationPhase, Outcome, ReviewState};
use crate::record::RecordedEvent;

/// An approval as recorded, and whether a later `approval.revoked` undid it.
#[derive(Debug, Clone, PartialEq)]
struct Granted {
    approval: Approval,
    revoked: bool,
}

/// Latest result per test suite, or per scanner, or per reviewer: a few
/// entries per subject, kept in a small list.
#[derive(Debug, Clone)]
struct Latest<K, V>(Vec<(K, V)>);

impl<K, V> Default for Latest<K, V> {
    fn default() -> Self {
        Latest(Vec::new())
    }
}

impl<K: PartialEq, V> Latest<K, V> {
    fn insert(&mut self, key: K, value: V) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

#[derive(Debug, Default, Clone)]
pub struct GateFacts {
    applied: Option<u64>,
    /// Artifacts, commits, suites, scanners, people, repositories, ids.
    syms: Symbols,
    staging_succeeded: FastSet<Sym>,
    tests: FastMap<Sym, Latest<Sym, bool>>,
    scans: FastMap<Sym, Latest<(Sym, Sym), u64>>,
    approvals: Vec<Granted>,
    /// Indexes into `approvals` by the artifact and the change an approval
    /// names, and by approver (for revocations): a decision looks at the
    /// approvals of its subject only, however long the history.
    approvals_by_artifact: FastMap<Sym, Vec<u32>>,
    approvals_by_change: FastMap<Sym, Vec<u32>>,
    approvals_by_approver: FastMap<Sym, Vec<u32>>,
    canaries: FastMap<Sym, (f64, f64)>,
    expand_in_production: FastSet<(Sym, Sym)>,
    infra_in_staging: FastSet<Sym>,
    reviews: FastMap<(Sym, u64), Latest<Sym, ReviewState>>,
    change_authors: FastMap<(Sym, u64), Sym>,
    policy_hash: Option<String>,
}

/// The subject of a question: what the gate is asked about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject<'a> {
    pub principal: &'a str,
    pub service: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub artifact: Option<&'a str>,
}

impl GateFacts {
    pub fn new() -> GateFacts {
        GateFacts::default()
    }

    /// The seq of the last event applied.
    pub fn applied(&self) -> Option<u64> {
        self.applied
    }

    /// The hash of the last policy set activated.
    pub fn policy_hash(&self) -> Option<&str> {
        self.policy_hash.as_deref()
    }

    /// Take the next event into account. Events must come in `seq` order;
    /// an event already applied is ignored (replays are idempotent).
    pub fn apply(&mut self, event: &RecordedEvent) {
        // Stored events passed the edge's checks; one that no longer parses
        // (its type's rules grew stricter) simply adds no fact.
        self.apply_data(event.seq, typed(event).ok().as_ref());
    }

    /// [`GateFacts::apply`] for an event whose data is already parsed
    /// (`None`: it does not parse, and adds no fact).
    pub fn apply_data(&mut self, seq: u64, typed: Option<&EventData>) {
        if self.applied.is_some_and(|a| seq <= a) {
            return;
        }
        self.applied = Some(seq);
        let Some(typed) = typed else { return };
        match typed {
            EventData::DeploymentSucceeded(d) if d.environment.as_str() == "staging" => {
                let artifact = self.syms.intern(d.artifact.as_str());
                self.staging_succeeded.insert(artifact);
            }
            EventData::TestsFinished(t) => {
                let passed = t.outcome == Outcome::Success && t.failed == 0;
                let suite = self.syms.intern(&format!("{}/{:?}", t.suite, t.kind));
                for subject in
                    [t.artifact.as_ref().map(|a| a.as_str()), t.sha.as_ref().map(|s| s.as_str())].into_iter().flatten()
                {
                    let subject = self.syms.intern(subject);
                    self.tests.entry(subject).or_default().insert(suite, passed);
                }
            }
            EventData::ScanFinished(s) => {
                let artifact = self.syms.intern(s.artifact.as_str());
                let scanner = (self.syms.intern(s.scanner.as_str()), self.syms.intern(&format!("{:?}", s.kind)));
                self.scans.entry(artifact).or_default().insert(scanner, s.critical);
            }
            EventData::ApprovalGranted(a) => {
                let index = self.approvals.len() as u32;
                if let Some(artifact) = &a.artifact {
                    let artifact = self.syms.intern(artifact.as_str());
                    self.approvals_by_artifact.entry(artifact).or_default().push(index);
                }
                if let Some(change) = &a.change_id {
                    let change = self.syms.intern(change.as_str());
                    self.approvals_by_change.entry(change).or_default().push(index);
                }
                let approver = self.syms.intern(a.approver.as_str());
                self.approvals_by_approver.entry(approver).or_default().push(index);
                self.approvals.push(Granted { approval: a.clone(), revoked: false });
            }
            EventData::ApprovalRevoked(r) => {
                let approver = self.syms.get(r.approver.as_str());
                for index in approver.and_then(|a| self.approvals_by_approver.get(&a)).into_iter().flatten() {
                    if let Some(g) = self.approvals.get_mut(*index as usize) {
                        if same_grant(&g.approval, r) {
                            g.revoked = true;
                        }
                    }
                }
            }
            EventData::CanaryAnalyzed(c) => {
                let deployment = self.syms.intern(c.deployment_id.as_str());
                self.canaries.insert(deployment, (c.error_rate, c.p95_latency_ms));
            }
            EventData::MigrationApplied(m)
                if m.environment.as_str() == "production" && m.phase == MigrationPhase::Expand =>
            {
                let key = (self.syms.intern(m.service.as_str()), self.syms.intern(m.name.as_str()));
                self.expand_in_production.insert(key);
            }
            EventData::InfraApplied(i) if i.environment.as_str() == "staging" && i.outcome == Outcome::Success => {
                let change = self.syms.intern(i.change_id.as_str());
                self.infra_in_staging.insert(change);
            }
            EventData::ChangeOpened(c) => {
                // The first author recorded is the author.
                let (repo, author) = (self.syms.intern(c.repo.as_str()), self.syms.intern(c.author.as_str()));
                self.change_authors.entry((repo, c.number)).or_insert(author);
            }
            EventData::ChangeReviewed(r) => {
                let repo = self.syms.intern(r.repo.as_str());
                if let Some(author) = &r.author {
                    let author = self.syms.intern(author.as_str());
                    self.change_authors.entry((repo, r.number)).or_insert(author);
                }
                let reviewer = self.syms.intern(r.reviewer.as_str());
                let reviews = self.reviews.entry((repo, r.number)).or_default();
                // As on GitHub and GitLab, a comment does not undo a
                // reviewer's approval or request for changes; a new verdict does.
                let keeps_verdict = r.state == ReviewState::Commented
                    && reviews.0.iter().any(|(k, v)| *k == reviewer && *v != ReviewState::Commented);
                if !keeps_verdict {
                    reviews.insert(reviewer, r.state);
                }
            }
            EventData::PolicyActivated(p) if p.is_gates() => self.policy_hash = Some(p.policy_set_hash.to_string()),
            _ => {}
        }
    }

    pub fn staging_succeeded(&self, artifact: &str) -> bool {
        self.syms.get(artifact).is_some_and(|a| self.staging_succeeded.contains(&a))
    }

    /// Tests recorded for the artifact (or commit), and the latest run of
    /// every suite passed.
    pub fn tests_passed(&self, subject: &str) -> bool {
        self.syms
            .get(subject)
            .and_then(|s| self.tests.get(&s))
            .is_some_and(|suites| !suites.is_empty() && suites.values().all(|p| *p))
    }

    /// `(scanned, critical findings in the latest scan of each scanner)`.
    pub fn scans(&self, artifact: &str) -> (bool, u64) {
        match self.syms.get(artifact).and_then(|a| self.scans.get(&a)) {
            None => (false, 0),
            Some(latest) => (!latest.is_empty(), latest.values().fold(0u64, |sum, n| sum.saturating_add(*n))),
        }
    }

    /// Approvals in force (not revoked) of one of `scopes`, by someone
    /// other than the principal, for the subject's artifact: an approval
    /// must name the artifact it approves, and counts only for the service
    /// and environment it names, if it names them.
    pub fn approvers<'a>(
        &'a self,
        subject: &'a Subject<'a>,
        scopes: &'a [ApprovalScope],
    ) -> impl Iterator<Item = &'a str> + 'a {
        let of_artifact =
            subject.artifact.and_then(|a| self.syms.get(a)).and_then(|a| self.approvals_by_artifact.get(&a));
        self.granted(of_artifact)
            .filter(move |g| !g.revoked)
            .map(|g| &g.approval)
            .filter(move |a| {
                scopes.contains(&a.scope)
                    && a.approver.as_str() != subject.principal
                    && fits(a.service.as_ref().map(|n| n.as_str()), subject.service)
                    && fits(a.environment.as_ref().map(|n| n.as_str()), subject.environment)
                    && a.artifact.as_ref().map(|n| n.as_str()).is_some_and(|x| Some(x) == subject.artifact)
            })
            .map(|a| a.approver.as_str())
    }

    /// Approvers (other than `principal`) of an infrastructure change in an
    /// environment (an approval that names another environment does not count).
    pub fn infra_approvers<'a>(
        &'a self,
        principal: &'a str,
        change_id: &'a str,
        environment: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let of_change = self.syms.get(change_id).and_then(|c| self.approvals_by_change.get(&c));
        self.granted(of_change)
            .filter(move |g| {
                !g.revoked
                    && g.approval.scope == ApprovalScope::Infra
                    && g.approval.approver.as_str() != principal
                    && g.approval.change_id.as_ref().is_some_and(|c| c.as_str() == change_id)
                    && fits(g.approval.environment.as_ref().map(|n| n.as_str()), Some(environment))
            })
            .map(|g| g.approval.approver.as_str())
    }

    /// The approvals at these indexes.
    fn granted<'a>(&'a self, indexes: Option<&'a Vec<u32>>) -> impl Iterator<Item = &'a Granted> + 'a {
        indexes.into_iter().flatten().filter_map(|i| self.approvals.get(*i as usize))
    }

    /// The recorded canary analysis of a deployment: (error rate, p95 ms).
    pub fn canary(&self, deployment_id: &str) -> Option<(f64, f64)> {
        self.syms.get(deployment_id).and_then(|d| self.canaries.get(&d)).copied()
    }

    pub fn expand_in_production(&self, service: &str, migration: &str) -> bool {
        match (self.syms.get(service), self.syms.get(migration)) {
            (Some(s), Some(m)) => self.expand_in_production.contains(&(s, m)),
            _ => false,
        }
    }

    pub fn infra_applied_to_staging(&self, change_id: &str) -> bool {
        self.syms.get(change_id).is_some_and(|c| self.infra_in_staging.contains(&c))
    }

    /// Someone other than the change's author (or, when the ledger does not
    /// know the author, other than `principal`) approved it in their latest
    /// review.
    pub fn review_approved_by_other(&self, repo: &str, number: u64, principal: &str) -> bool {
        let Some(repo) = self.syms.get(repo) else { return false };
        let key = (repo, number);
        let author = self.change_authors.get(&key).map_or(principal, |a| self.syms.name(*a));
        self.reviews.get(&key).is_some_and(|reviews| {
            reviews.iter().any(|(reviewer, state)| {
                let reviewer = self.syms.name(*reviewer);
                *state == ReviewState::Approved && reviewer != author && reviewer != principal
            })
        })
    }
}

/// A revocation undoes the grants it names: same approver and scope, and
/// the same service, environment, artifact and change where it names them.
fn same_grant(grant: &Approval, revoke: &Approval) -> bool {
    grant.approver == revoke.approver
        && grant.scope == revoke.scope
        && revoke.service.as_ref().is_none_or(|s| grant.service.as_ref() == Some(s))
        && revoke.environment.as_ref().is_none_or(|e| grant.environment.as_ref() == Some(e))
        && revoke.artifact.as_ref().is_none_or(|a| grant.artifact.as_ref() == Some(a))
        && revoke.change_id.as_ref().is_none_or(|c| grant.change_id.as_ref() == Some(c))
}

/// An approval's field fits the subject when the approval leaves it open or
/// names the subject's value.
fn fits(approved: Option<&str>, wanted: Option<&str>) -> bool {
    match approved {
        None => true,
        Some(a) => wanted == Some(a),
    }
}

fn typed(event: &RecordedEvent) -> Result<EventData, crate::EventError> {
    EventData::parse(event.event_type, event.data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use serde_json::{Value, json};

    fn recorded(seq: u64, kind: &str, data: Value) -> RecordedEvent {
        RecordedEvent {
            seq,
            id: uuid::Uuid::new_v4(),
            event_type: EventType::parse(kind).unwrap(),
            stream: "s".into(),
            stream_version: seq,
            occurred_at: chrono::Utc::now(),
            recorded_at: chrono::Utc::now(),
            recorded_by: "t".into(),
            actor: "a".into(),
            source: None,
            data,
            links: Vec::new(),
            leaf_hash: None,
        }
    }

    fn facts(events: &[(&str, Value)]) -> GateFacts {
        let mut f = GateFacts::new();
        for (i, (kind, data)) in events.iter().enumerate() {
            f.apply(&recorded(i as u64, kind, data.clone()));
        }
        f
    }

    fn approval(approver: &str, scope: &str, artifact: &str) -> Value {
        json!({"approver": approver, "scope": scope, "service": "checkout", "environment": "production", "artifact": artifact})
    }

    #[test]
    fn approvals_count_only_for_their_subject_and_until_revoked() {
        let subject = Subject {
            principal: "u-dep",
            service: Some("checkout"),
            environment: Some("production"),
            artifact: Some("sha256:a"),
        };
        let deploy = [ApprovalScope::Deployment, ApprovalScope::Emergency];
        let count = |f: &GateFacts| f.approvers(&subject, &deploy).count();
        type Case<'a> = (&'a str, Vec<(&'a str, Value)>, usize);
        let cases: Vec<Case> = vec![
            ("an approval by another", vec![("approval.granted", approval("u-lead", "deployment", "sha256:a"))], 1),
            ("by the deployer", vec![("approval.granted", approval("u-dep", "deployment", "sha256:a"))], 0),
            ("for another artifact", vec![("approval.granted", approval("u-lead", "deployment", "sha256:b"))], 0),
            ("of another scope", vec![("approval.granted", approval("u-lead", "merge", "sha256:a"))], 0),
            ("naming no artifact", vec![("approval.granted", json!({"approver": "u-lead", "scope": "deployment"}))], 0),
            (
                "for another environment",
                vec![(
                    "approval.granted",
                    json!({"approver": "u-lead", "scope": "deployment", "environment": "staging", "artifact": "sha256:a"}),
                )],
                0,
            ),
            (
                "revoked later",
                vec![
                    ("approval.granted", approval("u-lead", "emergency", "sha256:a")),
                    ("approval.revoked", approval("u-lead", "emergency", "sha256:a")),
                ],
                0,
            ),
            (
                "granted again after a revocation",
                vec![
                    ("approval.granted", approval("u-lead", "emergency", "sha256:a")),
                    ("approval.revoked", approval("u-lead", "emergency", "sha256:a")),
                    ("approval.granted", approval("u-lead", "emergency", "sha256:a")),
                ],
                1,
            ),
        ];
        for (name, events, want) in cases {
            assert_eq!(count(&facts(&events)), want, "{name}");
        }
    }

    #[test]
    fn tests_scans_staging_and_migrations() {
        let f = facts(&[
            (
                "tests.finished",
                json!({"artifact": "a", "suite": "unit", "kind": "unit", "passed": 3, "failed": 1, "skipped": 0, "outcome": "failure"}),
            ),
            (
                "tests.finished",
                json!({"artifact": "a", "suite": "unit", "kind": "unit", "passed": 4, "failed": 0, "skipped": 0, "outcome": "success"}),
            ),
            (
                "tests.finished",
                json!({"artifact": "b", "suite": "e2e", "kind": "e2e", "passed": 4, "failed": 2, "skipped": 0, "outcome": "failure"}),
            ),
            (
                "scan.finished",
                json!({"artifact": "a", "scanner": "trivy", "kind": "image", "critical": 2, "high": 0, "medium": 0, "low": 0}),
            ),
            (
                "scan.finished",
                json!({"artifact": "a", "scanner": "trivy", "kind": "image", "critical": 0, "high": 1, "medium": 0, "low": 0}),
            ),
            (
                "deployment.succeeded",
                json!({"deploymentId": "d1", "service": "checkout", "environment": "staging", "artifact": "a", "version": "1"}),
            ),
            (
                "migration.applied",
                json!({"service": "checkout", "environment": "production", "name": "m1", "phase": "expand"}),
            ),
            (
                "migration.applied",
                json!({"service": "checkout", "environment": "staging", "name": "m2", "phase": "expand"}),
            ),
        ]);
        assert!(f.tests_passed("a"), "the latest run of the suite passed");
        assert!(!f.tests_passed("b") && !f.tests_passed("c"));
        assert_eq!(f.scans("a"), (true, 0), "the latest scan of each scanner counts");
        assert_eq!(f.scans("b"), (false, 0));
        assert!(f.staging_succeeded("a") && !f.staging_succeeded("b"));
        assert!(f.expand_in_production("checkout", "m1") && !f.expand_in_production("checkout", "m2"));
        assert_eq!(f.applied(), Some(7));
    }

    /// Given reviews of one change, when the merge gate asks, then a
    /// reviewer's verdict stands through their later comments, and a later
    /// verdict replaces it.
    #[test]
    fn a_comment_does_not_undo_an_approval() {
        let review = |reviewer: &str, state: &str| {
            (
                "change.reviewed",
                json!({"repo": "acme/app", "number": 7, "reviewer": reviewer, "state": state, "author": "alice"}),
            )
        };
        let cases: &[(&[(&str, Value)], bool)] = &[
            (&[review("bob", "approved")], true),
            (&[review("bob", "approved"), review("bob", "commented")], true),
            (&[review("bob", "commented"), review("bob", "approved")], true),
            (&[review("bob", "approved"), review("bob", "changes_requested")], false),
            (&[review("bob", "changes_requested"), review("bob", "commented")], false),
            (&[review("bob", "commented")], false),
            (&[review("alice", "approved")], false),
        ];
        for (events, want) in cases {
            let f = facts(events);
            assert_eq!(f.review_approved_by_other("acme/app", 7, "carol"), *want, "{events:?}");
        }
    }
}
