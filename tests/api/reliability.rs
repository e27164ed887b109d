//! Faults: the upstream failing in every way it can before the first byte, the
//! daemon being stopped (SIGTERM) with streams open, and killed (-9) mid-traffic.

use crate::helpers::{spawn_app_with, BODY, STREAM_BODY};
use crate::mock::{Behavior, MockUpstream, SseEnd};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sk-ant-api03-reliability-000000";

/// A TCP server that accepts, reads the request, and does `what` to it.
fn raw_upstream(what: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            match what {
                // Close without a byte of response.
                "reset" => drop(s),
                // A gzip-encoded answer the proxy must pass as it is.
                "gzip" => {
                    let body = gzip_body();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(&body);
                }
                // Headers promising more body than is sent, then close.
                "short" => {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"id\":\"msg");
                }
                _ => {}
            }
        }
    });
    format!("http://{addr}")
}

/// `{\"id\":\"msg_1\"}` gzip-compressed (made once with Python's gzip, mtime 0).
fn gzip_body() -> Vec<u8> {
    vec![
        31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 171, 86, 202, 76, 81, 178, 82, 202, 45, 78, 143, 55, 84,
        170, 5, 0, 157, 98, 216, 202, 14, 0, 0, 0,
    ]
}

#[actix_web::test]
async fn upstream_faults_before_the_first_byte_end_in_a_clear_answer() {
    for (name, url) in [
        ("dns", "http://nonexistent-host.invalid".to_string()),
        (
            "tls",
            format!(
                "https://{}",
                raw_upstream("none").trim_start_matches("http://")
            ),
        ),
        ("reset", raw_upstream("reset")),
    ] {
        let app = spawn_app_with(|c| {
            c.upstream_url = url.clone();
            c.retry_attempts = 1;
            c.connect_timeout_ms = 2_000;
            c.upstream_header_timeout_ms = 2_000;
        })
        .await;
        app.add_account("alpha", KEY).await;
        let started = Instant::now();
        let answer = app.message(BODY).await;
        assert_eq!(answer.status, 503, "{name}");
        let json = answer.json();
        assert_eq!(json["error"]["type"], "pool_exhausted", "{name}");
        assert!(
            json["error"]["accounts"][0]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("unreachable"),
            "{name}: {json}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{name}");
        let row = app.request(&answer.request_id()).await;
        assert_eq!(row["success"], false, "{name}");
    }
}

#[actix_web::test]
async fn a_gzip_body_passes_through_untouched_and_a_short_body_is_a_failure() {
    let app = spawn_app_with(|c| c.upstream_url = raw_upstream("gzip")).await;
    app.add_account("alpha", KEY).await;
    let answer = app.message(BODY).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-encoding"), Some("gzip"));
    assert_eq!(
        &answer.body[..],
        &gzip_body()[..],
        "bytes as the upstream sent them"
    );

    let app = spawn_app_with(|c| c.upstream_url = raw_upstream("short")).await;
    app.add_account("alpha", KEY).await;
    // The break reaches the client as a broken answer: a cut body, or (when the cut
    // comes before the head was flushed) a dropped connection. Never a complete body.
    let sent = app
        .client
        .post(app.url("/v1/messages"))
        .insert_header(("content-type", "application/json"))
        .send_body(BODY)
        .await;
    if let Ok(mut r) = sent {
        // awc itself reports a cut connection as the end of the body: then the
        // body is short of its Content-Length.
        if let Ok(body) = r.body().await {
            assert!(
                body.len() < 500,
                "the client sees the cut, not a complete body"
            );
        }
    }
    let rows = app.wait_for_requests(1).await;
    let id = rows[0]["id"].as_str().unwrap_or("").to_string();
    let row = app.request(&id).await;
    assert_eq!(row["success"], false);
    assert!(
        row["errorMessage"].as_str().unwrap_or("").contains("bytes"),
        "{row}"
    );
}

struct Daemon {
    child: Child,
    address: String,
}

fn start_daemon(data_dir: &Path, upstream: &str) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_claudeflare"))
        .args([
            "serve",
            "--port",
            "0",
            "--upstream-url",
            upstream,
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let address = line.trim().trim_start_matches("listening on ").to_string();
    Daemon { child, address }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
}

/// Reads the database after the daemon is gone.
fn rows(data_dir: &Path) -> (i64, i64, String, usize) {
    let cipher = claudeflare_actors::secrets::Cipher::load(None, data_dir).expect("key");
    let store = claudeflare_actors::Store::open_sqlite(&data_dir.join("claudeflare.db"), cipher)
        .expect("open");
    let all = store
        .query_requests(&claudeflare_actors::store::RequestFilter {
            limit: 100_000,
            ..Default::default()
        })
        .expect("rows");
    let ok = all.iter().filter(|r| r.success).count() as i64;
    let integrity = store.integrity_check().expect("integrity");
    let accounts = store.load_accounts().expect("accounts").len();
    (all.len() as i64, ok, integrity, accounts)
}

async fn add_account(client: &awc::Client, address: &str) {
    let r = client
        .post(format!("{address}/api/accounts"))
        .send_json(&serde_json::json!({"name": "alpha", "apiKey": KEY}))
        .await
        .expect("add");
    assert_eq!(r.status().as_u16(), 201);
}

#[actix_web::test]
async fn sigterm_lets_twenty_open_streams_finish_and_records_them_all() {
    let mock = MockUpstream::start().await;
    mock.set_default(Behavior::sse(Duration::from_millis(100), SseEnd::Complete));
    let dir = tempfile::tempdir().expect("dir");
    let daemon = start_daemon(dir.path(), &mock.url);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    add_account(&client, &daemon.address).await;

    let mut streams = Vec::new();
    for _ in 0..20 {
        let (client, url) = (client.clone(), format!("{}/v1/messages", daemon.address));
        streams.push(actix_web::rt::spawn(async move {
            let mut r = client
                .post(url)
                .insert_header(("content-type", "application/json"))
                .send_body(STREAM_BODY)
                .await
                .expect("stream starts");
            let body = r.body().limit(1 << 20).await.expect("stream completes");
            String::from_utf8_lossy(&body).contains("message_stop")
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock
        .counters
        .streams_started
        .load(std::sync::atomic::Ordering::SeqCst)
        < 20
    {
        assert!(Instant::now() < deadline, "streams did not start");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&daemon.child, "-TERM");
    for s in streams {
        assert!(s.await.expect("join"), "a stream was cut by the shutdown");
    }
    let mut child = daemon.child;
    let exit = actix_web::rt::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(exit.code(), Some(0));
    let (total, ok, integrity, _) = rows(dir.path());
    assert_eq!((total, ok), (20, 20), "every stream recorded as a success");
    assert_eq!(integrity, "ok");
}

#[actix_web::test]
async fn kill_9_mid_traffic_loses_at_most_the_last_batch_and_nothing_else() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut answered_total = 0i64;
    for round in 0..3 {
        let daemon = start_daemon(dir.path(), &mock.url);
        if round == 0 {
            add_account(&client, &daemon.address).await;
        }
        // Traffic for a while, then kill -9 while it is still flowing.
        let url = format!("{}/v1/messages", daemon.address);
        let stop_at = Instant::now() + Duration::from_millis(700);
        let mut answered = 0i64;
        let mut last_answer = Instant::now();
        while Instant::now() < stop_at {
            let r = client
                .post(&url)
                .insert_header(("content-type", "application/json"))
                .send_body(BODY)
                .await;
            if matches!(r, Ok(ref r) if r.status().as_u16() == 200) {
                answered += 1;
                last_answer = Instant::now();
            }
        }
        signal(&daemon.child, "-KILL");
        let mut child = daemon.child;
        let _ = actix_web::rt::task::spawn_blocking(move || child.wait()).await;
        answered_total += answered;
        let (total, _, integrity, accounts) = rows(dir.path());
        assert_eq!(integrity, "ok", "round {round}");
        assert_eq!(accounts, 1, "accounts intact after round {round}");
        // At most the last logger batches may be missing: ~100 ms of requests by
        // design (a flush interval to the cut, one more to the commit), allowed
        // twice that here, where the daemon shares 2 cores with ~100 other tests
        // and its threads wait their turn (73 lost for 71 allowed at 100 ms, twice
        // in ~30 runs: docs/performance.md, eleventh round).
        let allowed = (answered as f64 / 3.5).ceil() as i64 + 5;
        assert!(
            total <= answered_total,
            "round {round}: {total} rows for {answered_total} answers"
        );
        assert!(
            answered_total - total <= allowed,
            "round {round}: {} of {answered_total} answered requests lost (allowed {allowed}); last answer {:?} before the kill",
            answered_total - total,
            last_answer.elapsed()
        );
        answered_total = total;
    }
}

#[actix_web::test]
async fn the_concurrency_cap_answers_503_and_frees_places_as_streams_end() {
    let app = spawn_app_with(|c| c.max_concurrent_requests = 2).await;
    app.add_account("alpha", KEY).await;
    app.mock
        .set_default(Behavior::sse(Duration::from_millis(150), SseEnd::Complete));
    let app = std::rc::Rc::new(app);
    let mut open = Vec::new();
    for _ in 0..2 {
        let app = app.clone();
        open.push(actix_web::rt::spawn(async move {
            app.message(STREAM_BODY).await.status
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .mock
        .counters
        .streams_started
        .load(std::sync::atomic::Ordering::SeqCst)
        < 2
    {
        assert!(Instant::now() < deadline);
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = app.message(BODY).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"]["type"], "overloaded_error");
    assert_eq!(refused.header("retry-after"), Some("1"));
    for s in open {
        assert_eq!(s.await.expect("join"), 200);
    }
    assert_eq!(app.message(BODY).await.status, 200, "places are freed");
}

#[actix_web::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = spawn_app_with(|c| c.client_request_timeout_ms = 500).await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let outcome = actix_web::rt::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
    .await
    .expect("join");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off after {:?}",
        started.elapsed()
    );
    assert!(
        outcome.is_empty() || outcome.starts_with("HTTP/1.1 408"),
        "{outcome}"
    );
}

#[actix_web::test]
async fn when_the_database_cannot_be_written_the_proxy_goes_on_and_catches_up() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let app = spawn_app_with(|_| {}).await;
    app.add_account("alpha", KEY).await;
    let db = app.data_dir.path().join("claudeflare.db");
    let mut side = diesel::SqliteConnection::establish(db.to_str().expect("utf8")).expect("open");
    side.batch_execute("PRAGMA busy_timeout = 5000; ALTER TABLE requests RENAME TO requests_away;")
        .expect("break the table");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let answer = app.message(BODY).await;
        assert_eq!(answer.status, 200, "proxying goes on");
        ids.push(answer.request_id());
    }
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    let failures = claudeflare::telemetry::hub()
        .history(1000)
        .iter()
        .filter(|e| e.message.starts_with("writing request records failed"))
        // This test's failure only: the log is the process's, shared by every test
        // (the PostgreSQL outage test logs the same message for its own database).
        .filter(|e| {
            e.fields
                .get("error")
                .is_some_and(|v| v.contains("no such table: requests"))
        })
        .count();
    assert_eq!(
        failures, 1,
        "the failure is logged once, not per request or per retry"
    );
    side.batch_execute("ALTER TABLE requests_away RENAME TO requests;")
        .expect("repair the table");
    let rows = app.wait_for_requests(5).await;
    let got: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    for id in &ids {
        assert!(
            got.contains(&id.as_str()),
            "record {id} was kept and written later"
        );
    }
}

/// Sends a Messages request with one extra header of `header_value_len` bytes over a
/// raw socket (awc would not send such a head) and returns the answer's status line
/// and body.
fn raw_request(address: &str, path: &str, header_value_len: usize) -> (String, String) {
    let addr = address.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-api-key: client-key\r\nconnection: close\r\ncontent-length: {}\r\nx-huge: {}\r\n\r\n",
        BODY.len(),
        "a".repeat(header_value_len)
    );
    // The daemon may answer and close before it has read everything: ignore errors.
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(BODY.as_bytes());
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[actix_web::test]
async fn oversized_request_headers_get_a_json_431_and_the_daemon_goes_on() {
    let app = spawn_app_with(|c| c.max_header_bytes = 16 * 1024).await;
    app.add_account("alpha", KEY).await;
    for path in ["/v1/messages", "/api/accounts"] {
        let address = app.address.clone();
        let (status, body) =
            actix_web::rt::task::spawn_blocking(move || raw_request(&address, path, 20 * 1024))
                .await
                .expect("join");
        assert!(status.starts_with("HTTP/1.1 431"), "{path}: {status}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(json["error"]["type"], "request_too_large", "{path}: {json}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("max_header_bytes"), "{message}");
        if path.starts_with("/v1/") {
            assert_eq!(json["type"], "error", "Anthropic's shape: {json}");
        }
    }
    // Just under the limit still goes through.
    let address = app.address.clone();
    let (status, _) =
        actix_web::rt::task::spawn_blocking(move || raw_request(&address, "/v1/messages", 15_000))
            .await
            .expect("join");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Beyond actix-http's own 128 KiB the codec answers before any of our code: a 431
    // without a body, and the daemon is unharmed.
    let address = app.address.clone();
    let (status, _) = actix_web::rt::task::spawn_blocking(move || {
        raw_request(&address, "/v1/messages", 200 * 1024)
    })
    .await
    .expect("join");
    assert!(
        status.is_empty() || status.starts_with("HTTP/1.1 431"),
        "{status}"
    );
    let answer = app.message(BODY).await;
    assert_eq!(answer.status, 200);
    let rows = app.wait_for_requests(2).await;
    assert_eq!(rows.len(), 2, "the refused requests are not proxied");
}
