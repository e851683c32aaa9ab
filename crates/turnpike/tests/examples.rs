//! The examples the README points users at must load cleanly: every `examples/*/turnpike.yaml`
//! validates with no errors and no warnings, and the PetStore answers the README's "Try it"
//! requests as the README says.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn every_example_validates_without_warnings() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/ exists") {
        let project = entry.expect("readable entry").path().join("turnpike.yaml");
        if !project.is_file() {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_turnpike"))
            .arg("validate")
            .arg(&project)
            .output()
            .expect("turnpike runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}: {stdout}{stderr}",
            project.display()
        );
        assert!(
            stdout.contains(" 0 warning(s)"),
            "{}: {stdout}{stderr}",
            project.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 5,
        "expected the petstore, lambda, lambda-rust, chat and access-control examples, found {checked}"
    );
}

/// The README's "Try it" requests against `examples/petstore`, served as written (only the
/// listen address and the data directory differ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn petstore_answers_the_readme_requests() {
    use common::*;
    let project =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/petstore/turnpike.yaml");
    let dir = temp_dir();
    let data = dir.path().display().to_string();
    let tp = Turnpike::serve_with(&project, &["--no-watch", "--data-dir", &data]);
    let c = client();

    let list = get(&tp.url("/dev/pets")).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let pets = list.json();
    assert_eq!(pets.as_array().map(Vec::len), Some(3), "{pets}");
    let cats = get(&tp.url("/dev/pets?type=cat")).await.json();
    assert_eq!(cats.as_array().map(Vec::len), Some(1), "{cats}");
    assert_eq!(cats[0]["type"], "cat");
    // One pet agrees with the list.
    let two = get(&tp.url("/dev/pets/2")).await;
    assert_eq!(two.status, 200);
    assert_eq!(two.json(), pets[1]);
    assert_eq!(get(&tp.url("/dev/pets/9")).await.status, 404);
    let created = send(
        c.post(tp.url("/dev/pets"))
            .header("Content-Type", "application/json")
            .body(r#"{"type":"dog"}"#),
    )
    .await;
    assert!(
        created.status < 300,
        "{} {}",
        created.status,
        created.text()
    );
    let cors = send(c.request(reqwest::Method::OPTIONS, tp.url("/dev/pets"))).await;
    assert_eq!(cors.status, 200);
    assert!(cors.header("access-control-allow-methods").is_some());
    let missing = get(&tp.url("/dev/nothing")).await;
    assert_eq!(missing.status, 403);
    assert!(
        missing.text().contains("Missing Authentication Token"),
        "{}",
        missing.text()
    );
    // The other invoke URL forms reach the same API.
    let host = send(c.get(tp.url("/dev/pets")).header(
        "Host",
        format!("petstore01.execute-api.localhost:{}", tp.port),
    ))
    .await;
    assert_eq!(host.json(), pets);
    assert_eq!(
        get(&tp.url("/_aws/execute-api/petstore01/dev/pets"))
            .await
            .json(),
        pets
    );
}

/// `examples/access-control` as written (only the listen address and the data directory
/// differ): the answers its `api.yaml` comments promise, and the usage they leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_control_example_answers_as_documented() {
    use common::*;
    use serde_json::json;
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/access-control/turnpike.yaml");
    let dir = temp_dir();
    let data = dir.path().display().to_string();
    // The example's function runs `python3 -m awslambdaric`: the test venv's python3 has it.
    let venv_python = python();
    let venv_bin = std::path::Path::new(&venv_python)
        .parent()
        .expect("venv bin dir");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args: Vec<String> = [
        "serve",
        &project.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--no-watch",
        "--data-dir",
        &data,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tp = Turnpike::spawn_env(&args, &[("PATH", path)]);
    const KEY: &str = "demo-key-0123456789abcdef";
    let c = client();
    let call = |path: &str, key: Option<&str>, token: Option<&str>| {
        let mut rb = c.get(tp.url(path));
        if let Some(k) = key {
            rb = rb.header("x-api-key", k);
        }
        if let Some(t) = token {
            rb = rb.header("Authorization", t);
        }
        send(rb)
    };

    let public = call("/dev/public", None, None).await;
    assert_eq!(public.status, 200, "{}", public.text());
    assert_eq!(public.json(), json!({"message": "anyone may call this"}));
    let no_key = call("/dev/keyed", None, None).await;
    assert_eq!(no_key.status, 403);
    assert_eq!(no_key.json(), json!({"message": "Forbidden"}));
    let keyed = call("/dev/keyed", Some(KEY), None).await;
    assert_eq!(keyed.status, 200, "{}", keyed.text());
    assert!(keyed.json()["apiKeyId"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let allowed = call("/dev/private", Some(KEY), Some("Bearer allow-me")).await;
    assert_eq!(allowed.status, 200, "{} {}", allowed.text(), tp.stderr());
    assert_eq!(
        allowed.json(),
        json!({"principalId": "user-42", "tenant": "acme"})
    );
    let denied = call("/dev/private", Some(KEY), Some("Bearer deny-me")).await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.json(),
        json!({"Message": "User is not authorized to access this resource with an explicit deny"})
    );
    for token in [None, Some("Bearer nobody"), Some("Basic x")] {
        let r = call("/dev/private", Some(KEY), token).await;
        assert_eq!(r.status, 401, "{token:?}: {}", r.text());
        assert_eq!(r.json(), json!({"message": "Unauthorized"}));
    }

    // Counted: the two answered requests made with the key.
    let (st, out, err) = run_cli(&["usage", "--data-dir", &data, "--plan", "starter"]);
    assert!(st.success(), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("usage JSON");
    let used: Vec<serde_json::Value> = report[0]["items"]
        .as_object()
        .expect("items")
        .values()
        .map(|v| v[0].clone())
        .collect();
    assert_eq!(used, vec![json!([2, 998])], "{out}");
}
