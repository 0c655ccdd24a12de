//! Small value types that cannot hold bad values: identifiers, commit SHAs and
//! stream names are parsed once, at the edge, and trusted inside.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

/// Longest identifier (service, environment, repository, actor, …) accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Why a value was refused; the caller adds which field it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} characters long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("must not start or end with white space")]
    Untrimmed,
    #[error("must not contain control characters")]
    Control,
    #[error("must be a hexadecimal commit SHA of 7 to 64 characters, got {0:?}")]
    Sha(String),
}

fn check_name(s: &str, max: usize) -> Result<(), ValueError> {
    if s.is_empty() {
        return Err(ValueError::Empty);
    }
    if s.is_ascii() {
        // The same checks in one pass over the bytes (most names).
        if s.len() > max {
            return Err(ValueError::TooLong { len: s.len(), max });
        }
        let bytes = s.as_bytes();
        let edge = |b: Option<&u8>| b.is_some_and(|b| char::from(*b).is_whitespace());
        if edge(bytes.first()) || edge(bytes.last()) {
            return Err(ValueError::Untrimmed);
        }
        if bytes.iter().any(u8::is_ascii_control) {
            return Err(ValueError::Control);
        }
        return Ok(());
    }
    check_name_chars(s, max)
}

/// [`check_name`] by characters, for any string.
fn check_name_chars(s: &str, max: usize) -> Result<(), ValueError> {
    if s.is_empty() {
        return Err(ValueError::Empty);
    }
    let len = s.chars().count();
    if len > max {
        return Err(ValueError::TooLong { len, max });
    }
    if s.trim() != s {
        return Err(ValueError::Untrimmed);
    }
    if s.chars().any(char::is_control) {
        return Err(ValueError::Control);
    }
    Ok(())
}

/// An identifier from the users' world: a service, an environment, a
/// repository, a person, a pipeline. Non-empty, trimmed, printable, at most
/// [`MAX_NAME_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn parse(s: impl Into<String>) -> Result<Self, ValueError> {
        let s = s.into();
        check_name(&s, MAX_NAME_LEN)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::parse(s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME_LEN,
            "pattern": "^\\S(.*\\S)?$"
        })
    }
}

/// A git commit SHA: 7 to 64 hexadecimal characters, kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sha(String);

impl Sha {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        Self::from_string(s.to_owned())
    }

    /// [`Sha::parse`] of an owned string, lower-cased in place.
    pub fn from_string(mut s: String) -> Result<Self, ValueError> {
        let ok = (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(ValueError::Sha(s.chars().take(80).collect()));
        }
        s.make_ascii_lowercase();
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Sha::from_string(s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Sha {
    fn schema_name() -> Cow<'static, str> {
        "Sha".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9a-fA-F]{7,64}$",
            "description": "a git commit SHA (7 to 64 hexadecimal characters)"
        })
    }
}

/// Longest stream name accepted.
pub const MAX_STREAM_LEN: usize = 512;

/// The name of a stream: the unit of optimistic concurrency
/// (`deploy/checkout/production`, `change/shop/web/42`, …).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StreamName(String);

impl StreamName {
    pub fn parse(s: impl Into<String>) -> Result<Self, ValueError> {
        let s = s.into();
        check_name(&s, MAX_STREAM_LEN)?;
        Ok(Self(s))
    }

    /// A stream name made of derived parts: each part is already a valid
    /// [`Name`], so the result only needs its length checked.
    pub(crate) fn from_parts(parts: &[&str]) -> Result<Self, ValueError> {
        Self::parse(parts.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_what_cannot_be_an_identifier() {
        let cases: &[(&str, Result<(), ValueError>)] = &[
            ("checkout", Ok(())),
            ("team payments", Ok(())),
            ("", Err(ValueError::Empty)),
            (" checkout", Err(ValueError::Untrimmed)),
            ("check\nout", Err(ValueError::Control)),
        ];
        for (input, want) in cases {
            assert_eq!(Name::parse(*input).map(|_| ()), *want, "input {input:?}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            Name::parse(long).map(|_| ()),
            Err(ValueError::TooLong { len: MAX_NAME_LEN + 1, max: MAX_NAME_LEN })
        );
    }

    #[test]
    fn the_ascii_fast_path_agrees_with_the_character_checks() {
        let edges = ["", "a", "ab", "a b", "x".repeat(MAX_NAME_LEN).as_str(), "x".repeat(MAX_NAME_LEN + 1).as_str()]
            .map(str::to_owned);
        for byte in 0u8..128 {
            let c = char::from(byte);
            for base in &edges {
                for input in [format!("{c}{base}"), format!("{base}{c}"), format!("a{c}b"), format!("{c}")] {
                    assert_eq!(
                        check_name(&input, MAX_NAME_LEN),
                        check_name_chars(&input, MAX_NAME_LEN),
                        "input {input:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn shas_are_hex_and_lower_cased() {
        assert_eq!(Sha::parse("ABCDEF1").map(|s| s.0), Ok("abcdef1".to_owned()));
        assert!(Sha::parse("abc").is_err());
        assert!(Sha::parse("zzzzzzz").is_err());
        assert!(Sha::parse(&"a".repeat(65)).is_err());
    }
}
