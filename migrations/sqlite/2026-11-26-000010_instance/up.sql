-- Which daemon answered: several instances share one PostgreSQL history (the
-- column exists in SQLite too so that one schema serves both).
ALTER TABLE requests ADD COLUMN instance_id TEXT;
