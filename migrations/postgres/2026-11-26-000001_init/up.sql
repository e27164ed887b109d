-- The PostgreSQL schema, the same tables and types as SQLite's migrations 1–5 and 10
-- (schema.rs serves both). Timestamps are unix milliseconds (BIGINT).
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
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    auth_failed BOOLEAN NOT NULL DEFAULT FALSE,
    rate_limited_until BIGINT,
    rate_limit_status TEXT,
    rate_limit_reset BIGINT,
    rate_limit_remaining BIGINT,
    utilization_5h DOUBLE PRECISION,
    utilization_7d DOUBLE PRECISION,
    session_start BIGINT,
    session_request_count BIGINT NOT NULL DEFAULT 0,
    request_count BIGINT NOT NULL DEFAULT 0,
    total_requests BIGINT NOT NULL DEFAULT 0,
    last_used BIGINT,
    created_at BIGINT NOT NULL,
    requires_reauth BOOLEAN NOT NULL DEFAULT FALSE,
    email TEXT,
    organization TEXT,
    base_url TEXT,
    model_map TEXT
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
    cost_usd DOUBLE PRECISION,
    output_tokens_per_second DOUBLE PRECISION,
    stream BOOLEAN NOT NULL DEFAULT FALSE,
    client_ip TEXT,
    requested_model TEXT,
    provider TEXT,
    api_key_name TEXT,
    instance_id TEXT
);
CREATE INDEX requests_timestamp ON requests (timestamp);
CREATE INDEX requests_account_timestamp ON requests (account_id, timestamp);

CREATE TABLE request_payloads (
    request_id TEXT PRIMARY KEY NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    request_headers TEXT NOT NULL,
    request_body BYTEA,
    response_headers TEXT NOT NULL,
    response_body BYTEA,
    truncated BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used BIGINT,
    request_count BIGINT NOT NULL DEFAULT 0,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    requests_per_minute INTEGER,
    max_concurrent INTEGER
);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    timestamp BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status_code INTEGER NOT NULL
);
CREATE INDEX audit_log_timestamp ON audit_log (timestamp);
