//! Which API and stage a request is for. Accepts the invoke URL forms AWS and local tools use:
//! host-based `{api-id}.execute-api.{anything}`, path-based `/_aws/execute-api/{api-id}/{stage}/…`,
//! the legacy `/restapis/{api-id}/{stage}/_user_request_/…`, and plain `/{stage}/…` for the
//! default API.

/// The parts of the request target that select the API and stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// `None` selects the default API.
    pub api_id: Option<String>,
    /// Empty when the request has no stage segment.
    pub stage: &'a str,
    /// The resource path after the stage, raw (percent-encoding kept); empty or starting with `/`.
    pub path: &'a str,
}

const PATH_PREFIX: &str = "/_aws/execute-api/";
const LEGACY_PREFIX: &str = "/restapis/";
const LEGACY_MARKER: &str = "/_user_request_";

/// Splits `/stage/rest…` into (`stage`, `/rest…`), ignoring leading repeated slashes.
fn split_stage(path: &str) -> (&str, &str) {
    let p = path.trim_start_matches('/');
    // A byte scan: `str::find(char)` costs more than the whole of these short paths.
    match p.bytes().position(|b| b == b'/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, ""),
    }
}

/// The API id in a host of the form `{api-id}.execute-api.{anything}[:port]`, lower-cased (API ids
/// are matched case-insensitively, as DNS does).
pub fn api_id_from_host(host: &str) -> Option<String> {
    let dot = host.bytes().position(|b| b == b'.')?;
    let (label, rest) = (&host[..dot], &host[dot + 1..]);
    const MARK: &str = "execute-api.";
    if label.is_empty()
        || !rest
            .get(..MARK.len())
            .is_some_and(|m| m.eq_ignore_ascii_case(MARK))
    {
        return None;
    }
    // A private API host is `{api-id}-{vpce-id}.execute-api…`.
    let id = label.split_once("-vpce").map_or(label, |(id, _)| id);
    Some(id.to_ascii_lowercase())
}

/// `endpoint_api_id` gives the `x-apigw-api-id` header, asked for only when the host is a VPC
/// endpoint's own name (`vpce-….execute-api.…`), which names no API: that header does.
pub fn resolve<'a>(
    host: Option<&str>,
    path: &'a str,
    endpoint_api_id: impl FnOnce() -> Option<String>,
) -> Target<'a> {
    let from_host = host.and_then(|h| match api_id_from_host(h) {
        Some(id) if id.starts_with("vpce-") => endpoint_api_id().map(|id| id.to_ascii_lowercase()),
        other => other,
    });
    if let Some(id) = from_host {
        let (stage, rest) = split_stage(path);
        return Target {
            api_id: Some(id),
            stage,
            path: rest,
        };
    }
    if let Some(after) = path.strip_prefix(PATH_PREFIX) {
        let (id, rest) = after.split_once('/').unwrap_or((after, ""));
        let (stage, rest) = split_stage(rest);
        return Target {
            api_id: Some(id.to_ascii_lowercase()),
            stage,
            path: rest,
        };
    }
    if let Some(after) = path.strip_prefix(LEGACY_PREFIX) {
        if let Some((head, rest)) = after.split_once(LEGACY_MARKER) {
            if let Some((id, stage)) = head.split_once('/') {
                return Target {
                    api_id: Some(id.to_ascii_lowercase()),
                    stage,
                    path: rest,
                };
            }
        }
    }
    let (stage, rest) = split_stage(path);
    Target {
        api_id: None,
        stage,
        path: rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_based() {
        let t = resolve(
            Some("AbC123.execute-api.localhost:4567"),
            "/dev/pets/1",
            || None,
        );
        assert_eq!(
            t,
            Target {
                api_id: Some("abc123".into()),
                stage: "dev",
                path: "/pets/1"
            }
        );
        assert_eq!(
            api_id_from_host("Abc.EXECUTE-API.x").as_deref(),
            Some("abc")
        );
        assert_eq!(api_id_from_host("abc.execute-ap"), None);
        assert_eq!(api_id_from_host("127.0.0.1:4567"), None);
        let t = resolve(
            Some("abc-vpce-0123.execute-api.us-east-1.amazonaws.com"),
            "/dev",
            || None,
        );
        assert_eq!(
            t,
            Target {
                api_id: Some("abc".into()),
                stage: "dev",
                path: ""
            }
        );
    }

    #[test]
    fn vpc_endpoint_names_take_the_api_id_header() {
        let host = "vpce-0abc123-xyz.execute-api.us-east-1.vpce.amazonaws.com";
        let t = resolve(Some(host), "/dev/a", || Some("AbC".into()));
        assert_eq!(
            t,
            Target {
                api_id: Some("abc".into()),
                stage: "dev",
                path: "/a"
            }
        );
        // Without the header no API is named: the default one serves, as for other hosts.
        assert_eq!(resolve(Some(host), "/dev/a", || None).api_id, None);
        // The header is not even read for other hosts.
        let t = resolve(Some("abc.execute-api.x"), "/dev", || panic!("read"));
        assert_eq!(t.api_id.as_deref(), Some("abc"));
    }

    #[test]
    fn path_based_forms() {
        let t = resolve(
            Some("localhost:4567"),
            "/_aws/execute-api/abc/prod/a/b",
            || None,
        );
        assert_eq!(
            t,
            Target {
                api_id: Some("abc".into()),
                stage: "prod",
                path: "/a/b"
            }
        );
        let t = resolve(None, "/restapis/abc/prod/_user_request_/a", || None);
        assert_eq!(
            t,
            Target {
                api_id: Some("abc".into()),
                stage: "prod",
                path: "/a"
            }
        );
        let t = resolve(None, "/restapis/abc/prod/_user_request_", || None);
        assert_eq!(
            t,
            Target {
                api_id: Some("abc".into()),
                stage: "prod",
                path: ""
            }
        );
    }

    #[test]
    fn default_api() {
        assert_eq!(
            resolve(Some("127.0.0.1:1"), "/dev/", || None),
            Target {
                api_id: None,
                stage: "dev",
                path: "/"
            }
        );
        assert_eq!(
            resolve(None, "//dev//x", || None),
            Target {
                api_id: None,
                stage: "dev",
                path: "//x"
            }
        );
        assert_eq!(
            resolve(None, "/", || None),
            Target {
                api_id: None,
                stage: "",
                path: ""
            }
        );
    }
}
