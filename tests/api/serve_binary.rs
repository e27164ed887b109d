//! The real binary: `serve` prints where it listens, answers, and stops cleanly on
//! SIGTERM; bad settings stop it with one line.

use crate::mock::MockUpstream;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_claudeflare"));
    c.env_remove("RUST_LOG");
    c
}

#[actix_web::test]
async fn serve_prints_its_address_answers_and_exits_0_on_sigterm() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut child = binary()
        .args([
            "serve",
            "--port",
            "0",
            "--upstream-url",
            &mock.url,
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = actix_web::rt::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read");
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(
        !address.ends_with(":0"),
        "the real port is shown: {address}"
    );

    let client = awc::Client::default();
    let mut r = client
        .get(format!("{address}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    assert_eq!(body["status"], "ok");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = actix_web::rt::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(exit.code(), Some(0));
    assert!(dir.path().join("claudeflare.db").exists());
}

#[test]
fn an_invalid_setting_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    for (args, env, key) in [
        (
            vec!["--upstream-url", "ftp://nowhere"],
            None,
            "upstream_url",
        ),
        (vec![], Some(("CLAUDEFLARE_PORT", "eighty")), "port"),
        (vec!["--strategy", "random"], None, "strategy"),
    ] {
        let mut cmd = binary();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
            .wait_with_output()
            .expect("wait");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.to_lowercase().contains(key), "{err}");
        assert!(!err.contains("panicked"));
    }
}
