//! Who is calling, and may they: API tokens (kept in the ledger as
//! `token.created` / `token.revoked`, recognised by their SHA-256, never
//! stored in the clear), the access policy (Cedar, its own set), the
//! per-token rate limit, and the admin API (`/v1/tokens`).
//!
//! Every route maps to one [`ApiAction`] in [`needs`]; every GraphQL field
//! asks [`require`]. A route the table does not name needs a token that may
//! `read`, so a new route is never public by omission.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shiplog_core::{EventData, NewEvent, RecordedEvent};
use shiplog_policy::SourceFile;
pub use shiplog_policy::access::{AccessPolicy, ApiAction, Principal, Role};
use shiplog_store::{MAX_READ_LIMIT, ReadQuery};

use crate::{ApiError, AppState, Code, Ledger};

/// What the server records its own events as (`recordedBy`).
pub const SERVER: &str = "shiplog";
/// The name the bootstrap admin token gets.
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// Prefix of every token shiplog makes, so secret scanners can find leaks.
pub const TOKEN_PREFIX: &str = "slt_";
/// Shortest `SHIPLOG_ADMIN_TOKEN` accepted.
pub const MIN_TOKEN_CHARS: usize = 32;
const TOKENS_STREAM: &str = "tokens";

/// How the server authenticates and limits callers.
#[derive(Clone)]
pub struct AuthConfig {
    /// `SHIPLOG_ADMIN_TOKEN`: an admin token to accept (and record, hashed,
    /// as the token named `admin`). Without it, and without any live admin
    /// token, the server makes one on start and prints it once.
    pub admin_token: Option<String>,
    /// The access policy's files; `None`: the built-in policy.
    pub access_policy: Option<Vec<SourceFile>>,
    pub rate_limit: RateLimit,
    /// Longest a request may take to be answered (503 `timeout` beyond).
    pub request_timeout: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            admin_token: None,
            access_policy: None,
            rate_limit: RateLimit::default(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("access_policy", &self.access_policy.as_ref().map(|f| f.iter().map(|f| &f.name).collect::<Vec<_>>()))
            .field("rate_limit", &self.rate_limit)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Requests per second each token may make, with bursts up to `burst`.
/// `per_second == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { per_second: 500, burst: 1000 }
    }
}

/// The caller of a request that presented a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn principal(&self) -> Principal<'_> {
        Principal::Token { name: &self.name, role: self.role }
    }
}

/// A token as the admin API lists it: never the secret.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    #[serde(serialize_with = "time")]
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_time")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
}

fn time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&shiplog_core::event::format_time(t))
}

fn opt_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time(t, s),
        None => s.serialize_none(),
    }
}

type Digest32 = [u8; 32];

/// The tokens, folded from the `tokens` stream.
#[derive(Default)]
struct Registry {
    live: HashMap<Digest32, Arc<Caller>>,
    /// Live token names → their digest.
    names: HashMap<String, Digest32>,
    /// Every token ever created, by digest: what the admin API lists, and
    /// what a revoked token's refusal names.
    all: HashMap<Digest32, TokenInfo>,
}

impl Registry {
    fn apply(&mut self, event: &RecordedEvent) {
        let Ok(parsed) = EventData::parse(event.event_type, event.data.clone()) else {
            tracing::error!(seq = event.seq, "a token event's data is unreadable; it is ignored");
            return;
        };
        let (created, data) = match parsed {
            EventData::TokenCreated(d) => (true, d),
            EventData::TokenRevoked(d) => (false, d),
            _ => return,
        };
        let (Some(digest), Some(role)) = (parse_digest(&data.secret_sha256), Role::parse(data.role.as_str())) else {
            tracing::error!(seq = event.seq, "a token event names no usable digest or role; it is ignored");
            return;
        };
        let name = data.name.to_string();
        if created {
            self.live.insert(digest, Arc::new(Caller { name: name.clone(), role }));
            self.names.insert(name.clone(), digest);
            self.all.insert(
                digest,
                TokenInfo {
                    name,
                    role,
                    created_at: event.recorded_at,
                    created_by: event.recorded_by.clone(),
                    revoked_at: None,
                    revoked_by: None,
                },
            );
        } else {
            self.live.remove(&digest);
            if self.names.get(&name) == Some(&digest) {
                self.names.remove(&name);
            }
            if let Some(info) = self.all.get_mut(&digest) {
                info.revoked_at = Some(event.recorded_at);
                info.revoked_by = Some(event.recorded_by.clone());
            }
        }
    }
}

fn parse_digest(hex_digest: &str) -> Option<Digest32> {
    let bytes = hex::decode(hex_digest).ok()?;
    bytes.try_into().ok()
}

/// SHA-256 of a token's secret.
pub fn digest(secret: &str) -> Digest32 {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new secret: the prefix and 256 random bits, base64url.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness to make a token: {e}"))?;
    Ok(format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// Why a presented token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Unknown,
    Revoked { name: String, at: DateTime<Utc> },
}

/// Per-token token buckets.
struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `Err(wait)` when `name` is over its limit.
    fn check(&self, name: &str) -> Result<(), Duration> {
        if self.limit.per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(self.limit.per_second);
        let burst = f64::from(self.limit.burst.max(1));
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let (tokens, last) = buckets.entry(name.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

/// Authentication, authorization and rate limiting, shared by every worker.
pub struct Auth {
    registry: RwLock<Registry>,
    pub policy: AccessPolicy,
    limiter: RateLimiter,
    pub request_timeout: Duration,
    /// Serialises creating and revoking tokens (check, then append).
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// What opening [`Auth`] made: the secret of an admin token it generated,
/// to be shown once.
pub struct Opened {
    pub auth: Auth,
    pub generated_admin_token: Option<String>,
}

impl Auth {
    /// Load the access policy and the tokens from the ledger; record the
    /// access policy when it changed, and the bootstrap admin token (from
    /// `SHIPLOG_ADMIN_TOKEN`, or a new one when no admin token is live).
    pub async fn open(ledger: &Ledger, config: AuthConfig) -> Result<Opened, String> {
        let policy = match &config.access_policy {
            None => AccessPolicy::builtin(),
            Some(files) => AccessPolicy::load(files),
        }
        .map_err(|e| format!("the access policy is invalid: {e}"))?;
        if let Some(token) = &config.admin_token {
            if token.chars().count() < MIN_TOKEN_CHARS || token.chars().any(|c| !c.is_ascii_graphic()) {
                return Err(format!(
                    "SHIPLOG_ADMIN_TOKEN must be at least {MIN_TOKEN_CHARS} printable ASCII characters without spaces; make one with `openssl rand -base64 32`"
                ));
            }
        }
        let auth = Auth {
            registry: RwLock::new(Registry::default()),
            policy,
            limiter: RateLimiter { limit: config.rate_limit, buckets: Mutex::new(HashMap::new()) },
            request_timeout: config.request_timeout,
            writes: tokio::sync::Mutex::new(()),
        };
        let mut last_access_hash = None;
        let mut after = None;
        loop {
            let page = ledger
                .store
                .read(ReadQuery { after, limit: MAX_READ_LIMIT, stream: Some(TOKENS_STREAM.into()), event_type: None })
                .await
                .map_err(|e| format!("cannot read the tokens from the ledger: {e}"))?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            let mut registry = auth.registry.write().map_err(|_| "the token registry is poisoned".to_owned())?;
            for event in &page {
                registry.apply(event);
            }
        }
        after = None;
        loop {
            let page = ledger
                .store
                .read(ReadQuery { after, limit: MAX_READ_LIMIT, stream: Some("policies".into()), event_type: None })
                .await
                .map_err(|e| format!("cannot read the policy history from the ledger: {e}"))?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            for event in &page {
                if event.data.get("set").and_then(Value::as_str) == Some("access") {
                    last_access_hash = event.data.get("policySetHash").and_then(Value::as_str).map(str::to_owned);
                }
            }
        }
        if ledger.integrity().is_some() {
            // Read-only: nothing can be recorded. A configured admin token
            // still works, in memory, so that an admin can look.
            if let Some(token) = &config.admin_token {
                auth.remember(digest(token), BOOTSTRAP_ADMIN, Role::Admin);
                tracing::warn!("the ledger is read-only: SHIPLOG_ADMIN_TOKEN is accepted but not recorded");
            }
            return Ok(Opened { auth, generated_admin_token: None });
        }
        if last_access_hash.as_deref() != Some(auth.policy.hash()) {
            let files: Vec<String> = auth.policy.files().to_vec();
            let event = crate::gates::server_event(
                uuid::Uuid::now_v7(),
                "policy.activated",
                SERVER,
                json!({"policySetHash": auth.policy.hash(), "files": files, "set": "access",
                       "previous": last_access_hash}),
            )?;
            ledger
                .store
                .append(vec![event], SERVER)
                .await
                .map_err(|e| format!("cannot record the access policy: {e}"))?;
            tracing::info!(policy_set = auth.policy.hash(), "access policy activated");
        }
        let generated = auth.bootstrap(ledger, config.admin_token.as_deref()).await?;
        Ok(Opened { auth, generated_admin_token: generated })
    }

    fn remember(&self, digest: Digest32, name: &str, role: Role) {
        if let Ok(mut registry) = self.registry.write() {
            registry.live.insert(digest, Arc::new(Caller { name: name.to_owned(), role }));
            registry.names.insert(name.to_owned(), digest);
        }
    }

    async fn bootstrap(&self, ledger: &Ledger, admin_token: Option<&str>) -> Result<Option<String>, String> {
        let (has_admin, bootstrap_live) = {
            let registry = self.registry.read().map_err(|_| "the token registry is poisoned".to_owned())?;
            (registry.live.values().any(|c| c.role == Role::Admin), registry.names.get(BOOTSTRAP_ADMIN).copied())
        };
        let (secret, generated) = match admin_token {
            Some(token) => {
                let wanted = digest(token);
                if bootstrap_live == Some(wanted) {
                    return Ok(None);
                }
                (token.to_owned(), false)
            }
            None if has_admin => return Ok(None),
            None => (new_secret()?, true),
        };
        let mut events = Vec::new();
        if let Some(old) = bootstrap_live {
            // SHIPLOG_ADMIN_TOKEN changed: the old one stops working.
            events.push(token_event("token.revoked", BOOTSTRAP_ADMIN, Role::Admin, &old)?);
        }
        events.push(token_event("token.created", BOOTSTRAP_ADMIN, Role::Admin, &digest(&secret))?);
        let receipts =
            ledger.store.append(events, SERVER).await.map_err(|e| format!("cannot record the admin token: {e}"))?;
        self.reload_from(ledger, &receipts).await?;
        if bootstrap_live.is_some() {
            tracing::info!(name = BOOTSTRAP_ADMIN, "SHIPLOG_ADMIN_TOKEN changed: the previous admin token is revoked");
        } else {
            tracing::info!(name = BOOTSTRAP_ADMIN, "admin token recorded");
        }
        Ok(generated.then_some(secret))
    }

    /// Fold the events of these receipts into the registry.
    async fn reload_from(&self, ledger: &Ledger, receipts: &[shiplog_core::Receipt]) -> Result<(), String> {
        for receipt in receipts.iter().filter(|r| !r.duplicate) {
            let events = ledger
                .store
                .read(ReadQuery {
                    after: receipt.seq.checked_sub(1),
                    limit: 1,
                    stream: Some(TOKENS_STREAM.into()),
                    event_type: None,
                })
                .await
                .map_err(|e| format!("cannot read back the token event: {e}"))?;
            let mut registry = self.registry.write().map_err(|_| "the token registry is poisoned".to_owned())?;
            for event in events.iter().filter(|e| e.seq == receipt.seq) {
                registry.apply(event);
            }
        }
        Ok(())
    }

    /// The caller a bearer secret belongs to.
    pub fn authenticate(&self, secret: &str) -> Result<Arc<Caller>, Rejection> {
        let digest = digest(secret);
        let registry = self.registry.read().map_err(|_| Rejection::Unknown)?;
        if let Some(caller) = registry.live.get(&digest) {
            return Ok(Arc::clone(caller));
        }
        match registry.all.get(&digest) {
            Some(TokenInfo { name, revoked_at: Some(at), .. }) => {
                Err(Rejection::Revoked { name: name.clone(), at: *at })
            }
            _ => Err(Rejection::Unknown),
        }
    }

    /// Every token ever created, live ones first, then by name.
    pub fn list(&self) -> Vec<TokenInfo> {
        let mut all: Vec<TokenInfo> =
            self.registry.read().map(|r| r.all.values().cloned().collect()).unwrap_or_default();
        all.sort_by(|a, b| a.revoked_at.is_some().cmp(&b.revoked_at.is_some()).then_with(|| a.name.cmp(&b.name)));
        all
    }

    /// Whether `caller` (or nobody) may do `action`; the refusal otherwise.
    pub fn check(&self, caller: Option<&Caller>, action: ApiAction) -> Result<(), ApiError> {
        let principal = caller.map_or(Principal::Anonymous, Caller::principal);
        if self.policy.allows(principal, action) {
            return Ok(());
        }
        let roles: Vec<&str> = self.policy.roles_allowed(action).into_iter().map(Role::as_str).collect();
        Err(match caller {
            None => ApiError::new(
                Code::Unauthenticated,
                "this needs an API token: send it as `Authorization: Bearer <token>` (shiplog CLI: SHIPLOG_TOKEN); an admin makes one with `shiplog token create`",
            ),
            Some(caller) => ApiError::new(
                Code::Forbidden,
                format!(
                    "the token {:?} ({}) may not {action}; that needs a token with the role {}",
                    caller.name,
                    caller.role,
                    if roles.is_empty() { "no role has".to_owned() } else { roles.join(" or ") }
                ),
            )
            .with("action", action.as_str())
            .with("role", caller.role.as_str())
            .with("allowedRoles", roles),
        })
    }

    /// `Err(seconds to wait)` when the caller is over its rate limit.
    fn rate_check(&self, caller: &Caller) -> Result<(), Duration> {
        self.limiter.check(&caller.name)
    }
}

/// What a request needs, by route and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// This action (public ones included, as the policy says).
    Action(ApiAction),
    /// Any valid token; the parts of the request check their own actions
    /// (GraphQL fields).
    Token,
}

/// The action of every route. `route` is the matched pattern.
pub fn needs(method: &Method, route: &str, req: &ServiceRequest) -> Needs {
    use ApiAction as A;
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    Needs::Action(match route {
        "/healthz" | "/readyz" => A::Health,
        "/metrics" => A::Metrics,
        "/v1/webhooks/github" | "/v1/webhooks/gitlab" => A::Webhook,
        "/v1/events" if get => {
            let query = req.query_string();
            let ndjson = req
                .headers()
                .get(actix_web::http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("ndjson"));
            if ndjson || query.split('&').any(|kv| kv == "format=cdevents") { A::Export } else { A::Read }
        }
        "/v1/events" | "/v1/cdevents" if post => A::Record,
        // The dashboard's static page and assets: no data in them.
        "/" | "/assets/app.js" | "/assets/app.css" if get => A::Console,
        // GraphiQL (a static page), and the WebSocket of subscriptions,
        // which authenticates in its connection_init message.
        "/graphql" if get => A::Console,
        "/graphql" if post => return Needs::Token,
        "/v1/decisions" if post => A::Decide,
        "/v1/policies/reload" if post => A::ManagePolicies,
        "/v1/checkpoint" | "/v1/checkpoint/key" | "/v1/proofs/inclusion" | "/v1/proofs/consistency" => A::Prove,
        "/v1/streams/{stream:.+}" => A::Read,
        "/v1/tokens" | "/v1/tokens/{name}" => A::ManageTokens,
        // Other methods on those routes (405) and unknown routes (404):
        // answered to any caller with a token that may read.
        _ => A::Read,
    })
}

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &actix_web::http::header::HeaderMap) -> Option<&str> {
    let value = headers.get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Authenticate, authorize and rate-limit one request before it reaches its
/// handler; the caller goes into the request's extensions.
pub fn admit(auth: &Auth, req: &ServiceRequest, route: &str) -> Result<(), ApiError> {
    let needs = needs(req.method(), route, req);
    let presented = bearer(req.headers());
    let caller = match presented.map(|secret| auth.authenticate(secret)) {
        None => None,
        Some(Ok(caller)) => Some(caller),
        Some(Err(rejection)) => {
            // A public action stays public whatever token comes with it.
            if let Needs::Action(action) = needs {
                if auth.policy.allows(Principal::Anonymous, action) {
                    return Ok(());
                }
            }
            return Err(match rejection {
                Rejection::Unknown => ApiError::new(
                    Code::Unauthenticated,
                    "the bearer token is not one this server issued; check SHIPLOG_TOKEN, or ask an admin for a token",
                ),
                Rejection::Revoked { name, at } => ApiError::new(
                    Code::Unauthenticated,
                    format!(
                        "the token {name:?} was revoked at {}; ask an admin for a new one",
                        shiplog_core::event::format_time(&at)
                    ),
                ),
            });
        }
    };
    let public = match needs {
        Needs::Action(action) => {
            auth.check(caller.as_deref(), action)?;
            auth.policy.allows(Principal::Anonymous, action)
        }
        Needs::Token if caller.is_none() => return auth.check(None, ApiAction::Read),
        Needs::Token => false,
    };
    if let Some(caller) = caller {
        // Public routes (probes, scrapes, webhooks) are never rate-limited.
        if let Err(wait) = if public { Ok(()) } else { auth.rate_check(&caller) } {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::new(
                Code::RateLimited,
                format!(
                    "the token {:?} is over its rate limit; retry in {secs} s (the limit is per token: give each pipeline its own)",
                    caller.name
                ),
            )
            .with("retryAfterSeconds", secs.max(1)));
        }
        req.extensions_mut().insert(caller);
    }
    Ok(())
}

/// The caller of a request, as [`admit`] left it.
pub fn caller(req: &HttpRequest) -> Option<Arc<Caller>> {
    req.extensions().get::<Arc<Caller>>().cloned()
}

/// What a request records as `recordedBy`: its token's name.
pub fn recorded_by(req: &HttpRequest) -> String {
    caller(req).map_or_else(|| "anonymous".to_owned(), |c| c.name.clone())
}

/// In a GraphQL resolver: refuse unless the caller may do `action`.
pub fn require(ctx: &async_graphql::Context<'_>, action: ApiAction) -> async_graphql::Result<()> {
    use async_graphql::ErrorExtensions;
    let Ok(state) = ctx.data::<web::Data<AppState>>() else {
        return Ok(());
    };
    let caller = ctx.data_opt::<Arc<Caller>>();
    state.auth.check(caller.map(Arc::as_ref), action).map_err(|e| {
        let code = e.code.as_str();
        async_graphql::Error::new(e.message).extend_with(|_, ext| ext.set("code", code))
    })
}

/// The GraphQL caller's name, for `recordedBy`.
pub fn graphql_recorded_by(ctx: &async_graphql::Context<'_>) -> String {
    ctx.data_opt::<Arc<Caller>>().map_or_else(|| "anonymous".to_owned(), |c| c.name.clone())
}

fn token_event(kind: &str, name: &str, role: Role, digest: &Digest32) -> Result<NewEvent, String> {
    crate::gates::server_event(
        uuid::Uuid::now_v7(),
        kind,
        SERVER,
        json!({"name": name, "role": role.as_str(), "secretSha256": hex::encode(digest)}),
    )
}

/// A token name: 1–64 of ASCII letters, digits, `-`, `_`, `.`; not one the
/// server records under itself.
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("{name:?} is not a token name: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit (for example ci-main)"),
        )
        .with("field", "name"));
    }
    if name == SERVER || name == "anonymous" {
        return Err(ApiError::new(Code::InvalidRequest, format!("{name:?} is reserved; choose another token name"))
            .with("field", "name"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    role: String,
}

/// `POST /v1/tokens` `{name, role}`: 201 with the secret, shown this once.
pub async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.ledger.require_intact()?;
    let request: CreateToken = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(Code::InvalidRequest, format!("send {{\"name\": \"ci-main\", \"role\": \"pipeline\"}}: {e}"))
    })?;
    check_name(&request.name)?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        ApiError::new(Code::InvalidRequest, format!("{:?} is not a role; use admin, pipeline or auditor", request.role))
            .with("field", "role")
    })?;
    let auth = &state.auth;
    let _writing = auth.writes.lock().await;
    let taken = auth.registry.read().map(|r| r.names.contains_key(&request.name)).unwrap_or(true);
    if taken {
        return Err(ApiError::new(
            Code::TokenExists,
            format!("a live token is named {:?}; revoke it first or choose another name", request.name),
        )
        .with("field", "name"));
    }
    let secret = new_secret().map_err(|m| ApiError::new(Code::Internal, m))?;
    let event = token_event("token.created", &request.name, role, &digest(&secret))
        .map_err(|m| ApiError::new(Code::Internal, m))?;
    let receipts = state.append(vec![event], &recorded_by(&req)).await?;
    auth.reload_from(&state.ledger, &receipts).await.map_err(|m| ApiError::new(Code::Internal, m))?;
    let seq = receipts.first().map(|r| r.seq);
    tracing::info!(name = %request.name, role = role.as_str(), "token created");
    Ok(HttpResponse::Created().json(json!({
        "name": request.name,
        "role": role.as_str(),
        "token": secret,
        "seq": seq,
        "message": "the token is shown this once; store it as a secret (SHIPLOG_TOKEN)",
    })))
}

/// `GET /v1/tokens`: every token, live and revoked, without secrets.
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"tokens": state.auth.list()}))
}

/// `DELETE /v1/tokens/{name}`: revoke the live token of that name.
pub async fn revoke(
    req: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.ledger.require_intact()?;
    let name = name.into_inner();
    let auth = &state.auth;
    let _writing = auth.writes.lock().await;
    let found = auth.registry.read().ok().and_then(|r| {
        let digest = *r.names.get(&name)?;
        Some((digest, r.live.get(&digest)?.role))
    });
    let Some((digest, role)) = found else {
        return Err(ApiError::new(Code::NotFound, format!("no live token is named {name:?}; see GET /v1/tokens"))
            .with("field", "name"));
    };
    let event = token_event("token.revoked", &name, role, &digest).map_err(|m| ApiError::new(Code::Internal, m))?;
    let receipts = state.append(vec![event], &recorded_by(&req)).await?;
    auth.reload_from(&state.ledger, &receipts).await.map_err(|m| ApiError::new(Code::Internal, m))?;
    tracing::info!(%name, "token revoked");
    Ok(HttpResponse::Ok().json(json!({"name": name, "role": role.as_str(), "revoked": true,
        "seq": receipts.first().map(|r| r.seq)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_says_how_long_to_wait() {
        let limiter =
            RateLimiter { limit: RateLimit { per_second: 10, burst: 3 }, buckets: Mutex::new(HashMap::new()) };
        for _ in 0..3 {
            assert!(limiter.check("ci").is_ok());
        }
        let wait = limiter.check("ci").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.check("other").is_ok(), "buckets are per token");
        let off = RateLimiter { limit: RateLimit { per_second: 0, burst: 0 }, buckets: Mutex::new(HashMap::new()) };
        for _ in 0..10_000 {
            assert!(off.check("ci").is_ok());
        }
    }

    #[test]
    fn bearer_is_read_case_insensitively() {
        let mut headers = actix_web::http::header::HeaderMap::new();
        headers.insert(actix_web::http::header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(actix_web::http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn token_names_are_checked() {
        assert!(check_name("ci-main").is_ok());
        assert!(check_name("shiplog").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("-x").is_err());
    }
}
