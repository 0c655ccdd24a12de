//! shiplog's HTTP API. This is the only crate that knows HTTP: it turns
//! requests into domain values (through `shiplog-core`'s parsers), hands them
//! to the store, and turns answers and errors back into JSON.

pub mod auth;
mod dashboard;
mod error;
mod events;
mod gates;
pub mod graphql;
mod health;
mod ingest;
mod ledger;
mod metrics;
pub mod otlp;
mod projections;
mod proofs;
pub mod tls;

use std::future::Future;
use std::net::TcpListener;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpMessage, HttpServer, web};

pub use auth::{AuthConfig, RateLimit};
pub use error::{ApiError, Code};
pub use gates::PolicyConfig;
pub use ingest::Webhooks;
pub use ledger::Ledger;
pub use projections::{Projections, Views};

/// Bounds on what one request may ask of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most events in one batch (413 beyond).
    pub max_batch: usize,
    /// Largest webhook body, in bytes: GitHub sends up to 25 MB.
    pub max_webhook_body_bytes: usize,
}

impl Limits {
    /// Refuse (413) a request that makes more than `max_batch` events.
    pub(crate) fn check_batch(&self, events: usize) -> Result<(), ApiError> {
        let max = self.max_batch;
        if events > max {
            return Err(ApiError::new(
                Code::BatchTooLarge,
                format!("the batch has {events} events; at most {max} are allowed per request, split it"),
            )
            .with("limit", max));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: 1024 * 1024, max_batch: 10_000, max_webhook_body_bytes: 25 * 1024 * 1024 }
    }
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    /// HTTP worker threads; `None`: one per core.
    pub workers: Option<usize>,
    /// How long in-flight requests may take to finish after a shutdown
    /// signal, in seconds.
    pub shutdown_timeout_secs: u64,
    /// The webhook secrets.
    pub webhooks: Webhooks,
    /// Where to export traces, if anywhere.
    pub otlp: Option<otlp::OtlpConfig>,
    /// Tokens, the access policy, the rate limit and the request timeout.
    pub auth: AuthConfig,
    /// HTTPS, when given a certificate and key ([`tls::server_config`]).
    pub tls: Option<rustls::ServerConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            workers: None,
            shutdown_timeout_secs: 30,
            webhooks: Webhooks::default(),
            otlp: None,
            auth: AuthConfig::default(),
            tls: None,
        }
    }
}

/// What every request handler can reach.
pub struct AppState {
    pub ledger: Ledger,
    pub limits: Limits,
    pub webhooks: Webhooks,
    pub metrics: metrics::Metrics,
    /// The trace exporter, when one is configured.
    pub otlp: Option<otlp::Otlp>,
    /// Tokens, the access policy and the rate limit.
    pub auth: auth::Auth,
}

impl AppState {
    /// Append through the store, timed for `/metrics`: every append the
    /// server makes (clients', integrations', decisions) goes through here.
    pub async fn append(
        &self,
        events: Vec<shiplog_core::NewEvent>,
        recorded_by: &str,
    ) -> Result<Vec<shiplog_core::Receipt>, shiplog_store::AppendError> {
        let started = Instant::now();
        let result = self.ledger.store.append(events, recorded_by).await;
        self.metrics.observe_append(started.elapsed());
        result
    }

    /// Append what a client sent (directly, or through an integration),
    /// and note how far clients' appends go: the facts a decision waits for.
    pub async fn append_for_client(
        &self,
        events: Vec<shiplog_core::NewEvent>,
        recorded_by: &str,
    ) -> Result<Vec<shiplog_core::Receipt>, ApiError> {
        let receipts = self.append(events, recorded_by).await?;
        if let Some(last) = receipts.iter().map(|r| r.seq).max() {
            self.ledger.client_appends.fetch_max(last + 1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(receipts)
    }
}

/// The route pattern a request matched (`unmatched` for none), worked out
/// once per request.
#[derive(Debug, Clone)]
struct MatchedRoute(String);

/// The request id of the current request, from `X-Request-Id` or made up.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Serve the API on `listener` until `shutdown` completes, then let requests
/// in flight finish (their appends are acknowledged) and return. The caller
/// closes the store afterwards. `auth` comes from [`auth::Auth::open`].
pub async fn serve(
    listener: TcpListener,
    ledger: Ledger,
    auth: auth::Auth,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Err(e) = shiplog_core::ingest::cdevents::catalog() {
        tracing::error!(error = %e, "POST /v1/cdevents will refuse every CDEvent");
    }
    let otlp = match config.otlp.map(otlp::Otlp::start) {
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "traces are not exported");
            None
        }
        None => None,
    };
    let state = web::Data::new(AppState {
        ledger,
        limits: config.limits,
        webhooks: config.webhooks,
        metrics: metrics::Metrics::default(),
        otlp,
        auth,
    });
    reload_on_sighup(state.clone());
    let schema = web::Data::new(graphql::schema(Some(state.clone())));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(schema.clone())
            // Innermost: who is calling, may they, and how long they may take.
            .wrap_fn(|req, srv| {
                use actix_web::ResponseError;
                use futures_util::future::{Either, FutureExt};
                let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                    return Either::Left(srv.call(req));
                };
                // The outer layer matched the route already.
                let route = req
                    .extensions()
                    .get::<MatchedRoute>()
                    .map_or_else(|| req.match_pattern().unwrap_or_default(), |r| r.0.clone());
                if let Err(refusal) = auth::admit(&state.auth, &req, &route) {
                    let (http, _) = req.into_parts();
                    let response = actix_web::dev::ServiceResponse::new(http, refusal.error_response());
                    return Either::Right(futures_util::future::ready(Ok(response)).boxed_local());
                }
                let timeout = state.auth.request_timeout;
                let call = srv.call(req);
                Either::Right(
                    async move {
                        match actix_web::rt::time::timeout(timeout, call).await {
                            Ok(answer) => answer,
                            Err(_) => Err(ApiError::new(
                                Code::Timeout,
                                format!(
                                    "the request took longer than {} s and was abandoned; retry (appends are idempotent by id)",
                                    timeout.as_secs()
                                ),
                            )
                            .into()),
                        }
                    }
                    .boxed_local(),
                )
            })
            .wrap_fn(|req, srv| {
                use tracing::Instrument;
                let started = Instant::now();
                let request_id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
                    .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
                req.extensions_mut().insert(RequestId(request_id.clone()));
                let method = req.method().clone();
                // Any token is an HTTP method to actix: label the standard
                // ones, and the rest as one, so that /metrics stays bounded.
                let method_label: &'static str = match method.as_str() {
                    "GET" => "GET",
                    "HEAD" => "HEAD",
                    "POST" => "POST",
                    "PUT" => "PUT",
                    "PATCH" => "PATCH",
                    "DELETE" => "DELETE",
                    "OPTIONS" => "OPTIONS",
                    _ => "OTHER",
                };
                let path = req.path().to_owned();
                // The route's pattern, not the path: one series per route.
                let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
                req.extensions_mut().insert(MatchedRoute(route.clone()));
                let state = req.app_data::<web::Data<AppState>>().cloned();
                // The caller's trace, if it sent one (W3C traceparent).
                let traced = state.as_ref().is_some_and(|s| s.otlp.is_some()).then(|| {
                    let parent = req
                        .headers()
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .and_then(otlp::parse_traceparent);
                    (parent, std::time::SystemTime::now())
                });
                // Every line logged while the request is served carries its id.
                let span = tracing::info_span!("request", request_id = %request_id);
                let call = span.in_scope(|| srv.call(req));
                async move {
                    let mut res = call.await?;
                    let status = res.status().as_u16();
                    let elapsed = started.elapsed();
                    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                    if let Some(state) = &state {
                        state.metrics.observe_request(&route, method_label, status, elapsed);
                        if let (Some(exporter), Some((parent, start))) = (&state.otlp, traced) {
                            exporter.record(otlp::Span {
                                trace_id: parent.map_or_else(otlp::new_trace_id, |p| p.0),
                                span_id: otlp::new_span_id(),
                                parent_span_id: parent.map(|p| p.1),
                                name: format!("{method_label} {route}"),
                                start,
                                end: start + elapsed,
                                attributes: vec![
                                    ("http.request.method", method_label.into()),
                                    ("http.route", route.clone().into()),
                                    ("url.path", path.clone().into()),
                                    ("http.response.status_code", status.into()),
                                    ("shiplog.request_id", request_id.clone().into()),
                                ],
                                error: status >= 500,
                            });
                        }
                    }
                    if status >= 500 {
                        tracing::error!(%method, %path, status, micros, "request");
                    } else if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
                        // Probes and scrapes every few seconds: not worth a line each.
                        tracing::debug!(%method, %path, status, micros, "request");
                    } else {
                        tracing::info!(%method, %path, status, micros, "request");
                    }
                    if let Ok(v) = HeaderValue::from_str(&request_id) {
                        res.headers_mut().insert(REQUEST_ID, v);
                    }
                    Ok(res)
                }
                .instrument(span)
            })
            .configure(routes)
    })
    .shutdown_signal(shutdown)
    .shutdown_timeout(config.shutdown_timeout_secs);
    server = match config.tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    };
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    server.run().await
}

/// Every route of the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(only("/", web::get().to(dashboard::index)))
        .service(only("/assets/app.js", web::get().to(dashboard::script)))
        .service(only("/assets/app.css", web::get().to(dashboard::style)))
        .service(only("/healthz", web::get().to(health::healthz)))
        .service(only("/metrics", web::get().to(metrics::metrics)))
        .service(only("/readyz", web::get().to(health::readyz)))
        .service(
            web::resource("/v1/events")
                .route(web::post().to(events::append))
                .route(web::get().to(events::list))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/graphql")
                .route(web::post().to(graphql::post))
                .route(web::get().to(graphql::get))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/cdevents")
                .route(web::post().to(ingest::post_cdevents))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/webhooks/github")
                .route(web::post().to(ingest::github_webhook))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/webhooks/gitlab")
                .route(web::post().to(ingest::gitlab_webhook))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/tokens")
                .route(web::post().to(auth::create))
                .route(web::get().to(auth::list))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/tokens/{name}")
                .route(web::delete().to(auth::revoke))
                .default_service(web::to(method_not_allowed)),
        )
        .service(only("/v1/decisions", web::post().to(gates::decide)))
        .service(only("/v1/policies/reload", web::post().to(gates::reload)))
        .service(only("/v1/checkpoint", web::get().to(proofs::checkpoint)))
        .service(only("/v1/checkpoint/key", web::get().to(proofs::key)))
        .service(only("/v1/proofs/inclusion", web::get().to(proofs::inclusion)))
        .service(only("/v1/proofs/consistency", web::get().to(proofs::consistency)))
        .service(
            web::resource("/v1/streams/{stream:.+}")
                .route(web::get().to(events::stream))
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(not_found));
}

/// A resource with one method: any other method is answered 405, not 404.
fn only(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path).route(route).default_service(web::to(method_not_allowed))
}

async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::new(Code::NotFound, format!("no route {} {}; see the API in README.md", req.method(), req.path()))
        .error_response()
}

async fn method_not_allowed(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::new(Code::MethodNotAllowed, format!("{} is not allowed on {}", req.method(), req.path())).error_response()
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): the signals that ask the server
/// to stop gracefully.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received; finishing requests in flight"),
                    _ = int.recv() => tracing::info!("SIGINT received; finishing requests in flight"),
                }
            }
            _ => {
                tracing::warn!("cannot listen for signals; stop the server by killing it");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// SIGHUP reloads the policies, as `POST /v1/policies/reload` does.
fn reload_on_sighup(state: web::Data<AppState>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload policies with POST /v1/policies/reload");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if let Some(f) = state.ledger.integrity() {
                    tracing::error!(seq = f.seq, "policy reload on SIGHUP refused: the ledger is read-only");
                    continue;
                }
                if let Some(gates) = &state.ledger.gates {
                    match gates.reload(state.ledger.store.as_ref()).await {
                        Ok(hash) => tracing::info!(policy_set = %hash, "policies reloaded on SIGHUP"),
                        Err(e) => tracing::error!(error = %e.message, "policy reload on SIGHUP refused"),
                    }
                }
            }
        });
    }
}
