//! Resource policies (`x-amazon-apigateway-policy`) and authorizer policies: IAM policy documents
//! evaluated locally against `execute-api:Invoke` on the method ARN.
//!
//! Statement semantics as IAM: any matching `Deny` → explicit deny; else any matching `Allow` →
//! allow; else silent (implicit deny). `Action`/`NotAction`, `Resource`/`NotResource`,
//! `Principal`/`NotPrincipal`, wildcards `*` and `?`, and the condition keys API Gateway supports
//! for local evaluation (`aws:SourceIp`, `aws:UserAgent`, `aws:Referer`, `aws:SecureTransport`,
//! `aws:CurrentTime`, `aws:EpochTime`, `aws:SourceVpc(e)`, `aws:PrincipalArn`,
//! `aws:PrincipalAccount`, `aws:username`, `aws:userid`).

use std::net::IpAddr;

use serde_json::Value;
use turnpike_model::rest::GatewayResponseType;

use crate::error::GatewayError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// An explicit `Deny` matched.
    Deny,
    /// Nothing matched (implicit deny).
    Silent,
}

impl Decision {
    /// IAM's rule over the effects of the statements that match: any Deny wins, then any Allow,
    /// else silence.
    pub fn combine(matching_allows: impl IntoIterator<Item = bool>) -> Decision {
        let mut decision = Decision::Silent;
        for allow in matching_allows {
            if !allow {
                return Decision::Deny;
            }
            decision = Decision::Allow;
        }
        decision
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    principal: Option<Principals>,
    not_principal: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
enum Principals {
    Any,
    List(Vec<String>),
}

#[derive(Debug, Clone)]
struct Condition {
    op: String,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

/// Who is calling and how, for condition keys.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub resource: &'a str,
    /// `None`: anonymous.
    pub principal_arn: Option<&'a str>,
    pub principal_account: Option<&'a str>,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub secure_transport: bool,
    pub now_epoch_ms: i64,
    pub source_vpc: Option<&'a str>,
    pub source_vpce: Option<&'a str>,
}

const OPERATORS: &[&str] = &[
    "IpAddress",
    "NotIpAddress",
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Bool",
    "Null",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
];

fn strings(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err("expected a string or a list of strings".to_string()),
            })
            .collect(),
        _ => Err("expected a string or a list of strings".to_string()),
    }
}

fn principals(v: &Value) -> Result<Principals, String> {
    match v {
        Value::String(s) if s == "*" => Ok(Principals::Any),
        Value::Object(m) => {
            let mut out = Vec::new();
            for (k, x) in m {
                let list = strings(x)?;
                if list.iter().any(|s| s == "*") {
                    return Ok(Principals::Any);
                }
                if k == "AWS" {
                    out.extend(list);
                }
            }
            Ok(Principals::List(out))
        }
        _ => Err("Principal must be \"*\" or {\"AWS\": ...}".into()),
    }
}

impl Policy {
    /// Parses a policy document (a JSON object with `Statement`).
    pub fn parse(doc: &Value) -> Result<Policy, String> {
        let stmts = match doc.get("Statement") {
            Some(Value::Array(a)) => a.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => return Err("the policy has no Statement".into()),
        };
        let mut statements = Vec::new();
        for (i, s) in stmts.iter().enumerate() {
            let at = |e: String| format!("Statement[{i}]: {e}");
            let Value::Object(m) = s else {
                return Err(at("a statement must be an object".into()));
            };
            let allow = match m.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => return Err(at("Effect must be Allow or Deny".into())),
            };
            let (principal, not_principal) = match (m.get("Principal"), m.get("NotPrincipal")) {
                (Some(p), None) => (Some(principals(p).map_err(at)?), false),
                (None, Some(p)) => (Some(principals(p).map_err(at)?), true),
                (None, None) => (None, false),
                _ => return Err(at("Principal and NotPrincipal are exclusive".into())),
            };
            let (actions, not_action) = match (m.get("Action"), m.get("NotAction")) {
                (Some(a), None) => (strings(a).map_err(at)?, false),
                (None, Some(a)) => (strings(a).map_err(at)?, true),
                _ => return Err(at("exactly one of Action and NotAction is required".into())),
            };
            let (resources, not_resource) = match (m.get("Resource"), m.get("NotResource")) {
                (Some(a), None) => (strings(a).map_err(at)?, false),
                (None, Some(a)) => (strings(a).map_err(at)?, true),
                _ => {
                    return Err(at(
                        "exactly one of Resource and NotResource is required".into()
                    ))
                }
            };
            let mut conditions = Vec::new();
            if let Some(c) = m.get("Condition") {
                let Value::Object(cm) = c else {
                    return Err(at("Condition must be an object".into()));
                };
                for (op, body) in cm {
                    let (base, if_exists) = match op.strip_suffix("IfExists") {
                        Some(b) => (b, true),
                        None => (op.as_str(), false),
                    };
                    let base = base
                        .strip_prefix("ForAnyValue:")
                        .or_else(|| base.strip_prefix("ForAllValues:"))
                        .unwrap_or(base);
                    if !OPERATORS.contains(&base) {
                        return Err(at(format!("unsupported condition operator {op:?}")));
                    }
                    let Value::Object(km) = body else {
                        return Err(at(format!("condition {op} must map keys to values")));
                    };
                    for (key, vals) in km {
                        conditions.push(Condition {
                            op: base.to_string(),
                            if_exists,
                            key: key.to_ascii_lowercase(),
                            values: strings(vals).map_err(at)?,
                        });
                    }
                }
            }
            statements.push(Statement {
                allow,
                principal,
                not_principal,
                actions,
                not_action,
                resources,
                not_resource,
                conditions,
            });
        }
        Ok(Policy { statements })
    }

    /// Evaluates `execute-api:Invoke` on `facts.resource`.
    pub fn evaluate(&self, facts: &RequestFacts<'_>) -> Decision {
        self.evaluate_action("execute-api:Invoke", facts, true)
    }

    /// `check_principal`: resource policies name principals; identity policies (authorizer
    /// output) do not.
    pub fn evaluate_action(
        &self,
        action: &str,
        facts: &RequestFacts<'_>,
        check_principal: bool,
    ) -> Decision {
        Decision::combine(
            self.statements
                .iter()
                .filter(|s| s.applies(action, facts, check_principal))
                .map(|s| s.allow),
        )
    }
}

impl Statement {
    fn applies(&self, action: &str, f: &RequestFacts<'_>, check_principal: bool) -> bool {
        if check_principal {
            if let Some(p) = &self.principal {
                let m = principal_matches(p, f);
                if m == self.not_principal {
                    return false;
                }
            }
        }
        let a = self
            .actions
            .iter()
            .any(|pat| glob(&pat.to_ascii_lowercase(), &action.to_ascii_lowercase()));
        if a == self.not_action {
            return false;
        }
        let r = self.resources.iter().any(|pat| glob(pat, f.resource));
        if r == self.not_resource {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(f))
    }
}

fn principal_matches(p: &Principals, f: &RequestFacts<'_>) -> bool {
    match p {
        Principals::Any => true,
        Principals::List(list) => {
            let Some(arn) = f.principal_arn else {
                return false;
            };
            list.iter().any(|x| {
                x == arn
                    || f.principal_account
                        .is_some_and(|a| x == a || *x == format!("arn:aws:iam::{a}:root"))
            })
        }
    }
}

/// IAM wildcards: `*` any run (including empty), `?` one character.
pub fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (addr, bits) = match cidr.split_once('/') {
        Some((a, b)) => (a, b.trim().parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = addr.trim().parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}

fn parse_date_ms(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n * 1000);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl Condition {
    fn value_of(&self, f: &RequestFacts<'_>) -> Option<String> {
        match self.key.as_str() {
            "aws:sourceip" => f.source_ip.map(|i| match i {
                IpAddr::V6(v6) => v6
                    .to_ipv4_mapped()
                    .map_or_else(|| v6.to_string(), |v| v.to_string()),
                v => v.to_string(),
            }),
            "aws:useragent" => f.user_agent.map(str::to_string),
            "aws:referer" => f.referer.map(str::to_string),
            "aws:securetransport" => Some(f.secure_transport.to_string()),
            "aws:currenttime" => Some(f.now_epoch_ms.to_string()),
            "aws:epochtime" => Some((f.now_epoch_ms / 1000).to_string()),
            "aws:sourcevpc" => f.source_vpc.map(str::to_string),
            "aws:sourcevpce" => f.source_vpce.map(str::to_string),
            "aws:principalarn" | "aws:userid" => f.principal_arn.map(str::to_string),
            "aws:principalaccount" => f.principal_account.map(str::to_string),
            "aws:username" => f
                .principal_arn
                .and_then(|a| a.rsplit('/').next())
                .map(str::to_string),
            "aws:sourcearn" => Some(f.resource.to_string()),
            _ => None,
        }
    }

    fn holds(&self, f: &RequestFacts<'_>) -> bool {
        let v = self.value_of(f);
        if self.op == "Null" {
            let want_null = self.values.iter().any(|x| x == "true");
            return v.is_none() == want_null;
        }
        let Some(v) = v else {
            return self.if_exists;
        };
        let any = |p: &dyn Fn(&str) -> bool| self.values.iter().any(|x| p(x));
        match self.op.as_str() {
            "IpAddress" => match v.parse::<IpAddr>() {
                Ok(ip) => any(&|c| cidr_contains(c, ip)),
                Err(_) => false,
            },
            "NotIpAddress" => match v.parse::<IpAddr>() {
                Ok(ip) => !any(&|c| cidr_contains(c, ip)),
                Err(_) => false,
            },
            "StringEquals" | "ArnEquals" => any(&|x| x == v),
            "StringNotEquals" | "ArnNotEquals" => !any(&|x| x == v),
            "StringEqualsIgnoreCase" => any(&|x| x.eq_ignore_ascii_case(&v)),
            "StringNotEqualsIgnoreCase" => !any(&|x| x.eq_ignore_ascii_case(&v)),
            "StringLike" | "ArnLike" => any(&|x| glob(x, &v)),
            "StringNotLike" | "ArnNotLike" => !any(&|x| glob(x, &v)),
            "Bool" => any(&|x| x.eq_ignore_ascii_case(&v)),
            op if op.starts_with("Numeric") || op.starts_with("Date") => {
                let date = op.starts_with("Date");
                let lhs = if date {
                    v.parse::<i64>().ok().map(|n| n as f64)
                } else {
                    v.parse::<f64>().ok()
                };
                let Some(lhs) = lhs else { return false };
                let cmp = |x: &str| -> Option<std::cmp::Ordering> {
                    let rhs = if date {
                        parse_date_ms(x).map(|n| n as f64)?
                    } else {
                        x.parse::<f64>().ok()?
                    };
                    lhs.partial_cmp(&rhs)
                };
                use std::cmp::Ordering::*;
                let suffix = op.trim_start_matches("Numeric").trim_start_matches("Date");
                match suffix {
                    "Equals" => any(&|x| cmp(x) == Some(Equal)),
                    "NotEquals" => !any(&|x| cmp(x) == Some(Equal)),
                    "LessThan" => any(&|x| cmp(x) == Some(Less)),
                    "LessThanEquals" => any(&|x| matches!(cmp(x), Some(Less | Equal))),
                    "GreaterThan" => any(&|x| cmp(x) == Some(Greater)),
                    "GreaterThanEquals" => any(&|x| matches!(cmp(x), Some(Greater | Equal))),
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// AWS's `ACCESS_DENIED` for IAM and resource-policy denials.
pub fn access_denied(principal: Option<&str>, resource: &str, explicit: bool) -> GatewayError {
    GatewayError::new(
        GatewayResponseType::AccessDenied,
        format!(
            "User: {} is not authorized to perform: execute-api:Invoke on resource: {resource}{}",
            principal.unwrap_or("anonymous"),
            if explicit {
                " with an explicit deny"
            } else {
                ""
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(ip: &str, resource: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            resource,
            principal_arn: None,
            principal_account: None,
            source_ip: ip.parse().ok(),
            user_agent: Some("curl/8"),
            referer: None,
            secure_transport: false,
            now_epoch_ms: 1_700_000_000_000,
            source_vpc: None,
            source_vpce: None,
        }
    }

    #[test]
    fn globbing() {
        assert!(glob("arn:*:a/*/GET/*", "arn:x:a/dev/GET/pets/1"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*", ""));
        assert!(!glob("a/*/GET", "a/dev/POST"));
    }

    #[test]
    fn source_ip_allow_deny() {
        let p = Policy::parse(&json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:us-east-1:1:a/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:us-east-1:1:a/*",
             "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}}
        ]}))
        .unwrap();
        let r = "arn:aws:execute-api:us-east-1:1:a/dev/GET/x";
        assert_eq!(p.evaluate(&facts("127.0.0.1", r)), Decision::Allow);
        assert_eq!(p.evaluate(&facts("10.1.2.3", r)), Decision::Deny);
        assert_eq!(p.evaluate(&facts("2001:db8::1", r)), Decision::Deny);
        assert_eq!(p.evaluate(&facts("2001:db9::1", r)), Decision::Allow);
        assert_eq!(
            p.evaluate(&facts(
                "127.0.0.1",
                "arn:aws:execute-api:us-east-1:1:b/dev/GET/x"
            )),
            Decision::Silent
        );
        assert!(Policy::parse(&json!({"Statement": [{"Effect": "Allow", "Action": "x", "Resource": "*", "Condition": {"Bogus": {}}}]})).is_err());
    }
}
