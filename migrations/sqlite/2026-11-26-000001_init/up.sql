-- Timestamps are unix milliseconds (BIGINT) so that SQLite and PostgreSQL read alike.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL DEFAULT 'anthropic',
    kind TEXT NOT NULL,
    api_key TEXT,
    access_token TEXT,
    refresh_token TEXT,
    expires_at BIGINT,
    tier INTEGER NOT NULL DEFAULT 1,
    priority INTEGER NOT NULL DEFAULT 0,
    paused BOOLEAN NOT NULL DEFAULT 0,
    auth_failed BOOLEAN NOT NULL DEFAULT 0,
    rate_limited_until BIGINT,
    rate_limit_status TEXT,
    rate_limit_reset BIGINT,
    rate_limit_remaining BIGINT,
    utilization_5h DOUBLE,
    utilization_7d DOUBLE,
    session_start BIGINT,
    session_request_count BIGINT NOT NULL DEFAULT 0,
    request_count BIGINT NOT NULL DEFAULT 0,
    total_requests BIGINT NOT NULL DEFAULT 0,
    last_used BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE requests (
    id TEXT PRIMARY KEY NOT NULL,
    timestamp BIGINT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    account_id TEXT,
    account_name TEXT NOT NULL,
    status_code INTEGER,
    success BOOLEAN NOT NULL,
    error_message TEXT,
    response_time_ms BIGINT NOT NULL,
    time_to_first_token_ms BIGINT,
    failover_attempts INTEGER NOT NULL DEFAULT 0,
    model TEXT,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cache_read_input_tokens BIGINT,
    cache_creation_input_tokens BIGINT,
    cost_usd DOUBLE,
    output_tokens_per_second DOUBLE,
    stream BOOLEAN NOT NULL DEFAULT 0,
    client_ip TEXT
);
CREATE INDEX requests_timestamp ON requests (timestamp);
CREATE INDEX requests_account_timestamp ON requests (account_id, timestamp);

CREATE TABLE request_payloads (
    request_id TEXT PRIMARY KEY NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    request_headers TEXT NOT NULL,
    request_body BLOB,
    response_headers TEXT NOT NULL,
    response_body BLOB,
    truncated BOOLEAN NOT NULL DEFAULT 0
);
