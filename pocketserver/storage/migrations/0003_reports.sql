-- Reports of events, rooms and users, kept for the server admin.

CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                      -- 'event', 'room' or 'user'
    room_id TEXT,
    event_id TEXT,
    target_user_id TEXT,                     -- for user reports
    reporter TEXT NOT NULL,
    reason TEXT,
    content TEXT NOT NULL,                   -- the request body as JSON (reason, score, ...)
    received_ts INTEGER NOT NULL
);
CREATE INDEX reports_received ON reports (received_ts);
