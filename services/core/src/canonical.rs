//! Canonical JSON (RFC 8785, the JSON Canonicalization Scheme): one byte
//! sequence per JSON value, whatever the key order or spacing it arrived in.

use serde_json::Value;

/// Why a value has no canonical form: only non-finite numbers lack one, and
/// a parsed JSON value cannot hold those.
#[derive(Debug, thiserror::Error)]
#[error("has no canonical JSON form: {0}")]
pub struct CanonicalError(String);

/// The RFC 8785 canonical bytes of a JSON value.
pub fn to_jcs(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
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
            let got = String::from_utf8(to_jcs(&value).unwrap()).unwrap();
            assert_eq!(got, want);
        }
    }
}
