-- Unread counts clustered by room: the counts of every recipient of a room's message sit side by
-- side, so one message rewrites one page, not one per recipient. A user reading a room zeroes
-- their row instead of deleting it, so the b-trees keep their shape (no index churn per message).
CREATE TABLE push_unread_by_room (
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    notification_count INTEGER NOT NULL,
    highlight_count INTEGER NOT NULL,
    PRIMARY KEY (room_id, thread_id, user_id)
) WITHOUT ROWID;
INSERT INTO push_unread_by_room (room_id, thread_id, user_id, notification_count, highlight_count)
    SELECT room_id, thread_id, user_id, notification_count, highlight_count FROM push_unread;
DROP TABLE push_unread;
ALTER TABLE push_unread_by_room RENAME TO push_unread;
CREATE INDEX push_unread_user ON push_unread (user_id);

-- Recounting a room's notifications walks the room's events (events_room) and looks each one up
-- here by its primary key; a second index by room cost one more page per notifying event.
DROP INDEX push_event_actions_room;
