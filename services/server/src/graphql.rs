//! `/graphql`: DORA and pipeline figures, audit queries (events, traces,
//! deployments, decisions, release notes, the checkpoint) and a live feed.
//!
//! Every answer comes from the projections (which say *which* events) and,
//! for the events themselves, from the store by `seq`: no query scans the
//! store. Errors carry `extensions.code`, the same codes as the REST API.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::{
    ComplexObject, Context, Enum, Error, ErrorExtensions, InputObject, Json, Object, Schema, SimpleObject, Subscription,
};
use async_graphql_actix_web::GraphQLSubscription;
use chrono::{DateTime, Duration, Utc};
use futures_util::Stream;
use serde_json::Value;
use shiplog_core::delivery::{self, Bucket as CoreBucket, DoraQuery, Scope};
use shiplog_core::index::{self as core_index, DecisionFilter as CoreDecisionFilter, EventFilter as CoreEventFilter};
use shiplog_core::merkle::to_base64;
use shiplog_core::stats::Summary;
use shiplog_core::{EventType, RecordedEvent};
use shiplog_store::ReadQuery;

use crate::{ApiError, AppState, Code};

pub type ShiplogSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Largest query complexity accepted (every field counts 1; a page of
/// events counts its size times its fields).
pub const MAX_COMPLEXITY: usize = 20_000;
/// Largest page of events.
pub const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 50;

/// The schema, with the server's state when it serves requests (`None`
/// builds it only to print the SDL).
pub fn schema(state: Option<web::Data<AppState>>) -> ShiplogSchema {
    let mut builder = Schema::build(Query, Mutation, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(16);
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The schema in SDL, as checked in at `schema/shiplog.graphql`.
pub fn sdl() -> String {
    schema(None).sdl()
}

/// POST: one query (JSON `{query, variables, operationName}`), bounded by
/// the server's body limit. A body that is not such JSON is a 400 with the
/// API's JSON error; errors in the query come back as GraphQL errors.
pub async fn post(
    schema: web::Data<ShiplogSchema>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::events::read_body(&req, payload, state.limits.max_body_bytes).await?;
    let request: async_graphql::Request = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("the body is not a GraphQL request (JSON with `query` and optional `variables`): {e}"),
        )
    })?;
    let request = match crate::auth::caller(&req) {
        Some(caller) => request.data(caller),
        None => request,
    };
    let mut response = schema.execute(request).await;
    // Errors from parsing, validation and limits come without a code: they
    // are all the query's fault.
    let mut forbidden = !response.errors.is_empty();
    for e in &mut response.errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", Code::InvalidQuery.as_str());
        }
        forbidden &= matches!(ext.get("code"), Some(async_graphql::Value::String(c)) if c == Code::Forbidden.as_str());
    }
    // Refused outright, with nothing to show: 403, as REST answers.
    let nothing = match &response.data {
        async_graphql::Value::Null => true,
        async_graphql::Value::Object(fields) => fields.values().all(|v| *v == async_graphql::Value::Null),
        _ => false,
    };
    if forbidden && nothing {
        return Ok(HttpResponse::Forbidden().json(response));
    }
    Ok(HttpResponse::Ok().json(response))
}

/// GET: a WebSocket upgrade starts a subscription (graphql-transport-ws or
/// the older graphql-ws protocol); anything else gets GraphiQL.
///
/// A subscriber authenticates with the upgrade request's
/// `Authorization: Bearer` header or, as browsers must, with
/// `{"Authorization": "Bearer …"}` (or `{"token": "…"}`) in its
/// `connection_init` payload; a connection with neither is closed.
pub async fn get(
    schema: web::Data<ShiplogSchema>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let upgrade = req.headers().get("upgrade").and_then(|v| v.to_str().ok()).unwrap_or("");
    if upgrade.eq_ignore_ascii_case("websocket") {
        let from_header = crate::auth::caller(&req);
        return GraphQLSubscription::new(Schema::clone(&schema))
            .on_connection_init(move |payload: Value| async move {
                let mut data = async_graphql::Data::default();
                let token = payload
                    .get("Authorization")
                    .or_else(|| payload.get("authorization"))
                    .and_then(Value::as_str)
                    .and_then(|v| v.trim().split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, t)| t.trim().to_owned())
                    .or_else(|| payload.get("token").and_then(Value::as_str).map(str::to_owned));
                let caller = match token {
                    Some(secret) => Some(state.auth.authenticate(&secret).map_err(|_| {
                        async_graphql::Error::new("the token in connection_init is not valid (unknown or revoked)")
                    })?),
                    None => from_header,
                };
                match caller {
                    Some(caller) => {
                        data.insert(caller);
                        Ok(data)
                    }
                    None => Err(async_graphql::Error::new(
                        "subscriptions need an API token: send {\"Authorization\": \"Bearer <token>\"} in connection_init",
                    )),
                }
            })
            .start(&req, payload);
    }
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(GRAPHIQL))
}

const GRAPHIQL: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>shiplog GraphQL</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
<style>body{margin:0;height:100vh}#graphiql{height:100vh}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL… (it loads from unpkg.com; without network access, POST queries to /graphql)</div>
<script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
<script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
<script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
<script>
  const url = new URL('/graphql', location.href).href;
  const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl: url.replace(/^http/, 'ws') });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, { fetcher, defaultQuery: '{ dora { deployments deploymentFrequency leadTime { median p90 count } changeFailRate recoveryTime { median } reworkRate bands { deploymentFrequency leadTime changeFailRate recoveryTime } } }' }));
</script>
</body>
</html>"#;

fn gql_error(code: Code, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code.as_str()))
}

fn bad_input(message: impl Into<String>) -> Error {
    gql_error(Code::InvalidQuery, message)
}

/// An API error with its code (`?` alone would keep only the message).
fn api(e: ApiError) -> Error {
    gql_error(e.code, e.message)
}

fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a web::Data<AppState>> {
    ctx.data::<web::Data<AppState>>().map_err(|_| gql_error(Code::Internal, "the server state is unavailable"))
}

/// The server state, once the projections include every event committed
/// before this query: a client reads what it has just recorded.
async fn fresh<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a web::Data<AppState>> {
    let state = state(ctx)?;
    let head = *state.ledger.store.head().borrow();
    state
        .ledger
        .projections
        .caught_up_to(head, std::time::Duration::from_secs(10))
        .await
        .map_err(|m| gql_error(Code::StoreUnavailable, m))?;
    Ok(state)
}

/// Fetch events by `seq`, in the order asked. Consecutive seqs are read
/// together.
async fn fetch(state: &AppState, seqs: &[u64]) -> async_graphql::Result<Vec<Event>> {
    let mut sorted: Vec<u64> = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut found: HashMap<u64, Arc<RecordedEvent>> = HashMap::with_capacity(sorted.len());
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[j - 1] + 1 && j - i < shiplog_store::MAX_READ_LIMIT {
            j += 1;
        }
        let events = state
            .ledger
            .store
            .read(ReadQuery { after: sorted[i].checked_sub(1), limit: j - i, ..ReadQuery::default() })
            .await
            .map_err(|e| api(e.into()))?;
        for e in events {
            found.insert(e.seq, Arc::new(e));
        }
        i = j;
    }
    Ok(seqs.iter().filter_map(|s| found.get(s).map(|e| Event(Arc::clone(e)))).collect())
}

// ---------------------------------------------------------------- inputs

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Day,
    Week,
    Month,
}

impl From<Bucket> for CoreBucket {
    fn from(b: Bucket) -> CoreBucket {
        match b {
            Bucket::Day => CoreBucket::Day,
            Bucket::Week => CoreBucket::Week,
            Bucket::Month => CoreBucket::Month,
        }
    }
}

/// Which deployments DORA figures are about. Without `from` and `to`: the
/// last 30 days. `service` and `team` are exclusive; a team's services come
/// from the directory.
#[derive(InputObject, Default)]
pub struct DoraFilter {
    pub service: Option<String>,
    pub team: Option<String>,
    /// Default `production`.
    pub environment: Option<String>,
    /// Start of the window (inclusive), on the deployments' `occurredAt`.
    pub from: Option<DateTime<Utc>>,
    /// End of the window (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Also compute the figures per day, week or month (UTC).
    pub bucket: Option<Bucket>,
    /// How long after a deployment an incident without `causedBy` is still
    /// attributed to it (default 24).
    pub attribution_window_hours: Option<f64>,
}

/// Which events. Every given field must match.
#[derive(InputObject, Default, Clone)]
pub struct EventFilter {
    pub stream: Option<String>,
    /// One or more event types (`deployment.succeeded`, …).
    pub types: Option<Vec<String>>,
    pub actor: Option<String>,
    /// The service the event is about (for tests, scans and builds: the
    /// service of their artifact).
    pub service: Option<String>,
    pub environment: Option<String>,
    /// `occurredAt` at or after.
    pub from: Option<DateTime<Utc>>,
    /// `occurredAt` before.
    pub to: Option<DateTime<Utc>>,
}

#[derive(InputObject, Default)]
pub struct DecisionFilter {
    /// deploy, rollback, merge, apply-infra, promote-canary, apply-migration.
    pub action: Option<String>,
    /// true: only allowed; false: only denied.
    pub allowed: Option<bool>,
    pub service: Option<String>,
    pub environment: Option<String>,
    pub artifact: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

fn event_types(names: &Option<Vec<String>>) -> async_graphql::Result<Vec<EventType>> {
    names
        .iter()
        .flatten()
        .map(|n| {
            EventType::parse(n).ok_or_else(|| {
                let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                bad_input(format!("unknown event type {n:?} in filter.types; valid types are: {}", all.join(", ")))
            })
        })
        .collect()
}

impl EventFilter {
    fn to_core(&self) -> async_graphql::Result<CoreEventFilter> {
        if let (Some(f), Some(t)) = (self.from, self.to) {
            if f >= t {
                return Err(bad_input("filter.from must be before filter.to"));
            }
        }
        Ok(CoreEventFilter {
            stream: self.stream.clone(),
            types: event_types(&self.types)?,
            actor: self.actor.clone(),
            service: self.service.clone(),
            environment: self.environment.clone(),
            from: self.from,
            to: self.to,
        })
    }

    /// Whether a new event matches (for the live feed, which has no index
    /// row: service and environment are read from the event's data).
    fn matches(&self, types: &[EventType], e: &RecordedEvent) -> bool {
        let field = |name: &str| {
            e.data
                .get(name)
                .or_else(|| e.data.get("request").and_then(|r| r.get("resource")).and_then(|r| r.get(name)))
                .and_then(Value::as_str)
        };
        (types.is_empty() || types.contains(&e.event_type))
            && self.stream.as_ref().is_none_or(|s| *s == e.stream)
            && self.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self.service.as_ref().is_none_or(|s| field("service") == Some(s.as_str()))
            && self.environment.as_ref().is_none_or(|s| field("environment") == Some(s.as_str()))
            && self.from.is_none_or(|f| e.occurred_at >= f)
            && self.to.is_none_or(|t| e.occurred_at < t)
    }
}

fn page_size(first: Option<i32>) -> async_graphql::Result<usize> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n >= 1 && (n as usize) <= MAX_PAGE => Ok(n as usize),
        Some(n) => Err(bad_input(format!("first is {n}; it must be between 1 and {MAX_PAGE}"))),
    }
}

fn cursor(after: &Option<String>) -> async_graphql::Result<Option<u64>> {
    after
        .as_deref()
        .map(|c| c.parse::<u64>().map_err(|_| bad_input(format!("after: {c:?} is not a cursor this API returned"))))
        .transpose()
}

/// The scope of a figure: an environment and a service, a team or all.
fn scope(
    state: &AppState,
    service: &Option<String>,
    team: &Option<String>,
    environment: &Option<String>,
) -> async_graphql::Result<Scope> {
    let environment = environment.clone().unwrap_or_else(|| "production".to_owned());
    let services = match (service, team) {
        (Some(_), Some(_)) => return Err(bad_input("give filter.service or filter.team, not both")),
        (Some(s), None) => Some(vec![s.clone()]),
        (None, Some(team)) => {
            let gates = state.ledger.gates.as_ref().ok_or_else(|| {
                gql_error(Code::GatesUnavailable, "teams come from the directory; start shiplog with --entities FILE")
            })?;
            let services = gates.engine().map_err(api)?.team_services(team);
            if services.is_empty() {
                return Err(bad_input(format!("the directory has no team {team:?} (or it owns no service)")));
            }
            Some(services)
        }
        (None, None) => None,
    };
    Ok(Scope { environment, services })
}

fn window(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> (DateTime<Utc>, DateTime<Utc>) {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - Duration::days(30));
    (from, to)
}

fn attribution(hours: Option<f64>) -> async_graphql::Result<Duration> {
    match hours {
        None => Ok(DoraQuery::default_attribution_window()),
        Some(h) if h.is_finite() && (0.0..=24.0 * 365.0).contains(&h) => {
            Ok(Duration::microseconds((h * 3_600_000_000.0).round() as i64))
        }
        Some(h) => Err(bad_input(format!("attributionWindowHours is {h}; it must be between 0 and 8760"))),
    }
}

fn query_error(e: delivery::QueryError) -> Error {
    bad_input(e.to_string())
}

// --------------------------------------------------------------- outputs

/// Median, 90th percentile (linear interpolation, as PostgreSQL's
/// `percentile_cont`) and count, in seconds.
#[derive(SimpleObject, Clone, Copy)]
pub struct Stat {
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub count: u64,
}

impl From<Summary> for Stat {
    fn from(s: Summary) -> Stat {
        Stat { median: s.median, p90: s.p90, count: s.count }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Elite,
    High,
    Medium,
    Low,
}

impl From<delivery::Band> for Band {
    fn from(b: delivery::Band) -> Band {
        match b {
            delivery::Band::Elite => Band::Elite,
            delivery::Band::High => Band::High,
            delivery::Band::Medium => Band::Medium,
            delivery::Band::Low => Band::Low,
        }
    }
}

/// DORA 2023 performance bands (null where the figure is).
#[derive(SimpleObject, Clone, Copy)]
pub struct Bands {
    pub deployment_frequency: Band,
    pub lead_time: Option<Band>,
    pub change_fail_rate: Option<Band>,
    pub recovery_time: Option<Band>,
}

impl From<delivery::Bands> for Bands {
    fn from(b: delivery::Bands) -> Bands {
        Bands {
            deployment_frequency: b.deployment_frequency.into(),
            lead_time: b.lead_time.map(Into::into),
            change_fail_rate: b.change_fail_rate.map(Into::into),
            recovery_time: b.recovery_time.map(Into::into),
        }
    }
}

/// One bucket of a trend: the same figures over `[start, end)`.
#[derive(SimpleObject)]
pub struct TrendPoint {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub deployments: u64,
    pub deployment_frequency: f64,
    pub lead_time: Stat,
    pub change_fail_rate: Option<f64>,
    pub failed_deployments: u64,
    pub recovery_time: Stat,
    pub unrecovered_failures: u64,
    pub rework_rate: Option<f64>,
    pub bands: Bands,
}

/// The DORA figures of a scope and window (PRODUCT.md, "DORA metrics").
#[derive(SimpleObject)]
pub struct Dora {
    pub environment: String,
    /// The services counted (null: every service).
    pub services: Option<Vec<String>>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub attribution_window_hours: f64,
    /// Deployments: `deployment.succeeded` in the window.
    pub deployments: u64,
    /// Deployments per day.
    pub deployment_frequency: f64,
    /// Seconds from a commit's `authoredAt` to the deployment that first
    /// brought it to the environment.
    pub lead_time: Stat,
    /// Failed deployments / deployments (null without deployments).
    pub change_fail_rate: Option<f64>,
    pub failed_deployments: u64,
    /// Seconds from a failed deployment to its recovery.
    pub recovery_time: Stat,
    /// Failed deployments not (yet) recovered: counted, not timed.
    pub unrecovered_failures: u64,
    /// Emergency or fixing deployments / deployments.
    pub rework_rate: Option<f64>,
    pub bands: Bands,
    /// Per bucket, when `bucket` is given.
    pub trend: Vec<TrendPoint>,
}

/// Build, and deployment-attempt figures the seed documents track.
#[derive(SimpleObject)]
pub struct PipelineFigures {
    /// Builds finished with success or failure (cancelled ones excluded).
    pub builds: u64,
    pub build_success_rate: Option<f64>,
    /// Seconds from `build.started` to `build.finished` of one run.
    pub build_duration: Stat,
    /// Seconds from `deployment.started` to `deployment.succeeded`.
    pub time_to_deploy: Stat,
    /// Succeeded and failed deployments.
    pub deployment_attempts: u64,
    pub failed_attempts: u64,
    pub attempt_failure_rate: Option<f64>,
}

/// A recorded event.
#[derive(Clone)]
pub struct Event(Arc<RecordedEvent>);

#[Object]
impl Event {
    /// Position in the global order; also this event's cursor.
    async fn seq(&self) -> u64 {
        self.0.seq
    }
    async fn id(&self) -> String {
        self.0.id.to_string()
    }
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        self.0.event_type.as_str()
    }
    async fn stream(&self) -> &str {
        &self.0.stream
    }
    async fn stream_version(&self) -> u64 {
        self.0.stream_version
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
    async fn recorded_by(&self) -> &str {
        &self.0.recorded_by
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    async fn data(&self) -> Json<Value> {
        Json(self.0.data.clone())
    }
    async fn links(&self) -> Json<Value> {
        Json(serde_json::to_value(&self.0.links).unwrap_or(Value::Null))
    }
    /// The event's Merkle leaf hash (hex).
    async fn leaf_hash(&self) -> Option<String> {
        self.0.leaf_hash.as_ref().map(shiplog_core::merkle::to_hex)
    }
}

#[derive(SimpleObject)]
pub struct EventEdge {
    pub cursor: String,
    pub node: Event,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// A page of events in `seq` order.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct EventConnection {
    pub edges: Vec<EventEdge>,
    pub page_info: PageInfo,
    #[graphql(skip)]
    filter: Option<CoreEventFilter>,
}

#[ComplexObject]
impl EventConnection {
    /// The events of the page, without cursors.
    async fn nodes(&self) -> Vec<Event> {
        self.edges.iter().map(|e| e.node.clone()).collect()
    }

    /// How many events match the filter in all (counted in memory).
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<u64>> {
        let Some(filter) = &self.filter else { return Ok(None) };
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = state(ctx)?;
        let views = state.ledger.projections.read().map_err(api)?;
        Ok(Some(views.index.count(filter)))
    }
}

async fn connection(
    state: &AppState,
    page: core_index::Page,
    filter: Option<CoreEventFilter>,
) -> async_graphql::Result<EventConnection> {
    let events = fetch(state, &page.seqs).await?;
    let end_cursor = events.last().map(|e| e.0.seq.to_string());
    Ok(EventConnection {
        edges: events.into_iter().map(|e| EventEdge { cursor: e.0.seq.to_string(), node: e }).collect(),
        page_info: PageInfo { has_next_page: page.has_next, end_cursor },
        filter,
    })
}

/// The chain of evidence around a commit or a deployment, each list in
/// `seq` order.
#[derive(SimpleObject, Default)]
pub struct Evidence {
    pub commits: Vec<Event>,
    /// Pull or merge requests: opened, reviewed, merged.
    pub changes: Vec<Event>,
    pub builds: Vec<Event>,
    pub tests: Vec<Event>,
    pub scans: Vec<Event>,
    pub artifacts: Vec<Event>,
    pub approvals: Vec<Event>,
    /// Gate decisions, with their reasons.
    pub decisions: Vec<Event>,
    pub deployments: Vec<Event>,
    pub canaries: Vec<Event>,
    pub rollbacks: Vec<Event>,
    pub incidents: Vec<Event>,
}

async fn evidence(state: &AppState, e: core_index::Evidence) -> async_graphql::Result<Evidence> {
    let all = fetch(state, &e.all()).await?;
    let by_seq: HashMap<u64, Event> = all.into_iter().map(|ev| (ev.0.seq, ev)).collect();
    let pick = |seqs: &[u64]| seqs.iter().filter_map(|s| by_seq.get(s).cloned()).collect::<Vec<_>>();
    Ok(Evidence {
        commits: pick(&e.commits),
        changes: pick(&e.changes),
        builds: pick(&e.builds),
        tests: pick(&e.tests),
        scans: pick(&e.scans),
        artifacts: pick(&e.artifacts),
        approvals: pick(&e.approvals),
        decisions: pick(&e.decisions),
        deployments: pick(&e.deployments),
        canaries: pick(&e.canaries),
        rollbacks: pick(&e.rollbacks),
        incidents: pick(&e.incidents),
    })
}

/// A deployment (`deployment.succeeded`) as the DORA figures see it.
#[derive(SimpleObject)]
pub struct DeploymentSummary {
    pub seq: u64,
    pub deployment_id: String,
    pub service: String,
    pub environment: String,
    pub artifact: String,
    pub version: String,
    pub occurred_at: DateTime<Utc>,
    pub emergency: bool,
    pub fixes: Option<String>,
    /// Its commits (its own, else its artifact's); null while unknown.
    pub commits: Option<Vec<String>>,
    /// Lead time of the commits that first reached the environment here.
    pub lead_time: Stat,
    /// Failed by the DORA definition (default attribution window).
    pub failed: bool,
    pub rolled_back: bool,
    /// Seconds to recovery, for a failed deployment that recovered.
    pub recovery_time: Option<f64>,
}

impl From<delivery::DeploymentSummary> for DeploymentSummary {
    fn from(d: delivery::DeploymentSummary) -> DeploymentSummary {
        DeploymentSummary {
            seq: d.seq,
            deployment_id: d.deployment_id,
            service: d.service,
            environment: d.environment,
            artifact: d.artifact,
            version: d.version,
            occurred_at: d.at,
            emergency: d.emergency,
            fixes: d.fixes,
            commits: d.commits,
            lead_time: d.lead_time.into(),
            failed: d.failed,
            rolled_back: d.rolled_back,
            recovery_time: d.recovery_time,
        }
    }
}

/// One deployment and its evidence.
#[derive(SimpleObject)]
pub struct DeploymentDetail {
    pub deployment_id: String,
    /// Null when the deployment never succeeded (started or failed only).
    pub summary: Option<DeploymentSummary>,
    pub evidence: Evidence,
}

/// What went out between two deployed versions of a service.
#[derive(SimpleObject)]
pub struct ReleaseNotes {
    pub service: String,
    pub environment: String,
    pub from_version: String,
    pub to_version: String,
    /// The deployments after `fromVersion`'s, up to `toVersion`'s.
    pub deployments: Vec<DeploymentSummary>,
    /// Commits that reached the environment with them.
    pub commits: Vec<String>,
    /// The changes (opened, reviewed, merged) that brought those commits.
    pub changes: Vec<Event>,
    /// Reviews among those changes.
    pub reviews: Vec<Event>,
    /// Approvals of the deployed artifacts.
    pub approvals: Vec<Event>,
}

/// The ledger's latest signed checkpoint and its integrity.
#[derive(SimpleObject)]
pub struct Checkpoint {
    pub origin: String,
    /// Events covered.
    pub size: u64,
    /// Merkle root (base64), as in the signed note.
    pub root_hash: String,
    /// The C2SP signed note, verifiable with `verifierKey`.
    pub note: String,
    pub verifier_key: String,
    /// Whether the stored history passed the integrity checks.
    pub intact: bool,
    /// What is wrong, when it is not.
    pub integrity_problem: Option<String>,
    /// The last event the projections have applied.
    pub projected_seq: Option<u64>,
}

// ----------------------------------------------------------------- query

pub struct Query;

#[Object]
impl Query {
    /// DORA figures for a service, team or everyone in one environment.
    async fn dora(&self, ctx: &Context<'_>, filter: Option<DoraFilter>) -> async_graphql::Result<Dora> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = fresh(ctx).await?;
        let f = filter.unwrap_or_default();
        let scope = scope(state, &f.service, &f.team, &f.environment)?;
        let (from, to) = window(f.from, f.to);
        let attribution_window = attribution(f.attribution_window_hours)?;
        let query = DoraQuery { scope: scope.clone(), from, to, bucket: f.bucket.map(Into::into), attribution_window };
        let dora = {
            let views = state.ledger.projections.read().map_err(api)?;
            views.delivery.dora(&query).map_err(query_error)?
        };
        let fig = dora.figures;
        Ok(Dora {
            environment: scope.environment,
            services: scope.services,
            from,
            to,
            attribution_window_hours: attribution_window.num_microseconds().unwrap_or(0) as f64 / 3_600_000_000.0,
            deployments: fig.deployments,
            deployment_frequency: fig.deployment_frequency,
            lead_time: fig.lead_time.into(),
            change_fail_rate: fig.change_fail_rate,
            failed_deployments: fig.failed_deployments,
            recovery_time: fig.recovery_time.into(),
            unrecovered_failures: fig.unrecovered_failures,
            rework_rate: fig.rework_rate,
            bands: dora.bands.into(),
            trend: dora
                .trend
                .into_iter()
                .map(|t| TrendPoint {
                    start: t.start,
                    end: t.end,
                    deployments: t.figures.deployments,
                    deployment_frequency: t.figures.deployment_frequency,
                    lead_time: t.figures.lead_time.into(),
                    change_fail_rate: t.figures.change_fail_rate,
                    failed_deployments: t.figures.failed_deployments,
                    recovery_time: t.figures.recovery_time.into(),
                    unrecovered_failures: t.figures.unrecovered_failures,
                    rework_rate: t.figures.rework_rate,
                    bands: t.bands.into(),
                })
                .collect(),
        })
    }

    /// Build success rate and duration, time to deploy, and the deployment
    /// attempt failure rate. Builds belong to no environment; a pipeline's
    /// service is learnt from the artifacts it publishes.
    async fn pipeline(&self, ctx: &Context<'_>, filter: Option<DoraFilter>) -> async_graphql::Result<PipelineFigures> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = fresh(ctx).await?;
        let f = filter.unwrap_or_default();
        let scope = scope(state, &f.service, &f.team, &f.environment)?;
        let (from, to) = window(f.from, f.to);
        let p = {
            let views = state.ledger.projections.read().map_err(api)?;
            views.delivery.pipeline(&scope, from, to).map_err(query_error)?
        };
        Ok(PipelineFigures {
            builds: p.builds,
            build_success_rate: p.build_success_rate,
            build_duration: p.build_duration.into(),
            time_to_deploy: p.time_to_deploy.into(),
            deployment_attempts: p.deployment_attempts,
            failed_attempts: p.failed_attempts,
            attempt_failure_rate: p.attempt_failure_rate,
        })
    }

    /// Events in `seq` order, filtered, a page at a time.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
        #[graphql(desc = "Page size, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = fresh(ctx).await?;
        let filter = filter.unwrap_or_default().to_core()?;
        let first = page_size(first)?;
        let after = cursor(&after)?;
        let page = state.ledger.projections.read().map_err(api)?.index.search(&filter, after, first);
        connection(state, page, Some(filter)).await
    }

    /// Gate decisions (`decision.recorded`), filtered, a page at a time.
    async fn decisions(
        &self,
        ctx: &Context<'_>,
        filter: Option<DecisionFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = fresh(ctx).await?;
        let f = filter.unwrap_or_default();
        let core = CoreDecisionFilter {
            action: f.action,
            allowed: f.allowed,
            service: f.service,
            environment: f.environment,
            artifact: f.artifact,
            from: f.from,
            to: f.to,
        };
        let first = page_size(first)?;
        let after = cursor(&after)?;
        let page = state.ledger.projections.read().map_err(api)?.index.decisions(&core, after, first);
        connection(state, page, None).await
    }

    /// From a commit to everything that followed it: the change that merged
    /// it, builds, tests and scans, artifacts, approvals, gate decisions,
    /// deployments, canaries, rollbacks and incidents.
    async fn trace(&self, ctx: &Context<'_>, commit: String) -> async_graphql::Result<Evidence> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = fresh(ctx).await?;
        let sha = commit.trim().to_ascii_lowercase();
        let e = state.ledger.projections.read().map_err(api)?.index.trace(&sha);
        evidence(state, e).await
    }

    /// One deployment by its `deploymentId`, with its evidence; null when no
    /// event names it.
    async fn deployment(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<Option<DeploymentDetail>> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = fresh(ctx).await?;
        let (summary, e) = {
            let views = state.ledger.projections.read().map_err(api)?;
            (views.delivery.deployment(&id, DoraQuery::default_attribution_window()), views.index.deployment(&id))
        };
        if summary.is_none() && e.is_empty() {
            return Ok(None);
        }
        Ok(Some(DeploymentDetail {
            deployment_id: id,
            summary: summary.map(Into::into),
            evidence: evidence(state, e).await?,
        }))
    }

    /// Deployments of a scope and window, newest first.
    async fn deployments(
        &self,
        ctx: &Context<'_>,
        filter: Option<DoraFilter>,
        #[graphql(desc = "At most this many, 1 to 500 (default 50).")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<DeploymentSummary>> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = fresh(ctx).await?;
        let f = filter.unwrap_or_default();
        let scope = scope(state, &f.service, &f.team, &f.environment)?;
        let (from, to) = window(f.from, f.to);
        let attribution_window = attribution(f.attribution_window_hours)?;
        let first = page_size(first)?;
        let views = state.ledger.projections.read().map_err(api)?;
        Ok(views.delivery.recent(&scope, from, to, attribution_window, first).into_iter().map(Into::into).collect())
    }

    /// The changes, reviews and approvals that went out between two
    /// deployed versions of a service.
    async fn release_notes(
        &self,
        ctx: &Context<'_>,
        service: String,
        #[graphql(default = "production")] environment: String,
        from_version: String,
        to_version: String,
    ) -> async_graphql::Result<ReleaseNotes> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = fresh(ctx).await?;
        let (deployments, commits, changes, approvals) = {
            let views = state.ledger.projections.read().map_err(api)?;
            let deployments = views
                .delivery
                .between_versions(&service, &environment, &from_version, &to_version)
                .map_err(query_error)?;
            let mut commits = Vec::new();
            for d in &deployments {
                commits.extend(views.delivery.first_commits(&d.deployment_id));
            }
            let changes = views.index.changes_of(&commits);
            let artifacts: Vec<String> = deployments.iter().map(|d| d.artifact.clone()).collect();
            let approvals = views.index.approvals_of(&artifacts);
            (deployments, commits, changes, approvals)
        };
        let changes = fetch(state, &changes).await?;
        let reviews = changes.iter().filter(|e| e.0.event_type == EventType::ChangeReviewed).cloned().collect();
        Ok(ReleaseNotes {
            service,
            environment,
            from_version,
            to_version,
            deployments: deployments.into_iter().map(Into::into).collect(),
            commits,
            changes,
            reviews,
            approvals: fetch(state, &approvals).await?,
        })
    }

    /// The latest signed checkpoint of the whole ledger.
    async fn checkpoint(&self, ctx: &Context<'_>) -> async_graphql::Result<Checkpoint> {
        crate::auth::require(ctx, crate::auth::ApiAction::Prove)?;
        let state = fresh(ctx).await?;
        let cp = state.ledger.checkpoint().await.map_err(api)?;
        let problem = state.ledger.integrity();
        Ok(Checkpoint {
            origin: cp.origin,
            size: cp.size,
            root_hash: to_base64(&cp.root),
            note: cp.note,
            verifier_key: state.ledger.verifier_key().to_owned(),
            intact: problem.is_none(),
            integrity_problem: problem.map(|f| f.to_string()),
            projected_seq: state.ledger.projections.applied(),
        })
    }
}

// -------------------------------------------------------------- mutation

/// What the ledger answers for each recorded event.
#[derive(SimpleObject)]
pub struct Receipt {
    pub id: String,
    pub seq: u64,
    pub stream: String,
    pub stream_version: u64,
    pub recorded_at: DateTime<Utc>,
    /// The event's Merkle leaf hash (hex).
    pub leaf_hash: String,
    /// The event was already recorded with this content: this is the
    /// original receipt.
    pub duplicate: bool,
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Record one event (an object) or a batch (an array) in the native
    /// envelope, all or nothing: exactly as `POST /v1/events`.
    async fn record_events(&self, ctx: &Context<'_>, events: Json<Value>) -> async_graphql::Result<Vec<Receipt>> {
        crate::auth::require(ctx, crate::auth::ApiAction::Record)?;
        let state = state(ctx)?;
        let receipts =
            crate::events::record(state, events.0, &crate::auth::graphql_recorded_by(ctx)).await.map_err(api)?;
        Ok(receipts
            .into_iter()
            .map(|r| Receipt {
                id: r.id.to_string(),
                seq: r.seq,
                stream: r.stream,
                stream_version: r.stream_version,
                recorded_at: r.recorded_at,
                leaf_hash: shiplog_core::merkle::to_hex(&r.leaf_hash),
                duplicate: r.duplicate,
            })
            .collect())
    }

    /// Ask the release gates, exactly as `POST /v1/decisions` (the same
    /// request and answer); the decision is recorded in the ledger.
    async fn decide(&self, ctx: &Context<'_>, request: Json<Value>) -> async_graphql::Result<Json<Value>> {
        crate::auth::require(ctx, crate::auth::ApiAction::Decide)?;
        let state = state(ctx)?;
        let body = serde_json::to_vec(&request.0).map_err(|e| gql_error(Code::Internal, e.to_string()))?;
        Ok(Json(crate::gates::decide_body(state, &body, &crate::auth::graphql_recorded_by(ctx)).await.map_err(api)?))
    }
}

// ---------------------------------------------------------- subscription

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// New events as they are recorded, filtered. A subscriber that falls
    /// more than 4,096 events behind gets an error and should read the gap
    /// with `events(after:)`.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Event>> + use<>> {
        crate::auth::require(ctx, crate::auth::ApiAction::Read)?;
        let state = state(ctx)?;
        let filter = filter.unwrap_or_default();
        let types = event_types(&filter.types)?;
        filter.to_core()?;
        let rx = state.ledger.projections.subscribe();
        Ok(futures_util::stream::unfold(Some((rx, filter, types)), |s| async move {
            let (mut rx, filter, types) = s?;
            loop {
                match rx.recv().await {
                    Ok(e) if filter.matches(&types, &e) => return Some((Ok(Event(e)), Some((rx, filter, types)))),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let e = gql_error(
                            Code::StoreUnavailable,
                            format!(
                                "this subscription fell {n} events behind; resubscribe and read the gap with events(after:)"
                            ),
                        );
                        return Some((Err(e), None));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }
}
