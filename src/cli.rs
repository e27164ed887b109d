//! The `claudeflare` command line.

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
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
        }
    }
}

/// Parses the command line and runs it; the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
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
    let result = actix_web::rt::System::new().block_on(async move {
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
