//! The official Anthropic Python SDK through the daemon: a plain and a streamed
//! answer, parsed by the SDK itself. Skipped with a note where the SDK is not
//! installed (`.ci/run` installs it).

use crate::helpers::spawn_app;
use crate::mock::{Behavior, SseEnd};
use std::process::Command;
use std::time::Duration;

const SCRIPT: &str = r#"
import anthropic, sys
c = anthropic.Anthropic(base_url=sys.argv[1], api_key="client-key", max_retries=0)
m = c.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=64,
                      messages=[{"role": "user", "content": "Hi"}])
print("json", m.content[0].text, m.usage.input_tokens, m.usage.output_tokens)
with c.messages.stream(model="claude-sonnet-4-5-20250929", max_tokens=64,
                       messages=[{"role": "user", "content": "Hi"}]) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
print("stream", text, final.usage.output_tokens, final.stop_reason)
"#;

#[actix_web::test]
async fn the_python_sdk_gets_correct_answers_plain_and_streamed() {
    let has_sdk = Command::new("python3")
        .args(["-c", "import anthropic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_sdk {
        eprintln!(
            "note: the anthropic Python SDK is not installed; skipping (.ci/run installs it)"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "the SDK must be installed in CI"
        );
        return;
    }
    let app = spawn_app().await;
    app.add_account("alpha", "sk-ant-api03-sdk-00000000").await;
    let address = app.address.clone();
    // First the JSON answer (the mock's default), then a stream.
    app.mock.script(
        "sk-ant-api03-sdk-00000000",
        vec![
            Behavior::message(),
            Behavior::sse(Duration::from_millis(5), SseEnd::Complete),
        ],
    );
    let out = actix_web::rt::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", SCRIPT, &address])
            .output()
            .expect("python3")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("json Hello 11 7"), "{stdout}");
    assert!(stdout.contains("stream Hello 42 end_turn"), "{stdout}");
    let rows = app.wait_for_requests(2).await;
    assert!(rows
        .iter()
        .all(|r| r["success"] == true && r["accountName"] == "alpha"));
    assert!(app
        .mock
        .seen()
        .iter()
        .all(|s| s.header("x-api-key") == Some("sk-ant-api03-sdk-00000000")));
}
