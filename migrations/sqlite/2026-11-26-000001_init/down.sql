DROP TABLE request_payloads;
DROP TABLE requests;
DROP TABLE accounts;
