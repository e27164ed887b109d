DROP TABLE audit_log;
DROP TABLE api_keys;
DROP TABLE request_payloads;
DROP TABLE requests;
DROP TABLE accounts;
