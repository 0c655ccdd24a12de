//! A JSON Schema (draft 2020-12) validator for the keywords the CDEvents
//! schemas use, and no more: `type`, `properties`, `required`,
//! `additionalProperties`, `enum`, `const`, `minLength`, `format`
//! (`date-time`, `uri`, `uri-reference`), `items`, `oneOf`, `anyOf` and
//! `$ref` (resolved against `$id`). Annotations (`$schema`, `$id`,
//! `default`, `description`, `example(s)`, `title`, `contentEncoding`) are
//! ignored. A schema using any other keyword is refused when it is loaded,
//! so nothing is silently left unchecked.

use std::collections::BTreeMap;

use serde_json::Value;

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] =
    &["$schema", "$id", "default", "description", "example", "examples", "title", "contentEncoding"];
/// Keywords that are checked.
const ASSERTIONS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "minLength",
    "format",
    "items",
    "oneOf",
    "anyOf",
    "$ref",
];

/// Where an instance broke its schema, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field at fault, dotted (`subject.content.environment.id`,
    /// `context.links[1]`); empty for the whole document.
    pub path: String,
    pub message: String,
}

/// A set of schemas, by `$id`.
#[derive(Debug, Default, Clone)]
pub struct Schemas {
    by_id: BTreeMap<String, Value>,
}

/// How strictly to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Everything the schema says.
    Strict,
    /// `additionalProperties: false` is not enforced: for events of another
    /// version of the same type (their content may differ by fields).
    Lenient,
}

impl Schemas {
    pub fn new() -> Schemas {
        Schemas::default()
    }

    /// Add a schema, which must have an absolute `$id` and use only the
    /// supported keywords.
    pub fn add(&mut self, schema: Value) -> Result<(), String> {
        let id = schema.get("$id").and_then(Value::as_str).ok_or("a schema without `$id`")?.to_owned();
        check_keywords(&schema, &id)?;
        self.by_id.insert(id, schema);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.by_id.get(id)
    }

    /// Check `instance` against the schema with this `$id`.
    pub fn validate(&self, id: &str, instance: &Value, strictness: Strictness) -> Result<(), Violation> {
        let schema =
            self.by_id.get(id).ok_or_else(|| Violation { path: String::new(), message: format!("no schema {id}") })?;
        let mut cx = Cx { schemas: self, strictness, depth: 0 };
        cx.check(schema, id, instance, &mut String::new())
    }

    /// Every `$ref` resolves to a loaded schema.
    pub fn check_refs(&self) -> Result<(), String> {
        for (id, schema) in &self.by_id {
            let mut missing = Vec::new();
            refs(schema, id, &mut |target| {
                if !self.by_id.contains_key(&target) {
                    missing.push(target);
                }
            });
            if let Some(m) = missing.first() {
                return Err(format!("{id} refers to {m}, which is not loaded"));
            }
        }
        Ok(())
    }
}

fn refs(schema: &Value, base: &str, found: &mut dyn FnMut(String)) {
    match schema {
        Value::Object(map) => {
            let base = map.get("$id").and_then(Value::as_str).unwrap_or(base);
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(r) = v.as_str() {
                        found(resolve(base, r));
                    }
                } else if k != "enum" && k != "const" && k != "default" && k != "example" && k != "examples" {
                    refs(v, base, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, base, found)),
        _ => {}
    }
}

fn check_keywords(schema: &Value, at: &str) -> Result<(), String> {
    let Value::Object(map) = schema else {
        return match schema {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("{at}: a schema must be an object or a boolean")),
        };
    };
    for (k, v) in map {
        if ANNOTATIONS.contains(&k.as_str()) {
            continue;
        }
        if !ASSERTIONS.contains(&k.as_str()) {
            return Err(format!("{at}: unsupported keyword `{k}`"));
        }
        match k.as_str() {
            "properties" => {
                let props = v.as_object().ok_or_else(|| format!("{at}: `properties` must be an object"))?;
                for (name, sub) in props {
                    check_keywords(sub, &format!("{at}/properties/{name}"))?;
                }
            }
            "additionalProperties" | "items" => check_keywords(v, &format!("{at}/{k}"))?,
            "oneOf" | "anyOf" => {
                let list = v.as_array().ok_or_else(|| format!("{at}: `{k}` must be an array"))?;
                for (i, sub) in list.iter().enumerate() {
                    check_keywords(sub, &format!("{at}/{k}/{i}"))?;
                }
            }
            "format" => {
                let f = v.as_str().unwrap_or_default();
                if !["date-time", "uri", "uri-reference"].contains(&f) {
                    return Err(format!("{at}: unsupported format `{f}`"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Resolve a relative reference against a base URI (enough for `$ref`s
/// such as `links/embeddedlinksarray` or `embeddedlinkend`).
fn resolve(base: &str, reference: &str) -> String {
    if reference.contains("://") {
        return reference.to_owned();
    }
    match base.rfind('/') {
        Some(i) => format!("{}{reference}", &base[..=i]),
        None => reference.to_owned(),
    }
}

/// Deepest nesting of schemas followed (a guard against reference cycles).
const MAX_DEPTH: usize = 64;

struct Cx<'a> {
    schemas: &'a Schemas,
    strictness: Strictness,
    depth: usize,
}

fn fail(path: &str, message: impl Into<String>) -> Result<(), Violation> {
    Err(Violation { path: path.to_owned(), message: message.into() })
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

impl Cx<'_> {
    fn check(&mut self, schema: &Value, base: &str, v: &Value, path: &mut String) -> Result<(), Violation> {
        let map = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return fail(path, "is not allowed here"),
            Value::Object(map) => map,
            _ => return Ok(()),
        };
        if self.depth >= MAX_DEPTH {
            return fail(path, "is nested too deeply");
        }
        self.depth += 1;
        let base = map.get("$id").and_then(Value::as_str).unwrap_or(base);
        let result = self.check_map(map, base, v, path);
        self.depth -= 1;
        result
    }

    fn check_map(
        &mut self,
        map: &serde_json::Map<String, Value>,
        base: &str,
        v: &Value,
        path: &mut String,
    ) -> Result<(), Violation> {
        if let Some(r) = map.get("$ref").and_then(Value::as_str) {
            let target = resolve(base, r);
            let schemas = self.schemas;
            let Some(schema) = schemas.by_id.get(&target) else {
                return fail(path, format!("refers to the unknown schema {target}"));
            };
            self.check(schema, &target, v, path)?;
        }
        if let Some(t) = map.get("type") {
            let ok = match t {
                Value::String(t) => has_type(v, t),
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| has_type(v, t)),
                _ => true,
            };
            if !ok {
                let want = match t {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                return fail(path, format!("must be of type {want}, got {}", crate::event::json_kind(v)));
            }
        }
        if let Some(Value::Array(allowed)) = map.get("enum") {
            if !allowed.contains(v) {
                let list = allowed.iter().map(Value::to_string).collect::<Vec<_>>().join(", ");
                return fail(path, format!("must be one of {list}, got {}", short(&v.to_string())));
            }
        }
        if let Some(c) = map.get("const") {
            if c != v {
                return fail(path, format!("must be {c}, got {}", short(&v.to_string())));
            }
        }
        if let (Some(min), Value::String(s)) = (map.get("minLength").and_then(Value::as_u64), v) {
            if (s.chars().count() as u64) < min {
                return fail(path, format!("must be at least {min} characters long"));
            }
        }
        if let (Some(format), Value::String(s)) = (map.get("format").and_then(Value::as_str), v) {
            check_format(format, s, path)?;
        }
        if let (Some(items), Value::Array(list)) = (map.get("items"), v) {
            for (i, item) in list.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                self.check(items, base, item, path)?;
                path.truncate(len);
            }
        }
        if let Some(Value::Array(options)) = map.get("anyOf") {
            let mut first_error = None;
            let mut matched = false;
            for option in options {
                match self.check(option, base, v, &mut path.clone()) {
                    Ok(()) => {
                        matched = true;
                        break;
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if !matched {
                return Err(best(first_error, path, "matches none of the allowed shapes"));
            }
        }
        if let Some(Value::Array(options)) = map.get("oneOf") {
            let mut first_error = None;
            let mut matches = 0;
            for option in options {
                match self.check(option, base, v, &mut path.clone()) {
                    Ok(()) => matches += 1,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if matches == 0 {
                return Err(best(first_error, path, "matches none of the allowed shapes"));
            }
            if matches > 1 {
                return fail(path, "matches more than one of the allowed shapes");
            }
        }
        if let Value::Object(obj) = v {
            if let Some(Value::Array(required)) = map.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(name) {
                        let at = join(path, name);
                        return fail(&at, "is missing");
                    }
                }
            }
            let props = map.get("properties").and_then(Value::as_object);
            for (name, value) in obj {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                match props.and_then(|p| p.get(name)) {
                    Some(sub) => self.check(sub, base, value, path)?,
                    None => match map.get("additionalProperties") {
                        None | Some(Value::Bool(true)) => {}
                        Some(Value::Bool(false)) => {
                            if self.strictness == Strictness::Strict {
                                let allowed = props
                                    .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
                                    .unwrap_or_default();
                                return fail(path, format!("is not a field here; the fields are: {allowed}"));
                            }
                        }
                        Some(schema) => self.check(schema, base, value, path)?,
                    },
                }
                path.truncate(len);
            }
        }
        Ok(())
    }
}

/// A value as quoted in an error: at most 80 characters of it.
fn short(s: &str) -> String {
    if s.chars().count() <= 80 { s.to_owned() } else { format!("{}…", s.chars().take(80).collect::<String>()) }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

/// Of the ways no option matched, the one that got furthest into the value.
fn best(first: Option<Violation>, path: &str, fallback: &str) -> Violation {
    match first {
        Some(v) if v.path.len() > path.len() => v,
        _ => Violation { path: path.to_owned(), message: fallback.to_owned() },
    }
}

fn check_format(format: &str, s: &str, path: &str) -> Result<(), Violation> {
    match format {
        "date-time" if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
            return fail(
                path,
                format!("must be an RFC 3339 date-time such as 2026-11-20T10:00:00Z, got {:?}", short(s)),
            );
        }
        "uri" | "uri-reference" => {
            if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return fail(
                    path,
                    format!("must be a URI {}, without spaces, got {:?}", format_noun(format), short(s)),
                );
            }
            if format == "uri" && !has_scheme(s) {
                return fail(path, format!("must be an absolute URI with a scheme (https://…), got {:?}", short(s)));
            }
        }
        _ => {}
    }
    Ok(())
}

fn format_noun(format: &str) -> &'static str {
    if format == "uri" { "" } else { "reference" }
}

/// `scheme ":"`, where a scheme is a letter then letters, digits, `+`, `-`
/// or `.` (RFC 3986).
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn schemas() -> Schemas {
        let mut s = Schemas::new();
        s.add(json!({
            "$id": "https://example.org/s/thing",
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "at": {"type": "string", "format": "date-time"},
                "home": {"type": "string", "format": "uri"},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "links": {"$ref": "links/list"},
                "custom": {"oneOf": [{"type": "object"}, {"type": "string"}]}
            },
            "additionalProperties": false,
            "required": ["name"]
        }))
        .unwrap();
        s.add(json!({
            "$id": "https://example.org/s/links/list",
            "type": "array",
            "items": {"anyOf": [{"$ref": "one"}]}
        }))
        .unwrap();
        s.add(json!({
            "$id": "https://example.org/s/links/one",
            "type": "object",
            "properties": {"to": {"type": "string"}},
            "required": ["to"]
        }))
        .unwrap();
        s
    }

    #[test]
    fn cases() {
        let s = schemas();
        s.check_refs().unwrap();
        let id = "https://example.org/s/thing";
        type Case = (Value, Strictness, Option<(&'static str, &'static str)>);
        let cases: &[Case] = &[
            (json!({"name": "x"}), Strictness::Strict, None),
            (json!({}), Strictness::Strict, Some(("name", "is missing"))),
            (json!({"name": ""}), Strictness::Strict, Some(("name", "at least 1"))),
            (json!({"name": 3}), Strictness::Strict, Some(("name", "type string"))),
            (json!({"name": "x", "at": "yesterday"}), Strictness::Strict, Some(("at", "RFC 3339"))),
            (json!({"name": "x", "at": "2026-11-20T10:00:00.5+01:00"}), Strictness::Strict, None),
            (json!({"name": "x", "home": "/relative"}), Strictness::Strict, Some(("home", "scheme"))),
            (json!({"name": "x", "home": "https://x.org/a b"}), Strictness::Strict, Some(("home", "without spaces"))),
            (json!({"name": "x", "kind": "c"}), Strictness::Strict, Some(("kind", "one of"))),
            (json!({"name": "x", "tags": ["a", 1]}), Strictness::Strict, Some(("tags[1]", "type string"))),
            (json!({"name": "x", "links": [{"to": "y"}]}), Strictness::Strict, None),
            (json!({"name": "x", "links": [{"from": "y"}]}), Strictness::Strict, Some(("links[0].to", "missing"))),
            (json!({"name": "x", "custom": 3}), Strictness::Strict, Some(("custom", "none of"))),
            (json!({"name": "x", "extra": 1}), Strictness::Strict, Some(("extra", "not a field"))),
            (json!({"name": "x", "extra": 1}), Strictness::Lenient, None),
        ];
        for (value, strictness, want) in cases {
            let got = s.validate(id, value, *strictness);
            match (want, got) {
                (None, Ok(())) => {}
                (Some((path, msg)), Err(v)) => {
                    assert_eq!(v.path, *path, "{value}");
                    assert!(v.message.contains(msg), "{value}: {}", v.message);
                }
                (want, got) => panic!("{value}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn unsupported_keywords_are_refused_at_load() {
        let mut s = Schemas::new();
        let err = s.add(json!({"$id": "https://x/y", "pattern": "^a"})).unwrap_err();
        assert!(err.contains("pattern"), "{err}");
        let err = s.add(json!({"$id": "https://x/y", "format": "email"})).unwrap_err();
        assert!(err.contains("email"), "{err}");
    }
}
