//! Feature and quirk cases beyond the AWS-recorded corpus: every language feature the
//! engine supports, API Gateway's bindings, whitespace rules, limits and parse errors.

use serde_json::{json, Map, Value};
use turnpike_vtl::{Limits, Params, ParseError, RenderError, RenderInput, Rendered, Template};

struct Req {
    body: &'static str,
    params: Params,
    context: Value,
    stage: Map<String, Value>,
}

impl Default for Req {
    fn default() -> Self {
        Req {
            body: "",
            params: Params::default(),
            context: json!({}),
            stage: Map::new(),
        }
    }
}

fn render_with(tpl: &str, req: &Req, limits: &Limits) -> Result<Rendered, RenderError> {
    let t = Template::compile(tpl).unwrap_or_else(|e| panic!("compile {tpl:?}: {e}"));
    t.render(
        &RenderInput {
            body: req.body,
            params: &req.params,
            context: &req.context,
            stage_variables: &req.stage,
        },
        limits,
    )
}

fn render_req(tpl: &str, req: &Req) -> String {
    render_with(tpl, req, &Limits::default())
        .unwrap_or_else(|e| panic!("render {tpl:?}: {e}"))
        .output
}

fn render(tpl: &str, body: &'static str) -> String {
    render_req(
        tpl,
        &Req {
            body,
            ..Req::default()
        },
    )
}

/// (template, body, expected output)
const CASES: &[(&str, &str, &str)] = &[
    // --- references
    ("#set($a = 'x')$a ${a} $!a $!{a}", "", "x x x x"),
    ("[$missing][$!missing][${missing}][$missing.field.deeper]", "", "[][][][]"),
    ("$ 5 and $5 and $", "", "$ 5 and $5 and $"),
    ("#set($m = {'k': {'n': [10, 20]}})$m.k.n[1] $m['k'].n[0] $m.k.n[-1]", "", "20 10 20"),
    ("#set($a-b = 1)$a-b", "", "1"),
    ("#set($x = 'v')${x}text $x.", "", "vtext v."),
    ("\\$notref \\#set \\\\$x", "", "$notref #set \\"),
    ("#set($x = 'v')\\$x", "", "$x"),
    // --- literals
    ("#set($s = \"a ${n}b\")#set($n = 1)$s", "", "a b"),
    ("#set($n = 1)#set($s = \"a ${n}b\")$s", "", "a 1b"),
    ("#set($s = 'no $interp')$s", "", "no $interp"),
    ("#set($i = 42)#set($f = 1.5)#set($e = 2E3)$i $f $e", "", "42 1.5 2000.0"),
    ("#set($l = [1, 'two', true])$l $l.size()", "", "[1, two, true] 3"),
    ("#set($m = {'a': 1, 'b': 'x'})$m $m.size()", "", "{a=1, b=x} 2"),
    ("#foreach($i in [1..3])$i#end #foreach($i in [3..1])$i#end", "", "123 321"),
    ("#set($r = [0..2])$r", "", "[0, 1, 2]"),
    ("#set($u = \"\\u00e9\")$u", "", "\u{e9}"),
    // --- #set forms
    ("#set($m = {})#set($m.k = 'v')#set($m['j'] = 'w')$m", "", "{k=v, j=w}"),
    ("#set($l = [1, 2])#set($l[0] = 9)$l", "", "[9, 2]"),
    ("#set($a = 'keep')#set($a = $nothing)$a", "", "keep"),
    ("#set($r = $input.path('$'))#set($r.added = 1)$r", "{\"x\": 1}", "{x=1, added=1}"),
    ("#set($r = $input.path('$'))#set($r.o.n = 2)$r.o.n $r", "{\"o\": {\"n\": 1}}", "2 {o={n=2}}"),
    ("#set($r = $input.path('$.l'))$r.add(3)$r", "{\"l\": [1, 2]}", "true[1,2,3]"),
    // --- conditionals and operators
    ("#if(true)a#elseif(true)b#else c#end", "", "a"),
    ("#if(false)a#elseif(true)b#else c#end", "", "b"),
    ("#if(false)a#elseif(false)b#{else}c#{end}", "", "c"),
    ("#{if}(1 < 2)y#{end}", "", "y"),
    ("#if($missing)t#{else}f#end #if('')t#end #if(0)t#end", "", "f t t"),
    ("#if(1 == 1.0 && 'a' == 'a' && !false)ok#end", "", "ok"),
    ("#if(1 eq 1 and 2 gt 1 and 1 lt 2 and 2 ge 2 and 1 le 1 and 1 ne 2 and not false)ok#end", "", "ok"),
    ("#if(false || true)ok#end#if(false or false)bad#end", "", "ok"),
    ("#if($missing == $null)a#end#if($missing == '')b#end#if($missing != 'x')c#end", "", "abc"),
    ("#if(5 == '5')eq#end", "", "eq"),
    ("#set($x = 7 / 2)#set($y = 7 % 3)#set($z = 7.0 / 2)$x $y $z", "", "3 1 3.5"),
    ("#set($x = 2 + 3 * 4 - (1 + 1))$x", "", "12"),
    ("#set($s = 'a' + 1 + 'b')$s", "", "a1b"),
    ("#set($d = 1 / 0)[$d]", "", "[]"),
    ("#set($n = -3)#set($m = $n - -3)$n $m", "", "-3 0"),
    // --- #foreach
    ("#foreach($x in ['a','b','c'])$foreach.index$foreach.count$x$foreach.hasNext$foreach.first$foreach.last,#end", "", "01atruetruefalse,12btruefalsefalse,23cfalsefalsetrue,"),
    ("#foreach($x in ['a','b'])$velocityCount#end", "", "12"),
    ("#foreach($x in [1,2,3,4])#if($x == 3)#break#end$x#end", "", "12"),
    ("#foreach($a in [1,2])#foreach($b in [1,2])$foreach.parent.count$foreach.count #end#end", "", "11 12 21 22 "),
    ("#set($x = 'outer')#foreach($x in [1])$x#end$x", "", "1outer"),
    ("#foreach($v in $input.path('$'))$v,#end", "{\"a\": 1, \"b\": 2}", "1,2,"),
    ("#foreach($e in $input.path('$').entrySet())$e.key=$e.value;#end", "{\"a\": 1, \"b\": [2]}", "a=1;b=[2];"),
    ("#foreach($k in $input.path('$').keySet())$k#end", "{\"a\": 1, \"b\": 2}", "ab"),
    ("#foreach($x in $missing)never#end", "", ""),
    // --- macros, define, stop
    ("#macro(greet $who $p)Hi $who$p#end#greet('Bob' '!') #greet('Al', '?')", "", "Hi Bob! Hi Al?"),
    ("#macro(twice $x)$x$x#end#twice(\"ab\")", "", "abab"),
    ("#macro(r $n)#if($n > 0)$n#set($m = $n - 1)#r($m)#end#end#r(3)", "", "321"),
    ("#nosuchmacro('x') #ffffff", "", "#nosuchmacro('x') #ffffff"),
    // (`#set` eats the spaces before it when they follow a reference.)
    ("#define($block)v=$v#end#set($v = 1)$block #set($v = 2)$block", "", "v=1v=2"),
    ("a#stop b", "", "a"),
    // --- comments, unparsed blocks
    ("a## comment\nb#* block\ncomment *#c", "", "abc"),
    ("#[[#set($x = 1) $x]]#", "", "#set($x = 1) $x"),
    // --- whitespace (Velocity 1.7 rules)
    ("#set($a = 1)\n$a\n", "", "1\n"),
    ("x\n  #set($a = 1)\ny", "", "x\n  y"),
    ("#set($a = 1)\n    #set($b = 2)\n$a$b", "", "12"),
    ("#if(true)\nyes\n#end\nafter", "", "yes\nafter"),
    ("#foreach($i in [1,2])\n  $i\n#end\n", "", "  1\n  2\n"),
    ("#if(false)\n#else   \nno\n#end   \nz", "", "no\nz"),
    ("#if(true) a #end b", "", " a  b"),
    ("#macro(m)x#end\n#m()\n#m()", "", "xx"),
    ("a #set($x = 1)b", "", "a b"),
    ("$x   #set($y = 1)b", "", "b"),
    // --- strings
    ("#set($s = 'Hello World')$s.length() $s.substring(6) $s.substring(0, 5) $s.indexOf('o') $s.lastIndexOf('o') $s.indexOf('o', 5)", "", "11 World Hello 4 7 7"),
    ("#set($s = ' a,b,,c, ')$s.trim() $s.trim().split(',') $s.split(',').size()", "", "a,b,,c, [a, b, , c] 5"),
    ("#set($s = 'aXbXc')$s.replace('X', '-') $s.replaceAll('[a-c]', '_') $s.replaceFirst('X', '')", "", "a-b-c _X_X_ abXc"),
    ("#set($s = 'abc')$s.replaceAll('(b)', '[$1]') $s.matches('a.c') $s.matches('b')", "", "a[b]c true false"),
    ("#set($s = 'MiXed')$s.toLowerCase() $s.toUpperCase() $s.startsWith('Mi') $s.endsWith('ed') $s.contains('Xe')", "", "mixed MIXED true true true"),
    ("#set($s = 'abc')$s.equals('abc') $s.equalsIgnoreCase('ABC') $s.isEmpty() $s.charAt(1) $s.concat('d') $s.toString()", "", "true true false b abcd abc"),
    ("#set($s = '')$s.isEmpty() $s.empty [$s.split(',')]", "", "true true [[]]"),
    ("#set($s = 'h\u{e9}\u{1F600}!')$s.length() $s.substring(4)", "", "5 !"),
    ("$input.path('$.s').hashCode()", "{\"s\": \"hello\"}", "99162322"),
    // --- lists and maps
    ("#set($l = [])$l.add('a')$l.add('b')$l.size() $l.get(1) $l.contains('a') $l.indexOf('b') $l.isEmpty()", "", "truetrue2 b true 1 false"),
    ("#set($l = ['a','b','c'])#set($_ = $l.remove(0))$l #set($_ = $l.set(0, 'z'))$l", "", "[b, c][z, c]"),
    ("#set($m = {})#set($_ = $m.put('a', 1))$m.containsKey('a') $m.get('a') $m.keySet() $m.values() $m.isEmpty()#set($_ = $m.remove('a'))$m.size()", "", "true 1 [a] [1] false0"),
    ("#set($m = {'a': 1})#foreach($e in $m.entrySet())$e.key:$e.value $e.getKey()$e.getValue()#end", "", "a:1 a1"),
    // --- $input
    ("$input.body", "", "{}"),
    ("$input.body", "raw text", "raw text"),
    ("[$input.body.field]", "{\"field\": 1}", "[]"),
    ("$input.json('$')", "{\"a\": [1, 2.5, \"x\"], \"b\": null}", "{\"a\":[1,2.5,\"x\"],\"b\":null}"),
    ("$input.json('$.a')|$input.json('$.b')|$input.json('$.s')|$input.json('$.missing')", "{\"a\": [1], \"b\": {\"c\": true}, \"s\": \"str\"}", "[1]|{\"c\":true}|\"str\"|\"\""),
    ("$input.path('$.n') $input.path('$.f') $input.path('$.big') $input.path('$.t') $input.path('$.s')", "{\"n\": 3, \"f\": 6.0, \"big\": 1e21, \"t\": true, \"s\": \"x\"}", "3 6.0 1.0E21 true x"),
    ("$input.path('$.o') $input.path('$.a') $input.path('$.o').toString()", "{\"o\": {\"a\": \"b\", \"c\": [1, {\"d\": 2}], \"e\": {\"f\": null}}, \"a\": [{\"x\": 1}]}", "{a=b, c=[1,{\"d\":2}], e={f=null}} [{\"x\":1}] {a=b, c=[1,{\"d\":2}], e={f=null}}"),
    ("$input.path('$.items[*].id') $input.path('$..id').size() $input.json('$.items[?(@.id > 1)].id')", "{\"items\": [{\"id\": 1}, {\"id\": 2}]}", "[1,2] 2 [2]"),
    ("$input.path('$.items').size() $input.path('$.items')[0].id $input.path('$.items').get(1).id", "{\"items\": [{\"id\": 1}, {\"id\": 2}]}", "2 1 2"),
    ("[$input.path('$.x')][$input.json('$')]", "not json", "[][\"\"]"),
    ("$input.path('$.u') $input.json('$.u')", "{\"u\": \"caf\\u00e9 \\\"q\\\" \\n\"}", "caf\u{e9} \"q\" \n \"caf\u{e9} \\\"q\\\" \\n\""),
    // --- $util
    ("$util.escapeJavaScript('say \"hi\" / \\ ')", "", "say \\\"hi\\\" \\/ \\\\ "),
    // Velocity 1.7 keeps backslashes in string literals (no escape processing).
    ("#set($s = \"a\\tb\")$s", "", "a\\tb"),
    ("$util.escapeJavaScript($input.path('$.s'))", "{\"s\": \"l1\\nl2\\t\\u0001 \\u00e9\"}", "l1\\nl2\\t\\u0001 \\u00E9"),
    ("$util.escapeJavaScript($input.path('$.s')).replaceAll(\"\\\\'\",\"'\")", "{\"s\": \"it's\"}", "it's"),
    ("$util.urlEncode('a b&c=d/é') $util.urlDecode('a+b%26c%3Dd')", "", "a+b%26c%3Dd%2F%C3%A9 a b&c=d"),
    ("$util.base64Encode('hello') $util.base64Decode('aGVsbG8=')", "", "aGVsbG8= hello"),
    ("#set($o = $util.parseJson('{\"a\": [1, {\"b\": \"c\"}]}'))$o.a[1].b $o.a.size() $o", "", "c 2 {a=[1,{\"b\":\"c\"}]}"),
    ("[$util.escapeJavaScript($missing)][$util.urlEncode($missing)]", "", "[][]"),
    ("#set($n = $input.path('$.n'))$util.escapeJavaScript($n)", "{\"n\": 12}", "12"),
    // --- numbers
    ("#set($i = $input.path('$.i'))#set($j = $i + 1)$j $i.intValue() $i.doubleValue()", "{\"i\": 41}", "42 41 41.0"),
    ("#set($x = $input.path('$.p') * 2)$x", "{\"p\": 1.25}", "2.5"),
];

#[test]
fn feature_table() {
    let mut failures = Vec::new();
    for (i, (tpl, body, want)) in CASES.iter().enumerate() {
        let t = match Template::compile(tpl) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("#{i} {tpl:?}: compile error {e}"));
                continue;
            }
        };
        let empty = Map::new();
        let ctx = json!({});
        let params = Params::default();
        match t.render(
            &RenderInput {
                body,
                params: &params,
                context: &ctx,
                stage_variables: &empty,
            },
            &Limits::default(),
        ) {
            Ok(r) if r.output == *want => {}
            Ok(r) => failures.push(format!(
                "#{i} {tpl:?}\n      got      {:?}\n      expected {want:?}",
                r.output
            )),
            Err(e) => failures.push(format!("#{i} {tpl:?}: render error {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

fn params() -> Params {
    Params {
        path: vec![("id".into(), "42".into())],
        querystring: vec![
            ("q".into(), "first".into()),
            ("q".into(), "last".into()),
            ("id".into(), "query-id".into()),
        ],
        header: vec![
            ("X-User".into(), "alice".into()),
            ("Accept".into(), "*/*".into()),
        ],
    }
}

#[test]
fn input_params() {
    let req = Req {
        params: params(),
        ..Req::default()
    };
    assert_eq!(
        render_req(
            "$input.params('id') $input.params('q') $input.params('X-User') $input.params('x-user') [$input.params('nope')]",
            &req
        ),
        "42 last alice alice []"
    );
    assert_eq!(
        render_req(
            "$input.params().path.id $input.params().querystring.q $input.params().header.get('X-User') [$input.params().header.get('x-user')]",
            &req
        ),
        "42 last alice []"
    );
    assert_eq!(
        render_req(
            "$input.params() #foreach($k in $input.params().header.keySet())$k,#end",
            &req
        ),
        "{path={id=42}, querystring={q=last, id=query-id}, header={X-User=alice, Accept=*/*}} X-User,Accept,"
    );
}

#[test]
fn context_and_stage_variables() {
    let mut stage = Map::new();
    stage.insert("env".into(), json!("prod"));
    let req = Req {
        context: json!({
            "requestId": "r-1",
            "stage": "dev",
            "identity": {"sourceIp": "1.2.3.4", "apiKey": null},
            "authorizer": {"principalId": "user", "claims": {"custom:role": "admin"}},
            "isCanaryRequest": false
        }),
        stage,
        ..Req::default()
    };
    assert_eq!(
        render_req(
            "$context.requestId $context.stage $context.identity.sourceIp [$context.identity.apiKey] $context.authorizer.principalId $context.authorizer.claims['custom:role'] $context.isCanaryRequest",
            &req
        ),
        "r-1 dev 1.2.3.4 [] user admin false"
    );
    // Nested context maps render as empty text.
    assert_eq!(
        render_req("[$context.identity][$context.authorizer.claims]", &req),
        "[][]"
    );
    assert_eq!(
        render_req(
            "$stageVariables.env $stageVariables['env'] ${stageVariables.env} [$stageVariables.missing]",
            &req
        ),
        "prod prod prod []"
    );
    let keys = render_req("#foreach($k in $context.keySet())$k,#end", &req);
    assert_eq!(
        keys,
        "requestId,stage,identity,authorizer,isCanaryRequest,requestOverride,responseOverride,"
    );
}

#[test]
fn overrides_are_collected() {
    let r = render_with(
        "#set($context.requestOverride.header.X-A = 'a')\
         #set($context.requestOverride.header.multi = ['1', '2'])\
         #set($context.requestOverride.querystring.q = 5)\
         #set($context.requestOverride.path.p = 'pp')\
         #set($context.responseOverride.header.H = 'h')\
         #set($context.responseOverride.status = 201)ok",
        &Req::default(),
        &Limits::default(),
    )
    .expect("renders");
    assert_eq!(r.output, "ok");
    let o = &r.overrides;
    assert_eq!(
        o.request_header,
        vec![
            ("X-A".to_string(), vec!["a".to_string()]),
            ("multi".to_string(), vec!["1".to_string(), "2".to_string()])
        ]
    );
    assert_eq!(
        o.request_querystring,
        vec![("q".to_string(), vec!["5".to_string()])]
    );
    assert_eq!(o.request_path, vec![("p".to_string(), "pp".to_string())]);
    assert_eq!(
        o.response_header,
        vec![("H".to_string(), vec!["h".to_string()])]
    );
    assert_eq!(o.response_status, Some(201));
    assert_eq!(
        r.response_override,
        Some(json!({"header": {"H": "h"}, "status": 201}))
    );

    for (status, want) in [
        ("99", None),
        ("600", None),
        ("'404'", Some(404)),
        ("'abc'", None),
        ("4.5", None),
    ] {
        let r = render_with(
            &format!("#set($context.responseOverride.status = {status})"),
            &Req::default(),
            &Limits::default(),
        )
        .expect("renders");
        assert_eq!(r.overrides.response_status, want, "status {status}");
    }
    // Untouched: nothing reported.
    let r = render_with("plain", &Req::default(), &Limits::default()).expect("renders");
    assert_eq!(r.request_override, None);
    assert_eq!(r.overrides, Default::default());
}

#[test]
fn response_override_from_request_template_is_readable() {
    let req = Req {
        context: json!({"responseOverride": {"status": 444, "header": {"foo": "bar"}, "custom": "c"}}),
        ..Req::default()
    };
    assert_eq!(
        render_req(
            "$context.responseOverride.status $context.responseOverride.header.foo $context.responseOverride.custom",
            &req
        ),
        "444 bar c"
    );
}

#[test]
fn limits_are_enforced() {
    let req = Req::default();
    let err = render_with("#foreach($i in [1..1001])x#end", &req, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::LoopLimit {
                limit: 1000,
                line: 1,
                column: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        render_with("#foreach($i in [1..1000])#end", &req, &Limits::default())
            .expect("1000 iterations are fine")
            .output,
        ""
    );

    let err = render_with("#macro(f)#f()#end#f()", &req, &Limits::default()).unwrap_err();
    assert!(matches!(err, RenderError::RecursionLimit { .. }), "{err:?}");

    let err = render_with(
        "#set($s = 'xxxxxxxxxx')#foreach($i in [1..40])#set($s = \"$s$s\")#end",
        &req,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::OutputLimit { .. } | RenderError::StepLimit { .. }
        ),
        "{err:?}"
    );

    let small = Limits {
        max_output_bytes: 10,
        ..Limits::default()
    };
    let err = render_with("01234567890123", &req, &small).unwrap_err();
    assert!(
        matches!(err, RenderError::OutputLimit { limit: 10 }),
        "{err:?}"
    );

    let err = render_with(
        "#foreach($a in [1..1000])#foreach($b in [1..1000])#foreach($c in [1..1000])x#end#end#end",
        &req,
        &Limits {
            max_output_bytes: usize::MAX,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::StepLimit { .. }), "{err:?}");

    let big = "x".repeat(300 * 1024 + 1);
    let err = Template::compile(&big).unwrap_err();
    assert!(err.message.contains("maximum"), "{err}");
    assert!(Template::compile(&"x".repeat(300 * 1024)).is_ok());
}

#[test]
fn deep_nesting_is_bounded() {
    let deep_parens = format!("#set($x = {}1{})", "(".repeat(5000), ")".repeat(5000));
    assert!(Template::compile(&deep_parens).is_err());
    let deep_ifs = "#if(true)".repeat(5000) + &"#end".repeat(5000);
    assert!(Template::compile(&deep_ifs).is_err());
    let deep_json = "[".repeat(10_000) + &"]".repeat(10_000);
    let req = Req {
        body: Box::leak(deep_json.into_boxed_str()),
        ..Req::default()
    };
    assert_eq!(render_req("[$input.path('$')]", &req), "[]");
}

fn perr(tpl: &str) -> ParseError {
    match Template::compile(tpl) {
        Ok(_) => panic!("{tpl:?} should not compile"),
        Err(e) => e,
    }
}

#[test]
fn parse_errors_have_positions() {
    let e = perr("line one\n  #if($a)\nno end");
    assert_eq!((e.line, e.column), (2, 3), "{e}");
    assert!(e.message.contains("#end"), "{e}");

    let e = perr("#end");
    assert_eq!((e.line, e.column), (1, 1));

    let e = perr("ok\n#else");
    assert_eq!((e.line, e.column), (2, 1));

    let e = perr("#set($a 1)");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("'='"), "{e}");

    let e = perr("a\nb\n  $x.y('unterminated)");
    assert_eq!(e.line, 3, "{e}");

    let e = perr("#foreach($i of $list)#end");
    assert!(e.message.contains("in"), "{e}");

    let e = perr("#* never closed");
    assert_eq!((e.line, e.column), (1, 1));

    let e = perr("é #if(1 +)x#end");
    assert_eq!(e.line, 1);
    assert!(e.column >= 3, "{e}");

    let e = perr("#macro()#end");
    assert!(e.message.contains("name"), "{e}");

    assert_eq!(
        e.to_string(),
        format!("line {}, column {}: {}", e.line, e.column, e.message)
    );
}

#[test]
fn runtime_errors_have_positions() {
    let err = render_with(
        "ok\n  $util.base64Decode('!!')",
        &Req::default(),
        &Limits::default(),
    )
    .unwrap_err();
    match err {
        RenderError::Runtime { line, column, .. } => assert_eq!((line, column), (2, 3)),
        other => panic!("{other:?}"),
    }
    let err = render_with(
        "$util.parseJson('{bad')",
        &Req::default(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Runtime { .. }));
    let err = render_with(
        "#set($s = 'abc')$s.substring(5)",
        &Req::default(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Runtime { .. }));
}

#[test]
fn template_is_shareable_across_threads() {
    let t = std::sync::Arc::new(Template::compile("$input.path('$.n')").expect("compiles"));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                let body = format!("{{\"n\": {i}}}");
                let ctx = json!({});
                let sv = Map::new();
                let p = Params::default();
                t.render(
                    &RenderInput {
                        body: &body,
                        params: &p,
                        context: &ctx,
                        stage_variables: &sv,
                    },
                    &Limits::default(),
                )
                .expect("renders")
                .output
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().expect("thread"), i.to_string());
    }
}

#[test]
fn body_is_not_parsed_unless_needed() {
    // An invalid body is fine for templates that never look into it.
    assert_eq!(
        render("$input.body and more", "{not json"),
        "{not json and more"
    );
}

#[test]
fn json_path_public_api() {
    use turnpike_vtl::{json_path, JsonPathResult};
    let doc = json!({"a": {"b": [1, "two"]}});
    assert_eq!(
        json_path(&doc, "$.a.b[1]").unwrap(),
        JsonPathResult::Single(&json!("two"))
    );
    assert_eq!(
        json_path(&doc, "a.b[0]").unwrap().to_parameter_value(),
        Some("1".into())
    );
    assert_eq!(json_path(&doc, "$.a.x").unwrap(), JsonPathResult::Missing);
    assert_eq!(
        json_path(&doc, "$.a.b[*]").unwrap().to_json_string(),
        "[1,\"two\"]"
    );
    assert!(json_path(&doc, "$.a[").is_err());
}

#[test]
fn hostile_structures_are_safe() {
    let req = Req::default();
    // A map containing itself renders (bounded) or fails cleanly, never overflows.
    let r = render_with(
        "#set($m = {})#set($_ = $m.put('self', $m))$m.size() #set($context.requestOverride.header.x = $m)",
        &req,
        &Limits::default(),
    );
    assert!(r.is_ok(), "{r:?}");
    let r = render_with(
        "#set($m = {})#set($_ = $m.put('self', $m))$m",
        &req,
        &Limits::default(),
    );
    assert!(
        matches!(r, Err(RenderError::RecursionLimit { .. })),
        "{r:?}"
    );
    let r = render_with(
        "#set($l = [])#set($_ = $l.add($l))$l $l.equals($l)",
        &req,
        &Limits::default(),
    );
    assert!(r.is_err(), "{r:?}");
    // Very deep nesting built in loops: rendering is bounded, dropping is not recursive.
    let r = render_with(
        "#set($a = [])#foreach($i in [1..1000])#foreach($j in [1..300])#set($a = [$a])#end#end$a.size()",
        &req,
        &Limits::default(),
    )
    .expect("renders");
    assert_eq!(r.output, "1");
    let r = render_with(
        "#set($a = {})#foreach($i in [1..1000])#foreach($j in [1..300])#set($a = {'k': $a})#end#end$a",
        &req,
        &Limits::default(),
    );
    assert!(
        matches!(r, Err(RenderError::RecursionLimit { .. })),
        "{r:?}"
    );
    // Deeply nested blocks inside recursive macros hit a limit instead of the stack.
    let body = "#if(true)".repeat(100) + "#m()" + &"#end".repeat(100);
    let r = render_with(
        &format!("#macro(m){body}#end#m()"),
        &req,
        &Limits::default(),
    );
    assert!(
        matches!(r, Err(RenderError::RecursionLimit { .. })),
        "{r:?}"
    );
}
