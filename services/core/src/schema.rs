//! JSON Schemas of the event envelope and of every event type's `data`,
//! generated from the Rust types. The files under `schema/events/` are these
//! schemas, checked in; a test fails when they drift from the code.

use serde_json::{Value, json};

use crate::event::{EventType, client_type_list};

/// Every schema file: `(file name, pretty JSON)`, in a stable order.
pub fn event_schemas() -> Vec<(String, String)> {
    let mut files = vec![("envelope.json".to_owned(), pretty(&envelope_schema()))];
    for t in EventType::ALL {
        let mut schema = t.data_schema().to_value();
        if let Value::Object(obj) = &mut schema {
            obj.insert("$id".to_owned(), json!(format!("https://shiplog.dev/schema/events/{}.json", t.as_str())));
            let who = if t.is_server_only() { " Written by the server only." } else { "" };
            obj.insert("description".to_owned(), json!(format!("The `data` of a `{}` event.{who}", t.as_str())));
        }
        files.push((format!("{}.json", t.as_str()), pretty(&schema)));
    }
    files
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(&sorted(v)).unwrap_or_default();
    s.push('\n');
    s
}

fn envelope_schema() -> Value {
    let types: Vec<&str> = EventType::ALL.iter().filter(|t| !t.is_server_only()).map(|t| t.as_str()).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://shiplog.dev/schema/events/envelope.json",
        "title": "shiplog event",
        "description": format!("The envelope of every event a client appends. `data` follows the schema named after the type. Types: {}.", client_type_list()),
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "type", "occurredAt", "actor", "data"],
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "client-chosen UUID: the idempotency key"},
            "type": {"type": "string", "enum": types},
            "occurredAt": {"type": "string", "format": "date-time"},
            "actor": {"type": "string", "minLength": 1, "maxLength": crate::name::MAX_NAME_LEN, "description": "who did it (person or pipeline)"},
            "source": {"type": "string", "minLength": 1, "maxLength": crate::event::MAX_SOURCE_LEN, "description": "where it happened, e.g. the CI run's URL"},
            "stream": {"type": "string", "minLength": 1, "maxLength": crate::name::MAX_STREAM_LEN, "description": "optional; derived from the type and data when absent"},
            "expectedVersion": {"type": "integer", "minimum": -1, "description": "optional; -1 = the stream must not exist yet"},
            "data": {"type": "object"},
            "links": {
                "type": "array",
                "maxItems": crate::event::MAX_LINKS,
                "items": {
                    "type": "object",
                    "required": ["rel", "id"],
                    "properties": {"rel": {"type": "string", "minLength": 1}, "id": {"type": "string", "format": "uuid"}}
                }
            }
        }
    })
}

/// The value with every object's keys in order, whatever order the map
/// type keeps: the files must not change with the features a build enables.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
