//! REST API routing as API Gateway does it: a resource tree matched segment by segment with
//! priority literal > `{param}` > `{greedy+}`, evaluated over (resource, method) pairs so that a
//! less specific resource serves a method the more specific one lacks (observed AWS behaviour).

use std::collections::HashMap;

/// A compiled resource tree. Resources are identified by the index the caller gave them.
#[derive(Debug, Default)]
pub struct Router {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    resource: Option<usize>,
    literals: HashMap<String, Node>,
    param: Option<(String, Box<Node>)>,
    /// `{name+}`: the name and the resource it belongs to (a greedy resource has no children).
    greedy: Option<(String, usize)>,
}

/// A path template segment.
#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    Literal(&'a str),
    Param(&'a str),
    Greedy(&'a str),
}

fn parse_segment(s: &str) -> Segment<'_> {
    if let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        if let Some(name) = inner.strip_suffix('+') {
            return Segment::Greedy(name);
        }
        return Segment::Param(inner);
    }
    Segment::Literal(s)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouterError {
    #[error("resource path {0:?} must start with '/'")]
    NotAbsolute(String),
    #[error("resource path {path:?}: a sibling ({existing}) already has a variable path part -- only one is allowed")]
    VariableSibling { path: String, existing: String },
    #[error(
        "resource path {0:?}: cannot create a child of a resource with a greedy path variable"
    )]
    ChildOfGreedy(String),
    #[error("resource path {0:?}: greedy path variable must be the last segment")]
    GreedyNotLast(String),
    #[error("resource path {0:?} is declared twice")]
    Duplicate(String),
}

/// The outcome of a successful match.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteMatch {
    pub resource: usize,
    /// Path parameters in template order, values exactly as received (percent-encoding kept).
    pub params: Vec<(String, String)>,
}

impl Router {
    /// Adds the resource with template path `path` (e.g. `/pets/{id}`) under index `resource`.
    pub fn insert(&mut self, path: &str, resource: usize) -> Result<(), RouterError> {
        let rest = path
            .strip_prefix('/')
            .ok_or_else(|| RouterError::NotAbsolute(path.to_string()))?;
        let segments: Vec<Segment<'_>> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').map(parse_segment).collect()
        };
        let mut node = &mut self.root;
        for (i, seg) in segments.iter().enumerate() {
            match *seg {
                Segment::Literal(lit) => {
                    node = node.literals.entry(lit.to_string()).or_default();
                }
                Segment::Param(name) => {
                    if let Some((g, _)) = &node.greedy {
                        return Err(RouterError::VariableSibling {
                            path: path.into(),
                            existing: format!("{{{g}+}}"),
                        });
                    }
                    if let Some((existing, _)) = &node.param {
                        if existing != name {
                            return Err(RouterError::VariableSibling {
                                path: path.into(),
                                existing: format!("{{{existing}}}"),
                            });
                        }
                    }
                    node = &mut node
                        .param
                        .get_or_insert_with(|| (name.to_string(), Box::default()))
                        .1;
                }
                Segment::Greedy(name) => {
                    if i + 1 != segments.len() {
                        return Err(RouterError::GreedyNotLast(path.into()));
                    }
                    if let Some((p, _)) = &node.param {
                        return Err(RouterError::VariableSibling {
                            path: path.into(),
                            existing: format!("{{{p}}}"),
                        });
                    }
                    if node.greedy.is_some() {
                        return Err(RouterError::Duplicate(path.into()));
                    }
                    node.greedy = Some((name.to_string(), resource));
                    return Ok(());
                }
            }
        }
        if node.resource.is_some() {
            return Err(RouterError::Duplicate(path.into()));
        }
        node.resource = Some(resource);
        Ok(())
    }

    /// Finds the most specific resource for `path` (the request path after the stage, raw) that
    /// `accepts` (i.e. has the request's method or `ANY`).
    pub fn find(&self, path: &str, accepts: impl Fn(usize) -> bool) -> Option<RouteMatch> {
        // Leading repeated slashes collapse and trailing slashes are ignored (observed).
        let trimmed = path.trim_start_matches('/').trim_end_matches('/');
        let mut params = Vec::new();
        let rest = (!trimmed.is_empty()).then_some(trimmed);
        let resource = walk(&self.root, rest, &mut params, &accepts)?;
        Some(RouteMatch { resource, params })
    }
}

/// Matches `rest`, the path from the current segment on (`None` past the last one), below
/// `node`. Segments are split off as the walk goes: a list of them cost an allocation.
fn walk(
    node: &Node,
    rest: Option<&str>,
    params: &mut Vec<(String, String)>,
    accepts: &impl Fn(usize) -> bool,
) -> Option<usize> {
    let Some(rest) = rest else {
        return node.resource.filter(|r| accepts(*r));
    };
    let (seg, next) = match rest.split_once('/') {
        Some((seg, next)) => (seg, Some(next)),
        None => (rest, None),
    };
    if let Some(child) = node.literals.get(seg) {
        if let Some(found) = walk(child, next, params, accepts) {
            return Some(found);
        }
    }
    if let Some((name, child)) = &node.param {
        if !seg.is_empty() {
            params.push((name.clone(), seg.to_string()));
            if let Some(found) = walk(child, next, params, accepts) {
                return Some(found);
            }
            params.pop();
        }
    }
    if let Some((name, resource)) = &node.greedy {
        if !rest.is_empty() && accepts(*resource) {
            params.push((name.clone(), rest.to_string()));
            return Some(*resource);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(paths: &[&str]) -> Router {
        let mut r = Router::default();
        for (i, p) in paths.iter().enumerate() {
            r.insert(p, i).expect("valid path");
        }
        r
    }

    fn find(r: &Router, path: &str) -> Option<(usize, Vec<(String, String)>)> {
        r.find(path, |_| true).map(|m| (m.resource, m.params))
    }

    #[test]
    fn literal_beats_param_beats_greedy() {
        let r = router(&["/", "/pets", "/pets/{id}", "/pets/mine", "/{proxy+}"]);
        assert_eq!(find(&r, "/pets/mine").map(|m| m.0), Some(3));
        assert_eq!(
            find(&r, "/pets/7"),
            Some((2, vec![("id".into(), "7".into())]))
        );
        assert_eq!(
            find(&r, "/other/a/b"),
            Some((4, vec![("proxy".into(), "other/a/b".into())]))
        );
        assert_eq!(find(&r, "/").map(|m| m.0), Some(0));
        assert_eq!(find(&r, "").map(|m| m.0), Some(0));
    }

    #[test]
    fn greedy_needs_a_segment_and_keeps_inner_slashes() {
        let r = router(&["/{proxy+}"]);
        assert_eq!(find(&r, "/"), None);
        assert_eq!(
            find(&r, "/proxy-value/"),
            Some((0, vec![("proxy".into(), "proxy-value".into())]))
        );
        assert_eq!(
            find(&r, "/proxy-value//double-slash"),
            Some((
                0,
                vec![("proxy".into(), "proxy-value//double-slash".into())]
            ))
        );
        assert_eq!(
            find(&r, "//proxy-value"),
            Some((0, vec![("proxy".into(), "proxy-value".into())]))
        );
    }

    #[test]
    fn backtracks_across_branches() {
        // /part1 (GET), /part1/hardcoded-value (GET), /{param+} (GET): GET /part1/random-value → greedy.
        let r = router(&["/part1", "/part1/hardcoded-value", "/{param+}"]);
        assert_eq!(find(&r, "/part1/random-value").map(|m| m.0), Some(2));
        assert_eq!(find(&r, "/part1/hardcoded-value").map(|m| m.0), Some(1));
    }

    #[test]
    fn method_aware_fallback() {
        // /test has POST only, /{proxy+} has OPTIONS only: OPTIONS /test → /{proxy+}.
        let r = router(&["/test", "/{proxy+}"]);
        let m = r.find("/test", |res| res == 1).map(|m| m.resource);
        assert_eq!(m, Some(1));
        assert_eq!(r.find("/test", |res| res == 0).map(|m| m.resource), Some(0));
    }

    #[test]
    fn nested_param_vs_greedy() {
        let r = router(&["/proxy/bar/{param}", "/proxy/{proxy+}"]);
        assert_eq!(find(&r, "/proxy/bar/x").map(|m| m.0), Some(0));
        assert_eq!(find(&r, "/proxy/other/a/b").map(|m| m.0), Some(1));
        assert_eq!(find(&r, "/proxy/bar/x/y").map(|m| m.0), Some(1));
    }

    #[test]
    fn literals_are_case_sensitive_and_params_keep_encoding() {
        let r = router(&["/Pets", "/users/{email}"]);
        assert_eq!(find(&r, "/pets"), None);
        assert_eq!(
            find(&r, "/users/test%2Balias@gmail.com"),
            Some((1, vec![("email".into(), "test%2Balias@gmail.com".into())]))
        );
        assert_eq!(find(&r, "/users//"), None);
    }

    #[test]
    fn rejects_invalid_trees() {
        let mut r = Router::default();
        r.insert("/a/{x}", 0).expect("first");
        assert!(matches!(
            r.insert("/a/{y}", 1),
            Err(RouterError::VariableSibling { .. })
        ));
        assert!(matches!(
            r.insert("/a/{p+}", 2),
            Err(RouterError::VariableSibling { .. })
        ));
        assert!(matches!(
            r.insert("/b/{p+}/c", 3),
            Err(RouterError::GreedyNotLast(_))
        ));
        assert!(matches!(
            r.insert("/a/{x}", 4),
            Err(RouterError::Duplicate(_))
        ));
    }
}
