-- Stream positions: one increasing counter per stream (account data, events, ...).
CREATE TABLE stream_positions (
    stream TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,                -- Argon2id string; NULL: no password login
    admin INTEGER NOT NULL DEFAULT 0,
    is_guest INTEGER NOT NULL DEFAULT 0,
    deactivated INTEGER NOT NULL DEFAULT 0,
    user_type TEXT,
    created_ts INTEGER NOT NULL
);

CREATE TABLE devices (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen_ip TEXT,
    last_seen_ts INTEGER,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Only SHA-256 hashes of tokens are stored.
CREATE TABLE access_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    expires_ts INTEGER,                -- NULL: does not expire
    refresh_token_id INTEGER,          -- set when issued together with a refresh token
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE refresh_tokens (
    id INTEGER PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    next_token_id INTEGER,             -- the token that replaced this one
    created_ts INTEGER NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed INTEGER,              -- NULL: unlimited
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_ts INTEGER,                 -- NULL: never expires
    created_ts INTEGER NOT NULL
);

CREATE TABLE profiles (
    user_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value_json TEXT NOT NULL,
    PRIMARY KEY (user_id, field)
);

CREATE TABLE filters (
    user_id TEXT NOT NULL,
    filter_id INTEGER NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,             -- '' for global account data
    type TEXT NOT NULL,
    content_json TEXT NOT NULL,
    stream_position INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_position);
