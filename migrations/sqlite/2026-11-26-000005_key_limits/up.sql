-- Optional per-key limits (NULL: none).
ALTER TABLE api_keys ADD COLUMN requests_per_minute INTEGER;
ALTER TABLE api_keys ADD COLUMN max_concurrent INTEGER;
