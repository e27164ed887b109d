//! The daemon's settings: one typed struct, layered as flag > environment variable >
//! config file > default, and validated at start with one clear line.

use claudeflare_actors::protocol::Price;
use claudeflare_actors::store::Dialect;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Output format of the daemon's own log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of the daemon. Field names are the config-file keys; the
/// environment variable is `CLAUDEFLARE_` + the upper-cased name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Default: `claudeflare.db` in the data directory. A `postgres://` URL shares
    /// accounts, limits, sessions and history with other instances.
    pub database_url: Option<String>,
    /// This daemon's name in a shared (PostgreSQL) history; default: the host name.
    pub instance_id: Option<String>,
    /// With PostgreSQL: how often the shared account state is read back (ms).
    pub cluster_sync_ms: u64,
    pub upstream_url: String,
    pub strategy: String,
    pub session_duration_ms: u64,
    pub log_level: String,
    pub log_format: LogFormat,
    pub connect_timeout_ms: u64,
    pub upstream_header_timeout_ms: u64,
    pub stream_idle_timeout_ms: u64,
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers) answered normally; over it,
    /// a JSON 431. At most 112 KiB: actix-http refuses heads over 128 KiB itself.
    pub max_header_bytes: usize,
    pub retry_attempts: u32,
    pub retry_delay_ms: u64,
    pub retry_backoff: f64,
    /// Longest wait for a single retry, even when `retry-after` asks for more.
    pub retry_max_delay_ms: u64,
    pub overload_cooldown_ms: u64,
    pub store_payloads: bool,
    pub payload_max_bytes: usize,
    /// How long shutdown waits for in-flight requests and streams.
    pub shutdown_timeout_ms: u64,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Most proxied requests in flight at once (streams included); past it, 503.
    pub max_concurrent_requests: usize,
    /// Time a client has to send its request headers (slow clients are cut off).
    pub client_request_timeout_ms: u64,
    /// Most client sessions the `session-affinity` strategy remembers.
    pub affinity_capacity: usize,
    /// OAuth endpoints and client (Anthropic has moved them; all are settings).
    pub oauth_client_id: String,
    pub oauth_token_url: String,
    pub oauth_authorize_url_max: String,
    pub oauth_authorize_url_console: String,
    pub oauth_redirect_uri: String,
    pub oauth_scopes: String,
    pub oauth_api_key_url: String,
    /// How long a started sign-in waits for its code.
    pub oauth_pending_ttl_ms: u64,
    /// Refresh an access token when it expires within this window.
    pub refresh_window_ms: u64,
    /// Skip an account this long after a failed refresh.
    pub refresh_backoff_ms: u64,
    /// Allow listening beyond loopback with no key (access control off). Dangerous:
    /// anyone who can reach the port can spend every account.
    pub insecure_no_auth: bool,
    /// Stored payloads older than this many days are deleted (hourly job).
    pub retention_payload_days: u32,
    /// Request records older than this many days are deleted.
    pub retention_request_days: u32,
    /// 64 hex characters; when unset, `secret.key` in the data directory is used
    /// (created on first start).
    pub secret_key: Option<String>,
    /// Price overrides: model family or exact id → prices per million tokens.
    pub pricing: BTreeMap<String, Price>,
    /// The config file in force (`--config`, else `config.toml` in the data
    /// directory): where live changes such as the strategy are saved.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_string(),
            port: 8080,
            data_dir: default_data_dir(),
            database_url: None,
            instance_id: None,
            cluster_sync_ms: 500,
            upstream_url: "https://api.anthropic.com".to_string(),
            strategy: "session".to_string(),
            session_duration_ms: 5 * 3600 * 1000,
            log_level: "info".to_string(),
            log_format: LogFormat::Text,
            connect_timeout_ms: 10_000,
            upstream_header_timeout_ms: 600_000,
            stream_idle_timeout_ms: 300_000,
            max_body_bytes: 32 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            retry_attempts: 3,
            retry_delay_ms: 500,
            retry_backoff: 2.0,
            retry_max_delay_ms: 30_000,
            overload_cooldown_ms: 10_000,
            store_payloads: true,
            payload_max_bytes: 256 * 1024,
            shutdown_timeout_ms: 30_000,
            workers: 0,
            max_concurrent_requests: 1024,
            client_request_timeout_ms: 10_000,
            affinity_capacity: 10_000,
            oauth_client_id: "9d1c250a-e61b-44d9-88ed-5944d1962f5e".to_string(),
            oauth_token_url: "https://console.anthropic.com/v1/oauth/token".to_string(),
            oauth_authorize_url_max: "https://claude.ai/oauth/authorize".to_string(),
            oauth_authorize_url_console: "https://console.anthropic.com/oauth/authorize"
                .to_string(),
            oauth_redirect_uri: "https://console.anthropic.com/oauth/code/callback".to_string(),
            oauth_scopes: "org:create_api_key user:profile user:inference".to_string(),
            oauth_api_key_url: "https://api.anthropic.com/api/oauth/claude_cli/create_api_key"
                .to_string(),
            oauth_pending_ttl_ms: 600_000,
            refresh_window_ms: 300_000,
            refresh_backoff_ms: 60_000,
            secret_key: None,
            insecure_no_auth: false,
            retention_payload_days: 7,
            retention_request_days: 365,
            pricing: BTreeMap::new(),
            config_file: None,
        }
    }
}

/// The platform's data directory for claudeflare (e.g. `~/.local/share/claudeflare`).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("claudeflare")
}

/// Keys read from `CLAUDEFLARE_*` variables (other `CLAUDEFLARE_*` variables belong
/// to the CLI or the tests and are left alone).
const ENV_KEYS: [&str; 42] = [
    "host",
    "port",
    "data_dir",
    "database_url",
    "instance_id",
    "cluster_sync_ms",
    "upstream_url",
    "strategy",
    "session_duration_ms",
    "log_level",
    "log_format",
    "connect_timeout_ms",
    "upstream_header_timeout_ms",
    "stream_idle_timeout_ms",
    "max_body_bytes",
    "max_header_bytes",
    "retry_attempts",
    "retry_delay_ms",
    "retry_backoff",
    "retry_max_delay_ms",
    "overload_cooldown_ms",
    "store_payloads",
    "payload_max_bytes",
    "shutdown_timeout_ms",
    "workers",
    "affinity_capacity",
    "oauth_client_id",
    "oauth_token_url",
    "oauth_authorize_url_max",
    "oauth_authorize_url_console",
    "oauth_redirect_uri",
    "oauth_scopes",
    "oauth_api_key_url",
    "oauth_pending_ttl_ms",
    "refresh_window_ms",
    "refresh_backoff_ms",
    "secret_key",
    "retention_payload_days",
    "retention_request_days",
    "insecure_no_auth",
    "max_concurrent_requests",
    "client_request_timeout_ms",
];

/// A setting that stops start-up. Its message is the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{0}")]
    Load(String),
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        // Messages quote values from the file (a pricing key, a filter's parse
        // error): keep them on one line.
        message: escape_controls(&message.into()),
    }
}

/// Control characters (newlines above all) written as escapes, so that an error
/// quoting the user's text stays one line.
fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Values given on the command line; `None` leaves the layer below in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_header_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_no_auth: Option<bool>,
}

impl Config {
    /// Loads the layers: defaults, the config file (`--config`, else `config.toml` in
    /// the data directory when it exists), `CLAUDEFLARE_*` and `RUST_LOG`, then flags.
    pub fn load(config_file: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let env = || Env::prefixed("CLAUDEFLARE_").only(&ENV_KEYS);
        let rust_log = || Env::raw().only(&["RUST_LOG"]).map(|_| "log_level".into());
        let flag_layer = Serialized::defaults(flags);

        // The data directory decides where the default config file is.
        let explicit_file = config_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("CLAUDEFLARE_CONFIG").map(PathBuf::from));
        let file = match explicit_file {
            Some(path) => {
                if !path.is_file() {
                    return Err(invalid(
                        "config",
                        format!("{}: no such file", path.display()),
                    ));
                }
                path
            }
            None => {
                let data_dir: PathBuf = Figment::from(Serialized::defaults(Config::default()))
                    .merge(env())
                    .merge(flag_layer.clone())
                    .extract_inner("data_dir")
                    .map_err(|e| ConfigError::Load(one_line(&e)))?;
                data_dir.join("config.toml")
            }
        };

        let toml = file.is_file().then(|| Toml::file(&file));
        let environment = Figment::new().merge(rust_log()).merge(env());
        let mut config = Config::layered(toml, environment, flag_layer)?;
        config.config_file = Some(file);
        Ok(config)
    }

    /// The defaults with a config file's text over them, validated: what `load` does
    /// with the file, without environment variables and flags. Pure, so that the
    /// parser can be tested and fuzzed (`actors/fuzz`, target `config`). The error
    /// is one line.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::layered(
            Some(Toml::string(text)),
            Figment::new(),
            Serialized::defaults(&Overrides::default()),
        )
    }

    /// The one place the layers are merged, extracted and validated.
    fn layered(
        file: Option<figment::providers::Data<Toml>>,
        environment: Figment,
        flags: Serialized<&Overrides>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(file);
        }
        let config: Config = figment
            .merge(environment)
            .merge(flags)
            .extract()
            .map_err(|e| ConfigError::Load(one_line(&e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() {
            return Err(invalid("host", "must not be empty"));
        }
        let uri: awc::http::Uri = self.upstream_url.parse().map_err(|e| {
            invalid(
                "upstream_url",
                format!("{:?} is not a URL: {e}", self.upstream_url),
            )
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid(
                "upstream_url",
                format!("{:?} must be an http:// or https:// URL", self.upstream_url),
            ));
        }
        if uri.query().is_some() {
            return Err(invalid("upstream_url", "must not have a query"));
        }
        let strategies = claudeflare_actors::strategies::names();
        if !strategies.contains(&self.strategy.as_str()) {
            return Err(invalid(
                "strategy",
                format!(
                    "{:?} is not one of: {}",
                    self.strategy,
                    strategies.join(", ")
                ),
            ));
        }
        for (key, value) in [
            ("session_duration_ms", self.session_duration_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            (
                "upstream_header_timeout_ms",
                self.upstream_header_timeout_ms,
            ),
            ("stream_idle_timeout_ms", self.stream_idle_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (key, url) in [
            ("oauth_token_url", &self.oauth_token_url),
            ("oauth_authorize_url_max", &self.oauth_authorize_url_max),
            (
                "oauth_authorize_url_console",
                &self.oauth_authorize_url_console,
            ),
            ("oauth_redirect_uri", &self.oauth_redirect_uri),
            ("oauth_api_key_url", &self.oauth_api_key_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid(
                    key,
                    format!("{url:?} must be an http:// or https:// URL"),
                ));
            }
        }
        if self.oauth_client_id.trim().is_empty() {
            return Err(invalid("oauth_client_id", "must not be empty"));
        }
        if let Some(key) = &self.secret_key {
            let hex = key.trim();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(
                    "secret_key",
                    "must be 64 hexadecimal characters (32 bytes)",
                ));
            }
        }
        if self.max_concurrent_requests == 0 {
            return Err(invalid("max_concurrent_requests", "must be greater than 0"));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be greater than 0"));
        }
        let ceiling = crate::header_limit::MAX_HEADER_BYTES_CEILING;
        if !(1024..=ceiling).contains(&self.max_header_bytes) {
            return Err(invalid(
                "max_header_bytes",
                format!("must be between 1024 and {ceiling}"),
            ));
        }
        if !(self.retry_backoff.is_finite() && self.retry_backoff >= 1.0) {
            return Err(invalid("retry_backoff", "must be a number of at least 1"));
        }
        if let Some(url) = &self.database_url {
            if url.trim().is_empty() {
                return Err(invalid("database_url", "must not be empty"));
            }
        }
        if let Some(id) = &self.instance_id {
            if id.trim().is_empty() || id.len() > 64 {
                return Err(invalid("instance_id", "must be 1 to 64 characters"));
            }
        }
        if !(50..=60_000).contains(&self.cluster_sync_ms) {
            return Err(invalid("cluster_sync_ms", "must be between 50 and 60000"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| invalid("log_level", format!("{:?}: {e}", self.log_level)))?;
        for (model, price) in &self.pricing {
            let all = [
                price.input,
                price.output,
                price.cache_read,
                price.cache_write_5m,
                price.cache_write_1h,
            ];
            if all.iter().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(invalid(
                    "pricing",
                    format!("{model}: prices must be non-negative numbers"),
                ));
            }
        }
        Ok(())
    }

    /// The OAuth endpoints as the engine takes them.
    pub fn oauth_endpoints(&self) -> claudeflare_actors::oauth::OAuthEndpoints {
        claudeflare_actors::oauth::OAuthEndpoints {
            client_id: self.oauth_client_id.clone(),
            token_url: self.oauth_token_url.clone(),
            authorize_url_max: self.oauth_authorize_url_max.clone(),
            authorize_url_console: self.oauth_authorize_url_console.clone(),
            redirect_uri: self.oauth_redirect_uri.clone(),
            scopes: self.oauth_scopes.clone(),
            api_key_url: self.oauth_api_key_url.clone(),
        }
    }

    /// Where live changes are saved: the file given, else `config.toml` in the data dir.
    pub fn config_file_path(&self) -> PathBuf {
        self.config_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("config.toml"))
    }

    /// The PostgreSQL URL, when the store is shared.
    pub fn postgres_url(&self) -> Option<&str> {
        self.database_url
            .as_deref()
            .filter(|u| Dialect::of_url(u) == Dialect::Postgres)
    }

    /// This daemon's name in a shared history.
    pub fn instance_name(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "claudeflare".to_string())
        })
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        match &self.database_url {
            Some(url) => PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)),
            None => self.data_dir.join("claudeflare.db"),
        }
    }
}

/// figment errors can chain several errors, one a line; the user gets the first, which
/// names the key, on one line. A TOML syntax error spans several lines itself (position,
/// a source excerpt with a caret, the reason, the file): the excerpt is left out and
/// the rest joined.
fn one_line(e: &figment::Error) -> String {
    let first = e
        .clone()
        .into_iter()
        .next()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let text = if first.starts_with("TOML parse error") {
        let mut lines = first.lines();
        let mut joined = lines.next().unwrap_or_default().to_string();
        let mut separator = ": ";
        for line in lines {
            let trimmed = line.trim();
            let excerpt = trimmed
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start()
                .starts_with('|');
            if trimmed.is_empty() || excerpt {
                continue;
            }
            if trimmed.starts_with("in ") {
                joined.push(' ');
            } else {
                joined.push_str(separator);
                separator = "; ";
            }
            joined.push_str(trimmed);
        }
        joined
    } else {
        first
    };
    let text = escape_controls(text.trim());
    if text.is_empty() {
        "invalid configuration".to_string()
    } else {
        format!("invalid configuration: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let bad = Config {
            upstream_url: "ftp://x".into(),
            ..Config::default()
        };
        let msg = bad.validate().expect_err("invalid").to_string();
        assert!(msg.starts_with("invalid setting upstream_url:"), "{msg}");
        let bad = Config {
            strategy: "random".into(),
            ..Config::default()
        };
        let msg = bad.validate().expect_err("invalid").to_string();
        assert!(msg.contains("strategy") && msg.contains("session"), "{msg}");
        for size in [0, 1023, crate::header_limit::CODEC_HEAD_LIMIT] {
            let bad = Config {
                max_header_bytes: size,
                ..Config::default()
            };
            let msg = bad.validate().expect_err("invalid").to_string();
            assert!(
                msg.starts_with("invalid setting max_header_bytes:"),
                "{msg}"
            );
        }
    }

    #[test]
    fn file_then_flags_layer_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "port = 9001\nhost = \"127.0.0.2\"\nretry_attempts = 7\n[pricing.\"my-model\"]\ninput = 1.0\noutput = 2.0\n",
        )
        .expect("write");
        let flags = Overrides {
            port: Some(9002),
            ..Overrides::default()
        };
        let c = Config::load(Some(&file), &flags).expect("load");
        assert_eq!(c.port, 9002);
        assert_eq!(c.host, "127.0.0.2");
        assert_eq!(c.retry_attempts, 7);
        assert_eq!(c.pricing.get("my-model").map(|p| p.cache_read), Some(0.1));
    }

    #[test]
    fn text_parses_to_a_validated_config_or_one_line() {
        let c = Config::from_toml_str("port = 9001\nstrategy = \"round-robin\"\n").expect("valid");
        assert_eq!((c.port, c.strategy.as_str()), (9001, "round-robin"));
        let msg = Config::from_toml_str("port = 70000\n")
            .expect_err("out of range")
            .to_string();
        assert!(msg.contains("port") && !msg.contains('\n'), "{msg}");
    }

    /// Regressions found while adding the `config` fuzz target: errors that quote the
    /// user's text with a newline in it, and TOML syntax errors that lost their reason.
    #[test]
    fn errors_quoting_the_file_stay_one_line_and_keep_the_reason() {
        for (text, expected) in [
            (
                "[pricing.\"a\\nb\"]\ninput = -1.0\noutput = 1.0\n",
                "invalid setting pricing: a\\nb: prices must be non-negative numbers",
            ),
            ("\"a\\nb\" = 1\n", "unknown field: found `a\\nb`"),
            (
                "port = 1\nport = 2\n",
                "TOML parse error at line 2, column 1: duplicate key `port`",
            ),
            (
                "[a\n",
                "TOML parse error at line 1, column 3: invalid table header; expected",
            ),
            ("x = \"\n", "invalid basic string in TOML source string"),
        ] {
            let msg = Config::from_toml_str(text).expect_err(text).to_string();
            assert!(!msg.contains(['\n', '\r']), "{text:?}: {msg:?}");
            assert!(msg.contains(expected), "{text:?}: {msg:?}");
        }
    }

    #[test]
    fn a_bad_file_value_is_one_line_naming_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "port = \"eighty\"\n").expect("write");
        let msg = Config::load(Some(&file), &Overrides::default())
            .expect_err("invalid")
            .to_string();
        assert!(msg.contains("port") && !msg.contains('\n'), "{msg}");
        std::fs::write(&file, "prot = 1\n").expect("write");
        let msg = Config::load(Some(&file), &Overrides::default())
            .expect_err("unknown key")
            .to_string();
        assert!(msg.contains("prot"), "{msg}");
        std::fs::write(&file, "port = 1\nport = 2\n").expect("write");
        let msg = Config::load(Some(&file), &Overrides::default())
            .expect_err("duplicate key")
            .to_string();
        assert!(
            msg.contains("duplicate key `port`") && msg.contains("c.toml") && !msg.contains('\n'),
            "{msg}"
        );
    }
}

/// Reads the `strategy` key of a config file, if the file has one.
pub fn file_strategy(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: toml_edit::DocumentMut = text.parse().ok()?;
    doc.get("strategy")?.as_str().map(str::to_string)
}

/// Saves the strategy into the config file, keeping the rest of the file (comments
/// included) as it was; creates the file when there is none.
pub fn save_strategy(path: &Path, name: &str) -> std::io::Result<()> {
    save_settings(path, &[("strategy", toml_edit::value(name))])
}

/// Saves top-level keys into the config file, keeping the rest of it as it was.
pub fn save_settings(path: &Path, values: &[(&str, toml_edit::Item)]) -> std::io::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    for (key, value) in values {
        doc[*key] = value.clone();
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn saving_the_strategy_keeps_comments_and_other_keys() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "# my settings\nport = 9000 # the port\nstrategy = \"session\"\n",
        )
        .expect("write");
        save_strategy(&path, "round-robin").expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("# my settings") && text.contains("port = 9000 # the port"),
            "{text}"
        );
        assert_eq!(file_strategy(&path).as_deref(), Some("round-robin"));
        let fresh = dir.path().join("new/config.toml");
        save_strategy(&fresh, "weighted").expect("save");
        assert_eq!(file_strategy(&fresh).as_deref(), Some("weighted"));
    }
}
