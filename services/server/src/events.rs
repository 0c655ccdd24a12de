//! `POST /v1/events`, `GET /v1/events` and `GET /v1/streams/{stream}`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use shiplog_core::{Author, EventType, NewEvent, RecordedEvent};
use shiplog_store::{MAX_READ_LIMIT, ReadQuery};

use crate::{ApiError, AppState, Code};

/// Who recorded what this request appends: its token's name.
pub(crate) fn recorded_by(req: &HttpRequest) -> String {
    crate::auth::recorded_by(req)
}

/// Append one event (a JSON object) or a batch (a JSON array), all or
/// nothing. 201 with the receipt(s) when anything new was recorded; 200 when
/// every event was a duplicate of one already recorded.
pub async fn append(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.ledger.require_intact()?;
    if crate::ingest::is_cloudevent(&req) {
        let body = read_body(&req, payload, state.limits.max_body_bytes).await?;
        return crate::ingest::post_events_as_cloudevents(&req, &body, &state).await;
    }
    require_json(&req)?;
    let body = read_body(&req, payload, state.limits.max_body_bytes).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("the request body is not valid JSON: {e}")))?;
    let single = !value.is_array();
    let receipts = record(&state, value, &recorded_by(&req)).await?;
    let mut response = if receipts.iter().all(|r| r.duplicate) { HttpResponse::Ok() } else { HttpResponse::Created() };
    Ok(match (single, receipts.first()) {
        (true, Some(receipt)) => response.json(receipt),
        _ => response.json(&receipts),
    })
}

/// Record one event (an object) or a batch (an array), all or nothing, and
/// return the receipts: the one way clients append, over REST and GraphQL.
pub(crate) async fn record(
    state: &AppState,
    value: Value,
    recorded_by: &str,
) -> Result<Vec<shiplog_core::Receipt>, ApiError> {
    state.ledger.require_intact()?;
    let events = match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::new(Code::EmptyBatch, "the batch is empty; send at least one event"));
            }
            state.limits.check_batch(items.len())?;
            let mut events = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                events.push(NewEvent::parse(item, Author::Client).map_err(|e| ApiError::from_event(e, Some(i)))?);
            }
            events
        }
        other => vec![NewEvent::parse(other, Author::Client).map_err(|e| ApiError::from_event(e, None))?],
    };
    state.append_for_client(events, recorded_by).await
}

fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::new(Code::UnsupportedMediaType, format!("events are sent as application/json, not {mime:?}")))
    }
}

/// The request body, refused with 413 as soon as it is known to be larger
/// than `limit`.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || {
        ApiError::new(
            Code::BodyTooLarge,
            format!("the request body is larger than {limit} bytes; send smaller batches"),
        )
        .with("limit", limit)
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        // A client still sending would see its connection reset rather than
        // this answer: take in (and drop) a body that is over by a little
        // first; one far over is answered at once.
        if declared.is_some_and(|n| n <= limit.saturating_add(DRAIN_AT_MOST)) {
            drain(&mut payload, DRAIN_AT_MOST).await;
        }
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(Code::InvalidJson, format!("the request body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            drain(&mut payload, DRAIN_AT_MOST).await;
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How much of a refused body is read and dropped so that its sender gets
/// the 413 rather than a reset connection.
const DRAIN_AT_MOST: usize = 16 * 1024 * 1024;

/// Read and drop the rest of a body, up to `at_most` bytes.
async fn drain(payload: &mut web::Payload, at_most: usize) {
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = payload.next().await {
        seen += chunk.len();
        if seen > at_most {
            break;
        }
    }
}

pub(crate) fn parse_query<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::new(Code::InvalidQuery, format!("invalid query string: {e}")))
}

fn check_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=MAX_READ_LIMIT).contains(&n) => Ok(n),
        Some(n) => {
            Err(ApiError::new(Code::InvalidQuery, format!("limit must be between 1 and {MAX_READ_LIMIT}, got {n}"))
                .with("field", "limit"))
        }
    }
}

fn wants_ndjson(req: &HttpRequest) -> bool {
    req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/x-ndjson"))
}

fn ndjson(events: &[RecordedEvent]) -> Result<HttpResponse, ApiError> {
    let mut out = Vec::with_capacity(events.len() * 512);
    for e in events {
        serde_json::to_writer(&mut out, e).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        out.push(b'\n');
    }
    Ok(HttpResponse::Ok().content_type("application/x-ndjson").body(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<i64>,
    limit: Option<usize>,
    stream: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    format: Option<String>,
}

/// Events with `seq` greater than `after`, in `seq` order, optionally of one
/// stream or type. JSON `{events, nextAfter}`, or NDJSON (one event per
/// line) when the client accepts `application/x-ndjson`.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = parse_query(&req)?;
    let after = match q.after {
        None | Some(-1) => None,
        Some(n) if n >= 0 => Some(n.unsigned_abs()),
        Some(n) => {
            return Err(
                ApiError::new(Code::InvalidQuery, format!("after must be a seq ≥ -1, got {n}")).with("field", "after")
            );
        }
    };
    let event_type = match q.event_type.as_deref() {
        None => None,
        Some(t) => Some(EventType::parse(t).ok_or_else(|| {
            ApiError::new(Code::InvalidQuery, format!("unknown event type {t:?}; valid types are: {}", type_list()))
                .with("field", "type")
        })?),
    };
    let cdevents = match q.format.as_deref() {
        None | Some("shiplog") => false,
        Some("cdevents") => true,
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidQuery,
                format!("format {other:?} is not one shiplog serves; use shiplog (the default) or cdevents"),
            )
            .with("field", "format"));
        }
    };
    let limit = check_limit(q.limit)?;
    let events = state.ledger.store.read(ReadQuery { after, limit, stream: q.stream, event_type }).await?;
    if cdevents {
        let next_after = events.last().map(|e| e.seq).or(after);
        let exported: Vec<Value> = events.iter().map(shiplog_core::ingest::cdevents::export).collect();
        if wants_ndjson(&req) {
            let mut out = Vec::with_capacity(exported.len() * 512);
            for e in &exported {
                serde_json::to_writer(&mut out, e).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
                out.push(b'\n');
            }
            return Ok(HttpResponse::Ok().content_type("application/x-ndjson").body(out));
        }
        return Ok(HttpResponse::Ok().json(json!({"events": exported, "nextAfter": next_after})));
    }
    if wants_ndjson(&req) {
        return ndjson(&events);
    }
    let next_after = events.last().map(|e| e.seq).or(after);
    Ok(HttpResponse::Ok().json(json!({"events": events, "nextAfter": next_after})))
}

fn type_list() -> String {
    EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// One stream's events from version `from` on: `{stream, version, events,
/// nextFrom}`, where `version` is the stream's current version (the value to
/// send as `expectedVersion` to append after it).
pub async fn stream(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let stream = path.into_inner();
    let q: StreamQuery = parse_query(&req)?;
    let limit = check_limit(q.limit)?;
    let Some(version) = state.ledger.store.stream_version(&stream).await? else {
        return Err(ApiError::new(Code::NotFound, format!("stream {stream:?} has no events")).with("stream", stream));
    };
    let from = q.from.unwrap_or(0);
    let events = state.ledger.store.read_stream(&stream, from, limit).await?;
    if wants_ndjson(&req) {
        return ndjson(&events);
    }
    let next_from = events.last().map_or(from, |e| e.stream_version + 1);
    Ok(HttpResponse::Ok().json(json!({"stream": stream, "version": version, "events": events, "nextFrom": next_from})))
}
