//! The `kubecloud` example binary, run as a user runs it: output and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

/// `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile_dir
        .join("examples")
        .join(format!("kubecloud{}", std::env::consts::EXE_SUFFIX))
}

fn run(args: &[&str]) -> Output {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/acme.yaml");
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "SPEC" { spec } else { a })
        .collect();
    Command::new(binary())
        .args(&args)
        .output()
        .expect("the example runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plan_prints_every_step_in_dependency_order() {
    let out = run(&["plan", "-f", "SPEC", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("6 to create"), "{text}");
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing in {text}"))
    };
    assert!(at("+ vpc main") < at("+ subnet web"));
    assert!(at("+ volume web-root") < at("+ vm web"));
    assert!(at("+ vm web") < at("+ exposure web"));
}

#[test]
fn apply_shows_the_running_tenant() {
    let out = run(&["apply", "-f", "SPEC", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("Running") && text.contains("10.1.0.10"),
        "{text}"
    );
    assert!(text.contains("203.0.113.1"), "{text}");
}

#[test]
fn json_output_is_machine_readable() {
    let out = run(&[
        "apply", "-f", "SPEC", "--tenant", "acme", "--output", "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let vm = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "vm")
        .expect("a vm row");
    assert_eq!(vm["state"], "Running");
    let out = run(&["plan", "-f", "SPEC", "--tenant", "acme", "-o", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["steps"].as_array().unwrap().len(), 6);
}

#[test]
fn dry_run_and_destroy() {
    let out = run(&["apply", "-f", "SPEC", "--tenant", "acme", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("+ vm web") && !stdout(&out).contains("Running"));
    let out = run(&["destroy", "-f", "SPEC", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).contains("6 resources removed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_input_exits_2_with_a_sentence() {
    let out = run(&["plan", "-f", "SPEC", "--tenant", "Not_Valid"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: Invalid tenant:"), "{err}");
    let out = run(&["plan", "-f", "/nonexistent/tenant.yaml", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cannot read /nonexistent/tenant.yaml"));
}
