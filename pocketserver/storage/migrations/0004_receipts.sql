-- Receipts (persisted at positions of the "receipts" stream) and lazily flushed presence.

-- The latest receipt of each (room, receipt type, user, thread). thread_id is '' for an
-- unthreaded receipt, so it can be part of the key.
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,              -- m.read or m.read.private
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL DEFAULT '',
    event_id TEXT NOT NULL,
    event_stream_ordering INTEGER NOT NULL,  -- of event_id, so a receipt never moves backwards
    data_json TEXT NOT NULL,                 -- {"ts": ..., "thread_id": ...} as sent in m.receipt
    stream_position INTEGER NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream ON receipts (room_id, stream_position);

-- Presence of local users, kept in memory and written in the background; read at start.
CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    presence TEXT NOT NULL,                  -- online, unavailable or offline
    status_msg TEXT,
    last_active_ts INTEGER NOT NULL,
    stream_position INTEGER NOT NULL         -- of the in-memory "presence" stream when last changed
);
