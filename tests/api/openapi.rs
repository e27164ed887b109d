//! The OpenAPI document is generated from the handlers that are registered, so it
//! cannot drift: every documented route answers, and on every documented path the
//! server answers exactly the documented methods.

use crate::helpers::spawn_app;
use serde_json::Value;

const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "PUT"];

#[actix_web::test]
async fn the_document_matches_the_routes_the_server_answers() {
    let app = spawn_app().await;
    app.add_account("alpha", "sk-ant-api03-doc-test-0000").await;
    let (status, doc) = app.get_json("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for expected in [
        "/health",
        "/metrics",
        "/api/openapi.json",
        "/api/accounts",
        "/api/accounts/{id}",
        "/api/accounts/{id}/pause",
        "/api/accounts/{id}/reauth",
        "/api/oauth/init",
        "/api/oauth/callback",
        "/api/requests",
        "/api/requests/{id}",
        "/api/requests/stream",
        "/api/stats",
        "/api/stats/reset",
        "/api/analytics",
        "/api/logs/history",
        "/api/config",
        "/api/config/strategy",
        "/api/config/retention",
        "/api/strategies",
        "/api/maintenance/cleanup",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }

    for (path, item) in &paths {
        let concrete = path.replace("{id}", "alpha");
        let documented: Vec<String> = item
            .as_object()
            .map(|o| o.keys().map(|k| k.to_uppercase()).collect())
            .unwrap_or_default();
        for method in METHODS {
            let req = app
                .client
                .request(method.parse().expect("method"), app.url(&concrete))
                .insert_header(("content-type", "application/json"));
            let mut response = req.send_body("{}").await.expect("send");
            let status = response.status().as_u16();
            let streaming = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            let body: Value = if streaming {
                Value::Null
            } else {
                serde_json::from_slice(&response.body().await.unwrap_or_default())
                    .unwrap_or(Value::Null)
            };
            if documented.contains(&method.to_string()) {
                let unknown = status == 404
                    && body["error"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("no such endpoint");
                assert!(
                    !unknown && status != 405,
                    "{method} {path} is documented but answered {status} {body}"
                );
                // Side effects of the walk must not remove the account the next paths need.
                if method == "DELETE" && path == "/api/accounts/{id}" {
                    app.add_account("alpha", "sk-ant-api03-doc-test-0000").await;
                }
            } else if path.starts_with("/api") {
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented but answered {status}"
                );
                let allow = response
                    .headers()
                    .get("allow")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut allowed: Vec<&str> = allow.split(", ").collect();
                allowed.sort_unstable();
                let mut want: Vec<&str> = documented.iter().map(String::as_str).collect();
                want.sort_unstable();
                assert_eq!(allowed, want, "Allow on {path}");
            }
        }
    }
}
