-- Keys the daemon issues to its own clients. Only a SHA-256 of each key is stored.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used BIGINT,
    request_count BIGINT NOT NULL DEFAULT 0,
    enabled BOOLEAN NOT NULL DEFAULT 1
);

-- Management actions: who did what, when.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    timestamp BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status_code INTEGER NOT NULL
);
CREATE INDEX audit_log_timestamp ON audit_log (timestamp);
