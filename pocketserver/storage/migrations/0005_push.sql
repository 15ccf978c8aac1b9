-- Push: per-user push rules, notifications and unread counts, pushers and their delivery queue.

-- User-defined push rules; server-default rules live in code (pocketserver/push/default_rules.py).
CREATE TABLE push_rules (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,                      -- override, content, room, sender, underride
    rule_id TEXT NOT NULL,
    priority INTEGER NOT NULL,               -- higher is more important within a kind
    conditions_json TEXT,                    -- override and underride rules
    pattern TEXT,                            -- content rules
    actions_json TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, kind, rule_id)
);

-- A user's changes to server-default rules: NULL means "as the default says".
CREATE TABLE push_rule_defaults (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    enabled INTEGER,
    actions_json TEXT,
    PRIMARY KEY (user_id, kind, rule_id)
);

-- Every event a user was (or would have been) notified about, for /notifications and counts.
-- One row per notifying event, naming every recipient: a message to a room of N local members
-- writes one row (one page at the end of the table), not N rows spread over per-user index pages.
-- recipients_json: {"@user:server": {"a": actions, "h": 0|1 (highlight), "c": 0|1 (counts as unread)}}
CREATE TABLE push_event_actions (
    stream_ordering INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,                 -- 'main' or the thread root's event ID
    ts INTEGER NOT NULL,
    recipients_json TEXT NOT NULL
);
CREATE INDEX push_event_actions_room ON push_event_actions (room_id, stream_ordering);

CREATE TABLE push_unread (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    notification_count INTEGER NOT NULL,
    highlight_count INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);

-- How far each user has read, per room and thread ('' is an unthreaded receipt covering all threads).
CREATE TABLE push_read_positions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);

CREATE TABLE pushers (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT,
    kind TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data_json TEXT NOT NULL,
    pushkey_ts INTEGER NOT NULL,             -- ms when the pushkey was last set
    UNIQUE (user_id, app_id, pushkey)
);
CREATE INDEX pushers_key ON pushers (app_id, pushkey);

-- Notifications waiting to be sent to a pusher's gateway, retried with exponential backoff.
CREATE TABLE push_queue (
    id INTEGER PRIMARY KEY,
    pusher_id INTEGER NOT NULL,
    notification_json TEXT NOT NULL,         -- event_id, room_id, counts, prio, tweaks, names
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX push_queue_due ON push_queue (next_attempt_ms);
