//! The REST API `AWS_PROXY` event (payload format 1.0), field for field as AWS sends it.
//!
//! [`EventV1`] borrows what it can from the invocation and serializes itself straight to JSON
//! bytes: building a `serde_json::Value` tree first would hash every key into an `IndexMap`
//! and then walk the tree again, which was most of the gateway's cost per Lambda invoke.
//! Lambda REQUEST authorizers reuse it through [`EventV1::to_value`].

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine;
use http::header;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use turnpike_model::rest::AuthorizationType;

use crate::context::{self, RequestContext};
use crate::pipeline::integration_request::title_case;
use crate::pipeline::Invocation;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Above this many names, grouping repeated names uses a hash index instead of a scan.
const SCAN_LIMIT: usize = 16;

/// The 1.0 event of one invocation. Header names are title-cased: hyper lower-cases them, so
/// the client's own spelling is approximated.
pub struct EventV1<'a> {
    inv: &'a Invocation<'a>,
    /// Event header names (title case) with their values, in first-seen order.
    headers: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>,
    /// Query parameters grouped by name, in first-seen order.
    query: Vec<(&'a str, Vec<&'a str>)>,
    path: &'a str,
    body: Option<Cow<'a, str>>,
    is_base64: bool,
}

impl<'a> EventV1<'a> {
    pub fn new(inv: &'a Invocation<'a>, body: &'a [u8], binary: bool) -> Self {
        let ctx = &inv.ctx;
        let mut headers: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)> = Vec::new();
        let mut xff: Option<String> = None;
        let mut prev: Option<&http::HeaderName> = None;
        for (k, v) in &inv.parts.headers {
            let name = k.as_str();
            if matches!(name, "content-length" | "connection") {
                continue;
            }
            let value = String::from_utf8_lossy(v.as_bytes());
            if name == "x-forwarded-for" {
                xff = Some(match xff {
                    Some(p) => format!("{p}, {value}"),
                    None => value.into_owned(),
                });
                continue;
            }
            if matches!(
                name,
                "x-forwarded-port" | "x-forwarded-proto" | "x-amzn-trace-id"
            ) {
                continue;
            }
            // A header map yields the values of one name one after another.
            match headers.last_mut() {
                Some((_, values)) if prev == Some(k) => values.push(value),
                _ => {
                    headers.push((Cow::Owned(title_case(name)), vec![value]));
                    prev = Some(k);
                }
            }
        }
        if let Some(t) = &ctx.trace_id {
            headers.push((Cow::Borrowed("X-Amzn-Trace-Id"), vec![Cow::Borrowed(t)]));
        }
        let forwarded = match xff {
            Some(x) => Cow::Owned(format!("{x}, {}", ctx.source_ip)),
            None => Cow::Borrowed(&*ctx.source_ip),
        };
        headers.push((Cow::Borrowed("X-Forwarded-For"), vec![forwarded]));
        let port = inv
            .parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .map_or(Cow::Borrowed("80"), |p| Cow::Owned(p.to_string()));
        headers.push((Cow::Borrowed("X-Forwarded-Port"), vec![port]));
        headers.push((
            Cow::Borrowed("X-Forwarded-Proto"),
            vec![Cow::Borrowed("http")],
        ));

        let path = ctx
            .path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(&*ctx.stage))
            .filter(|p| p.is_empty() || p.starts_with('/'))
            .map_or(ctx.path.as_str(), |p| if p.is_empty() { "/" } else { p });
        let body_text = if body.is_empty() {
            None
        } else if binary {
            Some(Cow::Owned(B64.encode(body)))
        } else {
            Some(String::from_utf8_lossy(body))
        };
        EventV1 {
            inv,
            headers,
            query: group(inv.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            path,
            body: body_text,
            is_base64: binary && !body.is_empty(),
        }
    }

    /// The event as a JSON value (for callers that add or remove fields).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Pairs grouped by name in first-seen order (a later value of a name goes to its group).
fn group<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut out: Vec<(&'a str, Vec<&'a str>)> = Vec::new();
    // Clients choose how many parameters they send: past a few names, look them up by hash.
    let mut index: Option<HashMap<&'a str, usize>> = None;
    for (k, v) in pairs {
        if index.is_none() && out.len() > SCAN_LIMIT {
            index = Some(out.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect());
        }
        let at = match &index {
            Some(ix) => ix.get(k).copied(),
            None => out.iter().position(|(n, _)| *n == k),
        };
        match at {
            Some(i) => out[i].1.push(v),
            None => {
                if let Some(ix) = index.as_mut() {
                    ix.insert(k, out.len());
                }
                out.push((k, vec![v]));
            }
        }
    }
    out
}

/// `{name: last value}`, or `null` when empty.
struct Single<'s, K, V>(&'s [(K, Vec<V>)]);
/// `{name: [values]}`, or `null` when empty.
struct Multi<'s, K, V>(&'s [(K, Vec<V>)]);

impl<K: AsRef<str>, V: AsRef<str>> Serialize for Single<'_, K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return s.serialize_none();
        }
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, vs) in self.0 {
            if let Some(v) = vs.last() {
                m.serialize_entry(k.as_ref(), v.as_ref())?;
            }
        }
        m.end()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Serialize for Multi<'_, K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return s.serialize_none();
        }
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, vs) in self.0 {
            let vs: Vec<&str> = vs.iter().map(AsRef::as_ref).collect();
            m.serialize_entry(k.as_ref(), &vs)?;
        }
        m.end()
    }
}

/// `{name: value}` of path parameters (a later duplicate wins), or `null` when empty.
struct PathParams<'s>(&'s [(String, String)]);

impl Serialize for PathParams<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return s.serialize_none();
        }
        let grouped = group(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Single(&grouped).serialize(s)
    }
}

/// A JSON object, or `null` when empty.
struct ObjectOrNull<'s>(&'s Map<String, Value>);

impl Serialize for ObjectOrNull<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_none()
        } else {
            self.0.serialize(s)
        }
    }
}

impl Serialize for EventV1<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let inv = self.inv;
        let mut m = s.serialize_map(Some(12))?;
        m.serialize_entry("resource", &*inv.method.resource_path)?;
        m.serialize_entry("path", self.path)?;
        m.serialize_entry("httpMethod", inv.parts.method.as_str())?;
        m.serialize_entry("headers", &Single(&self.headers))?;
        m.serialize_entry("multiValueHeaders", &Multi(&self.headers))?;
        m.serialize_entry("queryStringParameters", &Single(&self.query))?;
        m.serialize_entry("multiValueQueryStringParameters", &Multi(&self.query))?;
        m.serialize_entry("pathParameters", &PathParams(&inv.path_params))?;
        m.serialize_entry("stageVariables", &ObjectOrNull(&inv.stage.variables))?;
        m.serialize_entry(
            "requestContext",
            &RequestContextV1 {
                ctx: inv.ctx,
                method: inv.parts.method.as_str(),
                authorization: inv.method.model.authorization_type,
            },
        )?;
        m.serialize_entry("body", &self.body)?;
        m.serialize_entry("isBase64Encoded", &self.is_base64)?;
        m.end()
    }
}

/// `requestContext` of the 1.0 event.
struct RequestContextV1<'a> {
    ctx: &'a RequestContext,
    method: &'a str,
    authorization: AuthorizationType,
}

impl Serialize for RequestContextV1<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ctx = self.ctx;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("accountId", &*ctx.account_id)?;
        m.serialize_entry("apiId", &*ctx.api_id)?;
        m.serialize_entry("deploymentId", &*ctx.deployment_id)?;
        m.serialize_entry("domainName", &ctx.domain_name)?;
        m.serialize_entry(
            "domainPrefix",
            ctx.domain_name.split('.').next().unwrap_or_default(),
        )?;
        m.serialize_entry("extendedRequestId", &ctx.extended_request_id)?;
        m.serialize_entry("httpMethod", self.method)?;
        m.serialize_entry("identity", &Identity(ctx))?;
        m.serialize_entry("path", &ctx.path)?;
        m.serialize_entry("protocol", ctx.protocol)?;
        m.serialize_entry("requestId", &ctx.request_id)?;
        m.serialize_entry("requestTime", &context::clf_time(ctx.request_time_epoch_ms))?;
        m.serialize_entry("requestTimeEpoch", &ctx.request_time_epoch_ms)?;
        m.serialize_entry("resourceId", &*ctx.resource_id)?;
        m.serialize_entry("resourcePath", &*ctx.resource_path)?;
        m.serialize_entry("stage", &*ctx.stage)?;
        if !ctx.authorizer.is_empty() {
            // Lambda authorizers: principalId, integrationLatency and the context; Cognito:
            // the claims only.
            if self.authorization == AuthorizationType::CognitoUserPools {
                let claims: Map<String, Value> = ctx
                    .authorizer
                    .iter()
                    .filter(|(k, _)| k.as_str() == "claims")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                m.serialize_entry("authorizer", &claims)?;
            } else {
                m.serialize_entry("authorizer", &*ctx.authorizer)?;
            }
        }
        m.end()
    }
}

/// `requestContext.identity`.
struct Identity<'a>(&'a RequestContext);

impl Serialize for Identity<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ctx = self.0;
        let none: Option<&str> = None;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("accessKey", &none)?;
        m.serialize_entry("accountId", &none)?;
        m.serialize_entry("caller", &none)?;
        m.serialize_entry("cognitoAuthenticationProvider", &none)?;
        m.serialize_entry("cognitoAuthenticationType", &none)?;
        m.serialize_entry("cognitoIdentityId", &none)?;
        m.serialize_entry("cognitoIdentityPoolId", &none)?;
        m.serialize_entry("principalOrgId", &none)?;
        m.serialize_entry("sourceIp", &*ctx.source_ip)?;
        m.serialize_entry("user", &none)?;
        m.serialize_entry("userAgent", &ctx.user_agent)?;
        m.serialize_entry("userArn", &none)?;
        if let Some(key) = &ctx.api_key {
            m.serialize_entry("apiKey", key)?;
            m.serialize_entry("apiKeyId", &ctx.api_key_id)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keeps_first_seen_order_and_every_value() {
        let pairs = [("a", "1"), ("b", "x"), ("a", "2")];
        assert_eq!(
            group(pairs.into_iter()),
            vec![("a", vec!["1", "2"]), ("b", vec!["x"])]
        );
        // Past SCAN_LIMIT names the hash index takes over; the result must be the same.
        let names: Vec<String> = (0..3 * SCAN_LIMIT).map(|i| format!("k{i}")).collect();
        let mut pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "first")).collect();
        pairs.push(("k0", "again"));
        pairs.push((names[2 * SCAN_LIMIT].as_str(), "again"));
        let g = group(pairs.into_iter());
        assert_eq!(g.len(), 3 * SCAN_LIMIT);
        assert_eq!(g[0], ("k0", vec!["first", "again"]));
        assert_eq!(g[2 * SCAN_LIMIT].1, vec!["first", "again"]);
        assert!(g.iter().enumerate().all(|(i, (n, _))| *n == names[i]));
    }
}
