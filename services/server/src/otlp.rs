//! OpenTelemetry trace export: a span per request, sent to an OTLP/HTTP
//! collector (`POST {endpoint}/v1/traces`, the protocol's JSON encoding)
//! when one is configured. A W3C `traceparent` header on the request makes
//! the span a child of the caller's.
//!
//! Spans go through a bounded queue to one exporter thread, which sends
//! them in batches (every second, or 256 at a time); when the collector is
//! slow or down, spans are dropped rather than slowing requests, and the
//! drops are logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Spans waiting to be sent, at most.
const QUEUE: usize = 8_192;
/// Spans per request to the collector, at most.
const BATCH: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where to send traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://otel-collector:4318`); traces go
    /// to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the spans.
    pub service_name: String,
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    pub error: bool,
}

/// The exporter's handle: cheap to record into from any thread.
pub struct Otlp {
    queue: SyncSender<Span>,
    dropped: AtomicU64,
}

impl Otlp {
    /// Start the exporter thread.
    pub fn start(config: OtlpConfig) -> Result<Otlp, String> {
        let endpoint = config.endpoint.trim_end_matches('/');
        if !endpoint.starts_with("http://") {
            return Err(format!(
                "the OTLP endpoint {endpoint:?} must be an http:// URL (a collector beside shiplog; https is not supported)"
            ));
        }
        let url = format!("{endpoint}/v1/traces");
        let (queue, spans) = std::sync::mpsc::sync_channel(QUEUE);
        let service = config.service_name;
        std::thread::Builder::new()
            .name("shiplog-otlp".into())
            .spawn(move || export(&url, &service, &spans))
            .map_err(|e| format!("cannot start the OTLP exporter: {e}"))?;
        tracing::info!(endpoint = %config.endpoint, "exporting traces over OTLP/HTTP");
        Ok(Otlp { queue, dropped: AtomicU64::new(0) })
    }

    /// Queue a finished span; dropped when the queue is full.
    pub fn record(&self, span: Span) {
        match self.queue.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "the OTLP queue is full: spans are dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The trace and parent span of a W3C `traceparent` header
/// (`00-{32 hex}-{16 hex}-{2 hex}`), when it is well formed.
pub fn parse_traceparent(header: &str) -> Option<([u8; 16], [u8; 8])> {
    let parts: Vec<&str> = header.trim().split('-').collect();
    let [version, trace, parent, flags] = parts.as_slice() else { return None };
    if version.len() != 2 || *version == "ff" || flags.len() != 2 || hex::decode(flags).is_err() {
        return None;
    }
    let trace: [u8; 16] = hex::decode(trace).ok()?.try_into().ok()?;
    let parent: [u8; 8] = hex::decode(parent).ok()?.try_into().ok()?;
    // All-zero ids are invalid.
    (trace != [0; 16] && parent != [0; 8]).then_some((trace, parent))
}

/// Fresh random ids.
pub fn new_trace_id() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

pub fn new_span_id() -> [u8; 8] {
    let b = uuid::Uuid::new_v4().into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()).to_string()
}

fn attribute(key: &str, value: &Value) -> Value {
    let v = match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": v})
}

/// The OTLP/HTTP JSON body for `spans`.
pub fn encode(service: &str, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": hex::encode(s.trace_id),
                "spanId": hex::encode(s.span_id),
                "name": s.name,
                "kind": 2,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
                "status": {"code": if s.error { 2 } else { 0 }},
            });
            if let (Some(p), Value::Object(m)) = (s.parent_span_id, &mut span) {
                m.insert("parentSpanId".into(), json!(hex::encode(p)));
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            attribute("service.name", &json!(service)),
            attribute("service.version", &json!(env!("CARGO_PKG_VERSION"))),
        ]},
        "scopeSpans": [{"scope": {"name": "shiplog", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
    }]})
}

fn export(url: &str, service: &str, spans: &Receiver<Span>) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let mut batch = Vec::with_capacity(BATCH);
    let mut last = Instant::now();
    let mut failures = 0u64;
    loop {
        let closed = match spans.recv_timeout(FLUSH_EVERY) {
            Ok(span) => {
                batch.push(span);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if !batch.is_empty() && (batch.len() >= BATCH || last.elapsed() >= FLUSH_EVERY || closed) {
            let body = encode(service, &batch).to_string();
            match agent.post(url).set("Content-Type", "application/json").send_string(&body) {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::warn!(error = %e, spans = batch.len(), failures, "cannot send spans to the OTLP collector");
                    }
                }
            }
            batch.clear();
            last = Instant::now();
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn traceparents() {
        let (t, p) = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex::encode(t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p), "00f067aa0ba902b7");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_json_encoding() {
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: Some([3; 8]),
            name: "POST /v1/events".into(),
            start: UNIX_EPOCH + Duration::from_nanos(1_000),
            end: UNIX_EPOCH + Duration::from_nanos(2_500),
            attributes: vec![("http.response.status_code", json!(201)), ("url.path", json!("/v1/events"))],
            error: false,
        };
        let v = encode("shiplog", &[span]);
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "01010101010101010101010101010101");
        assert_eq!(s["parentSpanId"], "0303030303030303");
        assert_eq!(s["startTimeUnixNano"], "1000");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["attributes"][0], json!({"key": "http.response.status_code", "value": {"intValue": "201"}}));
        assert_eq!(v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"], "shiplog");
    }
}
