DROP TABLE request_rollups;
DROP TABLE request_account_rollups;
