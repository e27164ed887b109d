//! The CLI's side of the daemon's HTTP API: one small client, errors mapped to
//! the CLI's exit codes (1: the daemon refused, 3: the daemon is unreachable).

use serde_json::Value;
use std::time::Duration;

/// Why a CLI command failed; each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach claudeflare at {0}: is 'claudeflare serve' running?")]
    Unreachable(String),
    #[error("{0}")]
    Refused(String),
    /// The command cannot run as given (exit 2).
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable(_) => 3,
            ClientError::Refused(_) => 1,
            ClientError::Usage(_) => 2,
        }
    }
}

/// A client of the daemon's management API.
pub struct ApiClient {
    base: String,
    key: Option<String>,
    client: awc::Client,
}

impl ApiClient {
    /// Must be created inside an actix System.
    pub fn new(base: &str, key: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            key,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
        }
    }

    /// Sends a request; a JSON answer on success, the daemon's error message otherwise.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let method: awc::http::Method = method
            .parse()
            .map_err(|_| ClientError::Refused(format!("bad method {method}")))?;
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            req = req.insert_header(("authorization", format!("Bearer {key}")));
        }
        let sent = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        };
        let mut response = sent.map_err(|_| ClientError::Unreachable(self.base.clone()))?;
        let status = response.status();
        let bytes = response
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| ClientError::Refused(format!("reading the answer failed: {e}")))?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("the daemon answered {status}"));
        Err(ClientError::Refused(message))
    }
}

impl ApiClient {
    /// Opens a server-sent-events stream.
    pub async fn stream(&self, path: &str) -> Result<awc::ClientResponse, ClientError> {
        let client = awc::Client::builder().disable_timeout().finish();
        let mut req = client.get(format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            req = req.insert_header(("authorization", format!("Bearer {key}")));
        }
        let response = req
            .send()
            .await
            .map_err(|_| ClientError::Unreachable(self.base.clone()))?;
        if !response.status().is_success() {
            return Err(ClientError::Refused(format!(
                "the daemon answered {}",
                response.status()
            )));
        }
        Ok(response)
    }
}

/// Prints rows as an aligned table with a header.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(headers.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        println!("{}", line(row.clone()));
    }
}
