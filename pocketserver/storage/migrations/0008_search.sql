-- Full-text index of room events for server-side search (content.body, content.name, content.topic).
-- rowid is the event's stream_ordering.
CREATE VIRTUAL TABLE event_search USING fts5(value, key UNINDEXED, room_id UNINDEXED, tokenize = 'unicode61');

CREATE TABLE search_progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL              -- events up to here are indexed
);
INSERT INTO search_progress (id, position) VALUES (1, 0);
