//! Liveness and readiness, for load balancers and Kubernetes probes. Both
//! are public: they say nothing about the ledger's content.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::AppState;

/// The process is up and answering.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The ledger can take appends and serve reads.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if let Some(finding) = state.ledger.integrity() {
        use actix_web::ResponseError;
        return crate::ledger::integrity_error(&finding).error_response();
    }
    match state.ledger.store.check().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({"error": "not_ready", "message": e.to_string()})),
    }
}
