//! The event model: the envelope every event travels in, the closed set of
//! event types, and the rule that names a stream when the client names none.
//!
//! Everything that enters the ledger passes through [`NewEvent::parse`]: raw
//! JSON in, a value that cannot be wrong out, or an [`EventError`] that names
//! the field and says what to send instead.

pub mod data;

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::name::{Name, StreamName, ValueError};
use data::*;

/// Declares the closed set of event types once: the enum of type names, the
/// enum of typed data, and the table that ties each name to its data type.
macro_rules! event_types {
    ($( $variant:ident => $name:literal, $data:ty, $who:ident; )+) => {
        /// The type of an event, as written in its `type` field.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventType { $( $variant, )+ }

        impl EventType {
            /// Every event type, in the order the product brief lists them.
            pub const ALL: &'static [EventType] = &[ $( EventType::$variant, )+ ];

            pub fn as_str(self) -> &'static str {
                match self { $( EventType::$variant => $name, )+ }
            }

            pub fn parse(name: &str) -> Option<EventType> {
                match name { $( $name => Some(EventType::$variant), )+ _ => None }
            }

            /// Types only the server writes (decisions, policy activations,
            /// tokens, CDEvents kept whole): a client can never append them.
            pub fn is_server_only(self) -> bool {
                match self { $( EventType::$variant => event_types!(@server $who), )+ }
            }

            /// The JSON Schema of this type's `data`.
            pub fn data_schema(self) -> schemars::Schema {
                match self { $( EventType::$variant => schemars::schema_for!($data), )+ }
            }

            fn parse_data_json(self, data: &str) -> Result<EventData, serde_json::Error> {
                match self {
                    $( EventType::$variant => serde_json::from_str(data).map(EventData::$variant), )+
                }
            }

            fn parse_data(self, data: Value) -> Result<EventData, serde_path_to_error::Error<serde_json::Error>> {
                match self {
                    $( EventType::$variant => serde_path_to_error::deserialize(data).map(EventData::$variant), )+
                }
            }
        }

        /// The typed `data` of an event; what gates and metrics read.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventData { $( $variant($data), )+ }

        impl EventData {
            pub fn event_type(&self) -> EventType {
                match self { $( EventData::$variant(_) => EventType::$variant, )+ }
            }
        }
    };
    (@server client) => { false };
    (@server server) => { true };
}

event_types! {
    CommitPushed => "commit.pushed", CommitPushed, client;
    ChangeOpened => "change.opened", ChangeOpened, client;
    ChangeReviewed => "change.reviewed", ChangeReviewed, client;
    ChangeMerged => "change.merged", ChangeMerged, client;
    BuildStarted => "build.started", BuildStarted, client;
    BuildFinished => "build.finished", BuildFinished, client;
    TestsFinished => "tests.finished", TestsFinished, client;
    ScanFinished => "scan.finished", ScanFinished, client;
    ArtifactPublished => "artifact.published", ArtifactPublished, client;
    ApprovalGranted => "approval.granted", Approval, client;
    ApprovalRevoked => "approval.revoked", Approval, client;
    DeploymentStarted => "deployment.started", Deployment, client;
    DeploymentSucceeded => "deployment.succeeded", Deployment, client;
    DeploymentFailed => "deployment.failed", Deployment, client;
    DeploymentRolledBack => "deployment.rolledback", DeploymentRolledBack, client;
    CanaryAnalyzed => "canary.analyzed", CanaryAnalyzed, client;
    InfraPlanned => "infra.planned", InfraChange, client;
    InfraApplied => "infra.applied", InfraChange, client;
    MigrationApplied => "migration.applied", MigrationApplied, client;
    IncidentOpened => "incident.opened", IncidentOpened, client;
    IncidentResolved => "incident.resolved", IncidentResolved, client;
    FlagChanged => "flag.changed", FlagChanged, client;
    CdeventReceived => "cdevent.received", CdeventReceived, server;
    DecisionRecorded => "decision.recorded", DecisionRecorded, server;
    PolicyActivated => "policy.activated", PolicyActivated, server;
    TokenCreated => "token.created", TokenChanged, server;
    TokenRevoked => "token.revoked", TokenChanged, server;
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventType::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown event type {s:?}")))
    }
}

/// The types a client may append, comma-separated, for error messages.
pub fn client_type_list() -> String {
    EventType::ALL.iter().filter(|t| !t.is_server_only()).map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}

/// A typed relation from one event to another (`{"rel": "fixes", "id": …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Link {
    pub rel: Name,
    pub id: Uuid,
}

/// What the client expects of a stream before its event is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet (`-1`).
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    pub fn from_i64(v: i64) -> Option<Self> {
        match v {
            -1 => Some(Self::NoStream),
            v if v >= 0 => Some(Self::Exact(v.unsigned_abs())),
            _ => None,
        }
    }

    pub fn as_i64(self) -> i64 {
        match self {
            Self::NoStream => -1,
            Self::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
        }
    }

    /// Does a stream whose current version is `current` (None: no stream)
    /// satisfy this expectation?
    pub fn matches(self, current: Option<u64>) -> bool {
        match (self, current) {
            (Self::NoStream, None) => true,
            (Self::Exact(want), Some(have)) => want == have,
            _ => false,
        }
    }
}

/// Why an event was refused at the edge. Each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("an event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error(
        "unknown field `{0}` in the event envelope; the envelope has id, type, occurredAt, actor, source, stream, expectedVersion, data and links"
    )]
    UnknownField(String),
    #[error("unknown event type {given:?}; valid types are: {valid}")]
    UnknownType { given: String, valid: String },
    #[error("event type `{0}` is written by the server only and cannot be appended")]
    ServerOnly(EventType),
    #[error("field `{field}` {problem}")]
    Invalid { field: String, problem: String },
}

impl EventError {
    /// The field at fault, in the dotted form the client sent
    /// (`data.commits[0].sha`).
    pub fn field(&self) -> Option<String> {
        match self {
            EventError::NotAnObject(_) => None,
            EventError::Missing(f) => Some((*f).to_owned()),
            EventError::UnknownField(f) => Some(f.clone()),
            EventError::UnknownType { .. } | EventError::ServerOnly(_) => Some("type".to_owned()),
            EventError::Invalid { field, .. } => Some(field.clone()),
        }
    }

    fn invalid(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        EventError::Invalid { field: field.into(), problem: problem.to_string() }
    }
}

/// A JSON value's kind, as error messages name it (`a string`).
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Who may append an event: a client, or the server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Client,
    Server,
}

/// An event as a client submitted it, parsed and checked, before the ledger
/// gives it a place (`seq`) and a time (`recordedAt`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub actor: Name,
    pub source: Option<String>,
    pub stream: StreamName,
    pub expected_version: Option<ExpectedVersion>,
    /// `data` exactly as sent, extra fields included.
    pub data: Value,
    /// `data` as typed values.
    pub typed: EventData,
    pub links: Vec<Link>,
    /// SHA-256 of the event's content in canonical JSON (RFC 8785), without
    /// `expectedVersion`: two submissions with one `id` are the same event
    /// exactly when their digests are equal. For an event an integration
    /// made (`ingest`), the fingerprint of what the tool sent instead.
    pub digest: [u8; 32],
}

const ENVELOPE_FIELDS: &[&str] =
    &["id", "type", "occurredAt", "actor", "source", "stream", "expectedVersion", "data", "links"];

/// Longest `source` accepted.
pub const MAX_SOURCE_LEN: usize = 2048;
/// Most links one event may carry.
pub const MAX_LINKS: usize = 64;

impl NewEvent {
    /// Parse one event from the JSON a client sent.
    pub fn parse(raw: Value, author: Author) -> Result<NewEvent, EventError> {
        let Value::Object(mut obj) = raw else {
            return Err(EventError::NotAnObject(json_kind(&raw)));
        };
        if let Some(unknown) = obj.keys().find(|k| !ENVELOPE_FIELDS.contains(&k.as_str())) {
            return Err(EventError::UnknownField(unknown.clone()));
        }

        let type_name = take_string(&mut obj, "type")?;
        let event_type = EventType::parse(&type_name)
            .ok_or_else(|| EventError::UnknownType { given: type_name, valid: client_type_list() })?;
        if event_type.is_server_only() && author == Author::Client {
            return Err(EventError::ServerOnly(event_type));
        }

        let id = take_string(&mut obj, "id")?;
        let id = Uuid::parse_str(&id)
            .map_err(|_| EventError::invalid("id", format!("must be a UUID (the idempotency key), got {id:?}")))?;

        let occurred_at = take_string(&mut obj, "occurredAt")?;
        let occurred_at = DateTime::parse_from_rfc3339(&occurred_at)
            .map_err(|e| {
                EventError::invalid(
                    "occurredAt",
                    format!("must be an RFC 3339 time such as 2026-11-20T10:00:00Z ({e}), got {occurred_at:?}"),
                )
            })?
            .with_timezone(&Utc);
        if !(1..=9999).contains(&chrono::Datelike::year(&occurred_at)) {
            return Err(EventError::invalid("occurredAt", "must fall between the years 1 and 9999 in UTC"));
        }

        let actor = Name::parse(take_string(&mut obj, "actor")?).map_err(|e| EventError::invalid("actor", e))?;

        let source = match obj.remove("source") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => return Err(EventError::invalid("source", "must not be empty")),
            Some(Value::String(s)) if s.len() > MAX_SOURCE_LEN => {
                return Err(EventError::invalid("source", format!("must be at most {MAX_SOURCE_LEN} bytes")));
            }
            Some(Value::String(s)) => Some(s),
            Some(other) => return Err(wrong_kind("source", "a string", &other)),
        };

        let expected_version = match obj.remove("expectedVersion") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_i64().and_then(ExpectedVersion::from_i64).ok_or_else(|| {
                EventError::invalid(
                    "expectedVersion",
                    format!("must be -1 (no stream yet) or a stream version ≥ 0, got {n}"),
                )
            })?),
            Some(other) => return Err(wrong_kind("expectedVersion", "an integer", &other)),
        };

        let data = match obj.remove("data") {
            None => return Err(EventError::Missing("data")),
            Some(v @ Value::Object(_)) => v,
            Some(other) => return Err(wrong_kind("data", "an object", &other)),
        };
        if author == Author::Client && data.get("cdevent").is_some() {
            return Err(EventError::invalid(
                "data.cdevent",
                "is reserved for events recorded from CDEvents: send the CDEvent to POST /v1/cdevents",
            ));
        }
        let typed = EventData::parse(event_type, data.clone())?;

        let links = match obj.remove("links") {
            None | Some(Value::Null) => Vec::new(),
            Some(v @ Value::Array(_)) => {
                let links: Vec<Link> = serde_path_to_error::deserialize(v).map_err(|e| {
                    let path = e.path().to_string();
                    EventError::invalid(
                        format!("links{}", path_suffix(&path)),
                        strip_serde_location(&e.inner().to_string()),
                    )
                })?;
                if links.len() > MAX_LINKS {
                    return Err(EventError::invalid(
                        "links",
                        format!("has {} links; at most {MAX_LINKS} are allowed", links.len()),
                    ));
                }
                links
            }
            Some(other) => return Err(wrong_kind("links", "an array", &other)),
        };

        let stream = match obj.remove("stream") {
            None | Some(Value::Null) => derive_stream(&typed).map_err(|e| EventError::invalid("stream", e))?,
            Some(Value::String(s)) => StreamName::parse(s).map_err(|e| EventError::invalid("stream", e))?,
            Some(other) => return Err(wrong_kind("stream", "a string", &other)),
        };

        let mut event = NewEvent {
            id,
            event_type,
            occurred_at,
            actor,
            source,
            stream,
            expected_version,
            data,
            typed,
            links,
            digest: [0; 32],
        };
        event.digest = content_digest(&event)?;
        Ok(event)
    }
}

/// A digest of everything the client said about an event except its
/// concurrency expectation: two submissions with the same `id` are the same
/// event exactly when their digests are equal.
fn content_digest(e: &NewEvent) -> Result<[u8; 32], EventError> {
    let content = serde_json::json!({
        "id": e.id,
        "type": e.event_type,
        "occurredAt": format_time(&e.occurred_at),
        "actor": e.actor,
        "source": e.source,
        "stream": e.stream,
        "data": e.data,
        "links": e.links,
    });
    let bytes = crate::canonical::to_jcs(&content).map_err(|err| EventError::invalid("data", err))?;
    Ok(Sha256::digest(bytes).into())
}

impl EventData {
    /// The typed `data` of an event of this type, checked as at the edge.
    pub fn parse(event_type: EventType, data: Value) -> Result<EventData, EventError> {
        let typed = event_type.parse_data(data).map_err(data_error)?;
        check_data(&typed)?;
        Ok(typed)
    }

    /// The same as [`EventData::parse`], from the `data` object's JSON text
    /// (no intermediate `Value`: how a replay reads the stored log). Errors
    /// carry no field path; parse the `Value` for a client-facing message.
    pub fn parse_json(event_type: EventType, data: &str) -> Result<EventData, EventError> {
        let typed = event_type
            .parse_data_json(data)
            .map_err(|e| EventError::invalid("data", strip_serde_location(&e.to_string())))?;
        check_data(&typed)?;
        Ok(typed)
    }
}

/// Times are written in UTC, RFC 3339, with as many fractional digits as
/// they need (0, 3, 6 or 9).
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn take_string(obj: &mut Map<String, Value>, field: &'static str) -> Result<String, EventError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Err(EventError::Missing(field)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(wrong_kind(field, "a string", &other)),
    }
}

fn wrong_kind(field: &str, want: &str, got: &Value) -> EventError {
    EventError::invalid(field, format!("must be {want}, got {}", json_kind(got)))
}

fn path_suffix(path: &str) -> String {
    match path {
        "." | "" => String::new(),
        p if p.starts_with('[') => p.to_owned(),
        p => format!(".{p}"),
    }
}

/// serde_json appends "at line 1 column 5" to messages; for a value already
/// parsed that position means nothing to the client.
fn strip_serde_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

fn data_error(e: serde_path_to_error::Error<serde_json::Error>) -> EventError {
    let path = e.path().to_string();
    let msg = strip_serde_location(&e.inner().to_string());
    let base = format!("data{}", path_suffix(&path));
    // serde reports a missing field at the object that lacks it; name the
    // field itself so the client knows exactly what to add.
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.trim_end_matches('`');
        return EventError::Invalid { field: format!("{base}.{name}"), problem: "is missing".to_owned() };
    }
    EventError::Invalid { field: base, problem: msg }
}

/// Rules a type's shape cannot express.
fn check_data(data: &EventData) -> Result<(), EventError> {
    match data {
        EventData::TestsFinished(t) if t.artifact.is_none() && t.sha.is_none() => Err(EventError::invalid(
            "data.artifact",
            "is missing: a test run names the `artifact` or the `sha` it tested",
        )),
        EventData::CanaryAnalyzed(c) if !(0.0..=1.0).contains(&c.error_rate) => Err(EventError::invalid(
            "data.errorRate",
            format!("must be a fraction between 0 and 1 (0.01 is 1%), got {}", c.error_rate),
        )),
        EventData::CanaryAnalyzed(c) if !(c.p95_latency_ms >= 0.0 && c.p95_latency_ms.is_finite()) => {
            Err(EventError::invalid("data.p95LatencyMs", "must be a non-negative number of milliseconds"))
        }
        _ => Ok(()),
    }
}

/// The stream an event belongs to when the client names none. Events about
/// one thing share a stream, so `expectedVersion` can guard that thing:
///
/// | events | stream |
/// |---|---|
/// | commit.pushed | `repo/{repo}` |
/// | change.* | `change/{repo}/{number}` |
/// | build.* | `build/{pipeline}/{runId}` |
/// | tests.finished, scan.finished, artifact.published | `artifact/{artifact}` (tests of a bare commit: `commit/{sha}`) |
/// | approval.* | `approval/{service}/{environment}` (or by scope) |
/// | deployment.*, deployment.rolledback | `deploy/{service}/{environment}` |
/// | canary.analyzed | `canary/{deploymentId}` |
/// | infra.* | `infra/{environment}` |
/// | migration.applied | `migration/{service}/{environment}` |
/// | incident.* | `incident/{incidentId}` |
/// | flag.changed | `flag/{environment}/{flag}` |
/// | cdevent.received | `cdevents/{subject}` (`cdevents/ticket`) |
/// | decision.recorded, policy.activated, token.* | `decisions`, `policies`, `tokens` |
pub fn derive_stream(data: &EventData) -> Result<StreamName, ValueError> {
    use EventData as D;
    match data {
        D::CommitPushed(d) => StreamName::from_parts(&["repo", d.repo.as_str()]),
        D::ChangeOpened(d) => change_stream(&d.repo, d.number),
        D::ChangeReviewed(d) => change_stream(&d.repo, d.number),
        D::ChangeMerged(d) => change_stream(&d.repo, d.number),
        D::BuildStarted(d) => StreamName::from_parts(&["build", d.pipeline.as_str(), d.run_id.as_str()]),
        D::BuildFinished(d) => StreamName::from_parts(&["build", d.pipeline.as_str(), d.run_id.as_str()]),
        D::TestsFinished(d) => match (&d.artifact, &d.sha) {
            (Some(a), _) => StreamName::from_parts(&["artifact", a.as_str()]),
            (None, Some(sha)) => StreamName::from_parts(&["commit", sha.as_str()]),
            (None, None) => Err(ValueError::Empty),
        },
        D::ScanFinished(d) => StreamName::from_parts(&["artifact", d.artifact.as_str()]),
        D::ArtifactPublished(d) => StreamName::from_parts(&["artifact", d.artifact.as_str()]),
        D::ApprovalGranted(d) | D::ApprovalRevoked(d) => approval_stream(d),
        D::DeploymentStarted(d) | D::DeploymentSucceeded(d) | D::DeploymentFailed(d) => {
            StreamName::from_parts(&["deploy", d.service.as_str(), d.environment.as_str()])
        }
        D::DeploymentRolledBack(d) => StreamName::from_parts(&["deploy", d.service.as_str(), d.environment.as_str()]),
        D::CanaryAnalyzed(d) => StreamName::from_parts(&["canary", d.deployment_id.as_str()]),
        D::InfraPlanned(d) | D::InfraApplied(d) => StreamName::from_parts(&["infra", d.environment.as_str()]),
        D::MigrationApplied(d) => StreamName::from_parts(&["migration", d.service.as_str(), d.environment.as_str()]),
        D::IncidentOpened(d) => StreamName::from_parts(&["incident", d.incident_id.as_str()]),
        D::IncidentResolved(d) => StreamName::from_parts(&["incident", d.incident_id.as_str()]),
        D::FlagChanged(d) => StreamName::from_parts(&["flag", d.environment.as_str(), d.flag.as_str()]),
        D::CdeventReceived(d) => {
            let subject = crate::ingest::cdevents::TypeName::parse(d.cdevent_type.as_str())
                .map_or_else(|| "other".to_owned(), |t| t.subject);
            StreamName::from_parts(&["cdevents", &subject])
        }
        D::DecisionRecorded(_) => StreamName::from_parts(&["decisions"]),
        D::PolicyActivated(_) => StreamName::from_parts(&["policies"]),
        D::TokenCreated(_) | D::TokenRevoked(_) => StreamName::from_parts(&["tokens"]),
    }
}

fn change_stream(repo: &Name, number: u64) -> Result<StreamName, ValueError> {
    StreamName::from_parts(&["change", repo.as_str(), &number.to_string()])
}

fn approval_stream(a: &Approval) -> Result<StreamName, ValueError> {
    match (&a.service, &a.environment) {
        (Some(s), Some(e)) => StreamName::from_parts(&["approval", s.as_str(), e.as_str()]),
        (Some(s), None) => StreamName::from_parts(&["approval", s.as_str()]),
        (None, Some(e)) => StreamName::from_parts(&["approval", "*", e.as_str()]),
        (None, None) => {
            let scope = serde_json::to_value(a.scope).ok();
            let scope = scope.as_ref().and_then(Value::as_str).unwrap_or("other");
            StreamName::from_parts(&["approval", "scope", scope])
        }
    }
}
