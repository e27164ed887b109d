-- OAuth accounts: a dead refresh token needs a new sign-in; who the account is.
ALTER TABLE accounts ADD COLUMN requires_reauth BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN email TEXT;
ALTER TABLE accounts ADD COLUMN organization TEXT;
