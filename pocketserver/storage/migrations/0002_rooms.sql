-- Rooms, events, the event graph, compact state history and current state.

CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 0,    -- listed in the published room directory
    created_ts INTEGER NOT NULL
);

-- Every event, with its stream position. `json` is the PDU as stored: the signed original,
-- or its redacted form once a redaction applied.
CREATE TABLE events (
    stream_ordering INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    depth INTEGER NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    json TEXT NOT NULL,
    state_before INTEGER NOT NULL,           -- state group of the room's state before the event
    state_after INTEGER NOT NULL,            -- and after it (equal for non-state events)
    replaces_state TEXT,                     -- for state events: the event this one replaced
    redacted_by TEXT,                        -- the redaction event that applied, if any
    relates_to TEXT,                         -- content.m.relates_to.event_id
    rel_type TEXT,                           -- content.m.relates_to.rel_type
    txn_id TEXT,
    device_id TEXT
);
CREATE INDEX events_room ON events (room_id, stream_ordering);
CREATE INDEX events_state ON events (room_id, type, state_key) WHERE state_key IS NOT NULL;
CREATE INDEX events_relations ON events (relates_to, rel_type) WHERE relates_to IS NOT NULL;

-- prev_events live in each event's JSON; only the room's current extremities get a table.
-- WITHOUT ROWID keeps each of these small tables in one b-tree: fewer pages written per event.
CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
) WITHOUT ROWID;

-- State history as a chain of deltas: a group is its prev_group's state plus its entries.
CREATE TABLE state_groups (
    id INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group INTEGER,
    chain_length INTEGER NOT NULL            -- deltas to walk to reach a full snapshot
);

CREATE TABLE state_group_entries (
    group_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
);

CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    membership TEXT,                         -- for m.room.member events
    PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_members ON current_state (state_key, membership) WHERE type = 'm.room.member';

-- Membership changes of local users, for room lists and sync (joins, leaves, invites, knocks).
CREATE TABLE local_membership (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    forgotten INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX local_membership_stream ON local_membership (user_id, stream_ordering);

CREATE TABLE transaction_ids (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
) WITHOUT ROWID;

CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);
