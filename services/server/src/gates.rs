//! Release gates over HTTP: `POST /v1/decisions` and
//! `POST /v1/policies/reload`. Facts come from the ledger (a projection fed
//! by tailing the log), the directory and the server's clock; the caller
//! adds only what the ledger cannot know.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shiplog_core::event::data::ApprovalScope;
use shiplog_core::facts::{GateFacts, Subject};
use shiplog_core::{Author, NewEvent};
use shiplog_policy::{Decision, GateAction, GateContext, PolicyEngine, PolicySources};
use shiplog_store::EventStore;

use crate::events::read_body;
use crate::projections::Projections;
use crate::{ApiError, AppState, Code};

/// Where the policies come from, to load them again on reload.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub dir: PathBuf,
    pub entities: Option<PathBuf>,
}

/// The gates as the server runs them.
pub struct Gates {
    config: PolicyConfig,
    engine: RwLock<Arc<PolicyEngine>>,
    projections: Arc<Projections>,
}

/// Who the server is when it records events of its own.
const SERVER: &str = "shiplog";

impl Gates {
    /// Load and validate the policies, start feeding the facts from the log,
    /// and record the policy set's activation if it is new to the ledger.
    /// `record`: whether the ledger takes writes (not while its history is
    /// damaged).
    pub async fn start(
        config: PolicyConfig,
        store: Arc<dyn EventStore>,
        projections: Arc<Projections>,
        record: bool,
    ) -> Result<Gates, String> {
        let engine = load(&config)?;
        let gates = Gates { config, engine: RwLock::new(Arc::new(engine)), projections };
        gates.caught_up(store.as_ref()).await?;
        if record {
            let engine = gates.engine().map_err(|e| e.message)?;
            gates.record_activation(store.as_ref(), &engine, None).await?;
        }
        Ok(gates)
    }

    pub(crate) fn engine(&self) -> Result<Arc<PolicyEngine>, ApiError> {
        self.engine
            .read()
            .map(|e| Arc::clone(&e))
            .map_err(|_| ApiError::new(Code::Internal, "the policy engine is unavailable"))
    }

    /// Wait until the facts include every event committed before now.
    async fn caught_up(&self, store: &dyn EventStore) -> Result<(), String> {
        let target = *store.head().borrow();
        self.caught_up_to(target).await
    }

    /// Wait until the facts include the event at `target`.
    async fn caught_up_to(&self, target: Option<u64>) -> Result<(), String> {
        self.projections.caught_up_to(target, Duration::from_secs(10)).await
    }

    /// Record `policy.activated` unless the ledger's last activation is this
    /// very set.
    async fn record_activation(
        &self,
        store: &dyn EventStore,
        engine: &PolicyEngine,
        previous: Option<&str>,
    ) -> Result<(), String> {
        let last = self.projections.read().ok().and_then(|v| v.facts.policy_hash().map(str::to_owned));
        if last.as_deref() == Some(engine.hash()) {
            return Ok(());
        }
        let files: Vec<String> = engine
            .files()
            .iter()
            .map(|f| {
                std::path::Path::new(f).file_name().map_or_else(|| f.clone(), |n| n.to_string_lossy().into_owned())
            })
            .collect();
        let event = server_event(
            uuid::Uuid::now_v7(),
            "policy.activated",
            SERVER,
            json!({"policySetHash": engine.hash(), "files": files, "previous": previous.or(last.as_deref())}),
        )?;
        store.append(vec![event], SERVER).await.map_err(|e| e.to_string())?;
        tracing::info!(policy_set = engine.hash(), "policy set activated");
        Ok(())
    }

    /// Load the policies again; an invalid set leaves the old one serving.
    pub async fn reload(&self, store: &dyn EventStore) -> Result<String, ApiError> {
        let engine = load(&self.config).map_err(|message| {
            tracing::error!(%message, "policy reload refused; the previous policy set keeps serving");
            ApiError::new(Code::InvalidPolicy, format!("{message}; the previous policy set keeps serving"))
        })?;
        let previous = self.engine()?.hash().to_owned();
        let hash = engine.hash().to_owned();
        // Recorded first: a set that goes live is always in the ledger.
        self.caught_up(store).await.map_err(|m| ApiError::new(Code::StoreUnavailable, m))?;
        self.record_activation(store, &engine, Some(&previous)).await.map_err(|m| ApiError::new(Code::Internal, m))?;
        if let Ok(mut e) = self.engine.write() {
            *e = Arc::new(engine);
        }
        Ok(hash)
    }
}

fn load(config: &PolicyConfig) -> Result<PolicyEngine, String> {
    let sources = PolicySources::read_dir(&config.dir, config.entities.as_deref()).map_err(|e| e.to_string())?;
    PolicyEngine::load(&sources).map_err(|e| e.to_string())
}

pub(crate) fn server_event(id: uuid::Uuid, kind: &str, actor: &str, data: Value) -> Result<NewEvent, String> {
    let raw = json!({
        "id": id.to_string(),
        "type": kind,
        "occurredAt": shiplog_core::event::format_time(&Utc::now()),
        "actor": actor,
        "source": SERVER,
        "data": data,
    });
    NewEvent::parse(raw, Author::Server).map_err(|e| e.to_string())
}

/// What the gate is asked about.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// Canary figures, when none are recorded for the deployment.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanaryFigures {
    pub error_rate: f64,
    pub p95_latency_ms: f64,
}

/// The only things a caller may tell a gate.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CallerContext {
    #[serde(default)]
    pub emergency: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryFigures>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DecisionRequest {
    pub principal: String,
    pub action: String,
    #[serde(default)]
    pub resource: Resource,
    #[serde(default)]
    pub context: CallerContext,
}

fn bad(field: &str, message: String) -> ApiError {
    ApiError::new(Code::InvalidRequest, message).with("field", field)
}

fn required<'a>(value: &'a Option<String>, field: &str, action: GateAction) -> Result<&'a str, ApiError> {
    value.as_deref().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        bad(&format!("resource.{field}"), format!("resource.{field} is required to decide {}", action.as_str()))
    })
}

/// The Cedar context for a request: every fact from the ledger, the
/// directory and the clock; from the caller only `emergency`,
/// `rollbackPlan` and canary figures the ledger lacks.
fn build_context(
    engine: &PolicyEngine,
    facts: &GateFacts,
    request: &DecisionRequest,
    action: GateAction,
) -> Result<(String, GateContext), ApiError> {
    let r = &request.resource;
    let principal = request.principal.as_str();
    let mut ctx = GateContext {
        service: r.service.clone().unwrap_or_default(),
        artifact: r.artifact.clone().unwrap_or_default(),
        emergency: request.context.emergency,
        rollback_plan: request.context.rollback_plan.as_deref().is_some_and(|p| !p.trim().is_empty()),
        ..GateContext::default()
    };
    let resource = if action == GateAction::Merge {
        required(&r.repo, "repo", action)?.to_owned()
    } else {
        required(&r.environment, "environment", action)?.to_owned()
    };
    if action != GateAction::Merge && !engine.knows_environment(&resource) {
        return Err(bad(
            "resource.environment",
            format!(
                "unknown environment {resource:?}; the directory knows {}",
                engine.environments().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    ctx.in_maintenance_window = engine.in_maintenance_window(&resource, Utc::now());
    match action {
        GateAction::Deploy => {
            let artifact = required(&r.artifact, "artifact", action)?;
            let service = required(&r.service, "service", action)?;
            let subject =
                Subject { principal, service: Some(service), environment: Some(&resource), artifact: Some(artifact) };
            ctx.staging_succeeded = facts.staging_succeeded(artifact);
            ctx.tests_passed = facts.tests_passed(artifact);
            let (scanned, critical) = facts.scans(artifact);
            ctx.scanned = scanned;
            ctx.critical_findings = i64::try_from(critical).unwrap_or(i64::MAX);
            ctx.approved_by_other =
                facts.approvers(&subject, &[ApprovalScope::Deployment, ApprovalScope::Emergency]).next().is_some();
            ctx.tech_lead_approval =
                facts.approvers(&subject, &[ApprovalScope::Emergency]).any(|a| engine.in_group(a, "TechLead"));
        }
        GateAction::PromoteCanary => {
            let deployment = required(&r.deployment_id, "deploymentId", action)?;
            if let Some(c) = &request.context.canary {
                if !(c.error_rate.is_finite() && (0.0..=1.0).contains(&c.error_rate)) {
                    return Err(bad(
                        "context.canary.errorRate",
                        "errorRate must be a fraction between 0 and 1 (0.01 is 1%)".into(),
                    ));
                }
                if !(c.p95_latency_ms.is_finite() && c.p95_latency_ms >= 0.0) {
                    return Err(bad(
                        "context.canary.p95LatencyMs",
                        "p95LatencyMs must be a non-negative number".into(),
                    ));
                }
            }
            let figures = facts
                .canary(deployment)
                .or_else(|| request.context.canary.as_ref().map(|c| (c.error_rate, c.p95_latency_ms)));
            if let Some((rate, p95)) = figures {
                ctx.canary_analyzed = true;
                ctx.canary_error_rate = rate;
                ctx.canary_p95_latency_ms = p95.ceil() as i64;
            }
        }
        GateAction::ApplyMigration => {
            let service = required(&r.service, "service", action)?;
            let name = required(&r.migration, "migration", action)?;
            let phase = required(&r.phase, "phase", action)?;
            if phase != "expand" && phase != "contract" {
                return Err(bad("resource.phase", format!("resource.phase must be expand or contract, got {phase:?}")));
            }
            ctx.migration_phase = phase.to_owned();
            ctx.expand_in_production = facts.expand_in_production(service, name);
        }
        GateAction::ApplyInfra => {
            let change = required(&r.change_id, "changeId", action)?;
            ctx.infra_applied_to_staging = facts.infra_applied_to_staging(change);
            ctx.infra_reviewed_by_dev_ops =
                facts.infra_approvers(principal, change, &resource).any(|a| engine.in_group(a, "DevOps"));
            ctx.infra_approved = facts.infra_approvers(principal, change, &resource).next().is_some();
        }
        GateAction::Merge => {
            let number =
                r.number.ok_or_else(|| bad("resource.number", "resource.number is required to decide merge".into()))?;
            let sha = required(&r.sha, "sha", action)?;
            ctx.review_approved_by_other = facts.review_approved_by_other(&resource, number, principal);
            ctx.ci_tests_passed = facts.tests_passed(&sha.to_ascii_lowercase());
        }
        GateAction::Rollback => {}
    }
    Ok((resource, ctx))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShadowOutcome<'a> {
    decision: &'a str,
    reasons: &'a [shiplog_policy::Reason],
    agrees: bool,
}

/// `POST /v1/decisions`: decide, record the decision in the ledger, answer.
pub async fn decide(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.limits.max_body_bytes).await?;
    Ok(HttpResponse::Ok().json(decide_body(&state, &body, &crate::auth::recorded_by(&req)).await?))
}

/// Decide a request (its JSON body), record the decision, and return the
/// answer: the one way to decide, over REST and GraphQL.
pub(crate) async fn decide_body(state: &AppState, body: &[u8], recorded_by: &str) -> Result<Value, ApiError> {
    let gates = state.ledger.gates.as_ref().ok_or_else(|| {
        ApiError::new(Code::GatesUnavailable, "no policies are loaded; start shiplog with --policies DIR")
    })?;
    state.ledger.require_intact()?;
    let request: DecisionRequest = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
        .map_err(|e| {
            if e.inner().is_syntax() || e.inner().is_eof() {
                return ApiError::new(Code::InvalidJson, format!("the request body is not valid JSON: {}", e.inner()));
            }
            let field = e.path().to_string();
            bad(&field, format!("invalid decision request at {field}: {}", e.inner()))
        })?;
    let action = GateAction::parse(&request.action).ok_or_else(|| {
        let valid: Vec<&str> = GateAction::ALL.iter().map(|a| a.as_str()).collect();
        bad("action", format!("unknown action {:?}; valid actions are: {}", request.action, valid.join(", ")))
    })?;
    let engine = gates.engine()?;
    if !engine.knows(&request.principal) {
        return Err(ApiError::new(
            Code::UnknownPrincipal,
            format!("{:?} is not in the directory; add the person or pipeline to the entities file", request.principal),
        )
        .with("field", "principal"));
    }
    // Facts are what clients recorded before this request; the server's own
    // events (other decisions) hold none, so there is no waiting for them.
    let facts_up_to = state.ledger.client_appends.load(std::sync::atomic::Ordering::SeqCst).checked_sub(1);
    gates.caught_up_to(facts_up_to).await.map_err(|m| ApiError::new(Code::StoreUnavailable, m))?;
    let (resource, context) = {
        let views = gates.projections.read()?;
        build_context(&engine, &views.facts, &request, action)?
    };
    let (decision, shadow) = engine
        .decide(&request.principal, action, &resource, &context)
        .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
    let shadow = shadow.map(|s: Decision| {
        let agrees = s.allowed == decision.allowed;
        if !agrees {
            tracing::warn!(
                action = action.as_str(),
                live = decision.word(),
                shadow = s.word(),
                "the shadow policy set disagrees"
            );
        }
        (s, agrees)
    });
    let shadow_json = shadow
        .as_ref()
        .map(|(s, agrees)| json!(ShadowOutcome { decision: s.word(), reasons: &s.reasons, agrees: *agrees }));

    let decision_id = uuid::Uuid::now_v7();
    let facts_json = serde_json::to_value(&context).unwrap_or(Value::Null);
    let mut data = json!({
        "decisionId": decision_id.to_string(),
        "decision": decision.word(),
        "request": request,
        "facts": facts_json,
        "reasons": decision.reasons,
        "obligations": decision.obligations,
        "policySetHash": engine.hash(),
    });
    if let Some(shadow) = &shadow_json {
        data["shadow"] = shadow.clone();
    }
    let event = server_event(decision_id, "decision.recorded", &request.principal, data)
        .map_err(|m| ApiError::new(Code::Internal, m))?;
    let receipt = state.append(vec![event], recorded_by).await?;
    state.metrics.count_decision(action.as_str(), decision.word());
    let seq = receipt.first().map(|r| r.seq);
    let mut answer = json!({
        "decision": decision.word(),
        "decisionId": decision_id.to_string(),
        "reasons": decision.reasons,
        "facts": facts_json,
        "obligations": decision.obligations,
        "policySetHash": engine.hash(),
        "seq": seq,
    });
    if let Some(shadow) = shadow_json {
        answer["shadow"] = shadow;
    }
    Ok(answer)
}

/// `POST /v1/policies/reload`.
pub async fn reload(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.ledger.require_intact()?;
    let gates = state.ledger.gates.as_ref().ok_or_else(|| {
        ApiError::new(Code::GatesUnavailable, "no policies are loaded; start shiplog with --policies DIR")
    })?;
    let hash = gates.reload(state.ledger.store.as_ref()).await?;
    Ok(HttpResponse::Ok().json(json!({"policySetHash": hash})))
}
