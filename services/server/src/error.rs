//! Every error the API answers with: one table from error to stable code and
//! HTTP status, so clients and people can search for the code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};
use shiplog_core::EventError;
use shiplog_store::{AppendError, StoreError};

/// The stable error codes of the API and their HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidJson,
    InvalidEvent,
    UnknownEventType,
    ServerOnlyType,
    EmptyBatch,
    InvalidQuery,
    InvalidRequest,
    UnknownPrincipal,
    InvalidPolicy,
    GatesUnavailable,
    UnsupportedMediaType,
    BodyTooLarge,
    BatchTooLarge,
    InvalidPayload,
    InvalidSignature,
    WebhookDisabled,
    IdConflict,
    VersionConflict,
    NotFound,
    MethodNotAllowed,
    Unauthenticated,
    Forbidden,
    RateLimited,
    Timeout,
    TokenExists,
    StoreUnavailable,
    IntegrityFailure,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidJson => "invalid_json",
            Code::InvalidEvent => "invalid_event",
            Code::UnknownEventType => "unknown_event_type",
            Code::ServerOnlyType => "server_only_type",
            Code::EmptyBatch => "empty_batch",
            Code::InvalidQuery => "invalid_query",
            Code::InvalidRequest => "invalid_request",
            Code::UnknownPrincipal => "unknown_principal",
            Code::InvalidPolicy => "invalid_policy",
            Code::GatesUnavailable => "gates_unavailable",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::BodyTooLarge => "body_too_large",
            Code::BatchTooLarge => "batch_too_large",
            Code::InvalidPayload => "invalid_payload",
            Code::InvalidSignature => "invalid_signature",
            Code::WebhookDisabled => "webhook_disabled",
            Code::IdConflict => "id_conflict",
            Code::VersionConflict => "version_conflict",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Unauthenticated => "unauthenticated",
            Code::Forbidden => "forbidden",
            Code::RateLimited => "rate_limited",
            Code::Timeout => "timeout",
            Code::TokenExists => "token_exists",
            Code::StoreUnavailable => "store_unavailable",
            Code::IntegrityFailure => "integrity_failure",
            Code::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidJson
            | Code::InvalidEvent
            | Code::UnknownEventType
            | Code::ServerOnlyType
            | Code::EmptyBatch
            | Code::InvalidQuery
            | Code::InvalidRequest
            | Code::UnknownPrincipal
            | Code::InvalidPayload => StatusCode::BAD_REQUEST,
            Code::InvalidSignature | Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::WebhookDisabled | Code::Forbidden => StatusCode::FORBIDDEN,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Code::TokenExists => StatusCode::CONFLICT,
            Code::InvalidPolicy => StatusCode::UNPROCESSABLE_ENTITY,
            Code::GatesUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BodyTooLarge | Code::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::IdConflict | Code::VersionConflict => StatusCode::CONFLICT,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::StoreUnavailable | Code::IntegrityFailure => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: `{error, message, …details}`.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: Map::new() }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// An event of a batch was refused; `index` is its place in the batch
    /// (`None` for a single event).
    pub fn from_event(err: EventError, index: Option<usize>) -> Self {
        let code = match err {
            EventError::UnknownType { .. } => Code::UnknownEventType,
            EventError::ServerOnly(_) => Code::ServerOnlyType,
            _ => Code::InvalidEvent,
        };
        let message = match index {
            Some(i) => format!("event {i} of the batch: {err}"),
            None => err.to_string(),
        };
        let mut api = ApiError::new(code, message);
        if let Some(field) = err.field() {
            api = api.with("field", field);
        }
        if let Some(i) = index {
            api = api.with("index", i);
        }
        if let EventError::UnknownType { .. } = err {
            let valid: Vec<&str> =
                shiplog_core::EventType::ALL.iter().filter(|t| !t.is_server_only()).map(|t| t.as_str()).collect();
            api = api.with("validTypes", valid);
        }
        api
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code.as_str()));
        body.insert("message".into(), json!(self.message));
        body.extend(self.details.clone());
        let mut response = HttpResponse::build(self.status_code());
        match self.code {
            Code::StoreUnavailable | Code::Timeout => {
                response.insert_header(("Retry-After", "1"));
            }
            Code::RateLimited => {
                let secs = self.details.get("retryAfterSeconds").and_then(Value::as_u64).unwrap_or(1);
                response.insert_header(("Retry-After", secs.to_string()));
            }
            Code::Unauthenticated => {
                response.insert_header(("WWW-Authenticate", "Bearer realm=\"shiplog\""));
            }
            _ => {}
        }
        response.json(Value::Object(body))
    }
}

impl From<AppendError> for ApiError {
    fn from(err: AppendError) -> Self {
        match &err {
            AppendError::IdConflict { index, id } | AppendError::IdRepeated { index, id, .. } => {
                ApiError::new(Code::IdConflict, err.to_string()).with("index", *index).with("id", id.to_string())
            }
            AppendError::VersionConflict { index, id, stream, expected, current } => {
                ApiError::new(Code::VersionConflict, err.to_string())
                    .with("index", *index)
                    .with("id", id.to_string())
                    .with("stream", stream.clone())
                    .with("expectedVersion", *expected)
                    .with("currentVersion", current.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX)))
            }
            AppendError::Unavailable(_) => ApiError::new(Code::StoreUnavailable, format!("{err}; retry shortly")),
            AppendError::Storage(_) => {
                tracing::error!(error = %err, "append failed");
                ApiError::new(Code::Internal, "the store failed to record the events; nothing was recorded")
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => ApiError::new(Code::StoreUnavailable, format!("{err}; retry shortly")),
            StoreError::Storage(_) | StoreError::Corrupt { .. } => {
                tracing::error!(error = %err, "read failed");
                ApiError::new(Code::Internal, err.to_string())
            }
        }
    }
}
