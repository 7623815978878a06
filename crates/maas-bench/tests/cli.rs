//! The binary as a script sees it: it must refuse non-loopback servers before sending anything.

use std::process::Command;
use std::time::{Duration, Instant};

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_maas-bench"))
        .args(args)
        .output()
        .expect("run maas-bench")
}

#[test]
fn refuses_a_non_loopback_url() {
    let start = Instant::now();
    let out = bench(&["--url", "http://example.com", "register", "--users", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only loopback"), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "no results for a refused URL");
    // Refused before any network access, not after a connection attempt.
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn refuses_a_private_address_for_the_suite_too() {
    let out = bench(&[
        "--url",
        "http://192.168.1.1:8008",
        "suite",
        "--scale",
        "0.01",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only loopback"));
}

#[test]
fn reports_a_connection_failure_as_a_failed_scenario() {
    // Port 9 (discard) on loopback: nothing listens, connecting fails at once.
    let out = bench(&[
        "--url",
        "http://127.0.0.1:9",
        "--max-seconds",
        "2",
        "register",
        "--users",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAILED register"));
}
