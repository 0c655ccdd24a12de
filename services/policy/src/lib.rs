//! Release gates: Cedar policies that decide whether a pipeline may deploy,
//! roll back, merge, change infrastructure, promote a canary or apply a
//! migration, from facts the ledger holds.
//!
//! This crate knows Cedar; it knows nothing of HTTP or of how facts are
//! gathered. The server builds a [`GateContext`] from the ledger, the
//! directory and its clock, and asks [`PolicyEngine::decide`].

pub mod access;
mod window;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, Schema, ValidationMode, Validator,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use window::{MaintenanceWindow, WindowError};

/// The Cedar schema the policies are validated against.
pub const SCHEMA: &str = include_str!("../../../schema/shiplog.cedarschema");

/// A file of the policy set, by name and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

/// Everything a policy engine is built from.
#[derive(Debug, Clone, Default)]
pub struct PolicySources {
    /// `*.cedar` files of the live set.
    pub policies: Vec<SourceFile>,
    /// `*.cedar` files of the shadow set (evaluated, never enforced).
    pub shadow: Vec<SourceFile>,
    /// The directory: a Cedar entities JSON file.
    pub entities: Option<SourceFile>,
}

impl PolicySources {
    /// Read `dir/*.cedar`, `dir/shadow/*.cedar` and the entities file
    /// (`entities`, or `dir/entities.json`).
    pub fn read_dir(dir: &Path, entities: Option<&Path>) -> Result<PolicySources, PolicyError> {
        let read_cedar = |dir: &Path| -> Result<Vec<SourceFile>, PolicyError> {
            let mut files = Vec::new();
            let listing = match std::fs::read_dir(dir) {
                Ok(listing) => listing,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
                Err(e) => return Err(PolicyError::Io(format!("cannot read {}: {e}", dir.display()))),
            };
            for entry in listing {
                let path = entry.map_err(|e| PolicyError::Io(e.to_string()))?.path();
                if path.extension().is_some_and(|e| e == "cedar") {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| PolicyError::Io(format!("cannot read {}: {e}", path.display())))?;
                    files.push(SourceFile { name: path.display().to_string(), text });
                }
            }
            files.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(files)
        };
        let policies = read_cedar(dir)?;
        if policies.is_empty() {
            return Err(PolicyError::Io(format!(
                "{} holds no *.cedar policy; point --policies at the policies directory",
                dir.display()
            )));
        }
        let shadow = read_cedar(&dir.join("shadow"))?;
        let entities_path = entities.map_or_else(|| dir.join("entities.json"), Path::to_owned);
        let text = std::fs::read_to_string(&entities_path).map_err(|e| {
            PolicyError::Io(format!(
                "cannot read the directory {}: {e}; give it with --entities",
                entities_path.display()
            ))
        })?;
        Ok(PolicySources {
            policies,
            shadow,
            entities: Some(SourceFile { name: entities_path.display().to_string(), text }),
        })
    }
}

/// Why a policy set was refused. Locations are `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Io(String),
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
    #[error("the directory {file} is invalid: {message}")]
    Directory { file: String, message: String },
    #[error("the Cedar schema is invalid: {0}")]
    Schema(String),
    #[error("cannot evaluate the request: {0}")]
    Request(String),
}

/// The gate actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateAction {
    Deploy,
    Rollback,
    Merge,
    ApplyInfra,
    PromoteCanary,
    ApplyMigration,
}

impl GateAction {
    pub const ALL: [GateAction; 6] = [
        GateAction::Deploy,
        GateAction::Rollback,
        GateAction::Merge,
        GateAction::ApplyInfra,
        GateAction::PromoteCanary,
        GateAction::ApplyMigration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GateAction::Deploy => "deploy",
            GateAction::Rollback => "rollback",
            GateAction::Merge => "merge",
            GateAction::ApplyInfra => "apply-infra",
            GateAction::PromoteCanary => "promote-canary",
            GateAction::ApplyMigration => "apply-migration",
        }
    }

    pub fn parse(s: &str) -> Option<GateAction> {
        GateAction::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Merges act on a repository; everything else on an environment.
    pub fn resource_type(self) -> &'static str {
        match self {
            GateAction::Merge => "Shiplog::Repository",
            _ => "Shiplog::Environment",
        }
    }
}

/// What a gate decides from: the Cedar context. Built by the server from
/// the ledger, the directory and its clock; `emergency` and `rollbackPlan`
/// alone come from the caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GateContext {
    pub service: String,
    pub artifact: String,
    pub emergency: bool,
    pub rollback_plan: bool,
    pub in_maintenance_window: bool,
    pub staging_succeeded: bool,
    pub tests_passed: bool,
    pub scanned: bool,
    pub critical_findings: i64,
    pub approved_by_other: bool,
    pub tech_lead_approval: bool,
    pub canary_analyzed: bool,
    /// Fraction of failed requests (0.01 is 1%).
    pub canary_error_rate: f64,
    pub canary_p95_latency_ms: i64,
    pub migration_phase: String,
    pub expand_in_production: bool,
    pub infra_applied_to_staging: bool,
    pub infra_reviewed_by_dev_ops: bool,
    pub infra_approved: bool,
    pub review_approved_by_other: bool,
    pub ci_tests_passed: bool,
}

impl GateContext {
    fn to_cedar_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        // Cedar has no floats: the error rate is a decimal (4 places),
        // rounded up so that rounding can never let a canary through.
        let rate = (self.canary_error_rate.max(0.0) * 10_000.0).ceil() / 10_000.0;
        value["canaryErrorRate"] = serde_json::json!({"__extn": {"fn": "decimal", "arg": format!("{rate:.4}")}});
        value
    }
}

/// One reason for a decision: a policy that determined it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub policy: String,
    pub effect: String,
    pub advice: String,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub reasons: Vec<Reason>,
    pub obligations: Vec<String>,
}

impl Decision {
    pub fn word(&self) -> &'static str {
        if self.allowed { "allow" } else { "deny" }
    }
}

/// A policy's annotations, kept beside the set.
#[derive(Debug, Clone)]
struct Meta {
    advice: String,
    obligation: Option<String>,
}

/// A validated policy set.
struct Gates {
    set: PolicySet,
    meta: HashMap<PolicyId, Meta>,
}

/// The directory as the facts need it: who is in which group, and the
/// environments' maintenance windows.
#[derive(Debug, Clone, Default)]
struct Directory {
    groups: HashMap<String, Vec<String>>,
    environments: Vec<String>,
    windows: HashMap<String, MaintenanceWindow>,
    users: Vec<String>,
    /// Service → team.
    teams: std::collections::BTreeMap<String, String>,
}

/// The entity types of requests, parsed once.
struct Types {
    user: EntityTypeName,
    action: EntityTypeName,
    environment: EntityTypeName,
    repository: EntityTypeName,
}

impl Types {
    fn new() -> Result<Types, PolicyError> {
        let name = |n: &str| EntityTypeName::from_str(n).map_err(|e| PolicyError::Schema(e.to_string()));
        Ok(Types {
            user: name("Shiplog::User")?,
            action: name("Shiplog::Action")?,
            environment: name("Shiplog::Environment")?,
            repository: name("Shiplog::Repository")?,
        })
    }
}

/// A loaded, validated policy set with its directory.
pub struct PolicyEngine {
    types: Types,
    live: Gates,
    shadow: Option<Gates>,
    schema: Schema,
    entities: Entities,
    directory: Directory,
    hash: String,
    files: Vec<String>,
}

/// `file:line:column` of a byte offset in a file's text.
fn location(file: &SourceFile, offset: usize) -> String {
    let before = file.text.get(..offset.min(file.text.len())).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{}:{line}:{column}", file.name)
}

fn first_offset(diagnostic: &dyn miette::Diagnostic) -> Option<usize> {
    diagnostic.labels().and_then(|mut labels| labels.next()).map(|l| l.offset())
}

fn invalid(file: &SourceFile, diagnostic: &dyn miette::Diagnostic, message: String) -> PolicyError {
    let location = match first_offset(diagnostic) {
        Some(offset) => location(file, offset),
        None => file.name.clone(),
    };
    let help = diagnostic.help().map(|h| format!(" ({h})")).unwrap_or_default();
    PolicyError::Invalid { location, message: format!("{message}{help}") }
}

fn parse_schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA).map(|(schema, _)| schema).map_err(|e| PolicyError::Schema(e.to_string()))
}

/// Parse, give each policy its `@id`, and validate strictly.
fn load_gates(files: &[SourceFile], schema: &Schema) -> Result<Gates, PolicyError> {
    let mut set = PolicySet::new();
    let mut meta = HashMap::new();
    let mut origin: HashMap<PolicyId, usize> = HashMap::new();
    for (index, file) in files.iter().enumerate() {
        let parsed = PolicySet::from_str(&file.text).map_err(|errors| {
            let first = errors.iter().next();
            match first {
                Some(e) => invalid(file, e, e.to_string()),
                None => PolicyError::Invalid { location: file.name.clone(), message: errors.to_string() },
            }
        })?;
        // Parsed policies are named policy0, policy1, … in file order.
        let mut policies: Vec<_> = parsed.policies().collect();
        policies
            .sort_by_key(|p| p.id().to_string().trim_start_matches("policy").parse::<usize>().unwrap_or(usize::MAX));
        for (n, policy) in policies.into_iter().enumerate() {
            let Some(id) = policy.annotation("id") else {
                return Err(PolicyError::Invalid {
                    location: file.name.clone(),
                    message: format!("policy {} of the file needs an @id(\"…\") annotation", n + 1),
                });
            };
            let at = || match file.text.find(&format!("@id({})", serde_json::Value::from(id))) {
                Some(offset) => location(file, offset),
                None => file.name.clone(),
            };
            let Some(advice) = policy.annotation("advice") else {
                return Err(PolicyError::Invalid {
                    location: at(),
                    message: format!("policy {id:?} needs an @advice(\"…\") annotation that tells a person what to do"),
                });
            };
            let id = PolicyId::new(id);
            if origin.contains_key(&id) {
                return Err(PolicyError::Invalid { location: at(), message: format!("the @id {id} is used twice") });
            }
            meta.insert(
                id.clone(),
                Meta { advice: advice.to_owned(), obligation: policy.annotation("obligation").map(str::to_owned) },
            );
            origin.insert(id.clone(), index);
            set.add(policy.new_id(id)).map_err(|e| PolicyError::Invalid { location: at(), message: e.to_string() })?;
        }
    }
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    if let Some(error) = result.validation_errors().next() {
        let file = origin.get(error.policy_id()).and_then(|i| files.get(*i));
        return Err(match file {
            Some(file) => invalid(file, error, error.to_string()),
            None => PolicyError::Invalid { location: error.policy_id().to_string(), message: error.to_string() },
        });
    }
    Ok(Gates { set, meta })
}

#[derive(Deserialize)]
struct EntityJson {
    uid: UidJson,
    #[serde(default)]
    attrs: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    parents: Vec<UidJson>,
}

#[derive(Deserialize)]
struct UidJson {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

fn load_directory(file: &SourceFile, schema: &Schema) -> Result<(Entities, Directory), PolicyError> {
    let bad = |message: String| PolicyError::Directory { file: file.name.clone(), message };
    let entities = Entities::from_json_str(&file.text, Some(schema)).map_err(|e| bad(e.to_string()))?;
    let parsed: Vec<EntityJson> = serde_json::from_str(&file.text).map_err(|e| bad(e.to_string()))?;
    let mut directory = Directory::default();
    for entity in parsed {
        match entity.uid.kind.as_str() {
            "Shiplog::User" => {
                let groups =
                    entity.parents.iter().filter(|p| p.kind == "Shiplog::Group").map(|p| p.id.clone()).collect();
                directory.groups.insert(entity.uid.id.clone(), groups);
                directory.users.push(entity.uid.id);
            }
            "Shiplog::Service" => {
                if let Some(team) = entity.attrs.get("team").and_then(|t| t.as_str()) {
                    directory.teams.insert(entity.uid.id.clone(), team.to_owned());
                }
            }
            "Shiplog::Environment" => {
                directory.environments.push(entity.uid.id.clone());
                if let Some(w) = entity.attrs.get("maintenanceWindow") {
                    let window: MaintenanceWindow = serde_json::from_value(w.clone())
                        .map_err(|e| bad(format!("environment {:?}: maintenanceWindow: {e}", entity.uid.id)))?;
                    window
                        .validate()
                        .map_err(|e| bad(format!("environment {:?}: maintenanceWindow: {e}", entity.uid.id)))?;
                    directory.windows.insert(entity.uid.id, window);
                }
            }
            _ => {}
        }
    }
    Ok((entities, directory))
}

/// SHA-256 over every policy file's (and the directory's) name and text,
/// in name order: a new directory is a new policy set too.
fn hash_files<'a>(files: impl Iterator<Item = &'a SourceFile>) -> String {
    let mut sorted: Vec<&SourceFile> = files.collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut hasher = Sha256::new();
    for f in sorted {
        let name = Path::new(&f.name).file_name().map_or_else(|| f.name.clone(), |n| n.to_string_lossy().into_owned());
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(f.text.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

impl PolicyEngine {
    /// Build an engine: the schema, the live and shadow sets (validated in
    /// strict mode), and the directory.
    pub fn load(sources: &PolicySources) -> Result<PolicyEngine, PolicyError> {
        let schema = parse_schema()?;
        let live = load_gates(&sources.policies, &schema)?;
        let shadow = if sources.shadow.is_empty() { None } else { Some(load_gates(&sources.shadow, &schema)?) };
        let (entities, directory) = match &sources.entities {
            Some(file) => load_directory(file, &schema)?,
            None => (Entities::empty(), Directory::default()),
        };
        Ok(PolicyEngine {
            types: Types::new()?,
            live,
            shadow,
            schema,
            entities,
            directory,
            hash: hash_files(sources.policies.iter().chain(sources.entities.as_ref())),
            files: sources.policies.iter().map(|f| f.name.clone()).collect(),
        })
    }

    /// SHA-256 of the live policy set.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn files(&self) -> &[String] {
        &self.files
    }

    pub fn has_shadow(&self) -> bool {
        self.shadow.is_some()
    }

    /// Whether the directory knows this person or pipeline.
    pub fn knows(&self, principal: &str) -> bool {
        self.directory.groups.contains_key(principal)
    }

    /// Whether the directory has this environment.
    pub fn knows_environment(&self, environment: &str) -> bool {
        self.directory.environments.iter().any(|e| e == environment)
    }

    /// The directory's environments.
    pub fn environments(&self) -> impl Iterator<Item = &str> {
        self.directory.environments.iter().map(String::as_str)
    }

    /// The services of a team, by the directory (empty for an unknown team).
    pub fn team_services(&self, team: &str) -> Vec<String> {
        self.directory.teams.iter().filter(|(_, t)| *t == team).map(|(s, _)| s.clone()).collect()
    }

    /// Every service the directory knows, with its team.
    pub fn service_teams(&self) -> impl Iterator<Item = (&str, &str)> {
        self.directory.teams.iter().map(|(s, t)| (s.as_str(), t.as_str()))
    }

    /// Whether the directory puts `user` in `group` (directly).
    pub fn in_group(&self, user: &str, group: &str) -> bool {
        self.directory.groups.get(user).is_some_and(|groups| groups.iter().any(|g| g == group))
    }

    /// Whether `now` is inside the environment's maintenance window; an
    /// environment without a window is always open.
    pub fn in_maintenance_window(&self, environment: &str, now: DateTime<Utc>) -> bool {
        match self.directory.windows.get(environment) {
            None => true,
            Some(window) => window.contains(now).unwrap_or(false),
        }
    }

    /// Decide with the live set; the shadow set's decision beside it, when
    /// there is one.
    pub fn decide(
        &self,
        principal: &str,
        action: GateAction,
        resource: &str,
        context: &GateContext,
    ) -> Result<(Decision, Option<Decision>), PolicyError> {
        let request = self.request(principal, action, resource, context)?;
        let live = self.evaluate(&self.live, &request);
        let shadow = self.shadow.as_ref().map(|gates| self.evaluate(gates, &request));
        Ok((live, shadow))
    }

    /// For benchmarks: the bare Cedar call (`Authorizer::is_authorized` on
    /// a request built once) for the same question `decide` answers.
    pub fn bare_authorizer(
        &self,
        principal: &str,
        action: GateAction,
        resource: &str,
        context: &GateContext,
    ) -> Result<impl Fn() -> bool + '_, PolicyError> {
        let request = self.request(principal, action, resource, context)?;
        let authorizer = Authorizer::new();
        Ok(move || {
            authorizer.is_authorized(&request, &self.live.set, &self.entities).decision() == CedarDecision::Allow
        })
    }

    fn request(
        &self,
        principal: &str,
        action: GateAction,
        resource: &str,
        context: &GateContext,
    ) -> Result<Request, PolicyError> {
        let uid = |kind: &EntityTypeName, id: &str| EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id));
        let action_uid = uid(&self.types.action, action.as_str());
        // The context is a typed GateContext, rendered with Cedar's explicit
        // extension escape for the decimal: it matches the schema by
        // construction (a test checks it against the schema), so the request
        // is built without re-validating it each time.
        let context =
            Context::from_json_value(context.to_cedar_json(), None).map_err(|e| PolicyError::Request(e.to_string()))?;
        let resource_type = if action == GateAction::Merge { &self.types.repository } else { &self.types.environment };
        Request::new(uid(&self.types.user, principal), action_uid, uid(resource_type, resource), context, None)
            .map_err(|e| PolicyError::Request(e.to_string()))
    }

    /// Whether a context passes the schema's validation for an action (what
    /// `decide` no longer checks on every call).
    pub fn check_context(&self, action: GateAction, context: &GateContext) -> Result<(), PolicyError> {
        let action_uid = EntityUid::from_str(&format!("Shiplog::Action::{}", serde_json::Value::from(action.as_str())))
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        Context::from_json_value(context.to_cedar_json(), Some((&self.schema, &action_uid)))
            .map(|_| ())
            .map_err(|e| PolicyError::Request(e.to_string()))
    }

    fn evaluate(&self, gates: &Gates, request: &Request) -> Decision {
        let response = Authorizer::new().is_authorized(request, &gates.set, &self.entities);
        let diagnostics = response.diagnostics();
        // A policy that fails to evaluate must not let anything through.
        let errors: Vec<Reason> = diagnostics
            .errors()
            .map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(inner) = e;
                Reason {
                    policy: inner.policy_id().to_string(),
                    effect: "error".into(),
                    advice: format!("the policy could not be evaluated: {e}; fix it"),
                }
            })
            .collect();
        let mut reasons: Vec<Reason> = diagnostics
            .reason()
            .map(|id| {
                let effect = gates.set.policy(id).map_or(Effect::Forbid, |p| p.effect());
                Reason {
                    policy: id.to_string(),
                    effect: if effect == Effect::Permit { "permit" } else { "forbid" }.into(),
                    advice: gates.meta.get(id).map(|m| m.advice.clone()).unwrap_or_default(),
                }
            })
            .collect();
        reasons.sort_by(|a, b| a.policy.cmp(&b.policy));
        let allowed = response.decision() == CedarDecision::Allow && errors.is_empty();
        if !errors.is_empty() {
            return Decision { allowed: false, reasons: errors, obligations: Vec::new() };
        }
        if !allowed && reasons.is_empty() {
            reasons.push(Reason {
                policy: "(none)".into(),
                effect: "forbid".into(),
                advice: "no policy permits this action; add a permit policy for it".into(),
            });
        }
        let obligations = if allowed {
            let mut o: Vec<String> =
                diagnostics.reason().filter_map(|id| gates.meta.get(id).and_then(|m| m.obligation.clone())).collect();
            o.sort();
            o.dedup();
            o
        } else {
            Vec::new()
        };
        Decision { allowed, reasons, obligations }
    }
}

/// A policy test case: `policies/tests/*.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCase {
    pub name: String,
    pub principal: String,
    pub action: GateAction,
    pub resource: String,
    #[serde(default)]
    pub context: GateContext,
    pub expect: Expectation,
}

/// What a case expects: the decision and, for a deny, exactly which gates
/// (policy ids) refuse.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub decision: String,
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
    #[serde(default)]
    pub obligations: Option<Vec<String>>,
}

/// The outcome of running policy test cases: failures, by case.
pub fn run_cases(engine: &PolicyEngine, cases: &[(String, PolicyCase)]) -> BTreeMap<String, String> {
    let mut failures = BTreeMap::new();
    for (file, case) in cases {
        let key = format!("{file}: {}", case.name);
        match engine.decide(&case.principal, case.action, &case.resource, &case.context) {
            Err(e) => {
                failures.insert(key, e.to_string());
            }
            Ok((decision, _)) => {
                let mut problems = Vec::new();
                if decision.word() != case.expect.decision {
                    problems.push(format!("expected {}, got {}", case.expect.decision, decision.word()));
                }
                if let Some(want) = &case.expect.reasons {
                    let got: Vec<&str> = decision.reasons.iter().map(|r| r.policy.as_str()).collect();
                    let mut want_sorted: Vec<&str> = want.iter().map(String::as_str).collect();
                    want_sorted.sort_unstable();
                    if got != want_sorted {
                        problems.push(format!("expected reasons {want_sorted:?}, got {got:?}"));
                    }
                }
                if let Some(want) = &case.expect.obligations {
                    if &decision.obligations != want {
                        problems.push(format!("expected obligations {want:?}, got {:?}", decision.obligations));
                    }
                }
                if !problems.is_empty() {
                    failures.insert(key, problems.join("; "));
                }
            }
        }
    }
    failures
}

/// Read every `*.json` of a tests directory: each holds an array of cases.
pub fn read_cases(dir: &Path) -> Result<Vec<(String, PolicyCase)>, PolicyError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| PolicyError::Io(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let mut cases = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| PolicyError::Io(format!("cannot read {}: {e}", path.display())))?;
        let file_cases: Vec<PolicyCase> = serde_json::from_str(&text).map_err(|e| PolicyError::Invalid {
            location: format!("{}:{}:{}", path.display(), e.line(), e.column()),
            message: e.to_string(),
        })?;
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        cases.extend(file_cases.into_iter().map(|c| (name.clone(), c)));
    }
    Ok(cases)
}
