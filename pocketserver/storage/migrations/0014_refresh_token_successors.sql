-- Refresh tokens now stay good until the pair they were swapped for is used (accounts/sessions.py).
-- Before, a used token stayed in the table only to refuse its replay; read the new way, those rows
-- would be good again. They go, and finding a token's predecessor, or a pusher's queued
-- notifications, no longer scans a table.
DELETE FROM access_tokens WHERE refresh_token_id IN (SELECT id FROM refresh_tokens WHERE next_token_id IS NOT NULL);
DELETE FROM refresh_tokens WHERE next_token_id IS NOT NULL;
CREATE INDEX refresh_tokens_next ON refresh_tokens (next_token_id);
CREATE INDEX push_queue_pusher ON push_queue (pusher_id, id);
