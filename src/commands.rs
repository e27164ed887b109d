//! The CLI's client commands: each calls the running daemon's API and prints an
//! aligned table (or the JSON with `--json`). Exit codes: 0 success, 1 the daemon
//! refused, 2 usage, 3 the daemon is unreachable.

use crate::client::{print_table, ApiClient, ClientError};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Add an account: an API key (read from a prompt, never an argument), or a
    /// Claude subscription / Console account through the OAuth sign-in.
    Add {
        name: String,
        #[arg(long, value_parser = ["api-key", "max", "console"], default_value = "api-key")]
        mode: String,
        #[arg(long, value_parser = ["1", "5", "20"], default_value = "1")]
        tier: String,
        #[arg(long, default_value_t = 0)]
        priority: i32,
        /// Read the API key from the first line of standard input
        #[arg(long)]
        api_key_stdin: bool,
        /// anthropic (default), anthropic-compatible, zai or minimax
        #[arg(long, default_value = "anthropic")]
        provider: String,
        /// Where requests go (required for anthropic-compatible)
        #[arg(long)]
        base_url: Option<String>,
        /// Model map, e.g. opus=glm-4.6,sonnet=glm-4.6,haiku=glm-4.5-air
        #[arg(long)]
        model_map: Option<String>,
    },
    /// List accounts.
    List,
    /// One account in detail.
    Show { name: String },
    /// Remove an account (asks unless --yes).
    Remove {
        name: String,
        #[arg(long)]
        yes: bool,
    },
    /// Take an account out of rotation.
    Pause { name: String },
    /// Put an account back in rotation.
    Resume { name: String },
    /// Rename an account.
    Rename { old: String, new: String },
    /// Set an account's tier (1, 5 or 20).
    Tier {
        name: String,
        #[arg(value_parser = ["1", "5", "20"])]
        tier: String,
    },
    /// Set an account's priority (0-100, lower first).
    Priority { name: String, priority: i32 },
    /// Sign an account in again (OAuth).
    Reauth { name: String },
}

#[derive(Subcommand, Debug)]
pub enum StatsCmd {
    /// Clear the counters and the request history (asks unless --yes).
    Reset {
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum HistoryCmd {
    /// Delete the whole request history (asks unless --yes).
    Clear {
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MaintenanceCmd {
    /// Apply retention now.
    Cleanup,
    /// Reclaim free space in the database.
    Compact,
}

#[derive(Args, Debug)]
pub struct RequestsArgs {
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Keep printing requests as they finish
    #[arg(long)]
    pub follow: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing log events as they happen
    #[arg(long)]
    pub follow: bool,
    /// How many past events to print first
    #[arg(short = 'n', default_value_t = 50)]
    pub lines: u32,
}

/// What a command prints when it succeeded.
pub enum Output {
    /// Print this value (a table unless `--json`).
    Value(Value, fn(&Value)),
    /// Already printed.
    Done,
}

/// Runs one client command in its own actix System and maps the outcome to an
/// exit code.
pub fn run<F, Fut>(server: &str, key: Option<String>, json_out: bool, command: F) -> ExitCode
where
    F: FnOnce(ApiClient) -> Fut,
    Fut: std::future::Future<Output = Result<Output, ClientError>>,
{
    let server = server.to_string();
    let result = actix_web::rt::System::new()
        .block_on(async move { command(ApiClient::new(&server, key)).await });
    match result {
        Ok(Output::Value(v, human)) => {
            if json_out {
                println!("{v}");
            } else {
                human(&v);
            }
            ExitCode::SUCCESS
        }
        Ok(Output::Done) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claudeflare: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() != 0.0)
            .map(|f| format!("{f:.4}"))
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

fn table_of(v: &Value, columns: &[(&str, &str)]) {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|l| {
            l.iter()
                .map(|row| columns.iter().map(|(_, f)| cell(&row[*f])).collect())
                .collect()
        })
        .unwrap_or_default();
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    print_table(&headers, &rows);
}

pub fn print_accounts(v: &Value) {
    table_of(
        v,
        &[
            ("NAME", "name"),
            ("PROVIDER", "provider"),
            ("KIND", "kind"),
            ("TIER", "tier"),
            ("PRIO", "priority"),
            ("STATE", "unavailableReason"),
            ("LIMITED UNTIL", "rateLimitedUntil"),
            ("REQUESTS", "totalRequests"),
            ("KEY", "credentialHint"),
        ],
    );
}

fn print_account(v: &Value) {
    print_accounts(&Value::Array(vec![v.clone()]));
}

fn print_requests(v: &Value) {
    table_of(
        v,
        &[
            ("TIME", "timestamp"),
            ("ACCOUNT", "accountName"),
            ("STATUS", "statusCode"),
            ("MODEL", "model"),
            ("IN", "inputTokens"),
            ("OUT", "outputTokens"),
            ("COST $", "costUsd"),
            ("MS", "responseTimeMs"),
            ("ERROR", "errorMessage"),
        ],
    );
}

fn print_kv(v: &Value) {
    let rows: Vec<Vec<String>> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| !v.is_array() && !v.is_object())
                .map(|(k, v)| vec![k.clone(), cell(v)])
                .collect()
        })
        .unwrap_or_default();
    print_table(&["FIELD", "VALUE"], &rows);
}

fn print_ok(_: &Value) {
    println!("ok");
}

/// Asks a yes/no question on the terminal; no terminal or no answer means no.
fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes")
}

fn read_line(prompt: &str) -> Result<String, ClientError> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::Refused(format!("reading standard input failed: {e}")))?;
    Ok(line.trim().to_string())
}

/// The account's API key: from standard input when asked, else a prompt with no
/// echo. Never from an argument, which would land in shell history.
fn read_api_key(from_stdin: bool) -> Result<String, ClientError> {
    let key = if from_stdin {
        read_line("")?
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("API key (not shown): ")
            .map_err(|e| ClientError::Refused(format!("reading the key failed: {e}")))?
    } else {
        return Err(ClientError::Usage(
            "no terminal to ask for the key: pipe it with --api-key-stdin".into(),
        ));
    };
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(ClientError::Usage("the API key is empty".into()));
    }
    Ok(key)
}

/// Opens a URL in the user's browser when there is one; quietly does nothing else.
fn open_browser(url: &str) {
    let graphical =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = std::env::var("BROWSER")
        .ok()
        .or_else(|| graphical.then(|| "xdg-open".to_string()));
    if let Some(opener) = opener {
        let _ = std::process::Command::new(opener)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// The OAuth dance on the terminal: show the link, read the pasted code, finish.
async fn oauth_flow(api: &ApiClient, started: Value) -> Result<Value, ClientError> {
    let url = started["authUrl"].as_str().unwrap_or("");
    eprintln!("Open this link, approve, and paste the code it shows:\n\n  {url}\n");
    open_browser(url);
    let code = read_line("Code: ")?;
    if code.is_empty() {
        return Err(ClientError::Usage("no code pasted".into()));
    }
    api.call(
        "POST",
        "/api/oauth/callback",
        Some(json!({"sessionId": started["sessionId"], "code": code})),
    )
    .await
}

pub async fn account(api: ApiClient, cmd: &AccountCmd) -> Result<Output, ClientError> {
    let path = |name: &str, action: &str| format!("/api/accounts/{}{action}", urlencode(name));
    let v = match cmd {
        AccountCmd::Add {
            name,
            mode,
            tier,
            priority,
            api_key_stdin,
            provider,
            base_url,
            model_map,
        } => {
            let tier: i32 = tier.parse().unwrap_or(1);
            if mode == "api-key" {
                let map = match model_map {
                    None => Value::Null,
                    Some(text) => {
                        let mut m = serde_json::Map::new();
                        for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
                            let (k, v) = pair.split_once('=').ok_or_else(|| {
                                ClientError::Usage(format!("--model-map: {pair:?} is not FROM=TO"))
                            })?;
                            m.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
                        }
                        Value::Object(m)
                    }
                };
                let key = read_api_key(*api_key_stdin)?;
                let mut body = json!({"name": name, "apiKey": key, "tier": tier, "priority": priority, "provider": provider});
                if let Some(url) = base_url {
                    body["baseUrl"] = Value::String(url.clone());
                }
                if !map.is_null() {
                    body["modelMap"] = map;
                }
                api.call("POST", "/api/accounts", Some(body)).await?
            } else {
                let body = json!({"name": name, "mode": mode, "tier": tier, "priority": priority});
                let started = api.call("POST", "/api/oauth/init", Some(body)).await?;
                oauth_flow(&api, started).await?
            }
        }
        AccountCmd::List => {
            return Ok(Output::Value(
                api.call("GET", "/api/accounts", None).await?,
                print_accounts,
            ))
        }
        AccountCmd::Show { name } => {
            return Ok(Output::Value(
                api.call("GET", &path(name, ""), None).await?,
                print_kv,
            ))
        }
        AccountCmd::Remove { name, yes } => {
            if !yes && !confirm(&format!("Remove account {name:?}? Its history stays.")) {
                return Err(ClientError::Refused("not removed".into()));
            }
            return Ok(Output::Value(
                api.call("DELETE", &path(name, ""), None).await?,
                print_ok,
            ));
        }
        AccountCmd::Pause { name } => api.call("POST", &path(name, "/pause"), None).await?,
        AccountCmd::Resume { name } => api.call("POST", &path(name, "/resume"), None).await?,
        AccountCmd::Rename { old, new } => {
            api.call("POST", &path(old, "/rename"), Some(json!({"name": new})))
                .await?
        }
        AccountCmd::Tier { name, tier } => {
            let tier: i32 = tier.parse().unwrap_or(1);
            api.call("POST", &path(name, "/tier"), Some(json!({"tier": tier})))
                .await?
        }
        AccountCmd::Priority { name, priority } => {
            api.call(
                "POST",
                &path(name, "/priority"),
                Some(json!({"priority": priority})),
            )
            .await?
        }
        AccountCmd::Reauth { name } => {
            let started = api.call("POST", &path(name, "/reauth"), None).await?;
            oauth_flow(&api, started).await?
        }
    };
    Ok(Output::Value(v, print_account))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn strategy(api: ApiClient, name: &Option<String>) -> Result<Output, ClientError> {
    let v = match name {
        Some(n) => {
            api.call("POST", "/api/config/strategy", Some(json!({"strategy": n})))
                .await?
        }
        None => api.call("GET", "/api/config/strategy", None).await?,
    };
    Ok(Output::Value(v, |v| println!("{}", cell(&v["strategy"]))))
}

pub async fn stats(api: ApiClient, cmd: &Option<StatsCmd>) -> Result<Output, ClientError> {
    match cmd {
        None => Ok(Output::Value(
            api.call("GET", "/api/stats", None).await?,
            print_kv,
        )),
        Some(StatsCmd::Reset { yes }) => clear_history(api, *yes).await,
    }
}

pub async fn clear_history(api: ApiClient, yes: bool) -> Result<Output, ClientError> {
    if !yes && !confirm("Delete the whole request history and reset the statistics?") {
        return Err(ClientError::Refused("nothing deleted".into()));
    }
    let v = api
        .call("POST", "/api/stats/reset", Some(json!({"confirm": true})))
        .await?;
    Ok(Output::Value(v, print_kv))
}

pub async fn maintenance(api: ApiClient, cmd: &MaintenanceCmd) -> Result<Output, ClientError> {
    let path = match cmd {
        MaintenanceCmd::Cleanup => "/api/maintenance/cleanup",
        MaintenanceCmd::Compact => "/api/maintenance/compact",
    };
    Ok(Output::Value(api.call("POST", path, None).await?, print_kv))
}

pub async fn analytics(api: ApiClient, range: &str) -> Result<Output, ClientError> {
    let v = api
        .call(
            "GET",
            &format!("/api/analytics?range={}", urlencode(range)),
            None,
        )
        .await?;
    Ok(Output::Value(v, |v| {
        print_kv(&v["totals"]);
        println!();
        table_of(
            &v["modelPerformance"],
            &[
                ("MODEL", "model"),
                ("REQUESTS", "requests"),
                ("AVG MS", "avgResponseTime"),
                ("P95 MS", "p95ResponseTime"),
                ("ERROR %", "errorRate"),
            ],
        );
    }))
}

/// Prints each event of an SSE stream with `print` until the stream ends.
async fn follow(
    api: &ApiClient,
    path: &str,
    json_out: bool,
    print: fn(&Value),
) -> Result<(), ClientError> {
    let mut response = api.stream(path).await?;
    let mut buffer = String::new();
    while let Some(chunk) = response.next().await {
        let chunk = chunk.map_err(|e| ClientError::Refused(format!("the stream broke: {e}")))?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n");
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                if json_out {
                    println!("{v}");
                } else {
                    print(&v);
                }
                let _ = std::io::stdout().flush();
            }
        }
    }
    Ok(())
}

fn print_request_line(r: &Value) {
    println!(
        "{}  {:<12} {:>3}  {:<28} in {:>6} out {:>6}  ${}  {} ms{}",
        cell(&r["timestamp"]),
        cell(&r["accountName"]),
        cell(&r["statusCode"]),
        cell(&r["model"]),
        cell(&r["inputTokens"]),
        cell(&r["outputTokens"]),
        cell(&r["costUsd"]),
        cell(&r["responseTimeMs"]),
        r["errorMessage"]
            .as_str()
            .map(|e| format!("  {e}"))
            .unwrap_or_default()
    );
}

fn print_log_line(e: &Value) {
    let fields: Vec<String> = e["fields"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect())
        .unwrap_or_default();
    println!(
        "{} {:>5} {} {}",
        cell(&e["time"]),
        cell(&e["level"]),
        cell(&e["message"]),
        fields.join(" ")
    );
}

pub async fn requests(
    api: ApiClient,
    args: &RequestsArgs,
    json_out: bool,
) -> Result<Output, ClientError> {
    let v = api
        .call(
            "GET",
            &format!("/api/requests?limit={}", args.limit.clamp(1, 1000)),
            None,
        )
        .await?;
    if !args.follow {
        return Ok(Output::Value(v, print_requests));
    }
    if json_out {
        println!("{v}");
    } else {
        print_requests(&v);
    }
    follow(&api, "/api/requests/stream", json_out, print_request_line).await?;
    Ok(Output::Done)
}

pub async fn logs(api: ApiClient, args: &LogsArgs, json_out: bool) -> Result<Output, ClientError> {
    let v = api
        .call(
            "GET",
            &format!("/api/logs/history?limit={}", args.lines.clamp(1, 1000)),
            None,
        )
        .await?;
    for e in v.as_array().cloned().unwrap_or_default() {
        if json_out {
            println!("{e}");
        } else {
            print_log_line(&e);
        }
    }
    if args.follow {
        follow(&api, "/api/logs/stream", json_out, print_log_line).await?;
    }
    Ok(Output::Done)
}
