-- Content repository. Spec: client-server-api, "Content repository".
-- A media row names one mxc:// URI; its bytes live in a file named by their SHA-256
-- (content_hash), so identical uploads share one file. content_hash is NULL while an ID made by
-- POST /_matrix/media/v1/create waits for its upload.
CREATE TABLE media (
    origin              TEXT NOT NULL,             -- server name of the mxc:// URI (ours for local media)
    media_id            TEXT NOT NULL,
    user_id             TEXT,                      -- uploader of local media; NULL for remote media
    content_hash        TEXT,                      -- hex SHA-256 of the bytes; NULL until uploaded
    media_type          TEXT,
    upload_name         TEXT,
    media_length        INTEGER,
    created_ts          INTEGER NOT NULL,
    uploaded_ts         INTEGER,                   -- for remote media: when the cache was filled
    unused_expires_ts   INTEGER,                   -- pending IDs only
    authenticated       INTEGER NOT NULL DEFAULT 1, -- 1: not served by the frozen legacy endpoints
    last_access_ts      INTEGER,
    PRIMARY KEY (origin, media_id)
) WITHOUT ROWID;

CREATE INDEX media_by_user ON media (user_id, created_ts);
CREATE INDEX media_by_hash ON media (content_hash);

-- Thumbnails are made from the bytes, so they are keyed by content_hash as well; width, height
-- and method are the size asked for (one of the standard sizes), not the pixel size made.
CREATE TABLE media_thumbnails (
    content_hash        TEXT NOT NULL,
    width               INTEGER NOT NULL,
    height              INTEGER NOT NULL,
    method              TEXT NOT NULL,
    animated            INTEGER NOT NULL,
    thumbnail_type      TEXT NOT NULL,
    thumbnail_length    INTEGER NOT NULL,
    created_ts          INTEGER NOT NULL,
    PRIMARY KEY (content_hash, width, height, method, animated)
) WITHOUT ROWID;
