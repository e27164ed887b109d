ALTER TABLE requests DROP COLUMN instance_id;
