-- Both tables had a composite primary key, so SQLite kept each table and an index of that key,
-- storing every key twice. Stored by that key (WITHOUT ROWID), each is one b-tree: a look-up by
-- key is one descent, and a user's first receipt or read position in a room writes one page
-- fewer in each table. (Updating a row wrote the table alone before too.)
CREATE TABLE receipts_by_key (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,              -- m.read or m.read.private
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL DEFAULT '',
    event_id TEXT NOT NULL,
    event_stream_ordering INTEGER NOT NULL,  -- of event_id, so a receipt never moves backwards
    data_json TEXT NOT NULL,                 -- {"ts": ..., "thread_id": ...} as sent in m.receipt
    stream_position INTEGER NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
) WITHOUT ROWID;
INSERT INTO receipts_by_key (room_id, receipt_type, user_id, thread_id, event_id, event_stream_ordering,
                             data_json, stream_position)
    SELECT room_id, receipt_type, user_id, thread_id, event_id, event_stream_ordering, data_json,
           stream_position FROM receipts;
DROP TABLE receipts;
ALTER TABLE receipts_by_key RENAME TO receipts;
CREATE INDEX receipts_stream ON receipts (room_id, stream_position);

CREATE TABLE push_read_positions_by_key (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
) WITHOUT ROWID;
INSERT INTO push_read_positions_by_key (user_id, room_id, thread_id, stream_ordering)
    SELECT user_id, room_id, thread_id, stream_ordering FROM push_read_positions;
DROP TABLE push_read_positions;
ALTER TABLE push_read_positions_by_key RENAME TO push_read_positions;
