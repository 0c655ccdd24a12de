//! Events from other tools: `POST /v1/cdevents`, the CloudEvents HTTP
//! binding (on `/v1/cdevents` and `/v1/events`), and the GitHub and GitLab
//! webhooks. The mappings are `shiplog_core::ingest`'s; this module reads
//! requests, checks signatures, and records what the mappings make.

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value, json};
use shiplog_core::ingest::github::Outcome;
use shiplog_core::ingest::{IngestError, Ingested, cdevents, github, gitlab};
use shiplog_core::{Author, EventType, NewEvent, Receipt};

use crate::events::{read_body, recorded_by};
use crate::{ApiError, AppState, Code};

/// The webhook secrets; a webhook without one is disabled.
#[derive(Clone, Default)]
pub struct Webhooks {
    /// GitHub's webhook secret (`X-Hub-Signature-256`).
    pub github_secret: Option<String>,
    /// GitLab's secret token (`X-Gitlab-Token`).
    pub gitlab_token: Option<String>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("Webhooks")
            .field("github", &self.github_secret.as_ref().map(|_| "configured"))
            .field("gitlab", &self.gitlab_token.as_ref().map(|_| "configured"))
            .finish()
    }
}

/// A receipt, with the type recorded and why, when that is not obvious.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestReceipt {
    #[serde(flatten)]
    pub receipt: Receipt,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn ingest_error(e: IngestError, index: Option<usize>, code: Code) -> ApiError {
    let message = match index {
        Some(i) => format!("event {i} of the batch: {e}"),
        None => e.to_string(),
    };
    let mut api = ApiError::new(code, message);
    if !e.field.is_empty() {
        api = api.with("field", e.field);
    }
    if let Some(i) = index {
        api = api.with("index", i);
    }
    api
}

/// Record what integrations made, all or nothing, as recorded by `by`.
async fn record(state: &AppState, by: &str, ingested: Vec<Ingested>) -> Result<Vec<IngestReceipt>, ApiError> {
    state.ledger.require_intact()?;
    state.limits.check_batch(ingested.len())?;
    let types: Vec<(EventType, Option<String>)> =
        ingested.iter().map(|i| (i.event.event_type, i.note.clone())).collect();
    let events: Vec<NewEvent> = ingested.into_iter().map(|i| i.event).collect();
    let receipts = state.append_for_client(events, by).await?;
    let mut out = Vec::with_capacity(receipts.len());
    for (receipt, (event_type, note)) in receipts.into_iter().zip(types) {
        // A duplicate's receipt describes the event recorded first, which
        // may have been mapped otherwise (the ledger has changed since).
        let (event_type, note) = if receipt.duplicate {
            let query = shiplog_store::ReadQuery { after: receipt.seq.checked_sub(1), limit: 1, ..Default::default() };
            let stored = state.ledger.store.read(query).await?;
            (stored.first().map_or(event_type, |e| e.event_type), None)
        } else {
            (event_type, note)
        };
        out.push(IngestReceipt { receipt, event_type, note });
    }
    Ok(out)
}

/// Before mapping a webhook: wait for the projections as `catch_up` does,
/// but never fail the delivery for it (a tool may not retry): map with what
/// is known, and say so in the log.
async fn catch_up_for_webhook(state: &AppState) {
    if let Err(e) = catch_up(state).await {
        tracing::warn!(error = %e.message, "mapping a webhook delivery with projections that are behind the ledger");
    }
}

/// Wait until the projections include every event appended through this
/// server, so a mapping that reads the ledger sees what came before it.
async fn catch_up(state: &AppState) -> Result<(), ApiError> {
    let target = state.ledger.client_appends.load(std::sync::atomic::Ordering::SeqCst).checked_sub(1);
    state
        .ledger
        .projections
        .caught_up_to(target, std::time::Duration::from_secs(10))
        .await
        .map_err(|m| ApiError::new(Code::StoreUnavailable, m))
}

fn status_for(receipts: &[IngestReceipt]) -> actix_web::HttpResponseBuilder {
    if receipts.iter().all(|r| r.receipt.duplicate) { HttpResponse::Ok() } else { HttpResponse::Created() }
}

fn mime(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// How a request carries CloudEvents, if it does.
enum Binding {
    /// `application/cloudevents+json`: one event, attributes and data in the body.
    Structured,
    /// `application/cloudevents-batch+json`: an array of structured events.
    Batch,
    /// `ce-*` headers for the attributes; the body is the data.
    Binary,
    /// Not a CloudEvent: plain JSON.
    None,
}

fn binding(req: &HttpRequest) -> Binding {
    match mime(req).as_str() {
        "application/cloudevents+json" => Binding::Structured,
        "application/cloudevents-batch+json" => Binding::Batch,
        _ if req.headers().contains_key("ce-specversion") => Binding::Binary,
        _ => Binding::None,
    }
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("the request body is not valid JSON: {e}")))
}

/// A CloudEvent, in its structured form.
fn structured(body: &[u8]) -> Result<Value, ApiError> {
    let v = json_body(body)?;
    if !v.is_object() {
        return Err(ApiError::new(Code::InvalidEvent, "a structured CloudEvent is a JSON object"));
    }
    Ok(v)
}

/// A binary-mode CloudEvent as a structured one: `ce-*` headers for the
/// attributes, the body for the data.
fn from_headers(headers: &HeaderMap, body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let mut ce = Map::new();
    for (name, value) in headers {
        if let Some(attr) = name.as_str().strip_prefix("ce-") {
            let value = value.to_str().map_err(|_| {
                ApiError::new(Code::InvalidEvent, format!("header {name} is not text")).with("field", name.as_str())
            })?;
            if ce.insert(attr.to_owned(), Value::String(shiplog_core::ingest::percent_decode(value))).is_some() {
                return Err(ApiError::new(Code::InvalidEvent, format!("header {name} is given more than once"))
                    .with("field", attr));
            }
        }
    }
    if !content_type.is_empty() {
        ce.insert("datacontenttype".into(), Value::String(content_type.to_owned()));
        check_content_type(content_type)?;
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(
            ApiError::new(Code::InvalidEvent, "the CloudEvent has no data: the body is empty").with("field", "data")
        );
    }
    let data = json_body(body)?;
    ce.insert("data".into(), data);
    Ok(Value::Object(ce))
}

fn ce_str<'a>(ce: &'a Value, attr: &str) -> Result<&'a str, ApiError> {
    ce.get(attr).and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::new(
            Code::InvalidEvent,
            format!("the CloudEvent has no `{attr}` attribute (ce-{attr} in binary mode)"),
        )
        .with("field", attr)
    })
}

/// A CloudEvent's data as JSON: `data`, or `data_base64` holding JSON.
fn check_content_type(ct: &str) -> Result<(), ApiError> {
    let ct = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if ct == "application/json" || ct.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("the CloudEvent's data is {ct:?}; shiplog reads JSON data (application/json)"),
        ))
    }
}

fn ce_data(ce: &Value) -> Result<Value, ApiError> {
    if let Some(ct) = ce.get("datacontenttype").and_then(Value::as_str) {
        check_content_type(ct)?;
    }
    if ce.get("data").is_some() && ce.get("data_base64").is_some() {
        return Err(ApiError::new(Code::InvalidEvent, "the CloudEvent has both data and data_base64; send one")
            .with("field", "data_base64"));
    }
    if let Some(data) = ce.get("data") {
        return Ok(data.clone());
    }
    if let Some(b64) = ce.get("data_base64").and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| {
            ApiError::new(Code::InvalidEvent, format!("data_base64 is not base64: {e}")).with("field", "data_base64")
        })?;
        return serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(Code::InvalidJson, format!("data_base64 does not hold JSON: {e}"))
                .with("field", "data_base64")
        });
    }
    Err(ApiError::new(Code::InvalidEvent, "the CloudEvent has no data").with("field", "data"))
}

fn check_specversion(ce: &Value) -> Result<(), ApiError> {
    match ce_str(ce, "specversion")? {
        "1.0" => Ok(()),
        other => Err(ApiError::new(
            Code::InvalidEvent,
            format!("CloudEvents spec version {other:?} is not supported; send 1.0"),
        )
        .with("field", "specversion")),
    }
}

fn is_cdevent_type(t: &str) -> bool {
    t.starts_with("dev.cdevents.") || t.starts_with("dev.cdeventsx.")
}

/// The CDEvent a CloudEvent carries; its attributes must agree with the
/// CDEvent's context, as the CDEvents CloudEvents binding says.
fn cdevent_of(ce: &Value) -> Result<Value, ApiError> {
    check_specversion(ce)?;
    let data = ce_data(ce)?;
    for (attr, field) in [("id", "id"), ("source", "source"), ("type", "type")] {
        let want = ce_str(ce, attr)?;
        let got = data.pointer(&format!("/context/{field}")).and_then(Value::as_str);
        if got.is_some_and(|g| g != want) {
            return Err(ApiError::new(
                Code::InvalidEvent,
                format!(
                    "the CloudEvent's {attr} {want:?} differs from its CDEvent's context.{field} {:?}; they must be the same",
                    got.unwrap_or_default()
                ),
            )
            .with("field", attr));
        }
    }
    Ok(data)
}

/// A native event sent as a CloudEvent: `type` is the event type (or
/// `dev.shiplog.` and the type), `id` the event id (a UUID; any other id is
/// made one with `source`), `time` when it happened, the `actor`
/// extension who did it, `data` its data; the `stream` extension, if any,
/// its stream.
fn native_of(ce: &Value) -> Result<Value, ApiError> {
    check_specversion(ce)?;
    let t = ce_str(ce, "type")?;
    let t = t.strip_prefix("dev.shiplog.").unwrap_or(t);
    let id = ce_str(ce, "id")?;
    let source = ce_str(ce, "source")?;
    let id = match uuid::Uuid::parse_str(id) {
        Ok(u) => u,
        Err(_) => shiplog_core::ingest::derive_id("cloudevents", &[source, id]),
    };
    let time = ce_str(ce, "time").map_err(|_| {
        ApiError::new(Code::InvalidEvent, "the CloudEvent has no `time` attribute: when did it happen?")
            .with("field", "time")
    })?;
    let actor = ce_str(ce, "actor").map_err(|_| {
        ApiError::new(
            Code::InvalidEvent,
            "the CloudEvent has no `actor` extension attribute (ce-actor in binary mode): who did it?",
        )
        .with("field", "actor")
    })?;
    let mut envelope = json!({
        "id": id, "type": t, "occurredAt": time, "actor": actor, "source": source, "data": ce_data(ce)?,
    });
    if let (Some(stream), Value::Object(m)) = (ce.get("stream"), &mut envelope) {
        m.insert("stream".into(), stream.clone());
    }
    Ok(envelope)
}

/// What the body of a CDEvents or events request holds, as CDEvents or
/// native envelopes, in order.
enum Item {
    CdEvent(Value),
    Native(Value),
}

fn items(req: &HttpRequest, body: &[u8], plain_is_cdevent: bool) -> Result<(Vec<Item>, bool), ApiError> {
    let classify = |ce: Value| -> Result<Item, ApiError> {
        let t = ce.get("type").and_then(Value::as_str).unwrap_or_default();
        if is_cdevent_type(t) { Ok(Item::CdEvent(cdevent_of(&ce)?)) } else { Ok(Item::Native(native_of(&ce)?)) }
    };
    match binding(req) {
        Binding::Structured => Ok((vec![classify(structured(body)?)?], true)),
        Binding::Binary => Ok((vec![classify(from_headers(req.headers(), body, &mime(req))?)?], true)),
        Binding::Batch => {
            let Value::Array(list) = json_body(body)? else {
                return Err(ApiError::new(Code::InvalidEvent, "a CloudEvents batch is a JSON array of events"));
            };
            if list.is_empty() {
                return Err(ApiError::new(Code::EmptyBatch, "the batch is empty; send at least one event"));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, ce) in list.into_iter().enumerate() {
                out.push(classify(ce).map_err(|e| e.with("index", i))?);
            }
            Ok((out, false))
        }
        Binding::None => {
            let m = mime(req);
            if !(m.is_empty() || m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))) {
                return Err(ApiError::new(
                    Code::UnsupportedMediaType,
                    format!(
                        "send application/json, application/cloudevents+json or application/cloudevents-batch+json, not {m:?}"
                    ),
                ));
            }
            let wrap = |v: Value| if plain_is_cdevent { Item::CdEvent(v) } else { Item::Native(v) };
            match json_body(body)? {
                Value::Array(list) => {
                    if list.is_empty() {
                        return Err(ApiError::new(Code::EmptyBatch, "the batch is empty; send at least one event"));
                    }
                    Ok((list.into_iter().map(wrap).collect(), false))
                }
                v => Ok((vec![wrap(v)], true)),
            }
        }
    }
}

/// Turn items into events: CDEvents checked and mapped, native events
/// parsed.
async fn ingest_items(state: &AppState, items: Vec<Item>, single: bool) -> Result<Vec<Ingested>, ApiError> {
    state.limits.check_batch(items.len())?;
    enum Parsed {
        Native(Box<NewEvent>),
        Cd(Box<cdevents::CdEvent>),
    }
    let index = |i: usize| if single { None } else { Some(i) };
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        parsed.push(match item {
            Item::CdEvent(v) => {
                Parsed::Cd(Box::new(cdevents::parse(v).map_err(|e| ingest_error(e, index(i), Code::InvalidEvent))?))
            }
            Item::Native(v) => Parsed::Native(Box::new(
                NewEvent::parse(v, Author::Client).map_err(|e| ApiError::from_event(e, index(i)))?,
            )),
        });
    }
    if parsed.iter().any(|p| matches!(p, Parsed::Cd(_))) {
        catch_up(state).await?;
    }
    let views = state.ledger.projections.read()?;
    let mut lookup = shiplog_core::ingest::BatchLookup::new(&views.delivery);
    let mut out = Vec::with_capacity(parsed.len());
    for (i, p) in parsed.into_iter().enumerate() {
        let ingested = match p {
            Parsed::Native(event) => Ingested { event: *event, note: None },
            Parsed::Cd(cd) => {
                cdevents::to_ledger(&cd, &lookup).map_err(|e| ingest_error(e, index(i), Code::InvalidEvent))?
            }
        };
        lookup.add(&ingested.event);
        out.push(ingested);
    }
    Ok(out)
}

/// `POST /v1/cdevents`: one CDEvent or an array, as plain JSON or through
/// the CloudEvents binding.
pub async fn post_cdevents(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.ledger.require_intact()?;
    let body = read_body(&req, payload, state.limits.max_body_bytes).await?;
    let (items, single) = items(&req, &body, true)?;
    let ingested = ingest_items(&state, items, single).await?;
    respond(&state, &req, ingested, single).await
}

/// `POST /v1/events` through the CloudEvents binding (native events or
/// CDEvents); plain JSON stays with `events::append`.
pub(crate) fn is_cloudevent(req: &HttpRequest) -> bool {
    !matches!(binding(req), Binding::None)
}

pub async fn post_events_as_cloudevents(
    req: &HttpRequest,
    body: &[u8],
    state: &web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (items, single) = items(req, body, false)?;
    let ingested = ingest_items(state, items, single).await?;
    respond(state, req, ingested, single).await
}

async fn respond(
    state: &AppState,
    req: &HttpRequest,
    ingested: Vec<Ingested>,
    single: bool,
) -> Result<HttpResponse, ApiError> {
    let receipts = record(state, &recorded_by(req), ingested).await?;
    let mut response = status_for(&receipts);
    Ok(match (single, receipts.first()) {
        (true, Some(r)) => response.json(r),
        _ => response.json(&receipts),
    })
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// A webhook's JSON payload: the body, or for GitHub's
/// `application/x-www-form-urlencoded` deliveries its `payload` field.
fn webhook_payload(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    if mime(req) == "application/x-www-form-urlencoded" {
        let text =
            std::str::from_utf8(body).map_err(|_| ApiError::new(Code::InvalidPayload, "the form body is not UTF-8"))?;
        let form = web::Query::<std::collections::HashMap<String, String>>::from_query(text)
            .map_err(|e| ApiError::new(Code::InvalidPayload, format!("the form body cannot be read: {e}")))?;
        let payload = form.get("payload").ok_or_else(|| {
            ApiError::new(Code::InvalidPayload, "the form has no `payload` field").with("field", "payload")
        })?;
        return serde_json::from_str(payload)
            .map_err(|e| ApiError::new(Code::InvalidJson, format!("the payload is not valid JSON: {e}")));
    }
    json_body(body)
}

async fn webhook_response(
    state: &AppState,
    by: &str,
    outcome: Result<Outcome, IngestError>,
) -> Result<HttpResponse, ApiError> {
    match outcome.map_err(|e| ingest_error(e, None, Code::InvalidPayload))? {
        Outcome::Pong => Ok(HttpResponse::Ok().json(json!({"pong": true}))),
        Outcome::Ignored(reason) => Ok(HttpResponse::Accepted().json(json!({"ignored": true, "reason": reason}))),
        Outcome::Record(events) if events.is_empty() => {
            Ok(HttpResponse::Accepted().json(json!({"ignored": true, "reason": "nothing to record"})))
        }
        Outcome::Record(events) => {
            let receipts = record(state, by, events).await?;
            let mut response = status_for(&receipts);
            Ok(response.json(json!({"recorded": receipts})))
        }
    }
}

/// Who events recorded from webhooks are recorded by.
const GITHUB: &str = "webhook:github";
const GITLAB: &str = "webhook:gitlab";

/// `POST /v1/webhooks/github`.
pub async fn github_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(secret) = state.webhooks.github_secret.clone() else {
        return Err(ApiError::new(
            Code::WebhookDisabled,
            "GitHub webhooks are not enabled here: start the server with SHIPLOG_GITHUB_WEBHOOK_SECRET set to the webhook's secret",
        ));
    };
    let body = read_body(&req, payload, state.limits.max_webhook_body_bytes).await?;
    github::verify_signature(secret.as_bytes(), &body, header_str(&req, "x-hub-signature-256"))
        .map_err(|e| ApiError::new(Code::InvalidSignature, e.to_string()))?;
    state.ledger.require_intact()?;
    let event = header_str(&req, "x-github-event").ok_or_else(|| {
        ApiError::new(Code::InvalidPayload, "the X-GitHub-Event header is missing").with("field", "X-GitHub-Event")
    })?;
    let delivery = header_str(&req, "x-github-delivery").ok_or_else(|| {
        ApiError::new(Code::InvalidPayload, "the X-GitHub-Delivery header is missing")
            .with("field", "X-GitHub-Delivery")
    })?;
    tracing::debug!(event, delivery, "GitHub delivery");
    let value = webhook_payload(&req, &body)?;
    catch_up_for_webhook(&state).await;
    let outcome = {
        let views = state.ledger.projections.read()?;
        github::map(event, &value, Utc::now(), &views.delivery)
    };
    webhook_response(&state, GITHUB, outcome).await
}

/// `POST /v1/webhooks/gitlab`.
pub async fn gitlab_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(token) = state.webhooks.gitlab_token.clone() else {
        return Err(ApiError::new(
            Code::WebhookDisabled,
            "GitLab webhooks are not enabled here: start the server with SHIPLOG_GITLAB_WEBHOOK_TOKEN set to the webhook's secret token",
        ));
    };
    if !gitlab::token_matches(&token, header_str(&req, "x-gitlab-token")) {
        return Err(ApiError::new(
            Code::InvalidSignature,
            "the X-Gitlab-Token header is missing or wrong; set the webhook's secret token in GitLab",
        ));
    }
    let body = read_body(&req, payload, state.limits.max_webhook_body_bytes).await?;
    state.ledger.require_intact()?;
    let kind = header_str(&req, "x-gitlab-event").ok_or_else(|| {
        ApiError::new(Code::InvalidPayload, "the X-Gitlab-Event header is missing").with("field", "X-Gitlab-Event")
    })?;
    let value = webhook_payload(&req, &body)?;
    catch_up_for_webhook(&state).await;
    let outcome = {
        let views = state.ledger.projections.read()?;
        gitlab::map(kind, &value, Utc::now(), &views.delivery)
    };
    webhook_response(&state, GITLAB, outcome).await
}
