-- Account locking and suspension (client-server-api, "Account moderation"): reversible, unlike
-- deactivation. Read with every access token look-up, so they live on the users row.
ALTER TABLE users ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
