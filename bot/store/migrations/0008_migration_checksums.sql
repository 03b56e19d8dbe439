-- The SHA-256 of each migration file as it was applied: the runner refuses to start when a file that
-- was applied has changed since (the database no longer is what the code describes). Rows applied
-- before this column existed get the checksum of the file shipped when it is added.
ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text;
