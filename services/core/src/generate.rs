//! A deterministic, realistic history of an engineering organisation: the
//! events its pipelines, people and tools would have recorded over a number
//! of days. The demo, the end-to-end tests and the benchmarks use it.
//!
//! The same configuration (services, days, seed, start) always gives the
//! same events, byte for byte: ids, SHAs and digests come from the seeded
//! generator, never from the clock or the operating system. Like the rest of
//! this crate it does no I/O; the CLI writes what it yields.
//!
//! What happens, per service, on its team's working days:
//!
//! - changes: commits pushed, a pull request opened, reviewed (sometimes
//!   with changes requested first) and merged;
//! - CI on the merge: build started and finished (some fail and are re-run),
//!   unit and integration tests, scans, and the artifact published with the
//!   commits not yet in production;
//! - staging: a deployment of each artifact, with smoke and end-to-end tests;
//! - production, Monday to Thursday inside the maintenance window: an
//!   approval by someone other than the deployer, then a deployment of the
//!   latest artifact that passed staging, through a canary for some services;
//!   some attempts fail, some deployments are rolled back, some cause
//!   incidents (named as their cause or not), which are fixed by emergency
//!   hotfixes with a tech lead's approval and a rollback plan, or resolved;
//! - database migrations (expand, later contract), infrastructure changes
//!   (planned, approved, applied, staging before production), feature flags,
//!   and incidents no deployment caused.
//!
//! Events come out in `occurredAt` order. Events that would fall after the
//! history's end are not produced, so the last days hold unfinished work
//! (open incidents, undeployed commits) as a real ledger would.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, Utc, Weekday};
use serde_json::{Value, json};

/// What history to make.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Services (and their repositories); teams own about five each.
    pub services: usize,
    /// Days of history.
    pub days: u32,
    /// The same seed gives the same history.
    pub seed: u64,
    /// The first day (00:00 UTC).
    pub start: NaiveDate,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            services: 50,
            days: 365,
            seed: 1,
            start: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default(),
        }
    }
}

/// Most services a history may have.
pub const MAX_SERVICES: usize = 10_000;
/// Most days a history may span.
pub const MAX_DAYS: u32 = 3_660;

/// Services each team owns.
const SERVICES_PER_TEAM: usize = 5;
/// The generator's output version: raised whenever the history a seed
/// gives changes, so that a history kept on disk is not taken for another.
pub const GENERATOR_VERSION: u32 = 2;

/// Engineers in each team: a tech lead and a senior (0 and 1), then others.
const TEAM_SIZE: usize = 6;
const _: () = assert!(TEAM_SIZE >= 5, "hotfix authors are picked among members 1 to 3, reviewers apart from them");
/// How far before the day being simulated an event may be placed (pull
/// requests opened, commits authored before the day they merge).
const LOOKBACK_HOURS: i64 = 96;

const SERVICE_NAMES: &[&str] = &[
    "checkout",
    "billing",
    "search",
    "web",
    "cart",
    "catalog",
    "inventory",
    "pricing",
    "payments-api",
    "notifications",
    "email",
    "auth",
    "accounts",
    "profile",
    "recommendations",
    "reviews",
    "shipping",
    "tracking",
    "returns",
    "orders",
    "invoices",
    "tax",
    "fraud",
    "risk-scoring",
    "analytics",
    "reporting",
    "ingest",
    "etl",
    "gateway",
    "images",
    "media",
    "chat",
    "support",
    "loyalty",
    "coupons",
    "subscriptions",
    "onboarding",
    "admin",
    "feature-flags",
    "scheduler",
    "warehouse",
    "routing",
    "maps",
    "pos",
    "mobile-bff",
    "web-bff",
    "partner-api",
    "webhooks",
    "ledger-sync",
    "audit-log",
];

const TEAM_NAMES: &[&str] = &[
    "payments",
    "discovery",
    "storefront",
    "identity",
    "fulfilment",
    "insights",
    "platform",
    "engagement",
    "trust",
    "operations",
    "mobile",
    "partners",
];

const FIRST_NAMES: &[&str] = &[
    "Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances", "Ken", "Radia", "Edsger", "Hedy",
    "John", "Karen", "Leslie", "Mary", "Niklaus", "Sophie", "Tim", "Yukihiro", "Anita", "Bjarne", "Carol", "Donald",
    "Elena", "Fatima", "Guido", "Hana", "Ivan", "Jun",
];

const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Turing",
    "Liskov",
    "Ritchie",
    "Allen",
    "Thompson",
    "Perlman",
    "Dijkstra",
    "Lamarr",
    "Backus",
    "Jones",
    "Lamport",
    "Shaw",
    "Wirth",
    "Wilson",
    "Berners",
    "Matsumoto",
    "Borg",
    "Stroustrup",
    "Shaw",
    "Knuth",
    "Petrova",
    "Haddad",
    "Rossum",
    "Sato",
    "Ivanov",
    "Koda",
];

const FLAGS: &[&str] =
    &["new-checkout-flow", "dark-mode", "search-v2", "one-click-buy", "smart-retry", "edge-cache", "beta-api"];

/// SplitMix64: small, fast, and good enough for synthetic data; the same
/// seed gives the same sequence on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi].
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }

    /// In [lo, hi], most often near `lo`: how waiting times are spread.
    fn skewed(&mut self, lo: i64, hi: i64) -> i64 {
        let u = self.unit();
        lo + ((hi - lo) as f64 * u * u * u) as i64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len().max(1) as u64) as usize]
    }

    /// A count whose mean is `mean` (Poisson, by Knuth's method).
    fn poisson(&mut self, mean: f64) -> u32 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = self.unit();
        while p > limit && k < 1_000 {
            k += 1;
            p *= self.unit();
        }
        k
    }

    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(len);
        s
    }

    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    name: String,
    groups: Vec<&'static str>,
}

#[derive(Debug, Clone)]
struct Team {
    name: String,
    /// Indexes into `Org::users`; the first is the tech lead, the first two
    /// are senior.
    members: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Commit {
    sha: String,
    authored_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Artifact {
    digest: String,
    version: String,
    /// When it passed staging.
    staged_at: DateTime<Utc>,
    /// Range of the service's merged commits it carries.
    commits: (usize, usize),
}

#[derive(Debug, Clone)]
struct Service {
    name: String,
    team: usize,
    repo: String,
    /// Changes merged per working day, on average.
    activity: f64,
    /// Production deployments per deployment day, on average.
    deploy_rate: f64,
    /// How often its production deployments go wrong (a multiplier).
    fragility: f64,
    canary: bool,
    pr_number: u64,
    minor: u32,
    patch: u32,
    runs: u64,
    /// Every commit merged, in merge order.
    merged: Vec<Commit>,
    /// Commits before this index are in production.
    in_production: usize,
    /// Artifacts that passed staging, oldest first, not yet superseded in
    /// production.
    staged: Vec<Artifact>,
    /// The version running in production.
    prod_version: Option<String>,
    /// When the last production deployment finished (none overlap).
    prod_busy_until: DateTime<Utc>,
    deployments: u64,
    incidents: u64,
    migrations: u64,
}

/// An event waiting for its time.
#[derive(Debug)]
struct Pending {
    at: DateTime<Utc>,
    order: u64,
    event: Value,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// The history, as an iterator of event envelopes (JSON objects a client
/// would send) in `occurredAt` order.
#[derive(Debug)]
pub struct Generator {
    config: GenerateConfig,
    rng: Rng,
    users: Vec<User>,
    teams: Vec<Team>,
    devops: Vec<usize>,
    services: Vec<Service>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The next day to simulate.
    day: u32,
    /// Events may not be placed before this time any more.
    floor: DateTime<Utc>,
    pending: BinaryHeap<Reverse<Pending>>,
    ready: VecDeque<Value>,
    order: u64,
    infra_changes: u64,
    emitted: u64,
}

impl Generator {
    /// A generator for `config`; errors name the setting and its bounds.
    pub fn new(config: GenerateConfig) -> Result<Generator, String> {
        if config.services == 0 || config.services > MAX_SERVICES {
            return Err(format!("services must be between 1 and {MAX_SERVICES}, got {}", config.services));
        }
        if config.days == 0 || config.days > MAX_DAYS {
            return Err(format!("days must be between 1 and {MAX_DAYS}, got {}", config.days));
        }
        if config.start.year() < 1 {
            return Err(format!("start must be in the year 1 or later, got {}", config.start));
        }
        let start = config.start.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or("start is not a valid date")?;
        let end = start
            .checked_add_signed(Duration::days(i64::from(config.days)))
            .filter(|e| e.year() <= 9_000)
            .ok_or("start plus days goes past the year 9000")?;
        let mut rng = Rng(config.seed ^ 0x5348_4950_4c4f_4721);
        let team_count = config.services.div_ceil(SERVICES_PER_TEAM);
        let mut users = Vec::new();
        let mut teams = Vec::new();
        let user_name = |n: usize| {
            let first = FIRST_NAMES[n % FIRST_NAMES.len()];
            let last = LAST_NAMES[(n / FIRST_NAMES.len() + n * 7) % LAST_NAMES.len()];
            format!("{first} {last}")
        };
        for t in 0..team_count {
            let name = match TEAM_NAMES.get(t) {
                Some(n) => (*n).to_owned(),
                None => format!("{}-{}", TEAM_NAMES[t % TEAM_NAMES.len()], t / TEAM_NAMES.len() + 1),
            };
            let mut members = Vec::new();
            for m in 0..TEAM_SIZE {
                let n = users.len();
                let mut groups = vec!["Engineer"];
                if m < 2 {
                    groups.push("SeniorEngineer");
                }
                if m == 0 {
                    groups.push("TechLead");
                }
                if m == 2 || m == 3 {
                    groups.push("OnCall");
                }
                if m == 5 {
                    groups.push("QA");
                }
                users.push(User { id: format!("u-{}", 2001 + n), name: user_name(n), groups });
                members.push(n);
            }
            teams.push(Team { name, members });
        }
        let mut devops = Vec::new();
        for _ in 0..3 {
            let n = users.len();
            users.push(User {
                id: format!("u-{}", 2001 + n),
                name: user_name(n),
                groups: vec!["Engineer", "DevOps", "OnCall"],
            });
            devops.push(n);
        }
        let services = (0..config.services)
            .map(|i| {
                let name = match SERVICE_NAMES.get(i) {
                    Some(n) => (*n).to_owned(),
                    None => format!("{}-{}", SERVICE_NAMES[i % SERVICE_NAMES.len()], i / SERVICE_NAMES.len() + 1),
                };
                // Some teams ship many small changes, some few large ones.
                let activity = 1.5 + rng.unit() * 6.2;
                Service {
                    repo: format!("acme/{name}"),
                    name,
                    team: i / SERVICES_PER_TEAM,
                    activity,
                    deploy_rate: 0.4 + rng.unit() * 2.2,
                    fragility: 0.4 + rng.unit() * 1.6,
                    canary: rng.chance(0.35),
                    pr_number: 0,
                    minor: 0,
                    patch: 0,
                    runs: 0,
                    merged: Vec::new(),
                    in_production: 0,
                    staged: Vec::new(),
                    prod_version: None,
                    prod_busy_until: start,
                    deployments: 0,
                    incidents: 0,
                    migrations: 0,
                }
            })
            .collect();
        Ok(Generator {
            config,
            rng,
            users,
            teams,
            devops,
            services,
            start,
            end,
            day: 0,
            floor: start,
            pending: BinaryHeap::new(),
            ready: VecDeque::new(),
            order: 0,
            infra_changes: 0,
            emitted: 0,
        })
    }

    pub fn config(&self) -> &GenerateConfig {
        &self.config
    }

    /// Days simulated so far, of `config().days`: for a progress bar.
    pub fn days_done(&self) -> u32 {
        self.day
    }

    /// Events yielded so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// The organisation's directory as Cedar entities, in the form of
    /// `policies/entities.json`: groups, people and their groups, services
    /// with their team, and the environments with production's maintenance
    /// window.
    pub fn directory(&self) -> Value {
        let mut entities = Vec::new();
        for group in ["Engineer", "SeniorEngineer", "DevOps", "QA", "TechLead", "OnCall"] {
            entities.push(json!({"uid": {"type": "Shiplog::Group", "id": group}, "attrs": {}, "parents": []}));
        }
        for user in &self.users {
            let parents: Vec<Value> = user.groups.iter().map(|g| json!({"type": "Shiplog::Group", "id": g})).collect();
            entities.push(json!({"uid": {"type": "Shiplog::User", "id": user.id}, "attrs": {"name": user.name},
                                 "parents": parents}));
        }
        for service in &self.services {
            entities.push(json!({"uid": {"type": "Shiplog::Service", "id": service.name},
                                 "attrs": {"team": self.teams[service.team].name}, "parents": []}));
        }
        for env in ["development", "staging"] {
            entities.push(json!({"uid": {"type": "Shiplog::Environment", "id": env}, "attrs": {}, "parents": []}));
        }
        entities.push(json!({"uid": {"type": "Shiplog::Environment", "id": "production"},
            "attrs": {"maintenanceWindow": {"days": ["Mon", "Tue", "Wed", "Thu"], "start": "09:00", "end": "16:00"}},
            "parents": []}));
        Value::Array(entities)
    }

    fn at(&self, day: u32, seconds: i64) -> DateTime<Utc> {
        self.start + Duration::days(i64::from(day)) + Duration::seconds(seconds)
    }

    /// Place an event; times before what was already given out are moved up
    /// to it, and events after the history's end are dropped.
    fn emit(&mut self, at: DateTime<Utc>, kind: &str, actor: &str, source: String, data: Value) {
        let at = at.max(self.floor);
        if at >= self.end {
            return;
        }
        let event = json!({
            "id": self.rng.uuid(),
            "type": kind,
            "occurredAt": at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "actor": actor,
            "source": source,
            "data": data,
        });
        self.order += 1;
        self.pending.push(Reverse(Pending { at, order: self.order, event }));
    }

    fn commit_ref(c: &Commit) -> Value {
        json!({"sha": c.sha, "authoredAt": c.authored_at.to_rfc3339_opts(SecondsFormat::Secs, true)})
    }

    fn user(&self, index: usize) -> String {
        self.users[index].id.clone()
    }

    /// A team member other than `not`.
    fn colleague(&mut self, team: usize, not: usize) -> usize {
        let members = &self.teams[team].members;
        let others: Vec<usize> = members.iter().copied().filter(|&m| m != not).collect();
        *self.rng.pick(&others)
    }

    /// A senior member (who may approve production) other than `not`.
    fn approver(&mut self, team: usize, not: usize) -> usize {
        let seniors: Vec<usize> = self.teams[team].members.iter().copied().take(2).filter(|&m| m != not).collect();
        *self.rng.pick(&seniors)
    }

    fn simulate(&mut self, day: u32) {
        let date = self.start + Duration::days(i64::from(day));
        let weekday = date.weekday();
        let working = !matches!(weekday, Weekday::Sat | Weekday::Sun);
        let deploy_day = matches!(weekday, Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu);
        for s in 0..self.services.len() {
            self.simulate_service(s, day, working, deploy_day);
        }
        self.simulate_infra(day, working);
        self.simulate_flags(day, working);
    }

    fn simulate_service(&mut self, s: usize, day: u32, working: bool, deploy_day: bool) {
        let activity = self.services[s].activity * if working { 1.0 } else { 0.08 };
        // What happens today, in time order: merges (08:00–19:00) and
        // production deployments (inside the 09:00–16:00 window).
        let mut plan: Vec<(i64, bool)> = Vec::new();
        for _ in 0..self.rng.poisson(activity) {
            plan.push((self.rng.range(8 * 3600, 19 * 3600), false));
        }
        if deploy_day {
            let deploys = self.rng.poisson(self.services[s].deploy_rate).min(4);
            for _ in 0..deploys {
                plan.push((self.rng.range(9 * 3600 + 600, 15 * 3600 + 1800), true));
            }
        }
        plan.sort_unstable();
        for (seconds, deploy) in plan {
            let at = self.at(day, seconds);
            if deploy {
                self.production_deployment(s, at);
            } else {
                self.change(s, at);
            }
        }
        // Incidents no deployment caused: a dependency, load, a certificate.
        if self.rng.chance(0.004 * self.services[s].fragility) {
            let seconds = self.rng.range(0, 86_399);
            let at = self.at(day, seconds);
            self.incident(s, "production", at, None, false);
        }
        if working && self.rng.chance(0.01) {
            let seconds = self.rng.range(8 * 3600, 20 * 3600);
            let at = self.at(day, seconds);
            self.incident(s, "staging", at, None, false);
        }
    }

    /// One pull request, from its commits to staging, merged at `merged_at`.
    fn change(&mut self, s: usize, merged_at: DateTime<Utc>) {
        let team = self.services[s].team;
        let author = *self.rng.pick(&self.teams[team].members);
        let author_id = self.user(author);
        let repo = self.services[s].repo.clone();
        self.services[s].pr_number += 1;
        let number = self.services[s].pr_number;
        let pr_url = format!("https://git.example.com/{repo}/pull/{number}");
        let opened = merged_at - Duration::seconds(self.rng.skewed(1_800, 50 * 3600));
        // Commits: authored before the pull request opened, pushed soon after.
        let n_commits = 1 + self.rng.poisson(1.0).min(6) as usize;
        let mut commits = Vec::new();
        let mut authored = opened - Duration::seconds(self.rng.skewed(600, 20 * 3600));
        for _ in 0..n_commits {
            let sha = self.rng.hex(40);
            let pushed = authored + Duration::seconds(self.rng.range(30, 1_200));
            let message = format!("{} {}", self.rng.pick(&["Fix", "Add", "Refactor", "Tidy", "Speed up"]), {
                *self.rng.pick(&["validation", "retry logic", "metrics", "the handler", "tests", "logging", "caching"])
            });
            self.emit(
                pushed,
                "commit.pushed",
                &author_id,
                pr_url.clone(),
                json!({
                    "repo": repo, "sha": sha, "author": author_id,
                    "authoredAt": authored.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "branch": format!("feature/{number}"), "message": message,
                }),
            );
            commits.push(Commit { sha, authored_at: authored });
            authored = (authored + Duration::seconds(self.rng.skewed(120, 4 * 3600))).min(opened);
        }
        self.emit(
            opened,
            "change.opened",
            &author_id,
            pr_url.clone(),
            json!({
                "repo": repo, "number": number, "author": author_id,
                "title": format!("{} #{number}", self.services[s].name), "targetBranch": "main", "url": pr_url,
            }),
        );
        // Reviews between opening and merging; the last one approves.
        let span = (merged_at - opened).num_seconds().max(2);
        let reviewer = self.colleague(team, author);
        let reviewer_id = self.user(reviewer);
        if self.rng.chance(0.2) {
            let t = opened + Duration::seconds(self.rng.range(1, span / 2));
            self.emit(
                t,
                "change.reviewed",
                &reviewer_id,
                pr_url.clone(),
                json!({
                    "repo": repo, "number": number, "reviewer": reviewer_id, "state": "changes_requested",
                    "author": author_id,
                }),
            );
        }
        let t = opened + Duration::seconds(self.rng.range(span / 2, span - 1));
        self.emit(
            t,
            "change.reviewed",
            &reviewer_id,
            pr_url.clone(),
            json!({
                "repo": repo, "number": number, "reviewer": reviewer_id, "state": "approved", "author": author_id,
            }),
        );
        if self.rng.chance(0.25) {
            let others: Vec<usize> =
                self.teams[team].members.iter().copied().filter(|&m| m != author && m != reviewer).collect();
            let other = *self.rng.pick(&others);
            let other_id = self.user(other);
            let t = opened + Duration::seconds(self.rng.range(1, span - 1));
            self.emit(
                t,
                "change.reviewed",
                &other_id,
                pr_url.clone(),
                json!({
                    "repo": repo, "number": number, "reviewer": other_id, "state": "commented", "author": author_id,
                }),
            );
        }
        let merge_sha = self.rng.hex(40);
        let commit_refs: Vec<Value> = commits.iter().map(Self::commit_ref).collect();
        self.emit(
            merged_at,
            "change.merged",
            &author_id,
            pr_url,
            json!({
                "repo": repo, "number": number, "author": author_id, "mergedBy": reviewer_id, "mergeSha": merge_sha,
                "commits": commit_refs, "targetBranch": "main",
            }),
        );
        self.services[s].merged.extend(commits);
        self.pipeline(s, merged_at, &merge_sha, false);
    }

    /// CI on a merge commit, then staging (or, for a hotfix, nothing more:
    /// the caller deploys it). Returns the artifact when one was published.
    fn pipeline(&mut self, s: usize, merged_at: DateTime<Utc>, sha: &str, hotfix: bool) -> Option<Artifact> {
        let name = self.services[s].name.clone();
        let pipeline = format!("{name}/main");
        let mut t = merged_at + Duration::seconds(self.rng.range(20, 180));
        // Builds: some fail (flaky or broken) and are re-run.
        let mut attempts = 0;
        let digest = loop {
            attempts += 1;
            self.services[s].runs += 1;
            let run_id = format!("{}", 100_000 + self.services[s].runs);
            let source = format!("https://ci.example.com/{pipeline}/runs/{run_id}");
            self.emit(
                t,
                "build.started",
                "ci-bot",
                source.clone(),
                json!({
                    "pipeline": pipeline, "runId": run_id, "sha": sha,
                }),
            );
            t += Duration::seconds(self.rng.skewed(150, 1_800));
            if attempts < 3 && self.rng.chance(if hotfix { 0.03 } else { 0.07 }) {
                self.emit(
                    t,
                    "build.finished",
                    "ci-bot",
                    source,
                    json!({
                        "pipeline": pipeline, "runId": run_id, "sha": sha, "outcome": "failure",
                    }),
                );
                t += Duration::seconds(self.rng.range(300, 3_600));
                continue;
            }
            let digest = format!("sha256:{}", self.rng.hex(64));
            self.emit(
                t,
                "build.finished",
                "ci-bot",
                source,
                json!({
                    "pipeline": pipeline, "runId": run_id, "sha": sha, "outcome": "success", "artifact": digest,
                }),
            );
            break digest;
        };
        let source = format!("https://ci.example.com/{pipeline}/runs/{}", 100_000 + self.services[s].runs);
        let mut green = true;
        for (suite, kind, size) in [("unit", "unit", 400), ("integration", "integration", 80)] {
            t += Duration::seconds(self.rng.range(60, 900));
            let failed = if self.rng.chance(0.025) { self.rng.range(1, 4) } else { 0 };
            green &= failed == 0;
            let (passed, skipped) = (size + self.rng.range(0, size / 4), self.rng.range(0, 5));
            self.emit(
                t,
                "tests.finished",
                "ci-bot",
                source.clone(),
                json!({
                    "artifact": digest, "suite": suite, "kind": kind, "passed": passed,
                    "failed": failed, "skipped": skipped,
                    "outcome": if failed == 0 { "success" } else { "failure" },
                }),
            );
        }
        for (scanner, kind) in [("trivy", "image"), ("semgrep", "sast")] {
            t += Duration::seconds(self.rng.range(30, 300));
            let critical = i64::from(self.rng.chance(0.01));
            let (high, medium, low) = (self.rng.skewed(0, 4), self.rng.skewed(0, 12), self.rng.skewed(0, 30));
            self.emit(
                t,
                "scan.finished",
                "ci-bot",
                source.clone(),
                json!({
                    "artifact": digest, "scanner": scanner, "kind": kind, "critical": critical,
                    "high": high, "medium": medium, "low": low,
                }),
            );
            green &= critical == 0;
        }
        if !green {
            // Not published: its commits go out with the next artifact.
            return None;
        }
        let service = &mut self.services[s];
        let version = if hotfix {
            service.patch += 1;
            format!("1.{}.{}", service.minor, service.patch)
        } else {
            service.minor += 1;
            service.patch = 0;
            format!("1.{}.0", service.minor)
        };
        let commits = if hotfix {
            (service.merged.len() - 1, service.merged.len())
        } else {
            (service.in_production.min(service.merged.len()), service.merged.len())
        };
        let commit_refs: Vec<Value> = service.merged[commits.0..commits.1].iter().map(Self::commit_ref).collect();
        t += Duration::seconds(self.rng.range(10, 120));
        self.emit(
            t,
            "artifact.published",
            "ci-bot",
            source,
            json!({
                "artifact": digest, "service": name, "version": version, "commits": commit_refs,
            }),
        );
        let artifact = Artifact { digest, version, staged_at: t, commits };
        if hotfix {
            return Some(artifact);
        }
        self.staging(s, artifact, t);
        None
    }

    /// Deploy an artifact to staging and test it there.
    fn staging(&mut self, s: usize, mut artifact: Artifact, at: DateTime<Utc>) {
        let name = self.services[s].name.clone();
        let mut t = at + Duration::seconds(self.rng.range(60, 600));
        for attempt in 0..2 {
            self.services[s].deployments += 1;
            let id = format!("{name}-stg-{}", self.services[s].deployments);
            let source = format!("https://deploy.example.com/{name}/staging/{id}");
            let data = json!({
                "deploymentId": id, "service": name, "environment": "staging", "artifact": artifact.digest,
                "version": artifact.version, "strategy": "rolling",
            });
            self.emit(t, "deployment.started", "deploy-bot", source.clone(), data.clone());
            t += Duration::seconds(self.rng.range(60, 480));
            if attempt == 0 && self.rng.chance(0.03) {
                self.emit(t, "deployment.failed", "deploy-bot", source, data);
                t += Duration::seconds(self.rng.range(300, 1_800));
                continue;
            }
            self.emit(t, "deployment.succeeded", "deploy-bot", source.clone(), data);
            let mut passed = true;
            for (suite, kind) in [("smoke", "smoke"), ("e2e", "e2e")] {
                t += Duration::seconds(self.rng.range(120, 1_200));
                let failed = if self.rng.chance(0.02) { self.rng.range(1, 3) } else { 0 };
                passed &= failed == 0;
                let passed = self.rng.range(20, 120);
                self.emit(
                    t,
                    "tests.finished",
                    "ci-bot",
                    source.clone(),
                    json!({
                        "artifact": artifact.digest, "suite": format!("{name}-{suite}"), "kind": kind,
                        "passed": passed, "failed": failed, "skipped": 0,
                        "outcome": if failed == 0 { "success" } else { "failure" },
                    }),
                );
            }
            if passed {
                artifact.staged_at = t;
                self.services[s].staged.push(artifact);
            }
            return;
        }
    }

    /// A production deployment of the newest artifact that passed staging
    /// before `at`, if there is one newer than production's.
    fn production_deployment(&mut self, s: usize, at: DateTime<Utc>) {
        // One production deployment at a time, and only inside the window.
        let planned = at;
        let at = at.max(self.services[s].prod_busy_until + Duration::seconds(300));
        if at.date_naive() != planned.date_naive() || at.time() >= chrono::NaiveTime::MIN + Duration::hours(16) {
            return;
        }
        let Some(pos) = self.services[s].staged.iter().rposition(|a| a.staged_at < at) else {
            return;
        };
        let artifact = self.services[s].staged[pos].clone();
        self.services[s].staged.drain(..=pos);
        let team = self.services[s].team;
        // Production is deployed by its seniors (the environment-access
        // policy), approved by the other one.
        let seniors: Vec<usize> = self.teams[team].members.iter().copied().take(2).collect();
        let deployer = *self.rng.pick(&seniors);
        let deployer_id = self.user(deployer);
        let approver = self.approver(team, deployer);
        let approver_id = self.user(approver);
        let name = self.services[s].name.clone();
        // Approved after the artifact reached staging, before the deployment.
        let earliest = (artifact.staged_at + Duration::seconds(60)).min(at - Duration::seconds(60));
        let mut t = (at - Duration::seconds(self.rng.range(300, 3_600))).max(earliest);
        self.emit(
            t,
            "approval.granted",
            &approver_id,
            format!("https://deploy.example.com/{name}/approvals"),
            json!({
                "approver": approver_id, "scope": "deployment", "service": name, "environment": "production",
                "artifact": artifact.digest,
            }),
        );
        // A schema change goes out first (expand), and is contracted a week on.
        if self.rng.chance(0.04) {
            self.services[s].migrations += 1;
            let migration = format!("{:04}_{name}_schema", self.services[s].migrations);
            let tech_lead = self.user(self.teams[team].members[0]);
            let lead_approves = if tech_lead == deployer_id { approver_id.clone() } else { tech_lead };
            t += Duration::seconds(self.rng.range(60, 600));
            self.emit(
                t,
                "approval.granted",
                &lead_approves,
                format!("https://deploy.example.com/{name}/approvals"),
                json!({"approver": lead_approves, "scope": "migration", "service": name, "environment": "production",
                       "changeId": migration}),
            );
            // The expand step reaches production after its approval and
            // before the deployment that needs it.
            let expand_at = (t + Duration::seconds(120)).min(at - Duration::seconds(30)).max(t);
            for (env, when) in [("staging", t - Duration::seconds(3_600)), ("production", expand_at)] {
                self.emit(
                    when,
                    "migration.applied",
                    &deployer_id,
                    format!("https://deploy.example.com/{name}/migrations"),
                    json!({"service": name, "environment": env, "name": migration, "phase": "expand"}),
                );
            }
            let later = t + Duration::days(7) + Duration::seconds(self.rng.range(0, 86_400));
            self.emit(
                later,
                "migration.applied",
                &deployer_id,
                format!("https://deploy.example.com/{name}/migrations"),
                json!({"service": name, "environment": "production", "name": migration, "phase": "contract"}),
            );
        }
        t = at;
        let fragility = self.services[s].fragility;
        // Attempts that fail outright (a bad config, a failed canary) are
        // retried once; those are not deployments.
        for attempt in 0..2 {
            self.services[s].deployments += 1;
            let id = format!("{name}-prod-{}", self.services[s].deployments);
            let source = format!("https://deploy.example.com/{name}/production/{id}");
            let canary = self.services[s].canary;
            let mut data = json!({
                "deploymentId": id, "service": name, "environment": "production", "artifact": artifact.digest,
                "version": artifact.version, "strategy": if canary { "canary" } else { "rolling" },
            });
            // Some deployment tools list the commits they carry; for the
            // others the ledger finds them through the artifact.
            if self.rng.chance(0.3) {
                let (from, to) = artifact.commits;
                let refs: Vec<Value> = self.services[s].merged[from..to].iter().map(Self::commit_ref).collect();
                data["commits"] = Value::Array(refs);
            }
            self.emit(t, "deployment.started", &deployer_id, source.clone(), data.clone());
            let fails = attempt == 0 && self.rng.chance(0.035 * fragility);
            if canary {
                t += Duration::seconds(self.rng.range(600, 1_800));
                let (rate, verdict) = if fails && self.rng.chance(0.6) {
                    (0.02 + self.rng.unit() * 0.05, "fail")
                } else {
                    (self.rng.unit() * 0.008, "pass")
                };
                let p95 = self.rng.range(120, 420);
                self.emit(
                    t,
                    "canary.analyzed",
                    "canary-bot",
                    source.clone(),
                    json!({
                        "deploymentId": id, "errorRate": (rate * 10_000.0).round() / 10_000.0,
                        "p95LatencyMs": p95, "verdict": verdict, "service": name,
                        "environment": "production",
                    }),
                );
            }
            t += Duration::seconds(self.rng.range(120, 900));
            if fails {
                self.emit(t, "deployment.failed", &deployer_id, source, data);
                t += Duration::seconds(self.rng.range(600, 2_400));
                // The retry, too, only inside the window.
                if t.time() >= chrono::NaiveTime::MIN + Duration::hours(16) || t.date_naive() != planned.date_naive() {
                    break;
                }
                continue;
            }
            self.emit(t, "deployment.succeeded", &deployer_id, source, data);
            self.services[s].in_production = self.services[s].in_production.max(artifact.commits.1);
            let previous = self.services[s].prod_version.replace(artifact.version.clone());
            self.services[s].prod_busy_until = t;
            self.aftermath(s, &id, &artifact.version, previous, t, fragility);
            return;
        }
        self.services[s].prod_busy_until = t;
    }

    /// What may follow a production deployment: a rollback, an incident it
    /// is named as the cause of, or one it is not named in.
    fn aftermath(&mut self, s: usize, id: &str, version: &str, previous: Option<String>, at: DateTime<Utc>, f: f64) {
        let roll = self.rng.unit();
        let name = self.services[s].name.clone();
        if roll < 0.02 * f {
            if let Some(previous) = previous {
                let t = at + Duration::seconds(self.rng.skewed(300, 4 * 3600));
                let actor = self.user(self.teams[self.services[s].team].members[2]);
                self.emit(
                    t,
                    "deployment.rolledback",
                    &actor,
                    format!("https://deploy.example.com/{name}/production/{id}"),
                    json!({"deploymentId": id, "service": name, "environment": "production", "fromVersion": version,
                           "toVersion": previous, "reason": "error rate above the SLO after release"}),
                );
                self.services[s].prod_version = Some(previous);
                self.services[s].prod_busy_until = t;
            }
        } else if roll < 0.05 * f {
            let t = at + Duration::seconds(self.rng.skewed(600, 12 * 3600));
            self.incident(s, "production", t, Some(id.to_owned()), true);
        } else if roll < 0.07 * f {
            // Not named as caused by it: attributed only through the window.
            let t = at + Duration::seconds(self.rng.skewed(900, 40 * 3600));
            self.incident(s, "production", t, None, true);
        }
    }

    /// An incident: opened, then resolved, or fixed by an emergency hotfix
    /// and then resolved; a few stay open.
    fn incident(&mut self, s: usize, env: &str, at: DateTime<Utc>, caused_by: Option<String>, may_hotfix: bool) {
        self.services[s].incidents += 1;
        let name = self.services[s].name.clone();
        let team = self.services[s].team;
        let id = format!("INC-{}-{}", name.to_uppercase(), self.services[s].incidents);
        let severity = *self.rng.pick(&["sev1", "sev2", "sev2", "sev3", "sev3", "sev3"]);
        let which = 2 + self.rng.range(0, 1) as usize;
        let on_call = self.user(self.teams[team].members[which]);
        let source = format!("https://pager.example.com/incidents/{id}");
        let mut data = json!({"incidentId": id, "service": name, "environment": env, "severity": severity});
        if let Some(cause) = &caused_by {
            data["causedBy"] = json!(cause);
        }
        self.emit(at, "incident.opened", &on_call, source.clone(), data.clone());
        if self.rng.chance(0.03) {
            return; // still open
        }
        let mut resolved = at + Duration::seconds(self.rng.skewed(900, 30 * 3600));
        if may_hotfix && env == "production" && self.rng.chance(0.45) {
            let fixes = if self.rng.chance(0.5) { caused_by.clone().unwrap_or_else(|| id.clone()) } else { id.clone() };
            let delay = Duration::seconds(self.rng.range(1_200, 3 * 3600));
            if let Some(done) = self.hotfix(s, at + delay, &fixes) {
                resolved = done + Duration::seconds(self.rng.range(300, 3_600));
            }
        }
        self.emit(resolved, "incident.resolved", &on_call, source, data);
    }

    /// An emergency fix straight to production (bypassing staging) with a
    /// tech lead's approval and a rollback plan. Returns when it went live.
    fn hotfix(&mut self, s: usize, at: DateTime<Utc>, fixes: &str) -> Option<DateTime<Utc>> {
        let team = self.services[s].team;
        let lead = self.teams[team].members[0];
        let author = self.teams[team].members[1 + self.rng.range(0, 3) as usize];
        let author_id = self.user(author);
        let lead_id = self.user(lead);
        let repo = self.services[s].repo.clone();
        let name = self.services[s].name.clone();
        self.services[s].pr_number += 1;
        let number = self.services[s].pr_number;
        let pr_url = format!("https://git.example.com/{repo}/pull/{number}");
        let sha = self.rng.hex(40);
        let authored = at;
        self.emit(
            at + Duration::seconds(60),
            "commit.pushed",
            &author_id,
            pr_url.clone(),
            json!({
                "repo": repo, "sha": sha, "author": author_id,
                "authoredAt": authored.to_rfc3339_opts(SecondsFormat::Secs, true),
                "branch": format!("hotfix/{number}"), "message": format!("Hotfix for {fixes}"),
            }),
        );
        let opened = at + Duration::seconds(self.rng.range(120, 600));
        self.emit(
            opened,
            "change.opened",
            &author_id,
            pr_url.clone(),
            json!({
                "repo": repo, "number": number, "author": author_id, "title": format!("Hotfix: {fixes}"),
                "targetBranch": "main", "url": pr_url,
            }),
        );
        let merged_at = opened + Duration::seconds(self.rng.range(300, 1_800));
        self.emit(
            merged_at - Duration::seconds(60),
            "change.reviewed",
            &lead_id,
            pr_url.clone(),
            json!({
                "repo": repo, "number": number, "reviewer": lead_id, "state": "approved", "author": author_id,
            }),
        );
        let merge_sha = self.rng.hex(40);
        let commit = Commit { sha, authored_at: authored };
        self.emit(
            merged_at,
            "change.merged",
            &author_id,
            pr_url,
            json!({
                "repo": repo, "number": number, "author": author_id, "mergedBy": lead_id, "mergeSha": merge_sha,
                "commits": [Self::commit_ref(&commit)], "targetBranch": "main",
            }),
        );
        self.services[s].merged.push(commit);
        let artifact = self.pipeline(s, merged_at, &merge_sha, true)?;
        let mut t = artifact.staged_at + Duration::seconds(self.rng.range(120, 900));
        self.emit(
            t,
            "approval.granted",
            &lead_id,
            format!("https://deploy.example.com/{name}/approvals"),
            json!({
                "approver": lead_id, "scope": "emergency", "service": name, "environment": "production",
                "artifact": artifact.digest, "comment": format!("Emergency fix for {fixes}"),
            }),
        );
        t += Duration::seconds(self.rng.range(60, 600));
        self.services[s].deployments += 1;
        let id = format!("{name}-prod-{}", self.services[s].deployments);
        let source = format!("https://deploy.example.com/{name}/production/{id}");
        let data = json!({
            "deploymentId": id, "service": name, "environment": "production", "artifact": artifact.digest,
            "version": artifact.version, "strategy": "rolling", "emergency": true, "fixes": fixes,
            "rollbackPlan": format!("redeploy {}", self.services[s].prod_version.clone().unwrap_or_default()),
        });
        // A senior deploys it (the environment-access policy): the author
        // when a senior, else the team's other senior.
        let deployer_id = if author == self.teams[team].members[1] {
            author_id.clone()
        } else {
            self.user(self.teams[team].members[1])
        };
        self.emit(t, "deployment.started", &deployer_id, source.clone(), data.clone());
        t += Duration::seconds(self.rng.range(120, 600));
        self.emit(t, "deployment.succeeded", &deployer_id, source, data);
        // Artifacts staged before the fix do not contain it: deploying one
        // later would undo the fix, so they are not deployed.
        let fixed_at = artifact.staged_at;
        self.services[s].staged.retain(|a| a.staged_at > fixed_at);
        self.services[s].prod_version = Some(artifact.version);
        self.services[s].prod_busy_until = self.services[s].prod_busy_until.max(t);
        Some(t)
    }

    /// Infrastructure changes: planned, applied to staging, approved for
    /// production by DevOps, applied there the next working day.
    fn simulate_infra(&mut self, day: u32, working: bool) {
        if !working || self.devops.is_empty() {
            return;
        }
        let changes = self.rng.poisson(0.2 + self.services.len() as f64 / 40.0).min(20);
        for _ in 0..changes {
            self.infra_changes += 1;
            let change_id = format!("INFRA-{}", self.infra_changes);
            let tool = *self.rng.pick(&["terraform", "terraform", "kubernetes", "pulumi", "ansible"]);
            let engineer = *self.rng.pick(&self.devops);
            let engineer_id = self.user(engineer);
            let approver_pick = self.devops.iter().copied().filter(|&d| d != engineer).collect::<Vec<_>>();
            let approver = *self.rng.pick(&approver_pick);
            let approver_id = self.user(approver);
            let source = format!("https://infra.example.com/changes/{change_id}");
            let (add, change, destroy) = (self.rng.skewed(0, 12), self.rng.skewed(0, 8), self.rng.skewed(0, 3));
            let seconds = self.rng.range(9 * 3600, 14 * 3600);
            let mut t = self.at(day, seconds);
            for env in ["staging", "production"] {
                self.emit(
                    t,
                    "infra.planned",
                    &engineer_id,
                    source.clone(),
                    json!({
                        "changeId": change_id, "tool": tool, "environment": env, "add": add, "change": change,
                        "destroy": destroy, "outcome": "success",
                    }),
                );
                t += Duration::seconds(self.rng.range(600, 7_200));
                if env == "production" {
                    self.emit(
                        t,
                        "approval.granted",
                        &approver_id,
                        source.clone(),
                        json!({
                            "approver": approver_id, "scope": "infra", "environment": env, "changeId": change_id,
                        }),
                    );
                    t += Duration::seconds(self.rng.range(300, 3_600));
                }
                let ok = !self.rng.chance(0.03);
                self.emit(
                    t,
                    "infra.applied",
                    &engineer_id,
                    source.clone(),
                    json!({
                        "changeId": change_id, "tool": tool, "environment": env, "add": add, "change": change,
                        "destroy": destroy, "outcome": if ok { "success" } else { "failure" },
                    }),
                );
                if !ok {
                    break;
                }
                t += Duration::seconds(self.rng.range(20 * 3600, 28 * 3600));
            }
        }
    }

    fn simulate_flags(&mut self, day: u32, working: bool) {
        let n = self.rng.poisson(if working { 0.5 + self.services.len() as f64 / 25.0 } else { 0.2 }).min(30);
        for _ in 0..n {
            let flag = *self.rng.pick(FLAGS);
            let env = *self.rng.pick(&["staging", "production"]);
            let on = self.rng.chance(0.6);
            let team = self.rng.range(0, self.teams.len() as i64 - 1) as usize;
            let member = *self.rng.pick(&self.teams[team].members);
            let actor = self.user(member);
            let seconds = self.rng.range(8 * 3600, 18 * 3600);
            let t = self.at(day, seconds);
            self.emit(
                t,
                "flag.changed",
                &actor,
                format!("https://flags.example.com/{flag}"),
                json!({
                    "flag": flag, "environment": env, "from": !on, "to": on,
                }),
            );
        }
    }

    /// Move every event before `until` to the output, in time order.
    fn release(&mut self, until: DateTime<Utc>) {
        while let Some(Reverse(next)) = self.pending.peek() {
            if next.at >= until {
                break;
            }
            if let Some(Reverse(p)) = self.pending.pop() {
                self.ready.push_back(p.event);
            }
        }
    }
}

impl Iterator for Generator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                self.emitted += 1;
                return Some(event);
            }
            if self.day < self.config.days {
                let day = self.day;
                self.floor = (self.at(day, 0) - Duration::hours(LOOKBACK_HOURS)).max(self.start);
                self.simulate(day);
                self.day += 1;
                // Later days place nothing before their own lookback.
                let safe = (self.at(self.day, 0) - Duration::hours(LOOKBACK_HOURS)).max(self.start);
                let until = if self.day == self.config.days { self.end } else { safe };
                self.release(until);
            } else if self.pending.is_empty() {
                return None;
            } else {
                let end = self.end;
                self.release(end);
                self.pending.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::{Author, EventData, NewEvent};

    fn small() -> GenerateConfig {
        GenerateConfig { services: 6, days: 30, seed: 7, ..GenerateConfig::default() }
    }

    #[test]
    fn the_same_seed_gives_the_same_history() {
        let a: Vec<Value> = Generator::new(small()).unwrap().collect();
        let b: Vec<Value> = Generator::new(small()).unwrap().collect();
        assert_eq!(a, b);
        let c: Vec<Value> = Generator::new(GenerateConfig { seed: 8, ..small() }).unwrap().collect();
        assert_ne!(a, c);
    }

    #[test]
    fn every_event_is_valid_in_time_order_and_inside_the_history() {
        let g = Generator::new(small()).unwrap();
        let (start, end) = (g.start, g.end);
        let mut last = start;
        let mut ids = std::collections::HashSet::new();
        let mut kinds = std::collections::BTreeMap::<String, usize>::new();
        for raw in g {
            let event = NewEvent::parse(raw.clone(), Author::Client).unwrap_or_else(|e| panic!("{e}: {raw}"));
            assert!(event.occurred_at >= last, "out of order: {raw}");
            assert!(event.occurred_at >= start && event.occurred_at < end, "outside the history: {raw}");
            last = event.occurred_at;
            assert!(ids.insert(event.id), "duplicate id: {raw}");
            *kinds.entry(event.event_type.to_string()).or_default() += 1;
            if let EventData::DeploymentSucceeded(d) = &event.typed {
                if d.environment.as_str() == "production" && !d.emergency {
                    let local = event.occurred_at.time();
                    assert!(local.format("%H:%M").to_string().as_str() >= "09:00", "{raw}");
                }
            }
        }
        for kind in [
            "commit.pushed",
            "change.opened",
            "change.reviewed",
            "change.merged",
            "build.started",
            "build.finished",
            "tests.finished",
            "scan.finished",
            "artifact.published",
            "approval.granted",
            "deployment.started",
            "deployment.succeeded",
            "deployment.failed",
            "incident.opened",
            "incident.resolved",
            "infra.planned",
            "infra.applied",
            "flag.changed",
        ] {
            assert!(kinds.get(kind).copied().unwrap_or(0) > 0, "no {kind} in {kinds:?}");
        }
    }

    /// Given a generated year, production is deployed by seniors (the
    /// environment-access policy), regular deployments start and retry
    /// inside the 09:00-16:00 window, approvals follow staging, and a
    /// comment never follows an approval by the same reviewer.
    #[test]
    fn the_history_keeps_the_release_process() {
        let config = GenerateConfig { services: 10, days: 120, seed: 5, ..GenerateConfig::default() };
        let g = Generator::new(config).unwrap();
        let directory = g.directory();
        let seniors: std::collections::HashSet<String> = directory
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["parents"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["id"] == "SeniorEngineer" || p["id"] == "DevOps"))
            })
            .map(|e| e["uid"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(!seniors.is_empty());
        let mut staged: std::collections::HashMap<String, DateTime<Utc>> = Default::default();
        let mut approvals = Vec::new();
        let mut reviews: std::collections::HashMap<(String, u64, String), String> = Default::default();
        let mut checked = 0;
        for raw in g {
            let event = NewEvent::parse(raw.clone(), Author::Client).unwrap();
            match &event.typed {
                EventData::DeploymentStarted(d)
                | EventData::DeploymentSucceeded(d)
                | EventData::DeploymentFailed(d)
                    if d.environment.as_str() == "production" =>
                {
                    assert!(seniors.contains(event.actor.as_str()), "not deployed by a senior: {raw}");
                    if matches!(event.typed, EventData::DeploymentStarted(_)) && !d.emergency {
                        let hhmm = event.occurred_at.format("%H:%M").to_string();
                        assert!(("09:00".."16:00").contains(&hhmm.as_str()), "outside the window: {raw}");
                    }
                    checked += 1;
                }
                EventData::DeploymentSucceeded(d) if d.environment.as_str() == "staging" => {
                    staged.entry(d.artifact.as_str().to_owned()).or_insert(event.occurred_at);
                }
                EventData::ApprovalGranted(a) if a.scope == crate::event::data::ApprovalScope::Deployment => {
                    if let Some(artifact) = &a.artifact {
                        approvals.push((artifact.as_str().to_owned(), event.occurred_at, raw.clone()));
                    }
                }
                EventData::ChangeReviewed(r) => {
                    let key = (r.repo.as_str().to_owned(), r.number, r.reviewer.as_str().to_owned());
                    let state = serde_json::to_value(r.state).unwrap().as_str().unwrap().to_owned();
                    if let Some(before) = reviews.get(&key) {
                        assert!(!(before == "approved" && state == "commented"), "a comment after an approval: {raw}");
                    }
                    reviews.insert(key, state);
                }
                _ => {}
            }
        }
        assert!(checked > 100, "{checked}");
        for (artifact, at, raw) in approvals {
            let staged_at = staged.get(&artifact).unwrap_or_else(|| panic!("approved before staging: {raw}"));
            assert!(at > *staged_at, "approved before staging: {raw}");
        }
    }

    #[test]
    fn a_larger_history_has_every_kind_of_failure() {
        let g = Generator::new(GenerateConfig { services: 20, days: 90, seed: 3, ..GenerateConfig::default() });
        let events: Vec<Value> = g.unwrap().collect();
        let has = |pred: &dyn Fn(&Value) -> bool| events.iter().any(pred);
        assert!(has(&|e| e["type"] == "deployment.rolledback"));
        assert!(has(&|e| e["type"] == "canary.analyzed" && e["data"]["verdict"] == "fail"));
        assert!(has(&|e| e["type"] == "incident.opened" && e["data"]["causedBy"].is_string()));
        assert!(has(&|e| e["type"] == "incident.opened" && e["data"]["causedBy"].is_null()));
        assert!(has(&|e| e["type"] == "deployment.succeeded" && e["data"]["emergency"] == true));
        assert!(has(&|e| e["type"] == "deployment.succeeded" && e["data"]["commits"].is_array()));
        assert!(has(&|e| e["type"] == "migration.applied" && e["data"]["phase"] == "contract"));
        assert!(has(&|e| e["type"] == "build.finished" && e["data"]["outcome"] == "failure"));
    }

    #[test]
    fn the_directory_names_every_service_and_actor() {
        let g = Generator::new(small()).unwrap();
        let directory = g.directory();
        let entities = directory.as_array().unwrap();
        let services: Vec<&str> = entities
            .iter()
            .filter(|e| e["uid"]["type"] == "Shiplog::Service")
            .map(|e| e["uid"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(services.len(), 6);
        let users: std::collections::HashSet<&str> = entities
            .iter()
            .filter(|e| e["uid"]["type"] == "Shiplog::User")
            .map(|e| e["uid"]["id"].as_str().unwrap())
            .collect();
        for event in Generator::new(small()).unwrap() {
            if let Some(s) = event["data"]["service"].as_str() {
                assert!(services.contains(&s), "{s}");
            }
            let actor = event["actor"].as_str().unwrap();
            assert!(actor.ends_with("-bot") || users.contains(actor), "{actor}");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Generator::new(GenerateConfig { services: 0, ..small() }).unwrap_err().contains("services"));
        assert!(Generator::new(GenerateConfig { days: 0, ..small() }).unwrap_err().contains("days"));
    }
}
