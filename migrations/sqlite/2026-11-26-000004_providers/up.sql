-- Accounts on other Anthropic-compatible providers: where to send, what to call models.
ALTER TABLE accounts ADD COLUMN base_url TEXT;
ALTER TABLE accounts ADD COLUMN model_map TEXT;
-- What the client asked for, when a model map sent something else; which key it came with.
ALTER TABLE requests ADD COLUMN requested_model TEXT;
ALTER TABLE requests ADD COLUMN provider TEXT;
ALTER TABLE requests ADD COLUMN api_key_name TEXT;
