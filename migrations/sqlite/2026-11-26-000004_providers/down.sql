ALTER TABLE requests DROP COLUMN api_key_name;
ALTER TABLE requests DROP COLUMN provider;
ALTER TABLE requests DROP COLUMN requested_model;
ALTER TABLE accounts DROP COLUMN model_map;
ALTER TABLE accounts DROP COLUMN base_url;
