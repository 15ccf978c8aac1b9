-- The server name the database belongs to. User IDs, room IDs and every event carry it, so it
-- cannot change once the server is in use; the server and every command check it
-- (storage/identity.py). A database with users takes it from the oldest user's ID.
CREATE TABLE server_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    server_name TEXT NOT NULL
);
INSERT INTO server_identity (id, server_name)
SELECT 1, substr(user_id, instr(user_id, ':') + 1) FROM users ORDER BY created_ts, user_id LIMIT 1;
