//! Lambda function URL requests (payload format 2.0) and responses: the
//! approval pages and the query API are both served this way.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{bad_event, HandlerError};

/// The parts of a Lambda function URL request (payload format 2.0) we use.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub form: BTreeMap<String, String>,
}

/// Percent-decoding for query strings and form bodies (`+` is a space).
pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_pairs(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

impl HttpRequest {
    /// From the function URL event (payload format 2.0).
    pub fn from_event(event: &Value) -> Result<HttpRequest, HandlerError> {
        let method = event
            .pointer("/requestContext/http/method")
            .and_then(|m| m.as_str())
            .ok_or_else(|| {
                bad_event(
                    "not a function URL request: requestContext.http.method is missing".into(),
                )
            })?
            .to_string();
        let path = event
            .get("rawPath")
            .and_then(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let query = parse_pairs(
            event
                .get("rawQueryString")
                .and_then(|q| q.as_str())
                .unwrap_or(""),
        );
        let body = event.get("body").and_then(|b| b.as_str()).unwrap_or("");
        let base64 = event
            .get("isBase64Encoded")
            .and_then(|b| b.as_bool())
            .unwrap_or(false);
        let body = if base64 {
            decode_base64(body)
                .ok_or_else(|| bad_event("the request body is not valid base64".into()))?
        } else {
            body.to_string()
        };
        Ok(HttpRequest {
            method,
            path,
            query,
            form: parse_pairs(&body),
        })
    }
}

/// Base64 text (whitespace allowed) that decodes to UTF-8.
pub fn decode_base64(text: &str) -> Option<String> {
    use base64::Engine;
    let compact: String = text.split_ascii_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    String::from_utf8(bytes).ok()
}

pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A JSON response of a function URL.
pub fn json_response(status: u16, body: &Value) -> Value {
    json!({"statusCode": status, "headers": {"content-type": "application/json"},
           "body": body.to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decoding_and_pairs() {
        assert_eq!(url_decode("a+b%2Fc%3D"), "a b/c=");
        assert_eq!(url_decode("100%"), "100%");
        let p = parse_pairs("decision=approve&reason=late+file%21&empty=");
        assert_eq!(p["reason"], "late file!");
        assert_eq!(p["empty"], "");
        assert_eq!(html_escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(
            decode_base64("ZGVjaXNpb249YXBwcm92ZQ==").as_deref(),
            Some("decision=approve")
        );
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let err = HttpRequest::from_event(&json!({"rawPath": "/x"})).unwrap_err();
        assert!(
            err.message
                .contains("requestContext.http.method is missing"),
            "{}",
            err.message
        );
        let err = HttpRequest::from_event(&json!({
            "requestContext": {"http": {"method": "POST"}},
            "isBase64Encoded": true, "body": "%%% not base64"
        }))
        .unwrap_err();
        assert_eq!(err.message, "the request body is not valid base64");
    }
}
