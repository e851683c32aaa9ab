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
        checked >= 4,
        "expected the petstore, lambda, lambda-rust and chat examples, found {checked}"
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
