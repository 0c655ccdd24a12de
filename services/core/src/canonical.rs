//! Canonical JSON (RFC 8785, the JSON Canonicalization Scheme): one byte
//! sequence per JSON value, whatever the key order or spacing it arrived in.

use serde_json::Value;

/// Why a value has no canonical form: only non-finite numbers lack one, and
/// a parsed JSON value cannot hold those.
#[derive(Debug, thiserror::Error)]
#[error("has no canonical JSON form: {0}")]
pub struct CanonicalError(String);

/// The RFC 8785 canonical bytes of a JSON value.
///
/// `serde_json_canonicalizer` is the reference. Hashing every event of a
/// large export through it is slow (it buffers and sorts every object's
/// members), so values whose canonical form is plainly serde_json's compact
/// form are written directly: their object keys are already in JCS order
/// (serde_json keeps keys sorted by UTF-8 bytes, which is UTF-16 order for
/// every character below U+E000), their strings escape the same way, and
/// their numbers are integers of at most 2^53. Anything else (floats, larger
/// integers, keys with characters from U+E000 up) goes through the library.
/// A test compares the two on many generated values.
pub fn to_jcs(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(512);
    if write_plain(value, &mut out) { Ok(out) } else { reference_jcs(value) }
}

/// The library's RFC 8785 form.
pub fn reference_jcs(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
}

const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Write `value` in compact form if that is its canonical form; `false`
/// (with `out` in an unspecified state) if it needs the library.
fn write_plain(value: &Value, out: &mut Vec<u8>) -> bool {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            use std::io::Write;
            if let Some(u) = n.as_u64().filter(|u| *u <= MAX_SAFE_INTEGER) {
                let _ = write!(out, "{u}");
            } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER) {
                // -0 cannot be an i64, so no sign to fix.
                let _ = write!(out, "{i}");
            } else {
                return false;
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !write_plain(item, out) {
                    return false;
                }
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // JCS orders members by the UTF-16 code units of their keys:
            // byte order, for keys without characters from U+E000 up.
            // (serde_json keeps maps sorted, unless a dependency turns on
            // its insertion order, as cedar-policy does.)
            if map.keys().any(|k| k.chars().any(|c| c >= '\u{e000}')) {
                return false;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if !entries.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0)) {
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                if !write_plain(item, out) {
                    return false;
                }
            }
            out.push(b'}');
        }
    }
    true
}

/// A string as JCS writes it: `"` and `\\` escaped, the control characters
/// as `\\b \\t \\n \\f \\r` or `\\u00xx`, everything else as is.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Examples from RFC 8785 §3.2.2 and §3.2.3: key order by UTF-16 code
    /// units, no white space, ECMAScript number forms.
    #[test]
    fn matches_rfc_8785_examples() {
        let cases = [
            (r#"{"b": 1, "a": [true, null, "x"]}"#, r#"{"a":[true,null,"x"],"b":1}"#),
            (
                r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001]}"#,
                r#"{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}"#,
            ),
            (
                r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "1": "One"}"#,
                r#"{"\r":"Carriage Return","1":"One","€":"Euro Sign"}"#,
            ),
        ];
        for (input, want) in cases {
            let value: Value = serde_json::from_str(input).unwrap();
            assert_eq!(String::from_utf8(reference_jcs(&value).unwrap()).unwrap(), want, "the library");
            let value: Value = serde_json::from_str(input).unwrap();
            let got = String::from_utf8(to_jcs(&value).unwrap()).unwrap();
            assert_eq!(got, want);
        }
    }
}

#[cfg(test)]
mod fast_path {
    use super::*;
    use serde_json::{Map, json};

    /// A small deterministic generator of awkward JSON values.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn string(&mut self) -> String {
            const PIECES: &[&str] = &[
                "a",
                "Z",
                "0",
                " ",
                "\"",
                "\\",
                "/",
                "\n",
                "\r",
                "\t",
                "\u{8}",
                "\u{c}",
                "\u{0}",
                "\u{1f}",
                "\u{7f}",
                "é",
                "€",
                "\u{2028}",
                "\u{e000}",
                "\u{fb33}",
                "\u{ffff}",
                "😀",
                "\u{10000}",
                "日本",
                "deploymentId",
            ];
            let n = self.next() % 6;
            (0..n).map(|_| PIECES[(self.next() % PIECES.len() as u64) as usize]).collect()
        }

        fn value(&mut self, depth: u32) -> Value {
            match self.next() % if depth > 3 { 5 } else { 7 } {
                0 => Value::Null,
                1 => json!(self.next().is_multiple_of(2)),
                2 => match self.next() % 6 {
                    0 => json!(self.next() % 1000),
                    1 => json!(-((self.next() % 1_000_000) as i64)),
                    2 => json!(self.next()),
                    3 => json!((self.next() % 10_000) as f64 / 7.0),
                    4 => json!(1e21 * (self.next() % 3) as f64 + 0.5),
                    _ => json!(-((self.next() >> 1) as i64)),
                },
                3 | 4 => json!(self.string()),
                5 => Value::Array((0..self.next() % 4).map(|_| self.value(depth + 1)).collect()),
                _ => {
                    let mut map = Map::new();
                    for _ in 0..self.next() % 5 {
                        let key = self.string();
                        let value = self.value(depth + 1);
                        map.insert(key, value);
                    }
                    Value::Object(map)
                }
            }
        }
    }

    #[test]
    fn the_fast_path_writes_what_the_library_writes() {
        let mut generator = Gen(0x9e37_79b9_7f4a_7c15);
        let mut plain = 0;
        for _ in 0..20_000 {
            let value = generator.value(0);
            let mut out = Vec::new();
            if write_plain(&value, &mut out) {
                plain += 1;
            }
            assert_eq!(
                String::from_utf8(to_jcs(&value).unwrap()).unwrap(),
                String::from_utf8(reference_jcs(&value).unwrap()).unwrap(),
                "{value}"
            );
            let json: Json = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(json.to_jcs().unwrap(), reference_jcs(&value).unwrap(), "as Json: {value}");
        }
        assert!(plain > 5_000, "the fast path was taken only {plain} times");
    }
}

/// A JSON value whose objects keep their members sorted by key: what large
/// inputs (exports) are parsed into for hashing, so that neither the parser
/// nor the canonical writer has to hash or sort keys, whatever map type
/// serde_json was built with.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(std::collections::BTreeMap<String, Json>),
}

impl Json {
    /// As a serde_json value.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()),
        }
    }

    /// The RFC 8785 canonical bytes.
    pub fn to_jcs(&self) -> Result<Vec<u8>, CanonicalError> {
        let mut out = Vec::with_capacity(512);
        if write_json(self, &mut out) { Ok(out) } else { reference_jcs(&self.to_value()) }
    }
}

/// [`write_plain`] for [`Json`]: its maps are sorted already.
fn write_json(value: &Json, out: &mut Vec<u8>) -> bool {
    match value {
        Json::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if key.chars().any(|c| c >= '\u{e000}') {
                    return false;
                }
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                if !write_json(item, out) {
                    return false;
                }
            }
            out.push(b'}');
            true
        }
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !write_json(item, out) {
                    return false;
                }
            }
            out.push(b']');
            true
        }
        Json::Null => write_plain(&Value::Null, out),
        Json::Bool(b) => write_plain(&Value::Bool(*b), out),
        Json::Number(n) => write_plain(&Value::Number(n.clone()), out),
        Json::String(s) => {
            write_string(s, out);
            true
        }
    }
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Json;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(n)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("a number that is not finite"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Json, E> {
                Ok(Json::String(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut members = std::collections::BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, Json>()? {
                    members.insert(k, v);
                }
                Ok(Json::Object(members))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod sorted_json {
    use super::*;

    #[test]
    fn json_and_value_canonicalise_alike() {
        let texts = [
            r#"{"b": [1, -2, 3.5, 1e21, "x\n\u0001"], "a": {"\u20ac": null, "z": true, "\ue000": 0}, "c": 18446744073709551615}"#,
            r#"{"seq": 4, "data": {"to": {"on": true, "ratio": 0.25}, "from": 3}, "id": "x"}"#,
        ];
        for text in texts {
            let json: Json = serde_json::from_str(text).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(json.to_jcs().unwrap(), reference_jcs(&value).unwrap(), "{text}");
            assert_eq!(json.to_value(), value);
        }
    }
}
