ALTER TABLE api_keys DROP COLUMN max_concurrent;
ALTER TABLE api_keys DROP COLUMN requests_per_minute;
