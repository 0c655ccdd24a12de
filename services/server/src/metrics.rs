//! `GET /metrics`: the Prometheus text format (0.0.4), written by hand from
//! counters and fixed-bucket histograms the server keeps, the store's own
//! figures, the projections' lag, and DORA gauges per service and
//! environment over the last 30 days.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use chrono::Utc;
use shiplog_core::delivery::{DoraQuery, Scope};
use shiplog_store::metrics::{Histogram, SECONDS};

use crate::AppState;

/// The window of the DORA gauges, in days.
pub const DORA_WINDOW_DAYS: i64 = 30;
/// How long computed DORA gauges are reused between scrapes.
const DORA_CACHE: Duration = Duration::from_secs(30);

/// What the server counts.
pub struct Metrics {
    /// Requests by (route pattern, method, status).
    http: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    append: Mutex<Histogram>,
    /// Decisions by (gate, outcome).
    decisions: Mutex<BTreeMap<(String, String), u64>>,
    dora: Mutex<Option<(Instant, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            http: Mutex::new(BTreeMap::new()),
            append: Mutex::new(Histogram::new(SECONDS)),
            decisions: Mutex::new(BTreeMap::new()),
            dora: Mutex::new(None),
        }
    }
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut http) = self.http.lock() {
            http.entry((route.to_owned(), method.to_owned(), status))
                .or_insert_with(|| Histogram::new(SECONDS))
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn observe_append(&self, elapsed: Duration) {
        if let Ok(mut h) = self.append.lock() {
            h.observe(elapsed.as_secs_f64());
        }
    }

    pub fn count_decision(&self, gate: &str, outcome: &str) {
        if let Ok(mut d) = self.decisions.lock() {
            *d.entry((gate.to_owned(), outcome.to_owned())).or_default() += 1;
        }
    }
}

/// A label value, escaped as the text format wants.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `GET /metrics`.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::with_capacity(16 * 1024);
    let m = &state.metrics;

    header(&mut out, "shiplog_build_info", "gauge", "The running shiplog's version.");
    let _ = writeln!(out, "shiplog_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

    header(&mut out, "shiplog_http_requests_total", "counter", "HTTP requests answered, by route, method and status.");
    let http = m.http.lock().map(|h| h.clone()).unwrap_or_default();
    for ((route, method, status), h) in &http {
        let _ = writeln!(
            out,
            "shiplog_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {}",
            label(route),
            label(method),
            h.count()
        );
    }
    header(
        &mut out,
        "shiplog_http_request_duration_seconds",
        "histogram",
        "Time to answer HTTP requests, by route, method and status.",
    );
    for ((route, method, status), h) in &http {
        let labels = format!("route=\"{}\",method=\"{}\",status=\"{status}\"", label(route), label(method));
        h.render(&mut out, "shiplog_http_request_duration_seconds", &labels);
    }

    header(
        &mut out,
        "shiplog_append_duration_seconds",
        "histogram",
        "Time from an append's request to its durable receipt.",
    );
    if let Ok(h) = m.append.lock() {
        h.render(&mut out, "shiplog_append_duration_seconds", "");
    }
    header(&mut out, "shiplog_append_batch_events", "histogram", "Events per durable commit (group commit size).");
    let store_metrics = state.ledger.store.metrics();
    match store_metrics.commit_sizes {
        Some(h) => h.render(&mut out, "shiplog_append_batch_events", ""),
        None => Histogram::new(shiplog_store::metrics::EVENTS).render(&mut out, "shiplog_append_batch_events", ""),
    }
    if let Some(age) = store_metrics.follow_age_seconds {
        header(
            &mut out,
            "shiplog_store_follow_age_seconds",
            "gauge",
            "Seconds since this process last confirmed the shared store's tip (bounds how far behind other processes' appends it is).",
        );
        let _ = writeln!(out, "shiplog_store_follow_age_seconds {age}");
    }

    header(&mut out, "shiplog_decisions_total", "counter", "Gate decisions, by gate and outcome.");
    for ((gate, outcome), n) in m.decisions.lock().map(|d| d.clone()).unwrap_or_default() {
        let _ =
            writeln!(out, "shiplog_decisions_total{{gate=\"{}\",outcome=\"{}\"}} {n}", label(&gate), label(&outcome));
    }

    let size = state.ledger.size();
    header(&mut out, "shiplog_ledger_events", "gauge", "Events in the ledger.");
    let _ = writeln!(out, "shiplog_ledger_events {size}");
    header(
        &mut out,
        "shiplog_ledger_intact",
        "gauge",
        "1 while the stored history checks; 0 once it was found altered.",
    );
    let _ = writeln!(out, "shiplog_ledger_intact {}", u8::from(state.ledger.integrity().is_none()));
    let applied = state.ledger.projections.applied().map_or(0, |a| a + 1);
    header(&mut out, "shiplog_projection_applied_events", "gauge", "Events the projections have applied.");
    let _ = writeln!(out, "shiplog_projection_applied_events {applied}");
    header(
        &mut out,
        "shiplog_projection_lag_events",
        "gauge",
        "Events in the ledger the projections have not applied yet.",
    );
    let _ = writeln!(out, "shiplog_projection_lag_events {}", size.saturating_sub(applied));

    out.push_str(&dora(&state));
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(out)
}

/// The DORA gauges, per service and environment, over the last
/// [`DORA_WINDOW_DAYS`] days; computed at most every [`DORA_CACHE`].
fn dora(state: &AppState) -> String {
    if let Ok(cache) = state.metrics.dora.lock() {
        if let Some((at, text)) = cache.as_ref() {
            if at.elapsed() < DORA_CACHE {
                return text.clone();
            }
        }
    }
    let mut out = String::new();
    let families: [(&str, &str); 7] = [
        ("shiplog_dora_deployments", "Deployments in the window."),
        ("shiplog_dora_deployment_frequency_per_day", "Deployments per day over the window."),
        ("shiplog_dora_lead_time_median_seconds", "Median lead time of the commits first deployed in the window."),
        ("shiplog_dora_failed_deployments", "Failed deployments in the window."),
        ("shiplog_dora_change_fail_rate", "Failed deployments / deployments in the window."),
        ("shiplog_dora_recovery_time_median_seconds", "Median recovery time of the window's failed deployments."),
        ("shiplog_dora_rework_rate", "Emergency or fixing deployments / deployments in the window."),
    ];
    let to = Utc::now();
    let from = to - chrono::Duration::days(DORA_WINDOW_DAYS);
    let mut rows: Vec<(String, String, [Option<f64>; 7])> = Vec::new();
    if let Ok(views) = state.ledger.projections.read() {
        for (service, environment) in views.delivery.services() {
            let query = DoraQuery {
                scope: Scope { environment: environment.clone(), services: Some(vec![service.clone()]) },
                from,
                to,
                bucket: None,
                attribution_window: DoraQuery::default_attribution_window(),
            };
            let Ok(d) = views.delivery.dora(&query) else { continue };
            let f = d.figures;
            // Only where something was deployed in the window: environments
            // long gone do not keep their series.
            if f.deployments == 0 {
                continue;
            }
            rows.push((
                service,
                environment,
                [
                    Some(f.deployments as f64),
                    Some(f.deployment_frequency),
                    f.lead_time.median,
                    Some(f.failed_deployments as f64),
                    f.change_fail_rate,
                    f.recovery_time.median,
                    f.rework_rate,
                ],
            ));
        }
    }
    header(&mut out, "shiplog_dora_window_days", "gauge", "The window of the shiplog_dora_* gauges, in days.");
    let _ = writeln!(out, "shiplog_dora_window_days {DORA_WINDOW_DAYS}");
    for (i, (name, help)) in families.iter().enumerate() {
        header(&mut out, name, "gauge", help);
        for (service, environment, values) in &rows {
            if let Some(v) = values[i] {
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{}\",environment=\"{}\"}} {v}",
                    label(service),
                    label(environment)
                );
            }
        }
    }
    if let Ok(mut cache) = state.metrics.dora.lock() {
        *cache = Some((Instant::now(), out.clone()));
    }
    out
}
