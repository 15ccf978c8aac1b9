-- End-to-end encryption: device keys, one-time and fallback keys, cross-signing keys and
-- signatures, device-list changes, send-to-device messages and server-side key backups.

-- The signed device keys object a device uploaded, as received (without `unsigned`).
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    added_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Unclaimed one-time keys; a claim deletes the row. `upload_id` orders keys by upload.
CREATE TABLE e2e_one_time_keys (
    upload_id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    UNIQUE (user_id, device_id, algorithm, key_id)
);
CREATE INDEX e2e_one_time_keys_claim ON e2e_one_time_keys (user_id, device_id, algorithm, upload_id);

-- At most one fallback key per device and algorithm; `used` is set once it was claimed.
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- A user's current master, self-signing and user-signing keys.
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    usage TEXT NOT NULL,               -- 'master', 'self_signing' or 'user_signing'
    public_key TEXT NOT NULL,          -- unpadded base64 ed25519 key
    key_json TEXT NOT NULL,
    added_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, usage)
);

-- Signatures uploaded with /keys/signatures/upload, merged into keys when they are queried.
CREATE TABLE e2e_cross_signing_signatures (
    signer_user_id TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,       -- e.g. ed25519:<public key> or ed25519:<device_id>
    target_user_id TEXT NOT NULL,
    target_key_id TEXT NOT NULL,       -- a device ID or a master key's public key
    signature TEXT NOT NULL,
    PRIMARY KEY (signer_user_id, signer_key_id, target_user_id, target_key_id)
);
CREATE INDEX e2e_signatures_target ON e2e_cross_signing_signatures (target_user_id, target_key_id);

-- "device_lists" stream: a user's devices or keys changed at `position`.
CREATE TABLE device_list_changes (
    position INTEGER NOT NULL,
    user_id TEXT NOT NULL
);
CREATE INDEX device_list_changes_position ON device_list_changes (position);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, position);

-- "device_lists" stream: `observer` should hear that `subject` changed (they started sharing a
-- room, or a user-signing signature) or left (they stopped sharing a room).
CREATE TABLE device_list_observations (
    position INTEGER NOT NULL,
    observer TEXT NOT NULL,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL                 -- 'changed' or 'left'
);
CREATE INDEX device_list_observations_observer ON device_list_observations (observer, position);

-- Pending send-to-device messages, deleted once a later sync acknowledges them.
CREATE TABLE to_device_inbox (
    position INTEGER PRIMARY KEY,      -- "to_device" stream position
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    message_json TEXT NOT NULL         -- {"sender", "type", "content"}
);
CREATE INDEX to_device_inbox_device ON to_device_inbox (user_id, device_id, position);

CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE e2e_room_keys_versions (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data_json TEXT NOT NULL,
    etag INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE e2e_room_keys (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count INTEGER NOT NULL,
    is_verified INTEGER NOT NULL,
    session_data_json TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
