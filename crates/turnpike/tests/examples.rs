//! The examples the README points users at must load cleanly: every `examples/*/turnpike.yaml`
//! validates with no errors and no warnings.

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
