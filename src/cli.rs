//! The `claudeflare` command line.

use crate::client::{print_table, ApiClient};
use crate::commands::{
    self, AccountCmd, HistoryCmd, LogsArgs, MaintenanceCmd, RequestsArgs, StatsCmd,
};
use crate::config::{Config, LogFormat, Overrides};
use crate::startup::Application;
use crate::telemetry;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// One local endpoint in front of several Claude accounts.
#[derive(Parser, Debug)]
#[command(name = "claudeflare", version, about)]
pub struct Cli {
    /// The running daemon, for client commands
    #[arg(
        long,
        global = true,
        env = "CLAUDEFLARE_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// An admin key, when access control is on
    #[arg(
        long,
        global = true,
        env = "CLAUDEFLARE_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Keys the daemon issues to its clients (access control).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Accounts behind the daemon.
    Account {
        #[command(subcommand)]
        action: AccountCmd,
    },
    /// Show the load-balancing strategy, or switch it.
    Strategy { name: Option<String> },
    /// Live counters; `stats reset` clears them and the history.
    Stats {
        #[command(subcommand)]
        action: Option<StatsCmd>,
    },
    /// Recent requests, newest first.
    Requests(RequestsArgs),
    /// The daemon's own log.
    Logs(LogsArgs),
    /// Totals and per-model performance over a range.
    Analytics {
        #[arg(long, value_parser = ["1h", "6h", "24h", "7d", "30d"], default_value = "24h")]
        range: String,
    },
    /// The request history.
    History {
        #[command(subcommand)]
        action: HistoryCmd,
    },
    /// Database upkeep.
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceCmd,
    },
    /// A terminal view of the running daemon.
    Tui,
    /// Shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Issue a key; it is printed once and stored only as a hash.
    Create {
        name: String,
        #[arg(long, value_parser = ["proxy", "admin"], default_value = "proxy")]
        role: String,
        /// Work on the database in this data directory directly, with no daemon
        /// running (to make the first admin key before exposing the daemon)
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Disable a key (it gets 401 from then on).
    Disable { id: String },
    /// Enable a disabled key.
    Enable { id: String },
    /// Delete a key.
    Delete { id: String },
}

/// Flags of `serve`. Each also reads `CLAUDEFLARE_<NAME>` and the config file; a flag wins.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Config file (default: config.toml in the data directory) [env: CLAUDEFLARE_CONFIG]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: CLAUDEFLARE_HOST] [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one [env: CLAUDEFLARE_PORT] [default: 8080]
    #[arg(long)]
    pub port: Option<u16>,
    /// Where the database and config live [env: CLAUDEFLARE_DATA_DIR]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Database (default: claudeflare.db in the data directory) [env: CLAUDEFLARE_DATABASE_URL]
    #[arg(long)]
    pub database_url: Option<String>,
    /// Upstream base URL [env: CLAUDEFLARE_UPSTREAM_URL] [default: https://api.anthropic.com]
    #[arg(long)]
    pub upstream_url: Option<String>,
    /// Load-balancing strategy [env: CLAUDEFLARE_STRATEGY] [default: session]
    #[arg(long)]
    pub strategy: Option<String>,
    /// How long the session strategy sticks to one account [env: CLAUDEFLARE_SESSION_DURATION_MS]
    #[arg(long)]
    pub session_duration_ms: Option<u64>,
    /// Log filter, e.g. info or claudeflare=debug [env: RUST_LOG] [default: info]
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log output format [env: CLAUDEFLARE_LOG_FORMAT] [default: text]
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Upstream connect timeout [env: CLAUDEFLARE_CONNECT_TIMEOUT_MS] [default: 10000]
    #[arg(long)]
    pub connect_timeout_ms: Option<u64>,
    /// Time allowed until the upstream's response headers [env: CLAUDEFLARE_UPSTREAM_HEADER_TIMEOUT_MS] [default: 600000]
    #[arg(long)]
    pub upstream_header_timeout_ms: Option<u64>,
    /// Longest gap between body chunks of a response [env: CLAUDEFLARE_STREAM_IDLE_TIMEOUT_MS] [default: 300000]
    #[arg(long)]
    pub stream_idle_timeout_ms: Option<u64>,
    /// How long shutdown waits for in-flight requests [env: CLAUDEFLARE_SHUTDOWN_TIMEOUT_MS] [default: 30000]
    #[arg(long)]
    pub shutdown_timeout_ms: Option<u64>,
    /// HTTP worker threads, 0 for one per core [env: CLAUDEFLARE_WORKERS]
    #[arg(long)]
    pub workers: Option<usize>,
    /// Listen beyond loopback with no key; anyone who can reach the port can use
    /// every account [env: CLAUDEFLARE_INSECURE_NO_AUTH]
    #[arg(long)]
    pub insecure_no_auth: bool,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            host: self.host.clone(),
            port: self.port,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            upstream_url: self.upstream_url.clone(),
            strategy: self.strategy.clone(),
            session_duration_ms: self.session_duration_ms,
            log_level: self.log_level.clone(),
            log_format: self.log_format,
            connect_timeout_ms: self.connect_timeout_ms,
            upstream_header_timeout_ms: self.upstream_header_timeout_ms,
            stream_idle_timeout_ms: self.stream_idle_timeout_ms,
            shutdown_timeout_ms: self.shutdown_timeout_ms,
            workers: self.workers,
            insecure_no_auth: self.insecure_no_auth.then_some(true),
        }
    }
}

/// Parses the command line and runs it; the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let client =
        |f: ClientCommand<'_>| commands::run(&cli.server, cli.api_key.clone(), cli.json, f);
    match &cli.command {
        Command::Serve(args) => serve(args),
        Command::Keys { action } => keys(&cli, action),
        Command::Account { action } => client(Box::new(move |api| {
            Box::pin(commands::account(api, action))
        })),
        Command::Strategy { name } => {
            client(Box::new(move |api| Box::pin(commands::strategy(api, name))))
        }
        Command::Stats { action } => {
            client(Box::new(move |api| Box::pin(commands::stats(api, action))))
        }
        Command::Requests(args) => {
            let json = cli.json;
            client(Box::new(move |api| {
                Box::pin(commands::requests(api, args, json))
            }))
        }
        Command::Logs(args) => {
            let json = cli.json;
            client(Box::new(move |api| {
                Box::pin(commands::logs(api, args, json))
            }))
        }
        Command::Analytics { range } => client(Box::new(move |api| {
            Box::pin(commands::analytics(api, range))
        })),
        Command::History {
            action: HistoryCmd::Clear { yes },
        } => {
            let yes = *yes;
            client(Box::new(move |api| {
                Box::pin(commands::clear_history(api, yes))
            }))
        }
        Command::Maintenance { action } => client(Box::new(move |api| {
            Box::pin(commands::maintenance(api, action))
        })),
        Command::Tui => crate::tui::run(&cli.server, cli.api_key.clone()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "claudeflare",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

/// A client command: takes the API client, gives the future of its output.
type ClientCommand<'a> = Box<
    dyn FnOnce(
            ApiClient,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<commands::Output, crate::client::ClientError>,
                    > + 'a,
            >,
        > + 'a,
>;

/// Prints a failure as one line and returns its exit code.
fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("claudeflare: {message}");
    ExitCode::from(code)
}

fn keys(cli: &Cli, action: &KeysAction) -> ExitCode {
    if let KeysAction::Create {
        name,
        role,
        data_dir: Some(dir),
    } = action
    {
        return create_key_offline(cli, name, role, dir);
    }
    let client_action = |api: ApiClient| async move {
        match action {
            KeysAction::Create { name, role, .. } => {
                let body = serde_json::json!({"name": name, "role": role});
                api.call("POST", "/api/keys", Some(body)).await
            }
            KeysAction::List => api.call("GET", "/api/keys", None).await,
            KeysAction::Disable { id } => {
                api.call("POST", &format!("/api/keys/{id}/disable"), None)
                    .await
            }
            KeysAction::Enable { id } => {
                api.call("POST", &format!("/api/keys/{id}/enable"), None)
                    .await
            }
            KeysAction::Delete { id } => api.call("DELETE", &format!("/api/keys/{id}"), None).await,
        }
    };
    let server = cli.server.clone();
    let key = cli.api_key.clone();
    let result = actix_web::rt::System::new()
        .block_on(async move { client_action(ApiClient::new(&server, key)).await });
    match result {
        Err(e) => fail(&e, e.exit_code()),
        Ok(v) if cli.json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            match action {
                KeysAction::Create { .. } => print_new_key(&v),
                KeysAction::List => {
                    let rows: Vec<Vec<String>> = v
                        .as_array()
                        .map(|l| {
                            l.iter()
                                .map(|k| {
                                    ["name", "role", "enabled", "requestCount", "lastUsed", "id"]
                                        .iter()
                                        .map(|f| match &k[*f] {
                                            serde_json::Value::String(s) => s.clone(),
                                            serde_json::Value::Null => "-".into(),
                                            other => other.to_string(),
                                        })
                                        .collect()
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    print_table(
                        &["NAME", "ROLE", "ENABLED", "REQUESTS", "LAST USED", "ID"],
                        &rows,
                    );
                }
                _ => println!("ok"),
            }
            ExitCode::SUCCESS
        }
    }
}

fn print_new_key(v: &serde_json::Value) {
    println!("{}", v["key"].as_str().unwrap_or(""));
    eprintln!(
        "key {:?} ({}) created; it is shown only now, store it safely",
        v["name"].as_str().unwrap_or(""),
        v["role"].as_str().unwrap_or("")
    );
}

/// `keys create --data-dir`: straight on the store, no daemon needed.
fn create_key_offline(cli: &Cli, name: &str, role: &str, dir: &std::path::Path) -> ExitCode {
    use claudeflare_actors::keys::Role;
    let Some(role) = Role::parse(role) else {
        return fail(format!("unknown role {role:?}: use proxy or admin"), 2);
    };
    let secret = std::env::var("CLAUDEFLARE_SECRET_KEY").ok();
    let cipher = match claudeflare_actors::secrets::Cipher::load(secret.as_deref(), dir) {
        Ok(c) => c,
        Err(e) => return fail(e, 1),
    };
    let store = match claudeflare_actors::Store::open_sqlite(&dir.join("claudeflare.db"), cipher) {
        Ok(s) => s,
        Err(e) => return fail(e, 1),
    };
    match store.create_key(name, role) {
        Ok(issued) => {
            let v = serde_json::json!({"id": issued.record.id, "name": issued.record.name, "role": role.as_str(), "key": issued.key});
            if cli.json {
                println!("{v}");
            } else {
                print_new_key(&v);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 1),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref(), &args.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("claudeflare: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config);
    let host = if config.host.contains(':') {
        format!("[{}]", config.host)
    } else {
        config.host.clone()
    };
    let runtime = match crate::startup::runtime(&config) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("claudeflare: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = actix_web::rt::System::with_tokio_rt(move || runtime).block_on(async move {
        let app = Application::build(config).await?;
        println!("listening on http://{host}:{}", app.port());
        let _ = std::io::stdout().flush();
        let handle = app.handle();
        actix_web::rt::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested: draining in-flight requests");
            handle.stop(true).await;
        });
        app.run_until_stopped().await?;
        Ok::<(), anyhow::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claudeflare: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use actix_web::rt::signal;
    let mut term = match signal::unix::signal(signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the daemon");
            let _ = signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
