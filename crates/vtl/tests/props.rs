//! Property tests: arbitrary templates, token soups and bodies never panic, and every
//! render finishes within its limits (a small step budget keeps each case fast).

use proptest::prelude::*;
use serde_json::{json, Map};
use std::time::{Duration, Instant};
use turnpike_vtl::{Limits, Params, RenderInput, Template};

fn limits() -> Limits {
    Limits {
        max_loop_iterations: 50,
        max_recursion_depth: 8,
        max_output_bytes: 64 * 1024,
        max_steps: 20_000,
    }
}

fn params() -> Params {
    Params {
        path: vec![("id".into(), "7".into())],
        querystring: vec![("q".into(), "x y".into())],
        header: vec![("H".into(), "v".into())],
    }
}

fn render_all(src: &str, body: &str) {
    let t0 = Instant::now();
    let Ok(t) = Template::compile(src) else {
        return;
    };
    let ctx = json!({"stage": "dev", "identity": {"sourceIp": "1.1.1.1"}, "requestOverride": {"header": {}}});
    let mut sv = Map::new();
    sv.insert("v".into(), json!("1"));
    let p = params();
    let input = RenderInput {
        body,
        params: &p,
        context: &ctx,
        stage_variables: &sv,
    };
    if let Ok(r) = t.render(&input, &limits()) {
        assert!(r.output.len() <= limits().max_output_bytes);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?} for {src:?}",
        t0.elapsed()
    );
}

/// Fragments that exercise every syntactic form, including broken ones.
const TOKENS: &[&str] = &[
    "$",
    "$!",
    "${",
    "}",
    "$a",
    "$b",
    "$!{a}",
    "${a}",
    "$a.b",
    "$a.b()",
    "$a[0]",
    "$a['k']",
    "$input.body",
    "$input.json('$')",
    "$input.path('$.a')",
    "$input.path('$..*')",
    "$input.params()",
    "$input.params('id')",
    "$util.escapeJavaScript($a)",
    "$util.urlEncode($a)",
    "$util.urlDecode('%')",
    "$util.base64Decode($a)",
    "$util.parseJson($a)",
    "$context.stage",
    "$context.requestOverride.header",
    "$stageVariables.v",
    "$foreach.index",
    "$foreach.hasNext",
    "$velocityCount",
    "#set(",
    "#set($a = ",
    "#set($a.b = ",
    "#set($context.responseOverride.status = ",
    "#if(",
    "#elseif(",
    "#else",
    "#end",
    "#{end}",
    "#foreach($i in ",
    "#foreach($i in [1..9])",
    "#break",
    "#stop",
    "#macro(m $x)",
    "#m(",
    "#m($a)",
    "#define($d)",
    "$d",
    "##",
    "#*",
    "*#",
    "#[[",
    "]]#",
    "\\",
    "\\$a",
    "\\#if",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    ",",
    ":",
    "..",
    "=",
    "==",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "&&",
    "||",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    " and ",
    " or ",
    " not ",
    "1",
    "-2",
    "3.5",
    "1e3",
    "true",
    "false",
    "null",
    "'s'",
    "\"$a\"",
    "[1, 2]",
    "{'k': 1}",
    "$a.size()",
    "$a.substring(1)",
    "$a.split(',')",
    "$a.replaceAll('a', '$1')",
    "$a.replaceAll('(', 'x')",
    "$a.matches('.*')",
    "$a.put('k', $a)",
    "$a.add($a)",
    "$a.keySet()",
    "$a.entrySet()",
    "$a.get(0)",
    " ",
    "\n",
    "\t",
    "x",
    "é",
    "😀",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|v| v.concat())
}

fn json_body() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        ".*".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-c]{1,2}", inner), 0..6).prop_map(|v| {
                let members: Vec<String> =
                    v.into_iter().map(|(k, x)| format!("\"{k}\":{x}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(src in ".*", body in ".*") {
        render_all(&src, &body);
    }

    #[test]
    fn token_soups_never_panic(src in token_soup(), body in json_body()) {
        render_all(&src, &body);
        // Also with the soup wrapped in a loop, and as the body.
        render_all(&format!("#set($a = $input.path('$'))#foreach($x in [1..3]){src}#end"), &body);
        render_all("$input.path('$') $input.json('$..*')", &src);
    }

    #[test]
    fn json_bodies_round_trip(body in json_body()) {
        // $input.json('$') re-serialises the body: it must be JSON equal to it.
        let t = Template::compile("$input.json('$')").unwrap();
        let ctx = json!({});
        let sv = Map::new();
        let p = Params::default();
        let out = t.render(&RenderInput { body: &body, params: &p, context: &ctx, stage_variables: &sv }, &Limits::default()).unwrap().output;
        let a: serde_json::Value = serde_json::from_str(&out).unwrap();
        let b: serde_json::Value = serde_json::from_str(&body).unwrap();
        prop_assert!(same(&a, &b), "{} != {}", a, b);
    }
}

/// JSON equality with numbers compared by value (serde_json's own float parsing is
/// not always correctly rounded, so allow one unit in the last place).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
