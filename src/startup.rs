//! `Application::build(config)`: opens the store, starts the engine, binds the
//! listener (port 0 picks a free one) and returns a server ready to run. Tests call it
//! to get the real daemon on a random port.

use crate::config::Config;
use crate::proxy::{self, ProxySettings, ProxyState};
use crate::{api, error::ApiError};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use claudeflare_actors::logger::LoggerSettings;
use claudeflare_actors::protocol::PriceTable;
use claudeflare_actors::refresher::RefreshSettings;
use claudeflare_actors::secrets::Cipher;
use claudeflare_actors::store::{blocking, Store};
use claudeflare_actors::{Engine, EngineSettings};
use std::net::TcpListener;
use std::time::Duration;
use tracing_actix_web::TracingLogger;

/// Failures that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] claudeflare_actors::StoreError),
    #[error(transparent)]
    Engine(#[from] claudeflare_actors::EngineError),
    #[error(transparent)]
    SecretKey(#[from] claudeflare_actors::secrets::SecretKeyError),
    #[error("refusing to listen on {0} with no access key: anyone who can reach the port could use every account. Create an admin key first (claudeflare keys create NAME --role admin --data-dir DIR) or pass --insecure-no-auth")]
    Insecure(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// How many threads the daemon's runtime gives blocking work on SQLite (account saves,
/// log writes that leave the log thread, heap trims), all made at start and kept. A
/// thread made later brings its own allocator heap, malloc arena and stack, ~1 MB that
/// stays; tokio's default pool made one under load whenever a job came while a save
/// waited for a log write's lock and the write ran (docs/performance.md, sixteenth
/// round). SQLite writes one transaction at a time, so a third thread would mostly
/// wait. The API's reads run on the HTTP workers' own pools.
pub const SQLITE_BLOCKING_THREADS: usize = 2;

/// How long an idle blocking thread of the daemon's runtime stays on SQLite (tokio: 10 s).
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(24 * 3600);

/// The runtime `claudeflare serve` runs the daemon on: actix's own (one thread, I/O
/// and time). On SQLite its blocking pool is [`SQLITE_BLOCKING_THREADS`], started
/// here and kept. On PostgreSQL it keeps tokio's pool (512 threads at most, each gone
/// after 10 s idle): a token refresh there waits on a pool thread for another
/// instance's lock, and such waits must not hold up the log writes.
pub fn runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().thread_name("claudeflare-blocking");
    if config.postgres_url().is_some() {
        return builder.build();
    }
    let runtime = builder
        .max_blocking_threads(SQLITE_BLOCKING_THREADS)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()?;
    // Every thread busy at once makes the pool start them all now.
    let all_started = std::sync::Arc::new(std::sync::Barrier::new(SQLITE_BLOCKING_THREADS));
    runtime.block_on(async {
        let waits: Vec<_> = (0..SQLITE_BLOCKING_THREADS)
            .map(|_| {
                let all_started = all_started.clone();
                tokio::task::spawn_blocking(move || {
                    all_started.wait();
                })
            })
            .collect();
        for wait in waits {
            // Only a panic in `wait` could fail this, and it does not panic.
            let _ = wait.await;
        }
    });
    Ok(runtime)
}

/// The daemon, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    engine: Engine,
}

impl Application {
    /// Builds the daemon from its settings. Must run inside an actix System.
    pub async fn build(mut config: Config) -> Result<Application, StartError> {
        // Named once (the default reads the host name), for the engine and the API.
        config.instance_id = Some(config.instance_name());
        let cipher = Cipher::load(config.secret_key.as_deref(), &config.data_dir)?;
        let store = match config.postgres_url() {
            Some(url) => {
                let url = url.to_string();
                blocking(move || Store::open_postgres(&url, cipher)).await?
            }
            None => {
                let path = config.database_path();
                blocking(move || Store::open_sqlite(&path, cipher)).await?
            }
        };
        let engine = Engine::start(
            store,
            EngineSettings {
                refresh: RefreshSettings {
                    endpoints: config.oauth_endpoints(),
                    window_ms: config.refresh_window_ms as i64,
                    failure_backoff_ms: config.refresh_backoff_ms as i64,
                },
                strategy: config.strategy.clone(),
                session_duration_ms: config.session_duration_ms as i64,
                affinity_capacity: config.affinity_capacity,
                logger: LoggerSettings {
                    background_start: Some(crate::sched::lower_current_thread_priority),
                    ..LoggerSettings::default()
                },
                instance_id: config.instance_name(),
                cluster_sync: Duration::from_millis(config.cluster_sync_ms),
            },
            PriceTable::with_overrides(&config.pricing),
        )
        .await?;

        // Access control: on as soon as one key exists. Fail closed on the network.
        let ring = claudeflare_actors::keys::KeyRing::default();
        let (r, s) = (ring.clone(), engine.store.clone());
        blocking(move || r.reload(&s)).await?;
        if !ring.is_active() && !crate::auth::is_loopback(&config.host) {
            if !config.insecure_no_auth {
                return Err(StartError::Insecure(config.host.clone()));
            }
            tracing::warn!(host = %config.host, "listening beyond loopback with no key (--insecure-no-auth): anyone who can reach this port can use every account");
        }
        let access = crate::auth::Access::new(ring, engine.store.clone());
        actix_web::rt::spawn(access.clone().flush_loop());
        let access = web::Data::new(access);

        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr).map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: addr.clone(),
                source,
            })?
            .port();

        let settings = ProxySettings {
            upstream_base: config.upstream_url.trim_end_matches('/').to_string(),
            max_body_bytes: config.max_body_bytes,
            header_timeout: Duration::from_millis(config.upstream_header_timeout_ms),
            idle_timeout: Duration::from_millis(config.stream_idle_timeout_ms),
            retry_attempts: config.retry_attempts,
            retry_delay_ms: config.retry_delay_ms,
            retry_backoff: config.retry_backoff,
            retry_max_delay_ms: config.retry_max_delay_ms,
            overload_cooldown_ms: config.overload_cooldown_ms,
            store_payloads: config.store_payloads,
            payload_max_bytes: config.payload_max_bytes,
            refresh_window_ms: config.refresh_window_ms as i64,
        };
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let header_timeout = settings.header_timeout;
        let proxy_state = web::Data::new(ProxyState {
            engine: engine.clone(),
            settings,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_requests,
            )),
        });
        let engine_data = web::Data::new(engine.clone());
        let config_file = config.config_file_path();
        // The file as it was when the config was read: later edits are applied live.
        let file_version = modified(&config_file);
        actix_web::rt::spawn(watch_strategy(
            config_file.clone(),
            file_version,
            engine.clone(),
        ));
        let config_file = web::Data::new(api::strategy::ConfigFile(config_file));
        let started_at = web::Data::new(api::health::StartedAt(std::time::Instant::now()));
        let retention = api::settings::Retention::new(
            config.retention_payload_days,
            config.retention_request_days,
        );
        actix_web::rt::spawn(retention_job(engine.store.clone(), retention.clone()));
        actix_web::rt::spawn(crate::memory::trim_loop());
        let retention = web::Data::new(retention);
        let mut public_config = config.clone();
        public_config.secret_key = None;
        let public_config = web::Data::new(public_config);
        let api_document = web::Data::new(api::ApiDocument::new(&api::openapi_document()));
        let oauth_flows = web::Data::new(api::oauth::OAuthFlows::new(
            config.oauth_endpoints(),
            config.oauth_pending_ttl_ms as i64,
        ));

        // Per-request spans cost a request id (a random UUID) and some formatting even
        // when no span is recorded, so the middleware is left out when the log filter
        // drops its INFO spans anyway (with it disabled it emits nothing).
        let max_header_bytes = config.max_header_bytes;
        let request_spans =
            tracing::enabled!(target: "tracing_actix_web::root_span_builder", tracing::Level::INFO);
        let mut server = HttpServer::new(move || {
            // awc's client is !Send: one per worker, sharing its connection pool there.
            let client = upstream_client(connect_timeout, header_timeout);
            App::new()
                .wrap(actix_web::middleware::from_fn(crate::auth::guard))
                .wrap(actix_web::middleware::from_fn(move |req, next| {
                    crate::header_limit::check(max_header_bytes, req, next)
                }))
                .wrap(Condition::new(request_spans, TracingLogger::default()))
                .app_data(access.clone())
                .app_data(proxy_state.clone())
                .app_data(engine_data.clone())
                .app_data(config_file.clone())
                .app_data(oauth_flows.clone())
                .app_data(api_document.clone())
                .app_data(started_at.clone())
                .app_data(retention.clone())
                .app_data(public_config.clone())
                .app_data(web::Data::new(client))
                .configure(|cfg| {
                    api::configure(&mut utoipa_actix_web::service_config::ServiceConfig::new(
                        cfg,
                    ))
                })
                // A scope matches by prefix; a `{tail:.*}` route ran a regex twice
                // per request (docs/performance.md).
                .service(web::scope("/v1").default_service(web::to(proxy::proxy)))
                .configure(crate::dashboard::configure)
                .default_service(web::to(not_found))
        })
        .disable_signals()
        // Small SSE events go out at once instead of waiting for the previous
        // segment's ACK (Nagle), so the first event is not held behind the head.
        .tcp_nodelay(true)
        // A client that hangs up with a FIN (not a reset) is taken as gone at once:
        // its stream and the upstream request behind it are dropped then, not when
        // the next upstream chunk fails to write (up to the whole gap between events).
        // HTTP/1.1 clients do not half-close while waiting for an answer.
        .h1_allow_half_closed(false)
        .client_request_timeout(Duration::from_millis(config.client_request_timeout_ms))
        .shutdown_timeout(config.shutdown_timeout_ms.div_ceil(1000));
        if config.workers > 0 {
            server = server.workers(config.workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartError::Bind { addr, source })?
            .run();
        Ok(Application {
            port,
            server,
            engine,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server: `handle().stop(true)` drains in-flight requests first.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then writes every pending record and account change.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.engine.shutdown().await;
        tracing::info!("stopped");
        result
    }
}

/// The upstream HTTP client: no decompression, no redirects, no default headers, no
/// connection cap (limits are the daemon's, not the pool's), and our timeouts.
fn upstream_client(connect_timeout: Duration, header_timeout: Duration) -> awc::Client {
    let connector = awc::Connector::new()
        .timeout(connect_timeout)
        .limit(0)
        .conn_keep_alive(Duration::from_secs(30));
    awc::ClientBuilder::new()
        .connector(connector)
        .no_default_headers()
        .disable_redirects()
        .timeout(header_timeout)
        .finish()
}

/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes history past retention every hour (in small batches, see
/// `api::settings::run_retention`), not only at start-up.
async fn retention_job(
    store: claudeflare_actors::Store,
    retention: std::sync::Arc<api::settings::Retention>,
) {
    loop {
        match api::settings::run_retention(store.clone(), &retention).await {
            Ok((0, 0)) => {}
            Ok((payloads, requests)) => {
                tracing::info!(payloads, requests, "retention deleted old history")
            }
            Err(e) => tracing::warn!(error = %e, "retention failed; retrying in an hour"),
        }
        actix_web::rt::time::sleep(RETENTION_INTERVAL).await;
    }
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// How often the config file is checked for a changed strategy.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// Applies a strategy edited into the config file while the daemon runs. Polling the
/// file's modification time once a second is simpler and sturdier than a file-system
/// watcher (editors replace files rather than write them) and costs one `stat`.
async fn watch_strategy(
    path: std::path::PathBuf,
    mut seen: Option<std::time::SystemTime>,
    engine: Engine,
) {
    use claudeflare_actors::selector::{CurrentStrategy, SetStrategy};
    loop {
        actix_web::rt::time::sleep(CONFIG_POLL).await;
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let Some(wanted) = crate::config::file_strategy(&path) else {
            continue;
        };
        let Ok(current) = engine.selector.send(CurrentStrategy).await else {
            return; // the engine stopped
        };
        if current == wanted {
            continue;
        }
        match engine
            .selector
            .send(SetStrategy {
                name: wanted.clone(),
            })
            .await
        {
            Ok(Ok(())) => tracing::info!(strategy = %wanted, "strategy changed in the config file"),
            Ok(Err(valid)) => tracing::warn!(
                strategy = %wanted,
                valid = %valid.join(", "),
                "the config file names an unknown strategy; keeping the current one"
            ),
            Err(_) => return,
        }
    }
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    fn blocking_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                    .filter(|name| name.trim() == "claudeflare-blo")
                    .count()
            })
            .unwrap_or(0)
    }

    /// How many of `n` blocking jobs the runtime runs at once (each waits for a
    /// release that comes once no more start).
    fn run_at_once(runtime: &tokio::runtime::Runtime, n: usize) -> usize {
        let started = Arc::new(AtomicUsize::new(0));
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(released));
        let jobs: Vec<_> = (0..n)
            .map(|_| {
                let (started, released) = (started.clone(), released.clone());
                runtime.spawn_blocking(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let _ = released.lock().map(|r| r.recv());
                })
            })
            .collect();
        // Settled: no new start for 200 ms (at most ~10 s).
        let mut seen = 0;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(200));
            let now = started.load(Ordering::SeqCst);
            if now == seen && now > 0 {
                break;
            }
            seen = now;
        }
        for _ in 0..n {
            let _ = release.send(());
        }
        runtime.block_on(async {
            for job in jobs {
                job.await.expect("job");
            }
        });
        assert_eq!(
            started.load(Ordering::SeqCst),
            n,
            "every job ran in the end"
        );
        seen
    }

    // One test: both count the same process's threads.
    #[test]
    fn sqlite_gets_two_blocking_threads_from_the_start_and_postgres_the_default_pool() {
        let before = blocking_threads();
        let sqlite = runtime(&Config::default()).expect("runtime");
        // /proc is Linux's; elsewhere only the bound is checked.
        if cfg!(target_os = "linux") {
            assert_eq!(blocking_threads() - before, SQLITE_BLOCKING_THREADS);
        }
        assert_eq!(run_at_once(&sqlite, 3), SQLITE_BLOCKING_THREADS);
        drop(sqlite);

        let config = Config {
            database_url: Some("postgres://u:p@127.0.0.1:1/db".into()),
            ..Config::default()
        };
        let postgres = runtime(&config).expect("runtime");
        assert_eq!(run_at_once(&postgres, 3), 3);
    }
}
