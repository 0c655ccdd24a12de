//! The DORA rules as data: every case in `dora/cases.json` gives events,
//! asks one question, and says which figures must come back. The figures
//! are compared as the API serialises them; a case names only the fields it
//! is about.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};
use shiplog_core::delivery::{Bucket, Delivery, DoraQuery, Scope};
use shiplog_core::{EventData, EventType, RecordedEvent};

fn defaults(kind: &str, data: &mut Map<String, Value>) {
    let mut set = |k: &str, v: Value| {
        data.entry(k.to_owned()).or_insert(v);
    };
    if kind.starts_with("deployment.") {
        set("service", json!("checkout"));
        set("environment", json!("production"));
        if kind != "deployment.rolledback" {
            let id = data.get("deploymentId").and_then(Value::as_str).unwrap_or("d").to_owned();
            data.entry("artifact").or_insert(json!(format!("sha256:artifact-of-{id}")));
            data.entry("version").or_insert(json!("1.0.0"));
        }
    }
    if kind.starts_with("incident.") {
        data.entry("service").or_insert(json!("checkout"));
        data.entry("environment").or_insert(json!("production"));
        data.entry("severity").or_insert(json!("sev2"));
    }
}

fn recorded(seq: u64, given: &Value) -> RecordedEvent {
    let kind = given["type"].as_str().unwrap();
    let at: DateTime<Utc> = given["at"].as_str().unwrap().parse().unwrap();
    let mut data = given["data"].as_object().cloned().unwrap_or_default();
    defaults(kind, &mut data);
    RecordedEvent {
        seq,
        id: uuid::Uuid::new_v4(),
        event_type: EventType::parse(kind).unwrap_or_else(|| panic!("unknown type {kind}")),
        stream: "s".into(),
        stream_version: seq,
        occurred_at: at,
        recorded_at: at,
        recorded_by: "test".into(),
        actor: "u-1".into(),
        source: None,
        data: Value::Object(data),
        links: Vec::new(),
        leaf_hash: None,
    }
}

/// `expected` must be contained in `actual`: objects by the keys given,
/// arrays element by element, numbers within 1e-9.
fn contains(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, v) in e {
                let got = a.get(k).ok_or_else(|| format!("{path}.{k} is missing from {actual}"))?;
                contains(got, v, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) => {
            if a.len() != e.len() {
                return Err(format!("{path} has {} elements, expected {}: {actual}", a.len(), e.len()));
            }
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                contains(x, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(a), Value::Number(e)) => {
            let (a, e) = (a.as_f64().unwrap(), e.as_f64().unwrap());
            if (a - e).abs() <= 1e-9 * e.abs().max(1.0) { Ok(()) } else { Err(format!("{path} is {a}, expected {e}")) }
        }
        (a, e) if a == e => Ok(()),
        (a, e) => Err(format!("{path} is {a}, expected {e}")),
    }
}

#[test]
fn dora_cases() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("dora/cases.json")).expect("dora/cases.json is valid JSON");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut delivery = Delivery::new();
        for (seq, given) in case["given"].as_array().unwrap().iter().enumerate() {
            let event = recorded(seq as u64, given);
            let data = EventData::parse(event.event_type, event.data.clone())
                .unwrap_or_else(|e| panic!("case {name:?}: event {seq} does not parse: {e}"));
            delivery.apply(&event, &data);
        }
        let when = &case["when"];
        let services = match (&when["service"], &when["services"]) {
            (Value::String(s), _) => Some(vec![s.clone()]),
            (_, Value::Array(list)) => Some(list.iter().map(|s| s.as_str().unwrap().to_owned()).collect()),
            _ => None,
        };
        let query = DoraQuery {
            scope: Scope { environment: when["environment"].as_str().unwrap_or("production").to_owned(), services },
            from: when["from"].as_str().unwrap().parse().unwrap(),
            to: when["to"].as_str().unwrap().parse().unwrap(),
            bucket: when["bucket"].as_str().map(|b| match b {
                "day" => Bucket::Day,
                "week" => Bucket::Week,
                "month" => Bucket::Month,
                other => panic!("unknown bucket {other}"),
            }),
            attribution_window: when["attributionWindowHours"]
                .as_i64()
                .map_or_else(DoraQuery::default_attribution_window, Duration::hours),
        };
        let dora = delivery.dora(&query).unwrap_or_else(|e| panic!("case {name:?}: {e}"));
        let actual = serde_json::to_value(&dora).unwrap();
        if let Err(e) = contains(&actual, &case["then"], "then") {
            failures.push(format!("{name}:\n  {e}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} DORA cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
