//! The `data` of every event type, as typed Rust values.
//!
//! These types are what the ledger knows about an event. A client may send
//! more fields than listed here: they are kept verbatim in the recorded
//! `data`, but only the fields below carry meaning for gates and metrics.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::name::{Name, Sha};

/// A commit and when it was authored: what lead time is measured from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitRef {
    pub sha: Sha,
    pub authored_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    Unit,
    Integration,
    E2e,
    Smoke,
    Performance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanKind {
    Sast,
    Dast,
    Sca,
    Image,
    Secrets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalScope {
    Deployment,
    Emergency,
    Infra,
    Merge,
    Migration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    BlueGreen,
    Canary,
    Rolling,
    Recreate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanaryVerdict {
    Pass,
    Fail,
    Inconclusive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InfraTool {
    Terraform,
    Pulumi,
    Kubernetes,
    Ansible,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationPhase {
    Expand,
    Contract,
}

/// `commit.pushed`: a commit reached a branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitPushed {
    pub repo: Name,
    pub sha: Sha,
    pub author: Name,
    pub authored_at: DateTime<Utc>,
    pub branch: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `change.opened`: a pull or merge request was opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOpened {
    pub repo: Name,
    pub number: u64,
    pub author: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `change.reviewed`: somebody reviewed a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeReviewed {
    pub repo: Name,
    pub number: u64,
    pub reviewer: Name,
    pub state: ReviewState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Name>,
}

/// `change.merged`: a change was merged, with the commits it brought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeMerged {
    pub repo: Name,
    pub number: u64,
    pub author: Name,
    pub merged_by: Name,
    pub merge_sha: Sha,
    pub commits: Vec<CommitRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<Name>,
}

/// `build.started`: a CI run began building a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildStarted {
    pub pipeline: Name,
    pub run_id: Name,
    pub sha: Sha,
}

/// `build.finished`: a CI run ended; a successful build names its artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildFinished {
    pub pipeline: Name,
    pub run_id: Name,
    pub sha: Sha,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Name>,
}

/// `tests.finished`: a test suite ran against an artifact or a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestsFinished {
    /// The artifact tested (digest or purl); give this or `sha`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Name>,
    /// The commit tested; give this or `artifact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<Sha>,
    pub suite: Name,
    pub kind: TestKind,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub outcome: Outcome,
}

/// `scan.finished`: a security scan's findings by severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanFinished {
    pub artifact: Name,
    pub scanner: Name,
    pub kind: ScanKind,
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
}

/// `artifact.published`: a built artifact, and the commits it contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactPublished {
    /// Digest (`sha256:…`) or package URL of the artifact.
    pub artifact: Name,
    pub service: Name,
    pub version: Name,
    pub commits: Vec<CommitRef>,
}

/// `approval.granted` and `approval.revoked`: an approval and its scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub approver: Name,
    pub scope: ApprovalScope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Name>,
    /// The infrastructure change or migration approved, for those scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `deployment.started`, `deployment.succeeded` and `deployment.failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub deployment_id: Name,
    pub service: Name,
    pub environment: Name,
    pub artifact: Name,
    pub version: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// An emergency deployment bypasses staging or the maintenance window.
    #[serde(default)]
    pub emergency: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_plan: Option<String>,
    /// The deployment or incident this deployment fixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixes: Option<Name>,
    /// The commits deployed; when absent, those of the artifact's
    /// `artifact.published`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commits: Option<Vec<CommitRef>>,
}

/// `deployment.rolledback`: a deployment was rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRolledBack {
    /// The deployment that was rolled back.
    pub deployment_id: Name,
    pub service: Name,
    pub environment: Name,
    pub from_version: Name,
    pub to_version: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `canary.analyzed`: the analysis of a canary deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalyzed {
    pub deployment_id: Name,
    /// Share of failed requests, as a fraction: 0.01 is 1%.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub error_rate: f64,
    #[schemars(range(min = 0.0))]
    pub p95_latency_ms: f64,
    pub verdict: CanaryVerdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Name>,
}

/// `infra.planned` and `infra.applied`: an infrastructure change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfraChange {
    pub change_id: Name,
    pub tool: InfraTool,
    pub environment: Name,
    #[serde(default)]
    pub add: u64,
    #[serde(default)]
    pub change: u64,
    #[serde(default)]
    pub destroy: u64,
    pub outcome: Outcome,
}

/// `migration.applied`: a database migration ran in an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationApplied {
    pub service: Name,
    pub environment: Name,
    pub name: Name,
    pub phase: MigrationPhase,
}

/// `incident.opened`: something is wrong in an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentOpened {
    pub incident_id: Name,
    pub service: Name,
    pub environment: Name,
    pub severity: Name,
    /// The deployment that caused it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Name>,
}

/// `incident.resolved`: the incident is over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentResolved {
    pub incident_id: Name,
    pub service: Name,
    pub environment: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Name>,
}

/// `flag.changed`: a feature flag changed value in an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagChanged {
    pub flag: Name,
    pub environment: Name,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

/// `cdevent.received`: a CDEvent with no native meaning in shiplog (or
/// without the facts its native event needs), kept whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CdeventReceived {
    /// The CDEvent's `context.type` (`dev.cdevents.ticket.created.0.2.0`).
    pub cdevent_type: Name,
    /// Its `subject.id`.
    pub subject: String,
    /// Why it was not recorded as the native event it has a counterpart in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The CDEvent as received.
    pub cdevent: serde_json::Value,
}

/// `decision.recorded` (server only): a gate decision and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecorded {
    pub decision_id: Name,
    pub decision: Name,
    pub request: serde_json::Value,
    #[serde(default)]
    pub facts: serde_json::Value,
    #[serde(default)]
    pub reasons: serde_json::Value,
    #[serde(default)]
    pub obligations: serde_json::Value,
    pub policy_set_hash: Name,
}

/// `policy.activated` (server only): a policy set went live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyActivated {
    pub policy_set_hash: Name,
    #[serde(default)]
    pub files: Vec<String>,
    /// Which set: `gates` (the default) or `access` (who may call the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Name>,
}

impl PolicyActivated {
    /// Whether this activation is of the release gates' set.
    pub fn is_gates(&self) -> bool {
        self.set.as_ref().is_none_or(|s| s.as_str() == "gates")
    }
}

/// `token.created` and `token.revoked` (server only); never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenChanged {
    /// The token's name, unique among live tokens; it becomes the
    /// `recordedBy` of what the token records.
    pub name: Name,
    /// `admin`, `pipeline` or `auditor`.
    pub role: Name,
    /// SHA-256 of the secret, in hex: how the server recognises the token.
    /// Secrets are 256 random bits, so the digest reveals nothing of them.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub secret_sha256: String,
}
