ALTER TABLE accounts DROP COLUMN organization;
ALTER TABLE accounts DROP COLUMN email;
ALTER TABLE accounts DROP COLUMN requires_reauth;
