//! CDEvents (v0.4 and v0.5): validation against the spec's JSON Schemas
//! (v0.5.1, vendored under `schema/cdevents/`), mapping to native events,
//! and export of ledger events as CDEvents.
//!
//! A CDEvent whose type has a ledger meaning becomes the native event it
//! means (`service.deployed` a `deployment.succeeded`, `incident.detected`
//! an `incident.opened`, …) when it carries what that event needs. CDEvents
//! do not carry everything shiplog's events do (commits and their authoring
//! times, authors, test counts); a producer adds what is missing in
//! `customData.shiplog`, using the native event's field names. Every other
//! valid CDEvent, and one whose facts are incomplete, is recorded as
//! `cdevent.received`, whole, with a note saying what was missing.
//!
//! Either way the original CDEvent is kept in the recorded `data.cdevent`,
//! so exporting it gives back exactly what was received. The event's id is
//! derived from `context.source` + `context.id`: the same CDEvent sent
//! twice is recorded once.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::jsonschema::{Schemas, Strictness};
use super::{Envelope, IngestError, Ingested, Lookup, derive_id, percent_decode, str_at};
use crate::event::{EventType, MAX_SOURCE_LEN, format_time};
use crate::name::Name;
use crate::record::RecordedEvent;

/// The spec version shiplog writes, and whose schemas it vendors.
pub const SPEC_VERSION: &str = "0.5.1";

/// The vendored v0.5.1 schemas, by file.
pub const SCHEMA_FILES: &[(&str, &str)] = &[
    ("artifactdeleted.json", include_str!("../../../../schema/cdevents/0.5.1/artifactdeleted.json")),
    ("artifactdownloaded.json", include_str!("../../../../schema/cdevents/0.5.1/artifactdownloaded.json")),
    ("artifactpackaged.json", include_str!("../../../../schema/cdevents/0.5.1/artifactpackaged.json")),
    ("artifactpublished.json", include_str!("../../../../schema/cdevents/0.5.1/artifactpublished.json")),
    ("artifactsigned.json", include_str!("../../../../schema/cdevents/0.5.1/artifactsigned.json")),
    ("branchcreated.json", include_str!("../../../../schema/cdevents/0.5.1/branchcreated.json")),
    ("branchdeleted.json", include_str!("../../../../schema/cdevents/0.5.1/branchdeleted.json")),
    ("buildfinished.json", include_str!("../../../../schema/cdevents/0.5.1/buildfinished.json")),
    ("buildqueued.json", include_str!("../../../../schema/cdevents/0.5.1/buildqueued.json")),
    ("buildstarted.json", include_str!("../../../../schema/cdevents/0.5.1/buildstarted.json")),
    ("changeabandoned.json", include_str!("../../../../schema/cdevents/0.5.1/changeabandoned.json")),
    ("changecreated.json", include_str!("../../../../schema/cdevents/0.5.1/changecreated.json")),
    ("changemerged.json", include_str!("../../../../schema/cdevents/0.5.1/changemerged.json")),
    ("changereviewed.json", include_str!("../../../../schema/cdevents/0.5.1/changereviewed.json")),
    ("changeupdated.json", include_str!("../../../../schema/cdevents/0.5.1/changeupdated.json")),
    ("environmentcreated.json", include_str!("../../../../schema/cdevents/0.5.1/environmentcreated.json")),
    ("environmentdeleted.json", include_str!("../../../../schema/cdevents/0.5.1/environmentdeleted.json")),
    ("environmentmodified.json", include_str!("../../../../schema/cdevents/0.5.1/environmentmodified.json")),
    ("incidentdetected.json", include_str!("../../../../schema/cdevents/0.5.1/incidentdetected.json")),
    ("incidentreported.json", include_str!("../../../../schema/cdevents/0.5.1/incidentreported.json")),
    ("incidentresolved.json", include_str!("../../../../schema/cdevents/0.5.1/incidentresolved.json")),
    ("pipelinerunfinished.json", include_str!("../../../../schema/cdevents/0.5.1/pipelinerunfinished.json")),
    ("pipelinerunqueued.json", include_str!("../../../../schema/cdevents/0.5.1/pipelinerunqueued.json")),
    ("pipelinerunstarted.json", include_str!("../../../../schema/cdevents/0.5.1/pipelinerunstarted.json")),
    ("repositorycreated.json", include_str!("../../../../schema/cdevents/0.5.1/repositorycreated.json")),
    ("repositorydeleted.json", include_str!("../../../../schema/cdevents/0.5.1/repositorydeleted.json")),
    ("repositorymodified.json", include_str!("../../../../schema/cdevents/0.5.1/repositorymodified.json")),
    ("servicedeployed.json", include_str!("../../../../schema/cdevents/0.5.1/servicedeployed.json")),
    ("servicepublished.json", include_str!("../../../../schema/cdevents/0.5.1/servicepublished.json")),
    ("serviceremoved.json", include_str!("../../../../schema/cdevents/0.5.1/serviceremoved.json")),
    ("servicerolledback.json", include_str!("../../../../schema/cdevents/0.5.1/servicerolledback.json")),
    ("serviceupgraded.json", include_str!("../../../../schema/cdevents/0.5.1/serviceupgraded.json")),
    ("taskrunfinished.json", include_str!("../../../../schema/cdevents/0.5.1/taskrunfinished.json")),
    ("taskrunstarted.json", include_str!("../../../../schema/cdevents/0.5.1/taskrunstarted.json")),
    ("testcaserunfinished.json", include_str!("../../../../schema/cdevents/0.5.1/testcaserunfinished.json")),
    ("testcaserunqueued.json", include_str!("../../../../schema/cdevents/0.5.1/testcaserunqueued.json")),
    ("testcaserunskipped.json", include_str!("../../../../schema/cdevents/0.5.1/testcaserunskipped.json")),
    ("testcaserunstarted.json", include_str!("../../../../schema/cdevents/0.5.1/testcaserunstarted.json")),
    ("testoutputpublished.json", include_str!("../../../../schema/cdevents/0.5.1/testoutputpublished.json")),
    ("testsuiterunfinished.json", include_str!("../../../../schema/cdevents/0.5.1/testsuiterunfinished.json")),
    ("testsuiterunqueued.json", include_str!("../../../../schema/cdevents/0.5.1/testsuiterunqueued.json")),
    ("testsuiterunstarted.json", include_str!("../../../../schema/cdevents/0.5.1/testsuiterunstarted.json")),
    ("ticketclosed.json", include_str!("../../../../schema/cdevents/0.5.1/ticketclosed.json")),
    ("ticketcreated.json", include_str!("../../../../schema/cdevents/0.5.1/ticketcreated.json")),
    ("ticketupdated.json", include_str!("../../../../schema/cdevents/0.5.1/ticketupdated.json")),
    ("links/embeddedlinkend.json", include_str!("../../../../schema/cdevents/0.5.1/links/embeddedlinkend.json")),
    ("links/embeddedlinkpath.json", include_str!("../../../../schema/cdevents/0.5.1/links/embeddedlinkpath.json")),
    (
        "links/embeddedlinkrelation.json",
        include_str!("../../../../schema/cdevents/0.5.1/links/embeddedlinkrelation.json"),
    ),
    ("links/embeddedlinksarray.json", include_str!("../../../../schema/cdevents/0.5.1/links/embeddedlinksarray.json")),
    ("links/linkend.json", include_str!("../../../../schema/cdevents/0.5.1/links/linkend.json")),
    ("links/linkpath.json", include_str!("../../../../schema/cdevents/0.5.1/links/linkpath.json")),
    ("links/linkrelation.json", include_str!("../../../../schema/cdevents/0.5.1/links/linkrelation.json")),
    ("links/linkstart.json", include_str!("../../../../schema/cdevents/0.5.1/links/linkstart.json")),
];

/// The schemas, and for each subject and predicate (`service.deployed`) the
/// type and schema the spec defines.
pub struct Catalog {
    schemas: Schemas,
    kinds: BTreeMap<String, Kind>,
}

struct Kind {
    schema_id: String,
    type_name: String,
}

static CATALOG: LazyLock<Result<Catalog, String>> = LazyLock::new(Catalog::load);

/// The vendored schemas, loaded once.
pub fn catalog() -> Result<&'static Catalog, IngestError> {
    CATALOG.as_ref().map_err(|e| IngestError::new("", format!("the vendored CDEvents schemas do not load: {e}")))
}

impl Catalog {
    fn load() -> Result<Catalog, String> {
        let mut schemas = Schemas::new();
        let mut kinds = BTreeMap::new();
        for (file, text) in SCHEMA_FILES {
            let schema: Value = serde_json::from_str(text).map_err(|e| format!("{file}: {e}"))?;
            let type_name =
                schema.pointer("/properties/context/properties/type/enum/0").and_then(Value::as_str).map(str::to_owned);
            let id = schema.get("$id").and_then(Value::as_str).unwrap_or_default().to_owned();
            schemas.add(schema).map_err(|e| format!("{file}: {e}"))?;
            if let Some(t) = type_name.and_then(|t| TypeName::parse(&t).map(|n| (n, t))) {
                kinds.insert(t.0.kind(), Kind { schema_id: id, type_name: t.1 });
            }
        }
        schemas.check_refs()?;
        Ok(Catalog { schemas, kinds })
    }

    /// The CDEvents types shiplog has schemas for.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.kinds.values().map(|k| k.type_name.as_str())
    }
}

/// A CDEvent type name: `dev.cdevents.{subject}.{predicate}.{version}`, or
/// a custom one, `dev.cdeventsx.{tool}-{subject}.{predicate}.{version}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    pub custom: bool,
    pub subject: String,
    pub predicate: String,
    pub version: (u64, u64, u64),
}

impl TypeName {
    pub fn parse(t: &str) -> Option<TypeName> {
        let (custom, rest) = if let Some(r) = t.strip_prefix("dev.cdevents.") {
            (false, r)
        } else {
            (true, t.strip_prefix("dev.cdeventsx.")?)
        };
        let parts: Vec<&str> = rest.split('.').collect();
        let [subject, predicate, major, minor, patch] = parts.as_slice() else { return None };
        let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !word(subject) || !word(predicate) || (custom && !subject.contains('-')) {
            return None;
        }
        let num = |s: &str| if s.chars().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None };
        Some(TypeName {
            custom,
            subject: (*subject).to_owned(),
            predicate: (*predicate).to_owned(),
            version: (num(major)?, num(minor)?, num(patch)?),
        })
    }

    /// `subject.predicate`.
    pub fn kind(&self) -> String {
        format!("{}.{}", self.subject, self.predicate)
    }
}

/// A CDEvent, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CdEvent {
    /// The event exactly as received.
    pub original: Value,
    pub type_name: String,
    pub kind: TypeName,
    pub spec_version: String,
    pub id: String,
    pub source: String,
    pub timestamp: DateTime<Utc>,
    pub subject_id: String,
}

impl CdEvent {
    fn content(&self) -> &Value {
        self.original.pointer("/subject/content").unwrap_or(&Value::Null)
    }

    fn content_str(&self, path: &[&str]) -> Option<&str> {
        super::str_at(self.content(), path)
    }

    /// `customData.shiplog`: native fields the producer adds.
    fn overrides(&self) -> Option<&Map<String, Value>> {
        self.original.pointer("/customData/shiplog").and_then(Value::as_object)
    }
}

/// The id of the ledger event recording the CDEvent with this
/// `context.source` and `context.id`.
pub fn event_id(source: &str, id: &str) -> Uuid {
    derive_id("cdevents", &[source, id])
}

fn err(field: &str, message: impl Into<String>) -> IngestError {
    IngestError::new(field, message)
}

/// Check a CDEvent: its spec version (0.4 or 0.5), its type, and its shape
/// against the spec's schema for that type.
pub fn parse(value: Value) -> Result<CdEvent, IngestError> {
    let catalog = catalog()?;
    if !value.is_object() {
        return Err(err("", "a CDEvent must be a JSON object with `context` and `subject`"));
    }
    let Some(context) = value.get("context").filter(|c| c.is_object()) else {
        return Err(err("context", "is missing or not an object: a CDEvent has `context` and `subject`"));
    };
    let spec_field = if context.get("specversion").is_some() { "specversion" } else { "version" };
    let spec_version = match context.get(spec_field) {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(err("context.specversion", "is missing: say which CDEvents spec version the event follows")),
    };
    let v04 = spec_version == "0.4" || spec_version.starts_with("0.4.");
    let v05 = spec_version == "0.5" || spec_version.starts_with("0.5.");
    if !(v04 || v05) {
        return Err(err(
            &format!("context.{spec_field}"),
            format!("CDEvents spec version {spec_version:?} is not supported; shiplog reads 0.4.x and 0.5.x"),
        ));
    }
    let type_name = match context.get("type") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(err("context.type", "is missing: a CDEvent type such as dev.cdevents.service.deployed.0.3.0")),
    };
    let kind = TypeName::parse(&type_name).ok_or_else(|| {
        err(
            "context.type",
            format!(
                "{type_name:?} is not a CDEvent type: dev.cdevents.<subject>.<predicate>.<major>.<minor>.<patch> (or dev.cdeventsx.<tool>-<subject>.… for custom events)"
            ),
        )
    })?;
    let known = if kind.custom { None } else { catalog.kinds.get(&kind.kind()) };
    match known {
        Some(k) if v05 && k.type_name == type_name => {
            catalog.schemas.validate(&k.schema_id, &value, Strictness::Strict).map_err(|v| err(&v.path, v.message))?;
        }
        Some(k) => {
            // Another version of a type shiplog knows: checked against the
            // v0.5.1 schema of its subject and predicate, without refusing
            // fields that version adds or removed.
            let spec_major = TypeName::parse(&k.type_name).map(|t| t.version.0);
            if spec_major != Some(kind.version.0) {
                return Err(err(
                    "context.type",
                    format!("{type_name} is of another major version than shiplog reads ({})", k.type_name),
                ));
            }
            let mut normalised = value.clone();
            if let Some(Value::Object(ctx)) = normalised.get_mut("context") {
                if let Some(v) = ctx.remove("version") {
                    ctx.entry("specversion").or_insert(v);
                }
                ctx.insert("type".to_owned(), Value::String(k.type_name.clone()));
            }
            if let Some(Value::Object(subject)) = normalised.get_mut("subject") {
                if let Some(t) = subject.remove("type") {
                    if !t.is_string() {
                        return Err(err("subject.type", "must be a string"));
                    }
                }
            }
            catalog
                .schemas
                .validate(&k.schema_id, &normalised, Strictness::Lenient)
                .map_err(|v| err(&v.path, v.message))?;
        }
        None => check_base(&value)?,
    }
    let id = str_at(&value, &["context", "id"]).unwrap_or_default().to_owned();
    let source = str_at(&value, &["context", "source"]).unwrap_or_default().to_owned();
    if source.len() > MAX_SOURCE_LEN {
        return Err(err("context.source", format!("must be at most {MAX_SOURCE_LEN} bytes")));
    }
    let timestamp = str_at(&value, &["context", "timestamp"])
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| err("context.timestamp", "must be an RFC 3339 date-time such as 2026-11-20T10:00:00Z"))?;
    if !(1..=9999).contains(&chrono::Datelike::year(&timestamp)) {
        return Err(err("context.timestamp", "must fall between the years 1 and 9999 in UTC"));
    }
    let subject_id = str_at(&value, &["subject", "id"]).unwrap_or_default().to_owned();
    Ok(CdEvent { original: value, type_name, kind, spec_version, id, source, timestamp, subject_id })
}

/// What every CDEvent has, for types shiplog has no schema for (custom
/// types, and types of later spec versions).
fn check_base(value: &Value) -> Result<(), IngestError> {
    for field in ["id", "source", "type", "timestamp"] {
        match value.pointer(&format!("/context/{field}")) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => return Err(err(&format!("context.{field}"), "must be a non-empty string")),
            None => return Err(err(&format!("context.{field}"), "is missing")),
        }
    }
    match value.get("subject") {
        Some(Value::Object(s)) => {
            match s.get("id") {
                Some(Value::String(id)) if !id.is_empty() => {}
                _ => return Err(err("subject.id", "is missing or not a non-empty string")),
            }
            if s.get("content").is_some_and(|c| !c.is_object()) {
                return Err(err("subject.content", "must be an object"));
            }
        }
        _ => return Err(err("subject", "is missing or not an object")),
    }
    Ok(())
}

/// The ledger event recording a CDEvent: the native event it means when
/// it (with `customData.shiplog`) carries what that needs, else
/// `cdevent.received`.
pub fn to_ledger(ev: &CdEvent, lookup: &dyn Lookup) -> Result<Ingested, IngestError> {
    let id = event_id(&ev.source, &ev.id);
    let overrides = ev.overrides();
    let actor = overrides
        .and_then(|o| o.get("actor"))
        .and_then(Value::as_str)
        .or_else(|| ev.content_str(&["user"]))
        .filter(|a| Name::parse(*a).is_ok())
        .or_else(|| Some(ev.source.as_str()).filter(|s| Name::parse(*s).is_ok()))
        .unwrap_or("cdevents")
        .to_owned();
    let plan = match ev.kind.subject.strip_prefix("shiplog-") {
        Some(subject) if ev.kind.custom => {
            // A shiplog export of an event the spec has no type for: the
            // native event again, from its data in `customData.shiplog`.
            match EventType::parse(&format!("{subject}.{}", ev.kind.predicate)) {
                Some(t) if !t.is_server_only() && overrides.is_some() => Native::Event(t.as_str(), Map::new()),
                _ => Native::None,
            }
        }
        _ if ev.kind.custom => Native::None,
        _ => native(ev, lookup),
    };
    let digest = super::fingerprint("cdevents", &format!("{}\0{}", ev.source, ev.id), &ev.original);
    let note = match plan {
        Native::Event(event_type, mut data) => {
            if let Some(o) = overrides {
                for (k, v) in o {
                    if k != "actor" {
                        data.insert(k.clone(), v.clone());
                    }
                }
            }
            data.insert("cdevent".to_owned(), ev.original.clone());
            let envelope = Envelope {
                id,
                event_type,
                occurred_at: ev.timestamp,
                actor: actor.clone(),
                source: Some(ev.source.clone()),
                data,
            };
            match envelope.parse() {
                Ok(mut event) => {
                    event.digest = digest;
                    return Ok(Ingested { event, note: None });
                }
                Err(e) if overrides.is_some_and(|o| overridden(o, e.field().as_deref())) => {
                    let field = e.field().unwrap_or_default();
                    let field = match field.strip_prefix("data.") {
                        Some(f) => format!("customData.shiplog.{f}"),
                        None => field,
                    };
                    return Err(err(&field, format!("does not make a valid {event_type}: {e}")));
                }
                Err(e) => Some(format!(
                    "not recorded as {event_type}: {e}; the CDEvent does not carry it: add it in customData.shiplog"
                )),
            }
        }
        Native::Missing(event_type, why) => Some(format!("not recorded as {event_type}: {why}")),
        Native::None => None,
    };
    let mut data = Map::new();
    data.insert("cdeventType".to_owned(), Value::String(ev.type_name.clone()));
    data.insert("subject".to_owned(), Value::String(ev.subject_id.clone()));
    if let Some(n) = &note {
        data.insert("note".to_owned(), Value::String(n.clone()));
    }
    data.insert("cdevent".to_owned(), ev.original.clone());
    let envelope = Envelope {
        id,
        event_type: "cdevent.received",
        occurred_at: ev.timestamp,
        actor,
        source: Some(ev.source.clone()),
        data,
    };
    let mut event = envelope.parse().map_err(|e| err("", format!("cannot be recorded: {e}")))?;
    event.digest = digest;
    Ok(Ingested { event, note })
}

/// Whether the field at fault (`data.commits[0].sha`) is one the producer
/// set in `customData.shiplog`.
fn overridden(overrides: &Map<String, Value>, field: Option<&str>) -> bool {
    let Some(field) = field.and_then(|f| f.strip_prefix("data.")) else { return false };
    let root = field.split(['.', '[']).next().unwrap_or(field);
    overrides.contains_key(root)
}

enum Native {
    /// The native type and the data the CDEvent gives it.
    Event(&'static str, Map<String, Value>),
    /// There is a native counterpart, but the ledger lacks a fact it needs.
    Missing(&'static str, String),
    /// No native counterpart.
    None,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Insert the entries whose values are known.
fn put(data: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        data.insert(key.to_owned(), v.into());
    }
}

/// The version an artifact id names: a package URL's version
/// (`pkg:oci/app@sha256%3Aab…` → `sha256:ab…`), an image tag
/// (`registry/app:1.4.2` → `1.4.2`), else the id itself.
pub fn artifact_version(artifact: &str) -> String {
    if let Some(purl) = artifact.strip_prefix("pkg:") {
        let purl = purl.split(['?', '#']).next().unwrap_or(purl);
        if let Some((_, v)) = purl.rsplit_once('@') {
            return percent_decode(v);
        }
    }
    if let Some((_, v)) = artifact.rsplit_once('@') {
        return v.to_owned();
    }
    let last = artifact.rsplit('/').next().unwrap_or(artifact);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_owned(),
        _ => artifact.to_owned(),
    }
}

/// A package URL's name (`pkg:golang/mygit.com/myorg/myapp@v1` → `myapp`).
fn purl_name(artifact: &str) -> Option<String> {
    let purl = artifact.strip_prefix("pkg:")?;
    let path = purl.split(['@', '?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty()).then(|| percent_decode(name))
}

/// A change's number from its subject id (`42`, `acme/app#42`,
/// `…/pull/42`, `!42`).
fn change_number(subject: &str) -> Option<u64> {
    let digits: String = subject.chars().rev().take_while(char::is_ascii_digit).collect();
    let digits: String = digits.chars().rev().collect();
    if digits.is_empty() {
        return None;
    }
    let before = subject[..subject.len() - digits.len()].chars().last();
    match before {
        None | Some('#' | '/' | '!' | '-') => digits.parse().ok(),
        _ => None,
    }
}

fn outcome(o: &str) -> Option<&'static str> {
    match o {
        "success" | "pass" | "passed" => Some("success"),
        "failure" | "fail" | "failed" | "error" => Some("failure"),
        "cancel" | "cancelled" | "canceled" => Some("cancelled"),
        _ => None,
    }
}

fn native(ev: &CdEvent, lookup: &dyn Lookup) -> Native {
    let mut data = Map::new();
    let subject = ev.subject_id.as_str();
    let env = ev.content_str(&["environment", "id"]);
    let repo = ev.content_str(&["repository", "id"]);
    match ev.kind.kind().as_str() {
        "service.deployed" | "service.upgraded" => {
            let artifact = ev.content_str(&["artifactId"]);
            put(&mut data, "deploymentId", Some(ev.id.clone()));
            put(&mut data, "service", Some(subject));
            put(&mut data, "environment", env);
            put(&mut data, "artifact", artifact);
            put(&mut data, "version", artifact.map(artifact_version));
            Native::Event("deployment.succeeded", data)
        }
        "service.rolledback" => {
            let Some(env) = env else { return Native::None };
            let to = ev.content_str(&["artifactId"]).map(artifact_version);
            put(&mut data, "service", Some(subject));
            put(&mut data, "environment", Some(env));
            put(&mut data, "toVersion", to);
            match lookup.current_deployment(subject, env) {
                Some(running) => {
                    put(&mut data, "deploymentId", Some(running.deployment_id));
                    put(&mut data, "fromVersion", Some(running.version));
                    Native::Event("deployment.rolledback", data)
                }
                None if ev.overrides().is_some_and(|o| o.contains_key("deploymentId")) => {
                    Native::Event("deployment.rolledback", data)
                }
                None => Native::Missing(
                    "deployment.rolledback",
                    format!("no deployment of {subject} to {env} is recorded, so none can be rolled back"),
                ),
            }
        }
        "incident.detected" | "incident.reported" | "incident.resolved" => {
            let resolved = ev.kind.predicate == "resolved";
            put(&mut data, "incidentId", Some(subject));
            put(&mut data, "service", ev.content_str(&["service", "id"]));
            put(&mut data, "environment", env);
            if !resolved {
                // CDEvents carry no severity; shiplog's incidents need one.
                put(&mut data, "severity", Some("unspecified"));
            }
            Native::Event(if resolved { "incident.resolved" } else { "incident.opened" }, data)
        }
        "change.created" => {
            put(&mut data, "repo", repo);
            put(&mut data, "number", change_number(subject));
            put(&mut data, "title", ev.content_str(&["description"]));
            Native::Event("change.opened", data)
        }
        "change.reviewed" => {
            let number = change_number(subject);
            put(&mut data, "repo", repo);
            put(&mut data, "number", number);
            put(&mut data, "author", repo.zip(number).and_then(|(r, n)| lookup.change_author(r, n)));
            Native::Event("change.reviewed", data)
        }
        "change.merged" => {
            let number = change_number(subject);
            put(&mut data, "repo", repo);
            put(&mut data, "number", number);
            put(&mut data, "author", repo.zip(number).and_then(|(r, n)| lookup.change_author(r, n)));
            Native::Event("change.merged", data)
        }
        "build.started" => {
            put(&mut data, "pipeline", Some(ev.source.as_str()).filter(|s| Name::parse(*s).is_ok()));
            put(&mut data, "runId", Some(subject));
            Native::Event("build.started", data)
        }
        "build.finished" => {
            let artifact = ev.content_str(&["artifactId"]);
            put(&mut data, "pipeline", Some(ev.source.as_str()).filter(|s| Name::parse(*s).is_ok()));
            put(&mut data, "runId", Some(subject));
            put(&mut data, "artifact", artifact);
            // A build that finished with an artifact produced it.
            put(&mut data, "outcome", artifact.map(|_| "success"));
            Native::Event("build.finished", data)
        }
        "pipelinerun.finished" => {
            put(&mut data, "pipeline", ev.content_str(&["pipelineName"]));
            put(&mut data, "runId", Some(subject));
            put(&mut data, "outcome", ev.content_str(&["outcome"]).and_then(outcome));
            Native::Event("build.finished", data)
        }
        "testsuiterun.finished" => {
            let suite = ev
                .content_str(&["testSuite", "name"])
                .or_else(|| ev.content_str(&["testSuite", "id"]))
                .unwrap_or(subject);
            put(&mut data, "suite", Some(suite));
            put(&mut data, "outcome", ev.content_str(&["outcome"]).and_then(outcome));
            Native::Event("tests.finished", data)
        }
        "artifact.published" => {
            put(&mut data, "artifact", Some(subject));
            put(&mut data, "service", purl_name(subject));
            put(&mut data, "version", Some(artifact_version(subject)));
            Native::Event("artifact.published", data)
        }
        _ => Native::None,
    }
}

/// A ledger event as a CDEvent (spec 0.5.1): the original, for an event
/// that arrived as one; else the CDEvent with the same meaning, where the
/// spec has one; else a custom event `dev.cdeventsx.shiplog-{subject}.…`.
/// The event's own data always travels in `customData.shiplog`, so another
/// shiplog importing the export records the same native events.
pub fn export(e: &RecordedEvent) -> Value {
    if let Some(original) = e.data.get("cdevent") {
        // Only what arrived as this CDEvent: its id says so.
        let source = original.pointer("/context/source").and_then(Value::as_str);
        let id = original.pointer("/context/id").and_then(Value::as_str);
        if source.zip(id).is_some_and(|(s, i)| event_id(s, i) == e.id) {
            return original.clone();
        }
    }
    let d = &e.data;
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let env = |k: &str| json!({"id": s(k)});
    let (type_name, subject_id, content): (String, String, Value) = match e.event_type {
        EventType::DeploymentSucceeded => (
            "dev.cdevents.service.deployed.0.3.0".into(),
            s("service"),
            json!({"environment": env("environment"), "artifactId": s("artifact")}),
        ),
        EventType::ChangeOpened | EventType::ChangeReviewed | EventType::ChangeMerged => (
            match e.event_type {
                EventType::ChangeOpened => "dev.cdevents.change.created.0.4.0",
                EventType::ChangeReviewed => "dev.cdevents.change.reviewed.0.3.0",
                _ => "dev.cdevents.change.merged.0.3.0",
            }
            .into(),
            format!("{}#{}", s("repo"), d.get("number").cloned().unwrap_or_default()),
            json!({"repository": {"id": s("repo")}}),
        ),
        EventType::BuildStarted => ("dev.cdevents.build.started.0.3.0".into(), s("runId"), json!({})),
        EventType::BuildFinished => {
            let mut content = Map::new();
            if let Some(a) = d.get("artifact").and_then(Value::as_str) {
                content.insert("artifactId".into(), Value::String(a.to_owned()));
            }
            ("dev.cdevents.build.finished.0.3.0".into(), s("runId"), Value::Object(content))
        }
        EventType::ArtifactPublished => ("dev.cdevents.artifact.published.0.3.0".into(), s("artifact"), json!({})),
        EventType::IncidentOpened | EventType::IncidentResolved => (
            if e.event_type == EventType::IncidentOpened {
                "dev.cdevents.incident.detected.0.3.0".into()
            } else {
                "dev.cdevents.incident.resolved.0.3.0".into()
            },
            s("incidentId"),
            json!({"environment": env("environment"), "service": {"id": s("service")}}),
        ),
        other => {
            let (subject, predicate) = other.as_str().split_once('.').unwrap_or((other.as_str(), "recorded"));
            (format!("dev.cdeventsx.shiplog-{subject}.{predicate}.0.1.0"), e.id.to_string(), json!({}))
        }
    };
    let subject_id = if subject_id.is_empty() { e.id.to_string() } else { subject_id };
    let source = e.source.as_deref().filter(|s| !s.is_empty()).map_or_else(|| "/shiplog".to_owned(), uri_reference);
    json!({
        "context": {
            "specversion": SPEC_VERSION,
            "id": e.id.to_string(),
            "source": source,
            "type": type_name,
            "timestamp": format_time(&e.occurred_at),
        },
        "subject": {"id": subject_id, "content": content},
        "customData": {"shiplog": shiplog_data(e), "ledger": {
            "type": e.event_type, "seq": e.seq, "stream": e.stream,
            "recordedAt": format_time(&e.recorded_at), "recordedBy": e.recorded_by,
        }},
        "customDataContentType": "application/json",
    })
}

/// A `source` as a URI reference: spaces and control characters (which a
/// native event's source may hold) percent-encoded.
fn uri_reference(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The native event's data, and its actor.
fn shiplog_data(e: &RecordedEvent) -> Value {
    let mut m = obj(e.data.clone());
    m.insert("actor".into(), Value::String(e.actor.clone()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::ingest::NoLookup;

    fn example(name: &str) -> Value {
        let path = format!("{}/../../tests/fixtures/cdevents/{name}.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    struct Deployed;
    impl Lookup for Deployed {
        fn pushed_commits(&self, _: &str, _: &str, _: &str, _: usize) -> Vec<crate::event::data::CommitRef> {
            Vec::new()
        }
        fn commit(&self, _: &str, _: &str) -> Option<crate::event::data::CommitRef> {
            None
        }
        fn merged_commits(&self, _: &str, _: &str) -> Option<Vec<crate::event::data::CommitRef>> {
            None
        }
        fn change_author(&self, _: &str, _: u64) -> Option<String> {
            None
        }
        fn current_deployment(&self, service: &str, env: &str) -> Option<crate::ingest::Running> {
            (service == "mySubject123" && env == "test123").then(|| crate::ingest::Running {
                deployment_id: "dep-7".to_owned(),
                version: "1.4.1".to_owned(),
                artifact: "pkg:oci/app@1.4.1".to_owned(),
            })
        }
    }

    #[test]
    fn the_vendored_schemas_load() {
        let c = catalog().unwrap();
        assert_eq!(c.types().count(), 45);
    }

    /// Given each conformance example, when it is mapped with an empty
    /// ledger, then it is recorded as this type (a note says why a type with
    /// a native counterpart was not).
    #[test]
    fn every_conformance_example_is_accepted() {
        let expect: &[(&str, &str)] = &[
            ("service_deployed", "deployment.succeeded"),
            ("service_upgraded", "deployment.succeeded"),
            ("incident_detected", "incident.opened"),
            ("incident_reported", "incident.opened"),
            ("incident_resolved", "incident.resolved"),
        ];
        let with_counterpart = [
            "service_rolledback",
            "change_created",
            "change_reviewed",
            "change_merged",
            "build_started",
            "build_finished",
            "pipelinerun_finished",
            "testsuiterun_finished",
            "artifact_published",
        ];
        let dir = format!("{}/../../tests/fixtures/cdevents", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let ev = parse(example(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = to_ledger(&ev, &NoLookup).unwrap_or_else(|e| panic!("{name}: {e}"));
            let want = expect.iter().find(|(n, _)| *n == name).map_or("cdevent.received", |(_, t)| *t);
            assert_eq!(got.event.event_type.as_str(), want, "{name}: {:?}", got.note);
            assert_eq!(got.event.data["cdevent"], ev.original, "{name}: the original is kept");
            assert_eq!(got.event.id, event_id(&ev.source, &ev.id));
            assert_eq!(got.note.is_some(), with_counterpart.contains(&name.as_str()), "{name}: {:?}", got.note);
            seen += 1;
        }
        assert_eq!(seen, 45);
    }

    #[test]
    fn a_deployment_maps_to_its_native_event() {
        let ev = parse(example("service_deployed")).unwrap();
        let got = to_ledger(&ev, &NoLookup).unwrap();
        let d = &got.event.data;
        assert_eq!(d["service"], "mySubject123");
        assert_eq!(d["environment"], "test123");
        assert_eq!(d["version"], "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427");
        assert_eq!(d["deploymentId"], "271069a8-fc18-44f1-b38f-9d70a1695819");
        assert_eq!(got.event.occurred_at.to_rfc3339(), "2023-03-20T14:27:05.315384+00:00");
    }

    #[test]
    fn a_rollback_names_the_deployment_it_undoes() {
        let ev = parse(example("service_rolledback")).unwrap();
        let got = to_ledger(&ev, &Deployed).unwrap();
        assert_eq!(got.event.event_type, EventType::DeploymentRolledBack);
        assert_eq!(got.event.data["deploymentId"], "dep-7");
        assert_eq!(got.event.data["fromVersion"], "1.4.1");
    }

    #[test]
    fn custom_data_completes_a_change() {
        let mut v = example("change_merged");
        v["customData"] = json!({"shiplog": {
            "number": 42, "author": "alice", "mergedBy": "bob", "mergeSha": "3333333",
            "commits": [{"sha": "1111111", "authoredAt": "2023-03-19T10:00:00Z"}],
        }});
        let got = to_ledger(&parse(v.clone()).unwrap(), &NoLookup).unwrap();
        assert_eq!(got.event.event_type, EventType::ChangeMerged);
        assert_eq!(got.event.data["repo"], "TestRepo/TestOrg");
        v["customData"]["shiplog"]["commits"][0]["sha"] = json!("not-a-sha");
        let e = to_ledger(&parse(v).unwrap(), &NoLookup).unwrap_err();
        assert_eq!(e.field, "customData.shiplog.commits[0].sha", "{e}");
    }

    #[test]
    fn invalid_cdevents_name_the_field() {
        type Case = (&'static str, fn(&mut Value), &'static str);
        let cases: &[Case] = &[
            (
                "service_deployed",
                |v| v["subject"]["content"].as_object_mut().unwrap().clear(),
                "subject.content.environment",
            ),
            ("service_deployed", |v| v["context"]["timestamp"] = json!("yesterday"), "context.timestamp"),
            ("service_deployed", |v| v["context"]["specversion"] = json!("0.3.0"), "context.specversion"),
            ("service_deployed", |v| v["context"]["type"] = json!("dev.cdevents.service"), "context.type"),
            ("service_deployed", |v| v["subject"]["extra"] = json!(1), "subject.extra"),
            (
                "service_deployed",
                |v| v["context"]["type"] = json!("dev.cdevents.service.deployed.1.0.0"),
                "context.type",
            ),
            ("ticket_created", |v| v["subject"]["content"]["uri"] = json!(3), "subject.content.uri"),
        ];
        for (name, change, field) in cases {
            let mut v = example(name);
            change(&mut v);
            let e = parse(v).unwrap_err();
            assert_eq!(e.field, *field, "{name}: {e}");
        }
    }

    #[test]
    fn v0_4_and_other_versions_of_known_types() {
        let v = json!({
            "context": {"version": "0.4.1", "id": "d-1", "source": "argocd", "type": "dev.cdevents.service.deployed.0.2.0", "timestamp": "2024-01-15T10:40:00Z"},
            "subject": {"id": "payments", "source": "argocd", "type": "service", "content": {"environment": {"id": "production"}, "artifactId": "pkg:oci/payments@v2.1.0"}}
        });
        let got = to_ledger(&parse(v).unwrap(), &NoLookup).unwrap();
        assert_eq!(got.event.event_type, EventType::DeploymentSucceeded);
        assert_eq!(got.event.data["version"], "v2.1.0");
        let custom = json!({
            "context": {"specversion": "0.5.1", "id": "q-1", "source": "/registry", "type": "dev.cdeventsx.myregistry-quota.exceeded.0.1.0", "timestamp": "2024-01-15T10:40:00Z"},
            "subject": {"id": "heavy_user", "content": {"limit": "50Tb"}}
        });
        let got = to_ledger(&parse(custom).unwrap(), &NoLookup).unwrap();
        assert_eq!(got.event.event_type, EventType::CdeventReceived);
        assert_eq!(got.event.stream.as_str(), "cdevents/myregistry-quota");
    }

    #[test]
    fn artifact_versions() {
        for (id, want) in [
            ("pkg:oci/myapp@sha256%3A0b31", "sha256:0b31"),
            ("pkg:golang/mygit.com/myorg/myapp@234fd47e07d1004f0aed9c?x=1", "234fd47e07d1004f0aed9c"),
            ("registry.example.com/payment-service:v2.1.0", "v2.1.0"),
            ("localhost:5000/app", "localhost:5000/app"),
            ("nginx@sha256:abc", "sha256:abc"),
        ] {
            assert_eq!(artifact_version(id), want, "{id}");
        }
        assert_eq!(change_number("acme/app#42"), Some(42));
        assert_eq!(change_number("https://github.com/acme/app/pull/7"), Some(7));
        assert_eq!(change_number("mySubject123"), None);
    }

    /// Ledger events exported as CDEvents are valid CDEvents, and importing
    /// them records the same native events.
    #[test]
    fn exports_validate_and_import_back() {
        use crate::record::RecordedEvent;
        let natives = [
            (
                "deployment.succeeded",
                json!({"deploymentId": "d1", "service": "pay", "environment": "production", "artifact": "pkg:oci/pay@1.0", "version": "1.0"}),
            ),
            (
                "change.merged",
                json!({"repo": "acme/pay", "number": 4, "author": "a", "mergedBy": "b", "mergeSha": "abcdef1", "commits": []}),
            ),
            (
                "incident.opened",
                json!({"incidentId": "i1", "service": "pay", "environment": "production", "severity": "sev2"}),
            ),
            ("flag.changed", json!({"flag": "f", "environment": "production", "from": false, "to": true})),
            ("build.finished", json!({"pipeline": "ci", "runId": "9", "sha": "abcdef1", "outcome": "failure"})),
        ];
        for (t, data) in natives {
            let e = RecordedEvent {
                seq: 3,
                id: Uuid::new_v4(),
                event_type: EventType::parse(t).unwrap(),
                stream: "s".into(),
                stream_version: 0,
                occurred_at: "2026-11-20T10:00:00Z".parse().unwrap(),
                recorded_at: "2026-11-20T10:00:01Z".parse().unwrap(),
                recorded_by: "anonymous".into(),
                actor: "alice".into(),
                source: None,
                data: data.clone(),
                links: Vec::new(),
                leaf_hash: None,
            };
            let exported = export(&e);
            let ev = parse(exported.clone()).unwrap_or_else(|err| panic!("{t}: {err}\n{exported:#}"));
            let back = to_ledger(&ev, &NoLookup).unwrap_or_else(|err| panic!("{t}: {err}"));
            assert_eq!(back.event.event_type.as_str(), t, "{t}: {:?}", back.note);
            for (k, v) in data.as_object().unwrap() {
                assert_eq!(&back.event.data[k], v, "{t}.{k}");
            }
            assert_eq!(back.event.actor.as_str(), "alice");
        }
    }
}
